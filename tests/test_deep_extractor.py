import pickle
import socket
import subprocess
import sys
import time

import numpy as np
import PIL.Image
import pytest
import torch
import torchvision
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn

from skfeat import DeepFeatureExtractor
from skfeat.extraction import _cache
from skfeat.extraction._cache import clear_backbone_cache
from skfeat.models import get_backbone

TINY = dict(model="tiny_cnn", weights=None)


def _save_pngs(images, folder):
    paths = []
    for i, image in enumerate(images):
        path = folder / f"img{i}.png"
        PIL.Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def test_deep_extractor_containers_give_identical_features(rgb_images, tmp_path):
    """uint8 HWC/CHW, float, PIL, per-image arrays, paths and a Dataset all agree."""
    extractor = DeepFeatureExtractor(**TINY, batch_size=4)
    expected = extractor.transform(rgb_images)
    paths = _save_pngs(rgb_images, tmp_path)

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(rgb_images)

        def __getitem__(self, i):
            return PIL.Image.fromarray(rgb_images[i]), i

    variants = {
        "chw": rgb_images.transpose(0, 3, 1, 2),
        "float": rgb_images.astype(np.float32) / 255,
        "float64": rgb_images / 255.0,
        "pil": [PIL.Image.fromarray(im) for im in rgb_images],
        "arrays": list(rgb_images),
        "str paths": [str(p) for p in paths],
        "Path paths": paths,
        "dataset": Images(),
        "tensor": torch.from_numpy(rgb_images),
    }
    for name, X in variants.items():
        assert_array_equal(extractor.transform(X), expected, err_msg=name)


def test_deep_extractor_grayscale_and_rgba_become_rgb(rgb_images):
    extractor = DeepFeatureExtractor(**TINY)
    gray = rgb_images[..., 0]
    replicated = np.repeat(gray[..., None], 3, axis=-1)
    assert_array_equal(extractor.transform(gray), extractor.transform(replicated))
    assert_array_equal(
        extractor.transform(gray[..., None]), extractor.transform(replicated)
    )
    rgba = np.concatenate([rgb_images, np.full_like(rgb_images[..., :1], 7)], -1)
    assert_array_equal(extractor.transform(rgba), extractor.transform(rgb_images))
    pil_rgba = [PIL.Image.fromarray(im, "RGBA") for im in rgba]
    assert_array_equal(extractor.transform(pil_rgba), extractor.transform(rgb_images))


def test_deep_extractor_files_of_any_size_keep_order(tmp_path):
    rng = np.random.RandomState(1)
    images = [
        rng.randint(0, 256, (h, w, 3), dtype=np.uint8)
        for h, w in [(20, 50), (64, 33), (32, 32)]
    ]
    paths = _save_pngs(images, tmp_path)
    extractor = DeepFeatureExtractor(**TINY, batch_size=2)
    features = extractor.transform(paths)
    assert features.shape == (3, 16)
    for i, path in enumerate(paths):
        assert_allclose(extractor.transform([path]), features[i : i + 1], rtol=1e-5)
    reordered = extractor.transform(paths[::-1])
    assert_allclose(reordered, features[::-1], rtol=1e-5)


def test_deep_extractor_worker_processes_match_main_process(rgb_images, tmp_path):
    paths = _save_pngs(rgb_images, tmp_path)
    serial = DeepFeatureExtractor(**TINY, batch_size=2).transform(paths)
    parallel = DeepFeatureExtractor(**TINY, batch_size=2, num_workers=2).transform(
        paths
    )
    assert_array_equal(serial, parallel)


def _reference_features(network, images_uint8, weights):
    """Independent reference: torchvision's own preset transform, fc removed."""
    network.fc = nn.Identity()
    network.eval()
    preset = weights.transforms()
    batch = torch.stack(
        [
            preset(torch.from_numpy(im).permute(2, 0, 1).float() / 255)
            for im in images_uint8
        ]
    )
    with torch.no_grad():
        return network(batch).numpy()


