# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Two-view self-supervised engine: a base objective plus the AugSelf heads."""

import functools
import json
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from skorch import NeuralNet
from skorch.callbacks import Callback, LRScheduler, PassthroughScoring
from skorch.history import History
from torch.utils.data import DataLoader, Dataset

from skfeat._engine._distributed import (
    Team,
    shard_sizes,
    sync_batchnorm,
    unsync_batchnorm,
)
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


class Shard(NamedTuple):
    """A process's rows of a global batch: ``sizes[rank]`` rows from ``offset``."""

    offset: int
    sizes: tuple


class ShuffledBatches:
    """Mini-batches in a fresh seeded order each pass; a last batch of 1 is dropped.

    In-memory samples are sliced; a streamed dataset is read by a
    ``DataLoader`` in the same order.  Batch normalisation needs two rows, so
    a trailing single sample waits for the next epoch's order.

    With a :class:`~skfeat._engine._distributed.Team` of several processes,
    every process draws the same global order and batches and yields its
    contiguous shard of each batch with a :class:`Shard`, as a third item:
    the shards of a full batch are equal, those of the last batch differ by
    at most one row, so every sample is seen once per epoch; a last batch
    with fewer than two rows per process is dropped.
    """

    def __init__(self, data, batch_size, generator, num_workers=0, team=None):
        self.data = data
        self.batch_size = batch_size
        self.generator = generator
        self.num_workers = num_workers
        self.team = team

    @property
    def _min_rows(self):
        return 2 * (1 if self.team is None else self.team.size)

    def _schedule(self):
        order = torch.randperm(len(self.data), generator=self.generator)
        batches = list(order.split(self.batch_size))
        if len(batches[-1]) < self._min_rows:
            batches.pop()
        if self.team is None:
            return batches, [None] * len(batches)
        shards, local = [], []
        for rows in batches:
            sizes = tuple(shard_sizes(len(rows), self.team.size))
            offset = sum(sizes[: self.team.rank])
            shards.append(Shard(offset, sizes))
            local.append(rows[offset : offset + sizes[self.team.rank]])
        return local, shards

    def __len__(self):
        full, rest = divmod(len(self.data), self.batch_size)
        return full + (rest >= self._min_rows)

    def __iter__(self):
        batches, shards = self._schedule()
        samples, y = self.data.samples, self.data.y
        if isinstance(samples, torch.Tensor):
            chunks = (samples[rows] for rows in batches)
        else:
            chunks = DataLoader(
                samples,
                batch_sampler=[rows.tolist() for rows in batches],
                num_workers=self.num_workers,
            )
        for rows, chunk, shard in zip(batches, chunks, shards):
            labels = None if y is None else y[rows]
            yield (chunk, labels) if shard is None else (chunk, labels, shard)


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
    accelerator : accelerate.Accelerator or None
        With several processes, data-parallel training (``team_`` holds the
        processes): each trains on its shard of every global batch, with
        the augmentation parameters drawn for the whole batch, and the
        gradients are averaged.  With one process (or skorch's
        ``AccelerateMixin``) it only places the modules.
    gather_negatives : bool
        With several processes, score contrastive losses against every
        process's rows and fill the MoCo queue with every process's keys.
    sync_batchnorm : bool
        With several processes, normalise batches over every process's rows.
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
        accelerator=None,
        gather_negatives=True,
        sync_batchnorm=True,
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
        self.accelerator = accelerator
        self.gather_negatives = gather_negatives
        self.sync_batchnorm = sync_batchnorm

    def get_default_callbacks(self):
        """Skorch's defaults, with a table printed only at ``verbose >= 2``, plain."""
        return [
            (name, PlainPrintLog() if name == "print_log" else callback)
            for name, callback in super().get_default_callbacks()
        ]

    def initialize_module(self):
        """Build the model, the AugSelf heads, the feature augmenter and generators."""
        accelerator = self.accelerator
        self.team_, self._shard = None, None
        if accelerator is not None and accelerator.num_processes > 1:
            self.team_ = Team(accelerator)
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
            "feature": torch.Generator(device).manual_seed(self.seed + 2 + self._rank),
        }
        if self.team_ is not None and self.sync_batchnorm:
            self.module_ = sync_batchnorm(self.module_, self.team_)
            self.aux_heads_ = sync_batchnorm(self.aux_heads_, self.team_)
        return self

    @property
    def _rank(self):
        return 0 if getattr(self, "team_", None) is None else self.team_.rank

    def finish_distributed(self):
        """End data-parallel training: rank 0's state everywhere, plain modules.

        Every process takes rank 0's parameters and buffers (batch-norm
        statistics differ between processes when they are not
        synchronised), the synchronised batch-norm layers become the plain
        ones again, and the process group is released, so the fitted net
        and its backbone run and pickle in one process.
        """
        team = self.team_
        if team is None:
            return
        for name in self._modules:
            module = getattr(self, f"{name}_")
            team.broadcast_state(module)
            setattr(self, f"{name}_", unsync_batchnorm(module))
        team.close()
        self.team_ = None

    def get_iterator(self, dataset, training=False):
        """Seeded shuffled batches of the training samples."""
        return ShuffledBatches(
            dataset,
            self.batch_size,
            self.generators_["shuffle"],
            self.num_workers,
            team=self.team_,
        )

    def _features(self, backbone, views):
        return backbone(self.network_input(backbone, views))

    def _views(self, x):
        """Two augmented views of the batch ``x`` and the AugSelf targets.

        Returns the views, stacked, and ``{type: (delta12, delta21)}``; a
        subclass may stack more views (the features are split into as many
        chunks) and return other targets, which reach ``get_loss`` as ``X``.
        """
        params1 = self._draw(self.augmentations.sample, len(x))
        params2 = self._draw(self.augmentations.sample, len(x))
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

    def _draw(self, sample, n):
        """Draw augmentation parameters of this process's ``n`` rows.

        With several processes, the parameters of the whole global batch are
        drawn (the same on every process) and this process keeps its rows,
        so the views equal one process's on the global batch.
        """
        shard = self._shard
        generator = self.generators_["augment"]
        if shard is None:
            return sample(n, generator)
        params = sample(sum(shard.sizes), generator)
        rows = slice(shard.offset, shard.offset + n)
        if isinstance(params, dict):
            return {name: value[rows] for name, value in params.items()}
        return params[rows]

    def _gathered(self, rows, grad=True):
        """Return this step's rows of every process (None in one process or local)."""
        if self._shard is None or not self.gather_negatives:
            return None
        gather = self.team_.gather if grad else self.team_.gather_no_grad
        return gather(rows, self._shard.sizes)

    def _record(self, name, value):
        """Record a per-batch loss term (over the global batch, when sharded)."""
        if self._shard is None:
            self.history.record_batch(name, value.item())
        else:
            self._logs[name] = value.detach()

    def _global_logs(self, loss):
        """Record a sharded step's terms over the global batch; return its loss.

        Each process's terms are means over its rows: the global mean weights
        them by their share of the global batch, in one all-reduce.
        """
        names = list(self._logs)
        shard = self._shard
        share = shard.sizes[self.team_.rank] / sum(shard.sizes)
        values = torch.stack([loss.detach().float(), *self._logs.values()]).float()
        values = self.team_.sum_(values * share).tolist()
        for name, value in zip(names, values[1:]):
            self.history.record_batch(name, value)
        return torch.tensor(values[0])

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        """Record a sharded batch's global size, which weights its loss."""
        if batch is not None and len(batch) > 2:
            self.history.record_batch("train_batch_size", sum(batch[2].sizes))

    def train_step_single(self, batch, **fit_params):
        """Augment the batch, then run the forward pass, the loss and backward.

        With several processes, ``batch`` also holds a :class:`Shard`: the
        loss is weighted by this process's share of the global batch (1 for
        equal shards) and the gradients are averaged over the processes.
        """
        self._set_training(True)
        x, y = batch[:2]
        self._shard = batch[2] if len(batch) > 2 else None
        self._logs = {}
        if self._shard is not None:
            batches = self.history[-1, "batches"]
            self.team_.step = f"epoch {len(self.history)}, batch {len(batches)}"
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
        shard = self._shard
        if shard is None:
            self.backward(loss)
            return {"loss": loss, "y_pred": None}
        team = self.team_
        self.backward(loss * (team.size * len(x) / sum(shard.sizes)))
        team.average_gradients(
            p for name in self._modules for p in getattr(self, f"{name}_").parameters()
        )
        return {"loss": self._global_logs(loss), "y_pred": None}

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
            self._record(f"aux_{name}", value)
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
            both = self._gathered(torch.cat([z1, z2], 1))
            if both is None:
                return nt_xent_loss(z1, z2, self.temperature)
            return nt_xent_loss(
                z1,
                z2,
                self.temperature,
                gathered=both.chunk(2, 1),
                offset=self._shard.offset,
            )
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
        gathered = self._gathered(k, grad=False)
        queue.enqueue(k if gathered is None else gathered)
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
        state.pop("team_", None)
        state["accelerator"] = None  # process-bound; a loaded net trains alone
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
