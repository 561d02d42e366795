# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Resolve and safely load pretrained weights: torchvision enums and checkpoints."""

import hashlib
import os
import pathlib
import pickle
import re
import socket
import threading
from unittest import mock
from urllib.parse import urlparse

import torch
import torchvision
from torchvision.models import WeightsEnum

from skfeat.utils import expand_path

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
_NETWORK_TIMEOUT = 3.0
_TORCHVISION_LOAD_LOCK = threading.Lock()


def is_checkpoint_path(weights):
    """Tell whether a ``weights`` value names a local checkpoint file.

    The check applies to the path with ``~`` and environment variables
    expanded, so ``"$CHECKPOINT"`` counts when it names an existing file.
    """
    if isinstance(weights, os.PathLike):
        return True
    if not isinstance(weights, str):
        return False
    path = expand_path(weights)
    return (
        path.lower().endswith(CHECKPOINT_SUFFIXES)
        or os.sep in path
        or os.path.exists(path)
    )


def file_digest(path, length=16):
    """Return the first ``length`` hex digits of the SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def load_checkpoint(path):
    """Load a state dict from a local file without unpickling arbitrary objects.

    ``.safetensors`` files need the optional ``safetensors`` package; every
    other file goes through ``torch.load(..., weights_only=True)``.  Common
    wrappers are removed: a ``{"state_dict": ...}`` or ``{"model": ...}``
    dictionary and the ``module.`` prefix that ``DistributedDataParallel``
    adds.

    Parameters
    ----------
    path : str or os.PathLike
        Checkpoint file.

    Returns
    -------
    state_dict : dict of str to torch.Tensor
        Tensors on the CPU.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(
            f"weights: {str(path)!r} is a directory, not a checkpoint file."
        )
    if not path.exists():
        raise FileNotFoundError(
            f"weights: checkpoint file {str(path)!r} does not exist."
        )
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:
            raise ImportError(
                f"weights: loading {str(path)!r} needs the 'safetensors' package "
                "(pip install safetensors)."
            ) from exc
        state = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            raise ValueError(
                f"weights: {str(path)!r} could not be loaded as a plain tensor "
                f"checkpoint with torch.load(weights_only=True): {exc}"
            ) from exc
    return _unwrap_state_dict(state, path)


def _unwrap_state_dict(state, path):
    while isinstance(state, dict):
        nested = [
            key for key in ("state_dict", "model") if isinstance(state.get(key), dict)
        ]
        if not nested:
            break
        state = state[nested[0]]
    if not isinstance(state, dict) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise ValueError(
            f"weights: {str(path)!r} does not hold a state dict (a mapping from "
            "parameter names to tensors)."
        )
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def load_state_dict_into(module, state_dict, source):
    """Load ``state_dict`` strictly; a mismatch raises a short ValueError.

    The message counts the missing, unexpected and differently shaped
    tensors and names the first few of each, instead of torch's list of
    every key; torch's error stays attached as the cause.
    """
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise ValueError(_mismatch_message(module, state_dict, source)) from exc


def _mismatch_message(module, state_dict, source, shown=3):
    expected = module.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    reshaped = [
        f"{key} {tuple(state_dict[key].shape)} for {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict and state_dict[key].shape != value.shape
    ]

    def listed(what, keys):
        more = f", ... ({len(keys)} in all)" if len(keys) > shown else ""
        return f"{what}: {', '.join(keys[:shown])}{more}"

    parts = [
        listed(what, keys)
        for what, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("other shape", reshaped),
        )
        if keys
    ]
    hint = (
        " It looks like a checkpoint of another architecture: pass the model it "
        "belongs to, or weights=None."
        if len(missing) == len(expected)
        else ""
    )
    return (
        f"weights: the checkpoint {source} does not match the model "
        f"architecture ({'; '.join(parts) or 'torch refused it'}).{hint}"
    )


def torchvision_weights(model_name, weights):
    """Resolve ``weights`` to a member of the model's torchvision ``WeightsEnum``.

    Parameters
    ----------
    model_name : str
        A torchvision classification model name such as ``"resnet50"``.
    weights : str or WeightsEnum
        ``"DEFAULT"``, a member name (``"IMAGENET1K_V1"``), a qualified name
        (``"ResNet50_Weights.IMAGENET1K_V1"``) or a member.

    Returns
    -------
    weights : WeightsEnum
        The enum member.
    """
    enum_cls = torchvision.models.get_model_weights(model_name)
    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum_cls):
            raise ValueError(
                f"weights={weights} belongs to another model; {model_name!r} takes "
                f"members of {enum_cls.__name__}."
            )
        return weights
    name = (
        weights.split(".", 1)[1]
        if weights.startswith(enum_cls.__name__ + ".")
        else weights
    )
    if name == "DEFAULT":
        return enum_cls.DEFAULT
    if name in enum_cls.__members__:
        return enum_cls[name]
    available = ["DEFAULT", *enum_cls.__members__]
    raise ValueError(
        f"weights={weights!r} is not a weights name of {model_name!r}; "
        f"available: {available}, None, or a path to a local checkpoint file."
    )


def cached_weights_file(weights):
    """Return where torchvision looks for ``weights`` under ``TORCH_HOME``."""
    filename = os.path.basename(urlparse(weights.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


def build_torchvision_model(builder, weights):
    """Build a torchvision model with pretrained weights, loading them safely.

    torchvision's builders load weights through ``WeightsEnum.get_state_dict``,
    which unpickles with ``weights_only=False``.  While the builder runs, that
    method is replaced, for this enum class only, by one that reads the cached
    file with ``weights_only=True`` and fails fast, with the expected file
    name, when the file is missing and the download host is unreachable.
    """
    enum_cls = type(weights)
    with (
        _TORCHVISION_LOAD_LOCK,
        mock.patch.object(enum_cls, "get_state_dict", _safe_get_state_dict),
    ):
        return builder(weights=weights, progress=False)


def _safe_get_state_dict(weights, *args, **kwargs):
    path = cached_weights_file(weights)
    if not os.path.exists(path):
        _download(weights, path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _download(weights, path):
    host = urlparse(weights.url).hostname
    try:
        socket.create_connection((host, 443), timeout=_NETWORK_TIMEOUT).close()
    except OSError as exc:
        raise FileNotFoundError(
            f"Pretrained weights {weights} are not in the local cache and cannot be "
            f"downloaded ({host} is unreachable: {exc}). torchvision expects the "
            f"file at {path!r} (set TORCH_HOME to change the cache directory). "
            "Copy the file there, pass weights=<path to a local checkpoint>, or "
            "weights=None for a random initialisation."
        ) from exc
    os.makedirs(os.path.dirname(path), exist_ok=True)
    match = re.search(r"-([a-f0-9]*)\.", os.path.basename(path))
    torch.hub.download_url_to_file(
        weights.url, path, hash_prefix=match.group(1) if match else None
    )
