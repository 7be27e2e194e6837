"""course_lib.metrics: PSNR, SSIM, LR-PSNR under the "paper" and "standard" protocols.

The published Table 1 numbers are checked end to end in test_evaluate.py.
"""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from course_lib import metrics
from course_lib.degrade import imresize_matlab
from course_lib.errors import CourseError

GEN = torch.Generator().manual_seed(0)


def pair(h=24, w=30, noise=0.05, batch=None):
    shape = (3, h, w) if batch is None else (batch, 3, h, w)
    hr = (torch.rand(shape, generator=GEN) * 255).round() / 255
    sr = (hr + noise * torch.randn(shape, generator=GEN)).clamp(0, 1)
    return sr, hr


def skimage_ssim(a, b, data_range, channel_axis=None):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range, channel_axis=channel_axis)


# --------------------------------------------------------------------------------------- protocols
def test_protocol_registry_describes_both():
    assert set(metrics.PROTOCOLS) == {"paper", "standard"}
    paper, std = metrics.PROTOCOLS["paper"], metrics.PROTOCOLS["standard"]
    assert (paper.channel, paper.shave, paper.quantise_sr) == ("rgb", "none", False)
    assert (std.channel, std.shave, std.quantise_sr) == ("y", "ceil(scale)", True)
    assert "bicubic_aa" in paper.lr_maker and "imresize_matlab" in std.lr_maker
    assert paper.shave_pixels(4) == 0 and std.shave_pixels(3.14) == 4
    assert metrics.get_protocol("paper") is paper and metrics.get_protocol(std) is std
    with pytest.raises(CourseError, match="paper, standard"):
        metrics.get_protocol("ycbcr")


def test_paper_pair_uses_round_and_keeps_hr():
    hr = torch.randint(0, 256, (3, 391, 257), generator=GEN, dtype=torch.uint8)
    lr, hr_used = metrics.PROTOCOLS["paper"].make_pair(hr, 2)
    assert lr.shape == (3, 196, 128) and hr_used is hr


def test_standard_pair_crops_to_multiple_of_scale():
    hr = torch.randint(0, 256, (3, 50, 37), generator=GEN, dtype=torch.uint8)
    lr, hr_used = metrics.PROTOCOLS["standard"].make_pair(hr, 3)
    assert hr_used.shape == (3, 48, 36) and lr.shape == (3, 16, 12)
    assert torch.equal(hr_used, hr[:, :48, :36])
    assert torch.equal(lr, imresize_matlab(hr[:, :48, :36], scale=1 / 3))
    lr, hr_used = metrics.PROTOCOLS["standard"].make_pair(hr, 2.5)  # h = floor(50 / 2.5) = 20 -> 50
    assert lr.shape == (3, 20, 14) and hr_used.shape == (3, 50, 35)


# -------------------------------------------------------------------------------------------- PSNR
def test_psnr_paper_by_hand():
    sr, hr = pair(batch=2)
    mse = ((sr.double() - hr.double()) ** 2).flatten(1).mean(1)
    expected = (10 * torch.log10(1 / mse)).mean().item()
    assert metrics.psnr(sr, hr) == pytest.approx(expected, abs=1e-9)
    assert metrics.psnr(sr[0], hr[0]) == pytest.approx(10 * math.log10(1 / mse[0].item()), abs=1e-9)
    oracle = np.mean([peak_signal_noise_ratio(hr[i].double().numpy(), sr[i].double().numpy(), data_range=1.0)
                      for i in range(2)])  # scikit-image, per image, then the mean (the authors' dataset score)
    assert metrics.psnr(sr, hr) == pytest.approx(oracle, abs=1e-9)


def test_psnr_identical_is_inf_and_uint8_accepted():
    _, hr = pair()
    assert metrics.psnr(hr, hr) == math.inf
    u8 = (hr * 255).round().to(torch.uint8)
    assert metrics.psnr(hr, u8) > 120  # only float32 rounding of k / 255 differs


def test_paper_uses_sr_unrounded_standard_rounds_it():
    _, hr = pair()
    sr = (hr + 0.4 / 255).clamp(0, 1)  # less than half a level: rounding to 8 bits removes it
    assert math.isfinite(metrics.psnr(sr, hr, "paper"))
    assert metrics.psnr(sr, hr, "standard", scale=2) == math.inf


def test_standard_psnr_is_y_with_shave_by_hand():
    sr, hr = pair(h=20, w=22)
    s = 3

    def y(x):  # MATLAB rgb2ycbcr on uint8, Y channel only
        v = (x.double() * 255).round()
        return torch.floor(16 + (65.481 * v[0] + 128.553 * v[1] + 24.966 * v[2]) / 255 + 0.5)

    d = (y(sr) - y(hr))[s:-s, s:-s]
    expected = 10 * math.log10(255**2 / (d**2).mean().item())
    assert metrics.psnr(sr, hr, "standard", scale=s) == pytest.approx(expected, abs=1e-9)
    # scikit-image's rgb2ycbcr (the same ITU-R BT.601 matrix, written independently) on the 8-bit images
    y_sk = [np.floor(rgb2ycbcr((x.permute(1, 2, 0).double().numpy() * 255).round() / 255)[..., 0] + 0.5)
            for x in (sr, hr)]
    oracle = peak_signal_noise_ratio(y_sk[1][s:-s, s:-s], y_sk[0][s:-s, s:-s], data_range=255)
    assert metrics.psnr(sr, hr, "standard", scale=s) == pytest.approx(oracle, abs=1e-9)
    # a difference only inside the shaved border does not count
    sr2 = hr.clone()
    sr2[:, :3, :] = 1 - sr2[:, :3, :]
    assert metrics.psnr(sr2, hr, "standard", scale=3) == math.inf
    assert metrics.psnr(sr2, hr, "standard", scale=2) < 40


