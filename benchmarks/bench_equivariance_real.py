"""Does ``EquivariantExtractor`` steer real photos?  Measured on other photos.

Crops of six photos (scikit-learn's and scikit-image's) train the
extractor; crops of four *other* photos measure it.  Three measurements:

* **Equivariance ratio** per steered colour parameter and for all together:
  the mean relative error ``||p - f(T_g x)|| / ||f(T_g x)||`` of the steered
  prediction ``p = M(g) f(x)`` over that of the unsteered ``p = f(x)``, with g
  drawn from the training range; 1.0 means the maps do nothing.  For
  ``steering="color"`` (colour-bilinear embeddings of the frozen
  EfficientNet-Lite0 with its offline ImageNet weights; one row per seed) and
  for ``steering="expm"`` from the Lite0 start and from scratch at several
  budgets (epochs), with the fit's seconds.
* **OOD AUROC** (each ``"color"`` extractor): new crops of the training
  photos (in distribution) against the same crops with an ImageNet-C-style
  corruption (Gaussian noise, blur, low contrast per channel as in
  ImageNet-C, a fade towards the grey mean, colour shift) at two
  severities, scored by ``ood_score`` with its default steered parameters,
  by ``ood_score`` with g = 0 alone (which ranks inputs as the plain
  nearest-training-neighbour distance of the colour embedding does), and by
  an invariant baseline: the frozen Lite0 features' nearest-training-
  neighbour cosine.  ``--ood-on-test-photos`` repeats it with extractors
  fitted on crops of the four test photos, scoring new crops of those.
* **TTA accuracy** (the first ``"color"`` extractor): which of the four test
  photos a crop comes from, a logistic-regression probe on half the crops,
  with plain, steered-TTA (``SteeredTTAClassifier``) and input-space-TTA
  predictions (K colour augmentations) on the other half.

Usage: python benchmarks/bench_equivariance_real.py [--color-seeds 0 1 2]
       [--epochs 1 2 4] [--scratch-epochs 2 4] [--n 288] [--size 64] [--k 8]
       [--seed 0] [--lr 0.03] [--device cpu] [--ood-on-test-photos]
"""

import argparse
import time
from functools import partial

import numpy as np
import torch
from _photos import TEST_PHOTOS, TRAIN_PHOTOS, photo_crops
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfeat import DeepFeatureExtractor, EquivariantExtractor, SteeredTTAClassifier
from skfeat.transforms import SteeredAugmentation
from skfeat.transforms._steered import COLOR_PARAMS


