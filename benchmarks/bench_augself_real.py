"""AugSelf's gain over its own base on real photos, by training budget (issue 18).

``AugSelfExtractor("efficientnet_lite0", weights="DEFAULT", base="simclr")``
with the crop and colour heads (``aug_weights=1``; ``--aug-types`` keeps
some of them) against the same fit with
``aug_weights=0`` (SimCLR alone; same seed, same views, same everything
else), fine-tuned on unlabeled crops of real photos (scikit-learn's and
scikit-image's sample photos), for several budgets and seeds.

Data, per seed:

* **training set** (unlabeled): ``--n-train`` crops at 64 px, spread evenly
  over the photos, each of a random side between 64 and 256 source pixels at
  a random position, without any colour change;
* **probe set**: ``--n-probe`` other crops of the same photos, each given one
  of three zoom levels (a side of 64, 128 or 256 source pixels, resized to
  64 px) and one of three hue shifts (-0.1, 0 or +0.1 turn, the ends and the
  middle of the colour jitter's hue range), balanced and independent of the
  photo.

Three logistic-regression probes (standardised features, 5-fold stratified
cross-validation over the probe set, the same folds for every extractor of a
seed) read the hue shift ("colour"), the zoom level ("crop") and the photo
("semantic") from the features.  Chance is 1/3, 1/3 and 1/8.  The frozen
Lite0 features are the reference row.  A seed drives the crops, the folds
and the fit's ``random_state``; the table gives the mean and the standard
deviation over seeds, and the gain of AugSelf over its base in points with
the standard deviation of the paired per-seed differences.

A default run fits 18 models of 24 to 144 steps, two seeds at a time: on an
idle 2-core CPU (one torch thread per seed, about 1.5 s a step) it takes
about 20 minutes.

Usage: python benchmarks/bench_augself_real.py [--epochs 4 12 24]
       [--seeds 0 1 2] [--n-train 384] [--n-probe 768] [--batch-size 64]
       [--lr 0.3] [--aug-types crop color] [--aug-weights 1.0] [--threads 1]
       [--n-jobs 2]
       [--device cpu] [--quick]
"""

import argparse
import time

import numpy as np
import torch
from _photos import photo, square_crop
from joblib import Parallel, delayed
from kornia.enhance import adjust_hue
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfeat import AugSelfExtractor, DeepFeatureExtractor

SIDE = 64
ZOOM_SIDES = (64, 128, 256)
HUE_TURNS = (-0.1, 0.0, 0.1)
PROBES = ("colour", "crop", "semantic")


PHOTOS = (
    "china",
    "flower",
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "stereo_motorcycle",
)


def load_photos():
    """Return eight colour photos that ship with scikit-learn and scikit-image."""
    return [photo(name) for name in PHOTOS]


def crop(image, side, rng):
    """Cut a random ``side``-pixel square from ``image``, resized to 64 px."""
    return square_crop(image, side, SIDE, rng)


def training_crops(photos, n, rng):
    """Unlabeled crops of random side and position, evenly over the photos."""
    which = np.arange(n) % len(photos)
    sides = rng.randint(ZOOM_SIDES[0], ZOOM_SIDES[-1] + 1, size=n)
    return np.stack([crop(photos[p], s, rng) for p, s in zip(which, sides)])


