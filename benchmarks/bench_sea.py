"""Fit time of SeAClassifier against a bare torch loop and L-BFGS logistic regression.

Data: 5,000 x 2,048 synthetic features, 10 classes (``make_lowshot_features``
with 500 training samples per class).  Compared, all in one run:

* SeAClassifier(max_epochs=30): the skorch engine behind the sklearn facade;
* bare float64: a hand-written torch loop doing the same SeA updates (same
  batch size, epochs, float64 arithmetic) with skfeat.nn's functions;
* bare float32: the same loop in float32, to show what the float64
  arithmetic costs;
* LogisticRegression(lbfgs), sklearn defaults.

Target: SeAClassifier <= 1.25x the bare float64 loop.

Usage: python benchmarks/bench_sea.py [--epochs 30] [--rounds 2]
"""

import argparse

import numpy as np
import torch
from _timing import best_of
from sklearn.linear_model import LogisticRegression

from skfeat import SeAClassifier
from skfeat.datasets import make_lowshot_features
from skfeat.nn import SeALoss, l2_normalize, sea_augment


def bare_loop(X, y, epochs, batch_size, dtype, seed=0):
    X = l2_normalize(torch.as_tensor(X, dtype=dtype))
    y = torch.as_tensor(y)
    torch.manual_seed(seed)
    head = torch.nn.Linear(X.shape[1], int(y.max()) + 1, bias=False, dtype=dtype)
    optimizer = torch.optim.SGD(
        head.parameters(), lr=1.6, momentum=0.9, weight_decay=1e-6
    )
    loss_fn = SeALoss()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), batch_size):
            rows = order[start : start + batch_size]
            x = sea_augment(
                head, X[rows], y[rows], eta=0.8, alpha=0.01, loss_fn=loss_fn
            )
            optimizer.zero_grad()
            loss_fn(head(x), y[rows]).backward()
            optimizer.step()
    return head


def main(epochs, rounds, batch_size):
    X, X_test, y, y_test = make_lowshot_features(
        n_features=2048, n_train_per_class=500, n_test_per_class=200, random_state=0
    )
    fits = {
        "SeAClassifier": lambda: SeAClassifier(
            max_epochs=epochs, batch_size=batch_size, random_state=0, device="cpu"
        ).fit(X, y),
        "bare float64": lambda: bare_loop(X, y, epochs, batch_size, torch.float64),
        "bare float32": lambda: bare_loop(X, y, epochs, batch_size, torch.float32),
        "LogisticRegression": lambda: LogisticRegression().fit(X, y),
    }
    best, models = best_of(fits, rounds)

    def accuracy(name):
        model = models[name]
        if isinstance(model, torch.nn.Module):
            with torch.no_grad():
                weight = model.weight.double().numpy()
            return np.mean((X_test @ weight.T).argmax(1) == y_test)
        return model.score(X_test, y_test)

    print(
        f"X={X.shape} classes=10 epochs={epochs} batch={batch_size} "
        f"threads={torch.get_num_threads()}"
    )
    for name in fits:
        print(f"  {name:20s} {best[name]:7.2f} s   test accuracy {accuracy(name):.4f}")
    ratio = best["SeAClassifier"] / best["bare float64"]
    print(f"SeAClassifier / bare float64 = {ratio:.3f}  (target <= 1.25)")
    print(
        "SeAClassifier / bare float32 = "
        f"{best['SeAClassifier'] / best['bare float32']:.3f}"
    )
    print(
        f"SeAClassifier / LogisticRegression = "
        f"{best['SeAClassifier'] / best['LogisticRegression']:.3f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    main(args.epochs, args.rounds, args.batch_size)