def test_deep_extractor_resnet_penultimate_matches_reference(rgb_images):
    """resnet18 features: the 512-d pooled vector, preprocessed like torchvision."""
    features = DeepFeatureExtractor("resnet18", weights=None).transform(rgb_images[:2])
    reference_net = get_backbone("resnet18", layer="logits").body  # same seeded init
    expected = _reference_features(
        reference_net, rgb_images[:2], torchvision.models.ResNet18_Weights.DEFAULT
    )
    assert features.shape == (2, 512)
    assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pooling", ["avg", "max", "gem", None])
def test_deep_extractor_layer_and_pooling(rgb_images, pooling):
    extractor = DeepFeatureExtractor(
        "resnet18", weights=None, layer="layer3", pooling=pooling, image_size=32
    )
    features = extractor.transform(rgb_images[:2])
    maps = (
        DeepFeatureExtractor(
            "resnet18", weights=None, layer="layer3", pooling=None, image_size=32
        )
        .transform(rgb_images[:2])
        .reshape(2, 256, 2, 2)
    )
    expected = {
        "avg": maps.mean((2, 3)),
        "max": maps.max((2, 3)),
        "gem": np.cbrt((np.clip(maps, 1e-6, None) ** 3).mean((2, 3))),
        None: maps.reshape(2, -1),
    }[pooling]
    assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


def test_deep_extractor_logits_layer(rgb_images):
    """layer="logits" is the classifier layer applied to the default features."""
    resnet = dict(model="resnet18", weights=None, image_size=32)
    logits = DeepFeatureExtractor(**resnet, layer="logits").transform(rgb_images[:2])
    features = DeepFeatureExtractor(**resnet).transform(rgb_images[:2])
    fc = get_backbone("resnet18", layer="logits").body.fc  # same seeded init
    expected = features @ fc.weight.detach().numpy().T + fc.bias.detach().numpy()
    assert logits.shape == (2, 1000)
    assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_deep_extractor_callable_model_uses_input_of_last_linear(rgb_images):
    def factory():
        return nn.Sequential(
            nn.Conv2d(3, 4, 3),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 6),
            nn.ReLU(),
            nn.Linear(6, 10),
        )

    features = DeepFeatureExtractor(factory, image_size=16).transform(rgb_images)
    logits = DeepFeatureExtractor(factory, image_size=16, layer="logits").transform(
        rgb_images
    )
    assert features.shape == (6, 6) and logits.shape == (6, 10)
    net = get_backbone(factory, layer="logits").body.eval()
    assert_allclose(
        logits,
        np.maximum(features, 0) @ net[5].weight.detach().numpy().T
        + net[5].bias.detach().numpy(),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    clear_backbone_cache()
    yield tmp_path / "torch_home"
    clear_backbone_cache()


def _random_resnet18_state(seed):
    torch.manual_seed(seed)
    return torchvision.models.resnet18().state_dict()


def test_deep_extractor_loads_weights_from_torch_home_cache(torch_home, rgb_images):
    """A state dict placed where torchvision looks is loaded by weights name."""
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    state = _random_resnet18_state(3)
    cache_dir = torch_home / "hub" / "checkpoints"
    cache_dir.mkdir(parents=True)
    torch.save(state, cache_dir / weights.url.rsplit("/", 1)[1])

    extractor = DeepFeatureExtractor("resnet18", weights="IMAGENET1K_V1").fit(
        rgb_images
    )
    assert extractor.weights_ == "ResNet18_Weights.IMAGENET1K_V1"
    network = torchvision.models.resnet18()
    network.load_state_dict(state)
    expected = _reference_features(network, rgb_images[:2], weights)
    assert_allclose(extractor.transform(rgb_images[:2]), expected, rtol=1e-4, atol=1e-5)
    by_enum = DeepFeatureExtractor("resnet18", weights=weights)
    assert_array_equal(
        by_enum.transform(rgb_images[:2]), extractor.transform(rgb_images[:2])
    )


@pytest.mark.parametrize("wrapper", ["plain", "state_dict", "ddp"])
def test_deep_extractor_loads_local_checkpoint(
    torch_home, tmp_path, rgb_images, wrapper
):
    state = _random_resnet18_state(5)
    saved = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": torch.tensor(3)},
        "ddp": {f"module.{k}": v for k, v in state.items()},
    }[wrapper]
    path = tmp_path / "resnet18.pth"
    torch.save(saved, path)
    extractor = DeepFeatureExtractor("resnet18", weights=str(path)).fit(rgb_images)
    assert extractor.weights_.startswith(f"checkpoint:{path}#sha256=")
    network = torchvision.models.resnet18()
    network.load_state_dict(state)
    expected = _reference_features(
        network, rgb_images[:2], torchvision.models.ResNet18_Weights.DEFAULT
    )
    assert_allclose(extractor.transform(rgb_images[:2]), expected, rtol=1e-4, atol=1e-5)


