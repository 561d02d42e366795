# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""Low-shot probe comparison on fixed features: tuned LR, SeA(eta=0), SeA with CV'd eta.

No hyperparameter is ever chosen on the test split: the test split is fixed
once, training shots are drawn from the rest, and every choice (C, eta) is
made by cross-validation on the training shots only.
"""

import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from skfeat.probing import SeAClassifier, SeAClassifierCV

ETAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2)
LR_GRID = np.logspace(-3, 4, 8)


def _draw_shots(y, pool, k, rng):
    if k == "all":
        return pool
    chosen = [
        rng.choice(pool[y[pool] == label], size=k, replace=False)
        for label in np.unique(y)
    ]
    return np.concatenate(chosen)


def _methods(k, seed, cv, max_epochs):
    folds = StratifiedKFold(
        n_splits=min(cv, k if k != "all" else cv), shuffle=True, random_state=seed
    )
    return {
        # sklearn's default max_iter=100 with convergence warnings ignored, as
        # in the reference implementation of the protocol (ssl-transfer).
        "tuned LR": GridSearchCV(LogisticRegression(), {"C": LR_GRID}, cv=folds),
        "SeA eta=0": SeAClassifier(eta=0.0, max_epochs=max_epochs, random_state=seed),
        "SeA eta by CV": SeAClassifierCV(
            etas=ETAS, cv=folds, max_epochs=max_epochs, random_state=seed
        ),
    }


def compare_probes(
    X,
    y,
    *,
    shots=(5, 10, 20, "all"),
    seeds=(0, 1, 2),
    cv=3,
    test_size=0.3,
    max_epochs=100,
    random_state=0,
    log=print,
):
    """Run the low-shot comparison and return one record per (method, k, seed).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Features.
    y : ndarray of shape (n_samples,)
        Labels.
    shots : sequence of int or "all", default=(5, 10, 20, "all")
        Labelled training images per class.
    seeds : sequence of int, default=(0, 1, 2)
        Seeds of the shot draws and of the probes; "all" runs the first only.
    cv : int, default=3
        Folds for choosing C and eta (fewer when there are fewer shots).
    test_size : float, default=0.3
        Share of the fixed, stratified test split.
    max_epochs : int, default=100
        Epochs of every SeA fit.
    random_state : int, default=0
        Seed of the test split.
    log : callable, default=print
        Receives one progress line per fit.

    Returns
    -------
    records : list of dict
        Keys ``method``, ``k``, ``seed``, ``accuracy``, ``seconds`` and
        ``choice`` (the chosen C or eta).
    """
    pool, test = train_test_split(
        np.arange(len(y)), test_size=test_size, stratify=y, random_state=random_state
    )
    records = []
    for k in shots:
        for seed in seeds[:1] if k == "all" else seeds:
            train = _draw_shots(y, pool, k, np.random.RandomState(seed))
            for name, model in _methods(k, seed, cv, max_epochs).items():
                start = time.perf_counter()
                # One BLAS thread: on these small problems, multithreaded
                # BLAS beside torch's OpenMP pool made L-BFGS ~15x slower.
                with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(X[train], y[train])
                seconds = time.perf_counter() - start
                choice = getattr(
                    model, "eta_", getattr(model, "best_params_", {}).get("C")
                )
                records.append(
                    dict(
                        method=name,
                        k=k,
                        seed=seed,
                        seconds=seconds,
                        accuracy=model.score(X[test], y[test]),
                        choice=choice,
                    )
                )
                log(
                    f"  k={k!s:>3} seed={seed} {name:14s} "
                    f"acc={records[-1]['accuracy']:.3f} ({seconds:.1f}s)"
                )
    return records


def format_table(records):
    """Mean +- std accuracy (%) and mean fit time per method and k, as text."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    shots = list(dict.fromkeys(r["k"] for r in records))
    header = (
        f"{'method':15s}"
        + "".join(f"{'k=' + str(k):>16s}" for k in shots)
        + f"{'fit s':>8s}"
    )
    lines = [header, "-" * len(header)]
    for method in methods:
        cells, seconds = [], []
        for k in shots:
            scores = [
                100 * r["accuracy"]
                for r in records
                if r["method"] == method and r["k"] == k
            ]
            seconds += [
                r["seconds"] for r in records if r["method"] == method and r["k"] == k
            ]
            cells.append(f"{np.mean(scores):7.1f} +- {np.std(scores):4.1f}")
        lines.append(
            f"{method:15s}"
            + "".join(f"{c:>16s}" for c in cells)
            + f"{np.mean(seconds):8.2f}"
        )
    return "\n".join(lines)


def plot_accuracy(records, path, title):
    """Write a PNG of mean accuracy against k per method (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shots = list(dict.fromkeys(r["k"] for r in records))
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(r["method"] for r in records):
        means = [
            np.mean(
                [
                    r["accuracy"]
                    for r in records
                    if r["method"] == method and r["k"] == k
                ]
            )
            for k in shots
        ]
        ax.plot(range(len(shots)), [100 * m for m in means], marker="o", label=method)
    ax.set_xticks(range(len(shots)), [str(k) for k in shots])
    ax.set_xlabel("labelled images per class (k)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
