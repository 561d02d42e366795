"""SeA fit times, quiet and beside a busy process: thread policy against fixed counts.

In one run, first on the quiet machine and then beside one CPU-bound
busy-loop process, three fits are timed (best of ``--rounds``, interleaved):

* small: ``SeAClassifier`` on a 5-shot draw of the real EfficientNet-Lite0
  features of scikit-learn's digits (the demo's features, read from its
  cache; filled first otherwise, which takes minutes);
* medium: ``SeAClassifier(eta=0.4)`` on all 1,797 digits features (steps
  of about 4 ms on one thread, like the final fit of ``SeAClassifierCV``);
* large: ``SeAClassifier(max_epochs=10)`` on 5,000 x 2,048 float32 synthetic
  features, 10 classes;
* cv: ``SeAClassifierCV`` (7 etas x 3 folds) on all 1,797 digits features.

Each runs with skfeat's thread policy (``ThreadTuner``: measured per fit,
the default), with the policy timing steps alone (no reading of the idle
CPUs before probing more threads), and with the thread count fixed at 1
and at the caller's count (2 here), the tuning switched off.  Printed per
condition: seconds, policy / best fixed (targets: <= 1.1 quiet, <= 1.2
busy) and busy / quiet of the policy (target <= 2).  The large fit is
also compared with a bare torch loop doing the same float32 SeA updates at
the faster fixed count (target: <= 1.3x), and, quiet,
``SeAClassifierCV(selection="first")`` with ``GridSearchCV`` over the same
etas, both in float64, where their choices are equal exactly (target: >= 3x
faster, same eta).

Usage: python benchmarks/bench_contention.py [--cache DIR] [--rounds 3]
"""

import argparse
import contextlib
import os
import time
import warnings
from unittest import mock

import numpy as np
import torch
from _timing import best_of, busy_process
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skfeat import DeepFeatureExtractor, SeAClassifier, SeAClassifierCV
from skfeat._engine import _threads
from skfeat.datasets import make_lowshot_features
from skfeat.nn import SeALoss, l2_normalize, multihead_sea_logits
from skfeat.probing import _sea
from skfeat.utils import torch_threads

ETAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2)


@contextlib.contextmanager
def fixed_threads(n_threads):
    """SeA fits with the thread tuning off, at ``n_threads``."""
    tuned = _sea._training_callbacks

    def untuned(name, device, verbose):
        return [c for c in tuned(name, device, verbose) if c[0] != "threads"]

    with (
        mock.patch.object(_sea, "_training_callbacks", untuned),
        torch_threads(n_threads),
    ):
        yield


@contextlib.contextmanager
def timing_only():
    """SeA fits with the thread policy probing without reading idle CPUs."""
    with mock.patch.object(_threads, "system_idle_cpus", lambda: None):
        yield


def five_shot(y, seed=0):
    rng = np.random.RandomState(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(y == c), 5, replace=False) for c in np.unique(y)]
    )


def bare_loop(X, y, epochs, batch_size=256, seed=0):
    """The large fit's float32 SeA updates in plain torch (Gram-matrix step)."""
    X = l2_normalize(torch.as_tensor(X))
    y = torch.as_tensor(y)
    torch.manual_seed(seed)
    head = torch.nn.Linear(X.shape[1], int(y.max()) + 1, bias=False)
    optimizer = torch.optim.SGD(
        head.parameters(), lr=1.6, momentum=0.9, weight_decay=1e-6
    )
    loss_fn, eta = SeALoss(), torch.tensor([0.8])
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for rows in torch.randperm(len(X), generator=generator).split(batch_size):
            logits = multihead_sea_logits(
                head.weight[None],
                X[rows],
                y[rows],
                eta,
                alpha=0.01,
                temperature=0.1,
                margin=0.0,
            )[0]
            optimizer.zero_grad()
            loss_fn(logits, y[rows]).backward()
            optimizer.step()
    return head


def digits_features(cache):
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    extractor = DeepFeatureExtractor("efficientnet_lite0", memory=cache, batch_size=64)
    return extractor.transform(images), digits.target


