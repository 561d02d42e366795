"""AugSelfExtractor: training, AugSelf heads, determinism, checkpoints, composition."""

import math
import os
import pickle

import numpy as np
import pytest
import torch
from _ssl_helpers import interrupt_at_epoch, toy_vectors
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skfeat import AugSelfExtractor
from skfeat._engine import SSLNet, TrainingImages, ssl_callbacks
from skfeat.extraction import _self_supervised
from skfeat.models import Backbone, get_backbone
from skfeat.nn import AugSelfHeads, SSLModel, simsiam_loss
from skfeat.transforms import AugmentationPipeline, RandomCircularShift, RandomScale


def tiny(**params):
    """A fast image extractor: the 16-feature tiny_cnn, SimCLR, one epoch."""
    defaults = dict(
        model="tiny_cnn",
        base="simclr",
        max_epochs=1,
        batch_size=4,
        head_hidden=16,
        device="cpu",
        random_state=0,
    )
    return AugSelfExtractor(**{**defaults, **params})


def weights_of(extractor):
    return {k: v.clone() for k, v in extractor.backbone_.state_dict().items()}


def assert_same_weights(first, second):
    for key, value in first.items():
        torch.testing.assert_close(second[key], value, rtol=0, atol=0, msg=key)


def weights_differ(first, second):
    return any(not torch.equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize("base", ["simclr", "simsiam", "byol", "moco"])
def test_augself_fit_transform_gives_float32_rows(rgb_images, base):
    """Every base trains and transform returns one float32 row per image."""
    extractor = tiny(base=base, max_epochs=2)
    assert extractor.fit(rgb_images) is extractor
    features = extractor.transform(rgb_images)
    assert features.shape == (6, 16) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert extractor.n_iter_ == 2 and len(extractor.loss_curve_) == 2
    assert all(math.isfinite(loss) for loss in extractor.loss_curve_)
    assert len(extractor.get_feature_names_out()) == 16


def test_augself_transform_before_fit_is_not_fitted(rgb_images):
    """transform and get_feature_names_out raise NotFittedError before fit."""
    with pytest.raises(NotFittedError):
        tiny().transform(rgb_images)
    with pytest.raises(NotFittedError):
        tiny().get_feature_names_out()


def test_augself_same_seed_gives_same_weights(rgb_images):
    """Two fits with one seed end with equal weights; another seed differs."""
    first = weights_of(tiny(max_epochs=2).fit(rgb_images))
    assert_same_weights(first, weights_of(tiny(max_epochs=2).fit(rgb_images)))
    other = weights_of(tiny(max_epochs=2, random_state=1).fit(rgb_images))
    assert weights_differ(first, other)


def test_augself_zero_weights_is_the_base_method(rgb_images):
    """Weight 0 for every type trains exactly as the base method without heads."""
    base_only = weights_of(tiny(aug_types=(), max_epochs=2).fit(rgb_images))
    zero = tiny(aug_weights=0.0, max_epochs=2).fit(rgb_images)
    assert len(zero.net_.aux_heads_.heads) == 0
    assert_same_weights(base_only, weights_of(zero))
    with_heads = weights_of(tiny(max_epochs=2).fit(rgb_images))
    assert weights_differ(base_only, with_heads)
    crop_only = weights_of(tiny(aug_types=("crop",), max_epochs=2).fit(rgb_images))
    weighted = tiny(aug_weights=(1.0, 0.0), max_epochs=2).fit(rgb_images)
    assert list(weighted.net_.aux_heads_.heads) == ["crop"]
    assert_same_weights(crop_only, weights_of(weighted))


def test_augself_heads_read_pre_projector_features(rgb_images, monkeypatch):
    """The heads get the backbone's outputs of both views, never the projector's."""
    outputs, head_inputs = [], []
    backbone_forward, heads_forward = Backbone.forward, AugSelfHeads.forward

    def record_backbone(self, x):
        out = backbone_forward(self, x)
        outputs.append(out.detach().clone())
        return out

    def record_heads(self, y1, y2, targets):
        head_inputs.append((y1.detach().clone(), y2.detach().clone()))
        return heads_forward(self, y1, y2, targets)

    monkeypatch.setattr(Backbone, "forward", record_backbone)
    monkeypatch.setattr(AugSelfHeads, "forward", record_heads)
    extractor = tiny(batch_size=6)
    extractor.fit(rgb_images)
    # first call: the width probe; then one training step of 2 x 6 views
    (y1, y2), views_features = head_inputs[0], outputs[1]
    assert y1.shape == (6, 16) and views_features.shape == (12, 16)
    torch.testing.assert_close(torch.cat([y1, y2]), views_features)
    first_layer = extractor.net_.aux_heads_.heads["crop"][0]
    assert first_layer.in_features == 2 * 16


def test_augself_records_each_head_loss_in_history(rgb_images):
    """Each active head's loss is in the history, per batch and per epoch."""
    extractor = tiny(aug_types=("crop", "color", "flip"), aug_weights=(1, 0.5, 0))
    extractor.fit(rgb_images)
    history = extractor.net_.history
    assert set(k for k in history[-1] if k.startswith("aux_")) >= {
        "aux_crop",
        "aux_color",
    }
    assert "aux_flip" not in history[-1]
    batch = history[-1, "batches", 0]
    assert batch["aux_crop"] > 0 and batch["aux_color"] > 0
    epoch_mean = np.average(
        history[-1, "batches", :, "aux_crop"],
        weights=history[-1, "batches", :, "train_batch_size"],
    )
    assert history[-1, "aux_crop"] == pytest.approx(epoch_mean)


def test_augself_verbose_shows_the_loss(rgb_images, capsys):
    """verbose=2 prints each epoch's loss and head losses, plain; 1 a bar only."""
    tiny(max_epochs=2).fit(rgb_images)
    assert capsys.readouterr().out == ""
    tiny(max_epochs=2, verbose=1).fit(rgb_images)
    captured = capsys.readouterr()
    assert "train_loss" not in captured.out and "epoch=2/2" in captured.err
    tiny(max_epochs=2, verbose=2).fit(rgb_images)
    out = capsys.readouterr().out
    assert "train_loss" in out and "aux_crop" in out and "\x1b[" not in out


def test_augself_learning_rate_schedule(rgb_images):
    """lr scales with batch_size/256 along a cosine; SimSiam's predictor keeps it."""
    scaled = 0.512 * 4 / 256
    simclr = tiny(lr=0.512, max_epochs=4).fit(rgb_images)
    expected = [scaled * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert simclr.net_.history[:, "event_lr"] == pytest.approx(expected)
    simsiam = tiny(base="simsiam", lr=0.512, max_epochs=4).fit(rgb_images)
    groups = simsiam.net_.optimizer_.param_groups
    predictor = {id(p) for p in simsiam.net_.module_.predictor.parameters()}
    assert {id(p) for p in groups[0]["params"]} == predictor
    assert simsiam.net_.history[:, "event_lr"] == pytest.approx([scaled] * 4)
    assert groups[0]["lr"] == pytest.approx(scaled)
    assert groups[1]["lr"] == pytest.approx(0.0, abs=1e-12)  # the cosine's end


def test_augself_pickle_keeps_fitted_weights(rgb_images):
    """An unpickled extractor holds the fitted weights and transforms identically."""
    extractor = tiny().fit(rgb_images)
    restored = pickle.loads(pickle.dumps(extractor))
    assert_same_weights(weights_of(extractor), weights_of(restored))
    assert_array_equal(restored.transform(rgb_images), extractor.transform(rgb_images))


def test_augself_pickling_leaves_the_fitted_extractor_alone(rgb_images):
    """The pickled state is a copy: moving its backbone to the CPU for the
    pickle (a CUDA fit) must not replace the live ``backbone_`` (an H200 run
    found it swapped for a CPU copy)."""
    extractor = tiny(max_epochs=1).fit(rgb_images)
    before = dict(vars(extractor))
    state = extractor.__getstate__()
    state["backbone_"] = None
    assert vars(extractor) == before


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["auto", "float16"])
def test_augself_trains_on_cuda_and_unpickles_on_cpu(rgb_images, precision):
    """Mixed-precision CUDA training; the pickle holds CPU weights."""
    extractor = tiny(device="cuda", precision=precision, max_epochs=2).fit(rgb_images)
    assert next(extractor.backbone_.parameters()).is_cuda
    assert all(math.isfinite(loss) for loss in extractor.loss_curve_)
    on_cuda = extractor.transform(rgb_images)
    restored = pickle.loads(pickle.dumps(extractor))
    assert next(extractor.backbone_.parameters()).is_cuda  # pickling moved nothing
    assert not next(restored.backbone_.parameters()).is_cuda
    on_cpu = restored.set_params(device="cpu", precision="float32").transform(
        rgb_images
    )
    assert_allclose(on_cpu, on_cuda, rtol=0.05, atol=0.05)


def test_augself_frozen_in_grid_search_is_not_refitted(rgb_images, monkeypatch):
    """FrozenEstimator(fitted) composes in GridSearchCV without training again."""
    images = np.concatenate([rgb_images, rgb_images[:, ::-1]])
    y = np.array([0, 1] * 6)
    extractor = tiny().fit(images)
    before = weights_of(extractor)
    trainings = []
    partial_fit = SSLNet.partial_fit

    def counting_partial_fit(self, *args, **kwargs):
        trainings.append(1)
        return partial_fit(self, *args, **kwargs)

    monkeypatch.setattr(SSLNet, "partial_fit", counting_partial_fit)
    search = GridSearchCV(
        make_pipeline(FrozenEstimator(extractor), LogisticRegression(max_iter=200)),
        {"logisticregression__C": [0.1, 1.0]},
        cv=2,
    ).fit(images, y)
    assert trainings == []
    assert len(search.cv_results_["params"]) == 2
    assert_same_weights(before, weights_of(extractor))
    step = search.best_estimator_[0]
    assert_array_equal(step.transform(images), extractor.transform(images))


def test_augself_streams_images_that_do_not_fit(rgb_images, monkeypatch):
    """Images too big to decode at once stream in the same order: same weights."""
    in_memory = weights_of(tiny(max_epochs=2).fit(rgb_images))
    monkeypatch.setattr(_self_supervised, "decode_uint8", lambda *args, **kwargs: None)
    streamed = tiny(max_epochs=2).fit(list(rgb_images))
    assert_same_weights(in_memory, weights_of(streamed))


def test_augself_rotation_head_adds_rotated_views(rgb_images):
    """'rot' in aug_types adds 90-degree rotations to the views and a 4-class head."""
    extractor = tiny(aug_types=("rot", "flip")).fit(rgb_images)
    assert list(extractor.net_.augmentations.aug_types)[-1] == "rot"
    heads = extractor.net_.aux_heads_
    assert heads.loss_kinds == {"rot": "multiclass", "flip": "binary"}
    assert heads.heads["rot"][-1].out_features == 4
    plain = tiny(aug_types=("flip",)).fit(rgb_images)
    assert "rot" not in plain.net_.augmentations.aug_types


def test_augself_supervised_base_uses_labels(rgb_images):
    """base='supervised' trains a classifier on y; without y it says so."""
    y = np.array(["a", "b"] * 3)
    extractor = tiny(base="supervised", max_epochs=2).fit(rgb_images, y)
    assert extractor.net_.module_.classifier.out_features == 2
    with pytest.raises(ValueError, match="needs the labels y"):
        tiny(base="supervised").fit(rgb_images)


@pytest.mark.parametrize(
    "base, operator, position, stop_grad",
    [
        ("simclr", "gaussian", "projector", "none"),
        ("simclr", "interpolate", "encoder", "input"),
        ("simsiam", "dropout", "predictor", "none"),
        ("simsiam", "gaussian", "projector", "target"),
        ("byol", "interpolate", "projector", "input"),
        ("moco", "gaussian", "projector", "none"),
    ],
)
def test_augself_feature_augmentation_trains(
    rgb_images, base, operator, position, stop_grad
):
    """Every base trains with feature augmentation; the loss is finite."""
    extractor = tiny(
        base=base,
        feature_augmentation=operator,
        fa_position=position,
        fa_stop_grad=stop_grad,
        max_epochs=2,
    ).fit(rgb_images)
    assert all(math.isfinite(loss) for loss in extractor.loss_curve_)


def test_augself_feature_augmentation_input_stop_grad_spares_the_encoder(rgb_images):
    """fa_stop_grad='input': the augmented pairs give no gradient to the backbone."""
    extractor = tiny(
        base="simsiam", feature_augmentation="gaussian", fa_stop_grad="input"
    ).fit(rgb_images)
    net = extractor.net_
    net.module_.train().requires_grad_(True)
    views = torch.rand(8, 3, 32, 32)
    y1, y2 = net._features(net.module_.backbone, views).chunk(2)
    z1, z2 = net.module_.projector(y1), net.module_.projector(y2)
    p1, p2 = net.module_.predictor(z1), net.module_.predictor(z2)
    extra = net._extra_pairs(simsiam_loss, None, None, z1, z2, p1, p2, (z1, z2))
    backbone = list(net.module_.backbone.parameters())
    predictor = list(net.module_.predictor.parameters())
    grads = torch.autograd.grad(extra, backbone + predictor, allow_unused=True)
    assert all(g is None or not g.any() for g in grads[: len(backbone)])
    assert any(g is not None and g.abs().sum() > 0 for g in grads[len(backbone) :])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"aug_types": ("crop", "colour")}, "aug_types must be distinct names"),
        ({"aug_weights": (1.0,)}, "aligned with aug_types"),
        ({"aug_weights": -1.0}, "aug_weights"),
        ({"base": "swav"}, "base"),
        (
            {"feature_augmentation": "gaussian", "fa_position": "predictor"},
            "fa_position='predictor' needs base",
        ),
        (
            {
                "feature_augmentation": "gaussian",
                "fa_stop_grad": "target",
                "fa_position": "encoder",
            },
            "needs fa_position='projector'",
        ),
        ({"feature_augmentation": "dropout", "fa_strength": 1.0}, "must be < 1"),
        ({"lr": float("inf")}, "'lr' parameter"),
        ({"temperature": float("nan")}, "'temperature' parameter"),
        # non-regression (new-user trial): a raw batch-norm error before
        ({"batch_size": 1}, r"'batch_size' parameter.*\[2, inf\)"),
    ],
)
def test_augself_rejects_bad_parameters(rgb_images, params, match):
    """Bad parameters raise a ValueError naming the parameter."""
    with pytest.raises(ValueError, match=match):
        tiny(**params).fit(rgb_images)