def test_deep_extractor_rejects_checkpoint_with_pickled_code(tmp_path, rgb_images):
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "payload": StandardScaler()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        DeepFeatureExtractor("resnet18", weights=path).fit(rgb_images)


def test_deep_extractor_rejects_mismatched_checkpoint(tmp_path, rgb_images):
    path = tmp_path / "r34.pt"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(ValueError, match="does not match the model architecture"):
        DeepFeatureExtractor("resnet18", weights=path).fit(rgb_images)


def test_deep_extractor_missing_weights_fail_fast_offline(
    torch_home, monkeypatch, rgb_images
):
    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        DeepFeatureExtractor("resnet18", weights="IMAGENET1K_V1").fit(rgb_images)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    expected_file = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected_file) in message
    assert "weights=<path" in message and "TORCH_HOME" in message


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(model="resnet5"), ValueError, "resnet50"),
        (dict(model=3), ValueError, "model"),
        (dict(model="resnet18", weights="IMAGENET9K"), ValueError, "IMAGENET1K_V1"),
        (dict(model="resnet18", weights=None, layer="layer9"), ValueError, "layer9"),
        (
            dict(model="tiny_cnn", weights="DEFAULT"),
            ValueError,
            "no pretrained weights",
        ),
        (dict(**TINY, batch_size=0), ValueError, "batch_size"),
        (dict(**TINY, pooling="median"), ValueError, "pooling"),
        (dict(**TINY, precision="int8"), ValueError, "precision"),
        (dict(**TINY, device="tpu:0"), ValueError, "device"),
    ],
)
def test_deep_extractor_bad_parameters(params, error, match, rgb_images):
    with pytest.raises(error, match=match):
        DeepFeatureExtractor(**params).fit_transform(rgb_images)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((0, 8, 8, 3), np.uint8), ValueError, "empty"),
        ([], ValueError, "empty"),
        (np.zeros(5, np.uint8), ValueError, "shape"),
        (np.zeros((2, 8, 8, 3, 1), np.uint8), ValueError, "shape"),
        (np.zeros((2, 8, 8, 5), np.uint8), ValueError, "channels"),
        ([[[0, 1], [2, 3]], [[0, 1]]], ValueError, "different shapes"),
        (np.full((2, 8, 8, 3), np.nan, np.float32), ValueError, "NaN"),
        (np.full((2, 8, 8, 3), np.inf), ValueError, "NaN or infinite"),
        (np.full((2, 8, 8, 3), 2.0), ValueError, r"\[0, 1\]"),
        (np.full((2, 8, 8, 3), 300), ValueError, r"\[0, 255\]"),
        (np.zeros((2, 8, 8, 3), bool), TypeError, "dtype bool"),
        ("image.png", TypeError, "wrap it in a list"),
        ([object()], TypeError, "unsupported type"),
    ],
)
def test_deep_extractor_bad_inputs(X, error, match):
    with pytest.raises(error, match=match):
        DeepFeatureExtractor(**TINY).transform(X)


def test_deep_extractor_bad_files_are_named(tmp_path, rgb_images):
    good = _save_pngs(rgb_images[:1], tmp_path)[0]
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    extractor = DeepFeatureExtractor(**TINY)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        extractor.transform([good, tmp_path / "missing.png"])
    with pytest.raises(ValueError, match="notes.png"):
        extractor.transform([good, not_image])
    with pytest.raises(ValueError, match="is a directory"):
        extractor.transform([good, tmp_path])


def test_deep_extractor_2d_input_needs_vector_backbone():
    with pytest.raises(ValueError, match="vector backbones"):
        DeepFeatureExtractor(**TINY).transform(np.zeros((3, 4), np.float32))


