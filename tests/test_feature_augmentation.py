"""Tests of FeatureAugmenter and the multi-positive InfoNCE (spec section 4.2, 6.4)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from skfeat.nn import FeatureAugmenter, multi_positive_info_nce, nt_xent_loss

OPERATOR_SETTINGS = [
    ("gaussian", "positive"),
    ("dropout", "positive"),
    ("interpolate", "positive"),
    ("interpolate", "batch"),
]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _features(n=32, d=16, seed=0):
    return torch.randn(n, d, generator=_gen(seed))


@pytest.mark.parametrize("operator, partner", OPERATOR_SETTINGS)
def test_feature_augmenter_preserves_shape_and_seed(operator, partner):
    """Augmented features keep the shape; the same generator seed repeats them."""
    z, positive = _features(), _features(seed=1)
    augment = FeatureAugmenter(operator, strength=0.3, partner=partner)
    out = augment(z, positive, generator=_gen(3))
    assert out.shape == z.shape and not torch.equal(out, z)
    assert torch.equal(out, augment(z, positive, generator=_gen(3)))


@pytest.mark.parametrize("operator", ["gaussian", "dropout"])
def test_feature_augmenter_stays_close_at_strength_0_1(operator):
    """At strength 0.1 the mean cosine between z_hat and z is at least 0.9."""
    z = _features(n=256, d=64)
    out = FeatureAugmenter(operator, strength=0.1)(z, generator=_gen())
    assert F.cosine_similarity(out, z, dim=1).mean() >= 0.9


def test_feature_augmenter_operator_definitions():
    """Gaussian keeps row norms; dropout scales kept entries by 1/(1-p)."""
    z = _features()
    gaussian = FeatureAugmenter("gaussian", strength=0.5)(z, generator=_gen())
    assert_close(gaussian.norm(dim=1), z.norm(dim=1))
    dropped = FeatureAugmenter("dropout", strength=0.25)(z, generator=_gen())
    kept = dropped != 0
    assert_close(dropped[kept], z[kept] / 0.75)
    assert 0.15 < 1 - kept.float().mean() < 0.35


def test_feature_augmenter_interpolates_towards_its_partner():
    """Interpolation moves z_i along z_j - z_i, |mu| <= a; 'batch' picks another row."""
    z = 3 * torch.eye(6)
    positive = torch.ones(6, 6)
    near = FeatureAugmenter("interpolate", strength=0.4)(z, positive, generator=_gen())
    mu = (near - z)[:, :1].sum(1) / (positive - z)[:, :1].sum(1)
    assert_close(near, z + mu[:, None] * (positive - z))
    assert mu.abs().max() <= 0.4
    mixed = FeatureAugmenter("interpolate", strength=0.4, partner="batch")
    offsets = mixed(z, generator=_gen()) - z
    for i, row in enumerate(offsets):
        moved = (row.abs() > 1e-6).nonzero().flatten().tolist()
        assert len(moved) == 2 and i in moved  # itself and exactly one other row


def test_feature_augmenter_stop_grad_input_gives_zero_encoder_gradient():
    """stop_grad='input': the augmented branch trains the predictor, not the encoder."""
    torch.manual_seed(0)
    encoder, predictor = torch.nn.Linear(5, 4), torch.nn.Linear(4, 4)
    x = _features(n=8, d=5)
    z1, z2 = encoder(x[:4]), encoder(x[4:])
    grads = {}
    for mode in ("none", "input", "target"):
        augment = FeatureAugmenter("gaussian", strength=0.1, stop_grad=mode)
        z_hat = augment(z1, generator=_gen())
        branch = -F.cosine_similarity(predictor(z_hat), z2.detach(), dim=1).mean()
        params = [*encoder.parameters(), *predictor.parameters()]
        grads[mode] = torch.autograd.grad(
            branch, params, allow_unused=True, retain_graph=True
        )
    assert all(g.abs().sum() > 0 for g in grads["none"])
    assert all(g is None for g in grads["input"][:2])
    assert all(g.abs().sum() > 0 for g in grads["input"][2:])
    assert not FeatureAugmenter(stop_grad="target")(z1).requires_grad
    assert_close(grads["target"][2], grads["input"][2])


def test_multi_positive_info_nce_matches_loop_reference():
    """Multi-positive InfoNCE equals the spec formula written as loops."""
    z = _features(n=9, d=4)
    instance = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    anchors = torch.arange(9) < 6  # views are anchors, augmented rows only positives
    temperature = 0.5
    sims = F.normalize(z, dim=1) @ F.normalize(z, dim=1).T
    expected = 0.0
    for i in range(6):
        denominator = sum(
            math.exp(sims[i, k] / temperature) for k in range(9) if k != i
        )
        positives = [q for q in range(9) if q != i and instance[q] == instance[i]]
        expected -= sum(
            math.log(math.exp(sims[i, q] / temperature) / denominator)
            for q in positives
        ) / len(positives)
    loss = multi_positive_info_nce(z, instance, temperature, anchors)
    assert loss.item() == pytest.approx(expected / 6, rel=1e-5)
    z1, z2 = z[:3], z[3:6]
    assert_close(
        multi_positive_info_nce(z[:6], instance[:6], 0.5), nt_xent_loss(z1, z2, 0.5)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"operator": "learned"}, "operator must be one of"),
        ({"partner": "queue"}, "partner must be one of"),
        ({"stop_grad": "all"}, "stop_grad must be one of"),
        (
            {"operator": "dropout", "strength": 1.0},
            r"strength must be a number in \[0, 1\)",
        ),
        ({"strength": -0.1}, "strength must be"),
    ],
)
def test_feature_augmenter_bad_parameters_raise(kwargs, match):
    """Bad parameters raise a ValueError naming the parameter."""
    with pytest.raises(ValueError, match=match):
        FeatureAugmenter(**kwargs)


def test_feature_augmenter_interpolate_positive_needs_partner():
    """Interpolating with the positive partner requires it, and rows need a positive."""
    with pytest.raises(ValueError, match="needs positive="):
        FeatureAugmenter("interpolate")(_features())
    with pytest.raises(ValueError, match="at least one positive"):
        multi_positive_info_nce(_features(n=3), torch.arange(3))
    with pytest.raises(ValueError, match="at least one positive"):
        multi_positive_info_nce(
            _features(n=3), torch.arange(3), anchors=torch.ones(3, dtype=bool)
        )
