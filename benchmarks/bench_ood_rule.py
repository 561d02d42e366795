"""Which rule should ``ood_score`` use?  A stand-in where steering is exact.

On real photos the learned steering is still near the identity (see
``bench_equivariance_real.py``), so the rule that turns K steered embeddings
into one out-of-distribution score is compared where steering is exact:
vectors whose last three features are scaled by ``exp(g1)`` and turned by
``g2`` radians about the grey axis (the ``"scale"`` and ``"rotate"``
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
* ``mean``: the mean over k (test-time augmentation of the score).

Printed: AUROC of test inputs against their shifted copies, mean and
standard deviation over seeds.

Usage: python benchmarks/bench_ood_rule.py [--seeds 10]
"""

import argparse

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from skfeat.transforms import SteeredAugmentation

STEERED = SteeredAugmentation(("scale", "rotate"), start=5)
SHIFTS = {
    "rotate 2.0 (beyond)": [0.0, 2.0],
    "rotate 0.8 (within)": [0.0, 0.8],
    "scale -1.5 (beyond)": [-1.5, 0.0],
    "scale +1.5 (beyond)": [1.5, 0.0],
}
RULES = ("g = 0", "closest", "mean")


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


def scores(x, reference, params):
    """Every rule's score of the rows of ``x``."""
    distances = []
    for g in params:
        z = steer(x, g)
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        distances.append(1 - (z @ reference.T).max(1))
    distances = np.array(distances)
    return dict(zip(RULES, (distances[0], distances.min(0), distances.mean(0))))


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
    inside = scores(test, reference, params)
    labels = np.r_[np.zeros(len(test)), np.ones(len(test))]
    auroc = {}
    for name, x in shifted.items():
        outside = scores(x, reference, params)
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
