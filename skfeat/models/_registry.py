# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Backbone registry and ``get_backbone``: names, callables and weights to modules."""

import dataclasses
import difflib
import fnmatch
import re

import torchvision
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models.feature_extraction import (
    create_feature_extractor,
    get_graph_node_names,
)

from skfeat.models._backbone import Backbone
from skfeat.models._preprocessing import ImagePreprocessing
from skfeat.models._timm import (
    TIMM_PREFIX,
    build_timm_model,
    import_timm,
    timm_preprocessing,
)
from skfeat.models._weights import (
    build_torchvision_model,
    file_digest,
    is_checkpoint_path,
    load_checkpoint,
    load_state_dict_into,
    torchvision_weights,
)
from skfeat.utils import expand_path, seeded

RANDOM_INIT_SEED = 0
INPUT_KINDS = ("image", "vector")
# How the error messages point to the lists; the command line rewrites them.
LIST_BACKBONES = "skfeat.models.list_backbones()"
LIST_LAYERS = "skfeat.models.list_layers(model)"
PASS_A_CALLABLE = ", or pass a callable returning an nn.Module"
_DEFAULT_IMAGE_PREPROCESSING = ImagePreprocessing(resize_size=256, crop_size=224)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: a builder of feature networks and its metadata."""

    name: str
    builder: object
    input_kind: str
    preprocessing: ImagePreprocessing | None
    classifier: bool = False
    pretrained: bool = True


_REGISTRY = {}


def register_backbone(
    name=None,
    *,
    input_kind="image",
    preprocessing=None,
    classifier=False,
    pretrained=True,
):
    """Register a builder of feature networks under a lower_snake name.

    The builder is called as ``builder(weights=weights, **kwargs)``; it returns
    an ``nn.Module`` whose output is the feature, or, with ``classifier=True``,
    a classification network whose pre-logits vector is the feature.
    ``weights`` is None or a weights *name*: the builder loads named weights
    itself or raises ``ValueError``.  Random initialisation (``None``) runs
    under a fixed seed, and checkpoint paths are loaded by skfeat after the
    builder returns.  Vector backbones receive ``in_features``.

    Parameters
    ----------
    name : str, default=None
        Registry key; defaults to the builder's ``__name__``.
    input_kind : {"image", "vector"}, default="image"
        ``"image"`` backbones take ``(n, 3, H, W)`` batches, ``"vector"``
        backbones ``(n, d)`` batches.
    preprocessing : ImagePreprocessing, default=None
        Preprocessing of image backbones; None means ImageNet statistics with
        a 256-pixel resize and a 224-pixel crop.
    classifier : bool, default=False
        The builder returns a classifier: ``layer=None`` then takes the input
        of its last ``nn.Linear`` and ``layer="logits"`` its output.
    pretrained : bool, default=True
        The builder loads named pretrained weights.  With False, the
        trainable extractors start it from its random initialisation when
        ``weights="DEFAULT"``.

    Returns
    -------
    decorator : callable
        Registers and returns the builder unchanged.

    Examples
    --------
    >>> from torch import nn
    >>> from skfeat.models import get_backbone, register_backbone
    >>> @register_backbone("doc_linear", input_kind="vector")
    ... def doc_linear(weights=None, in_features=4):
    ...     return nn.Linear(in_features, 2)
    >>> get_backbone("doc_linear", in_features=3).input_kind
    'vector'
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(
            f"input_kind must be one of {INPUT_KINDS}; got {input_kind!r}."
        )

    def decorator(builder):
        key = builder.__name__ if name is None else name
        if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise ValueError(f"backbone names are lower_snake_case; got {key!r}.")
        if key in _REGISTRY or key in _torchvision_models():
            raise ValueError(f"a backbone named {key!r} is already registered.")
        if preprocessing is None and input_kind == "image":
            prep = _DEFAULT_IMAGE_PREPROCESSING
        else:
            prep = preprocessing
        _REGISTRY[key] = BackboneSpec(
            key, builder, input_kind, prep, classifier, pretrained
        )
        return builder

    return decorator


def _torchvision_models():
    return torchvision.models.list_models(module=torchvision.models)


