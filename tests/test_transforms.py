"""Tests of the parametric augmentation protocol (spec section 2.2 and 2.6)."""

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from numpydoc.validate import validate
from torch.testing import assert_close

import skfeat.transforms
from skfeat.transforms import (
    AugmentationPipeline,
    ColorJitter,
    GaussianBlur,
    RandomCircularShift,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRot90,
    RandomScale,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _images(n=6, size=12, seed=0):
    return torch.rand(n, 3, size, size, generator=_gen(seed))


def _full_pipeline(size=8):
    return AugmentationPipeline(
        [
            RandomResizedCrop(size),
            RandomHorizontalFlip(),
            ColorJitter(),
            RandomGrayscale(),
            GaussianBlur(kernel_size=3),
        ]
    )


IMAGE_AUGS = [
    RandomResizedCrop(8),
    RandomHorizontalFlip(),
    ColorJitter(p=0.5),
    RandomGrayscale(p=0.5),
    GaussianBlur(p=0.5, kernel_size=5),
    RandomRot90(p=1.0),
]


def test_transforms_crop_and_color_targets_are_4d_in_unit_range():
    """Crop and colour targets have 4 columns within [-1, 1]; records within range."""
    pipe = _full_pipeline()
    gen = _gen()
    p1, p2 = pipe.sample(500, gen), pipe.sample(500, gen)
    targets = pipe.delta(p1, p2)
    for name in ("crop", "color"):
        assert targets[name].shape == (500, 4)
        assert targets[name].abs().max() <= 1
        assert targets[name].abs().max() > 0.3  # the range is used, not degenerate
    crop_record = pipe.augmentations[0].record(p1["crop"])
    assert ((crop_record >= 0) & (crop_record <= 1)).all()
    area = crop_record[:, 2] * crop_record[:, 3]
    assert area.min() >= 0.2 - 1e-6
    color_record = pipe.augmentations[2].record(p1["color"])
    assert color_record.abs().max() <= 0.5 + 1e-6


def test_transforms_flip_target_is_equality_of_flags():
    """The flip target is 1[f1 = f2]."""
    flip = RandomHorizontalFlip()
    f1 = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    f2 = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    assert_close(flip.delta(f1, f2), torch.tensor([[1.0], [0.0], [0.0], [1.0]]))


def test_transforms_crop_centre_uses_each_views_own_flip_flag():
    """A flipped view mirrors its own crop centre; the other view's stays."""
    pipe = AugmentationPipeline([RandomResizedCrop(8), RandomHorizontalFlip()])
    box = torch.tensor([[0.3, 0.1, 0.4, 0.2]])
    p1 = {"crop": torch.cat([box, torch.zeros(1, 1)], 1), "flip": torch.ones(1, 1)}
    p2 = {"crop": torch.cat([box, torch.zeros(1, 1)], 1), "flip": torch.zeros(1, 1)}
    # What sample() does: copy the flag into the crop's mirrored column.
    for p in (p1, p2):
        p["crop"][:, 4] = p["flip"][:, 0]
    # View 1 is flipped: c_x = 1 - (0.1 + 0.1) = 0.8; view 2 keeps c_x = 0.2.
    assert_close(pipe.delta(p1, p2)["crop"], torch.tensor([[0.0, 0.6, 0.0, 0.0]]))
    sampled = pipe.sample(200, _gen())
    assert_close(sampled["crop"][:, 4], sampled["flip"][:, 0])
    left, width = sampled["crop"][:, 1], sampled["crop"][:, 3]
    expected = torch.where(
        sampled["flip"][:, 0].bool(), 1 - left - width / 2, left + width / 2
    )
    assert_close(pipe.augmentations[0].record(sampled["crop"])[:, 1], expected)


def test_transforms_flipped_crop_is_the_crop_of_the_mirrored_box():
    """flip(crop(x, box)) = crop(flip(x), mirrored box): why c_x becomes 1 - c_x."""
    x = _images(n=1, size=16)
    crop, flip = RandomResizedCrop(8), RandomHorizontalFlip()
    box = torch.tensor([[0.25, 0.125, 0.5, 0.5, 1.0]])
    mirrored = torch.tensor([[0.25, 1 - 0.125 - 0.5, 0.5, 0.5, 0.0]])
    flipped_view = flip.apply(crop.apply(x, box), torch.ones(1, 1))
    assert_close(flipped_view, crop.apply(flip.apply(x, torch.ones(1, 1)), mirrored))
    assert_close(crop.record(box), crop.record(mirrored))


def test_transforms_same_seed_same_params_and_outputs():
    """The same generator seed gives the same parameters and views."""
    pipe = _full_pipeline()
    x = _images()
    p_a, p_b = pipe.sample(6, _gen(3)), pipe.sample(6, _gen(3))
    for name in p_a:
        assert torch.equal(p_a[name], p_b[name])
    assert torch.equal(pipe.apply(x, p_a), pipe.apply(x, p_b))
    p_c = pipe.sample(6, _gen(4))
    assert not torch.equal(p_a["crop"], p_c["crop"])


@pytest.mark.parametrize("aug", IMAGE_AUGS, ids=lambda a: a.name)
def test_transforms_batched_apply_equals_one_sample_at_a_time(aug):
    """Per-sample parameters give the results of applying each sample alone."""
    x = _images(n=8)
    params = aug.sample(8, _gen(1))
    batched = aug.apply(x, params)
    single = torch.cat([aug.apply(x[i : i + 1], params[i : i + 1]) for i in range(8)])
    assert_close(batched, single)


def test_transforms_crop_without_resizing_copies_the_box():
    """A box as large as the output is copied pixel for pixel."""
    x = _images(n=2, size=16)
    params = torch.tensor([[0.25, 0.5, 0.5, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5, 0.0]])
    out = RandomResizedCrop(8).apply(x, params)
    assert_close(out[0], x[0, :, 4:12, 8:16])
    assert_close(out[1], x[1, :, 0:8, 0:8])


def test_transforms_color_jitter_matches_torchvision_per_image():
    """Batched jitter equals torchvision's v2 kernels per image, in the drawn order."""
    jitter = ColorJitter(p=1.0)
    x = _images(n=6)
    params = jitter.sample(6, _gen(2))
    kernels = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation]
    kernels.append(TF.adjust_hue)
    expected = []
    for img, row in zip(x, params):
        for op in row[4:].long().tolist():
            img = kernels[op](img, float(row[op]))
        expected.append(img)
    assert_close(jitter.apply(x, params), torch.stack(expected), atol=2e-3, rtol=0)
    assert len({tuple(row[4:].tolist()) for row in params}) > 1  # orders differ


