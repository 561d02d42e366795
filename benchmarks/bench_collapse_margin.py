"""Calibrate SeAClassifier's collapse warning on four real feature sets (issue 12).

Data and protocol as ``bench_eta_selection.py``: EfficientNet-Lite0 features
of digits, MNIST, skimage textures and lfw faces; a fixed stratified 30% test
split; k training shots per class (or all the training images), several
seeds.  Every cell fits
``SeAClassifier`` at each eta of ``--etas`` (eta = 0 is the reference) and
records, per fit with eta > 0:

* the gap the warning tests: ridge training accuracy minus the model's own
  clean training accuracy (the warning fires when it exceeds
  ``COLLAPSE_MARGIN``);
* whether the fit *collapsed*: its test accuracy is more than
  ``--collapse`` (10 points) below the eta = 0 fit's.

For each candidate margin it prints the false-alarm rate (warned, no
collapse, over the fits without collapse) and the miss rate (collapse, no
warning, over the collapsed fits), and which margin the code uses.

Usage: python benchmarks/bench_collapse_margin.py [--seeds 3] [--shots 5,20,all]
       [--etas 0,0.4,0.8,1.2] [--datasets digits,mnist,textures,faces]
"""

import argparse
import warnings

import numpy as np
import torch
from bench_eta_selection import load_features
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skfeat import SeAClassifier
from skfeat._cli import DEFAULT_CACHE
from skfeat._lowshot import _draw_shots
from skfeat.probing._sea import COLLAPSE_MARGIN

MARGINS = (0.02, 0.05, 0.10, 0.15, 0.20, 0.30)


def fit_cell(X, y, train, test, etas, seed, epochs):
    """Test accuracy and warning gap of one fit per eta on the training shots."""
    results = []
    for eta in etas:
        clf = SeAClassifier(eta=eta, max_epochs=epochs, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X[train], y[train])
        codes = np.searchsorted(clf.classes_, y[train])
        achieved, reference = clf._clean_training_accuracy(
            X[train], codes, np.ones(len(train))
        )
        results.append((eta, clf.score(X[test], y[test]), reference - achieved))
    return results


def main(datasets, seeds, shots, etas, epochs, collapse, cache):
    torch.set_num_threads(1)
    records = []
    for name in datasets:
        X, y = load_features(name, cache)
        pool, test = train_test_split(
            np.arange(len(y)), test_size=0.3, stratify=y, random_state=0
        )
        for k in shots:
            for seed in seeds:
                train = _draw_shots(y, pool, k, np.random.RandomState(seed))
                cell = fit_cell(X, y, train, test, etas, seed, epochs)
                plain = cell[0][1]
                for eta, accuracy, gap in cell[1:]:
                    collapsed = accuracy < plain - collapse
                    records.append((name, k, eta, gap, collapsed))
                print(
                    f"{name} k={k} seed={seed}: test accuracy per eta "
                    + ", ".join(f"{eta}: {acc:.3f}" for eta, acc, _ in cell)
                    + "; gap per eta>0 "
                    + ", ".join(f"{gap:+.3f}" for _, _, gap in cell[1:])
                )
    gaps = np.array([r[3] for r in records])
    collapsed = np.array([r[4] for r in records])
    print(
        f"{len(records)} fits with eta > 0, {collapsed.sum()} collapsed "
        f"(test accuracy > {collapse:.0%} below eta=0)"
    )
    for margin in MARGINS:
        warned = gaps > margin
        alarms = np.sum(warned & ~collapsed)
        misses = np.sum(~warned & collapsed)
        used = "  <- COLLAPSE_MARGIN" if margin == COLLAPSE_MARGIN else ""
        print(
            f"  margin {margin:.2f}: false alarms {alarms}/{np.sum(~collapsed)} "
            f"({alarms / max(np.sum(~collapsed), 1):.1%}), misses "
            f"{misses}/{collapsed.sum()} "
            f"({misses / max(collapsed.sum(), 1):.1%}){used}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,mnist,textures,faces")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shots", default="5,20,all")
    parser.add_argument("--etas", default="0,0.4,0.8,1.2")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--collapse", type=float, default=0.10)
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE)
    args = parser.parse_args()
    main(
        args.datasets.split(","),
        range(args.seeds),
        [k if k == "all" else int(k) for k in args.shots.split(",")],
        [float(eta) for eta in args.etas.split(",")],
        args.epochs,
        args.collapse,
        args.cache_dir,
    )