def test_augself_rejects_image_types_for_vectors():
    """Vector backbones take the vector augmentation types only."""
    X = np.random.RandomState(0).randn(10, 4).astype(np.float32)
    with pytest.raises(ValueError, match=r"among \('shift', 'scale'\)"):
        AugSelfExtractor("mlp", max_epochs=1).fit(X)


def test_augself_needs_two_samples(rgb_images):
    """A single sample cannot train batch normalisation: a clear error."""
    with pytest.raises(ValueError, match="at least 2 samples"):
        tiny().fit(rgb_images[:1])


@pytest.mark.parametrize("base", ["simclr", "byol"])
def test_augself_resumes_after_interrupt(rgb_images, tmp_path, monkeypatch, base):
    """An interrupted fit resumes and ends as an uninterrupted one."""
    params = dict(base=base, max_epochs=4, feature_augmentation="gaussian")
    reference = weights_of(tiny(**params).fit(rgb_images))
    with monkeypatch.context() as patch:
        interrupt_at_epoch(patch, 3)
        with pytest.raises(KeyboardInterrupt, match="after 2 of 4 epochs"):
            tiny(checkpoint=tmp_path, **params).fit(rgb_images)
    epochs = []
    partial_fit = SSLNet.partial_fit
    monkeypatch.setattr(
        SSLNet,
        "partial_fit",
        lambda self, X, **kw: epochs.append(kw["epochs"]) or partial_fit(self, X, **kw),
    )
    resumed = tiny(checkpoint=tmp_path, **params).fit(rgb_images)
    assert epochs == [2]
    assert resumed.n_iter_ == 4
    assert_same_weights(reference, weights_of(resumed))


