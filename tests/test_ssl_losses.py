"""Tests of the AugSelf heads and the SSL base objectives against references."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from skfeat.nn import (
    AugSelfHead,
    AugSelfHeads,
    MoCoQueue,
    augself_head_loss,
    byol_loss,
    byol_momentum,
    moco_loss,
    momentum_update_,
    nt_xent_loss,
    projection_mlp,
    simsiam_loss,
    symmetrize,
)
from skfeat.transforms import (
    AugmentationPipeline,
    ColorJitter,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRot90,
)


def _rand(*shape, seed=0, grad=False):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    return x.requires_grad_(grad)


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_nt_xent_matches_explicit_loops():
    """NT-Xent equals a loop over the 2B rows with the self-similarity left out."""
    z1, z2 = _rand(3, 4), _rand(3, 4, seed=1)
    rows = torch.cat([z1, z2]).tolist()
    n, temperature = len(rows), 0.5
    total = 0.0
    for i in range(n):
        positive = (i + 3) % n
        denominator = sum(
            math.exp(_cos(rows[i], rows[k]) / temperature) for k in range(n) if k != i
        )
        total -= math.log(
            math.exp(_cos(rows[i], rows[positive]) / temperature) / denominator
        )
    assert nt_xent_loss(z1, z2, temperature).item() == pytest.approx(
        total / n, rel=1e-5
    )


def test_simsiam_loss_matches_cosines_and_stops_gradient_at_z():
    """SimSiam is -1/2 [cos(p1, z2) + cos(p2, z1)]; z receives no gradient."""
    p1, p2 = _rand(4, 3, grad=True), _rand(4, 3, seed=1, grad=True)
    z1, z2 = _rand(4, 3, seed=2, grad=True), _rand(4, 3, seed=3, grad=True)
    loss = simsiam_loss(p1, p2, z1, z2)
    expected = (
        -0.5
        * sum(
            _cos(a, b) + _cos(c, d)
            for a, b, c, d in zip(p1.tolist(), z2.tolist(), p2.tolist(), z1.tolist())
        )
        / 4
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    grads = torch.autograd.grad(loss, [p1, p2, z1, z2], allow_unused=True)
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0
    assert grads[2] is None and grads[3] is None


def test_byol_loss_matches_cosines_and_stops_gradient_at_targets():
    """BYOL is -2 [mean cos(p1, t2) + mean cos(p2, t1)]; targets get no gradient."""
    p1, p2 = _rand(4, 3, grad=True), _rand(4, 3, seed=1, grad=True)
    t1, t2 = _rand(4, 3, seed=2, grad=True), _rand(4, 3, seed=3, grad=True)
    loss = byol_loss(p1, p2, t1, t2)
    mean_cos = [
        sum(_cos(a, b) for a, b in zip(p.tolist(), t.tolist())) / 4
        for p, t in ((p1, t2), (p2, t1))
    ]
    assert loss.item() == pytest.approx(-2 * sum(mean_cos), rel=1e-5)
    grads = torch.autograd.grad(loss, [p1, t1, t2], allow_unused=True)
    assert grads[0].abs().sum() > 0 and grads[1] is None and grads[2] is None


def test_byol_momentum_follows_the_cosine_schedule():
    """The target momentum starts at the base, passes the midpoint, nears 1."""
    assert byol_momentum(1, 100) == pytest.approx(0.996)
    assert byol_momentum(51, 100) == pytest.approx(0.998)
    assert byol_momentum(100, 100) == pytest.approx(
        1 - 0.004 * (1 + math.cos(0.99 * math.pi)) / 2
    )
    with pytest.raises(ValueError, match="epoch must be"):
        byol_momentum(0, 100)


def test_momentum_update_is_ema_of_parameters_only():
    """The update moves parameters by (1 - m); BN statistics stay the target's."""
    torch.manual_seed(0)
    online, target = projection_mlp(3, 4, 2), projection_mlp(3, 4, 2)
    target[1].running_mean.fill_(7.0)
    before = [p.clone() for p in target.parameters()]
    momentum_update_(target, online, 0.9)
    for new, old, src in zip(target.parameters(), before, online.parameters()):
        assert_close(new, 0.9 * old + 0.1 * src)
    assert (target[1].running_mean == 7.0).all()
    with pytest.raises(ValueError, match="same parameter shapes"):
        momentum_update_(target, projection_mlp(3, 5, 2), 0.9)


