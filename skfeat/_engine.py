# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Private skorch engines: training loops behind the public estimators.

Engines subclass ``skorch.NeuralNet`` and override only its sanctioned hooks
(``train_step_single``, ``get_loss``, ``get_iterator``, ``validation_step``,
``evaluation_step``, ``initialize_module``).  Users never see them: facades
hold one as ``net_``.
"""

import weakref

import torch
from skorch import NeuralNet
from torch import nn
from torch.utils.data import Subset

from skfeat.nn import multihead_sea_logits, sea_augment


class TensorBatches:
    """Iterate over mini-batches of in-memory tensors by slicing, not collating.

    skorch's default ``DataLoader`` indexes and collates sample by sample; for
    fixed feature matrices, slicing a permuted index is several times faster.

    Parameters
    ----------
    tensors : dict of str to torch.Tensor
        Aligned tensors with the same first dimension.
    batch_size : int
        Rows per batch; the last partial batch is kept.
    generator : torch.Generator, default=None
        When given, every pass draws a fresh permutation from it.
    """

    def __init__(self, tensors, batch_size, generator=None):
        self.tensors = tensors
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self):
        n = len(next(iter(self.tensors.values())))
        return -(-n // self.batch_size)

    def __iter__(self):
        n = len(next(iter(self.tensors.values())))
        order = None
        if self.generator is not None:
            order = torch.randperm(n, generator=self.generator)
        for start in range(0, n, self.batch_size):
            if order is None:
                rows = slice(start, start + self.batch_size)
            else:
                rows = order[start : start + self.batch_size]
            batch = {key: value[rows] for key, value in self.tensors.items()}
            yield batch, batch.pop("y")


class LinearHead(nn.Module):
    """A bias-free linear classifier ``s = W x`` in float64.

    Parameters
    ----------
    n_features : int
        Input width d.
    n_classes : int
        Number of classes C.
    """

    def __init__(self, n_features, n_classes):
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes, bias=False, dtype=torch.float64)

    def forward(self, x):
        """Return logits of shape (n, C)."""
        return self.linear(x)


class FeatureNet(NeuralNet):
    """Base engine for training on a fixed feature matrix.

    ``fit`` takes ``X``, a dict of aligned arrays (``"x"``: the features, plus
    per-row data such as sample weights), and integer ``y``.  Arrays travel as
    float32 and are cast to the module's dtype once per fit.  Shuffling draws
    from a generator seeded by ``seed``, never from torch's global generator.

    Parameters
    ----------
    seed : int
        Seed of the shuffling generator.
    **kwargs
        Passed to ``skorch.NeuralNet``.
    """

    def __init__(self, *args, seed=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed

    def initialize_module(self):
        """Build the module and reset the shuffling generator."""
        super().initialize_module()
        self.shuffle_generator_ = torch.Generator().manual_seed(self.seed)
        return self

    def get_iterator(self, dataset, training=False):
        """Return batches of device tensors; shuffled anew each training epoch.

        Tensors are cached while skorch holds the dataset (weak keys), so the
        feature matrix is moved to the device once per fit, not per epoch, and
        is freed with the dataset when the fit ends.
        """
        generator = self.shuffle_generator_ if training else None
        return TensorBatches(self._cached_tensors(dataset), self.batch_size, generator)

    def _cached_tensors(self, dataset):
        if not hasattr(self, "_device_tensors"):
            self._device_tensors = weakref.WeakKeyDictionary()
        if dataset not in self._device_tensors:
            self._device_tensors[dataset] = self._to_device_tensors(dataset)
        return self._device_tensors[dataset]

    def _to_device_tensors(self, dataset):
        rows = slice(None)
        if isinstance(dataset, Subset):
            rows, dataset = torch.as_tensor(dataset.indices), dataset.dataset
        dtype = next(self.module_.parameters()).dtype
        tensors = {
            key: torch.as_tensor(value)[rows].to(self.device, dtype)
            for key, value in dataset.X.items()
        }
        n = len(tensors["x"])
        y = torch.zeros(n, dtype=torch.long) if dataset.y is None else dataset.y
        tensors["y"] = torch.as_tensor(y)[rows].to(self.device)
        return tensors

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_device_tensors", None)
        return state

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Sample-weighted mean of the per-row criterion."""
        losses = self.criterion_(y_pred, y_true)
        weights = X["w"]
        return (weights * losses).sum() / weights.sum().clamp(
            min=torch.finfo(weights.dtype).tiny
        )

    def validation_step(self, batch, **fit_params):
        """Loss on clean features, without gradients."""
        self._set_training(False)
        Xi, yi = batch
        with torch.no_grad():
            y_pred = self.module_(Xi["x"])
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss, "y_pred": y_pred}

    def evaluation_step(self, batch, training=False):
        """Logits of a batch of features."""
        self.check_is_fitted()
        Xi = batch[0] if isinstance(batch, (tuple, list)) else batch
        with torch.set_grad_enabled(training):
            self._set_training(training)
            return self.module_(Xi["x"])


