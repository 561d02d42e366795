# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""DeepFeatureExtractor: features of a frozen pretrained network as a transformer."""

import os

import numpy as np
from sklearn.utils._param_validation import StrOptions
from torchvision.models import WeightsEnum

from skfeat.extraction._base import _BaseImageExtractor, model_identity
from skfeat.extraction._cache import cached_backbone
from skfeat.extraction._inputs import (
    SkipUnreadable,
    UnreadableImageError,
    VectorRows,
)
from skfeat.models._backbone import POOLINGS
from skfeat.utils._torch import resolve_device
from skfeat.utils._warnings import warn_caller

SKIP_HINT = 'Pass on_error="skip" to give unreadable images NaN feature rows instead.'


class DeepFeatureExtractor(_BaseImageExtractor):
    """Features of a frozen pretrained network, as a scikit-learn transformer.

    Images go through the network's own preprocessing (resize, centre crop,
    normalisation) and a batched forward pass in ``eval`` mode under
    ``torch.inference_mode``; the output is one float32 row per image.  The
    extractor is stateless: ``fit`` only validates and records the resolved
    weights, and ``transform`` works without it.  The network is built on
    first use and cached per process, so clones (as in ``GridSearchCV``) share
    it and pickles hold parameters only.

    Read more in the :ref:`User Guide <deep_feature_extractor>` (section
    "Deep features: ``DeepFeatureExtractor``" of ``docs/user_guide.rst``).

    Parameters
    ----------
    model : str or callable, default="resnet50"
        A torchvision classification model (``"resnet50"``, ``"vit_b_16"``,
        ``"efficientnet_b0"``, ``"convnext_tiny"``, ...), a name registered
        with :func:`skfeat.models.register_backbone` (see
        :func:`skfeat.models.list_backbones`), or a zero-argument callable
        returning an ``nn.Module``.
    weights : str, os.PathLike, WeightsEnum or None, default="DEFAULT"
        ``"DEFAULT"`` or a name such as ``"IMAGENET1K_V1"`` (or a member of the
        model's torchvision ``WeightsEnum``) loads pretrained weights from the
        torch hub cache under ``TORCH_HOME``, downloading them when the
        network allows.  A path to a ``.pth``/``.pt`` (or ``.safetensors``)
        file loads a local checkpoint with ``weights_only=True`` (``~`` and
        environment variables in the path are expanded).  None
        initialises the network randomly under a fixed seed (for tests).  For
        a callable ``model``, ``"DEFAULT"`` keeps the module as returned.
        Note that torchvision's ``"DEFAULT"`` for resnet50 is
        ``IMAGENET1K_V2``; linear-probe literature uses ``IMAGENET1K_V1``.
    layer : str, default=None
        None takes the pre-logits vector: the input of the network's last
        ``nn.Linear`` (2048 features for resnet50, 768 for vit_b_16).
        ``"logits"`` takes the network's output.  Any other value names a node
        of torchvision's feature extraction, e.g. ``"layer3"`` of a ResNet, or,
        for a network it cannot trace, a submodule from ``named_modules()``,
        e.g. ``"blocks.5"`` of ``"efficientnet_lite0"``; a wrong name lists
        close matches.
    pooling : {"avg", "max", "gem"} or None, default="avg"
        How a spatial map ``(n, C, H, W)`` (or a token sequence ``(n, L, C)``)
        from ``layer`` becomes a vector: average, max or generalised-mean
        (p = 3) pooling; None flattens it.
    image_size : int, default=None
        Side of the centre crop fed to the network.  None uses the weights'
        own preprocessing; a smaller value trades accuracy for speed, keeping
        the weights' resize-to-crop ratio.
    batch_size : int, default=32
        Images per forward pass; memory is bounded by the batch, not by the
        number of images.
    num_workers : int, default=0
        Worker processes of the ``DataLoader`` that decodes and resizes
        images; 0 decodes in the main process.
    device : str or torch.device, default="auto"
        ``"auto"`` uses the GPU when one is available, resolved at transform
        time in the process that runs it.
    precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Autocast precision of the forward pass; ``"auto"`` is bfloat16 (or
        float16) on CUDA and float32 on the CPU.  Outputs are float32 always.
    memory : str, os.PathLike or joblib.Memory, default=None
        Directory of a per-sample feature cache, shared across calls,
        processes and sessions.  Entries are keyed by each image's content
        and by everything that changes features (model, resolved weights,
        layer, pooling, preprocessing, precision, device type); only images
        missing from the cache reach the network.  Writes are atomic and
        checksummed: an interrupted extraction keeps its finished batches,
        and a damaged entry is recomputed.  ``~`` and environment variables
        in the path are expanded when the cache is used, so
        ``memory="~/.cache/skfeat"`` is a folder in the home directory.  None
        disables caching.
    verbose : int, default=0
        Show a progress bar when positive.
    on_error : {"raise", "skip"}, default="raise"
        What an image that cannot be read (a missing, truncated or non-image
        file) does in ``transform``.  ``"raise"`` stops with a ``ValueError``
        (or ``FileNotFoundError``) naming the file.  ``"skip"`` gives that
        image a row of NaN, so the rows still match ``X`` (and ``y`` in a
        pipeline), warns once with the files, and records their row indices
        in ``skipped_indices_``.  Drop those rows with
        ``np.isnan(features).all(axis=1)``, or follow with an estimator that
        accepts NaN (``SimpleImputer``, ``HistGradientBoostingClassifier``).

    Attributes
    ----------
    weights_ : str
        The resolved weights, e.g. ``"ResNet50_Weights.IMAGENET1K_V2"``,
        ``"checkpoint:<path>#sha256=<digest>"`` or ``"random-init(seed=0)"``.
    skipped_indices_ : ndarray of shape (n_skipped,), dtype int64
        Rows of the images the last ``transform`` could not read, whose
        features are NaN; set by ``transform`` only with ``on_error="skip"``.
    n_features_in_ : int
        Number of input columns; set only for vector backbones such as
        ``"mlp"``, which take 2-D input.

    See Also
    --------
    skfeat.models.get_backbone : The network behind the extractor.
    skfeat.SeAClassifier : A classifier for the extracted features.

    Notes
    -----
    Accepted image inputs, all giving identical features for the same pixels:

    - arrays of shape ``(n, H, W)`` (grayscale), ``(n, H, W, C)`` or
      ``(n, C, H, W)``. The last axis is the channel axis when its size is 1,
      3 or 4; otherwise axis 1 must be. uint8 (or integer) pixels lie in
      [0, 255], float pixels in [0, 1];
    - lists of PIL images, of single-image arrays of any size, or of file
      paths (``str`` or ``pathlib.Path``, ``~`` and environment variables
      expanded), decoded lazily in the data loader;
    - a ``torch.utils.data.Dataset`` yielding images or ``(image, label)``.

    Grayscale images are replicated to three channels and an alpha channel is
    dropped, as PIL's ``convert("RGB")`` does.

    Examples
    --------
    >>> import numpy as np
    >>> from skfeat import DeepFeatureExtractor
    >>> rng = np.random.RandomState(0)
    >>> images = rng.randint(0, 256, (5, 40, 40, 3), dtype=np.uint8)
    >>> extractor = DeepFeatureExtractor("tiny_cnn", weights=None)
    >>> features = extractor.fit_transform(images)
    >>> features.shape, features.dtype
    ((5, 16), dtype('float32'))
    >>> extractor.weights_
    'random-init(seed=0)'
    >>> extractor.get_feature_names_out()[:2]
    array(['deepfeatureextractor0', 'deepfeatureextractor1'], dtype=object)
    """

    _parameter_constraints = {
        **_BaseImageExtractor._parameter_constraints,
        "weights": [str, os.PathLike, WeightsEnum, None],
        "layer": [str, None],
        "pooling": [StrOptions(set(POOLINGS)), None],
        "on_error": [StrOptions({"raise", "skip"})],
    }

    def __init__(
        self,
        model="resnet50",
        *,
        weights="DEFAULT",
        layer=None,
        pooling="avg",
        image_size=None,
        batch_size=32,
        num_workers=0,
        device="auto",
        precision="auto",
        memory=None,
        verbose=0,
        on_error="raise",
    ):
        self.model = model
        self.weights = weights
        self.layer = layer
        self.pooling = pooling
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device
        self.precision = precision
        self.memory = memory
        self.verbose = verbose
        self.on_error = on_error

    def fit(self, X, y=None):
        """Validate the parameters and inputs, and load the network.

        Parameters
        ----------
        X : array-like, sequence of images or torch.utils.data.Dataset
            Images (see Notes of the class), or a 2-D array for vector
            backbones.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The extractor.
        """
        self._validate_params()
        backbone, _ = self._prepare(X, reset=True)
        self.weights_ = backbone.weights_id
        return self

    def transform(self, X):
        """Extract one feature vector per image.

        Parameters
        ----------
        X : array-like, sequence of images or torch.utils.data.Dataset
            Images (see Notes of the class), or a 2-D array for vector
            backbones.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out), dtype float32
            Rows in the order of ``X``; with ``on_error="skip"``, NaN rows
            for the images that cannot be read.
        """
        self._validate_params()
        backbone, dataset = self._prepare(X, reset=False)
        try:
            features = self._features_of(backbone, dataset)
        except UnreadableImageError as exc:
            raise UnreadableImageError(f"{exc} {SKIP_HINT}") from exc
        if self.on_error == "skip":
            self.skipped_indices_ = np.flatnonzero(np.isnan(features).all(axis=1))
            if len(self.skipped_indices_):
                self._warn_skipped(dataset)
        return features

    def _prepare(self, X, *, reset):
        """Validate ``X``; with ``on_error="skip"``, read images leniently."""
        backbone, dataset = super()._prepare(X, reset=reset)
        if self.on_error == "skip" and not isinstance(dataset, VectorRows):
            crop = self._eval_preprocessing(backbone).crop_size
            dataset = SkipUnreadable(dataset, (3, crop, crop))
        return backbone, dataset

    def _warn_skipped(self, dataset, shown=3):
        skipped = self.skipped_indices_
        errors = getattr(dataset, "errors", {})

        def name(index):
            if index in errors:
                return errors[index].removeprefix("X: ").rstrip(".")
            return f"X[{index}] {dataset.raw(index)!r}"

        listed = "; ".join(name(i) for i in skipped[:shown])
        more = f"; and {len(skipped) - shown} more" if len(skipped) > shown else ""
        warn_caller(
            f"{len(skipped)} of {len(dataset)} images cannot be read; their feature "
            f"rows are NaN (row indices in skipped_indices_): {listed}{more}.",
        )

    def featurize_batch(self, X):
        """Extract features of one in-memory batch, for Spark, Ray and Dask.

        Equivalent to :meth:`transform`, named for use as the batch function
        of distributed engines (``predict_batch_udf``, ``map_batches``,
        ``map_partitions``).

        Parameters
        ----------
        X : ndarray
            A batch of images, or of vectors for vector backbones.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out), dtype float32
            Rows in the order of ``X``.
        """
        return self.transform(X)

    def _get_backbone(self, in_features):
        """Return the frozen network, from the per-process cache."""
        return cached_backbone(
            self.model,
            weights=self.weights,
            layer=self.layer,
            pooling=self.pooling,
            in_features=in_features,
            device=resolve_device(self.device),
        )

    def _cache_identity(self, backbone):
        return {
            "model": model_identity(self.model),
            "weights": backbone.weights_id,
            "layer": self.layer,
            "pooling": self.pooling,
        }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags
