"""``ood_score`` time, quiet and beside a busy process: torch against numpy products.

``ood_score`` steers each embedding in torch and compares it with the kept
training embeddings by a matrix product.  Done in numpy, the product's BLAS
threads and torch's threads take turns; this benchmark times, in one run,
the current torch product ("after") against the numpy one it replaced
("before"), for a small call (16 crops) and a large one (640 crops), on the
quiet machine and beside one CPU-bound busy-loop process.  The extractor is
the default ``EquivariantExtractor("efficientnet_lite0", weights="DEFAULT",
image_size=64)`` fitted on 288 crops of six photos; a call includes
embedding the crops.  Printed: best seconds of ``--rounds`` interleaved
calls and ratio, before / after (above 1: the change is faster).

Usage: python benchmarks/bench_ood_speed.py [--rounds 3]
"""

import argparse
from unittest import mock

import numpy as np
import torch
from _photos import TRAIN_PHOTOS, photo_crops
from _timing import best_of, busy_process

from skfeat import EquivariantExtractor
from skfeat.extraction import _ood
from skfeat.nn import l2_normalize


def numpy_nearest_distances(views, reference, own_rows=None):
    """The distances as computed before, with numpy's matrix product."""
    columns = []
    for view in views:
        cosines = l2_normalize(torch.from_numpy(view)).numpy() @ reference.T
        if own_rows is not None:
            cosines[np.arange(len(view)), own_rows] = -np.inf
        columns.append(1.0 - cosines.max(axis=1))
    return np.stack(columns, axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    train, _ = photo_crops(TRAIN_PHOTOS, 288, 64, seed=0)
    extractor = EquivariantExtractor(
        "efficientnet_lite0", image_size=64, random_state=0
    ).fit(train)
    inputs = {
        "small": photo_crops(TRAIN_PHOTOS, 16, 64, seed=1)[0],
        "large": photo_crops(TRAIN_PHOTOS, 640, 64, seed=2)[0],
    }

    def before(x):
        with mock.patch.object(_ood, "nearest_distances", numpy_nearest_distances):
            return extractor.ood_score(x)

    print(f"{'call':>6} {'machine':>8} {'before s':>9} {'after s':>8} {'ratio':>6}")
    for machine in ("quiet", "busy"):
        for size, x in inputs.items():
            calls = {
                "before": lambda x=x: before(x),
                "after": lambda x=x: extractor.ood_score(x),
            }
            if machine == "busy":
                with busy_process():
                    seconds, scores = best_of(calls, args.rounds)
            else:
                seconds, scores = best_of(calls, args.rounds)
            assert np.allclose(scores["before"], scores["after"], atol=1e-4)
            print(
                f"{size:>6} {machine:>8} {seconds['before']:9.2f} "
                f"{seconds['after']:8.2f} {seconds['before'] / seconds['after']:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
