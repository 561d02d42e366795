"""Per-sample batched image augmentation: kornia against torchvision building blocks.

A batch of 64 RGB float images at 96 px on CPU (one thread), every sample with
its own parameters.  Compared, interleaved in one run:

* crop-resize: kornia ``crop_and_resize`` (one affine grid per box),
  ``torchvision.ops.roi_align`` (one box per image) and a per-image loop of
  ``transforms.v2.functional.resized_crop``;
* colour jitter (brightness, contrast, saturation, hue): kornia.enhance with
  per-sample factor tensors, against broadcast blends for the first three plus a
  per-image ``v2.functional.adjust_hue`` loop (torchvision has no batched
  per-sample hue), and a per-image loop of the four v2 kernels;
* Gaussian blur with per-sample sigma: kornia ``gaussian_blur2d`` with a
  ``(B, 2)`` sigma against a per-image ``v2.functional.gaussian_blur`` loop;
* the whole AugSelf view chain (crop, flip, jitter p 0.8, grayscale p 0.2,
  blur p 0.5): ``skfeat.transforms.AugmentationPipeline`` on the batch against
  a torchvision ``v2.Compose`` called image by image (a DataLoader's way).

Usage: python benchmarks/bench_augment.py [--batch 64] [--size 96] [--rounds 5]
"""

import argparse
import math

import kornia
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from _timing import best_of
from torchvision.ops import roi_align

from skfeat.transforms import (
    AugmentationPipeline,
    ColorJitter,
    GaussianBlur,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
)


def make_problem(batch, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=g)
    side = torch.empty(batch, 2).uniform_(0.45, 1.0, generator=g) * size
    top_left = torch.rand(batch, 2, generator=g) * (size - side)
    factors = torch.empty(batch, 3).uniform_(0.6, 1.4, generator=g)
    hue = torch.empty(batch).uniform_(-0.1, 0.1, generator=g)
    sigma = torch.empty(batch).uniform_(0.1, 2.0, generator=g)
    return x, top_left, side, factors, hue, sigma


def crop_contenders(x, top_left, side, size):
    y0, x0 = top_left.unbind(1)
    y1, x1 = y0 + side[:, 0], x0 + side[:, 1]
    corners = torch.stack(
        [
            torch.stack([x0, y0], 1),
            torch.stack([x1 - 1, y0], 1),
            torch.stack([x1 - 1, y1 - 1], 1),
            torch.stack([x0, y1 - 1], 1),
        ],
        1,
    )
    rois = torch.stack([torch.arange(len(x), dtype=x.dtype), x0, y0, x1, y1], 1)
    boxes = top_left.round().int().tolist(), side.round().int().tolist()
    return {
        "kornia crop_and_resize": lambda: kornia.geometry.transform.crop_and_resize(
            x, corners, (size, size)
        ),
        "torchvision roi_align": lambda: roi_align(
            x, rois, (size, size), sampling_ratio=2, aligned=True
        ),
        "torchvision v2 loop": lambda: torch.stack(
            [
                TF.resized_crop(img, top, left, h, w, [size, size], antialias=True)
                for img, (top, left), (h, w) in zip(x, *boxes)
            ]
        ),
    }


def _blend(a, b, factor):
    return (factor.view(-1, 1, 1, 1) * a + (1 - factor.view(-1, 1, 1, 1)) * b).clamp(
        0, 1
    )


def broadcast_bcs(x, factors):
    x = (x * factors[:, 0].view(-1, 1, 1, 1)).clamp(0, 1)
    gray = TF.rgb_to_grayscale(x)
    x = _blend(x, gray.mean((-3, -2, -1), keepdim=True), factors[:, 1])
    return _blend(x, TF.rgb_to_grayscale(x), factors[:, 2])


def jitter_contenders(x, factors, hue):
    enhance = kornia.enhance

    def kornia_jitter():
        out = enhance.adjust_brightness_accumulative(x, factors[:, 0])
        out = enhance.adjust_contrast_with_mean_subtraction(out, factors[:, 1])
        out = enhance.adjust_saturation_with_gray_subtraction(out, factors[:, 2])
        return enhance.adjust_hue(out, 2 * math.pi * hue)

    def blends_and_hue_loop():
        out = broadcast_bcs(x, factors)
        return torch.stack([TF.adjust_hue(img, h) for img, h in zip(out, hue.tolist())])

    def v2_loop():
        rows = []
        for img, (b, c, s), h in zip(x, factors.tolist(), hue.tolist()):
            img = TF.adjust_brightness(img, b)
            img = TF.adjust_contrast(img, c)
            img = TF.adjust_saturation(img, s)
            rows.append(TF.adjust_hue(img, h))
        return torch.stack(rows)

    return {
        "kornia enhance (b, c, s, hue)": kornia_jitter,
        "torchvision blends + hue loop": blends_and_hue_loop,
        "torchvision v2 loop": v2_loop,
        "kornia hue only": lambda: enhance.adjust_hue(x, 2 * math.pi * hue),
        "torchvision blends only (b, c, s)": lambda: broadcast_bcs(x, factors),
    }


def blur_contenders(x, sigma, kernel):
    sigmas = torch.stack([sigma, sigma], 1)
    return {
        "kornia gaussian_blur2d": lambda: kornia.filters.gaussian_blur2d(
            x, kernel, sigmas
        ),
        "torchvision v2 loop": lambda: torch.stack(
            [TF.gaussian_blur(img, [kernel, kernel], [s]) for img, s in zip(x, sigma)]
        ),
    }


def pipeline_contenders(x, size, kernel):
    pipe = AugmentationPipeline(
        [
            RandomResizedCrop(size),
            RandomHorizontalFlip(),
            ColorJitter(),
            RandomGrayscale(),
            GaussianBlur(kernel_size=kernel),
        ]
    )
    compose = T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.2, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=0.5),
        ]
    )
    generator = torch.Generator().manual_seed(0)
    return {
        "skfeat AugmentationPipeline": lambda: pipe.apply(
            x, pipe.sample(len(x), generator)
        ),
        "torchvision v2 Compose per image": lambda: torch.stack(
            [compose(img) for img in x]
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, top_left, side, factors, hue, sigma = make_problem(args.batch, args.size)
    kernel = 2 * (args.size // 20) + 1
    print(f"batch {args.batch} x 3 x {args.size} x {args.size}, CPU, 1 thread")
    for op, contenders in [
        ("crop-resize", crop_contenders(x, top_left, side, args.size)),
        ("colour jitter", jitter_contenders(x, factors, hue)),
        (f"blur (kernel {kernel})", blur_contenders(x, sigma, kernel)),
        ("view chain", pipeline_contenders(x, args.size, kernel)),
    ]:
        seconds, _ = best_of(contenders, args.rounds)
        fastest = min(seconds.values())
        for name, s in seconds.items():
            print(f"{op:18s} {name:36s} {1e3 * s:8.2f} ms  {s / fastest:5.2f}x")


if __name__ == "__main__":
    main()