def test_augself_rejects_damaged_checkpoint(rgb_images, tmp_path):
    """A damaged checkpoint raises an error naming the file; it is never used."""
    tiny(checkpoint=tmp_path).fit(rgb_images)
    (path,) = [tmp_path / name for name in os.listdir(tmp_path)]
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=f"{path.name}.*damaged"):
        tiny(checkpoint=tmp_path).fit(rgb_images)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="damaged"):
        tiny(checkpoint=tmp_path).fit(rgb_images)


def test_augself_checkpoint_of_another_fit_is_refused(rgb_images, tmp_path):
    """A checkpoint written with other parameters is not resumed; the error says why."""
    tiny(checkpoint=tmp_path).fit(rgb_images)
    with pytest.raises(ValueError, match="another fit.*lr=0.03 there, 0.1 here"):
        tiny(checkpoint=tmp_path, lr=0.1).fit(rgb_images)
    finished = tiny(checkpoint=tmp_path).fit(rgb_images)  # nothing left to train
    assert finished.n_iter_ == 1


def test_augself_checkpoint_of_other_images_is_refused(rgb_images, tmp_path):
    """Non-regression (new-user trial): same parameters, other images of the same
    number, or the same images in another order, never resume a checkpoint."""
    tiny(checkpoint=tmp_path).fit(rgb_images)
    for other in (255 - rgb_images, rgb_images[::-1]):
        with pytest.raises(ValueError, match="another fit.*other training data"):
            tiny(checkpoint=tmp_path).fit(other)


def test_augself_feature_cache_is_keyed_by_fitted_weights(rgb_images, tmp_path):
    """memory= never returns features of other fitted weights."""
    first = tiny(memory=tmp_path).fit(rgb_images)
    second = tiny(memory=tmp_path, random_state=1).fit(rgb_images)
    assert_array_equal(first.transform(rgb_images), first.transform(rgb_images))
    cached = second.transform(rgb_images)
    assert_allclose(cached, tiny(random_state=1).fit(rgb_images).transform(rgb_images))
    assert len(os.listdir(tmp_path / "skfeat-features")) == 2


def test_augself_from_offline_lite0_weights():
    """Fine-tuning starts from the offline EfficientNet-Lite0 weights and moves them."""
    images = np.random.RandomState(0).randint(0, 256, (4, 48, 48, 3), np.uint8)
    start = get_backbone("efficientnet_lite0", weights="DEFAULT").state_dict()
    extractor = AugSelfExtractor(
        "efficientnet_lite0",
        weights="DEFAULT",
        base="simclr",
        max_epochs=1,
        batch_size=4,
        head_hidden=32,
        image_size=64,
        device="cpu",
        random_state=0,
    ).fit(images)
    assert extractor.transform(images).shape == (4, 1280)
    fitted = weights_of(extractor)
    assert weights_differ(start, fitted)
    stem = next(key for key in start if key.endswith("weight"))
    assert (fitted[stem] - start[stem]).abs().max() < 0.05  # a step, not a restart


