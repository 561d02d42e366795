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
from skfeat.utils._warnings import warn_caller

ETAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2)
LR_GRID = np.logspace(-3, 4, 8)
ETA_BY_CV = "SeA eta by CV"
# Cross-validation needs two shots of every class.
MIN_SHOTS = 2


def parse_shots(text):
    """Parse shot counts written as ``5,10,20,all`` into ``[5, 10, 20, "all"]``.

    Parameters
    ----------
    text : str
        Comma-separated integers of at least 2, or ``all``, each at most once.

    Returns
    -------
    shots : list of int or "all"
        The shot counts, in the order given.

    Examples
    --------
    >>> parse_shots("5, 10,all")
    [5, 10, 'all']
    """
    shots = []
    for item in text.split(","):
        item = item.strip()
        k = item if item == "all" else int(item) if item.isdigit() else None
        if k is None or (k != "all" and k < MIN_SHOTS) or k in shots:
            raise ValueError(
                f"shots must be distinct integers >= {MIN_SHOTS} or 'all', separated "
                f"by commas (e.g. 5,10,20,all); got {text!r}."
            )
        shots.append(k)
    return shots


def _fitting_shots(y, pool, shots, test_size):
    """Keep the shots every class of the training pool can provide; warn on others."""
    labels, counts = np.unique(y[pool], return_counts=True)
    smallest, largest_k = labels[np.argmin(counts)].item(), counts.min()
    where = (
        f"the smallest class, {smallest!r}, has {largest_k} image(s) in the training "
        f"pool (the other {test_size:.0%} of each class are the test split)"
    )
    if largest_k < MIN_SHOTS:
        raise ValueError(
            f"{where}; every class needs {MIN_SHOTS} training images for "
            "cross-validation: add images or remove that class."
        )
    too_large = [k for k in shots if k != "all" and k > largest_k]
    fitting = [k for k in shots if k not in too_large]
    fit_hint = f"shots from {MIN_SHOTS} to {largest_k}, or 'all', fit"
    if not fitting:
        raise ValueError(
            f"shots {', '.join(map(str, too_large))} do not fit: {where}; {fit_hint}."
        )
    if too_large:
        warn_caller(
            f"skipping shots {', '.join(map(str, too_large))}: {where}; {fit_hint}."
        )
    return fitting


def split_pool_and_test(y, test_size, random_state):
    """Split indices into a training pool and a fixed test split with every class.

    A stratified split rounds a small class's test share down to nothing, and
    its accuracy would then never be measured; such a class gives its last
    pool image to the test split instead.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Labels; every class has at least 2 images.
    test_size : float
        Share of the test split.
    random_state : int
        Seed of the split.

    Returns
    -------
    pool, test : ndarray of int
        Indices of the training pool and of the test split.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0] * 8 + [1] * 8 + [2] * 2)
    >>> pool, test = split_pool_and_test(y, 0.3, 0)
    >>> sorted(set(y[test].tolist())), len(pool) + len(test)
    ([0, 1, 2], 18)
    """
    pool, test = train_test_split(
        np.arange(len(y)), test_size=test_size, stratify=y, random_state=random_state
    )
    for label in np.setdiff1d(np.unique(y), y[test]):
        moved = pool[y[pool] == label][-1]
        pool, test = pool[pool != moved], np.append(test, moved)
    return pool, test


def _draw_shots(y, pool, k, rng):
    if k == "all":
        return pool
    chosen = [
        rng.choice(pool[y[pool] == label], size=k, replace=False)
        for label in np.unique(y)
    ]
    return np.concatenate(chosen)


