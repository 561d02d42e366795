"""EquivariantExtractor's colour steering on real photos (issue 18); slow."""

import numpy as np
import pytest
from _benchmarks import load_benchmark

from skfeat import EquivariantExtractor

bench = load_benchmark("bench_equivariance_real")


@pytest.mark.slow
def test_default_steering_follows_colour_jitter_on_other_photos():
    """Issue 18's bar: fitted on crops of six photos with the defaults, the
    steered error on crops of four other photos is at most 0.7 times the
    unsteered one (each colour parameter at most 0.85).  The benchmark
    measured 0.52 (0.40, 0.75, 0.82, 0.25 per parameter); maps at the
    identity give 1.0 everywhere.
    """
    train, _ = bench.photo_crops(bench.TRAIN_PHOTOS, 288, 64, seed=0)
    other, _ = bench.photo_crops(bench.TEST_PHOTOS, 160, 64, seed=100)
    extractor = EquivariantExtractor(
        "efficientnet_lite0", image_size=64, batch_size=64, random_state=0
    ).fit(train)
    *each, together = bench.equivariance_ratios(extractor, other, seed=0)
    assert together <= 0.7, (each, together)
    assert max(each) <= 0.85, (each, together)
    assert np.all(extractor.equivariance_error_["ratio"] < 0.95)