def test_transforms_color_jitter_identity_factors_and_zero_records():
    """Factor 1 and hue 0 leave images unchanged; a not-applied jitter records zeros."""
    jitter = ColorJitter(p=0.5)
    x = _images()
    params = jitter.sample(400, _gen())
    not_applied = (params[:, :4] == torch.tensor([1.0, 1.0, 1.0, 0.0])).all(1)
    assert 100 < int(not_applied.sum()) < 300
    assert (jitter.record(params)[not_applied] == 0).all()
    assert (jitter.record(params)[~not_applied] != 0).all(1).all()
    identity = params[not_applied][:6]
    assert_close(jitter.apply(x, identity), x)
    hue_only = identity.clone()
    hue_only[:, 3] = 1e-9  # forces the hue kernel; a zero-turn hue is the identity
    assert_close(jitter.apply(x, hue_only), x, atol=1e-5, rtol=0)
    assert (ColorJitter(p=0.0).record(ColorJitter(p=0.0).sample(5)) == 0).all()


def test_transforms_grayscale_output_has_equal_channels():
    """A greyed sample has three equal channels; the others are unchanged."""
    x = _images(n=2)
    out = RandomGrayscale().apply(x, torch.tensor([[1.0], [0.0]]))
    assert_close(out[0, 0], out[0, 1])
    assert_close(out[0, 1], out[0, 2])
    assert_close(out[1], x[1])


def test_transforms_blur_matches_torchvision_and_records_scaled_sigma():
    """Per-sample blur equals torchvision's per image; record is sigma / sigma_max."""
    blur = GaussianBlur(p=0.5, kernel_size=5)
    x = _images(n=8)
    sigma = blur.sample(8, _gen(5))
    assert (sigma == 0).any() and (sigma > 0).any()
    expected = torch.stack(
        [
            TF.gaussian_blur(img, [5, 5], [float(s)]) if s > 0 else img
            for img, s in zip(x, sigma[:, 0])
        ]
    )
    assert_close(blur.apply(x, sigma), expected, atol=1e-5, rtol=0)
    assert_close(blur.record(sigma), sigma / 2.0)


