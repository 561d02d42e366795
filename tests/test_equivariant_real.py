"""EquivariantExtractor's colour steering on real photos (issue 18); slow."""

import numpy as np
import pytest
from _benchmarks import load_benchmark

from skfeat import EquivariantExtractor

bench = load_benchmark("bench_equivariance_real")


@pytest.fixture(scope="module")
def fitted():
    """The default extractor fitted on 288 crops of the six training photos."""
    train, _ = bench.photo_crops(bench.TRAIN_PHOTOS, 288, 64, seed=0)
    return EquivariantExtractor(
        "efficientnet_lite0", image_size=64, batch_size=64, random_state=0
    ).fit(train)


@pytest.mark.slow
def test_default_steering_follows_colour_jitter_on_other_photos(fitted):
    """Issue 18's bar: fitted on crops of six photos with the defaults, the
    steered error on crops of four other photos is at most 0.7 times the
    unsteered one (each colour parameter at most 0.85).  The benchmark
    measured 0.52 (0.40, 0.75, 0.82, 0.25 per parameter); maps at the
    identity give 1.0 everywhere.
    """
    other, _ = bench.photo_crops(bench.TEST_PHOTOS, 160, 64, seed=100)
    *each, together = bench.equivariance_ratios(fitted, other, seed=0)
    assert together <= 0.7, (each, together)
    assert max(each) <= 0.85, (each, together)
    assert np.all(fitted.equivariance_error_["ratio"] < 0.95)


@pytest.mark.slow
@pytest.mark.parametrize("severity", bench.SEVERITIES)
def test_steered_ood_score_beats_g_zero_on_corrupted_photos(fitted, severity):
    """Issue 18's bar: new crops of the training photos against corrupted
    copies (noise, blur, contrast, fade, colour), the mean AUROC of ``ood_score``
    with its steered changes beats g = 0 alone.  The benchmark measured
    0.754 against 0.710 (strong) and 0.680 against 0.637 (mild); with
    identity maps the two scores rank every input alike.
    """
    clean, _ = bench.photo_crops(bench.TRAIN_PHOTOS, 160, 64, seed=200)
    zero = np.zeros((1, len(bench.COLOR_PARAMS)), np.float32)
    steered = bench.ood_aurocs(fitted.ood_score, clean, severity)
    plain = bench.ood_aurocs(
        lambda x: fitted.ood_score(x, params_list=zero), clean, severity
    )
    assert np.mean(steered) >= np.mean(plain) + 0.03, (steered, plain)