def list_backbones(include=None, *, include_timm=False):
    """List the backbone names that ``get_backbone`` accepts.

    These are skfeat's registered backbones and torchvision's classification
    models, and with ``include_timm=True`` the ``"timm/<name>"`` models.

    Parameters
    ----------
    include : str or sequence of str, default=None
        Shell-style patterns (as in Python's ``fnmatch``); only names matching
        one of them are listed.
    include_timm : bool, default=False
        Also list what ``"timm/<name>"`` reaches: every timm architecture
        (``"timm/resnet50"``, random weights) and every pretrained tag
        (``"timm/resnet50.a1_in1k"``), as ``timm.list_models`` lists them.
        Needs timm installed (``ImportError`` otherwise).

    Returns
    -------
    names : list of str
        Sorted names.

    Examples
    --------
    >>> from skfeat.models import list_backbones
    >>> list_backbones(include="resnet1*")
    ['resnet101', 'resnet152', 'resnet18']
    """
    names = set(_REGISTRY) | set(_torchvision_models())
    if include_timm:
        timm = import_timm()
        names |= {
            TIMM_PREFIX + name
            for name in timm.list_models() + timm.list_models(pretrained=True)
        }
    names = sorted(names)
    if include is None:
        return names
    patterns = [include] if isinstance(include, str) else list(include)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def get_backbone(
    model="resnet50", *, weights=None, layer=None, pooling="avg", in_features=None
):
    """Build a feature network from a name or a callable, with its weights.

    Parameters
    ----------
    model : str or callable, default="resnet50"
        A name from :func:`list_backbones`, ``"timm/<name>"`` for a timm model
        (timm must be installed), or a zero-argument callable
        returning an ``nn.Module`` (a class, a function, a
        ``functools.partial``).
    weights : None, str, os.PathLike or WeightsEnum, default=None
        None initialises randomly under a fixed seed.  For torchvision models,
        ``"DEFAULT"``, a weights name such as ``"IMAGENET1K_V1"`` or a
        ``WeightsEnum`` member loads pretrained weights from the torch hub
        cache (downloading them when the network allows).  A path (``~`` and
        environment variables expanded) loads a local checkpoint with
        ``torch.load(weights_only=True)`` (or safetensors).
    layer : str, default=None
        None selects the pre-logits features: the input of the network's last
        ``nn.Linear`` (its output when it has none; registered backbones
        already output features).  ``"logits"`` keeps the full output.  Any
        other value is a node name of torchvision's feature extraction
        (``torchvision.models.feature_extraction.get_graph_node_names``), or,
        for models it cannot trace, a submodule name from
        ``named_modules()`` (e.g. ``"blocks.5"`` of ``"efficientnet_lite0"``).
    pooling : {"avg", "max", "gem"} or None, default="avg"
        How spatial maps or token sequences are reduced to vectors.
    in_features : int, default=None
        Input width, passed to vector backbones.

    Returns
    -------
    backbone : Backbone
        A fresh module in training mode; its ``weights_id`` names the weights.

    Examples
    --------
    >>> from skfeat.models import get_backbone
    >>> net = get_backbone("tiny_cnn").eval()
    >>> import torch
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 16])
    """
    network, kind, preprocessing, weights_id, cut_head = _build_network(
        model, weights, in_features
    )
    return _finish(
        network,
        kind,
        preprocessing,
        weights_id,
        layer=layer,
        pooling=pooling,
        cut_head=cut_head,
    )


