# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""What the extractors trained by the two-view SSL engine share: data, fit, resume."""

import copy
import functools
import os

import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from skfeat._engine import EpochCheckpoint, TrainingImages, load_checkpoint_file
from skfeat._engine._checkpoint import CHECKPOINT_FILE
from skfeat.extraction._base import _BaseTrainableExtractor, model_identity
from skfeat.extraction._inputs import decode_uint8, image_dataset, square_uint8
from skfeat.utils import seeded


class _SelfSupervisedExtractor(_BaseTrainableExtractor):
    """Base of the extractors that fine-tune a backbone with the SSL engine.

    A subclass has the parameters ``base``, ``max_epochs``, ``checkpoint``
    and ``num_workers`` besides the ``_BaseImageExtractor`` ones; its ``fit``
    builds an engine net and calls :meth:`_train`, which resumes from the
    checkpoint, trains and sets ``net_``, ``backbone_``, ``n_iter_`` and
    ``loss_curve_``.
    """

    def _encode_labels(self, y):
        """Return class indices and count for ``base="supervised"``, else Nones."""
        if self.base != "supervised":
            return None, None
        if y is None:
            raise ValueError("base='supervised' needs the labels y in fit(X, y).")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        return torch.as_tensor(encoder.transform(y)), len(encoder.classes_)

    def _training_samples(self, kind, X, backbone, labels):
        """Training samples: vectors, images decoded once to uint8, or streamed."""
        if kind == "vector":
            samples = torch.from_numpy(X)
        else:
            size = self._eval_preprocessing(backbone).crop_size
            samples = decode_uint8(X, size, num_workers=self.num_workers)
            if samples is None:
                samples = image_dataset(X, functools.partial(square_uint8, size=size))
        if len(samples) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples to train (batch "
                f"normalisation needs 2 rows per batch); got {len(samples)} sample."
            )
        if labels is not None and len(labels) != len(samples):
            raise ValueError(
                f"y has {len(labels)} labels for {len(samples)} samples in X."
            )
        return samples

    def _feature_width(self, backbone, samples):
        """Return the width D of the backbone's output, probed on two samples."""
        if isinstance(samples, torch.Tensor):
            batch = samples[:2]
        else:  # a streamed dataset
            batch = torch.stack([samples[0], samples[1]])
        if batch.dtype == torch.uint8:
            batch = batch.float() / 255
        was_training = backbone.training
        with torch.no_grad():
            width = backbone.eval()(self._network_input(backbone, batch)).shape[1]
        backbone.train(was_training)
        return width

    def _checkpoint_callbacks(self, n_samples):
        """Return the per-epoch checkpoint callback when ``checkpoint`` is set."""
        if self.checkpoint is None:
            return []
        os.makedirs(self.checkpoint, exist_ok=True)
        checkpoint = EpochCheckpoint(self._checkpoint_path(), self._config(n_samples))
        return [("checkpoint", checkpoint)]

    def _checkpoint_path(self):
        return os.path.join(os.fspath(self.checkpoint), CHECKPOINT_FILE)

    def _config(self, n_samples):
        """Identity of a fit for its checkpoint: training parameters and data size."""
        ignored = {"checkpoint", "device", "memory", "num_workers", "verbose"}
        params = {
            name: model_identity(value) if callable(value) else value
            for name, value in self.get_params().items()
            if name not in ignored
        }
        return repr(sorted(params.items())) + f" n_samples={n_samples}"

    def _resume(self, net, data, device):
        """Load the checkpoint of this fit, if any; return its finished epochs."""
        if self.checkpoint is None:
            return 0
        path = self._checkpoint_path()
        payload = load_checkpoint_file(path, map_location=device)
        if payload is None:
            return 0
        if payload["config"] != self._config(len(data)):
            raise ValueError(
                f"The checkpoint {path!r} belongs to a fit with other parameters or "
                "data; use another checkpoint directory or delete the file."
            )
        net.set_training_state(payload["state"])
        return len(net.history)

    def _train(self, net, samples, labels, seed, device):
        """Train ``net``, resuming from the checkpoint; set the fitted attributes."""
        data = TrainingImages(samples, labels)
        with seeded(seed, device):
            net.initialize()
            done = self._resume(net, data, device)
            net.partial_fit(data, epochs=self.max_epochs - done)
        finished = sum("train_loss" in epoch for epoch in net.history)
        if finished < self.max_epochs:  # skorch returns quietly on Ctrl-C
            raise KeyboardInterrupt(
                f"fit was interrupted after {finished} of {self.max_epochs} epochs"
                + (
                    "; call fit again with the same arguments to resume."
                    if self.checkpoint is not None
                    else "."
                )
            )
        self.net_ = net
        self.backbone_ = net.module_.backbone.eval().requires_grad_(False)
        self.n_iter_ = len(net.history)
        self.loss_curve_ = [float(v) for v in net.history[:, "train_loss"]]

    def __getstate__(self):
        state = super().__getstate__()
        backbone = state.get("backbone_")
        on_device = backbone is not None and any(
            t.device.type != "cpu" for t in backbone.state_dict().values()
        )
        if on_device:  # pickle a CPU copy: loadable without a GPU
            state["backbone_"] = copy.deepcopy(backbone).to("cpu")
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False  # same seed, same weights on the CPU
        return tags
