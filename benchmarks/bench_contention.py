"""SeA fit times on a busy machine: idle against beside one CPU-bound process.

Fits ``SeAClassifier`` and ``SeAClassifierCV`` on the real EfficientNet-Lite0
features of sklearn's digits (a 5-shot draw and all rows; the demo's features,
read from its cache), first on the idle
machine, then beside one busy-loop process, in one run.  The 5-shot fits also
run with torch's thread count left as the caller set it (the behaviour before
issue 9: torch's default, one thread per core), so the improvement shows.
Prints busy/idle ratios (target <= 2) and new/old idle ratios (target <= 1).
Then times ``GridSearchCV(n_jobs=2)`` against ``n_jobs=1`` over the demo's
pipeline (``DeepFeatureExtractor("efficientnet_lite0", memory=cache)`` and
``SeAClassifier``).  Run ``python -m skfeat demo`` first so that the feature
cache is warm (the benchmark fills it otherwise, which takes minutes).

Usage: python benchmarks/bench_contention.py [--cache DIR] [--rounds 1] [--images 300]
"""

import argparse
import contextlib
import os
import subprocess
import sys
import time
import warnings
from unittest import mock

import numpy as np
import torch
from _timing import best_of
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skfeat import DeepFeatureExtractor, SeAClassifier, SeAClassifierCV
from skfeat.probing import _sea, _sea_cv

ETAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2)


@contextlib.contextmanager
def busy_process():
    """Run one CPU-bound busy loop in another process for the block."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start spinning
        yield
    finally:
        process.kill()
        process.wait()


@contextlib.contextmanager
def callers_threads():
    """The behaviour before issue 9: SeA fits train on the caller's thread count."""

    def keep(work, device):
        return torch.get_num_threads()

    with (
        mock.patch.object(_sea, "training_threads", keep),
        mock.patch.object(_sea_cv, "training_threads", keep),
    ):
        yield


def five_shot(y, seed=0):
    rng = np.random.RandomState(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(y == c), 5, replace=False) for c in np.unique(y)]
    )


def probe_fits(X, y):
    shots = five_shot(y)
    return {
        "SeAClassifier 5-shot": lambda: SeAClassifier(random_state=0).fit(
            X[shots], y[shots]
        ),
        "SeAClassifierCV 5-shot": lambda: SeAClassifierCV(
            etas=ETAS, cv=3, random_state=0
        ).fit(X[shots], y[shots]),
        "SeAClassifier all rows, 20 epochs": lambda: SeAClassifier(
            max_epochs=20, random_state=0
        ).fit(X, y),
        "SeAClassifierCV all rows, 5 epochs": lambda: SeAClassifierCV(
            etas=ETAS, cv=3, max_epochs=5, random_state=0
        ).fit(X, y),
    }


def time_probes(X, y, rounds):
    fits = probe_fits(X, y)
    old = {name: fit for name, fit in fits.items() if "5-shot" in name}
    seconds = {}
    for load in ("idle", "busy"):
        with busy_process() if load == "busy" else contextlib.nullcontext():
            new, _ = best_of(fits, rounds)
            with callers_threads():
                before, _ = best_of(old, rounds)
        seconds[load, "new"], seconds[load, "old"] = new, before
    print(
        f"X={X.shape}, torch threads of the caller: {torch.get_num_threads()}, "
        f"cpu_count={os.cpu_count()}, best of {rounds}"
    )
    print(f"{'':38s}{'idle':>8s}{'busy':>8s}  busy/idle (target <= 2)")
    for name in fits:
        idle, busy = seconds["idle", "new"][name], seconds["busy", "new"][name]
        print(f"  {name:36s}{idle:7.2f}s{busy:7.2f}s  {busy / idle:5.2f}")
        if name in old:
            was_idle = seconds["idle", "old"][name]
            was_busy = seconds["busy", "old"][name]
            print(
                f"    before (caller's threads){'':9s}{was_idle:7.2f}s{was_busy:7.2f}s"
                f"  {was_busy / was_idle:5.2f}   now/before idle {idle / was_idle:.2f}"
                f" (target <= 1), busy {busy / was_busy:.2f}"
            )


def time_grid_search(extractor, images, labels):
    def search(n_jobs):
        pipeline = make_pipeline(
            extractor, SeAClassifier(max_epochs=30, random_state=0)
        )
        grid = {"seaclassifier__eta": [0.0, 0.4, 0.8, 1.2]}
        return GridSearchCV(pipeline, grid, cv=3, n_jobs=n_jobs).fit(images, labels)

    start = time.perf_counter()
    search(2)  # starts joblib's worker processes, reused by the searches below
    first = time.perf_counter() - start
    seconds, _ = best_of(
        {"n_jobs=1": lambda: search(1), "n_jobs=2": lambda: search(2)}, rounds=2
    )
    print(
        f"GridSearchCV over extractor(memory=) + SeAClassifier, {len(labels)} "
        "digits images, 4 etas x 3 folds + refit, best of 2"
    )
    print(
        f"  n_jobs=1 {seconds['n_jobs=1']:6.2f}s   n_jobs=2 {seconds['n_jobs=2']:6.2f}s"
        f"   ratio n_jobs=2 / n_jobs=1 = "
        f"{seconds['n_jobs=2'] / seconds['n_jobs=1']:.2f}  (target <= 1)"
    )
    print(f"  first n_jobs=2 search, starting the workers: {first:6.2f}s")


def main(cache, rounds, n_images):
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    extractor = DeepFeatureExtractor("efficientnet_lite0", memory=cache, batch_size=64)
    start = time.perf_counter()
    X = extractor.transform(images)
    print(f"features from the cache {cache}: {time.perf_counter() - start:.1f}s")
    warnings.simplefilter("ignore", ConvergenceWarning)  # large etas may collapse
    time_probes(X, digits.target, rounds)
    time_grid_search(extractor, images[:n_images], digits.target[:n_images])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/skfeat"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    main(args.cache, args.rounds, args.images)