def list_layers(model="resnet50", include=None, *, in_features=None):
    """List the names that ``layer=`` accepts for a backbone.

    The network is built with random weights (nothing is downloaded).  For a
    network that torchvision's feature extraction can trace these are its
    graph nodes (``get_graph_node_names``, evaluation mode); otherwise its
    submodule names (``named_modules()``).

    Parameters
    ----------
    model : str or callable, default="resnet50"
        As for :func:`get_backbone`.
    include : str or sequence of str, default=None
        Shell-style patterns (as in Python's ``fnmatch``); only names matching
        one of them are listed.
    in_features : int, default=None
        Input width, passed to vector backbones.

    Returns
    -------
    names : list of str
        Layer names, from the input to the output of the network.

    Examples
    --------
    >>> from skfeat.models import list_layers
    >>> list_layers("resnet18", include="layer4.1.*")
    ['layer4.1.conv1', 'layer4.1.bn1', 'layer4.1.relu', 'layer4.1.conv2', \
'layer4.1.bn2', 'layer4.1.add', 'layer4.1.relu_1']
    """
    network = _build_network(model, None, in_features)[0]
    names = _layer_names(network)
    if include is None:
        return names
    patterns = [include] if isinstance(include, str) else list(include)
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _build_network(model, weights, in_features):
    """Build the raw network and say how to finish it.

    Returns the network, its input kind, preprocessing, weights id and
    whether its last linear layer is cut.
    """
    if isinstance(model, str) and model in _REGISTRY:
        spec = _REGISTRY[model]
        kwargs = {"in_features": in_features} if spec.input_kind == "vector" else {}
        network, weights_id = _build(spec.builder, weights, kwargs, named_ok=True)
        kind, preprocessing, cut_head = (
            spec.input_kind,
            spec.preprocessing,
            spec.classifier,
        )
    elif isinstance(model, str) and model.startswith(TIMM_PREFIX):
        network, weights_id = _build_timm(model[len(TIMM_PREFIX) :], weights)
        kind, preprocessing, cut_head = "image", timm_preprocessing(network), True
    elif isinstance(model, str) and model in _torchvision_models():
        network, weights_id, preprocessing = _build_torchvision(model, weights)
        kind, cut_head = "image", True
    else:
        backbone_input_kind(model)  # raises the errors for bad names and types
        network, weights_id = _build(
            model, None if weights == "DEFAULT" else weights, {}, named_ok=False
        )
        if not isinstance(network, nn.Module):
            raise TypeError(
                f"model={model!r} returned {type(network).__name__}, not an nn.Module."
            )
        kind, preprocessing, cut_head = None, _DEFAULT_IMAGE_PREPROCESSING, True
    return network, kind, preprocessing, weights_id, cut_head


def has_pretrained_weights(model):
    """Tell whether ``weights="DEFAULT"`` gives ``model`` pretrained weights.

    True for torchvision and timm names and for registered backbones unless
    registered with ``pretrained=False``; False for callables, which
    ``"DEFAULT"`` keeps as they return.
    """
    if not isinstance(model, str):
        return False
    spec = _REGISTRY.get(model)
    return True if spec is None else spec.pretrained


def backbone_input_kind(model):
    """Return what ``model`` consumes: "image", "vector", or None for callables.

    Raises ``ValueError`` for unknown names (with close matches) and
    ``TypeError`` for values that are neither names nor callables.
    """
    if isinstance(model, str):
        if model in _REGISTRY:
            return _REGISTRY[model].input_kind
        if model in _torchvision_models() or model.startswith(TIMM_PREFIX):
            return "image"
        matches = difflib.get_close_matches(model, list_backbones(), n=5, cutoff=0.5)
        hint = f" Close matches: {matches}." if matches else ""
        raise ValueError(
            f"model={model!r} is not a known backbone.{hint} See "
            f"{LIST_BACKBONES} for all names{PASS_A_CALLABLE}."
        )
    if not callable(model):
        raise TypeError(
            f"model must be a backbone name or a callable returning an nn.Module; "
            f"got {type(model).__name__}."
        )
    return None


def _build(builder, weights, kwargs, *, named_ok):
    """Call a builder; load a checkpoint afterwards when ``weights`` is a path."""
    if weights is None or is_checkpoint_path(weights):
        with seeded(RANDOM_INIT_SEED):
            network = builder(**({"weights": None} if named_ok else {}), **kwargs)
        if weights is None:
            return network, f"random-init(seed={RANDOM_INIT_SEED})"
        path = expand_path(weights)
        load_state_dict_into(network, load_checkpoint(path), repr(path))
        return network, f"checkpoint:{path}#sha256={file_digest(path)}"
    if not named_ok or isinstance(weights, WeightsEnum):
        raise ValueError(
            f"weights={weights!r} is not supported for this model: use None or a "
            "path to a local checkpoint file."
        )
    return builder(
        weights=weights, **kwargs
    ), f"{getattr(builder, '__name__', 'model')}.{weights}"


