# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""A chain of parametric augmentations with per-type parameter records."""

import torch

from skfeat.transforms._base import ParametricAugmentation


class AugmentationPipeline:
    """Apply parametric augmentations in order, keeping each one's parameters.

    Parameters
    ----------
    augmentations : sequence of ParametricAugmentation
        The chain, applied in order; their ``name`` attributes must differ.

    Attributes
    ----------
    aug_types : dict of str to (str, int)
        ``(loss_kind, n_outputs)`` of each augmentation, by name: the
        ``aug_types`` argument of :class:`skfeat.nn.AugSelfHeads`.

    Notes
    -----
    When a ``"crop"`` is followed by a ``"flip"``, :meth:`sample` copies each
    view's flip flag into the crop's ``mirrored`` column, so the crop record
    mirrors the centre with that view's own flag (spec section 2.2).  Images
    may be uint8 (scaled to [0, 1] floats first) or float in [0, 1].

    Examples
    --------
    >>> import torch
    >>> from skfeat.transforms import (
    ...     AugmentationPipeline, ColorJitter, RandomHorizontalFlip, RandomResizedCrop)
    >>> pipe = AugmentationPipeline(
    ...     [RandomResizedCrop(8), RandomHorizontalFlip(), ColorJitter()])
    >>> gen = torch.Generator().manual_seed(0)
    >>> p1, p2 = pipe.sample(4, gen), pipe.sample(4, gen)
    >>> pipe.apply(torch.rand(4, 3, 12, 12), p1).shape
    torch.Size([4, 3, 8, 8])
    >>> {name: tuple(t.shape) for name, t in pipe.delta(p1, p2).items()}
    {'crop': (4, 4), 'flip': (4, 1), 'color': (4, 4)}
    """

    def __init__(self, augmentations):
        augmentations = list(augmentations)
        for aug in augmentations:
            if not isinstance(aug, ParametricAugmentation):
                raise TypeError(
                    "augmentations must be ParametricAugmentation instances, "
                    f"got {type(aug).__name__}."
                )
        names = [aug.name for aug in augmentations]
        if len(set(names)) != len(names):
            raise ValueError(f"augmentation names must be unique, got {names}.")
        self.augmentations = augmentations

    @property
    def aug_types(self):
        """Loss kind and target width of each augmentation type, by name.

        Returns
        -------
        aug_types : dict of str to (str, int)
            ``{name: (loss_kind, n_outputs)}``, the ``aug_types`` argument of
            :class:`skfeat.nn.AugSelfHeads`.
        """
        return {aug.name: (aug.loss_kind, aug.n_outputs) for aug in self.augmentations}

    def sample(self, n, generator=None):
        """Draw every augmentation's parameters for ``n`` samples.

        Parameters
        ----------
        n : int
            Number of samples.
        generator : torch.Generator, default=None
            Source of randomness; ``None`` uses torch's global generator.

        Returns
        -------
        params : dict of str to torch.Tensor
            Each augmentation's parameters, by name, in chain order.
        """
        params = {aug.name: aug.sample(n, generator) for aug in self.augmentations}
        names = list(params)
        if "crop" in params and "flip" in names[names.index("crop") :]:
            params["crop"] = params["crop"].clone()
            params["crop"][:, 4] = params["flip"][:, 0]
        return params

    def apply(self, x, params):
        """Augment a batch with the parameters from :meth:`sample`.

        Parameters
        ----------
        x : torch.Tensor of shape (n, ...)
            The batch; uint8 images are scaled to [0, 1] floats first.
        params : dict of str to torch.Tensor
            Output of :meth:`sample` for the same ``n``.

        Returns
        -------
        x_aug : torch.Tensor
            The augmented batch, on ``x``'s device.
        """
        if x.dtype == torch.uint8:
            x = x.float() / 255
        for aug in self.augmentations:
            x = aug.apply(x, params[aug.name])
        return x

    def delta(self, params1, params2):
        """AugSelf targets of two views, by augmentation name.

        Parameters
        ----------
        params1, params2 : dict of str to torch.Tensor
            The two views' parameters from :meth:`sample`.

        Returns
        -------
        targets : dict of str to torch.Tensor
            ``aug.delta(params1[name], params2[name])`` for each augmentation.
        """
        return {
            aug.name: aug.delta(params1[aug.name], params2[aug.name])
            for aug in self.augmentations
        }

    def __repr__(self):
        return f"{type(self).__name__}({self.augmentations!r})"
