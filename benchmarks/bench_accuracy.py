"""Low-shot accuracy of SeA against a tuned logistic regression, on saved features.

For each features file (``skfeat extract ... --out F.npz``, with labels), runs
the protocol of ``skfeat probe`` (fixed 30% test split; k labelled images per
class; C and eta chosen by cross-validation on the training shots only) and
prints, per dataset and k, the gain of SeA (eta by CV) over the tuned LR
baseline and over SeA's own eta=0 ablation, in accuracy points, and the eta
chosen in each run (eta=0 is the plain probe).

Usage: python benchmarks/bench_accuracy.py A.npz [B.npz ...] [--shots 5,10,20,all]
"""

import argparse
import os

import numpy as np

from skfeat._lowshot import (
    compare_probes,
    format_eta_choices,
    format_table,
    parse_shots,
)


def gains(records):
    by = {(r["method"], r["k"], r["seed"]): r["accuracy"] for r in records}
    rows = []
    for k in dict.fromkeys(r["k"] for r in records):
        seeds = [
            r["seed"] for r in records if r["k"] == k and r["method"] == "SeA eta by CV"
        ]
        over_lr = [by[("SeA eta by CV", k, s)] - by[("tuned LR", k, s)] for s in seeds]
        over_eta0 = [
            by[("SeA eta by CV", k, s)] - by[("SeA eta=0", k, s)] for s in seeds
        ]
        rows.append((k, 100 * np.mean(over_lr), 100 * np.mean(over_eta0)))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", nargs="+")
    parser.add_argument("--shots", type=parse_shots, default="5,10,20,all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=100)
    args = parser.parse_args()
    for path in args.features:
        with np.load(path) as data:
            X, y = data["features"], data["labels"]
        records = compare_probes(
            X,
            y,
            shots=args.shots,
            seeds=tuple(range(args.seeds)),
            max_epochs=args.max_epochs,
            log=lambda line: None,
        )
        print(
            f"\n== {os.path.basename(path)}: {X.shape[0]} x {X.shape[1]}, "
            f"{len(np.unique(y))} classes"
        )
        print(format_table(records))
        print(format_eta_choices(records))
        for k, over_lr, over_eta0 in gains(records):
            print(
                f"  k={k!s:>3}: SeA gain over tuned LR {over_lr:+5.1f} points, "
                f"over eta=0 {over_eta0:+5.1f} points"
            )
