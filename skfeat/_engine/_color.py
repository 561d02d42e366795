# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Fit of the 3 x 3 colour maps of colour-bilinear embeddings."""

import math

import torch
from skorch import NeuralNet

from skfeat.nn import ColorSteering, RelativeError

COLOR_STEPS = 300  # Adam steps: the relative error is flat after ~200 on photos
COLOR_LR = 0.05
COLOR_BATCH = 512


def fit_color_steering(embeddings, params, targets, *, seed, device):
    """Fit the generators of a :class:`~skfeat.nn.ColorSteering` by Adam.

    Minimises the mean relative error between ``M(g_i) z_i`` and the
    embedding of the augmented image, over about 300 steps of 512 rows.

    Parameters
    ----------
    embeddings : torch.Tensor of shape (n, dim)
        Embeddings ``z_i`` of the images.
    params : torch.Tensor of shape (n, n_params)
        The augmentation parameters ``g_i``.
    targets : torch.Tensor of shape (n, dim)
        Embeddings of the augmented images ``T_{g_i} x_i``.
    seed : int
        Seed of the batch order.
    device : torch.device
        Training device.

    Returns
    -------
    net : skorch.NeuralNet
        The fitted engine; ``module_`` is the steering map, ``history`` holds
        ``train_loss`` per pass.
    """
    batches = math.ceil(len(embeddings) / COLOR_BATCH)
    net = NeuralNet(
        ColorSteering,
        module__dim=embeddings.shape[1],
        module__n_params=params.shape[1],
        criterion=RelativeError,
        optimizer=torch.optim.Adam,
        lr=COLOR_LR,
        batch_size=COLOR_BATCH,
        max_epochs=math.ceil(COLOR_STEPS / batches),
        train_split=None,
        iterator_train__shuffle=True,
        iterator_train__generator=torch.Generator().manual_seed(seed),
        device=str(device),
        verbose=0,
    )
    return net.fit({"z": embeddings, "g": params}, targets)
