# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""The out-of-distribution score of steered embeddings.

An input is compared with the training embeddings as it is (g = 0) and after
each of K steered changes.  Two parts come out of the K distances:

* the **residual**, the distance after the best steered change: what no
  steered change explains (noise, blur, other content);
* the **shift**, how much closer the best steered change brings the input:
  a change along the steered transformations (a colour cast, a fade).

Each part is standardised by its mean and standard deviation over training
embeddings (each against the others), and the score is the larger of the
two.  Taking the residual alone would let steering carry a shifted input back
to the training data; the shift part flags exactly that.
"""

from itertools import chain

import numpy as np
import torch

from skfeat.nn import l2_normalize

N_CALIBRATION = 256  # most training embeddings that calibrate the two parts
# a shift part that varies less than this over the training embeddings means
# the steering changes nothing (identity maps, or g = 0 only): it is left out
SHIFT_TOLERANCE = 1e-6


def nearest_distances(views, reference, own_rows=None):
    """Return one minus the largest cosine of each view to the reference rows.

    Parameters
    ----------
    views : iterable of ndarray of shape (n_samples, n_features)
        Embeddings, any length, one array per view.
    reference : ndarray of shape (n_reference, n_features)
        Unit-length reference embeddings.
    own_rows : ndarray of shape (n_samples,), default=None
        For views of reference rows: the row each sample is, left out of
        its own comparison.

    Returns
    -------
    distances : ndarray of shape (n_samples, n_views)
    """
    # torch, not numpy, multiplies: the steering runs in torch, and two thread
    # pools taking turns were up to 3x slower (benchmarks/bench_ood_speed.py)
    reference = torch.from_numpy(reference)
    columns = []
    for view in views:
        cosines = l2_normalize(torch.from_numpy(view)) @ reference.T
        if own_rows is not None:
            cosines[np.arange(len(view)), own_rows] = -np.inf
        columns.append(1.0 - cosines.amax(dim=1).numpy())
    return np.stack(columns, axis=1)


def residual_and_shift(distances):
    """Split distances whose first column is g = 0 into residual and shift."""
    residual = distances.min(axis=1)
    return residual, distances[:, 0] - residual


def standardised_max(parts, calibration_parts):
    """Return the larger part, each in standard deviations of its calibration.

    A part whose calibration spread is below ``SHIFT_TOLERANCE`` is left out,
    unless it is the first (the residual), which is then only centred.
    """
    scores = []
    for index, (part, calibration) in enumerate(zip(parts, calibration_parts)):
        spread = calibration.std()
        if spread > SHIFT_TOLERANCE:
            scores.append((part - calibration.mean()) / spread)
        elif index == 0:
            scores.append(part - calibration.mean())
    return np.max(scores, axis=0)


def ood_scores(steer, Z, reference, params_list):
    """Return the standardised residual-or-shift scores of the embeddings ``Z``.

    Parameters
    ----------
    steer : callable
        ``steer(Z, g)`` applies the steering map of one parameter vector.
    Z : ndarray of shape (n_samples, n_features)
        Unsteered embeddings of the inputs.
    reference : ndarray of shape (n_reference, n_features)
        Unit-length training embeddings.
    params_list : ndarray of shape (K, n_params)
        The steered changes; g = 0 is always added.

    Returns
    -------
    scores : ndarray of shape (n_samples,)
    """

    def distances(rows, own_rows=None):
        views = chain([rows], (steer(rows, g) for g in params_list))
        return nearest_distances(views, reference, own_rows)

    rows = np.linspace(0, len(reference) - 1, min(N_CALIBRATION, len(reference)))
    rows = np.unique(rows.round().astype(int))
    own_rows = rows if len(reference) > 1 else None
    calibration = residual_and_shift(distances(reference[rows], own_rows))
    return standardised_max(residual_and_shift(distances(Z)), calibration)
