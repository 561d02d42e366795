# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Batch iterators over device tensors, sliced instead of collated."""

import torch


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
    prepare : callable, default=None
        Applied to every batch dict after slicing, e.g. to move rows held on
        the host to the device.
    """

    def __init__(self, tensors, batch_size, generator=None, prepare=None):
        self.tensors = tensors
        self.batch_size = batch_size
        self.generator = generator
        self.prepare = prepare

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
            if self.prepare is not None:
                batch = self.prepare(batch)
            yield batch, batch.pop("y")


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
