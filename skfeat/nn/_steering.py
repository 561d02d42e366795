# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Steering maps M(g) that act linearly on embeddings, and equivariance losses."""

import itertools

import torch
import torch.nn.functional as F
from torch import nn

D4_ELEMENTS = tuple(itertools.product(range(4), range(2)))  # (quarter turns, flip)


def default_block_size(dim):
    """Full generators up to 256 features, 64-feature blocks beyond (spec 3.2)."""
    return dim if dim <= 256 else 64


class _Steering(nn.Module):
    """Base of the steering maps: ``forward(z, g)`` steers row i by ``M(g_i)``."""

    def matrix(self, g):
        """Return ``M(g)`` for one parameter vector ``g``.

        Steering a batch by one ``g`` is then a single matrix product.

        Parameters
        ----------
        g : torch.Tensor of shape (n_params,)
            The parameter vector.

        Returns
        -------
        matrix : torch.Tensor of shape (dim, dim)
            ``M(g)``.
        """
        eye = torch.eye(self.dim, dtype=g.dtype, device=g.device)
        return self(eye, g.expand(self.dim, -1)).T

    def steer_all(self, z, g):
        """Steer every row of ``z`` by the same ``g``: ``z M(g)^T``.

        Parameters
        ----------
        z : torch.Tensor of shape (n, dim)
            Embeddings.
        g : torch.Tensor of shape (n_params,)
            The parameter vector.

        Returns
        -------
        steered : torch.Tensor of shape (n, dim)
            ``M(g) z_i`` in row i.
        """
        return z @ self.matrix(g).T


