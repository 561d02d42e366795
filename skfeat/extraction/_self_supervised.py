# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""What the extractors trained by the two-view SSL engine share: data, fit, resume."""

import copy
import functools
import hashlib
import os
from numbers import Integral

import torch
import torch.distributed as dist
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d
from torchvision.models import WeightsEnum

from skfeat._engine import EpochCheckpoint, TrainingImages, load_checkpoint_file
from skfeat._engine._checkpoint import CHECKPOINT_FILE
from skfeat._engine._distributed import check_accelerator
from skfeat.extraction._base import _BaseTrainableExtractor, model_identity
from skfeat.extraction._feature_cache import state_dict_digest
from skfeat.extraction._inputs import decode_uint8, image_dataset, square_uint8
from skfeat.models import get_backbone
from skfeat.models._registry import has_pretrained_weights
from skfeat.utils import resolve_device, seeded
from skfeat.utils._torch import draw_seed

# Parameter documentation of both trainable extractors, substituted into their
# docstrings by ``fill_parameter_docs`` so the two cannot drift.
DISTRIBUTED_PARAMETER_DOCS = {
    "accelerator": """accelerator : accelerate.Accelerator, default=None
    Train on every process of an ``accelerate launch`` or ``torchrun``
    launch, data-parallel (``pip install 'skfeat[distributed]'``).  Each
    process trains on its shard of every global batch of ``batch_size``
    rows (a multiple of the number of processes); the augmentation
    parameters are drawn for the whole batch and the gradients averaged,
    so with ``gather_negatives`` and ``sync_batchnorm`` the fit equals a
    one-process fit on the global batch.  Rank 0 alone writes the
    checkpoint and prints; every process ends with the same weights.  A
    process that dies or stalls for 60 s stops the others with an error
    naming its rank.  ``clone`` shares the accelerator; pickling drops
    it.  None trains in this process on ``device``.""",
    "sync_batchnorm": """sync_batchnorm : bool, default=True
    With several processes, normalise batches with the statistics of the
    global batch (synchronised batch normalisation); False normalises
    each process's shard.""",
}


