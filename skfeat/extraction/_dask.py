# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Featurise large collections on a Dask cluster, rows kept in input order."""

import numpy as np


def _transform_partition(partition, extractor):
    return [extractor.transform(list(partition))]


def dask_transform(extractor, images, *, npartitions=None):
    """Featurise ``images`` with Dask: one task per partition, outputs in order.

    The extractor pickles its parameters only, so every worker builds the
    network once, lazily, in its own process (never shipping weights with the
    tasks).  With ``extractor.memory`` on a shared file system, workers read
    and fill the same feature cache.  Run it inside a
    ``dask.distributed.Client`` to use a cluster; without one, Dask's local
    scheduler is used.

    Parameters
    ----------
    extractor : DeepFeatureExtractor
        The extractor to run on every partition.
    images : sequence
        Image paths (or any per-image items the extractor accepts).
    npartitions : int, default=None
        Number of tasks; Dask's default when None.  Each partition is
        featurised in batches of ``extractor.batch_size``.

    Returns
    -------
    features : ndarray of shape (n_images, n_features_out), dtype float32
        Rows in the order of ``images``.

    Examples
    --------
    >>> import numpy as np
    >>> from skfeat import DeepFeatureExtractor
    >>> from skfeat.extraction import dask_transform
    >>> images = list(np.zeros((6, 8, 8, 3), dtype=np.uint8))
    >>> extractor = DeepFeatureExtractor("tiny_cnn", weights=None)
    >>> dask_transform(extractor, images, npartitions=3).shape  # doctest: +SKIP
    (6, 16)
    """
    try:
        import dask.bag
    except ImportError as exc:
        raise ImportError(
            "dask_transform needs Dask: pip install 'dask[distributed]' "
            "(or pip install '.[dask]' in the skfeat checkout)."
        ) from exc
    bag = dask.bag.from_sequence(list(images), npartitions=npartitions)
    parts = bag.map_partitions(_transform_partition, extractor).compute()
    return np.concatenate(parts).astype(np.float32, copy=False)
