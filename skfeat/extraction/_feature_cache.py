# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Per-sample feature cache on disk: content-keyed, checksummed, atomic writes.

Layout: ``<directory>/skfeat-features/<config>/<key[:2]>/<key>.f32``, where
``config`` hashes everything that changes the features (model, resolved
weights, layer, pooling, preprocessing, precision, device type) and ``key``
hashes the sample's content.  Each entry is ``MAGIC | width | crc32 | float32
payload``; an entry that is truncated or fails its checksum is treated as
missing and rewritten.  Entries are written to a temporary file and renamed,
so an interrupted extraction keeps every finished entry and never leaves a
partial one, and two processes writing the same entry cannot corrupt it.
"""

import hashlib
import json
import os
import struct
import tempfile
import zlib

import numpy as np
import PIL.Image
import torch

from skfeat._version import __version__
from skfeat.utils import expand_path

_MAGIC = b"SKFEAT01"
_HEADER = struct.Struct("<8sII")


def content_key(item):
    """Hash the content of one sample: an array, a PIL image, a tensor or a file.

    Files are hashed by their bytes, so a renamed or copied file hits the
    cache and an edited one does not.
    """
    digest = hashlib.sha256()
    if isinstance(item, (str, os.PathLike)):
        digest.update(b"file")
        try:
            with open(item, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError:  # unreadable files are reported by the decoder, not here
            digest.update(os.fsencode(os.fspath(item)))
        return digest.hexdigest()
    if isinstance(item, PIL.Image.Image):
        digest.update(f"pil:{item.mode}:{item.size}".encode())
        digest.update(item.tobytes())
        return digest.hexdigest()
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu().numpy()
    array = np.ascontiguousarray(np.asarray(item))
    digest.update(f"array:{array.dtype.str}:{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def state_dict_digest(module):
    """Hash the weights and buffers of a module: sha256 over its ``state_dict``.

    Names, dtypes, shapes and raw bytes of every tensor enter the hash, in
    ``state_dict`` order, so two modules with equal weights have equal
    digests, on any device, and changing one value changes it.  A trainable
    extractor adds it to its feature-cache identity.
    """
    digest = hashlib.sha256()
    for name, value in module.state_dict().items():
        digest.update(name.encode())
        if not isinstance(value, torch.Tensor):  # extra state
            digest.update(repr(value).encode())
            continue
        tensor = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{tensor.dtype}:{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def resolve_cache_directory(memory):
    """Return the directory of ``memory``, a path or a ``joblib.Memory``, expanded.

    ``~`` and environment variables are expanded, so ``"~/.cache/skfeat"``
    never creates a folder named ``~`` in the working directory.
    """
    location = getattr(memory, "location", memory)
    if location is None:
        raise ValueError(
            "memory: this joblib.Memory has no location (caching disabled)."
        )
    return expand_path(location)


class FeatureCache:
    """Feature vectors stored per sample under one configuration.

    Parameters
    ----------
    directory : str
        Root directory, created when needed.
    config : dict
        JSON-serialisable description of everything that changes features.
    """

    def __init__(self, directory, config):
        payload = json.dumps({**config, "skfeat": __version__}, sort_keys=True)
        config_key = hashlib.sha256(payload.encode()).hexdigest()[:24]
        self.root = os.path.join(directory, "skfeat-features", config_key)
        os.makedirs(self.root, exist_ok=True)
        description = os.path.join(self.root, "config.json")
        if not os.path.exists(description):
            self._atomic_write(description, payload.encode())

    def _path(self, key):
        return os.path.join(self.root, key[:2], key + ".f32")

    def get(self, key):
        """Return the cached vector, or None when absent or damaged."""
        try:
            with open(self._path(key), "rb") as handle:
                blob = handle.read()
        except OSError:
            return None
        if len(blob) < _HEADER.size:
            return None
        magic, width, checksum = _HEADER.unpack_from(blob)
        payload = blob[_HEADER.size :]
        if (
            magic != _MAGIC
            or len(payload) != 4 * width
            or zlib.crc32(payload) != checksum
        ):
            return None
        return np.frombuffer(payload, dtype="<f4")

    def put(self, key, vector):
        """Store one vector atomically."""
        payload = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        header = _HEADER.pack(_MAGIC, len(payload) // 4, zlib.crc32(payload))
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._atomic_write(path, header + payload)

    @staticmethod
    def _atomic_write(path, data):
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
