"""Lesson 07 (evaluation): the stored exercise solutions, checked against the library and independent oracles."""

import math
from statistics import NormalDist

import pytest
import torch

from course_lib import metrics, stats
from course_lib import notebook as nb


def checkerboard(h, w, amplitude):
    rows, cols = torch.arange(h)[:, None], torch.arange(w)[None, :]
    return ((rows + cols) % 2 * 2 - 1) * amplitude / 255


@pytest.mark.parametrize("amplitude, noise", [(8, 0.03), (4, 0.01), (16, 0.05), (1, 0.002)])
def test_solution_07_checkerboard_psnr_matches_the_measured_psnr(amplitude, noise):
    g = torch.Generator().manual_seed(amplitude)
    hr = torch.rand(3, 96, 80, generator=g, dtype=torch.float64)
    sr = hr + noise * torch.randn(3, 96, 80, generator=g, dtype=torch.float64)  # unclamped, as in the lesson
    mse = ((sr - hr) ** 2).mean().item()
    measured = metrics.psnr(sr + checkerboard(96, 80, amplitude), hr, protocol="paper")
    assert nb.SOLUTIONS["07", "checkerboard_psnr"](mse, amplitude) == pytest.approx(measured, abs=0.03)


def test_solution_07_checkerboard_psnr_by_hand():
    # a perfect SR image plus a +-8 checkerboard: MSE (8/255)^2, PSNR 20 log10(255/8) = 30.07 dB
    assert nb.SOLUTIONS["07", "checkerboard_psnr"](0.0, 8) == pytest.approx(20 * math.log10(255 / 8), abs=1e-12)
    assert nb.SOLUTIONS["07", "checkerboard_psnr"](1e-3, 0) == pytest.approx(30.0, abs=1e-12)


@pytest.mark.parametrize("sd, gap", [(1.0, 0.196), (0.35, 0.03), (0.2, 0.1), (0.0, 0.05), (2.5, 1.0), (0.05, 0.2)])
def test_solution_07_images_needed_matches_stats(sd, gap):
    z = NormalDist().inv_cdf(0.975)
    k = nb.SOLUTIONS["07", "images_needed"](sd, gap)
    assert k == stats.images_needed(sd, gap)
    assert z * sd / math.sqrt(k) <= gap + 1e-12  # enough images ...
    assert k == 1 or z * sd / math.sqrt(k - 1) > gap  # ... and no more than needed


def test_lesson_07_solutions_are_registered():
    assert {("07", "checkerboard_psnr"), ("07", "images_needed")} <= set(nb.SOLUTIONS)