class ExpmSteering(_Steering):
    """Lie-exponential steering ``M(g) = expm(sum_j g_j A_j)``.

    The generators start at 0, so ``M(0)`` is the identity and
    ``M(g) M(-g) = I`` for every ``g``.  Large embeddings use block-diagonal
    generators (``block_size``; a last, shorter block when it does not divide
    ``dim``) or low-rank ones ``A_j = U_j V_j^T`` (``rank``), whose
    exponential ``I + U phi(V^T U) V^T`` costs ``O(d (k r) + (k r)^3)``.

    Parameters
    ----------
    dim : int
        Embedding width d.
    n_params : int
        Number k of augmentation parameters.
    block_size : int, default=None
        Width of the diagonal blocks; None is :func:`default_block_size`.
    rank : int, default=None
        Rank of each generator; when set, ``block_size`` is ignored.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import ExpmSteering
    >>> steering = ExpmSteering(dim=6, n_params=2)
    >>> z = torch.randn(3, 6)
    >>> torch.equal(steering(z, torch.zeros(3, 2)), z)
    True
    """

    def __init__(self, dim, n_params, block_size=None, rank=None):
        super().__init__()
        self.dim, self.n_params, self.rank = dim, n_params, rank
        if rank is not None:
            self.left = nn.Parameter(torch.randn(n_params, dim, rank) / dim**0.5)
            self.right = nn.Parameter(torch.zeros(n_params, dim, rank))
            return
        size = min(block_size or default_block_size(dim), dim)
        n_blocks = -(-dim // size)
        self.block_size = size
        self.generators = nn.Parameter(torch.zeros(n_params, n_blocks, size, size))
        # The padded tail of the last block stays outside the generators.
        valid = torch.arange(n_blocks * size) < dim
        valid = valid.view(n_blocks, size)
        self.register_buffer(
            "mask", (valid[:, :, None] & valid[:, None, :]).float(), persistent=False
        )

    def forward(self, z, g):
        """Steer each row ``z_i`` by ``M(g_i)``.

        Parameters
        ----------
        z : torch.Tensor of shape (n, dim)
            Embeddings.
        g : torch.Tensor of shape (n, n_params)
            One parameter vector per row.

        Returns
        -------
        steered : torch.Tensor of shape (n, dim)
            ``M(g_i) z_i`` in row i.
        """
        if self.rank is not None:
            return self._low_rank(z, g)
        n, size = len(z), self.block_size
        padded = F.pad(z, (0, self.generators.shape[1] * size - self.dim))
        blocks = padded.view(n, -1, size)
        algebra = torch.einsum("nk,kbij->nbij", g.to(z.dtype), self.generators)
        steered = torch.einsum(
            "nbij,nbj->nbi", torch.linalg.matrix_exp(algebra * self.mask), blocks
        )
        return steered.reshape(n, -1)[:, : self.dim]

    def matrix(self, g):
        """Return ``M(g)``: the block-diagonal (or low-rank) exponential.

        Parameters
        ----------
        g : torch.Tensor of shape (n_params,)
            The parameter vector.

        Returns
        -------
        matrix : torch.Tensor of shape (dim, dim)
            ``M(g)``.
        """
        if self.rank is not None:
            return super().matrix(g)
        algebra = torch.einsum(
            "k,kbij->bij", g.to(self.generators.dtype), self.generators
        )
        blocks = torch.linalg.matrix_exp(algebra * self.mask)
        return torch.block_diag(*blocks)[: self.dim, : self.dim]

    def _low_rank(self, z, g):
        # expm(U W^T) = I + U phi(W^T U) W^T, with phi(X) = (e^X - I) X^{-1} read
        # off the exponential of the block matrix [[X, I], [0, 0]].
        n, k, r = len(z), self.n_params, self.rank
        left = self.left.permute(1, 0, 2).reshape(self.dim, k * r)
        right = self.right.permute(1, 0, 2).reshape(self.dim, k * r)
        weighted = right.unsqueeze(0) * g.to(z.dtype).repeat_interleave(r, 1)[:, None]
        inner = torch.einsum("ndm,dl->nml", weighted, left)
        width = k * r
        block = z.new_zeros(n, 2 * width, 2 * width)
        block[:, :width, :width] = inner
        block[:, :width, width:] = torch.eye(width, dtype=z.dtype, device=z.device)
        phi = torch.linalg.matrix_exp(block)[:, :width, width:]
        coefficients = torch.einsum("ndm,nd->nm", weighted, z)
        return z + torch.einsum("nml,nl,dm->nd", phi, coefficients, left)


class HyperSteering(_Steering):
    """Low-rank steering ``M(g) = I + U diag(h(g)) V^T`` without group structure.

    ``h`` is a small perceptron shifted so that ``h(0) = 0``, hence
    ``M(0) = I`` exactly.

    Parameters
    ----------
    dim : int
        Embedding width d.
    n_params : int
        Number k of augmentation parameters.
    rank : int, default=None
        Rank r of the correction; None uses ``min(dim, 16)``.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import HyperSteering
    >>> steering = HyperSteering(dim=6, n_params=2)
    >>> z = torch.randn(3, 6)
    >>> torch.equal(steering(z, torch.zeros(3, 2)), z)
    True
    """

    def __init__(self, dim, n_params, rank=None):
        super().__init__()
        rank = rank or min(dim, 16)
        self.dim = dim
        self.left = nn.Parameter(torch.randn(dim, rank) / dim**0.5)
        self.right = nn.Parameter(torch.zeros(dim, rank))
        self.hyper = nn.Sequential(
            nn.Linear(n_params, 4 * rank), nn.Tanh(), nn.Linear(4 * rank, rank)
        )

    def forward(self, z, g):
        """Steer each row ``z_i`` by ``M(g_i)``.

        Parameters
        ----------
        z : torch.Tensor of shape (n, dim)
            Embeddings.
        g : torch.Tensor of shape (n, n_params)
            One parameter vector per row.

        Returns
        -------
        steered : torch.Tensor of shape (n, dim)
            ``M(g_i) z_i`` in row i.
        """
        g = g.to(z.dtype)
        gains = self.hyper(g) - self.hyper(torch.zeros_like(g))
        return z + ((z @ self.right) * gains) @ self.left.T


class DiscreteSteering(_Steering):
    """One learned map per element of a finite group; the identity element is I.

    ``g`` holds one integer column per factor of the group (for instance
    quarter turns in {0..3} and a flip in {0, 1}); the element whose columns
    are all zero is the identity.

    Parameters
    ----------
    dim : int
        Embedding width d.
    sizes : tuple of int
        Number of values of each column of ``g``.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import DiscreteSteering
    >>> steering = DiscreteSteering(dim=4, sizes=(4, 2))
    >>> z = torch.randn(2, 4)
    >>> torch.equal(steering(z, torch.zeros(2, 2)), z)
    True
    """

    def __init__(self, dim, sizes):
        super().__init__()
        self.dim = dim
        self.register_buffer(
            "strides", _strides(sizes).to(torch.long), persistent=False
        )
        n_elements = int(torch.tensor(sizes).prod())
        self.deltas = nn.Parameter(torch.zeros(n_elements - 1, dim, dim))

    def forward(self, z, g):
        """Steer each row ``z_i`` by the map of element ``g_i``.

        Parameters
        ----------
        z : torch.Tensor of shape (n, dim)
            Embeddings.
        g : torch.Tensor of shape (n, len(sizes))
            One group element per row, as integer-valued columns.

        Returns
        -------
        steered : torch.Tensor of shape (n, dim)
            ``M(g_i) z_i`` in row i.
        """
        index = self._element_index(g)
        steered = z.clone()
        for element in index.unique().tolist():
            if element:  # element 0, the identity, has no delta
                rows = index == element
                steered[rows] += z[rows] @ self.deltas[element - 1].T
        return steered

    def matrix(self, g):
        """Return the map of the element ``g``: one (dim, dim) matrix, no batch.

        Parameters
        ----------
        g : torch.Tensor of shape (len(sizes),)
            One group element, as integer-valued columns.

        Returns
        -------
        matrix : torch.Tensor of shape (dim, dim)
            ``I`` for the identity element, ``I + delta`` otherwise.
        """
        element = int(self._element_index(g[None]))
        eye = torch.eye(self.dim, dtype=self.deltas.dtype, device=self.deltas.device)
        return eye if element == 0 else eye + self.deltas[element - 1]

    def _element_index(self, g):
        return (g.to(torch.long) * self.strides).sum(1)


def _strides(sizes):
    strides = torch.ones(len(sizes))
    for j in range(len(sizes) - 2, -1, -1):
        strides[j] = strides[j + 1] * sizes[j + 1]
    return strides


def d4_compose(first, second):
    """Element ``first * second`` of D4, elements as (quarter turns, flip).

    An element ``(k, s)`` maps an image ``x`` to ``rot90^k(flip^s(x))``; a
    flip turns a rotation into its inverse.
    """
    (k1, s1), (k2, s2) = first, second
    return ((k1 + (-1) ** s1 * k2) % 4, (s1 + s2) % 2)


def orbit_permutation(element):
    """Block order of concatenated D4-orbit features after acting by ``element``.

    Concat orbit features hold ``f(h x)`` in block ``h`` (order
    :data:`D4_ELEMENTS`); the features of ``element x`` hold
    ``f(h element x)``, the input's block ``h * element``.

    Returns
    -------
    blocks : list of int
        ``blocks[i]`` is the input block that lands in block ``i``.
    """
    return [D4_ELEMENTS.index(d4_compose(h, element)) for h in D4_ELEMENTS]


def equivariance_nce_loss(steered, target, temperature, *, gathered=None, offset=0):
    """InfoNCE between steered embeddings and the embeddings of augmented inputs.

    The positive of row i is ``target[i]``; the other rows of ``target`` are
    its negatives.  Rows are L2-normalised.  In data-parallel training,
    ``gathered`` holds the targets of the global batch, so every process's
    rows are negatives.

    Parameters
    ----------
    steered : torch.Tensor of shape (n, d)
        ``M(g_i) f(x_i)``.
    target : torch.Tensor of shape (n, d)
        ``f(T_{g_i} x_i)``.
    temperature : float
        Softmax temperature.
    gathered : torch.Tensor of shape (N, d), default=None
        Targets of the global batch, holding ``target`` at rows ``offset``
        to ``offset + n``; None uses ``target``.
    offset : int, default=0
        Row of ``target[0]`` in ``gathered``.

    Returns
    -------
    loss : torch.Tensor
        Scalar mean over rows.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import equivariance_nce_loss
    >>> z = torch.eye(3)
    >>> bool(equivariance_nce_loss(z, z, 0.1) < 1e-3)
    True
    >>> bool(equivariance_nce_loss(z[1:], z[1:], 0.1, gathered=z, offset=1) < 1e-3)
    True
    """
    if gathered is None:
        gathered = target
    logits = F.normalize(steered, dim=1) @ F.normalize(gathered, dim=1).T
    labels = torch.arange(len(steered), device=steered.device) + offset
    return F.cross_entropy(logits / temperature, labels)


def equivariance_mse_loss(steered, target):
    """Mean squared distance of the L2-normalised rows (needs an anti-collapse base).

    Parameters
    ----------
    steered : torch.Tensor of shape (n, d)
        ``M(g_i) f(x_i)``.
    target : torch.Tensor of shape (n, d)
        ``f(T_{g_i} x_i)``.

    Returns
    -------
    loss : torch.Tensor
        Scalar mean over rows of ``||n(steered_i) - n(target_i)||^2``.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import equivariance_mse_loss
    >>> float(equivariance_mse_loss(torch.ones(2, 3), 2 * torch.ones(2, 3)))
    0.0
    """
    difference = F.normalize(steered, dim=1) - F.normalize(target, dim=1)
    return difference.pow(2).sum(1).mean()
