# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Two-view self-supervised engine: a base objective plus the AugSelf heads."""

import functools
import json
import math

import torch
import torch.nn.functional as F
from skorch import NeuralNet
from skorch.callbacks import Callback, LRScheduler, PassthroughScoring
from skorch.history import History
from torch.utils.data import DataLoader, Dataset

from skfeat._engine._progress import BatchProgressBar, PlainPrintLog
from skfeat.nn import (
    AugSelfHeads,
    FeatureAugmenter,
    byol_loss,
    byol_momentum,
    moco_loss,
    momentum_update_,
    multi_positive_info_nce,
    nt_xent_loss,
    simsiam_loss,
)
from skfeat.nn._ssl import (
    MOCO_MOMENTUM,
    MOMENTUM_BASES,
)

BASES = ("simclr", "simsiam", "byol", "moco", "supervised")


class TrainingImages(Dataset):
    """Training inputs of one fit: a tensor (or a dataset) of samples, and labels.

    Parameters
    ----------
    samples : torch.Tensor or torch.utils.data.Dataset
        uint8 images of shape (n, 3, s, s) or float32 vectors of shape
        (n, d) held in memory, or a dataset yielding such items (streamed).
    y : torch.Tensor of shape (n,), dtype int64, default=None
        Class indices, for the ``"supervised"`` base.
    """

    def __init__(self, samples, y=None):
        self.samples = samples
        self.y = y

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


class ShuffledBatches:
    """Mini-batches in a fresh seeded order each pass; a last batch of 1 is dropped.

    In-memory samples are sliced; a streamed dataset is read by a
    ``DataLoader`` in the same order.  Batch normalisation needs two rows, so
    a trailing single sample waits for the next epoch's order.
    """

    def __init__(self, data, batch_size, generator, num_workers=0):
        self.data = data
        self.batch_size = batch_size
        self.generator = generator
        self.num_workers = num_workers

    def _schedule(self):
        order = torch.randperm(len(self.data), generator=self.generator)
        batches = list(order.split(self.batch_size))
        if len(batches[-1]) < 2:
            batches.pop()
        return batches

    def __len__(self):
        full, rest = divmod(len(self.data), self.batch_size)
        return full + (rest >= 2)

    def __iter__(self):
        batches = self._schedule()
        samples, y = self.data.samples, self.data.y
        if isinstance(samples, torch.Tensor):
            chunks = (samples[rows] for rows in batches)
        else:
            chunks = DataLoader(
                samples,
                batch_sampler=[rows.tolist() for rows in batches],
                num_workers=self.num_workers,
            )
        for rows, chunk in zip(batches, chunks):
            yield chunk, None if y is None else y[rows]


