# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""SeA for many linear heads sharing one batch, through the batch's Gram matrix.

For heads ``W_h`` (each with its own ``eta`` and row weights) on a shared batch
``X`` (b, d), the SeA-augmented rows are ``x~_i = a_i x_i + c_i u_i`` with
``u_i = sum_j pi_ij x_j``.  Everything the loss needs follows from the head's
logits ``Z = X W^T`` (b, C), the softmax weights ``pi`` (b, b) and the Gram
matrix ``K = X X^T`` computed once for all heads:

* ``g_i . x_j = ((P - E) Z^T)_ij / b`` and ``||g_i||^2 = (P - E) W W^T (P - E)^T``;
* ``||u_i||^2 = (pi K pi^T)_ii`` and ``x_i . u_i = (pi * K)_i.sum()``;
* the augmented logits are ``a * Z + c * (pi Z)``.

So a head costs O(b^3 + b C d) per step instead of the O(b^2 d) of two
(b, b) x (b, d) products, and the result is the same function as
:func:`~skfeat.nn.sea_augment` followed by the head, up to rounding.
"""

import torch
import torch.nn.functional as F

from skfeat.nn._sea import _NORM_EPS, softmax_over_others


def multihead_sea_logits(
    weight, x, y, etas, *, alpha, temperature, margin, multiplicity=None, gram=None
):
    """Logits of the SeA-augmented batch for every head, via the batch's Gram matrix.

    Parameters
    ----------
    weight : torch.Tensor of shape (H, C, d)
        The heads' weights; gradients flow to it through the returned logits.
    x : torch.Tensor of shape (b, d)
        The shared batch of L2-normalised features.
    y : torch.Tensor of shape (b,)
        Integer labels.
    etas : torch.Tensor of shape (H,)
        Per-head perturbation strength; a head with ``eta == 0`` trains on
        the clean rows.
    alpha, temperature, margin : float
        As in :class:`~skfeat.nn.SeALoss` and :func:`~skfeat.nn.semantic_weights`.
    multiplicity : torch.Tensor of shape (H, b), default=None
        Per-head row weights: a head sees row j ``multiplicity[h, j]`` times;
        zero hides the row from that head.  None means every row once.
    gram : torch.Tensor of shape (b, b), default=None
        ``x @ x.T`` when the caller has it (e.g. gathered from the Gram
        matrix of the whole training set); computed when None.

    Returns
    -------
    logits : torch.Tensor of shape (H, b, C)
        ``W_h x~_i`` for every head and row.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import multihead_sea_logits
    >>> x = torch.nn.functional.normalize(torch.randn(6, 4, dtype=torch.float64), dim=1)
    >>> weight = torch.randn(3, 2, 4, dtype=torch.float64)
    >>> logits = multihead_sea_logits(
    ...     weight, x, torch.tensor([0, 1, 0, 1, 0, 1]),
    ...     torch.tensor([0.0, 0.4, 0.8], dtype=torch.float64),
    ...     alpha=0.01, temperature=0.1, margin=0.0)
    >>> logits.shape
    torch.Size([3, 6, 2])
    """
    n_heads, n_classes, _ = weight.shape
    logits = (
        (weight.reshape(-1, x.shape[1]) @ x.T)
        .reshape(n_heads, n_classes, -1)
        .transpose(1, 2)
    )
    moving = torch.nonzero(etas > 0)[:, 0]
    if len(x) < 2 or len(moving) == 0:
        return logits
    a, c, pi = _augmentation_coefficients(
        weight[moving].detach(),
        logits[moving].detach(),
        x,
        y,
        etas[moving],
        alpha=alpha,
        temperature=temperature,
        margin=margin,
        multiplicity=None if multiplicity is None else multiplicity[moving],
        gram=x @ x.T if gram is None else gram,
    )
    augmented = logits.clone()
    augmented[moving] = a[..., None] * logits[moving] + c[..., None] * (
        pi @ logits[moving]
    )
    return augmented


@torch.no_grad()
def _augmentation_coefficients(
    weight, logits, x, y, etas, *, alpha, temperature, margin, multiplicity, gram
):
    """Return ``a, c`` (H, b) and ``pi`` (H, b, b) with ``x~_i = a_i x_i + c_i u_i``."""
    onehot = F.one_hot(y, weight.shape[1]).to(x.dtype)
    residual = torch.softmax((logits - margin * onehot) / temperature, dim=-1) - onehot
    grad_dot_x = residual @ logits.transpose(1, 2) / len(x)  # (H, b, b): g_i . x_j
    gram_w = weight @ weight.transpose(1, 2)  # (H, C, C)
    grad_norm = ((residual @ gram_w) * residual).sum(-1).clamp(min=0).sqrt() / len(x)
    scores = grad_dot_x * (1.0 / (alpha * grad_norm.clamp(min=_NORM_EPS)))[..., None]
    pi = softmax_over_others(scores, multiplicity)
    pi_gram = (pi.reshape(-1, len(x)) @ gram).reshape(pi.shape)
    u_norm = (pi_gram * pi).sum(-1).clamp(min=0).sqrt()
    x_dot_u = (pi * gram).sum(-1)
    inv_u = 1.0 / u_norm.clamp(min=_NORM_EPS)
    eta = etas[:, None]
    squared = gram.diagonal() + 2 * eta * inv_u * x_dot_u + (eta * inv_u * u_norm) ** 2
    inv_norm = 1.0 / squared.clamp(min=0).sqrt().clamp(min=_NORM_EPS)
    return inv_norm, eta * inv_u * inv_norm, pi
