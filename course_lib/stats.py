"""How sure is a table? Paired per-image differences and a percentile bootstrap confidence interval.

A benchmark row is the mean of per-image scores, so two methods evaluated on the same images differ by the mean
of their per-image differences. Images differ far more from each other than two good methods differ on one image,
so the *paired* differences (method A minus method B, image by image) are what tell a real gap from noise:

* :func:`paired_differences`: the per-image differences of two lists of scores over the same images;
* :func:`bootstrap_means` / :func:`paired_bootstrap`: resample the images with replacement ``n`` times, take the
  mean difference of each resample, and report the central ``level`` share of those means (the percentile
  bootstrap). An interval that excludes 0 says the gap would very likely survive a different draw of test images
  of the same kind; one that contains 0 says this test set cannot tell;
* :func:`images_needed`: how many images a normal-approximation interval needs to resolve a gap of a given size.

Derived in notebooks/07_evaluation.ipynb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .errors import CourseError

MAX_DRAWS = 50_000_000  # resamples x images drawn at once (400 MB of indices)


@dataclass(frozen=True)
class Interval:
    """A mean paired difference with its bootstrap confidence interval [low, high]."""

    mean: float
    low: float
    high: float
    level: float
    n_images: int
    n_resamples: int

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0: the gap is real at this level."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return (f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}] ({self.level:.0%} CI, "
                f"{self.n_images} images)")


def _as_scores(values, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise CourseError(f"{name} must be a list or 1-D array of numbers, got {type(values).__name__}") from None
    if arr.ndim != 1:
        raise CourseError(f"{name} must be one number per image (1-D), got shape {arr.shape}")
    if arr.size == 0:
        raise CourseError(f"{name} is empty: give at least one per-image value")
    if not np.all(np.isfinite(arr)):
        raise CourseError(f"{name} contains NaN or infinite values (an image scored inf dB?); drop or fix them")
    return arr


def paired_differences(a, b) -> np.ndarray:
    """Per-image differences ``a[i] - b[i]`` of two methods scored on the same images, in the same order.

    Notebook: 07_evaluation.
    """
    a, b = _as_scores(a, "a"), _as_scores(b, "b")
    if a.shape != b.shape:
        raise CourseError(f"paired scores need the same images: a has {a.size} values, b has {b.size}")
    return a - b


def _check_resampling(n, level) -> tuple[int, float]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise CourseError(f"n (the number of resamples) must be a positive integer, got {n!r}")
    try:
        level = float(level)
    except (TypeError, ValueError):
        raise CourseError(f"level must be a number in (0, 1) such as 0.95, got {level!r}") from None
    if not 0.0 < level < 1.0:
        raise CourseError(f"level must be in (0, 1) such as 0.95, got {level}")
    return int(n), level


def bootstrap_means(diffs, n: int = 10_000, seed: int = 0) -> np.ndarray:
    """The means of ``n`` resamples (with replacement, same size) of the per-image differences ``diffs``.

    The resamples are ``np.random.default_rng(seed).integers(0, k, size=(n, k))`` for k images, so the result is
    reproducible from ``seed``. Notebook: 07_evaluation.
    """
    d = _as_scores(diffs, "diffs")
    n, _ = _check_resampling(n, 0.5)
    if n * d.size > MAX_DRAWS:
        raise CourseError(f"{n} resamples of {d.size} images is too many to draw at once; use n <= "
                          f"{MAX_DRAWS // d.size}")
    index = np.random.default_rng(seed).integers(0, d.size, size=(n, d.size))
    return d[index].mean(axis=1)


def paired_bootstrap(diffs, n: int = 10_000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of the mean of per-image paired differences.

    ``diffs``: one difference per image (e.g. PSNR of a model minus PSNR of bicubic on the same image). Returns an
    :class:`Interval` whose ``low`` / ``high`` are the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles
    (``np.percentile``, linear interpolation) of :func:`bootstrap_means`. With one image, or identical differences,
    the interval has zero width: the bootstrap cannot see variation that the sample does not show.
    Notebook: 07_evaluation.
    """
    n, level = _check_resampling(n, level)
    d = _as_scores(diffs, "diffs")
    means = bootstrap_means(d, n=n, seed=seed)
    low, high = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return Interval(mean=float(d.mean()), low=float(low), high=float(high), level=level, n_images=int(d.size),
                    n_resamples=n)


def images_needed(sd: float, half_width: float, level: float = 0.95) -> int:
    """Images a normal-approximation interval needs so that its half-width is at most ``half_width``.

    The mean of k paired differences with standard deviation ``sd`` has standard error sd / sqrt(k); its interval
    is mean +- z sd / sqrt(k) with z the normal quantile of (1 + level) / 2 (1.96 for 95 %). Solving
    z sd / sqrt(k) <= half_width gives k = ceil((z sd / half_width)^2). Notebook: 07_evaluation.
    """
    try:
        sd, half_width = float(sd), float(half_width)
    except (TypeError, ValueError):
        raise CourseError(f"sd and half_width must be numbers, got {sd!r} and {half_width!r}") from None
    if not (math.isfinite(sd) and sd >= 0):
        raise CourseError(f"sd must be a finite number >= 0, got {sd}")
    if not (math.isfinite(half_width) and half_width > 0):
        raise CourseError(f"half_width must be a finite number > 0 (the gap to resolve), got {half_width}")
    _, level = _check_resampling(1, level)
    z = NormalDist().inv_cdf((1 + level) / 2)
    return max(1, math.ceil((z * sd / half_width) ** 2 - 1e-9))
