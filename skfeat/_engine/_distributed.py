# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Data-parallel SSL across processes: shards, gathers, synchronised batch norm.

The processes come from Hugging Face Accelerate (``accelerate launch``) or
``torchrun``; an ``accelerate.Accelerator`` holds the process group.  Every
process draws the same global batch and the same augmentation parameters,
keeps its contiguous shard of rows, and takes part in three collectives of
``torch.distributed`` per step: gathers of the contrastive candidates (with
gradients), one all-reduce of the averaged gradients, and one of the logged
losses.  They run in a process group of their own whose timeout is
:data:`COLLECTIVE_TIMEOUT`, so a process that dies or stalls stops the
others with an error instead of a hang.
"""

import datetime
import os
import time
import uuid

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from skfeat.utils._warnings import warn_caller

COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=60)
_ROLL_CALL_S = 5.0  # how long survivors wait for each other after a failure


def check_accelerator(accelerator):
    """Return ``accelerator`` checked, or None; import ``accelerate`` lazily.

    Parameters
    ----------
    accelerator : accelerate.Accelerator or None
        The ``accelerator`` parameter of an extractor.

    Returns
    -------
    accelerator : accelerate.Accelerator or None
        The same object.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator is None:
        if launched > 1:
            warn_caller(
                f"This process is one of {launched} started by a launcher "
                "(WORLD_SIZE), but accelerator=None: every process fits its own "
                "copy of the extractor on all the data.  Pass accelerator="
                "Accelerator() (Accelerator(cpu=True) on CPU) to train one model "
                "on all processes."
            )
        return None
    try:
        from accelerate import Accelerator
    except ImportError as exc:
        raise ImportError(
            "accelerator= trains on several processes with Hugging Face "
            "Accelerate, which is not installed; install it with "
            "pip install 'skfeat[distributed]'."
        ) from exc
    if not isinstance(accelerator, Accelerator):
        raise ValueError(
            "accelerator must be an accelerate.Accelerator (e.g. Accelerator(), "
            f"or Accelerator(cpu=True) under torchrun) or None; got "
            f"{type(accelerator).__name__}."
        )
    if launched > 1 and accelerator.num_processes != launched:
        raise ValueError(
            f"This process is one of {launched} started by a launcher "
            f"(WORLD_SIZE), but the accelerator runs {accelerator.num_processes}; "
            "each process would fit its own model.  On CPU create it with "
            "Accelerator(cpu=True), which joins the launched processes."
        )
    if accelerator.mixed_precision != "no":
        raise ValueError(
            "skfeat sets the training precision with its precision= parameter; "
            "create the Accelerator with mixed_precision='no' (got "
            f"{accelerator.mixed_precision!r}) and pass e.g. precision='bfloat16'."
        )
    if accelerator.gradient_accumulation_steps != 1:
        raise ValueError(
            "gradient accumulation is not supported: create the Accelerator with "
            "gradient_accumulation_steps=1 (got "
            f"{accelerator.gradient_accumulation_steps})."
        )
    return accelerator


def shard_sizes(n, world_size):
    """Rows of each process for a global batch of ``n`` rows: sizes within one."""
    base, extra = divmod(n, world_size)
    return [base + (rank < extra) for rank in range(world_size)]


class Team:
    """The processes of one distributed fit and their collectives.

    Parameters
    ----------
    accelerator : accelerate.Accelerator
        Holds the default process group (started by ``accelerate launch`` or
        ``torchrun``).

    Attributes
    ----------
    rank, size : int
        This process's index and the number of processes.
    group : torch.distributed.ProcessGroup
        A group of all processes whose collectives time out after
        :data:`COLLECTIVE_TIMEOUT`.
    """

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.rank = accelerator.process_index
        self.size = accelerator.num_processes
        self.group = dist.new_group(
            backend=dist.get_backend(), timeout=COLLECTIVE_TIMEOUT
        )
        token = [uuid.uuid4().hex]
        self._run(dist.broadcast_object_list, token, src=0, group=self.group)
        self.token = token[0]
        self.step = "the start of training"

    def close(self):
        """Release the process group (all processes call it)."""
        dist.destroy_process_group(self.group)

    def _run(self, collective, *args, **kwargs):
        """Run a collective; turn a failure into an error that names the ranks."""
        try:
            return collective(*args, **kwargs)
        except RuntimeError as exc:  # DistBackendError, timeouts, closed peers
            raise RuntimeError(self._failure_message()) from exc

    def _failure_message(self):
        missing = self._roll_call()
        if missing is None:
            who = (
                "the rendezvous store is unreachable too, so rank 0, which "
                "hosts it, may be the one that stopped"
            )
        elif missing:
            who = "rank " + ", ".join(map(str, missing)) + " stopped responding"
        else:
            who = "no process is missing, so a collective failed on its own"
        return (
            f"Distributed training failed on rank {self.rank} of {self.size} "
            f"during {self.step}: {who} (dead, killed, or stalled for more than "
            f"{COLLECTIVE_TIMEOUT.total_seconds():g} s). The other processes stop "
            "too; restart the launch to resume from the last checkpoint."
        )

    def _roll_call(self):
        """Return the ranks that do not answer through the rendezvous store."""
        try:
            store = dist.distributed_c10d._get_default_store()
            prefix = f"skfeat/{self.token}/alive/"
            store.set(prefix + str(self.rank), "1")
            deadline = time.monotonic() + _ROLL_CALL_S
            while True:
                missing = [
                    rank
                    for rank in range(self.size)
                    if not store.check([prefix + str(rank)])
                ]
                if not missing or time.monotonic() > deadline:
                    return missing
                time.sleep(0.1)
        except (AttributeError, RuntimeError):  # no store, or an unreachable one
            return None

    def gather(self, rows, sizes):
        """Rows of every process, concatenated in rank order, with gradients.

        ``sizes`` holds each process's row count.  The backward pass sums the
        gradient of every process's loss and keeps this process's rows.
        """
        return _GatherRows.apply(rows, self, tuple(sizes))

    def gather_no_grad(self, rows, sizes):
        """Rows of every process, in rank order, without gradients."""
        with torch.no_grad():
            return _GatherRows.apply(rows.detach(), self, tuple(sizes))

    def sum_(self, tensor):
        """Sum ``tensor`` over the processes, in place, without gradients."""
        self._run(dist.all_reduce, tensor, group=self.group)
        return tensor

    def sum(self, tensor):
        """Sum ``tensor`` over the processes, with gradients."""
        return _SumAcross.apply(tensor, self)

    def average_gradients(self, parameters):
        """Average the gradients over the processes with one all-reduce."""
        parameters = [p for p in parameters if p.requires_grad]
        if not parameters:
            return
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in parameters]
        has_grad = grads[0].new_tensor([p.grad is not None for p in parameters])
        flat = torch.cat([*(g.reshape(-1) for g in grads), has_grad])
        self.sum_(flat)
        sizes = [p.numel() for p in parameters]
        *averaged, used = flat.split([*sizes, len(parameters)])
        for p, g, any_grad in zip(parameters, averaged, used.tolist()):
            # a parameter no process used keeps no gradient, as in one process
            p.grad = g.div_(self.size).view_as(p) if any_grad else None

    def broadcast_state(self, module):
        """Copy rank 0's parameters and buffers into every process."""
        for tensor in [*module.parameters(), *module.buffers()]:
            self._run(dist.broadcast, tensor.data, src=0, group=self.group)

    def barrier(self):
        """Wait for every process (the default group's timeout)."""
        self.accelerator.wait_for_everyone()


