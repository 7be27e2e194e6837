"""course_lib.stats: paired differences, the percentile bootstrap and the images-needed formula.

Oracles: hand-computed cases, an explicit resampling loop with numpy's percentile, the exact bootstrap distribution
of a two-image sample, the normal quantile from the standard library, and coverage on synthetic data.
"""

import math
from statistics import NormalDist

import numpy as np
import pytest

from course_lib import stats
from course_lib.errors import CourseError


def test_paired_differences_by_hand():
    got = stats.paired_differences([30.0, 28.5, 31.25], [29.0, 28.75, 30.0])
    np.testing.assert_array_equal(got, [1.0, -0.25, 1.25])


def test_constant_differences_give_a_zero_width_interval():
    iv = stats.paired_bootstrap([0.4] * 7, n=500, seed=3)
    assert (iv.mean, iv.low, iv.high) == pytest.approx((0.4, 0.4, 0.4), abs=1e-12)
    assert iv.excludes_zero and iv.n_images == 7 and iv.n_resamples == 500
    one = stats.paired_bootstrap([-1.5], n=100)
    assert (one.low, one.high) == (-1.5, -1.5) and one.excludes_zero


def test_matches_an_explicit_resampling_loop():
    rng_data = np.random.default_rng(11)
    diffs = rng_data.normal(0.2, 0.5, size=13)
    n, seed, level = 2000, 5, 0.9
    rng = np.random.default_rng(seed)
    index = rng.integers(0, diffs.size, size=(n, diffs.size))
    means = []
    for row in index:  # one resample at a time, written out
        total = 0.0
        for i in row:
            total += diffs[i]
        means.append(total / diffs.size)
    low, high = np.percentile(means, [5.0, 95.0])
    np.testing.assert_allclose(stats.bootstrap_means(diffs, n=n, seed=seed), means, rtol=0, atol=1e-12)
    iv = stats.paired_bootstrap(diffs, n=n, seed=seed, level=level)
    assert iv.low == pytest.approx(low, abs=1e-12) and iv.high == pytest.approx(high, abs=1e-12)
    assert iv.mean == pytest.approx(float(np.mean(diffs)), abs=1e-12)


def test_two_images_hand_computed_distribution():
    # Resampling [0, 1] twice with replacement: the mean is 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4.
    means = stats.bootstrap_means([0.0, 1.0], n=40_000, seed=0)
    values, counts = np.unique(means, return_counts=True)
    np.testing.assert_array_equal(values, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(counts / counts.sum(), [0.25, 0.5, 0.25], atol=0.01)
    iv = stats.paired_bootstrap([0.0, 1.0], n=40_000, seed=0)
    assert (iv.mean, iv.low, iv.high) == (0.5, 0.0, 1.0)  # the 2.5 % and 97.5 % quantiles fall on 0 and 1
    assert not iv.excludes_zero
    narrow = stats.paired_bootstrap([0.0, 1.0], n=40_000, seed=0, level=0.4)  # 30 % and 70 % quantiles
    assert (narrow.low, narrow.high) == (0.5, 0.5)


def test_seed_reproducible_and_different_seeds_differ():
    d = np.arange(10.0)
    a = stats.paired_bootstrap(d, n=300, seed=1)
    assert a == stats.paired_bootstrap(d, n=300, seed=1)
    assert not np.array_equal(stats.bootstrap_means(d, 300, 1), stats.bootstrap_means(d, 300, 2))


def test_coverage_on_synthetic_data():
    # 95 % intervals of the mean of 30 normal differences should contain the true mean about 95 % of the time
    # (the percentile bootstrap is slightly narrow at n = 30: 92-95 % in theory); 400 trials give +-2.2 %.
    rng = np.random.default_rng(2024)
    hits = 0
    trials = 400
    for t in range(trials):
        sample = rng.normal(0.3, 1.0, size=30)
        iv = stats.paired_bootstrap(sample, n=2000, seed=t)
        hits += iv.low <= 0.3 <= iv.high
    assert 0.89 <= hits / trials <= 0.98
    # and the interval of a clearly positive gap excludes zero, that of a zero gap mostly does not
    assert stats.paired_bootstrap(rng.normal(1.0, 0.3, size=20)).excludes_zero


def test_interval_width_shrinks_like_one_over_sqrt_n():
    rng = np.random.default_rng(7)
    big = rng.normal(0.0, 1.0, size=4000)
    w100 = stats.paired_bootstrap(big[:100], n=4000).high - stats.paired_bootstrap(big[:100], n=4000).low
    w400 = stats.paired_bootstrap(big[:400], n=4000).high - stats.paired_bootstrap(big[:400], n=4000).low
    assert w100 / w400 == pytest.approx(2.0, rel=0.2)
    assert w100 == pytest.approx(2 * 1.96 * big[:100].std() / 10, rel=0.1)  # normal theory


def test_images_needed_by_hand_and_by_formula():
    z = NormalDist().inv_cdf(0.975)
    assert stats.images_needed(1.0, z / 10) == 100  # z sd / sqrt(100) = z / 10 exactly
    assert stats.images_needed(1.0, 0.196) == 100  # (1.95996 / 0.196)^2 = 99.99
    assert stats.images_needed(0.5, 0.1) == math.ceil((z * 0.5 / 0.1) ** 2) == 97
    assert stats.images_needed(0.5, 0.1, level=0.9) == math.ceil((NormalDist().inv_cdf(0.95) * 5) ** 2) == 68
    assert stats.images_needed(0.0, 0.1) == 1
    # and the promise holds: with that many images the normal half-width is at most the target
    for sd, hw in [(0.3, 0.05), (1.2, 0.17), (0.07, 0.01)]:
        k = stats.images_needed(sd, hw)
        assert z * sd / math.sqrt(k) <= hw + 1e-12 and z * sd / math.sqrt(k - 1) > hw


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: stats.paired_bootstrap([]), "empty"),
        (lambda: stats.paired_bootstrap([1.0, float("nan")]), "NaN"),
        (lambda: stats.paired_bootstrap([1.0, float("inf")]), "infinite"),
        (lambda: stats.paired_bootstrap([[1.0, 2.0]]), "1-D"),
        (lambda: stats.paired_bootstrap(["a"]), "numbers"),
        (lambda: stats.paired_bootstrap([1.0], n=0), "positive integer"),
        (lambda: stats.paired_bootstrap([1.0], n=2.5), "positive integer"),
        (lambda: stats.paired_bootstrap([1.0], level=95), r"\(0, 1\)"),
        (lambda: stats.paired_differences([1.0, 2.0], [1.0]), "same images"),
        (lambda: stats.bootstrap_means(np.zeros(10_000), n=10_000), "too many"),
        (lambda: stats.images_needed(1.0, 0.0), "half_width"),
        (lambda: stats.images_needed(-1.0, 0.1), "sd"),
    ],
)
def test_bad_input_is_a_course_error(call, message):
    with pytest.raises(CourseError, match=message):
        call()


def test_interval_str_names_level_and_images():
    text = str(stats.paired_bootstrap([0.1, 0.3, 0.2], n=100))
    assert text.startswith("+0.200 [") and "95% CI, 3 images" in text
