# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Two-view SSL engine plus a steered equivariance loss on a third view."""

import torch

from skfeat._engine._ssl import SSLNet
from skfeat.nn import equivariance_mse_loss, equivariance_nce_loss

EQUIVARIANCE_LOSSES = ("nce", "mse")


class EquivariantNet(SSLNet):
    """Engine of ``EquivariantExtractor``: base loss on two views, equivariance on g.

    Each step draws two views ``v1, v2`` of the batch with the non-steered
    ``augmentations`` and a steered parameter vector g per sample, and stacks
    a third view ``T_g v1``.  The loss is the base objective on ``(v1, v2)``
    plus ``equivariance_weight`` times the equivariance loss between
    ``M(g) f(v1)`` and ``f(T_g v1)`` (spec section 3.3); it is recorded as
    ``equivariance`` for every batch.  The steering map ``steering_`` is
    built from ``steering`` and the ``steering__*`` parameters.

    Parameters
    ----------
    steering : type
        A steering module class of :mod:`skfeat.nn` (``forward(z, g)``).
    steered_augmentation : skfeat.transforms.SteeredAugmentation
        ``T_g`` and the distribution of g.
    equivariance_loss : {"nce", "mse"}, default="nce"
        The equivariance loss of :mod:`skfeat.nn`.
    equivariance_weight : float, default=1.0
        Its weight.
    **kwargs
        Passed to :class:`SSLNet` (with no AugSelf head).
    """

    def __init__(
        self,
        *args,
        steering,
        steered_augmentation,
        equivariance_loss="nce",
        equivariance_weight=1.0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.steering = steering
        self.steered_augmentation = steered_augmentation
        self.equivariance_loss = equivariance_loss
        self.equivariance_weight = equivariance_weight

    def initialize_module(self):
        """Build the SSL model, the steering map and the generators."""
        super().initialize_module()
        self.steering_ = self.steering(**self.get_params_for("steering"))
        return self

    def _views(self, x):
        """Return views ``v1``, ``v2`` and ``T_g v1``, stacked, and the drawn g."""
        views, _ = super()._views(x)
        g = self._draw(self.steered_augmentation.sample, len(x)).to(x.device)
        steered = self.steered_augmentation.apply(views[: len(x)], g)
        return torch.cat([views, steered]), g

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Return the base loss plus the weighted equivariance loss.

        ``y_pred`` holds the three views' features and the views, ``X`` the
        steered parameters g of the third view.
        """
        y1, y2, y_steered = y_pred["features"]
        views = y_pred["views"][: 2 * len(y1)]
        loss = self._base_loss(y1, y2, views, y_true)
        # Features are float32; the matrix exponential stays so, outside autocast.
        with torch.autocast(y1.device.type, enabled=False):
            predicted = self.steering_(y1, X)
            if self.equivariance_loss == "nce":
                gathered = self._gathered(y_steered)
                equivariance = equivariance_nce_loss(
                    predicted,
                    y_steered,
                    self.temperature,
                    gathered=gathered,
                    offset=0 if gathered is None else self._shard.offset,
                )
            else:
                equivariance = equivariance_mse_loss(predicted, y_steered)
        self._record("equivariance", equivariance)
        return loss + self.equivariance_weight * equivariance

    def get_training_state(self):
        """Return the :class:`SSLNet` state and the steering map's weights."""
        return {**super().get_training_state(), "steering": self.steering_.state_dict()}

    def set_training_state(self, state):
        """Restore a state from :meth:`get_training_state`."""
        super().set_training_state(state)
        self.steering_.load_state_dict(state["steering"])
