# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Process-local cache of frozen backbones, so clones and refits share a model."""

import collections
import os
import pickle
import threading
import types

import torch
from torchvision.models import WeightsEnum

from skfeat.models import get_backbone
from skfeat.models._weights import is_checkpoint_path
from skfeat.utils import expand_path

_MAX_ENTRIES = 4
_CACHE = collections.OrderedDict()
_LOCK = threading.Lock()


def _model_key(model):
    if isinstance(model, (str, type, types.FunctionType, types.BuiltinFunctionType)):
        return model
    try:
        return ("pickled", pickle.dumps(model))
    except Exception:  # unpicklable callables are keyed by identity
        return ("id", id(model))


def _weights_key(weights):
    if weights is None:
        return None
    if isinstance(weights, WeightsEnum):
        weights = f"{type(weights).__name__}.{weights.name}"
    path = os.path.abspath(expand_path(weights)) if is_checkpoint_path(weights) else ""
    if os.path.exists(path):
        stat = os.stat(path)
        return (path, stat.st_mtime_ns, stat.st_size)
    return (str(weights), torch.hub.get_dir())


def cached_backbone(model, *, weights, layer, pooling, in_features, device):
    """Return a frozen backbone in eval mode on ``device``, building it once.

    The cache holds the last few backbones of this process (least recently
    used first out), keyed by everything that changes the network.  Estimators
    never store the module, so pickling and cloning them stays cheap.
    """
    key = (
        _model_key(model),
        _weights_key(weights),
        layer,
        pooling,
        in_features,
        str(device),
    )
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        backbone = get_backbone(
            model,
            weights=weights,
            layer=layer,
            pooling=pooling,
            in_features=in_features,
        )
        backbone.eval().requires_grad_(False)
        if backbone.input_kind != "vector":
            backbone.to(memory_format=torch.channels_last)
        backbone.to(device)
        _CACHE[key] = backbone
        while len(_CACHE) > _MAX_ENTRIES:
            _CACHE.popitem(last=False)
        return backbone


def clear_backbone_cache():
    """Drop every cached backbone of this process (frees their memory)."""
    with _LOCK:
        _CACHE.clear()
