# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Base engine for training heads on a fixed feature matrix."""

import weakref

import torch
from skorch import NeuralNet
from torch.utils.data import Subset

from skfeat._engine._batches import TensorBatches
from skfeat.nn import l2_normalize

# Share of the free device memory the feature matrix may take; larger
# matrices stay on the host and move to the device batch by batch.
DEVICE_MEMORY_SHARE = 0.5


def fits_on_device(tensor, device):
    """Whether ``tensor`` may be moved to ``device`` whole.

    Always on the CPU (where "moving" is no copy); on CUDA, when it takes at
    most ``DEVICE_MEMORY_SHARE`` of the free device memory.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return tensor.numel() * tensor.element_size() <= DEVICE_MEMORY_SHARE * free


class FeatureNet(NeuralNet):
    """Base engine for training on a fixed feature matrix.

    ``fit`` takes ``X``, a dict of aligned arrays (``"x"``: the raw float32
    features, plus per-row data such as sample weights), and integer ``y``.
    The feature matrix is never copied whole: it stays float32 where it is
    (host memory, or the device once when it fits there) and every batch is
    moved to the device, cast to the module's dtype and L2-normalised row by
    row (:meth:`prepare_features`).  The other arrays are small and cast once
    per fit.  Shuffling draws from a generator seeded by ``seed``, never from
    torch's global generator.

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
        return TensorBatches(
            self._cached_tensors(dataset),
            self.batch_size,
            generator,
            prepare=self._prepare_batch,
        )

    def prepare_features(self, x):
        """Move rows of the feature matrix to the device, cast and normalise them."""
        dtype = next(self.module_.parameters()).dtype
        return l2_normalize(x.to(self.device, dtype, non_blocking=True))

    def _prepare_batch(self, batch):
        batch["x"] = self.prepare_features(batch["x"])
        return batch

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
            if key != "x"
        }
        features = torch.as_tensor(dataset.X["x"])[rows]
        if fits_on_device(features, self.device):
            features = features.to(self.device)
        tensors["x"] = features
        n = len(tensors["x"])
        y = torch.zeros(n, dtype=torch.long) if dataset.y is None else dataset.y
        tensors["y"] = torch.as_tensor(y)[rows].to(self.device)
        return tensors

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_device_tensors", None)
        # A torch.Generator does not pickle on older torch (2.3); its state does.
        if "shuffle_generator_" in state:
            state["shuffle_generator_"] = state["shuffle_generator_"].get_state()
        return state

    def __setstate__(self, state):
        generator_state = state.pop("shuffle_generator_", None)
        super().__setstate__(state)
        if generator_state is not None:
            self.shuffle_generator_ = torch.Generator()
            self.shuffle_generator_.set_state(generator_state)

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
