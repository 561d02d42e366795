# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Bias-free linear classifiers: one head, or groups of heads."""

import torch
from torch import nn


class LinearHead(nn.Module):
    """A bias-free linear classifier ``s = W x``.

    Parameters
    ----------
    n_features : int
        Input width d.
    n_classes : int
        Number of classes C.
    dtype : torch.dtype, default=torch.float64
        Dtype of the weights; inputs must have the same.  The initial weights
        are drawn in float64 and rounded, so every dtype starts from the same
        draw for the same seed.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import LinearHead
    >>> head = LinearHead(n_features=4, n_classes=3)
    >>> head(torch.zeros(2, 4, dtype=torch.float64))
    tensor([[0., 0., 0.],
            [0., 0., 0.]], dtype=torch.float64, grad_fn=<MmBackward0>)
    """

    def __init__(self, n_features, n_classes, dtype=torch.float64):
        super().__init__()
        self.linear = nn.Linear(
            n_features, n_classes, bias=False, dtype=torch.float64
        ).to(dtype)

    def forward(self, x):
        """Class scores of a batch.

        Parameters
        ----------
        x : torch.Tensor of shape (n, n_features)
            Features, of the head's dtype.

        Returns
        -------
        logits : torch.Tensor of shape (n, n_classes)
            ``x @ W.T``.
        """
        return self.linear(x)


class MultiLinearHead(nn.Module):
    """Groups of bias-free linear classifiers, initialised identically.

    One parameter of shape (heads_per_group, C, d) per group, so a group that
    takes no part in a step gets no gradient, and SGD leaves it untouched (no
    momentum, no weight decay).  Every head starts from the same draw of
    ``nn.Linear``'s initialisation: the one a separate fit with the same seed
    starts from.

    Parameters
    ----------
    n_features : int
        Input width d.
    n_classes : int
        Number of classes C.
    n_groups : int
        Number of groups G.
    heads_per_group : int
        Heads in each group.
    dtype : torch.dtype, default=torch.float64
        Dtype of the weights; inputs must have the same.  The initial weights
        are drawn in float64 and rounded, so every dtype starts from the same
        draw for the same seed.

    Examples
    --------
    >>> import torch
    >>> from skfeat.nn import MultiLinearHead
    >>> heads = MultiLinearHead(4, 3, n_groups=2, heads_per_group=5)
    >>> heads(torch.ones(7, 4, dtype=torch.float64)).shape
    torch.Size([10, 7, 3])
    >>> bool((heads.weights() == heads.weights()[0]).all())
    True
    """

    def __init__(
        self, n_features, n_classes, n_groups, heads_per_group, dtype=torch.float64
    ):
        super().__init__()
        first = nn.Linear(n_features, n_classes, bias=False, dtype=torch.float64)
        first = first.to(dtype)
        self.groups = nn.ParameterList(
            nn.Parameter(first.weight.detach().repeat(heads_per_group, 1, 1))
            for _ in range(n_groups)
        )

    def forward(self, x):
        """Class scores of a batch under every head.

        Parameters
        ----------
        x : torch.Tensor of shape (n, n_features)
            Features, of the head's dtype.

        Returns
        -------
        logits : torch.Tensor of shape (n_groups * heads_per_group, n, n_classes)
            One logit matrix per head, group by group.
        """
        return torch.einsum("hcd,nd->hnc", self.weights(), x)

    def weights(self):
        """All heads' weight matrices, stacked group by group.

        Returns
        -------
        weights : torch.Tensor of shape (n_heads, n_classes, n_features)
            ``n_heads = n_groups * heads_per_group``; head
            ``g * heads_per_group + h`` is head ``h`` of group ``g``.
        """
        return torch.cat(list(self.groups))