def toy_net(seed, weight, epochs=40, net_class=SSLNet, **params):
    """SimCLR on the toy views (shift, brightness jitter), with a scale head."""
    views = AugmentationPipeline(
        [RandomCircularShift(16), RandomScale((0.4, 1.6), start=16)]
    )
    defaults = dict(
        module__backbone=get_backbone("mlp", in_features=19),
        module__base="simclr",
        module__dim=32,
        aux_heads__in_features=32,
        aux_heads__aug_types=views.aug_types,
        aux_heads__weights={"scale": weight},
        aux_heads__hidden=64,
        criterion=torch.nn.Identity,
        optimizer=torch.optim.SGD,
        lr=0.1,
        optimizer__momentum=0.9,
        optimizer__weight_decay=5e-4,
        max_epochs=epochs,
        batch_size=256,
        train_split=None,
        callbacks=ssl_callbacks("simclr", ["scale"] if weight else [], epochs, 0),
        device="cpu",
        verbose=0,
        augmentations=views,
        base="simclr",
        network_input=lambda backbone, x: x,
        seed=seed,
    )
    return net_class(SSLModel, **{**defaults, **params})


def train_toy(X, seed, weight):
    """Train the toy network; return it and its features of the clean ``X``."""
    net = toy_net(seed, weight)
    torch.manual_seed(seed)
    net.fit(TrainingImages(torch.from_numpy(X)))
    with torch.no_grad():
        features = net.module_.backbone.eval()(torch.from_numpy(X)).numpy()
    return net, features


