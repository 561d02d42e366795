# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""AugSelf heads and auxiliary loss (arXiv 2111.09613) in pure torch."""

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

_LOSS_KINDS = ("regression", "binary", "multiclass")


def symmetrize(y1, y2, delta12, delta21):
    """Stack both view orders: ``[y1; y2] -> delta12`` over ``[y2; y1] -> delta21``.

    Parameters
    ----------
    y1, y2 : torch.Tensor of shape (B, D)
        Pre-projector representations of the two views.
    delta12, delta21 : torch.Tensor of shape (B, ...)
        Targets of the two orders, ``delta(w1, w2)`` and ``delta(w2, w1)``.

    Returns
    -------
    inputs : torch.Tensor of shape (2B, 2D)
        Concatenated pairs, first order on top.
    targets : torch.Tensor of shape (2B, ...)
        The matching targets.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import symmetrize
    >>> inputs, targets = symmetrize(
    ...     torch.zeros(2, 3), torch.ones(2, 3), torch.tensor([0.5, 0.1]),
    ...     torch.tensor([-0.5, -0.1]))
    >>> inputs.shape, targets
    (torch.Size([4, 6]), tensor([ 0.5000,  0.1000, -0.5000, -0.1000]))
    """
    inputs = torch.cat([torch.cat([y1, y2], 1), torch.cat([y2, y1], 1)])
    return inputs, torch.cat([delta12, delta21])


def augself_head_loss(output, target, loss_kind):
    """One head's loss: MSE on tanh, BCE with logits, or cross-entropy.

    Parameters
    ----------
    output : torch.Tensor of shape (n, n_outputs)
        Head outputs (logits).
    target : torch.Tensor
        Shape (n, n_outputs), float, for "regression" and "binary"; shape
        (n,), int64 class indices, for "multiclass".
    loss_kind : {"regression", "binary", "multiclass"}
        How the target is learnt.

    Returns
    -------
    loss : torch.Tensor
        The mean loss, a scalar.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import augself_head_loss
    >>> target = torch.tensor([[0.5], [-0.5]])
    >>> augself_head_loss(torch.zeros(2, 1), target, "regression")
    tensor(0.2500)
    """
    if loss_kind == "regression":
        return F.mse_loss(torch.tanh(output), target)
    if loss_kind == "binary":
        return F.binary_cross_entropy_with_logits(output, target)
    if loss_kind == "multiclass":
        return F.cross_entropy(output, target)
    raise ValueError(f"loss_kind must be one of {_LOSS_KINDS}, got {loss_kind!r}.")


class AugSelfHead(nn.Sequential):
    """MLP that reads two views' representations and predicts their augmentation delta.

    ``Linear(2D, hidden, no bias) -> BN -> ReLU -> Linear(hidden, hidden, no
    bias) -> BN -> ReLU -> Linear(hidden, n_outputs)``, with torch's default
    Linear initialisation, uniform(+-1/sqrt(fan_in)) (spec section 2.3).

    Parameters
    ----------
    in_features : int
        Width D of one view's pre-projector representation; the head reads 2D.
    n_outputs : int
        Target width, or number of classes.
    hidden : int, default=512
        Width of the two hidden layers.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import AugSelfHead
    >>> AugSelfHead(8, 4, hidden=16)(torch.rand(5, 16)).shape
    torch.Size([5, 4])
    """

    def __init__(self, in_features, n_outputs, hidden=512):
        super().__init__(
            nn.Linear(2 * in_features, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, n_outputs),
        )


class AugSelfHeads(nn.Module):
    """One :class:`AugSelfHead` per active augmentation type, and the weighted loss.

    Parameters
    ----------
    in_features : int
        Width D of the pre-projector representation.
    aug_types : mapping of str to (str, int)
        ``{name: (loss_kind, n_outputs)}`` for every candidate type, e.g. an
        :class:`~skfeat.transforms.AugmentationPipeline`'s ``aug_types``.
    weights : float or mapping of str to float, default=1.0
        Loss weight lambda of every type, or per type (missing types get 0).
        A type with weight <= 0 gets no head and no loss.
    hidden : int, default=512
        Hidden width of each head.

    Attributes
    ----------
    heads : torch.nn.ModuleDict
        The heads of the active types.
    weights : dict of str to float
        The positive weights of the active types.
    loss_kinds : dict of str to str
        The loss kind of each active type.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import AugSelfHeads
    >>> heads = AugSelfHeads(
    ...     8, {"crop": ("regression", 4), "flip": ("binary", 1)},
    ...     weights={"crop": 1.0, "flip": 0.0}, hidden=16)
    >>> list(heads.heads)
    ['crop']
    >>> delta = torch.rand(3, 4) - 0.5
    >>> y1, y2 = torch.rand(3, 8), torch.rand(3, 8)
    >>> total, per_type = heads(y1, y2, {"crop": (delta, -delta)})
    >>> sorted(per_type), total.shape
    (['crop'], torch.Size([]))
    """

    def __init__(self, in_features, aug_types, weights=1.0, hidden=512):
        super().__init__()
        if not isinstance(aug_types, Mapping):
            raise TypeError(
                "aug_types must map names to (loss_kind, n_outputs), "
                f"got {type(aug_types).__name__}."
            )
        if not isinstance(weights, Mapping):
            weights = dict.fromkeys(aug_types, weights)
        unknown = set(weights) - set(aug_types)
        if unknown:
            raise ValueError(
                f"weights names unknown augmentation types {sorted(unknown)}."
            )
        self.weights = {
            name: float(weights[name]) for name in aug_types if weights.get(name, 0) > 0
        }
        self.loss_kinds = {}
        heads = {}
        for name in self.weights:
            loss_kind, n_outputs = aug_types[name]
            if loss_kind not in _LOSS_KINDS:
                raise ValueError(
                    f"loss_kind of {name!r} must be one of {_LOSS_KINDS}, "
                    f"got {loss_kind!r}."
                )
            self.loss_kinds[name] = loss_kind
            heads[name] = AugSelfHead(in_features, n_outputs, hidden)
        self.heads = nn.ModuleDict(heads)

    def forward(self, y1, y2, targets):
        """Weighted auxiliary loss over the symmetrised 2B rows.

        Parameters
        ----------
        y1, y2 : torch.Tensor of shape (B, D)
            Pre-projector representations of the two views (never the
            projector output).
        targets : mapping of str to (torch.Tensor, torch.Tensor)
            ``{name: (delta(w1, w2), delta(w2, w1))}``; types without a head
            are ignored.

        Returns
        -------
        total : torch.Tensor
            ``sum_a weight_a * loss_a``, a scalar; zero if no type is active.
        per_type : dict of str to torch.Tensor
            Each active type's unweighted loss.
        """
        per_type = {}
        for name, head in self.heads.items():
            inputs, target = symmetrize(y1, y2, *targets[name])
            per_type[name] = augself_head_loss(
                head(inputs), target, self.loss_kinds[name]
            )
        total = sum(
            (self.weights[name] * loss for name, loss in per_type.items()),
            y1.new_zeros(()),
        )
        return total, per_type
