"""How steerable are pretrained features at each depth?  Frozen Lite0, other photos.

``EquivariantExtractor`` needs embeddings ``f`` for which one linear map per
augmentation parameter predicts the change, ``f(T_g x) ~ M(g) f(x)``.  This
benchmark asks how far a *frozen* EfficientNet-Lite0 (offline ImageNet
weights, 64 px) is from that at several depths: the global-average-pooled
output of the stem, of blocks 1, 3 and 5, and the final features.  At each
depth the features are standardised and a map first-order in g,
``f(T_g x) - f(x) ~ sum_j g_j (A_j f(x) + b_j)``, is fitted in closed form
(ridge; the penalty chosen by training on four of the six training photos
and validating on the other two) on colour-augmented crops of the six
training photos, then measured on crops of four *other* photos.  The ratio
is the steered over the unsteered mean relative error
``||p - f(T_g x)|| / ||f(T_g x)||`` (``p`` the prediction, or ``f(x)``), per
colour parameter and for all together, as ``equivariance_error_`` reports it;
"change" is the unsteered error, how much the augmentation moves the
features at all.

Usage: python benchmarks/bench_steerability_depth.py [--n 320] [--seed 0]
"""

import argparse

import numpy as np
import torch
from _photos import TEST_PHOTOS, TRAIN_PHOTOS, photo_crops
from bench_equivariance_real import augment

from skfeat import DeepFeatureExtractor
from skfeat.transforms import SteeredAugmentation
from skfeat.transforms._steered import COLOR_PARAMS

LAYERS = {
    "stem": "bn1",
    "block 1": "blocks.1",
    "block 3": "blocks.3",
    "block 5": "blocks.5",
    "final": None,
}
FAMILIES = [*COLOR_PARAMS, "all"]
PENALTIES = (1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4)


def colour_views(images, views_per_family, seed):
    """Augmented copies of ``images``: per family, g with only that parameter."""
    generator = torch.Generator().manual_seed(seed)
    sampler = SteeredAugmentation(COLOR_PARAMS)
    params, families = [], []
    for j, family in enumerate(FAMILIES):
        for _ in range(views_per_family):
            g = sampler.sample(len(images), generator).numpy()
            if family != "all":
                g[:, np.arange(len(COLOR_PARAMS)) != j] = 0
            params.append(g)
            families.append(family)
    return [augment(images, g) for g in params], params, families


def design(z, g):
    """Columns ``g_j * [f(x), 1]`` of the first-order map, for every j."""
    z1 = np.c_[z, np.ones(len(z))]
    return np.concatenate([g[:, j : j + 1] * z1 for j in range(g.shape[1])], axis=1)


def fit_map(z, views, params, penalty):
    """Ridge solution of ``f(T_g x) - f(x) ~ design(f(x), g) @ W``."""
    X = np.concatenate([design(z, g) for g in params])
    Y = np.concatenate([v - z for v in views])
    return np.linalg.solve(X.T @ X + penalty * np.eye(X.shape[1]), X.T @ Y)


def relative_errors(W, z, views, params, families):
    """Steered and unsteered mean relative error per family."""
    out = {}
    for family in FAMILIES:
        steered, unsteered = [], []
        for v, g, f in zip(views, params, families):
            if f == family:
                scale = np.linalg.norm(v, axis=1)
                pred = z + design(z, g) @ W
                steered.append(np.linalg.norm(pred - v, axis=1) / scale)
                unsteered.append(np.linalg.norm(z - v, axis=1) / scale)
        out[family] = (np.mean(steered), np.mean(unsteered))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=320, help="training crops")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)

    train, sources = photo_crops(TRAIN_PHOTOS, args.n, 64, args.seed)
    test, _ = photo_crops(TEST_PHOTOS, args.n // 2, 64, args.seed + 100)
    train_views = colour_views(train, 2, args.seed)
    test_views = colour_views(test, 2, args.seed + 1)
    fold = sources < 4  # penalty chosen on training photos 5 and 6

    print(
        f"{args.n} crops of {len(TRAIN_PHOTOS)} photos to fit, {args.n // 2} of "
        f"{len(TEST_PHOTOS)} others to measure; ratio steered / unsteered"
    )
    print(
        f"{'depth':>8} {'width':>6} {'penalty':>8} "
        + " ".join(f"{f:>10}" for f in FAMILIES)
        + f" {'change':>7}"
    )
    for depth, layer in LAYERS.items():
        extractor = DeepFeatureExtractor(
            "efficientnet_lite0", weights="DEFAULT", image_size=64, layer=layer
        )
        z_train = extractor.transform(train)
        mean, scale = z_train.mean(0), z_train.std(0) + 1e-6

        def features(images, mean=mean, scale=scale, extractor=extractor):
            return (extractor.transform(images) - mean) / scale

        z_train = features(train)
        v_train = [features(v) for v in train_views[0]]
        z_test = features(test)
        v_test = [features(v) for v in test_views[0]]

        def validation_ratio(penalty):
            W = fit_map(
                z_train[fold],
                [v[fold] for v in v_train],
                [g[fold] for g in train_views[1]],
                penalty,
            )
            held = [v[~fold] for v in v_train]
            params = [g[~fold] for g in train_views[1]]
            s, u = relative_errors(W, z_train[~fold], held, params, train_views[2])[
                "all"
            ]
            return s / u

        penalty = min(PENALTIES, key=validation_ratio)
        W = fit_map(z_train, v_train, train_views[1], penalty)
        errors = relative_errors(W, z_test, v_test, *test_views[1:])
        print(
            f"{depth:>8} {z_train.shape[1]:>6} {penalty:>8g} "
            + " ".join(f"{s / u:>10.3f}" for s, u in errors.values())
            + f" {errors['all'][1]:>7.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