def test_rgb_to_y_known_values():
    rgb = torch.tensor([[255.0, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]).T
    y = metrics.rgb_to_y(rgb.reshape(1, 3, 5, 1)).flatten().tolist()
    assert y == [81, 145, 41, 235, 16]  # 16 + 65.481 -> 81.48; 16 + 128.553 -> 144.55; 16 + 24.966 -> 40.97
    grey = torch.rand(1, 1, 4, 4)
    assert metrics.rgb_to_y(grey) is grey


def test_standard_grey_image_is_its_own_y():
    hr = (torch.rand(1, 16, 16, generator=GEN) * 255).round() / 255
    sr = (hr + 3 / 255).clamp(0, 1)
    d = ((sr * 255).round() - hr * 255)[0, 2:-2, 2:-2]
    expected = 10 * math.log10(255**2 / (d.double() ** 2).mean().item())
    assert metrics.psnr(sr, hr, "standard", scale=2) == pytest.approx(expected, abs=1e-6)


# -------------------------------------------------------------------------------------------- SSIM
def test_ssim_paper_matches_skimage():
    sr, hr = pair(h=32, w=27)
    oracle = skimage_ssim(sr.double().numpy(), hr.double().numpy(), 1.0, channel_axis=0)
    assert metrics.ssim(sr, hr) == pytest.approx(oracle, abs=1e-9)


def test_ssim_standard_matches_skimage_on_shaved_y():
    sr, hr = pair(h=30, w=34, noise=0.1)
    ys = metrics.rgb_to_y((sr[None].double() * 255).round())[0, 0, 2:-2, 2:-2].numpy()
    yh = metrics.rgb_to_y((hr[None].double() * 255).round())[0, 0, 2:-2, 2:-2].numpy()
    assert metrics.ssim(sr, hr, "standard", scale=2) == pytest.approx(skimage_ssim(ys, yh, 255.0), abs=1e-9)


def test_ssim_batch_is_mean_of_images_and_identical_is_one():
    sr, hr = pair(batch=3, h=16, w=16)
    each = [metrics.ssim(sr[i], hr[i]) for i in range(3)]
    assert metrics.ssim(sr, hr) == pytest.approx(np.mean(each), abs=1e-12)
    assert metrics.ssim(hr, hr) == pytest.approx(1.0, abs=1e-12)


def test_gaussian_filter_blocks_match_one_matrix():
    # library against library on purpose: the block-wise filter must equal the one-matrix filter it optimises;
    # the Gaussian itself is checked through SSIM against scikit-image above.
    x = torch.rand(2, 40, 300, generator=GEN, dtype=torch.float64)
    full = metrics.gaussian_matrix(40) @ x @ metrics.gaussian_matrix(300).T
    assert torch.allclose(metrics.gaussian_filter_valid(x, block=64), full, atol=1e-12)


# ----------------------------------------------------------------------------------------- LR-PSNR
def test_lr_psnr_paper_against_torchvision_resize():
    sr, hr = pair(h=25, w=31)
    size = (12, 16)  # round(12.5) = 12, round(15.5) = 16
    a = TF.resize(sr.double(), list(size), interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    b = TF.resize(hr.double(), list(size), interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    expected = 10 * math.log10(1 / ((a - b) ** 2).mean().item())
    assert metrics.lr_psnr(sr, hr, 2) == pytest.approx(expected, abs=1e-9)


def test_measure_equals_the_three_functions():
    sr, hr = pair(h=24, w=24)
    for proto in ("paper", "standard"):
        m = metrics.measure(sr, hr, 3, proto)
        assert m["psnr"] == pytest.approx(metrics.psnr(sr, hr, proto, scale=3), abs=1e-12)
        assert m["ssim"] == pytest.approx(metrics.ssim(sr, hr, proto, scale=3), abs=1e-12)
        assert m["lr_psnr"] == pytest.approx(metrics.lr_psnr(sr, hr, 3, proto), abs=1e-12)


# ------------------------------------------------------------------------------------------ errors
def test_shape_mismatch_shows_both_shapes():
    with pytest.raises(CourseError, match=r"\(1, 3, 10, 12\).*\(1, 3, 10, 11\)"):
        metrics.psnr(torch.rand(3, 10, 12), torch.rand(3, 10, 11))


@pytest.mark.parametrize("call,msg", [
    (lambda: metrics.psnr(torch.rand(3, 20, 20), torch.rand(3, 20, 20), "standard"), "scale="),
    (lambda: metrics.ssim(torch.rand(3, 8, 8), torch.rand(3, 8, 8)), "11x11"),
    (lambda: metrics.psnr(torch.rand(3, 6, 6), torch.rand(3, 6, 6), "standard", scale=3), "too small"),
    (lambda: metrics.psnr(np.zeros((3, 4, 4)), torch.rand(3, 4, 4)), "tensor"),
    (lambda: metrics.psnr(torch.rand(4, 4), torch.rand(4, 4)), "shape"),
    (lambda: metrics.psnr(torch.full((3, 4, 4), float("nan")), torch.rand(3, 4, 4)), "NaN"),
    (lambda: metrics.psnr(torch.rand(3, 4, 4), torch.rand(3, 4, 4), ["paper"]), "unknown protocol"),
])
def test_bad_input_is_one_course_error(call, msg):
    with pytest.raises(CourseError, match=msg):
        call()