class _GatherRows(torch.autograd.Function):
    """All-gather of rows of possibly unequal counts; backward sums and slices."""

    @staticmethod
    def forward(ctx, rows, team, sizes):
        ctx.team, ctx.sizes = team, sizes
        rows = rows.contiguous()
        padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
        padded[: len(rows)] = rows
        parts = [torch.empty_like(padded) for _ in sizes]
        team._run(dist.all_gather, parts, padded, group=team.group)
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad):
        team, sizes = ctx.team, ctx.sizes
        grad = team.sum_(grad.contiguous().clone())
        start = sum(sizes[: team.rank])
        return grad[start : start + sizes[team.rank]], None, None


class _SumAcross(torch.autograd.Function):
    """All-reduce sum whose gradient is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx, tensor, team):
        ctx.team = team
        return team.sum_(tensor.clone())

    @staticmethod
    def backward(ctx, grad):
        return ctx.team.sum_(grad.contiguous().clone()), None


class SyncBatchNorm(nn.SyncBatchNorm):
    """Batch normalisation over the rows of every process, on any device.

    On CUDA it is :class:`torch.nn.SyncBatchNorm`; elsewhere (the CPU, where
    torch's kernel refuses to run) each process's batch count, mean and
    variance are gathered, with gradients, in one collective and combined,
    so the outputs, gradients and running statistics equal one process's on
    the global batch.  ``plain_class`` is the layer it replaced, restored by
    :func:`unsync_batchnorm`.
    """

    def forward(self, x):
        """Normalise ``x`` with the statistics of every process's rows."""
        team = getattr(self, "team", None)
        if not self.training or team is None:
            return super().forward(x)
        if x.device.type == "cuda":
            self.process_group = team.group
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        # Each process's count, mean and sum of squared deviations, gathered
        # in one collective and combined (Chan et al.'s parallel variance).
        local_mean = x.mean(dims)
        local_m2 = ((x - local_mean.view(shape)) ** 2).sum(dims)
        local_count = local_mean.new_tensor([x.numel() // x.shape[1]])
        stats = torch.cat([local_mean, local_m2, local_count])[None]
        stats = team.gather(stats, [1] * team.size)
        means, m2s, counts = stats.split([len(local_mean), len(local_mean), 1], 1)
        count = counts.sum()
        mean = (counts * means).sum(0) / count
        var = (m2s + counts * (means - mean) ** 2).sum(0) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum
                if factor is None:
                    factor = 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def sync_batchnorm(module, team):
    """Replace every batch-norm layer of ``module`` by :class:`SyncBatchNorm`."""
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        synced = _copy_batchnorm(module, SyncBatchNorm)
        synced.plain_class, synced.team = type(module), team
        return synced
    for name, child in module.named_children():
        module.add_module(name, sync_batchnorm(child, team))
    return module


def unsync_batchnorm(module):
    """Restore the layers :func:`sync_batchnorm` replaced, with their state."""
    if isinstance(module, SyncBatchNorm) and hasattr(module, "plain_class"):
        return _copy_batchnorm(module, module.plain_class)
    for name, child in module.named_children():
        module.add_module(name, unsync_batchnorm(child))
    return module


def _copy_batchnorm(layer, cls):
    copy = cls(
        layer.num_features,
        layer.eps,
        layer.momentum,
        layer.affine,
        layer.track_running_stats,
    )
    copy.load_state_dict(layer.state_dict())
    copy.train(layer.training)
    copy.requires_grad_(any(p.requires_grad for p in layer.parameters()))
    reference = next(iter(layer.state_dict().values()), None)
    return copy if reference is None else copy.to(reference.device)
