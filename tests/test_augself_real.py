"""AugSelf's heads against their own base on real photos (issue 18); slow."""

import numpy as np
import pytest
from _benchmarks import load_benchmark

bench = load_benchmark("bench_augself_real")


@pytest.mark.slow
def test_augself_colour_head_keeps_hue_on_real_photos():
    """Issue 18: with aug_weights=4 the hue probe beats aug_weights=0.

    The benchmark's setting (384 crops of eight photos, 12 epochs of 6 steps,
    batch 64, lr 0.3) on seeds 0 and 1, where it measured +2.6 and +14.3
    points (+7.0 on seed 2).  At ``aug_weights=1`` no budget up to 144 steps
    gained on both attribute probes (User Guide), so this checks the effect
    the heads do have.  Ignoring ``aug_weights`` would give a gain of exactly
    0; the 1-point margin leaves room for other machines' arithmetic.
    """
    args = bench.parse_args(["--epochs", "12"])
    photos = bench.load_photos()
    gains = []
    for seed in (0, 1):
        rng = np.random.RandomState(seed)
        train = bench.training_crops(photos, args.n_train, rng)
        images, labels = bench.probe_crops(photos, args.n_probe, rng)
        colour = {}
        for weight in (0.0, 4.0):
            extractor = bench.augself(weight, 12, seed, args).fit(train)
            features = extractor.transform(images)
            colour[weight] = bench.probe_scores(features, labels, seed)["colour"]
        gains.append(colour[4.0] - colour[0.0])
    assert np.mean(gains) >= 0.01, gains
