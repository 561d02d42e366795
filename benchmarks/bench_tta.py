"""Steered (embedding-space) against input-space test-time augmentation.

Four measurements, each in one run:

All extractors here use the trained maps (``steering="expm"``); the colour
steering is measured in ``bench_equivariance_real.py``.

* **TTA speed and agreement**: an ``EquivariantExtractor`` on ``--model``
  (resnet18, ``weights=None``) at ``--size`` px on the CPU, trained for one
  epoch on the images, then K = ``--k`` colour augmentations of the same
  images either steered in embedding space (``transform_augmented``: one
  encoder pass) or applied to the pixels (K encoder passes), interleaved,
  best of ``--rounds`` (target: >= 20x; the paper reports ~50x).  Agreement
  is the mean cosine between the two TTA mean directions; with an encoder
  trained one epoch on random images it only shows the pipeline runs.
* **Equivariance error** on the spec 6.3 toy task (relative error, 1.0 at
  M = I), and the agreement of both TTAs there (K = 50).
* **Accuracy on real images**: an ``EquivariantExtractor`` started from the
  offline EfficientNet-Lite0 weights, trained one epoch on 400 of
  scikit-learn's digits at 32 px with brightness and contrast steered; a
  logistic-regression probe's test accuracy (300 digits) with plain,
  steered-TTA and input-space-TTA predictions (K = 20), and the agreement of
  the two TTA probability vectors (mean cosine).
* **Fit throughput**: ``EquivariantExtractor.fit`` against a bare torch loop
  doing the same three views, SimCLR, steering and losses (target >= 0.85x).

Usage: python benchmarks/bench_tta.py [--model resnet18] [--n 16] [--size 224]
       [--k 50] [--rounds 2] [--fit-n 128] [--fit-size 64]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from _timing import best_of
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from skfeat import EquivariantExtractor, SteeredTTAClassifier
from skfeat.extraction._inputs import decode_uint8
from skfeat.models import get_backbone
from skfeat.nn import (
    ExpmSteering,
    equivariance_nce_loss,
    nt_xent_loss,
    projection_mlp,
)
from skfeat.transforms import (
    AugmentationPipeline,
    RandomHorizontalFlip,
    RandomResizedCrop,
    SteeredAugmentation,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _ssl_helpers import toy_vectors  # noqa: E402


def unit(a, axis=-1):
    return a / np.linalg.norm(a, axis=axis, keepdims=True)


def tta_agreement(embedded, direct):
    """Mean cosine of the two TTA mean directions, rows (n, K, d)."""
    return float(
        (unit(unit(embedded).mean(1)) * unit(unit(direct).mean(1))).sum(1).mean()
    )


def input_space_tta(extractor, images, params):
    """K encoder passes: augment the pixels, then embed; shape (n, K, d)."""
    augmentation = SteeredAugmentation(extractor.steered)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    embedded = []
    for g in params:
        augmented = augmentation.apply(x, torch.from_numpy(g)[None])
        pixels = (augmented.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1)
        embedded.append(extractor.transform(pixels.numpy()))
    return np.stack(embedded, 1)


def tta_benchmark(args):
    images = np.random.RandomState(0).randint(
        0, 256, (args.n, args.size, args.size, 3), dtype=np.uint8
    )
    extractor = EquivariantExtractor(
        args.model,
        weights=None,
        steering="expm",
        max_epochs=1,
        batch_size=args.n,
        image_size=args.size,
        device="cpu",
        random_state=0,
    ).fit(images)
    params = extractor.sample_params(args.k, random_state=0)
    seconds, results = best_of(
        {
            "steered": lambda: extractor.transform_augmented(images, params),
            "input": lambda: input_space_tta(extractor, images, params),
        },
        args.rounds,
    )
    print(
        f"TTA: {args.model}, weights=None, {args.n} images of {args.size} px, "
        f"K={args.k}, CPU, best of {args.rounds}"
    )
    for name in ("steered", "input"):
        print(f"{name:>9} TTA: {seconds[name]:.3f} s")
    print(
        f"speed-up steered / input-space: "
        f"{seconds['input'] / seconds['steered']:.1f}x (target >= 20)"
    )
    agreement = tta_agreement(results["steered"], results["input"])
    print(f"agreement (1-epoch random-image encoder): mean cosine {agreement:.3f}")


def toy_benchmark(label, **params):
    errors, agreements = [], []
    for seed in range(3):
        X = toy_vectors(seed, n=2560)[0]
        test = X[2048:]
        extractor = EquivariantExtractor(
            "mlp",
            steered=("scale", "rotate"),
            max_epochs=20,
            batch_size=64,
            lr=0.4,
            device="cpu",
            random_state=seed,
            **params,
        ).fit(X[:2048])
        augmentation = SteeredAugmentation(extractor.steered, start=16)
        params_g = extractor.sample_params(len(test), random_state=seed)
        z = extractor.transform(test)
        z_g = extractor.transform(
            augmentation.apply(
                torch.from_numpy(test), torch.from_numpy(params_g)
            ).numpy()
        )
        steered = extractor.steer(z, params_g)
        errors.append(
            ((unit(steered) - unit(z_g)) ** 2).sum()
            / ((unit(z) - unit(z_g)) ** 2).sum()
        )
        gs = extractor.sample_params(50, random_state=seed)
        direct = np.stack(
            [
                extractor.transform(
                    augmentation.apply(
                        torch.from_numpy(test), torch.from_numpy(g)[None]
                    ).numpy()
                )
                for g in gs
            ],
            1,
        )
        agreements.append(
            tta_agreement(extractor.transform_augmented(test, gs), direct)
        )
    print(
        f"toy task (spec 6.3, 3 seeds, {label}): relative equivariance error "
        f"{np.mean(errors):.3f} ({', '.join(f'{e:.3f}' for e in errors)}; "
        f"1.0 at M = I, target <= 0.6); TTA agreement K=50: mean cosine "
        f"{np.mean(agreements):.4f} (target >= 0.98)"
    )


def digits_benchmark():
    digits = load_digits()
    images = np.repeat(
        (digits.images * 255 / 16).round().astype(np.uint8)[..., None], 3, -1
    )
    X_train, X_test, y_train, y_test = train_test_split(
        images,
        digits.target,
        train_size=400,
        test_size=300,
        random_state=0,
        stratify=digits.target,
    )
    extractor = EquivariantExtractor(
        "efficientnet_lite0",
        weights="DEFAULT",
        steering="expm",
        steered=("brightness", "contrast"),
        image_size=32,
        max_epochs=1,
        batch_size=64,
        lr=0.3,
        device="cpu",
        random_state=0,
    ).fit(X_train)
    tta = SteeredTTAClassifier(
        extractor, LogisticRegression(max_iter=2000), n_augmentations=20, random_state=0
    ).fit(X_train, y_train)
    probe = tta.classifier_
    steered = tta.predict_proba(X_test)
    direct = input_space_tta(extractor, X_test, tta.params_list_)
    direct = np.mean([probe.predict_proba(z) for z in direct.transpose(1, 0, 2)], 0)
    plain = probe.predict_proba(extractor.transform(X_test))
    print(
        "digits: efficientnet_lite0 (weights=DEFAULT), 1 epoch on 400 images at "
        "32 px, brightness and contrast steered, K=20, 300 test images"
    )
    for name, proba in (
        ("plain", plain),
        ("steered TTA", steered),
        ("input TTA", direct),
    ):
        accuracy = np.mean(tta.classes_[proba.argmax(1)] == y_test)
        print(f"{name:>15}: accuracy {accuracy:.3f}")
    cosine = (unit(steered) * unit(direct)).sum(1).mean()
    print(f"agreement of the TTA probabilities: mean cosine {cosine:.3f}")


def bare_loop(images, model, batch, lr):
    """One epoch of the same objective written directly in torch."""
    generator = torch.Generator().manual_seed(0)
    backbone = get_backbone(model).train()
    size = images.shape[-1]
    views = AugmentationPipeline([RandomResizedCrop(size), RandomHorizontalFlip()])
    steered = SteeredAugmentation(("brightness", "contrast", "saturation", "hue"))
    with torch.no_grad():
        dim = backbone.eval()(torch.zeros(2, 3, size, size)).shape[1]
    backbone.train()
    projector = projection_mlp(dim, dim, min(128, dim))
    steering = ExpmSteering(dim, 4)
    parameters = [
        *backbone.parameters(),
        *projector.parameters(),
        *steering.parameters(),
    ]
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=5e-4)
    for rows in torch.randperm(len(images), generator=generator).split(batch):
        x = images[rows]
        v1 = views.apply(x, views.sample(len(x), generator))
        v2 = views.apply(x, views.sample(len(x), generator))
        g = steered.sample(len(x), generator)
        v = torch.cat([v1, v2, steered.apply(v1, g)])
        v = backbone.preprocessing.normalize(v).contiguous(
            memory_format=torch.channels_last
        )
        y1, y2, y3 = backbone(v).chunk(3)
        loss = nt_xent_loss(projector(y1), projector(y2), 0.1)
        loss = loss + equivariance_nce_loss(steering(y1, g), y3, 0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def fit_benchmark(args):
    images = np.random.RandomState(0).randint(
        0, 256, (args.fit_n, args.fit_size, args.fit_size, 3), dtype=np.uint8
    )
    decoded = decode_uint8(images, args.fit_size)
    extractor = EquivariantExtractor(
        args.model,
        weights=None,
        steering="expm",
        max_epochs=1,
        batch_size=32,
        image_size=args.fit_size,
        device="cpu",
        random_state=0,
    )
    seconds, _ = best_of(
        {
            "fit": lambda: extractor.fit(images),
            "bare": lambda: bare_loop(decoded, args.model, 32, 0.03 * 32 / 256),
        },
        args.rounds,
    )
    rate = {name: args.fit_n / s for name, s in seconds.items()}
    print(
        f"fit: {args.model}, {args.fit_n} images of {args.fit_size} px, batch 32, "
        f"CPU, best of {args.rounds}"
    )
    for name in ("fit", "bare"):
        print(f"{name:>9}: {rate[name]:7.1f} images/s ({seconds[name]:.2f} s)")
    print(f"fit / bare throughput: {rate['fit'] / rate['bare']:.3f}x (target >= 0.85)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fit-n", type=int, default=128)
    parser.add_argument("--fit-size", type=int, default=64)
    parser.add_argument(
        "--skip", nargs="*", default=(), choices=["tta", "toy", "digits", "fit"]
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if "tta" not in args.skip:
        tta_benchmark(args)
    if "toy" not in args.skip:
        toy_benchmark("nce, tau=0.1 (default)")
        toy_benchmark("nce, tau=0.2", temperature=0.2)
        toy_benchmark("nce, tau=0.05", temperature=0.05)
        toy_benchmark("mse", equivariance_loss="mse")
    if "digits" not in args.skip:
        digits_benchmark()
    if "fit" not in args.skip:
        fit_benchmark(args)


if __name__ == "__main__":
    main()
