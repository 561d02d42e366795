# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Batched augmentations of 2-D feature vectors with per-sample parameters."""

import torch

from skfeat.transforms._base import ParametricAugmentation, check_range, uniform


def _check_vectors(x, name, stop):
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        raise ValueError(
            f"{name} expects float vectors of shape (n, n_features), "
            f"got {getattr(x, 'dtype', type(x).__name__)} "
            f"of shape {tuple(getattr(x, 'shape', ()))}."
        )
    if stop is not None and stop > x.shape[1]:
        raise ValueError(
            f"{name} acts on features up to {stop}, but x has {x.shape[1]} features."
        )


def _check_start(start):
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be a non-negative int, got {start!r}.")
    return start


class RandomScale(ParametricAugmentation):
    """Multiply a block of features by a per-sample factor.

    Parameters
    ----------
    factor : tuple of float, default=(0.4, 1.6)
        Range of the factor, drawn uniformly.
    start : int, default=0
        First feature of the block.
    stop : int, default=None
        One past the last feature of the block; ``None`` means the last.

    Notes
    -----
    ``params`` is the factor; the record is (factor - 1) / (high - low), the
    target the record difference, in [-1, 1].

    Examples
    --------
    >>> import torch
    >>> from skfeat.transforms import RandomScale
    >>> scale = RandomScale(start=1)
    >>> scale.apply(torch.ones(1, 3), torch.tensor([[0.5]]))
    tensor([[1.0000, 0.5000, 0.5000]])
    """

    name = "scale"

    def __init__(self, factor=(0.4, 1.6), start=0, stop=None):
        self.factor = check_range(factor, "factor")
        self.start = _check_start(start)
        if stop is not None and (not isinstance(stop, int) or stop <= self.start):
            raise ValueError(f"stop must be None or an int > start, got {stop!r}.")
        self.stop = stop

    def sample(self, n, generator=None):
        return uniform(n, self.factor, generator)

    def apply(self, x, params):
        _check_vectors(x, "RandomScale.apply", self.stop)
        out = x.clone()
        factor = params[:, :1].to(device=x.device, dtype=x.dtype)
        out[:, self.start : self.stop] = x[:, self.start : self.stop] * factor
        return out

    def record(self, params):
        low, high = self.factor
        return (params[:, :1] - 1) / max(high - low, 1e-12)


class RandomCircularShift(ParametricAugmentation):
    """Roll a block of ``width`` features by a per-sample number of positions.

    Parameters
    ----------
    width : int
        Length of the rolled block (also the number of target classes).
    start : int, default=0
        First feature of the block.

    Notes
    -----
    ``params`` is the shift k in {0, ..., width - 1}; the target is the class
    (k1 - k2) mod width, learnt with cross-entropy.

    Examples
    --------
    >>> import torch
    >>> from skfeat.transforms import RandomCircularShift
    >>> shift = RandomCircularShift(3)
    >>> shift.apply(torch.tensor([[1.0, 2.0, 3.0, 9.0]]), torch.tensor([[1.0]]))
    tensor([[3., 1., 2., 9.]])
    """

    name = "shift"
    loss_kind = "multiclass"

    def __init__(self, width, start=0):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}.")
        self.width = width
        self.start = _check_start(start)

    @property
    def n_outputs(self):
        return self.width

    def sample(self, n, generator=None):
        return torch.randint(0, self.width, (n, 1), generator=generator).float()

    def apply(self, x, params):
        stop = self.start + self.width
        _check_vectors(x, "RandomCircularShift.apply", stop)
        shift = params[:, :1].to(x.device).long()
        source = (torch.arange(self.width, device=x.device) - shift) % self.width
        out = x.clone()
        out[:, self.start : stop] = x[:, self.start : stop].gather(1, source)
        return out

    def record(self, params):
        return params[:, :1]

    def delta(self, params1, params2):
        return (params1[:, 0] - params2[:, 0]).long() % self.width
