# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Semantic adversarial augmentation (SeA, arXiv 2408.13351) in pure torch."""

import torch
import torch.nn.functional as F
from torch import nn

_NORM_EPS = 1e-12


def l2_normalize(x):
    """Row-wise ``x / max(||x||, 1e-12)``: zero rows stay zero.

    Parameters
    ----------
    x : torch.Tensor of shape (..., d)
        Vectors along the last axis.

    Returns
    -------
    normalized : torch.Tensor
        Unit vectors, or zeros where ``x`` is zero.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import l2_normalize
    >>> l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    tensor([[0.6000, 0.8000],
            [0.0000, 0.0000]])
    """
    return F.normalize(x, dim=-1, eps=_NORM_EPS)


class SeALoss(nn.Module):
    """Margin-shifted, temperature-scaled cross-entropy of SeA.

    ``loss = temperature * CE((logits - margin * onehot(y)) / temperature, y)``.
    The outer ``temperature`` cancels the inner one in the gradient, so
    gradients have plain cross-entropy scale while the softmax is sharper.

    Parameters
    ----------
    temperature : float, default=0.1
        Softmax temperature (the paper's lambda).
    margin : float, default=0.0
        Subtracted from the true-class logit (the paper's delta).
    reduction : {"mean", "none"}, default="mean"
        Average over the batch, or one loss per row.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import SeALoss
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> round(SeALoss(temperature=1.0)(logits, torch.tensor([0, 1])).item(), 4)
    0.2201
    """

    def __init__(self, temperature=0.1, margin=0.0, reduction="mean"):
        super().__init__()
        self.temperature = temperature
        self.margin = margin
        self.reduction = reduction

    def forward(self, logits, y):
        """Compute the loss of ``logits`` against integer labels ``y``.

        Parameters
        ----------
        logits : torch.Tensor of shape (n_samples, n_classes)
            Class scores.
        y : torch.Tensor of shape (n_samples,), dtype int64
            True class indices.

        Returns
        -------
        loss : torch.Tensor
            A scalar with ``reduction="mean"``, else one loss per row, of shape
            (n_samples,).
        """
        if self.margin:
            logits = logits - self.margin * F.one_hot(y, logits.shape[1]).to(
                logits.dtype
            )
        losses = self.temperature * F.cross_entropy(
            logits / self.temperature, y, reduction="none"
        )
        return losses.mean() if self.reduction == "mean" else losses


def semantic_weights(x, grad, alpha=0.01, multiplicity=None):
    """Softmax weights of each row's ascent direction over the *other* rows.

    With ``g = l2_normalize(grad)``, ``pi_ij = softmax_j(g_i . x_j / alpha)``
    over the rows ``j != i``: the diagonal is zero and each row sums to one.

    Parameters
    ----------
    x : torch.Tensor of shape (b, d)
        The batch of L2-normalised features.
    grad : torch.Tensor of shape (b, d)
        Gradient of the batch loss with respect to ``x``.
    alpha : float, default=0.01
        Softmax temperature; small values approach a hard choice of the most
        gradient-aligned other row.
    multiplicity : torch.Tensor of shape (b,), default=None
        Sample weights read as multiplicities: row ``j`` counts
        ``multiplicity[j]`` times among the others, and ``multiplicity[i] - 1``
        times for row ``i`` itself (its other copies), so integer weights
        equal repeated rows.  None means one copy of every row.

    Returns
    -------
    weights : torch.Tensor of shape (b, b)
        Row-stochastic weights; a row with no other row to move toward is
        all zeros.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import semantic_weights
    >>> semantic_weights(torch.eye(3), torch.zeros(3, 3))
    tensor([[0.0000, 0.5000, 0.5000],
            [0.5000, 0.0000, 0.5000],
            [0.5000, 0.5000, 0.0000]])
    """
    scores = l2_normalize(grad) @ x.T / alpha
    if multiplicity is None and len(x) < 2:
        return torch.zeros_like(scores)
    return softmax_over_others(scores, multiplicity)


