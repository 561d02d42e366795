# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Atomic, checksummed training checkpoints that let an interrupted fit resume."""

import hashlib
import io
import os
import tempfile

import torch
from skorch.callbacks import Callback

CHECKPOINT_FILE = "training-state.pt"
_DIGEST_BYTES = 64  # sha256 as hex


def save_checkpoint(path, payload):
    """Write ``payload`` atomically: a sha256 line, then the ``torch.save`` bytes.

    The file is written next to ``path`` and moved over it with
    ``os.replace``, so an interruption leaves the previous checkpoint intact.
    """
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load_checkpoint_file(path, map_location=None):
    """Read a checkpoint written by :func:`save_checkpoint`; None if there is none.

    A file whose checksum does not match (truncated, overwritten, not a
    checkpoint) raises a ``ValueError`` naming it: it is never used.
    Loading uses ``torch.load(weights_only=True)``.
    """
    if not os.path.exists(path):
        return None
    with open(path, "rb") as file:
        content = file.read()
    digest, data = content[:_DIGEST_BYTES], content[_DIGEST_BYTES + 1 :]
    if hashlib.sha256(data).hexdigest().encode() != digest:
        raise ValueError(
            f"The checkpoint file {path!r} is damaged (its checksum does not match "
            "its content); it was not used. Delete it to train from the start."
        )
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


class EpochCheckpoint(Callback):
    """Save the engine's training state after every epoch.

    Parameters
    ----------
    path : str
        The checkpoint file.
    config : dict or None
        Identity of the fit (its parameters and a digest of its data), stored
        with the state so that a resumed fit can check it continues the same
        one; set before training starts.
    """

    def __init__(self, path, config):
        self.path = path
        self.config = config

    def on_epoch_end(self, net, **kwargs):
        """Write the state of the epoch that just finished.

        In data-parallel training (``net.team_``) every process holds the same
        state: rank 0 writes it while the others wait.
        """
        team = getattr(net, "team_", None)
        if team is None or team.rank == 0:
            payload = {"config": self.config, "state": net.get_training_state()}
            save_checkpoint(self.path, payload)
        if team is not None:
            team.barrier()