@pytest.mark.parametrize("operator", ["gaussian", "dropout", "interpolate"])
def test_augself_feature_augmentation_toy_loss_decreases(operator):
    """Spec 6.4 smoke test: 2 epochs of SimCLR + FA on the toy task."""
    X = torch.from_numpy(toy_vectors(0)[0])
    net = toy_net(
        0,
        1.0,
        epochs=2,
        feature_augmentation=operator,
        feature_augmenter__strength=0.1,
    )
    torch.manual_seed(0)
    losses = net.fit(TrainingImages(X)).history[:, "train_loss"]
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[1] < losses[0]


def test_augself_engine_trains_through_accelerate():
    """A CPU single-process run through skorch's AccelerateMixin equals a plain one."""
    accelerate = pytest.importorskip("accelerate")
    from skorch.hf import AccelerateMixin

    class AcceleratedSSLNet(AccelerateMixin, SSLNet):
        train_step_single = SSLNet.train_step_single  # two views, not infer()

        def backward(self, loss):
            self.accelerator.backward(loss)

    X = torch.from_numpy(toy_vectors(0, n=128)[0])
    plain = toy_net(0, 1.0, epochs=2)
    accelerated = toy_net(
        0,
        1.0,
        epochs=2,
        net_class=AcceleratedSSLNet,
        accelerator=accelerate.Accelerator(cpu=True),
        device=None,
    )
    for net in (plain, accelerated):
        torch.manual_seed(0)
        net.fit(TrainingImages(X))
    assert len(accelerated.history) == 2
    assert accelerated.history[-1, "aux_scale"] == pytest.approx(
        plain.history[-1, "aux_scale"], rel=1e-5
    )
    expected = plain.module_.backbone.state_dict()
    for key, value in accelerated.module_.backbone.state_dict().items():
        torch.testing.assert_close(value, expected[key], msg=key)


@pytest.mark.slow
def test_augself_toy_task_keeps_the_masked_attribute():
    """Spec 6.2: the head learns, brightness stays decodable, shape is kept."""
    gains, accuracies = [], {0.0: [], 1.0: []}
    for seed in range(3):
        X, labels, beta = toy_vectors(seed)
        train, test = np.arange(512), np.arange(512, 1024)
        r2 = {}
        for weight in (0.0, 1.0):
            net, features = train_toy(X, seed, weight)
            probe = Ridge(alpha=1e-3).fit(features[train], beta[train])
            r2[weight] = probe.score(features[test], beta[test])
            shape = LogisticRegression(max_iter=2000).fit(
                features[train], labels[train]
            )
            accuracies[weight].append(shape.score(features[test], labels[test]))
        aux = net.history[:, "aux_scale"]
        assert aux[0] >= 5 * aux[-1]
        gains.append(r2[1.0] - r2[0.0])
    assert np.mean(gains) > 0.02
    assert min(accuracies[1.0]) >= 0.998
    # no loss against plain, up to one of the 512 test samples
    assert np.mean(accuracies[1.0]) >= np.mean(accuracies[0.0]) - 1 / 512