def test_transforms_rot90_and_circular_shift_match_torch():
    """Quarter turns match torch.rot90, shifts match torch.roll, targets mod n."""
    x = _images(n=4)
    turns = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    expected = torch.stack([torch.rot90(x[k], k, dims=(-2, -1)) for k in range(4)])
    assert_close(RandomRot90().apply(x, turns), expected)
    assert_close(RandomRot90().delta(turns, turns.flip(0)), torch.tensor([1, 3, 1, 3]))
    vectors = torch.rand(3, 7, generator=_gen())
    shift = RandomCircularShift(5, start=1)
    k = torch.tensor([[0.0], [2.0], [4.0]])
    out = shift.apply(vectors, k)
    for i in range(3):
        assert_close(out[i, 1:6], torch.roll(vectors[i, 1:6], int(k[i])))
    assert_close(out[:, [0, 6]], vectors[:, [0, 6]])
    assert_close(shift.delta(k, k.flip(0)), torch.tensor([1, 0, 4]))


def test_transforms_random_scale_scales_the_block_and_normalises_record():
    """RandomScale multiplies its block; records are (factor - 1) / width."""
    scale = RandomScale((0.5, 1.5), start=2, stop=4)
    x = torch.ones(2, 5)
    factors = torch.tensor([[0.5], [1.25]])
    out = scale.apply(x, factors)
    assert_close(out[:, 2:4], factors.expand(-1, 2))
    assert_close(out[:, [0, 1, 4]], x[:, [0, 1, 4]])
    assert_close(scale.delta(factors, factors.flip(0)), torch.tensor([[-0.75], [0.75]]))


@pytest.mark.gpu
def test_transforms_apply_on_cuda_matches_cpu():
    """CPU-sampled parameters applied to a CUDA batch give the CPU result."""
    pipe = AugmentationPipeline([*IMAGE_AUGS[1:], RandomResizedCrop(8)])
    x = _images(n=8)
    params = pipe.sample(8, _gen())
    on_cuda = pipe.apply(x.cuda(), params)
    assert on_cuda.is_cuda
    assert_close(on_cuda.cpu(), pipe.apply(x, params), atol=1e-4, rtol=0)


def test_transforms_pipeline_aug_types_describe_the_heads():
    """aug_types gives each augmentation's loss kind and target width, by name."""
    pipe = AugmentationPipeline([RandomHorizontalFlip(), RandomCircularShift(5)])
    assert pipe.aug_types == {"flip": ("binary", 1), "shift": ("multiclass", 5)}


def test_transforms_pipeline_accepts_uint8_images():
    """uint8 images are scaled to [0, 1] before the chain."""
    pipe = AugmentationPipeline([RandomHorizontalFlip(p=0.0)])
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert_close(pipe.apply(x, pipe.sample(1)), torch.tensor([[[[0.0, 1.0]]]]))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RandomHorizontalFlip(p=1.5), "p must be"),
        (lambda: ColorJitter(hue=0.7), "hue must be"),
        (lambda: ColorJitter(brightness=-1), "brightness must be"),
        (lambda: RandomResizedCrop(0), "size must be"),
        (lambda: RandomResizedCrop(8, scale=(0.5, 0.2)), "scale must"),
        (lambda: GaussianBlur(kernel_size=4), "kernel_size must be"),
        (lambda: RandomCircularShift(0), "width must be"),
        (lambda: AugmentationPipeline([RandomRot90(), RandomRot90()]), "unique"),
        (
            lambda: RandomRot90().apply(torch.rand(1, 3, 4, 5), torch.ones(1, 1)),
            "square",
        ),
        (
            lambda: RandomGrayscale().apply(torch.rand(3, 4), torch.ones(3, 1)),
            "float images",
        ),
        (
            lambda: ColorJitter().apply(torch.rand(2, 1, 4, 4), torch.ones(2, 8)),
            "3 RGB channels",
        ),
        (
            lambda: RandomScale(stop=9).apply(torch.rand(2, 3), torch.ones(2, 1)),
            "up to 9",
        ),
    ],
)
def test_transforms_bad_input_raises_value_error(make, match):
    """Bad parameters and inputs raise a ValueError naming the problem."""
    with pytest.raises(ValueError, match=match):
        make()


def test_transforms_pipeline_rejects_non_augmentations():
    """A pipeline of something else raises TypeError."""
    with pytest.raises(TypeError, match="ParametricAugmentation"):
        AugmentationPipeline([lambda x: x])


@pytest.mark.parametrize("name", skfeat.transforms.__all__)
def test_transforms_public_docstrings(name):
    """Public transforms pass the enforced numpydoc checks."""
    enforced = {"GL02", "GL03", "PR01", "PR02", "PR06", "PR07", "SS01", "SS03", "EX01"}
    if name == "ParametricAugmentation":
        enforced.discard("EX01")  # an abstract base: its subclasses carry examples
    errors = validate(f"skfeat.transforms.{name}")["errors"]
    assert not [(code, msg) for code, msg in errors if code in enforced]