class _SelfSupervisedExtractor(_BaseTrainableExtractor):
    """Base of the extractors that fine-tune a backbone with the SSL engine.

    A subclass has the parameters ``weights``, ``base``, ``max_epochs``,
    ``lr``, ``batch_size``, ``checkpoint``, ``warm_start`` and
    ``num_workers``, ``accelerator``, ``gather_negatives`` and
    ``sync_batchnorm`` besides the ``_BaseImageExtractor`` ones; its ``fit``
    checks the processes with :meth:`_check_processes` and draws the seed
    with :meth:`_shared_seed`, builds the starting backbone with
    :meth:`_starting_backbone` (which sets ``weights_``), builds an engine
    net (with :meth:`_engine_params`) and calls :meth:`_train`, which
    resumes from the checkpoint or continues the fitted net (warm start),
    trains, stops on a non-finite loss and sets ``net_``, ``backbone_``,
    ``n_iter_`` and ``loss_curve_``.
    """

    _parameter_constraints = {
        **_BaseTrainableExtractor._parameter_constraints,
        # Batch normalisation in training needs two rows per batch.
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "weights": [str, os.PathLike, WeightsEnum, None],
        "warm_start": ["boolean"],
        "accelerator": "no_validation",  # checked in fit, importing accelerate
        "gather_negatives": ["boolean"],
        "sync_batchnorm": ["boolean"],
    }

    def _check_processes(self):
        """Check ``accelerator`` and the settings that depend on the processes.

        Returns the number of processes (1 without an accelerator).
        """
        accelerator = check_accelerator(self.accelerator)
        if accelerator is None:
            return 1
        device = resolve_device(self.device)
        if self.device != "auto" and device != self._device():
            raise ValueError(
                f"device={self.device!r} differs from the accelerator's device "
                f"{accelerator.device}; with accelerator=, leave device='auto' "
                "(Accelerate assigns one device per process)."
            )
        n_processes = accelerator.num_processes
        if self.batch_size % n_processes:
            raise ValueError(
                f"batch_size={self.batch_size} is the global batch, split evenly "
                f"over the {n_processes} processes; it must be a multiple of "
                f"{n_processes}, e.g. batch_size="
                f"{max(self.batch_size // n_processes, 1) * n_processes}."
            )
        if (
            n_processes > 1
            and self.gather_negatives
            and self.base == "simclr"
            and self.feature_augmentation is not None
        ):
            raise ValueError(
                "feature_augmentation with base='simclr' scores each process's "
                "rows only; set gather_negatives=False to train it on several "
                "processes."
            )
        return n_processes

    def _shared_seed(self):
        """Draw the seed of the fit; with several processes, rank 0's for all."""
        seed = draw_seed(self.random_state)
        accelerator = self.accelerator
        if accelerator is not None and accelerator.num_processes > 1:
            seed = [seed]
            dist.broadcast_object_list(seed, src=0)
            seed = seed[0]
        return seed

    def _device(self):
        """Return the accelerator's device when ``device="auto"``, else ``device``."""
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None and self.device == "auto":
            device = accelerator.device  # "cpu:<rank>" on CPU processes
            return torch.device("cpu") if device.type == "cpu" else device
        return resolve_device(self.device)

    def _is_main_process(self):
        accelerator = self.accelerator
        return accelerator is None or accelerator.is_main_process

    def _engine_params(self):
        """Return the engine's parameters of data-parallel training and logging."""
        main = self._is_main_process()
        return {
            "accelerator": self.accelerator,
            "gather_negatives": self.gather_negatives,
            "sync_batchnorm": self.sync_batchnorm,
            "verbose": int(self.verbose) if main else 0,
        }

    def _warm_net(self):
        """Return the fitted engine net that this fit continues, or None."""
        if not self.warm_start:
            return None
        return getattr(self, "net_", None)  # None when unfitted (or "orbit")

    def _starting_backbone(self, kind, X):
        """Build the trainable backbone this fit starts from; set ``weights_``.

        ``weights="DEFAULT"`` is the model's pretrained weights, or its own
        initialisation for models without any (``"tiny_cnn"``, ``"mlp"``, a
        callable).  With ``warm_start`` and a fitted net, it is a copy of the
        fitted backbone, and ``weights_`` keeps naming the first start.
        """
        if self._warm_net() is not None:
            backbone = copy.deepcopy(self.backbone_)
            if kind == "vector":  # a changed input width fails here, not deep inside
                device = next(backbone.parameters()).device
                try:
                    with torch.no_grad():
                        backbone(torch.from_numpy(X[:2]).to(device))
                except RuntimeError as exc:
                    raise ValueError(
                        f"warm_start=True continues the fitted network, which "
                        f"takes other inputs than X ({X.shape[1]} features). Set "
                        "warm_start=False to train from the starting weights."
                    ) from exc
            return backbone.train().requires_grad_(True)
        in_features = X.shape[1] if kind == "vector" else None
        weights = self.weights
        if isinstance(weights, str) and weights == "DEFAULT":
            weights = "DEFAULT" if has_pretrained_weights(self.model) else None
        backbone = get_backbone(self.model, weights=weights, in_features=in_features)
        self.weights_ = backbone.weights_id
        return backbone

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
                f"{type(self).__name__} needs at least 2 samples to fit; got "
                f"{len(samples)} sample."
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

    def _checkpoint_callbacks(self):
        """Return the per-epoch checkpoint callback when ``checkpoint`` is set.

        Its ``config``, the identity of the fit, is set by :meth:`_train`,
        which has the training data to digest.
        """
        if self.checkpoint is None:
            return []
        if os.path.exists(self.checkpoint) and not os.path.isdir(self.checkpoint):
            raise ValueError(
                f"checkpoint={os.fspath(self.checkpoint)!r} is a file; checkpoint "
                f"names a directory, where {type(self).__name__} saves "
                f"{CHECKPOINT_FILE!r} after every epoch. Pass a new or existing "
                "directory."
            )
        os.makedirs(self.checkpoint, exist_ok=True)
        return [("checkpoint", EpochCheckpoint(self._checkpoint_path(), config=None))]

    def _checkpoint_path(self):
        return os.path.join(os.fspath(self.checkpoint), CHECKPOINT_FILE)

    def _config(self, data):
        """Identity of a fit for its checkpoint: training parameters and data.

        The data enter by a sha256 digest of the training samples (as decoded
        for training, in order) and labels, so a checkpoint is never resumed
        on other images, even of the same number.
        """
        ignored = {
            "accelerator",  # a resumed fit may run on another number of processes
            "checkpoint",
            "device",
            "memory",
            "num_workers",
            "verbose",
            "warm_start",
        }
        params = {  # reprs: the checkpoint is read back with weights_only=True
            name: model_identity(value) if callable(value) else repr(value)
            for name, value in self.get_params().items()
            if name not in ignored
        }
        digest = hashlib.sha256()
        samples = data.samples
        for item in [samples] if isinstance(samples, torch.Tensor) else samples:
            digest.update(item.numpy().tobytes())
        if data.y is not None:
            digest.update(data.y.numpy().tobytes())
        config = {
            "parameters": dict(sorted(params.items())),
            "data": f"{len(data)} samples, sha256 {digest.hexdigest()}",
        }
        previous = self._warm_net()
        if previous is not None:  # a continuation: also the weights it starts from
            config["start"] = state_dict_digest(previous.module_)
        return config

    def _resume(self, net, data, device):
        """Load the checkpoint of this fit, if any; return its finished epochs."""
        if self.checkpoint is None:
            return 0
        path = self._checkpoint_path()
        payload = load_checkpoint_file(path, map_location=device)
        if payload is None:
            return 0
        saved, current = payload["config"], self._config(data)
        if saved != current and self._continues(payload["state"]):
            return 0  # the checkpoint of the fit this warm start continues
        if saved != current:
            raise ValueError(
                f"The checkpoint {path!r} belongs to another fit "
                f"({_difference(saved, current)}); use another checkpoint "
                "directory or delete the file."
            )
        net.set_training_state(payload["state"])
        return len(net.history)

    def _continues(self, state):
        """Tell whether a checkpoint holds the weights this warm start continues."""
        previous = self._warm_net()
        if previous is None:
            return False
        current = previous.module_.state_dict()
        saved = state["module"]
        return saved.keys() == current.keys() and all(
            torch.equal(saved[k].cpu(), current[k].cpu()) for k in current
        )

    def _continue_from(self, net, previous, seed):
        """Load the fitted net's modules into ``net``; fresh optimiser and schedule.

        The shuffling and augmentation generators are reseeded from the seed
        and the epochs done, so a continuation draws new views, the same ones
        after a pickle round trip.
        """
        for name in net._modules:
            try:
                getattr(net, f"{name}_").load_state_dict(
                    getattr(previous, f"{name}_").state_dict()
                )
            except (AttributeError, RuntimeError) as exc:
                raise ValueError(
                    "warm_start=True continues the fitted network, but this fit "
                    f"builds a different one ({name} differs: a changed model, "
                    "base, steered parameters, head or input width). Set "
                    "warm_start=False to train from the starting weights."
                ) from exc
        for offset, generator in enumerate(net.generators_.values()):
            generator.manual_seed(seed + 7919 * self.n_iter_ + offset)

    def _train(self, net, samples, labels, seed, device):
        """Train ``net`` (resume, or continue the fitted net); set the attributes."""
        data = TrainingImages(samples, labels)
        previous = self._warm_net()
        if self.checkpoint is not None:
            net.set_params(callbacks__checkpoint__config=self._config(data))
        with seeded(seed, device):
            net.initialize()
            done = self._resume(net, data, device)
            if previous is not None and done == 0:
                self._continue_from(net, previous, seed)
            try:
                net.partial_fit(data, epochs=self.max_epochs - done)
            except FloatingPointError as exc:
                raise FloatingPointError(self._divergence_message(exc)) from exc
            net.finish_distributed()
        if not all(
            p.isfinite().all()
            for name in net._modules
            for p in getattr(net, f"{name}_").parameters()
        ):
            raise FloatingPointError(
                self._divergence_message("the trained weights are not finite")
            )
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
        losses = [float(v) for v in net.history[:, "train_loss"]]
        if previous is not None:
            self.n_iter_ += len(net.history)
            self.loss_curve_ = [*self.loss_curve_, *losses]
        else:
            self.n_iter_ = len(net.history)
            self.loss_curve_ = losses
        self.net_ = net
        self.backbone_ = net.module_.backbone.eval().requires_grad_(False)

    def _divergence_message(self, reason):
        """Say that training diverged, and what to change."""
        step = self.lr * self.batch_size / 256
        return (
            f"{type(self).__name__} training diverged: {reason} with lr={self.lr!r} "
            f"(an SGD step of {step:g} at batch_size={self.batch_size}). Lower lr, "
            f"e.g. lr={self.lr / 10:g}; a pretrained start (weights='DEFAULT') and "
            "precision='float32' make training more stable."
        )

    def __sklearn_clone__(self):
        """Clone the parameters, sharing the accelerator instead of copying it.

        ``sklearn.base.clone`` deep-copies non-estimator parameters; an
        ``Accelerator`` stands for this process's place in the launch and
        must stay one object, as skorch's documentation warns.
        """
        accelerator = self.accelerator
        self.accelerator = None
        try:
            clone = super().__sklearn_clone__()
        finally:
            self.accelerator = accelerator
        clone.accelerator = accelerator
        return clone

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: never change self
        # The accelerator belongs to this process: a pickled extractor loads
        # in one process, without it.
        state["accelerator"] = None
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


def _difference(saved, current):
    """Say what differs between a checkpoint's fit identity and this fit's."""
    before, now = saved["parameters"], current["parameters"]
    changed = [name for name in now if before.get(name) != now[name]]
    if changed:
        return ", ".join(
            f"{name}={before.get(name)} there, {now[name]} here" for name in changed
        )
    return f"other training data: {saved['data']} there, {current['data']} here"