def softmax_over_others(scores, multiplicity=None):
    """Row softmax of ``scores`` (..., b, b) over the columns ``j != i``.

    Column ``j`` counts ``multiplicity[..., j]`` times and column ``i`` counts
    ``multiplicity[..., i] - 1`` times in row ``i``; None means once each (the
    diagonal is excluded; ``scores`` is modified in place).  A row with no
    other column gets all-zero weights.  Shared by :func:`semantic_weights`
    and the multi-head SeA step.
    """
    if multiplicity is None:
        scores.diagonal(dim1=-2, dim2=-1).fill_(-torch.inf)
        return torch.softmax(scores, dim=-1)
    eye = torch.eye(scores.shape[-1], dtype=scores.dtype, device=scores.device)
    others = (multiplicity.to(scores.dtype)[..., None, :] - eye).clamp(min=0)
    scores = scores + others.log()
    has_other = torch.isfinite(scores).any(dim=-1, keepdim=True)
    return torch.softmax(scores.masked_fill(~has_other, 0.0), dim=-1) * has_other


def semantic_directions(x, grad, alpha=0.01, multiplicity=None):
    """Project each row's ascent direction onto the other rows of the batch.

    ``v_i = l2_normalize(sum_j pi_ij x_j)`` with the weights of
    :func:`semantic_weights`.

    Parameters
    ----------
    x : torch.Tensor of shape (b, d)
        The batch of L2-normalised features.
    grad : torch.Tensor of shape (b, d)
        Gradient of the batch loss with respect to ``x``.
    alpha : float, default=0.01
        Softmax temperature of the projection.
    multiplicity : torch.Tensor of shape (b,), default=None
        See :func:`semantic_weights`.

    Returns
    -------
    directions : torch.Tensor of shape (b, d)
        Unit directions; a row with no other row to move toward is zero.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import semantic_directions
    >>> x = torch.eye(3)
    >>> grad = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    >>> semantic_directions(x, grad, alpha=1e-3)
    tensor([[0., 1., 0.],
            [1., 0., 0.],
            [1., 0., 0.]])
    """
    return l2_normalize(semantic_weights(x, grad, alpha, multiplicity) @ x)


def sea_perturb(x, directions, eta=0.8):
    """Move features along ``directions`` and project back to the sphere.

    Parameters
    ----------
    x : torch.Tensor of shape (b, d)
        L2-normalised features; not modified.
    directions : torch.Tensor of shape (b, d)
        Unit directions, e.g. from :func:`semantic_directions`.
    eta : float, default=0.8
        Step size.

    Returns
    -------
    perturbed : torch.Tensor of shape (b, d)
        ``l2_normalize(x + eta * directions)``.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import sea_perturb
    >>> sea_perturb(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), eta=1.0)
    tensor([[0.7071, 0.7071]])
    """
    return l2_normalize(x + eta * directions)


def sea_augment(head, x, y, *, eta, alpha, loss_fn, multiplicity=None):
    """Return the SeA-augmented copy of a batch for a linear ``head``.

    Computes the gradient of the mean batch loss with respect to ``x`` (the
    head's parameters are held fixed and receive no gradient), projects it
    with :func:`semantic_directions` and steps with :func:`sea_perturb`.
    Batches of one row are returned unchanged.

    Parameters
    ----------
    head : callable
        Maps features (b, d) to logits (b, C).
    x : torch.Tensor of shape (b, d)
        L2-normalised features.
    y : torch.Tensor of shape (b,)
        Integer labels.
    eta, alpha : float
        Step size and projection temperature.
    loss_fn : callable
        ``loss_fn(logits, y)`` returning the mean batch loss.
    multiplicity : torch.Tensor of shape (b,), default=None
        See :func:`semantic_directions`.

    Returns
    -------
    augmented : torch.Tensor of shape (b, d)
        A new tensor; ``x`` is not modified.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import SeALoss, sea_augment
    >>> head = torch.nn.Linear(4, 2, bias=False)
    >>> x = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    >>> out = sea_augment(head, x, torch.tensor([0, 1, 0, 1, 1]), eta=0.8,
    ...                   alpha=0.01, loss_fn=SeALoss())
    >>> out.shape, bool(torch.allclose(out.norm(dim=1), torch.ones(5)))
    (torch.Size([5, 4]), True)
    """
    if len(x) < 2 or eta == 0:
        return x
    with torch.enable_grad():
        anchor = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(head(anchor), y), anchor)
    directions = semantic_directions(x.detach(), grad, alpha, multiplicity)
    return sea_perturb(x.detach(), directions, eta)
