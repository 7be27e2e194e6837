"""metrics.laplacian_energy / detail_ratio (lesson 11) against scikit-image's Laplacian and hand-computed cases."""

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.filters import laplace

from course_lib import metrics
from course_lib.errors import CourseError


def test_energy_equals_scikit_image_on_the_interior():
    img = torch.rand(3, 17, 23, generator=torch.Generator().manual_seed(0))
    y = rgb2ycbcr(img.permute(1, 2, 0).double().numpy())[..., 0] / 255.0  # skimage's Y on 16..235
    lap = laplace(y, ksize=3)[1:-1, 1:-1]  # interior: skimage pads the border, the library does not
    assert metrics.laplacian_energy(img) == pytest.approx(float(np.mean(lap ** 2)), rel=1e-5)


def test_hand_computed_cases():
    flat = torch.full((3, 8, 8), 0.4)
    assert metrics.laplacian_energy(flat) == 0.0
    ramp = torch.arange(8.0).repeat(3, 8, 1) / 8  # linear in x: a Laplacian of zero
    assert metrics.laplacian_energy(ramp) == pytest.approx(0.0, abs=1e-12)
    dot = torch.zeros(3, 3, 3)
    dot[:, 1, 1] = 1.0  # white pixel: Y jumps by 219/255, the one interior Laplacian is -4 x that
    assert metrics.laplacian_energy(dot) == pytest.approx((4 * 219 / 255) ** 2, rel=1e-5)
    hr = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(1))
    assert metrics.detail_ratio(hr, hr) == pytest.approx(1.0)
    assert metrics.detail_ratio((hr * 255).round().to(torch.uint8), hr) == pytest.approx(1.0, rel=1e-3)
    assert metrics.detail_ratio(0.5 * hr, hr) == pytest.approx(0.25, rel=1e-5)  # Y offset cancels in the Laplacian


def test_bad_input_is_one_line():
    with pytest.raises(CourseError, match="same shape"):
        metrics.detail_ratio(torch.rand(3, 8, 8), torch.rand(3, 8, 9))
    with pytest.raises(CourseError, match=r"one RGB image \(3, H, W\)"):
        metrics.laplacian_energy(torch.rand(1, 3, 8, 8))