def fits(digits_X, digits_y, large_X, large_y):
    shots = five_shot(digits_y)
    return {
        "small": lambda: SeAClassifier(random_state=0).fit(
            digits_X[shots], digits_y[shots]
        ),
        "medium": lambda: SeAClassifier(eta=0.4, random_state=0).fit(
            digits_X, digits_y
        ),
        "large": lambda: SeAClassifier(max_epochs=10, random_state=0).fit(
            large_X, large_y
        ),
        "cv": lambda: SeAClassifierCV(etas=ETAS, cv=3, random_state=0).fit(
            digits_X, digits_y
        ),
    }


def time_condition(contenders, large_X, large_y, rounds):
    """Seconds of each fit under the policy, timing only, fixed 1 and caller's."""
    caller = torch.get_num_threads()
    seconds = {}
    modes = {
        "policy": contextlib.nullcontext,
        "timing": timing_only,
        1: lambda: fixed_threads(1),
        caller: lambda: fixed_threads(caller),
    }
    for _ in range(rounds):
        for mode, context in modes.items():
            with context():
                best, _ = best_of(contenders, 1)
            for name, value in best.items():
                key = (name, mode)
                seconds[key] = min(seconds.get(key, float("inf")), value)
        for n in (1, caller):
            with torch_threads(n):
                best, _ = best_of({"bare": lambda: bare_loop(large_X, large_y, 10)}, 1)
            seconds["bare", n] = min(
                seconds.get(("bare", n), float("inf")), best["bare"]
            )
    return seconds


def grid_search_speed(X, y):
    cv = StratifiedKFold(3)
    start = time.perf_counter()
    ours = SeAClassifierCV(
        etas=ETAS, cv=cv, random_state=0, selection="first", precision="float64"
    ).fit(X, y)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    search = GridSearchCV(
        SeAClassifier(random_state=0, precision="float64"), {"eta": list(ETAS)}, cv=cv
    )
    search.fit(X, y)
    grid_seconds = time.perf_counter() - start
    print(
        f"\nquiet: SeAClassifierCV {ours_seconds:.1f} s (eta {ours.eta_}), "
        f"GridSearchCV {grid_seconds:.1f} s (eta {search.best_params_['eta']}): "
        f"{grid_seconds / ours_seconds:.1f}x faster (target >= 3)"
    )


def main(cache, rounds):
    warnings.simplefilter("ignore", ConvergenceWarning)  # large etas may collapse
    digits_X, digits_y = digits_features(cache)
    large_X, _, large_y, _ = make_lowshot_features(
        n_classes=10,
        n_features=2048,
        n_train_per_class=500,
        n_test_per_class=1,
        random_state=0,
    )
    contenders = fits(digits_X, digits_y, large_X, large_y)
    caller = torch.get_num_threads()
    print(
        f"digits features {digits_X.shape} {digits_X.dtype}, large {large_X.shape} "
        f"{large_X.dtype}; caller's torch threads {caller}, cpu_count "
        f"{os.cpu_count()}, best of {rounds}"
    )
    results = {}
    for load in ("quiet", "busy"):
        with busy_process() if load == "busy" else contextlib.nullcontext():
            results[load] = time_condition(contenders, large_X, large_y, rounds)
    print(
        f"\n{'fit':>6} {'load':>6} {'policy':>8} {'timing':>8} {'fixed 1':>8} "
        f"{'fixed ' + str(caller):>8}"
        f"  policy/best fixed  timing/best fixed  busy/quiet (policy)"
    )
    for name in contenders:
        for load in ("quiet", "busy"):
            s = results[load]
            fixed = min(s[name, 1], s[name, caller])
            ratio = s[name, "policy"] / fixed
            busy_quiet = (
                results["busy"][name, "policy"] / results["quiet"][name, "policy"]
            )
            print(
                f"{name:>6} {load:>6} {s[name, 'policy']:7.2f}s "
                f"{s[name, 'timing']:7.2f}s {s[name, 1]:7.2f}s "
                f"{s[name, caller]:7.2f}s  {ratio:17.2f}  "
                f"{s[name, 'timing'] / fixed:17.2f}  "
                + (f"{busy_quiet:.2f}" if load == "busy" else "")
            )
    for load in ("quiet", "busy"):
        s = results[load]
        bare = min(s["bare", 1], s["bare", caller])
        print(
            f"large fit / bare torch loop ({load}): "
            f"{s['large', 'policy'] / bare:.2f} (target <= 1.3)"
        )
    grid_search_speed(digits_X, digits_y)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/skfeat"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.cache, args.rounds)