def probe_crops(photos, n, rng):
    """Probe crops with balanced, independent photo, zoom and hue labels."""
    labels = {
        "semantic": np.arange(n) % len(photos),
        "crop": rng.permutation(np.arange(n) % len(ZOOM_SIDES)),
        "colour": rng.permutation(np.arange(n) % len(HUE_TURNS)),
    }
    crops = np.stack(
        [
            crop(photos[p], ZOOM_SIDES[z], rng)
            for p, z in zip(labels["semantic"], labels["crop"])
        ]
    )
    pixels = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    angles = 2 * np.pi * torch.tensor(HUE_TURNS)[labels["colour"]]
    shifted = adjust_hue(pixels, angles.float()).clamp(0, 1)
    images = (shifted * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return images, labels


def probe_scores(features, labels, seed):
    """5-fold cross-validated accuracy of a logistic-regression probe per label."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return {
        name: cross_val_score(probe, features, labels[name], cv=folds).mean()
        for name in PROBES
    }


def augself(aug_weights, epochs, seed, args):
    """Build the benchmarked extractor; ``aug_weights=0`` is its SimCLR base."""
    return AugSelfExtractor(
        "efficientnet_lite0",
        weights="DEFAULT",
        base="simclr",
        aug_types=tuple(args.aug_types),
        aug_weights=aug_weights,
        image_size=SIDE,
        max_epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
        random_state=seed,
    )


def run_seed(photos, seed, args):
    """Probe scores and fit seconds of every extractor for one seed."""
    torch.set_num_threads(args.threads)
    rng = np.random.RandomState(seed)
    train = training_crops(photos, args.n_train, rng)
    images, labels = probe_crops(photos, args.n_probe, rng)
    frozen = DeepFeatureExtractor(
        "efficientnet_lite0", image_size=SIDE, device=args.device
    )
    results = {("frozen", 0): (probe_scores(frozen.transform(images), labels, seed), 0)}
    for epochs in args.epochs:
        for name, weight in (("base", 0.0), ("augself", args.aug_weights)):
            start = time.perf_counter()
            extractor = augself(weight, epochs, seed, args).fit(train)
            seconds = time.perf_counter() - start
            scores = probe_scores(extractor.transform(images), labels, seed)
            results[name, epochs] = scores, seconds
            print(
                f"  seed {seed} {name:>7} {epochs:>3} epochs: "
                + " ".join(f"{p} {scores[p]:.3f}" for p in PROBES)
                + f" ({seconds:.0f} s)",
                flush=True,
            )
    return results


def cell(values, sign=""):
    """Mean and standard deviation over seeds, in points."""
    values = 100 * np.asarray(values)
    spread = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():{sign}5.1f} ± {spread:3.1f}"


def parse_args(argv=None):
    """Parse the command line; ``--quick`` shrinks the run to a smoke test."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[4, 12, 24])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=384)
    parser.add_argument("--n-probe", type=int, default=768)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument(
        "--aug-types",
        nargs="+",
        default=["crop", "color"],
        choices=["crop", "color"],
        help="the AugSelf heads",
    )
    parser.add_argument(
        "--aug-weights", type=float, default=1.0, help="weight of every AugSelf head"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per seed (on a busy 2-core machine one was 4x faster)",
    )
    parser.add_argument("--n-jobs", type=int, default=2, help="seeds run at once")
    parser.add_argument("--device", default="cpu", help="training device")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one seed, 2 epochs, 128 training and 240 probe crops (a smoke run)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds, args.n_train, args.n_probe = [2], [0], 128, 240
    return args


def main():
    """Run the benchmark and print its table."""
    args = parse_args()
    photos = load_photos()
    runs = Parallel(n_jobs=args.n_jobs)(
        delayed(run_seed)(photos, seed, args) for seed in args.seeds
    )
    steps = -(-args.n_train // args.batch_size)
    print(
        f"\nLite0 (weights='DEFAULT') fine-tuned with SimCLR on {args.n_train} "
        f"unlabeled {SIDE}-px crops of {len(photos)} photos, batch "
        f"{args.batch_size}, lr {args.lr} (x batch/256), AugSelf heads "
        f"{' and '.join(args.aug_types)} at aug_weights {args.aug_weights}, seeds "
        f"{args.seeds}, {args.device}; "
        f"probes: 5-fold CV accuracy (%) on {args.n_probe} other crops, "
        "mean ± std over seeds; chance 33.3 / 33.3 / 12.5"
    )
    header = (
        f"{'epochs':>6} {'steps':>5} {'features':>16} "
        + " ".join(f"{p:>13}" for p in PROBES)
        + f" {'fit s':>6}"
    )
    print(header)
    print("-" * len(header))

    def row(epochs, label, key):
        scores = [run[key][0] for run in runs]
        seconds = np.mean([run[key][1] for run in runs])
        budget = f"{epochs:>6} {epochs * steps:>5}" if epochs else f"{'-':>6} {'-':>5}"
        print(
            f"{budget} {label:>16} "
            + " ".join(f"{cell([s[p] for s in scores]):>13}" for p in PROBES)
            + f" {seconds:6.0f}"
        )

    row(0, "frozen", ("frozen", 0))
    for epochs in args.epochs:
        row(epochs, "SimCLR", ("base", epochs))
        row(epochs, "SimCLR + AugSelf", ("augself", epochs))
        gains = {
            p: [
                run["augself", epochs][0][p] - run["base", epochs][0][p] for run in runs
            ]
            for p in PROBES
        }
        print(
            f"{'':>6} {'':>5} {'gain (points)':>16} "
            + " ".join(f"{cell(gains[p], '+'):>13}" for p in PROBES)
        )


if __name__ == "__main__":
    main()