class SeANet(FeatureNet):
    """Engine of ``SeAClassifier``: every training batch is replaced by its SeA copy.

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

    def train_step_single(self, batch, **fit_params):
        """Augment the batch (SeA), then forward, weighted loss and backward."""
        self._set_training(True)
        Xi, yi = batch
        weights = Xi["w"]
        x = sea_augment(
            self.module_,
            Xi["x"],
            yi,
            eta=self.eta,
            alpha=self.alpha,
            loss_fn=self._mean_loss,
            multiplicity=None if bool((weights == 1).all()) else weights,
        )
        y_pred = self.module_(x)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}


class MultiLinearHead(nn.Module):
    """Groups of bias-free linear classifiers in float64, initialised identically.

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
    """

    def __init__(self, n_features, n_classes, n_groups, heads_per_group):
        super().__init__()
        first = nn.Linear(n_features, n_classes, bias=False, dtype=torch.float64)
        self.groups = nn.ParameterList(
            nn.Parameter(first.weight.detach().repeat(heads_per_group, 1, 1))
            for _ in range(n_groups)
        )

    def forward(self, x):
        """Return logits of shape (G * heads_per_group, n, C)."""
        return torch.einsum("hcd,nd->hnc", self.weights(), x)

    def weights(self):
        """All heads stacked group by group: shape (G * heads_per_group, C, d)."""
        return torch.cat(list(self.groups))


class GroupedBatch:
    """One training step of several row groups: each group's row indices, or None.

    ``tensors`` are the training set's device tensors the indices refer to.
    """

    def __init__(self, rows, tensors):
        self.rows = rows
        self.tensors = tensors

    def __len__(self):
        return sum(len(r) for r in self.rows if r is not None)


class GroupedBatches:
    """Per-group mini-batches, each group shuffled by its own seeded generator.

    Group ``g`` walks a fresh permutation of its rows every epoch in batches
    of ``batch_size`` (the last partial batch kept), exactly as a separate fit
    on those rows with the same seed would; step ``t`` carries batch ``t`` of
    every group that has one.
    """

    def __init__(self, tensors, group_rows, batch_size, generators):
        self.tensors = tensors
        self.group_rows = group_rows
        self.batch_size = batch_size
        self.generators = generators

    def __iter__(self):
        schedules = []
        for rows, generator in zip(self.group_rows, self.generators):
            order = rows[torch.randperm(len(rows), generator=generator)]
            schedules.append(order.split(self.batch_size))
        for step in range(max(len(batches) for batches in schedules)):
            rows = [b[step] if step < len(b) else None for b in schedules]
            yield GroupedBatch(rows, self.tensors), None


class SeAMultiHeadNet(FeatureNet):
    """Engine of ``SeAClassifierCV``: many SeA heads trained in one pass.

    ``X["m"]`` is an (n, G) matrix of 0/1 row masks: the training rows of each
    fold, and all rows for the refit group.  Group ``g`` holds one head per
    eta (head ``g * len(etas) + e``), follows the batch schedule a separate
    fit on its rows would (:class:`GroupedBatches`), and computes the SeA step
    of all its heads at once, sharing the batch's Gram matrix.  The loss is
    the sum over heads of each head's mean loss, so every head follows its own
    SeA trajectory.

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

        Every batch's Gram matrix is then a gather instead of a product.
        """
        tensors = super()._to_device_tensors(dataset)
        x = tensors["x"]
        if len(x) * len(x) * x.element_size() <= self.gram_bytes_limit:
            tensors["gram"] = x @ x.T
        return tensors

    def initialize_module(self):
        """Build the heads and reset every group's shuffling generator."""
        super().initialize_module()
        self.__dict__.pop("_group_generators", None)
        return self

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Sum over the heads of ``y_pred`` (H, b, C) of their mean loss."""
        losses = self.criterion_(
            y_pred.reshape(-1, y_pred.shape[-1]), y_true.repeat(len(y_pred))
        )
        return losses.reshape(len(y_pred), -1).mean(1).sum()

    def train_step_single(self, batch, **fit_params):
        """SeA step of every head of every group that has a batch, then backward."""
        self._set_training(True)
        grouped, _ = batch
        tensors = grouped.tensors
        x_all, y_all, gram_all = tensors["x"], tensors["y"], tensors.get("gram")
        etas = torch.as_tensor(self.etas, dtype=x_all.dtype, device=x_all.device)
        loss = x_all.new_zeros(())
        for weight, rows in zip(self.module_.groups, grouped.rows):
            if rows is None:
                continue
            rows = rows.to(x_all.device)
            gram = None if gram_all is None else gram_all[rows[:, None], rows]
            logits = multihead_sea_logits(
                weight,
                x_all[rows],
                y_all[rows],
                etas,
                alpha=self.alpha,
                temperature=self.criterion_.temperature,
                margin=self.criterion_.margin,
                gram=gram,
            )
            loss = loss + self.get_loss(logits, y_all[rows], training=True)
        loss.backward()
        return {"loss": loss, "y_pred": None}

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_group_generators", None)
        return state