def test_deep_extractor_is_stateless_and_clone_shares_model(rgb_images, monkeypatch):
    """transform needs no fit, and a fitted clone reuses the network, not a rebuild."""
    builds = []

    def counting_get_backbone(*args, **kwargs):
        builds.append(args)
        return get_backbone(*args, **kwargs)

    clear_backbone_cache()
    monkeypatch.setattr(_cache, "get_backbone", counting_get_backbone)
    extractor = DeepFeatureExtractor(**TINY)
    unfitted = extractor.transform(rgb_images)
    fitted = clone(extractor).fit(rgb_images).transform(rgb_images)
    assert_array_equal(unfitted, fitted)
    assert len(builds) == 1


def test_deep_extractor_pickle_holds_parameters_only(rgb_images):
    extractor = DeepFeatureExtractor("resnet18", weights=None, image_size=32).fit(
        rgb_images
    )
    blob = pickle.dumps(extractor)
    assert len(blob) < 5_000
    assert b"Tensor" not in blob and b"torch.nn" not in blob
    clear_backbone_cache()
    restored = pickle.loads(blob)
    assert_array_equal(restored.transform(rgb_images), extractor.transform(rgb_images))


def test_deep_extractor_pipeline_and_pandas_output(rgb_images):
    pd = pytest.importorskip("pandas")
    pipe = make_pipeline(
        FunctionTransformer(lambda X: X[:, ::2, ::2]),
        DeepFeatureExtractor(**TINY),
        StandardScaler(),
    )
    assert pipe.fit_transform(rgb_images).shape == (6, 16)
    frame = (
        DeepFeatureExtractor(**TINY)
        .set_output(transform="pandas")
        .fit_transform(rgb_images)
    )
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns[:2]) == ["deepfeatureextractor0", "deepfeatureextractor1"]


def test_deep_extractor_reduced_precision_on_cpu_is_close(rgb_images):
    full = DeepFeatureExtractor(**TINY).transform(rgb_images)
    bf16 = DeepFeatureExtractor(**TINY, precision="bfloat16").transform(rgb_images)
    assert bf16.dtype == np.float32
    assert_allclose(bf16, full, atol=0.05)


def test_deep_extractor_progress_bar(rgb_images, capsys):
    DeepFeatureExtractor(**TINY, verbose=1, batch_size=2).transform(rgb_images)
    assert "extracting" in capsys.readouterr().err


def test_import_touches_no_cuda_model_or_network():
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network used')\n"
        "socket.socket.connect = refuse\n"
        "import skfeat, sys\n"
        "assert 'torch' not in sys.modules, 'torch imported eagerly'\n"
        "est = skfeat.DeepFeatureExtractor('resnet50')\n"
        "import torch\n"
        "assert not torch.cuda.is_initialized()\n"
        "from skfeat.extraction._cache import _CACHE\n"
        "assert not _CACHE, 'a model was loaded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_deep_extractor_gpu_matches_cpu(rgb_images):
    cpu = DeepFeatureExtractor("resnet18", weights=None, device="cpu").transform(
        rgb_images
    )
    gpu = DeepFeatureExtractor(
        "resnet18", weights=None, device="cuda", precision="float32"
    ).transform(rgb_images)
    assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-3)
    amp = DeepFeatureExtractor("resnet18", weights=None, device="cuda").transform(
        rgb_images
    )
    assert amp.dtype == np.float32
    assert_allclose(amp, cpu, rtol=0.1, atol=0.05)


def test_deep_extractor_refit_on_images_forgets_vector_columns(rgb_images):
    def factory():
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(4))

    extractor = DeepFeatureExtractor(factory).fit(np.zeros((3, 5), np.float32))
    assert extractor.n_features_in_ == 5
    extractor.set_params(model="tiny_cnn", weights=None).fit(rgb_images)
    assert not hasattr(extractor, "n_features_in_")


def test_deep_extractor_loads_safetensors_checkpoint(tmp_path, rgb_images):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    state = _random_resnet18_state(7)
    path = tmp_path / "resnet18.safetensors"
    safetensors_torch.save_file(state, str(path))
    extractor = DeepFeatureExtractor("resnet18", weights=str(path)).fit(rgb_images)
    network = torchvision.models.resnet18()
    network.load_state_dict(state)
    expected = _reference_features(
        network, rgb_images[:2], torchvision.models.ResNet18_Weights.DEFAULT
    )
    assert_allclose(extractor.transform(rgb_images[:2]), expected, rtol=1e-4, atol=1e-5)


