# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Self-supervised base objectives: projectors, predictors and losses in pure torch."""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

PREDICTOR_BASES = ("simsiam", "byol")
MOMENTUM_BASES = ("byol", "moco")
MOCO_MOMENTUM = 0.999
MOCO_QUEUE_SIZE = 65536


def projection_mlp(
    in_features, hidden_features, out_features, n_layers=2, last_bn=False
):
    """MLP projector or predictor: (Linear -> BN -> ReLU) * (n_layers - 1) -> Linear.

    Parameters
    ----------
    in_features, hidden_features, out_features : int
        Input, hidden and output widths.
    n_layers : int, default=2
        Number of Linear layers (at least 1).
    last_bn : bool, default=False
        Add a BatchNorm without affine parameters after the last Linear (the
        SimSiam projector).  Linear layers followed by BN have no bias.

    Returns
    -------
    mlp : torch.nn.Sequential
        The network.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import projection_mlp
    >>> projection_mlp(8, 8, 4)(torch.rand(3, 8)).shape
    torch.Size([3, 4])
    """
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive int, got {n_layers!r}.")
    widths = [in_features] + [hidden_features] * (n_layers - 1)
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [
            nn.Linear(fan_in, fan_out, bias=False),
            nn.BatchNorm1d(fan_out),
            nn.ReLU(inplace=True),
        ]
    layers.append(nn.Linear(widths[-1], out_features, bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_features, affine=False))
    return nn.Sequential(*layers)


def nt_xent_loss(z1, z2, temperature=0.2, *, gathered=None, offset=0):
    """SimCLR's NT-Xent over the 2B rows of both views.

    Row i's positive is the other view of the same sample; every other row
    but itself is a negative (the self-similarity is masked out).  In
    data-parallel training, ``gathered`` holds the projections of the global
    batch, so the local rows are scored against every process's negatives.

    Parameters
    ----------
    z1, z2 : torch.Tensor of shape (B, d)
        Projections of the two views (normalised inside).
    temperature : float, default=0.2
        Softmax temperature.
    gathered : tuple of two torch.Tensor of shape (N, d), default=None
        Both views' projections of the global batch, in which ``z1`` and
        ``z2`` are rows ``offset`` to ``offset + B``; None uses ``(z1, z2)``.
    offset : int, default=0
        Row of ``z1[0]`` in ``gathered``.

    Returns
    -------
    loss : torch.Tensor
        Mean over the 2B local rows, a scalar.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import nt_xent_loss
    >>> z = torch.eye(2)
    >>> round(nt_xent_loss(z, z, temperature=1.0).item(), 4)
    0.5514
    >>> halves = [nt_xent_loss(z[i:i + 1], z[i:i + 1], 1.0, gathered=(z, z), offset=i)
    ...           for i in range(2)]
    >>> round(sum(halves).item() / 2, 4)
    0.5514
    """
    if gathered is None:
        gathered = (z1, z2)
    queries = F.normalize(torch.cat([z1, z2]), dim=1)
    keys = F.normalize(torch.cat(gathered), dim=1)
    n, b = len(gathered[0]), len(z1)
    logits = queries @ keys.T / temperature
    rows = torch.arange(b, device=z1.device) + offset
    own = torch.cat([rows, rows + n])
    logits = logits.index_put(
        (torch.arange(2 * b, device=z1.device), own),
        torch.tensor(-torch.inf, device=z1.device, dtype=logits.dtype),
    )
    return F.cross_entropy(logits, torch.cat([rows + n, rows]))


def multi_positive_info_nce(z, instance, temperature=0.2, anchors=None):
    """InfoNCE with several positives per anchor (spec section 4.2).

    ``L_i = -(1/|P(i)|) sum_{q in P(i)} log(exp(s_iq/T) / sum_{k != i}
    exp(s_ik/T))`` with cosine similarities ``s``, where ``P(i)`` holds the
    other rows of the same instance; every other row is in the denominator,
    so augmented rows of other instances are extra negatives.

    Parameters
    ----------
    z : torch.Tensor of shape (N, d)
        All rows: views and their augmented features.
    instance : torch.Tensor of shape (N,)
        Instance id of every row; rows sharing an id are positives.
    temperature : float, default=0.2
        Softmax temperature.
    anchors : torch.Tensor of shape (N,), dtype bool, default=None
        Rows whose loss is averaged; ``None`` means every row with a positive.

    Returns
    -------
    loss : torch.Tensor
        Mean of ``L_i`` over the anchors, a scalar.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import multi_positive_info_nce, nt_xent_loss
    >>> z1, z2 = torch.rand(3, 4), torch.rand(3, 4)
    >>> ids = torch.arange(3).repeat(2)
    >>> torch.allclose(multi_positive_info_nce(torch.cat([z1, z2]), ids),
    ...                nt_xent_loss(z1, z2))
    True
    """
    z = F.normalize(z, dim=1)
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_mask, -torch.inf)
    log_prob = logits.log_softmax(1)
    positive = (instance[:, None] == instance[None, :]) & ~self_mask
    n_positive = positive.sum(1)
    if anchors is None:
        anchors = n_positive > 0
    if not anchors.any() or (n_positive[anchors] == 0).any():
        raise ValueError("every anchor needs at least one positive row in z.")
    per_row = -log_prob.masked_fill(~positive, 0).sum(1) / n_positive.clamp(min=1)
    return per_row[anchors].mean()


