# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""SeA engines: ``SeANet`` for one probe, ``SeAMultiHeadNet`` for many at once."""

import torch

from skfeat._engine._batches import GroupedBatches
from skfeat._engine._feature import FeatureNet
from skfeat.nn import multihead_sea_logits, sea_augment


class SeANet(FeatureNet):
    """Engine of ``SeAClassifier``: every training batch is replaced by its SeA copy.

    A step computes the augmented batch's logits one of two ways, whichever
    costs fewer multiply-adds for the batch's shape (b, d): explicitly
    (:func:`~skfeat.nn.sea_augment`, two (b, b) x (b, d) products), or through
    the batch's Gram matrix (:func:`~skfeat.nn.multihead_sea_logits` with one
    head: one (b, d) x (d, b) product and (b, b) x (b, b) ones), cheaper when
    ``b < d``.  Both give the same logits up to rounding.

    Parameters
    ----------
    eta : float
        Perturbation strength; 0 trains on clean features (the plain probe).
    alpha : float
        Temperature of the semantic projection.
    **kwargs
        Passed to :class:`FeatureNet`.
    """

    def __init__(self, *args, eta=0.8, alpha=0.01, **kwargs):
        super().__init__(*args, **kwargs)
        self.eta = eta
        self.alpha = alpha

    def _mean_loss(self, logits, y):
        return self.criterion_(logits, y).mean()

    @staticmethod
    def uses_gram(n_rows, n_features):
        """Whether the Gram-matrix step is cheaper for a (n_rows, n_features) batch.

        Explicit: about ``2 b^2 d`` multiply-adds; Gram: ``b^2 d + b^3``.
        """
        return n_rows < n_features

    def augmented_logits(self, x, y, weights):
        """Logits of the SeA-augmented batch under the module's linear head."""
        multiplicity = None if bool((weights == 1).all()) else weights
        if self.eta > 0 and self.uses_gram(*x.shape):
            weight = self.module_.linear.weight
            return multihead_sea_logits(
                weight[None],
                x,
                y,
                torch.tensor([self.eta], dtype=weight.dtype, device=weight.device),
                alpha=self.alpha,
                temperature=self.criterion_.temperature,
                margin=self.criterion_.margin,
                multiplicity=None if multiplicity is None else multiplicity[None],
            )[0]
        x = sea_augment(
            self.module_,
            x,
            y,
            eta=self.eta,
            alpha=self.alpha,
            loss_fn=self._mean_loss,
            multiplicity=multiplicity,
        )
        return self.module_(x)

    def train_step_single(self, batch, **fit_params):
        """Augment the batch (SeA), then forward, weighted loss and backward."""
        self._set_training(True)
        Xi, yi = batch
        y_pred = self.augmented_logits(Xi["x"], yi, Xi["w"])
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}


class SeAMultiHeadNet(FeatureNet):
    """Engine of ``SeAClassifierCV``: many SeA heads trained in one pass.

    ``X["m"]`` is an (n, G) matrix of 0/1 row masks, e.g. the training rows
    of each fold, or all rows for the final fit; ``X["w"]`` holds the sample
    weights, read as multiplicities as in :class:`SeANet`.  Group ``g``
    holds one head per eta (head ``g * len(etas) + e``), follows the batch
    schedule a separate fit on its rows would (:class:`GroupedBatches`), and
    computes the SeA step of all its heads at once, sharing the batch's Gram
    matrix.  The loss is the sum over heads of each head's weighted mean
    loss, so every head follows its own SeA trajectory.

    Parameters
    ----------
    etas : sequence of float
        Perturbation strengths of the heads of every group.
    alpha : float
        Temperature of the semantic projection.
    **kwargs
        Passed to :class:`FeatureNet`.
    """

    gram_bytes_limit = 512 * 2**20

    def __init__(self, *args, etas=(0.8,), alpha=0.01, **kwargs):
        super().__init__(*args, **kwargs)
        self.etas = etas
        self.alpha = alpha

    def get_iterator(self, dataset, training=False):
        """Per-group schedules over the device tensors (training only)."""
        if not training:
            return super().get_iterator(dataset, training=False)
        tensors = self._cached_tensors(dataset)
        masks = tensors["m"].bool()
        group_rows = [masks[:, g].nonzero()[:, 0].cpu() for g in range(masks.shape[1])]
        if not hasattr(self, "_group_generators"):
            self._group_generators = [
                torch.Generator().manual_seed(self.seed) for _ in group_rows
            ]
        return GroupedBatches(
            tensors, group_rows, self.batch_size, self._group_generators
        )

    def _to_device_tensors(self, dataset):
        """Add the training set's Gram matrix when it fits in ``gram_bytes_limit``.

        Every batch's Gram matrix is then a gather instead of a product.  The
        limit bounds the normalised copy of the features it needs too: at
        most ``sqrt(gram_bytes_limit / 8)`` rows.
        """
        tensors = super()._to_device_tensors(dataset)
        x = tensors["x"]
        dtype = next(self.module_.parameters()).dtype
        itemsize = torch.finfo(dtype).bits // 8
        if len(x) * len(x) * itemsize <= self.gram_bytes_limit:
            normalized = self.prepare_features(x)
            tensors["gram"] = normalized @ normalized.T
        return tensors

    def initialize_module(self):
        """Build the heads and reset every group's shuffling generator."""
        super().initialize_module()
        self.__dict__.pop("_group_generators", None)
        return self

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Sum over the heads of ``y_pred`` (H, b, C) of their weighted mean loss."""
        losses = self.criterion_(
            y_pred.reshape(-1, y_pred.shape[-1]), y_true.repeat(len(y_pred))
        ).reshape(len(y_pred), -1)
        weights = X["w"]
        total = weights.sum().clamp(min=torch.finfo(weights.dtype).tiny)
        return ((losses * weights).sum(1) / total).sum()

    def train_step_single(self, batch, **fit_params):
        """SeA step of every head of every group that has a batch, then backward."""
        self._set_training(True)
        grouped, _ = batch
        tensors = grouped.tensors
        x_all, y_all, gram_all = tensors["x"], tensors["y"], tensors.get("gram")
        weight_dtype = tensors["w"].dtype
        etas = torch.as_tensor(self.etas, dtype=weight_dtype, device=self.device)
        loss = torch.zeros((), dtype=weight_dtype, device=self.device)
        for weight, rows in zip(self.module_.groups, grouped.rows):
            if rows is None:
                continue
            rows = rows.to(self.device)
            gram = None if gram_all is None else gram_all[rows[:, None], rows]
            weights = tensors["w"][rows]
            x = self.prepare_features(x_all[rows.to(x_all.device)])
            multiplicity = None
            if not bool((weights == 1).all()):
                multiplicity = weights.expand(len(weight), -1)
            logits = multihead_sea_logits(
                weight,
                x,
                y_all[rows],
                etas,
                alpha=self.alpha,
                temperature=self.criterion_.temperature,
                margin=self.criterion_.margin,
                multiplicity=multiplicity,
                gram=gram,
            )
            loss = loss + self.get_loss(
                logits, y_all[rows], X={"w": weights}, training=True
            )
        loss.backward()
        return {"loss": loss, "y_pred": None}

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_group_generators", None)
        return state