def _methods(n_splits, seed, max_epochs, verbose):
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    sea = dict(max_epochs=max_epochs, random_state=seed, verbose=verbose)
    return {
        # sklearn's default max_iter=100 with convergence warnings ignored, as
        # in the reference implementation of the protocol (ssl-transfer).
        "tuned LR": GridSearchCV(LogisticRegression(), {"C": LR_GRID}, cv=folds),
        "SeA eta=0": SeAClassifier(eta=0.0, **sea),
        ETA_BY_CV: SeAClassifierCV(etas=ETAS, cv=folds, **sea),
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
    verbose=0,
):
    """Run the low-shot comparison and return one record per (method, k, seed).

    Shot counts larger than the smallest class of the training pool are
    skipped with a warning; a ValueError is raised, before any fit, when none
    fits.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Features.
    y : ndarray of shape (n_samples,)
        Labels.
    shots : sequence of int or "all", default=(5, 10, 20, "all")
        Labelled training images per class (at least 2, for cross-validation).
    seeds : sequence of int, default=(0, 1, 2)
        Seeds of the shot draws and of the probes; "all" runs the first only.
    cv : int, default=3
        Folds for choosing C and eta (fewer when a class has fewer shots).
    test_size : float, default=0.3
        Share of the fixed, stratified test split.
    max_epochs : int, default=100
        Epochs of every SeA fit.
    random_state : int, default=0
        Seed of the test split.
    log : callable, default=print
        Receives one progress line as each fit starts and one as it ends.
    verbose : int, default=0
        Passed to the SeA probes: 1 draws a progress bar over each fit's
        epochs.

    Returns
    -------
    records : list of dict
        Keys ``method``, ``k``, ``seed``, ``accuracy``, ``seconds`` and
        ``choice`` (the chosen C or eta; None for ``SeA eta=0``).
    """
    labels, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:
        raise ValueError(
            f"class {labels[np.argmin(counts)].item()!r} has a single image; every "
            "class needs images for both the training pool and the test split."
        )
    pool, test = split_pool_and_test(y, test_size, random_state)
    shots = _fitting_shots(y, pool, shots, test_size)
    cells = [(k, seed) for k in shots for seed in (seeds[:1] if k == "all" else seeds)]
    n_fits = 3 * len(cells)
    records = []
    for k, seed in cells:
        train = _draw_shots(y, pool, k, np.random.RandomState(seed))
        n_splits = min(cv, np.unique(y[train], return_counts=True)[1].min())
        for name, model in _methods(n_splits, seed, max_epochs, verbose).items():
            step = f"[{len(records) + 1}/{n_fits}] k={k} seed={seed} {name}"
            log(f"{step}: fitting on {len(train)} images...")
            start = time.perf_counter()
            # One BLAS thread: on these small problems, multithreaded
            # BLAS beside torch's OpenMP pool made L-BFGS ~15x slower.
            with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X[train], y[train])
            seconds = time.perf_counter() - start
            choice = getattr(model, "eta_", getattr(model, "best_params_", {}).get("C"))
            accuracy = model.score(X[test], y[test])
            records.append(
                dict(
                    method=name,
                    k=k,
                    seed=seed,
                    seconds=seconds,
                    accuracy=accuracy,
                    choice=choice,
                )
            )
            log(f"{step}: test accuracy {accuracy:.3f} ({seconds:.1f}s)")
    return records


def _cells(records):
    """Group records by method, then by k, in the order they were run."""
    grouped = {}
    for record in records:
        grouped.setdefault(record["method"], {}).setdefault(record["k"], [])
        grouped[record["method"]][record["k"]].append(record)
    return grouped


def _seed_note(records):
    """Say what a cell shows, e.g. "mean +- std over 3 seeds; k=all: 1 seed, ..."."""
    n_seeds = {k: len(cell) for k, cell in next(iter(_cells(records).values())).items()}
    usual = max(n_seeds.values(), key=list(n_seeds.values()).count)

    def shown(n):
        return f"mean +- std over {n} seeds" if n > 1 else "1 seed, a single value"

    others = [f"k={k}: {shown(n)}" for k, n in n_seeds.items() if n != usual]
    return "; ".join([shown(usual), *others])


def format_table(records):
    """Tabulate accuracy (%) per method and k, and mean fit time, with a caption.

    A cell measured over several seeds shows ``mean +- std``; a cell measured
    once shows its value alone.
    """
    grouped = _cells(records)
    shots = list(next(iter(grouped.values())))
    caption = f"test accuracy (%): {_seed_note(records)}"
    header = (
        f"{'method':15s}"
        + "".join(f"{'k=' + str(k):>16s}" for k in shots)
        + f"{'fit s':>8s}"
    )
    lines = [caption, header, "-" * len(header)]
    for method, by_k in grouped.items():
        cells = []
        for k in shots:
            scores = [100 * r["accuracy"] for r in by_k[k]]
            spread = f" +- {np.std(scores):4.1f}" if len(scores) > 1 else ""
            cells.append(f"{np.mean(scores):.1f}{spread}")
        seconds = [r["seconds"] for cell in by_k.values() for r in cell]
        lines.append(
            f"{method:15s}"
            + "".join(f"{c:>16s}" for c in cells)
            + f"{np.mean(seconds):8.2f}"
        )
    return "\n".join(lines)


def format_eta_choices(records):
    """List the eta chosen by cross-validation in every run of each k, as text.

    Shows how often eta=0, the plain probe without SeA, was chosen.
    """
    lines = [f"eta chosen by cross-validation ({ETA_BY_CV}), one per seed:"]
    for k, cell in _cells(records)[ETA_BY_CV].items():
        etas = [r["choice"] for r in cell]
        n_plain = sum(eta == 0 for eta in etas)
        lines.append(
            f"  k={k!s:<4} {' '.join(f'{eta:g}' for eta in etas):24s} "
            f"eta=0 (plain probe) in {n_plain} of {len(etas)}"
        )
    return "\n".join(lines)


def plot_accuracy(records, path, title):
    """Write a PNG of accuracy against k per method, +- std bars (needs matplotlib)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for method, by_k in _cells(records).items():
        scores = [[100 * r["accuracy"] for r in cell] for cell in by_k.values()]
        ax.errorbar(
            range(len(scores)),
            [np.mean(s) for s in scores],
            # No bar where a single seed was run: there is no spread to show.
            yerr=[np.std(s) if len(s) > 1 else np.nan for s in scores],
            marker="o",
            capsize=3,
            label=method,
        )
    ax.set_xticks(range(len(by_k)), [str(k) for k in by_k])
    ax.set_xlabel("labelled images per class (k)")
    ax.set_ylabel("test accuracy (%)")
    note = _seed_note(records).replace("+-", "±")
    ax.set_title(f"{title}\n{note}", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