def _negative_cosine(prediction, target):
    """Mean ``-cos(prediction, sg(target))`` over rows."""
    return -F.cosine_similarity(prediction, target.detach(), dim=1).mean()


def simsiam_loss(p1, p2, z1, z2):
    """SimSiam's ``-1/2 [cos(p1, sg z2) + cos(p2, sg z1)]``, means over rows.

    Parameters
    ----------
    p1, p2 : torch.Tensor of shape (B, d)
        Predictor outputs of the two views.
    z1, z2 : torch.Tensor of shape (B, d)
        Projector outputs of the two views; no gradient flows into them.

    Returns
    -------
    loss : torch.Tensor
        A scalar in [-1, 1].

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import simsiam_loss
    >>> z = torch.rand(4, 3)
    >>> round(simsiam_loss(z, z, z, z).item(), 4)
    -1.0
    """
    return 0.5 * (_negative_cosine(p1, z2) + _negative_cosine(p2, z1))


def byol_loss(p1, p2, t1, t2):
    """BYOL's ``-2 [mean cos(p1, sg t2) + mean cos(p2, sg t1)]``.

    Equal to the paper's symmetrised ``||p/|p| - t/|t| ||^2`` up to the
    constant 4.

    Parameters
    ----------
    p1, p2 : torch.Tensor of shape (B, d)
        Online predictor outputs of the two views.
    t1, t2 : torch.Tensor of shape (B, d)
        Target-network projections of the two views; no gradient flows into
        them.

    Returns
    -------
    loss : torch.Tensor
        A scalar in [-4, 4].

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import byol_loss
    >>> z = torch.rand(4, 3)
    >>> round(byol_loss(z, z, z, z).item(), 4)
    -4.0
    """
    return 2 * (_negative_cosine(p1, t2) + _negative_cosine(p2, t1))


def byol_momentum(epoch, max_epochs, base_momentum=0.996):
    """BYOL's target momentum, rising from ``base_momentum`` to 1 along a cosine.

    ``m = 1 - (1 - base_momentum) (cos(pi (epoch - 1) / max_epochs) + 1) / 2``.

    Parameters
    ----------
    epoch : int
        Current epoch, counted from 1.
    max_epochs : int
        Number of epochs.
    base_momentum : float, default=0.996
        Momentum of the first epoch.

    Returns
    -------
    momentum : float
        Rises from ``base_momentum`` towards 1 along a half cosine.

    Examples
    --------
    >>> from skfeat.nn import byol_momentum
    >>> byol_momentum(1, 10), byol_momentum(6, 10)
    (0.996, 0.998)
    """
    if not 1 <= epoch <= max_epochs:
        raise ValueError(
            f"epoch must be in [1, max_epochs={max_epochs}], got {epoch!r}."
        )
    cosine = (math.cos(math.pi * (epoch - 1) / max_epochs) + 1) / 2
    return 1 - (1 - base_momentum) * cosine


@torch.no_grad()
def momentum_update_(target, online, momentum):
    """In place, ``theta_target <- m theta_target + (1 - m) theta_online``.

    Parameters only: each network keeps its own BatchNorm statistics, as in
    the MoCo and BYOL reference code.

    Parameters
    ----------
    target : torch.nn.Module
        Momentum (key or target) network, updated in place.
    online : torch.nn.Module
        Network trained by gradient, of the same architecture.
    momentum : float
        ``m`` in [0, 1].

    Returns
    -------
    target : torch.nn.Module
        The updated ``target``.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import momentum_update_
    >>> target, online = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    >>> _ = torch.nn.init.zeros_(target.weight), torch.nn.init.ones_(online.weight)
    >>> momentum_update_(target, online, 0.9).weight
    Parameter containing:
    tensor([[0.1000]], requires_grad=True)
    """
    if not 0 <= momentum <= 1:
        raise ValueError(f"momentum must be in [0, 1], got {momentum!r}.")
    target_params, online_params = list(target.parameters()), list(online.parameters())
    if [p.shape for p in target_params] != [p.shape for p in online_params]:
        raise ValueError("target and online must have the same parameter shapes.")
    for target_param, online_param in zip(target_params, online_params):
        target_param.lerp_(online_param, 1 - momentum)
    return target