def _folder_with_broken_file(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    rng = np.random.RandomState(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        PIL.Image.fromarray(rng.randint(0, 256, (20, 20, 3), np.uint8)).save(path)
        paths.append(path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    return [paths[0], broken, paths[1], tmp_path / "missing.png", paths[2]]


def test_deep_extractor_on_error_raise_names_the_file(tmp_path):
    """The default on_error="raise" stops at an unreadable file, named, and
    says how to go on without it."""
    paths = _folder_with_broken_file(tmp_path)
    extractor = DeepFeatureExtractor("tiny_cnn", weights=None)
    with pytest.raises(ValueError, match=r"broken\.jpg.*on_error=\"skip\""):
        extractor.transform(paths)


def test_deep_extractor_on_error_skip_gives_nan_rows(tmp_path):
    """on_error="skip": NaN rows, recorded indices, one warning (issue 20, point 6)."""
    paths = _folder_with_broken_file(tmp_path)
    extractor = DeepFeatureExtractor("tiny_cnn", weights=None, on_error="skip")
    with pytest.warns(
        UserWarning, match=r"2 of 5 images cannot be read.*broken\.jpg"
    ) as caught:
        features = extractor.transform(paths)
    assert caught[0].filename == __file__  # the caller's line, not sklearn's wrapper
    assert features.shape == (5, 16) and features.dtype == np.float32
    assert_array_equal(extractor.skipped_indices_, [1, 3])
    assert np.isnan(features[[1, 3]]).all() and np.isfinite(features[[0, 2, 4]]).all()
    reference = DeepFeatureExtractor("tiny_cnn", weights=None).transform(
        [paths[0], paths[2], paths[4]]
    )
    assert_allclose(features[[0, 2, 4]], reference, rtol=1e-5, atol=1e-6)
    # Rows still match y: a pipeline with an imputer fits and predicts.
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(extractor, SimpleImputer(), LogisticRegression())
    with pytest.warns(UserWarning, match="cannot be read") as caught:
        assert pipe.fit(paths, [0, 1, 0, 1, 0]).predict(paths).shape == (5,)
    assert {w.filename for w in caught} == {__file__}  # also through fit_transform


def test_deep_extractor_on_error_skip_caches_no_nan_rows(tmp_path):
    """An unreadable image's NaN row is not stored in the feature cache."""
    paths = _folder_with_broken_file(tmp_path / "images")
    memory = tmp_path / "cache"
    extractor = DeepFeatureExtractor(
        "tiny_cnn", weights=None, on_error="skip", memory=memory
    )
    with pytest.warns(UserWarning):
        first = extractor.transform(paths)
    with pytest.warns(UserWarning):
        second = extractor.transform(paths)
    assert_array_equal(np.isnan(first), np.isnan(second))
    assert len(list(memory.rglob("*.f32"))) == 3  # the 3 readable images only


def test_deep_extractor_on_error_is_validated():
    """on_error takes "raise" or "skip" only."""
    with pytest.raises(ValueError, match="on_error"):
        DeepFeatureExtractor("mlp", weights=None, on_error="ignore").fit(
            np.zeros((2, 3), np.float32)
        )


class _Untraceable(nn.Module):
    """A network with data-dependent control flow, which FX cannot trace."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2)
        self.head = nn.Sequential(nn.Conv2d(4, 6, 3), nn.ReLU())

    def forward(self, x):
        x = self.stem(x)
        if x.sum() > -1e30:  # data-dependent: breaks symbolic tracing
            x = self.head(x)
        return x


def test_deep_extractor_layer_of_untraceable_model_by_module_name(rgb_images):
    """Non-regression (issue 20, point 5): --layer works where FX tracing fails."""
    extractor = DeepFeatureExtractor(_Untraceable, layer="stem", image_size=32)
    features = extractor.fit_transform(rgb_images[:3])
    assert features.shape == (3, 4) and np.isfinite(features).all()
    with pytest.raises(ValueError, match=r"not a submodule.*Close matches: \['stem'"):
        DeepFeatureExtractor(_Untraceable, layer="stm", image_size=32).fit(
            rgb_images[:1]
        )
