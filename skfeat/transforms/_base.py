# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""The parametric augmentation protocol shared by image and vector augmentations."""

import torch


def check_probability(p):
    """Return the probability ``p`` as a float, or raise a ValueError."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"p must be a number in [0, 1], got {p!r}.")
    return float(p)


def check_range(bounds, name, low=None):
    """Return ``bounds`` as an ordered float pair, or raise a ValueError."""
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a pair (low, high), got {bounds!r}."
        ) from None
    if not lo <= hi or (low is not None and lo < low):
        floor = "" if low is None else f" with low >= {low}"
        raise ValueError(f"{name} must satisfy low <= high{floor}, got {bounds!r}.")
    return lo, hi


def uniform(n, bounds, generator):
    """``n`` draws from U(bounds) as a column of shape (n, 1)."""
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, 1, generator=generator)


def coin(n, p, generator):
    """``n`` Bernoulli(p) draws as a float column of shape (n, 1)."""
    return (torch.rand(n, 1, generator=generator) < p).float()


class ParametricAugmentation:
    """Base class: an augmentation with per-sample parameters and a target.

    Subclasses implement ``sample``, ``apply`` and ``record``, and set the
    class attributes ``name``, ``loss_kind`` and ``n_outputs``.  The default
    ``delta`` is the record difference, the target of regression types.

    Attributes
    ----------
    name : str
        The augmentation type, the key of its record in a pipeline.
    loss_kind : {"regression", "binary", "multiclass"}
        How an AugSelf head learns the target: MSE on tanh, BCE with logits,
        or cross-entropy.
    n_outputs : int
        Width of the target, or the number of classes for "multiclass".

    Examples
    --------
    Two views of the same rows, and the AugSelf target that relates them:

    >>> import torch
    >>> from skfeat.transforms import RandomScale
    >>> scale = RandomScale(factor=(0.5, 1.5))
    >>> generator = torch.Generator().manual_seed(0)
    >>> p1, p2 = scale.sample(4, generator), scale.sample(4, generator)
    >>> v1, v2 = scale.apply(torch.ones(4, 3), p1), scale.apply(torch.ones(4, 3), p2)
    >>> scale.delta(p1, p2).shape, scale.loss_kind
    (torch.Size([4, 1]), 'regression')
    """

    name = None
    loss_kind = "regression"
    n_outputs = 1

    def sample(self, n, generator=None):
        """Draw parameters for ``n`` samples.

        Parameters
        ----------
        n : int
            Number of samples.
        generator : torch.Generator, default=None
            Source of randomness; ``None`` uses torch's global generator.

        Returns
        -------
        params : torch.Tensor of shape (n, n_params)
            One row of parameters per sample, on the CPU.
        """
        raise NotImplementedError

    def apply(self, x, params):
        """Augment a batch, each sample with its own row of ``params``.

        Parameters
        ----------
        x : torch.Tensor of shape (n, ...)
            The batch, on any device.
        params : torch.Tensor of shape (n, n_params)
            Output of :meth:`sample`.

        Returns
        -------
        x_aug : torch.Tensor
            The augmented batch, on ``x``'s device.
        """
        raise NotImplementedError

    def record(self, params):
        """Per-view record omega of each sample, as in the AugSelf targets.

        Parameters
        ----------
        params : torch.Tensor of shape (n, n_params)
            Parameters from :meth:`sample`.

        Returns
        -------
        record : torch.Tensor of shape (n, n_outputs)
            What an AugSelf head compares between two views.
        """
        raise NotImplementedError

    def delta(self, params1, params2):
        """AugSelf target of two views' parameters.

        Parameters
        ----------
        params1, params2 : torch.Tensor of shape (n, n_params)
            The two views' parameters, from :meth:`sample`.

        Returns
        -------
        target : torch.Tensor
            Shape (n, n_outputs), float, for "regression" and "binary";
            shape (n,), int64 class indices, for "multiclass".
        """
        return self.record(params1) - self.record(params2)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def rows_where(mask):
    """Return the indices of the true entries of a boolean vector."""
    return mask.nonzero(as_tuple=True)[0]