def augment(images, g):
    """Apply the steered colour augmentation ``T_g`` to uint8 images (n, s, s, 3)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    out = SteeredAugmentation(COLOR_PARAMS).apply(x, torch.as_tensor(g))
    return (out.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def equivariance_ratios(extractor, images, seed):
    """Steered / unsteered relative error per colour parameter and for all."""
    rng = np.random.RandomState(seed)
    z = extractor.transform(images)
    ratios = []
    for j in [*range(len(COLOR_PARAMS)), None]:
        g = extractor.sample_params(len(images), random_state=rng.randint(2**31))
        if j is not None:
            g[:, np.arange(g.shape[1]) != j] = 0
        target = extractor.transform(augment(images, g))
        scale = np.linalg.norm(target, axis=1)
        steered = np.linalg.norm(extractor.steer(z, g) - target, axis=1) / scale
        unsteered = np.linalg.norm(z - target, axis=1) / scale
        ratios.append(steered.mean() / unsteered.mean())
    return ratios


def fit(steering, weights, epochs, seed, images, args):
    extractor = EquivariantExtractor(
        "efficientnet_lite0",
        weights=weights,
        steering=steering,
        image_size=args.size,
        max_epochs=epochs,
        lr=args.lr,
        batch_size=64,
        device=args.device,
        random_state=seed,
    )
    start = time.perf_counter()
    extractor.fit(images)
    return extractor, time.perf_counter() - start


CORRUPTIONS = {  # kind: (strong, mild)
    "noise": (0.08, 0.04),  # standard deviation of Gaussian pixel noise
    "blur": (5, 3),  # side of the box filter
    "contrast": (0.4, 0.6),  # factor towards each channel's mean (ImageNet-C's)
    "fade": (0.4, 0.6),  # factor towards the image's grey mean, greying colours too
    "colour": ([2, 1, 0], [1, 2, 0]),  # red-blue swap; channels rotated
}
SEVERITIES = ("strong", "mild")


def corrupt(images, kind, severity, rng):
    """An ImageNet-C-style corruption of uint8 images (n, s, s, 3)."""
    level = CORRUPTIONS[kind][SEVERITIES.index(severity)]
    x = images.astype(np.float32) / 255
    if kind == "noise":
        x = x + rng.normal(0, level, x.shape)
    elif kind == "blur":
        t = torch.from_numpy(x).permute(0, 3, 1, 2)
        t = torch.nn.functional.avg_pool2d(t, level, stride=1, padding=level // 2)
        x = t.permute(0, 2, 3, 1).numpy()
    elif kind in ("contrast", "fade"):
        axes = (1, 2) if kind == "contrast" else (1, 2, 3)
        x = level * x + (1 - level) * x.mean(axis=axes, keepdims=True)
    else:
        x = x[..., level]
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def knn_score(train, test):
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    return 1 - (test @ train.T).max(1)


def ood_aurocs(score, clean, severity):
    """AUROC of ``score`` on ``clean`` crops against each corruption of them."""
    rng = np.random.RandomState(0)
    inside = score(clean)
    labels = np.r_[np.zeros(len(inside)), np.ones(len(inside))]
    return [
        roc_auc_score(labels, np.r_[inside, score(corrupt(clean, kind, severity, rng))])
        for kind in CORRUPTIONS
    ]


def ood_table(extractors, train, clean):
    """AUROC of clean crops against corrupted copies, per score and severity."""
    frozen = DeepFeatureExtractor(
        "efficientnet_lite0", weights="DEFAULT", image_size=clean.shape[1], device="cpu"
    )
    reference = frozen.transform(train)
    zero = np.zeros((1, len(COLOR_PARAMS)), np.float32)
    scorers = {}
    for seed, extractor in extractors.items():
        scorers["ood_score (steered)", seed] = extractor.ood_score
        scorers["ood_score (g = 0)", seed] = partial(
            extractor.ood_score, params_list=zero
        )
    scorers["frozen Lite0 kNN", "-"] = lambda x: knn_score(
        reference, frozen.transform(x)
    )
    print("\nOOD AUROC, new crops of the training photos against corrupted copies")
    print(
        f"{'severity':>8} {'score':>20} {'seed':>4} "
        + " ".join(f"{k:>9}" for k in [*CORRUPTIONS, "mean"])
    )
    for severity in SEVERITIES:
        for (name, seed), score in scorers.items():
            cells = ood_aurocs(score, clean, severity)
            print(
                f"{severity:>8} {name:>20} {seed:>4} "
                + " ".join(f"{c:9.3f}" for c in [*cells, np.mean(cells)]),
                flush=True,
            )


def tta_table(extractor, images, sources, k, seed):
    half = len(images) // 2
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(extractor.transform(images[:half]), sources[:half])
    test, truth = images[half:], sources[half:]
    params = extractor.sample_params(k, random_state=seed)
    plain = probe.predict(extractor.transform(test))
    steered = SteeredTTAClassifier(extractor, probe, params_list=params)
    steered.fit(images[:half], sources[:half])
    input_space = np.mean(
        [
            probe.predict_proba(
                extractor.transform(augment(test, np.tile(g, (len(test), 1))))
            )
            for g in params
        ],
        axis=0,
    )
    print(
        f"\nWhich test photo a crop is from ({len(np.unique(sources))} classes, "
        f"{len(test)} test crops, K={k})"
    )
    print(f"  plain        {np.mean(plain == truth):.3f}")
    print(f"  steered TTA  {steered.score(test, truth):.3f}")
    print(
        f"  input TTA    {np.mean(probe.classes_[input_space.argmax(1)] == truth):.3f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--color-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--scratch-epochs", type=int, nargs="*", default=[2, 4])
    parser.add_argument("--n", type=int, default=288)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--ood-on-test-photos",
        action="store_true",
        help="repeat the OOD table with extractors fitted on the test photos",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    train, _ = photo_crops(TRAIN_PHOTOS, args.n, args.size, seed=args.seed)
    held, held_sources = photo_crops(TEST_PHOTOS, 160, args.size, seed=args.seed + 100)
    print(
        f"train: {args.n} crops of {', '.join(TRAIN_PHOTOS)}; measured on 160 "
        f"crops of {', '.join(TEST_PHOTOS)}; {args.size} px, batch 64, "
        f"lr {args.lr}, {args.device}"
    )
    header = " ".join(f"{n:>10}" for n in [*COLOR_PARAMS, "all"])
    print(
        f"\nsteered / unsteered error (1.0: the maps do nothing)\n"
        f"{'steering':>8} {'start':>8} {'epochs':>6} {'seed':>4} {'fit s':>6} {header}"
    )
    runs = [("color", "DEFAULT", 0, seed) for seed in args.color_seeds]
    runs += [("expm", "DEFAULT", e, args.seed) for e in args.epochs]
    runs += [("expm", None, e, args.seed) for e in args.scratch_epochs]
    colour_extractors = {}
    for steering, weights, epochs, seed in runs:
        fitted, seconds = fit(steering, weights, max(epochs, 1), seed, train, args)
        ratios = equivariance_ratios(fitted, held, args.seed)
        start = "Lite0" if weights else "scratch"
        cells = " ".join(f"{r:10.3f}" for r in ratios)
        print(
            f"{steering:>8} {start:>8} {epochs:6d} {seed:4d} {seconds:6.0f} {cells}",
            flush=True,
        )
        if steering == "color":
            colour_extractors[seed] = fitted
    fresh, _ = photo_crops(TRAIN_PHOTOS, 160, args.size, seed=args.seed + 200)
    ood_table(colour_extractors, train, fresh)
    if args.ood_on_test_photos:  # the OOD rule was chosen on the training photos
        own, _ = photo_crops(TEST_PHOTOS, args.n, args.size, seed=args.seed)
        fitted = {
            seed: fit("color", "DEFAULT", 1, seed, own, args)[0]
            for seed in args.color_seeds
        }
        print(f"\nthe same, fitted on and scoring the test photos {TEST_PHOTOS}")
        fresh, _ = photo_crops(TEST_PHOTOS, 160, args.size, seed=args.seed + 200)
        ood_table(fitted, own, fresh)
    extractor = next(iter(colour_extractors.values()))
    tta_table(extractor, held, held_sources, args.k, args.seed)


if __name__ == "__main__":
    main()