class MoCoQueue(nn.Module):
    """Queue of MoCo keys, a buffer started as random unit vectors.

    Parameters
    ----------
    dim : int
        Key width.
    size : int, default=65536
        Number of keys K.
    generator : torch.Generator, default=None
        Source of the initial keys.

    Attributes
    ----------
    keys : torch.Tensor of shape (size, dim)
        The queue, unit rows.
    pointer : torch.Tensor
        Index where the next key is written (an int64 scalar buffer).

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import MoCoQueue
    >>> queue = MoCoQueue(4, size=6)
    >>> queue.enqueue(torch.rand(4, 4))
    >>> int(queue.pointer)
    4
    """

    def __init__(self, dim, size=65536, generator=None):
        super().__init__()
        keys = F.normalize(torch.randn(size, dim, generator=generator), dim=1)
        self.register_buffer("keys", keys)
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys):
        """Replace the oldest entries by ``keys`` (normalised, no gradient).

        Parameters
        ----------
        keys : torch.Tensor of shape (B, dim)
            The momentum encoder's keys of the batch.
        """
        keys = F.normalize(keys.detach(), dim=1)[-len(self.keys) :]
        slots = (self.pointer + torch.arange(len(keys), device=keys.device)) % len(
            self.keys
        )
        self.keys[slots] = keys.to(self.keys.dtype)
        self.pointer.copy_((self.pointer + len(keys)) % len(self.keys))


def moco_loss(q, k, queue, temperature=0.2):
    """MoCo's InfoNCE, one direction: query q against its key k and the queue.

    Parameters
    ----------
    q : torch.Tensor of shape (B, d)
        Queries from the online encoder (view 1).
    k : torch.Tensor of shape (B, d)
        Keys from the momentum encoder (view 2); no gradient flows into them.
    queue : torch.Tensor of shape (K, d)
        Negative keys, unit rows.
    temperature : float, default=0.2
        Softmax temperature.

    Returns
    -------
    loss : torch.Tensor
        Cross-entropy of the positive logit against ``[q.k, q.queue]``, a scalar.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import moco_loss
    >>> q = torch.eye(2)
    >>> round(moco_loss(q, q, -q, temperature=1.0).item(), 4)
    0.4076
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k.detach(), dim=1)
    positive = (q * k).sum(1, keepdim=True)
    logits = torch.cat([positive, q @ queue.detach().T], 1) / temperature
    return F.cross_entropy(
        logits, torch.zeros(len(q), dtype=torch.long, device=q.device)
    )


def head_widths(base, dim):
    """Projector (hidden, out) and predictor hidden widths for a backbone of width D.

    The reference widths (spec section 2.4) are capped relative to D, so a tiny
    backbone gets proportionally small heads instead of a 2048-wide projector.
    """
    if base == "simsiam":
        out = min(2048, 4 * dim)
        return out, out, max(out // 4, 1)
    if base == "byol":
        hidden, out = min(4096, 8 * dim), min(256, dim)
        return hidden, out, hidden
    return dim, min(128, dim), None  # simclr, moco


class SSLModel(nn.Module):
    """The backbone and the trainable parts of one base objective.

    ``"simclr"`` and ``"moco"`` add a projector, ``"simsiam"`` and ``"byol"``
    a projector and a predictor, ``"byol"`` and ``"moco"`` frozen momentum
    copies of the backbone and projector, ``"moco"`` a key queue, and
    ``"supervised"`` a linear classifier.  Head widths follow the reference
    implementations, capped relative to ``dim`` for small backbones.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps a batch to pre-projector features of width ``dim``.
    base : {"simclr", "simsiam", "byol", "moco", "supervised"}
        The base objective, which decides the other parts.
    dim : int
        Width D of the backbone's features.
    n_classes : int, default=None
        Number of classes of the ``"supervised"`` classifier.
    queue_size : int, default=65536
        Number of MoCo keys.

    See Also
    --------
    projection_mlp : The projector and predictor networks.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import SSLModel
    >>> model = SSLModel(torch.nn.Linear(4, 8), "simsiam", dim=8)
    >>> model.predictor(model.projector(model.backbone(torch.rand(3, 4)))).shape
    torch.Size([3, 32])
    """

    def __init__(self, backbone, base, dim, n_classes=None, queue_size=MOCO_QUEUE_SIZE):
        super().__init__()
        self.backbone = backbone
        if base == "supervised":
            self.classifier = nn.Linear(dim, n_classes)
            return
        hidden, out, predictor_hidden = head_widths(base, dim)
        if base == "simsiam":
            self.projector = projection_mlp(dim, hidden, out, last_bn=True)
        else:
            self.projector = projection_mlp(dim, hidden, out)
        if base in PREDICTOR_BASES:
            self.predictor = projection_mlp(out, predictor_hidden, out)
        if base in MOMENTUM_BASES:
            self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        if base == "moco":
            self.queue = MoCoQueue(out, size=queue_size)