def test_moco_loss_matches_logits_with_a_queue_and_stops_key_gradient():
    """MoCo's loss is CE over [q.k, q.queue] / T with label 0; keys get no gradient."""
    q, k = _rand(3, 4, grad=True), _rand(3, 4, seed=1, grad=True)
    queue = MoCoQueue(4, size=5, generator=torch.Generator().manual_seed(2))
    temperature = 0.2
    loss = moco_loss(q, k, queue.keys, temperature)
    expected = 0.0
    for qi, ki in zip(q.tolist(), k.tolist()):
        logits = [_cos(qi, ki)] + [_cos(qi, key) for key in queue.keys.tolist()]
        exps = [math.exp(v / temperature) for v in logits]
        expected -= math.log(exps[0] / sum(exps))
    assert loss.item() == pytest.approx(expected / 3, rel=1e-5)
    grads = torch.autograd.grad(loss, [q, k], allow_unused=True)
    assert grads[0].abs().sum() > 0 and grads[1] is None


def test_moco_queue_enqueues_normalised_keys_with_wraparound():
    """Keys replace the oldest entries, wrapping around the queue."""
    queue = MoCoQueue(2, size=4, generator=torch.Generator().manual_seed(0))
    assert_close(queue.keys.norm(dim=1), torch.ones(4))
    keys = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    queue.enqueue(keys[:3])
    queue.enqueue(keys[:2])
    unit = F.normalize(keys, dim=1)
    assert_close(queue.keys, torch.stack([unit[1], unit[1], unit[2], unit[0]]))
    assert int(queue.pointer) == 1


def test_augself_symmetrised_batch_has_2b_rows_with_swapped_targets():
    """The second half holds delta(w2, w1): negated, same flip, (4 - k) mod 4."""
    pipe = AugmentationPipeline(
        [
            RandomResizedCrop(8),
            RandomHorizontalFlip(),
            ColorJitter(),
            RandomRot90(p=1.0),
        ]
    )
    gen = torch.Generator().manual_seed(0)
    w1, w2 = pipe.sample(16, gen), pipe.sample(16, gen)
    forward, backward = pipe.delta(w1, w2), pipe.delta(w2, w1)
    y1, y2 = _rand(16, 5), _rand(16, 5, seed=1)
    for name in pipe.aug_types:
        inputs, targets = symmetrize(y1, y2, forward[name], backward[name])
        assert inputs.shape == (32, 10) and len(targets) == 32
        assert_close(inputs[16:], torch.cat([y2, y1], 1))
        assert_close(targets[:16], forward[name])
        if name in ("crop", "color"):
            assert_close(targets[16:], -forward[name])
        elif name == "flip":
            assert_close(targets[16:], forward[name])
        else:
            assert_close(targets[16:], (4 - forward[name]) % 4)
            assert (forward[name] % 2 == 1).any()  # odd turns tell the cases apart


def test_augself_heads_read_pre_projector_features():
    """Heads read 2D-wide inputs; the loss reaches the backbone, not the projector."""
    torch.manual_seed(0)
    backbone, projector = torch.nn.Linear(6, 5), projection_mlp(5, 5, 3)
    heads = AugSelfHeads(5, {"color": ("regression", 4)}, hidden=8)
    assert heads.heads["color"][0].in_features == 10
    x1, x2 = _rand(4, 6), _rand(4, 6, seed=1)
    y1, y2 = backbone(x1), backbone(x2)
    delta = torch.rand(4, 4) - 0.5
    total, _ = heads(y1, y2, {"color": (delta, -delta)})
    params = [*backbone.parameters(), *projector.parameters()]
    grads = torch.autograd.grad(total, params, allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads[:2])
    assert all(g is None for g in grads[2:])


