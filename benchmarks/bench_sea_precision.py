"""float32 against float64 SeA on real features: accuracy over seeds, chosen eta, speed.

Data: EfficientNet-Lite0 features of scikit-learn's digits (the demo's
configuration, ``/work/feats/digits_lite0.npz`` or ``--features``), split
into train and test halves (stratified).  In one run, for each seed:

* ``SeAClassifier(eta=0.4)`` in float64 and float32: test accuracy and fit
  time (interleaved, best of ``--rounds``);
* ``SeAClassifierCV`` in both precisions on a ``--shots``-per-class subset
  of the training half: the chosen ``eta_``.

Targets: mean float32 accuracy within one standard deviation (over seeds)
of float64's; the same ``eta_`` for every seed.

Usage: python benchmarks/bench_sea_precision.py [--seeds 5] [--epochs 100]
"""

import argparse

import numpy as np
import torch
from _timing import best_of
from sklearn.model_selection import train_test_split

from skfeat import SeAClassifier, SeAClassifierCV

PRECISIONS = ("float64", "float32")


def lowshot_rows(y, shots, seed):
    rng = np.random.RandomState(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in np.unique(y)]
    )


def main(path, seeds, epochs, shots, rounds):
    torch.set_num_threads(1)
    data = np.load(path)
    X, y = data["features"], data["labels"]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    print(f"features {path}: train {X_train.shape}, test {X_test.shape}")
    accuracy = {p: [] for p in PRECISIONS}
    seconds = {p: [] for p in PRECISIONS}
    agree = 0
    for seed in range(seeds):
        fits = {
            p: lambda p=p: SeAClassifier(
                eta=0.4, max_epochs=epochs, precision=p, device="cpu", random_state=seed
            ).fit(X_train, y_train)
            for p in PRECISIONS
        }
        best, models = best_of(fits, rounds)
        rows = lowshot_rows(y_train, shots, seed)
        etas = {
            p: SeAClassifierCV(max_epochs=epochs, precision=p, random_state=seed)
            .fit(X_train[rows], y_train[rows])
            .eta_
            for p in PRECISIONS
        }
        agree += etas["float64"] == etas["float32"]
        for p in PRECISIONS:
            accuracy[p].append(models[p].score(X_test, y_test))
            seconds[p].append(best[p])
        print(
            f"seed {seed}: test accuracy float64 {accuracy['float64'][-1]:.4f} "
            f"float32 {accuracy['float32'][-1]:.4f}; fit s float64 "
            f"{best['float64']:.2f} float32 {best['float32']:.2f}; "
            f"SeAClassifierCV eta_ ({shots}-shot) float64 {etas['float64']} "
            f"float32 {etas['float32']}"
        )
    mean = {p: np.mean(accuracy[p]) for p in PRECISIONS}
    std = np.std(accuracy["float64"], ddof=1) if seeds > 1 else 0.0
    print(
        f"mean test accuracy float64 {mean['float64']:.4f} (sd {std:.4f}) "
        f"float32 {mean['float32']:.4f}; difference "
        f"{mean['float32'] - mean['float64']:+.4f} (target: within one sd)"
    )
    print(f"same eta_ in {agree}/{seeds} seeds (target {seeds}/{seeds})")
    ratio = np.median(seconds["float64"]) / np.median(seconds["float32"])
    print(f"float64 / float32 fit time (median over seeds, 1 thread) = {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="/work/feats/digits_lite0.npz")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    main(args.features, args.seeds, args.epochs, args.shots, args.rounds)
