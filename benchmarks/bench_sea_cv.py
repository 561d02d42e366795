"""SeAClassifierCV (one pass over all heads) against GridSearchCV over SeAClassifier.

Same data, same etas, same 3 stratified folds, same epochs and batch size.
Prints both wall-clock times (best of interleaved rounds), the speed-up
(target >= 3x), the chosen etas and their mean validation scores; the one-pass
fit uses ``selection="first"``, GridSearchCV's own rule, so both choose alike.
Data: ``make_lowshot_features`` (10 classes, 2,048 features) or, with
``--features F.npz``, features saved by ``skfeat extract`` or the demo.

Usage: python benchmarks/bench_sea_cv.py [--per-class 150] [--epochs 30]
       [--features F.npz] [--rounds 2]
"""

import argparse
import warnings

import numpy as np
import torch
from _timing import best_of
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skfeat import SeAClassifier, SeAClassifierCV
from skfeat.datasets import make_lowshot_features

ETAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2)


def main(per_class, epochs, features, rounds):
    if features:
        with np.load(features) as data:
            X, y = data["features"], data["labels"]
    else:
        X, _, y, _ = make_lowshot_features(
            n_features=2048,
            n_train_per_class=per_class,
            n_test_per_class=1,
            random_state=0,
        )
    folds = StratifiedKFold(3)
    warnings.simplefilter("ignore", ConvergenceWarning)  # large etas may collapse
    fits = {
        "one pass": lambda: SeAClassifierCV(
            etas=ETAS,
            cv=folds,
            selection="first",
            max_epochs=epochs,
            random_state=0,
            device="cpu",
        ).fit(X, y),
        "grid search": lambda: GridSearchCV(
            SeAClassifier(max_epochs=epochs, random_state=0, device="cpu"),
            {"eta": list(ETAS)},
            cv=folds,
        ).fit(X, y),
    }
    best, models = best_of(fits, rounds)
    one_pass, search = models["one pass"], models["grid search"]
    one_pass_seconds, search_seconds = best["one pass"], best["grid search"]

    print(
        f"X={X.shape} classes={len(np.unique(y))} etas={len(ETAS)} folds=3 "
        f"epochs={epochs} threads={torch.get_num_threads()}"
    )
    print(
        f"  SeAClassifierCV  {one_pass_seconds:7.2f} s   eta_={one_pass.eta_}  "
        f"mean validation accuracy {one_pass.best_score_:.4f}"
    )
    print(
        f"  GridSearchCV     {search_seconds:7.2f} s   "
        f"eta={search.best_params_['eta']}  "
        f"mean validation accuracy {search.best_score_:.4f}"
    )
    print(f"speed-up = {search_seconds / one_pass_seconds:.2f}x  (target >= 3)")
    print("per-eta mean validation accuracy (one pass / grid search):")
    for eta, a, b in zip(
        ETAS,
        one_pass.cv_results_["mean_test_score"],
        search.cv_results_["mean_test_score"],
    ):
        print(f"  eta={eta:.1f}  {a:.4f} / {b:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--features", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    main(args.per_class, args.epochs, args.features, args.rounds)
