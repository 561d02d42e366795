"""One process of the distributed tests, started by torchrun (or alone).

``python tests/_distributed_worker.py CASE OUT [--keep-local] [--no-sync]
[--checkpoint DIR] [--epochs E] [--rows N] [--die-at-batch K]
[--stall-at-batch K] [--grid-search]`` fits the
extractor of ``CASE`` on the toy data with
``accelerator=Accelerator(cpu=True)`` when ``WORLD_SIZE`` > 1, and saves its
losses, weights and features to ``OUT/rank<r>.pt`` (rank 0 also pickles the
extractor to ``OUT/extractor.pkl``).
"""

import argparse
import os
import pickle
import signal
import sys

import numpy as np
import torch

from skfeat import AugSelfExtractor, EquivariantExtractor

CASES = ("simclr", "augself", "equivariant", "moco", "images")
BATCH = 32


def toy_data(case, n=64):
    """Tiny training data: ``n`` vectors of 19 features, or 16 images of 16 px."""
    rng = np.random.RandomState(0)
    if case == "images":
        return rng.randint(0, 256, (16, 16, 16, 3), dtype=np.uint8)
    return rng.randn(n, 19).astype(np.float32)


def make_extractor(case, accelerator=None, **params):
    """The extractor of a case, with a tiny backbone and 3 epochs."""
    common = dict(
        max_epochs=3,
        batch_size=BATCH,
        lr=2.0,
        random_state=0,
        accelerator=accelerator,
        weights=None,
        **params,
    )
    if case == "equivariant":
        return EquivariantExtractor(
            "mlp", steered=("scale", "rotate"), validation_fraction=0.0, **common
        )
    if case == "images":
        common["batch_size"] = 8
        return AugSelfExtractor(
            "tiny_cnn",
            base="simclr",
            head_hidden=16,
            aug_types=("crop", "color"),
            **common,
        )
    base = "moco" if case == "moco" else "simclr"
    weight = 1.0 if case == "augself" else 0.0
    aug_types = ("scale",) if weight else ()
    return AugSelfExtractor(
        "mlp",
        base=base,
        aug_types=aug_types,
        aug_weights=weight,
        head_hidden=16,
        **common,
    )


def results(extractor, X):
    """What the tests compare: losses, weights, features and OOD scores."""
    history = extractor.net_.history
    extra = [k for k in history[-1] if k.startswith("aux_") or k == "equivariance"]
    return {
        "loss": torch.tensor(extractor.loss_curve_),
        "extra": {k: torch.tensor([float(e[k]) for e in history]) for k in extra},
        "weights": {
            k: v.detach().clone()
            for k, v in extractor.net_.module_.state_dict().items()
        },
        "features": torch.from_numpy(extractor.transform(X)),
        "ood": (
            torch.from_numpy(extractor.ood_score(X[:8]))
            if hasattr(extractor, "ood_score")
            else None
        ),
    }


def grid_search(extractor, X):
    """Mean scores of a 2-fold search over ``temperature``, scored by variance."""
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(
        extractor,
        {"temperature": [0.2, 0.5]},
        scoring=lambda est, X, y=None: float(np.var(est.transform(X))),
        cv=2,
    ).fit(X)
    assert search.best_estimator_.accelerator is extractor.accelerator
    return {"scores": torch.from_numpy(search.cv_results_["mean_test_score"])}


def signal_at_batch(batch, number):
    """Send this process signal ``number`` when it starts global batch ``batch``."""
    from skfeat._engine import SSLNet

    on_batch_begin = SSLNet.on_batch_begin
    count = [0]

    def dying(self, net, **kwargs):
        count[0] += 1
        if count[0] == batch:
            os.kill(os.getpid(), number)
        return on_batch_begin(self, net, **kwargs)

    SSLNet.on_batch_begin = dying


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=CASES)
    parser.add_argument("out")
    parser.add_argument("--keep-local", action="store_true")
    parser.add_argument("--no-sync", action="store_true")
    parser.add_argument("--checkpoint")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--die-at-batch", type=int)
    parser.add_argument("--stall-at-batch", type=int)
    parser.add_argument("--grid-search", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    accelerator = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)
    rank = int(os.environ.get("RANK", "0"))
    if args.die_at_batch is not None:
        signal_at_batch(args.die_at_batch, signal.SIGKILL)
    if args.stall_at_batch is not None:
        signal_at_batch(args.stall_at_batch, signal.SIGSTOP)
    X = toy_data(args.case, args.rows)
    extractor = make_extractor(
        args.case,
        accelerator,
        gather_negatives=not args.keep_local,
        sync_batchnorm=not args.no_sync,
        checkpoint=args.checkpoint,
    ).set_params(max_epochs=args.epochs)
    if args.grid_search:
        torch.save(grid_search(extractor, X), os.path.join(args.out, f"rank{rank}.pt"))
        return
    extractor.fit(X)
    torch.save(results(extractor, X), os.path.join(args.out, f"rank{rank}.pt"))
    if rank == 0:
        with open(os.path.join(args.out, "extractor.pkl"), "wb") as file:
            pickle.dump(extractor, file)


if __name__ == "__main__":
    main(sys.argv[1:])
