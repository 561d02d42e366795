"""Which rule should ``ood_score`` use?  A stand-in where steering is exact.

``bench_equivariance_real.py`` compares the rules on photos with the colour
steering, which is approximate; here the rule that turns K steered
embeddings into one out-of-distribution score is compared where steering is
exact: vectors whose last three features are scaled by ``exp(g1)`` and
turned by ``g2`` radians about the grey axis (the ``"scale"`` and ``"rotate"``
families, training ranges +-0.5 and +-1.0), so ``M(g) z = T_g z`` holds
exactly.  In-distribution data: a mixture of five Gaussians in 8 dimensions,
each vector transformed by a g drawn from the training range; 1,024 of them
are the reference set.  Test inputs: 500 new draws, and the same draws after
a shift along a steered family (beyond or within the range) or Gaussian
noise.  Each input is scored, for g = 0 and 31 drawn g_k, by one minus the
largest cosine of its steered embedding to the reference set; the rules
combine the K values:

* ``g = 0``: the plain embedding alone;
* ``closest``: the smallest over k (steer the input back towards the data);
* ``mean``: the mean over k (test-time augmentation of the score);
* ``residual/shift`` (``ood_score``'s rule): the larger of the closest
  distance (residual) and of how much closer the closest view is than
  g = 0 (shift), each standardised over 256 reference vectors scored
  against the other reference vectors.

Printed: AUROC of test inputs against their shifted copies, mean and
standard deviation over seeds.

Usage: python benchmarks/bench_ood_rule.py [--seeds 10]
"""

import argparse

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from skfeat.extraction._ood import (
    N_CALIBRATION,
    nearest_distances,
    residual_and_shift,
    standardised_max,
)
from skfeat.transforms import SteeredAugmentation

STEERED = SteeredAugmentation(("scale", "rotate"), start=5)
SHIFTS = {
    "rotate 2.0 (beyond)": [0.0, 2.0],
    "rotate 0.8 (within)": [0.0, 0.8],
    "scale -1.5 (beyond)": [-1.5, 0.0],
    "scale +1.5 (beyond)": [1.5, 0.0],
}
RULES = ("g = 0", "closest", "mean", "residual/shift")


def steer(x, g):
    """Exact steering: the transformation itself, one g for every row."""
    g = torch.as_tensor(np.tile(np.asarray(g, np.float32), (len(x), 1)))
    return STEERED.apply(torch.as_tensor(x), g).numpy()


def draw(n, centers, rng, generator):
    """In-distribution vectors: mixture draws, each steered by a random g."""
    x = centers[rng.randint(len(centers), size=n)] + 0.3 * rng.normal(
        size=(n, centers.shape[1])
    )
    g = STEERED.sample(n, generator)
    return STEERED.apply(torch.as_tensor(x, dtype=torch.float32), g).numpy()


def distances(x, reference, params, own_rows=None):
    """Distance of each steered row to the reference; column 0 is g = 0."""
    return nearest_distances((steer(x, g) for g in params), reference, own_rows)


def scores(x, reference, params, calibration):
    """Every rule's score of the rows of ``x``."""
    d = distances(x, reference, params)
    parts = residual_and_shift(d)
    rules = (d[:, 0], d.min(1), d.mean(1), standardised_max(parts, calibration))
    return dict(zip(RULES, rules))


def run_seed(seed):
    """AUROC of every rule against every shift, for one seed."""
    rng = np.random.RandomState(seed)
    generator = torch.Generator().manual_seed(seed)
    centers = rng.normal(size=(5, 8))
    reference = draw(1024, centers, rng, generator)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    test = draw(500, centers, rng, generator)
    params = np.vstack([np.zeros((1, 2)), STEERED.sample(31, generator).numpy()])
    shifted = {name: steer(test, g) for name, g in SHIFTS.items()}
    shifted["noise 0.5"] = test + 0.5 * rng.normal(size=test.shape).astype(np.float32)
    rows = np.arange(0, len(reference), len(reference) // N_CALIBRATION)
    own = distances(reference[rows], reference, params, own_rows=rows)
    calibration = residual_and_shift(own)
    inside = scores(test, reference, params, calibration)
    labels = np.r_[np.zeros(len(test)), np.ones(len(test))]
    auroc = {}
    for name, x in shifted.items():
        outside = scores(x, reference, params, calibration)
        for rule in RULES:
            auroc[name, rule] = roc_auc_score(
                labels, np.r_[inside[rule], outside[rule]]
            )
    return auroc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    runs = [run_seed(seed) for seed in range(args.seeds)]
    print(f"AUROC against shifted copies, mean ± std over {args.seeds} seeds")
    print(f"{'shift':>20} " + " ".join(f"{rule:>13}" for rule in RULES))
    for name in [*SHIFTS, "noise 0.5"]:
        cells = [np.array([run[name, rule] for run in runs]) for rule in RULES]
        print(
            f"{name:>20} " + " ".join(f"{c.mean():7.3f} ± {c.std():.3f}" for c in cells)
        )


if __name__ == "__main__":
    main()