def test_augself_heads_loss_matches_per_kind_reference():
    """The total sums weight * (MSE on tanh | BCE with logits | CE) over 2B rows."""
    torch.manual_seed(0)
    kinds = {"crop": ("regression", 4), "flip": ("binary", 1), "rot": ("multiclass", 4)}
    weights = {"crop": 1.0, "flip": 0.5, "rot": 2.0}
    heads = AugSelfHeads(3, kinds, weights, hidden=8)
    y1, y2 = _rand(5, 3), _rand(5, 3, seed=1)
    crop = torch.rand(5, 4) - 0.5
    flip = torch.randint(0, 2, (5, 1)).float()
    rot = torch.randint(0, 4, (5,))
    targets = {"crop": (crop, -crop), "flip": (flip, flip), "rot": (rot, (4 - rot) % 4)}
    total, per_type = heads(y1, y2, targets)
    inputs = torch.cat([torch.cat([y1, y2], 1), torch.cat([y2, y1], 1)])
    out = {name: heads.heads[name](inputs) for name in kinds}
    crop_all, flip_all = torch.cat([crop, -crop]), torch.cat([flip, flip])
    rot_all = torch.cat([rot, (4 - rot) % 4])
    expected = {
        "crop": ((out["crop"].tanh() - crop_all) ** 2).mean(),
        "flip": -(
            flip_all * F.logsigmoid(out["flip"])
            + (1 - flip_all) * F.logsigmoid(-out["flip"])
        ).mean(),
        "rot": -out["rot"].log_softmax(1)[torch.arange(10), rot_all].mean(),
    }
    for name in kinds:
        assert_close(per_type[name], expected[name])
    assert_close(total, sum(weights[n] * expected[n] for n in kinds))


def test_augself_weight_zero_removes_the_type():
    """A weight <= 0 builds no head and adds no loss; all zeros is the base method."""
    kinds = {"crop": ("regression", 4), "color": ("regression", 4)}
    heads = AugSelfHeads(3, kinds, {"crop": 0.0, "color": 1.0}, hidden=8)
    assert list(heads.heads) == ["color"]
    y1, y2 = _rand(4, 3), _rand(4, 3, seed=1)
    delta = torch.rand(4, 4)
    targets = {"crop": (delta, -delta), "color": (delta, -delta)}
    total, per_type = heads(y1, y2, targets)
    assert list(per_type) == ["color"]
    assert_close(total, per_type["color"])
    off = AugSelfHeads(3, kinds, weights=-1.0, hidden=8)
    total, per_type = off(y1, y2, targets)
    assert len(off.heads) == 0 and per_type == {} and total.item() == 0.0


def test_augself_heads_bad_arguments_raise():
    """Unknown loss kinds and weight names raise a ValueError naming them."""
    with pytest.raises(ValueError, match="loss_kind of 'crop'"):
        AugSelfHeads(3, {"crop": ("ranking", 4)})
    with pytest.raises(ValueError, match=r"unknown augmentation types \['blur'\]"):
        AugSelfHeads(3, {"crop": ("regression", 4)}, {"blur": 1.0})
    with pytest.raises(ValueError, match="loss_kind must be one of"):
        augself_head_loss(torch.zeros(2, 1), torch.zeros(2, 1), "ranking")


def test_augself_head_and_projector_shapes():
    """Head and projector widths follow their parameters (tiny models work)."""
    head = AugSelfHead(4, 3, hidden=6)
    assert head(torch.rand(2, 8)).shape == (2, 3)
    simsiam_projector = projection_mlp(4, 6, 5, n_layers=3, last_bn=True)
    linears = [m for m in simsiam_projector if isinstance(m, torch.nn.Linear)]
    assert [m.in_features for m in linears] == [4, 6, 6]
    assert isinstance(simsiam_projector[-1], torch.nn.BatchNorm1d)
    assert simsiam_projector(torch.rand(3, 4)).shape == (3, 5)