class SSLNet(NeuralNet):
    """Engine of ``AugSelfExtractor``: two augmented views, a base loss, AugSelf heads.

    ``fit`` takes a :class:`TrainingImages`.  Each step draws two views'
    augmentation parameters from a seeded generator, augments the whole
    batch on the device, and minimises ``L_base + sum_a lambda_a L_a``: the
    base objective on projector (and predictor) outputs, optionally with
    feature augmentation (spec section 4.2), and the AugSelf heads
    (``aux_heads_``, built from the ``aux_heads__*`` parameters) on the
    pre-projector features.  Per-head losses are recorded in the history as
    ``aux_<type>`` for every batch and epoch.

    Parameters
    ----------
    augmentations : skfeat.transforms.AugmentationPipeline
        The view-generating chain.
    base : str
        One of :data:`BASES`.
    temperature : float
        Temperature of the ``"simclr"`` and ``"moco"`` losses.
    feature_augmentation : {"gaussian", "dropout", "interpolate"} or None
        Operator of the feature augmentation (``feature_augmenter_``, built
        from the ``feature_augmenter__*`` parameters), or None.
    fa_position : {"encoder", "projector", "predictor"}
        Where the operator acts.
    network_input : callable
        ``network_input(backbone, batch)`` turns augmented pixels in [0, 1]
        into the backbone's input (normalisation); vectors pass through.
    autocast_dtype : torch.dtype or None
        Autocast dtype of the forward pass; float16 adds gradient scaling.
    seed : int
        Seed of the shuffling, augmentation and feature-augmentation
        generators.
    num_workers : int
        ``DataLoader`` workers when the training images are streamed.
    **kwargs
        Passed to ``skorch.NeuralNet``.
    """

    # FeatureAugmenter has no weights: a known prefix, not a registered module.
    prefixes_ = [*NeuralNet.prefixes_, "feature_augmenter"]

    def __init__(
        self,
        *args,
        augmentations,
        base="simclr",
        temperature=0.2,
        feature_augmentation=None,
        fa_position="projector",
        network_input=None,
        autocast_dtype=None,
        seed=0,
        num_workers=0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.augmentations = augmentations
        self.base = base
        self.temperature = temperature
        self.feature_augmentation = feature_augmentation
        self.fa_position = fa_position
        self.network_input = network_input
        self.autocast_dtype = autocast_dtype
        self.seed = seed
        self.num_workers = num_workers

    def get_default_callbacks(self):
        """Skorch's defaults, with a table printed only at ``verbose >= 2``, plain."""
        return [
            (name, PlainPrintLog() if name == "print_log" else callback)
            for name, callback in super().get_default_callbacks()
        ]

    def initialize_module(self):
        """Build the model, the AugSelf heads, the feature augmenter and generators."""
        super().initialize_module()
        self.aux_heads_ = AugSelfHeads(**self.get_params_for("aux_heads"))
        self.feature_augmenter_ = None
        if self.feature_augmentation is not None:
            self.feature_augmenter_ = FeatureAugmenter(
                self.feature_augmentation, **self.get_params_for("feature_augmenter")
            )
        device = self.training_device
        self.grad_scaler_ = torch.amp.GradScaler(
            device.type,
            enabled=device.type == "cuda" and self.autocast_dtype == torch.float16,
        )
        self.generators_ = {
            "shuffle": torch.Generator().manual_seed(self.seed),
            "augment": torch.Generator().manual_seed(self.seed + 1),
            "feature": torch.Generator(device).manual_seed(self.seed + 2),
        }
        return self

    def get_iterator(self, dataset, training=False):
        """Seeded shuffled batches of the training samples."""
        return ShuffledBatches(
            dataset, self.batch_size, self.generators_["shuffle"], self.num_workers
        )

    def _features(self, backbone, views):
        return backbone(self.network_input(backbone, views))

    def _views(self, x):
        """Two augmented views of the batch ``x`` and the AugSelf targets.

        Returns the views, stacked, and ``{type: (delta12, delta21)}``; a
        subclass may stack more views (the features are split into as many
        chunks) and return other targets, which reach ``get_loss`` as ``X``.
        """
        generator = self.generators_["augment"]
        params1 = self.augmentations.sample(len(x), generator)
        params2 = self.augmentations.sample(len(x), generator)
        views = torch.cat(
            [self.augmentations.apply(x, params1), self.augmentations.apply(x, params2)]
        )
        deltas = self.augmentations.delta(params1, params2)
        back = self.augmentations.delta(params2, params1)
        device = x.device
        targets = {
            name: (deltas[name].to(device), back[name].to(device)) for name in deltas
        }
        return views, targets

    def train_step_single(self, batch, **fit_params):
        """Augment the batch, then run the forward pass, the loss and backward."""
        self._set_training(True)
        x, y = batch
        device = self.training_device
        x = x.to(device, non_blocking=True)
        views, targets = self._views(x)
        if self.base in MOMENTUM_BASES:
            self._update_momentum_networks()
        dtype = self.autocast_dtype
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            features = self._features(self.module_.backbone, views)
            outputs = {
                "features": features.float().chunk(len(views) // len(x)),
                "views": views,
            }
            loss = self.get_loss(
                outputs,
                None if y is None else y.to(device),
                X=targets,
                training=True,
            )
        self.backward(loss)
        return {"loss": loss, "y_pred": None}

    @property
    def training_device(self):
        """The training device: ``device``, or the accelerator's when it places them.

        With skorch's ``AccelerateMixin`` and ``device=None``, Hugging Face
        Accelerate decides where modules live.
        """
        accelerator = getattr(self, "accelerator", None)
        if self.device is None and accelerator is not None:
            return accelerator.device
        return torch.device(self.device)

    def backward(self, loss):
        """Backpropagate ``loss`` (gradient-scaled in float16 on CUDA).

        A subclass with skorch's ``AccelerateMixin`` overrides it with
        ``self.accelerator.backward(loss)``.
        """
        self.grad_scaler_.scale(loss).backward()

    def train_step(self, batch, **fit_params):
        """Skorch's step, or a gradient-scaled one when training in float16."""
        if not self.grad_scaler_.is_enabled():
            return super().train_step(batch, **fit_params)
        self.optimizer_.zero_grad()
        step = self.train_step_single(batch, **fit_params)
        self.grad_scaler_.step(self.optimizer_)
        self.grad_scaler_.update()
        return step

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Return the base loss plus the weighted AugSelf losses; record each head's.

        ``y_pred`` holds the two views' pre-projector features and the views,
        ``y_true`` the labels (``"supervised"`` only), ``X`` the AugSelf
        targets ``{type: (delta12, delta21)}``.
        """
        y1, y2 = y_pred["features"]
        loss = self._base_loss(y1, y2, y_pred["views"], y_true)
        aux_total, per_type = self.aux_heads_(y1, y2, X)
        for name, value in per_type.items():
            self.history.record_batch(f"aux_{name}", value.item())
        return loss + aux_total

    def _base_loss(self, y1, y2, views, y_true):
        module = self.module_
        if self.base == "supervised":
            if y_true is None:
                raise ValueError("base='supervised' needs labels y.")
            logits = module.classifier(torch.cat([y1, y2]))
            return F.cross_entropy(logits, y_true.repeat(2)) * 2
        h1, h2 = self._augmented_pair(y1, y2, "encoder")
        z1, z2 = module.projector(y1), module.projector(y2)
        if self.base == "simclr":
            return self._simclr_loss(z1, z2, h1, h2)
        if self.base == "moco":
            return self._moco_loss(z1, views, h1)
        p1, p2 = module.predictor(z1), module.predictor(z2)
        if self.base == "byol":
            with torch.no_grad():
                t1, t2 = self._target_projection(views).chunk(2)
            pair_loss, targets = byol_loss, (t1, t2)
        else:
            pair_loss, targets = simsiam_loss, (z1, z2)
        loss = pair_loss(p1, p2, *targets)
        if self.feature_augmenter_ is None:
            return loss
        return (
            loss + self._extra_pairs(pair_loss, h1, h2, z1, z2, p1, p2, targets)
        ) / 2

    def _augmented_pair(self, a1, a2, position):
        """Feature-augmented copies of both views at ``position``, or (None, None)."""
        augment = self.feature_augmenter_
        if augment is None or self.fa_position != position:
            return None, None
        generator = self.generators_["feature"]
        return augment(a1, a2, generator=generator), augment(
            a2, a1, generator=generator
        )

    def _extra_pairs(self, pair_loss, h1, h2, z1, z2, p1, p2, targets):
        """Instance-similarity pairs of the augmented features (spec section 4.2)."""
        module = self.module_
        if self.feature_augmenter_.stop_grad == "target":  # at the projector
            return pair_loss(p1, p2, *self._augmented_pair(*targets, "projector"))
        if h1 is not None:
            z_aug = module.projector(torch.cat([h1, h2]))
            p_aug = module.predictor(z_aug).chunk(2)
        elif self.fa_position == "projector":
            p_aug = module.predictor(
                torch.cat(self._augmented_pair(z1, z2, "projector"))
            )
            p_aug = p_aug.chunk(2)
        else:
            p_aug = self._augmented_pair(p1, p2, "predictor")
        return pair_loss(*p_aug, *targets)

    def _simclr_loss(self, z1, z2, h1, h2):
        if self.feature_augmenter_ is None:
            return nt_xent_loss(z1, z2, self.temperature)
        if h1 is not None:
            extra = self.module_.projector(torch.cat([h1, h2]))
        else:
            extra = torch.cat(self._augmented_pair(z1, z2, "projector"))
        n = len(z1)
        instance = torch.arange(n, device=z1.device).repeat(4)
        anchors = torch.arange(4 * n, device=z1.device) < 2 * n
        return multi_positive_info_nce(
            torch.cat([z1, z2, extra]), instance, self.temperature, anchors
        )

    def _moco_loss(self, q, views, h1):
        """InfoNCE of view-1 queries against view-2 keys and the queue.

        With feature augmentation the augmented key (or query) is a second
        positive: the loss averages ``-log softmax`` over both positives.
        """
        queue = self.module_.queue
        with torch.no_grad():
            k = self._target_projection(views[len(q) :])
        keys = queue.keys.clone()
        queue.enqueue(k)
        if self.feature_augmenter_ is None:
            return moco_loss(q, k, keys, self.temperature)
        if h1 is not None:
            extra = self.module_.projector(h1)
        else:
            extra, _ = self._augmented_pair(k, q, "projector")
        q = F.normalize(q, dim=1)
        positives = torch.stack(
            [(q * F.normalize(c, dim=1)).sum(1) for c in (k, extra)], 1
        )
        logits = torch.cat([positives, q @ keys.T], 1) / self.temperature
        return -logits.log_softmax(1)[:, :2].mean()

    def _target_projection(self, views):
        module = self.module_
        features = self._features(module.target_backbone, views).float()
        return module.target_projector(features)

    def _update_momentum_networks(self):
        module = self.module_
        if self.base == "byol":
            momentum = byol_momentum(len(self.history), self.max_epochs)
        else:
            momentum = MOCO_MOMENTUM
        momentum_update_(module.target_backbone, module.backbone, momentum)
        momentum_update_(module.target_projector, module.projector, momentum)

    def get_training_state(self):
        """Everything a resumed fit needs: weights, optimiser, history, generators."""
        return {
            "module": self.module_.state_dict(),
            "aux_heads": self.aux_heads_.state_dict(),
            "optimizer": self.optimizer_.state_dict(),
            "grad_scaler": self.grad_scaler_.state_dict(),
            "history": json.dumps(self.history.to_list(), default=_plain),
            "generators": {k: g.get_state() for k, g in self.generators_.items()},
        }

    def set_training_state(self, state):
        """Restore a state from :meth:`get_training_state` into an initialised net."""
        self.module_.load_state_dict(state["module"])
        self.aux_heads_.load_state_dict(state["aux_heads"])
        self.optimizer_.load_state_dict(state["optimizer"])
        self.grad_scaler_.load_state_dict(state["grad_scaler"])
        self.history = History(json.loads(state["history"]))
        for name, generator in self.generators_.items():
            generator.set_state(state["generators"][name])

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("generators_", None)
        return state


def _plain(value):
    """JSON fallback for numpy scalars in the history."""
    return value.item()


def cosine_factor(epoch, max_epochs):
    """Learning-rate factor of epoch ``epoch`` (from 0): a half cosine from 1 to 0."""
    return 0.5 * (1 + math.cos(math.pi * epoch / max_epochs))


def constant_factor(epoch):
    """Learning-rate factor of a group that is not annealed."""
    return 1.0


class FiniteLossCheck(Callback):
    """Stop a fit whose mean training loss of an epoch is not finite.

    It raises ``FloatingPointError`` at the end of that epoch, before a later
    callback (the checkpoint) saves the diverged state; the facade turns it
    into a message that names its parameters.
    """

    def on_epoch_end(self, net, **kwargs):
        """Raise when this epoch's ``train_loss`` is NaN or infinite."""
        loss = net.history[-1, "train_loss"]
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the mean training loss of epoch {len(net.history)} is {loss}"
            )


def ssl_callbacks(base, aug_types, max_epochs, verbose):
    """Cosine schedule (SimSiam's predictor constant), loss checks, logs, progress."""
    schedules = [functools.partial(cosine_factor, max_epochs=max_epochs)]
    if base == "simsiam":  # the predictor's group comes first (optimizer param_groups)
        schedules = [constant_factor, *schedules]
    callbacks = [
        (
            "lr_scheduler",
            LRScheduler(torch.optim.lr_scheduler.LambdaLR, lr_lambda=schedules),
        ),
        ("finite_loss", FiniteLossCheck()),
    ]
    callbacks += [
        (f"aux_{name}", PassthroughScoring(name=f"aux_{name}", on_train=True))
        for name in aug_types
    ]
    if verbose:
        callbacks.append(("progress", BatchProgressBar(f"{base} training")))
    return callbacks