def _build_timm(name, weights):
    if weights is None or is_checkpoint_path(weights):
        return _build(
            lambda weights: build_timm_model(name, pretrained=False),
            weights,
            {},
            named_ok=True,
        )
    if weights != "DEFAULT":
        raise ValueError(
            f"weights={weights!r}: timm models take 'DEFAULT' (the pretrained tag in "
            "the name, e.g. 'timm/vit_small_patch16_224.dino'), None or a "
            "checkpoint path."
        )
    return build_timm_model(name, pretrained=True), f"timm:{name}"


def _build_torchvision(name, weights):
    builder = torchvision.models.get_model_builder(name)
    if weights is None or is_checkpoint_path(weights):
        network, weights_id = _build(builder, weights, {}, named_ok=True)
        member = torchvision.models.get_model_weights(name).DEFAULT
    else:
        member = torchvision_weights(name, weights)
        network = build_torchvision_model(builder, member)
        weights_id = f"{type(member).__name__}.{member.name}"
    return network, weights_id, ImagePreprocessing.from_torchvision(member)


def _finish(
    network, input_kind, preprocessing, weights_id, *, layer, pooling, cut_head
):
    if layer is None and cut_head:
        _replace_last_linear(network)
    elif layer is not None and layer != "logits":
        network = _extract_node(network, layer)
    return Backbone(
        network,
        pooling=pooling,
        input_kind=input_kind,
        preprocessing=preprocessing,
        weights_id=weights_id,
    )


def _replace_last_linear(network):
    linears = [
        name for name, mod in network.named_modules() if isinstance(mod, nn.Linear)
    ]
    if not linears:
        return
    parent_name, _, child = linears[-1].rpartition(".")
    parent = network.get_submodule(parent_name) if parent_name else network
    setattr(parent, child, nn.Identity())


def _traced_node_names(network):
    """Graph node names in evaluation mode, or None when FX cannot trace."""
    try:
        return get_graph_node_names(network.eval())[1]
    except Exception:  # FX tracing failures come in many types
        return None


def _layer_names(network):
    nodes = _traced_node_names(network)
    if nodes is not None:
        return nodes
    return [name for name, _ in network.named_modules() if name]


def _extract_node(network, layer):
    nodes = _traced_node_names(network)
    if nodes is None:
        return _module_output(network, layer)
    if not any(node == layer or node.startswith(layer + ".") for node in nodes):
        matches = difflib.get_close_matches(layer, nodes, n=5, cutoff=0.4)
        raise ValueError(
            f"layer={layer!r} is not a node of this model. Close matches: {matches}. "
            f"All names: {LIST_LAYERS}."
        )
    return create_feature_extractor(network, return_nodes={layer: "features"})


def _module_output(network, layer):
    """Take the output of the submodule ``layer``, for models FX cannot trace."""
    names = [name for name, _ in network.named_modules() if name]
    if layer not in names:
        matches = difflib.get_close_matches(layer, names, n=5, cutoff=0.4)
        raise ValueError(
            f"layer={layer!r} is not a submodule of this model (which torchvision's "
            f"feature extraction cannot trace, so layers are module names). Close "
            f"matches: {matches}. All names: {LIST_LAYERS}."
        )
    return ModuleOutput(network, layer)


class _StopForward(Exception):
    """Raised by the hook of ModuleOutput once the wanted output is taken."""


class ModuleOutput(nn.Module):
    """The output of one named submodule of a network, taken by a forward hook.

    The forward pass stops once that submodule has run.  For networks that
    ``torchvision.models.feature_extraction`` cannot trace (data-dependent
    control flow, as in timm's EfficientNet-Lite0).

    Parameters
    ----------
    network : torch.nn.Module
        The full network.
    layer : str
        A name from ``network.named_modules()``.
    """

    def __init__(self, network, layer):
        super().__init__()
        self.network = network
        self.layer = layer

    def forward(self, x):
        """Run the network up to ``layer``; return ``{"features": its output}``."""
        captured = []

        def hook(module, args, output):
            captured.append(output)
            raise _StopForward

        handle = self.network.get_submodule(self.layer).register_forward_hook(hook)
        try:
            self.network(x)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"layer {self.layer!r} did not run in the forward pass.")
        return {"features": captured[0]}
