# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Feature augmentation (spec section 4.2): nearby features made in feature space."""

import torch
import torch.nn.functional as F
from torch import nn

OPERATORS = ("gaussian", "dropout", "interpolate")
PARTNERS = ("positive", "batch")
STOP_GRADS = ("none", "input", "target")


class FeatureAugmenter(nn.Module):
    """Map each feature to a nearby one: Gaussian noise, dropout or interpolation.

    The design is skfeat's (spec section 4.1): the paper's abstract confirms
    feature augmentation for instance discrimination and instance
    similarity, not these operators.

    Parameters
    ----------
    operator : {"gaussian", "dropout", "interpolate"}, default="gaussian"
        ``"gaussian"``: ``z + strength * eps * std_batch(z)``, rescaled to
        each row's original norm (the renormalisation on the sphere);
        ``"dropout"``: ``z * m / (1 - strength)`` with ``m ~
        Bernoulli(1 - strength)``; ``"interpolate"``: ``z + mu (z_j - z)``
        with ``mu ~ U(-strength, strength)`` per row (negative ``mu``
        extrapolates).
    strength : float, default=0.1
        The noise scale sigma, the drop probability p (in [0, 1)), or the interpolation
        range a.  0 returns the features unchanged.
    partner : {"positive", "batch"}, default="positive"
        Interpolation partner ``z_j``: the other view of the same instance
        (passed to :meth:`forward`), or another instance of the batch.
    stop_grad : {"none", "input", "target"}, default="none"
        Gradient flow through the augmented features.  ``"none"``: ``A(z)``,
        gradients reach the encoder through the operator.  ``"input"``:
        ``A(sg(z))`` (partner detached too), so a loss on the augmented
        features trains only the layers after the operator (heads,
        predictor), never the encoder.  ``"target"``: ``sg(A(z))``, for use
        only as a stop-gradient target or key: instance-similarity losses
        then pair ``predictor(z1) -> sg(A(z2))`` and contrastive losses use
        the augmented rows as constant positives, so gradients reach the
        encoder only through the clean anchors.

    Notes
    -----
    The module augments whenever it is called, in train and eval mode alike:
    the training step calls it only where the loss needs augmented features.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import FeatureAugmenter
    >>> z = torch.rand(8, 16)
    >>> augment = FeatureAugmenter("dropout", strength=0.25)
    >>> augment(z, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([8, 16])
    >>> torch.equal(FeatureAugmenter(strength=0.0)(z), z)
    True
    """

    def __init__(
        self, operator="gaussian", strength=0.1, partner="positive", stop_grad="none"
    ):
        super().__init__()
        if operator not in OPERATORS:
            raise ValueError(f"operator must be one of {OPERATORS}, got {operator!r}.")
        if partner not in PARTNERS:
            raise ValueError(f"partner must be one of {PARTNERS}, got {partner!r}.")
        if stop_grad not in STOP_GRADS:
            raise ValueError(
                f"stop_grad must be one of {STOP_GRADS}, got {stop_grad!r}."
            )
        upper = 1 if operator == "dropout" else float("inf")
        if (
            isinstance(strength, bool)
            or not isinstance(strength, (int, float))
            or not (0 <= strength < upper)
        ):
            bound = "[0, 1)" if operator == "dropout" else "[0, inf)"
            raise ValueError(
                f"strength must be a number in {bound} for {operator!r}, "
                f"got {strength!r}."
            )
        self.operator = operator
        self.strength = float(strength)
        self.partner = partner
        self.stop_grad = stop_grad

    def forward(self, z, positive=None, *, generator=None):
        """Augment a batch of features.

        Parameters
        ----------
        z : torch.Tensor of shape (B, d)
            Features (encoder, projector or predictor outputs).
        positive : torch.Tensor of shape (B, d), default=None
            The other view's features, row-aligned; needed by
            ``"interpolate"`` with ``partner="positive"`` only.
        generator : torch.Generator, default=None
            Source of randomness, on ``z``'s device; ``None`` uses torch's
            global generator.

        Returns
        -------
        z_aug : torch.Tensor of shape (B, d)
            The augmented features.
        """
        if z.ndim != 2:
            raise ValueError(f"z must have shape (B, d), got {tuple(z.shape)}.")
        if self.stop_grad == "input":
            z = z.detach()
            positive = None if positive is None else positive.detach()
        z_aug = self._augment(z, positive, generator) if self.strength > 0 else z
        return z_aug.detach() if self.stop_grad == "target" else z_aug

    def _augment(self, z, positive, generator):
        if self.operator == "gaussian":
            noise = torch.randn(
                z.shape, generator=generator, device=z.device, dtype=z.dtype
            )
            std = z.std(0, correction=0, keepdim=True)
            z_aug = z + self.strength * noise * std
            return F.normalize(z_aug, dim=1) * z.norm(dim=1, keepdim=True)
        if self.operator == "dropout":
            keep = (
                torch.rand(z.shape, generator=generator, device=z.device)
                >= self.strength
            )
            return z * keep / (1 - self.strength)
        if self.partner == "positive":
            if positive is None or positive.shape != z.shape:
                raise ValueError(
                    "interpolate with partner='positive' needs positive= the other "
                    f"view's features of shape {tuple(z.shape)}."
                )
            other = positive
        else:
            # A random derangement: row order[i] is paired with row order[i + 1].
            order = torch.randperm(len(z), generator=generator, device=z.device)
            other = torch.empty_like(z)
            other[order] = z[order.roll(-1)]
        mu = torch.rand(len(z), 1, generator=generator, device=z.device, dtype=z.dtype)
        mu = (2 * mu - 1) * self.strength
        return z + mu * (other - z)
