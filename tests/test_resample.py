"""Resampling kernels and 004's random resampling (course_lib.degrade, lesson 11 planned) against PIL."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_images
from PIL import Image

from course_lib import data, degrade
from course_lib.errors import CourseError

PIL_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
               "lanczos": Image.LANCZOS, "area": Image.BOX}
SIZES = [((24, 30), (8, 10)), ((25, 31), (9, 7)), ((37, 41), (12, 13)), ((13, 17), (29, 40))]  # last: enlarging


def pil_float(img: np.ndarray, size, kernel) -> np.ndarray:
    """Oracle: PIL's resize of each channel as a 32-bit float image (mode "F": no rounding, no clipping)."""
    h, w = size
    return np.stack([np.asarray(Image.fromarray(c, mode="F").resize((w, h), PIL_FILTERS[kernel])) for c in img])


@pytest.mark.parametrize("kernel", degrade.KERNELS)
@pytest.mark.parametrize("in_size,out_size", SIZES)
def test_each_kernel_equals_pil_on_float_images(kernel, in_size, out_size):
    img = np.random.default_rng(0).random((3, *in_size)).astype(np.float32)
    out = degrade.resample(torch.from_numpy(img), out_size, kernel)
    assert out.dtype == torch.float32 and out.shape == (3, *out_size)
    np.testing.assert_allclose(out.numpy(), pil_float(img, out_size, kernel), rtol=0, atol=2e-6)


@pytest.mark.parametrize("kernel", degrade.KERNELS)
def test_uint8_shrinking_is_within_one_level_of_pil(kernel):
    """PIL rounds to 8 bits after its horizontal pass as well; the course rounds once, so they differ by <= 1."""
    u8 = np.random.default_rng(1).integers(0, 256, (3, 37, 41), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(u8.transpose(1, 2, 0)).resize((13, 12), PIL_FILTERS[kernel]))
    out = degrade.resample(torch.from_numpy(u8), (12, 13), kernel)
    assert out.dtype == torch.uint8
    diff = np.abs(out.numpy().transpose(1, 2, 0).astype(int) - ref.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.25


def test_bicubic_is_the_course_lr_and_area_is_the_block_mean():
    x = torch.randint(0, 256, (2, 3, 24, 30), dtype=torch.uint8)
    assert torch.equal(degrade.resample(x, (8, 10), "bicubic"), degrade.bicubic_aa(x, (8, 10)))
    f = torch.rand(2, 3, 24, 30, dtype=torch.float64)
    torch.testing.assert_close(degrade.resample(f, (8, 10), "area"), F.avg_pool2d(f, 3))
    torch.testing.assert_close(degrade.resample(f, (6, 10), "area"), f.reshape(2, 3, 6, 4, 10, 3).mean((3, 5)))
    m = degrade.pil_weights(37, 12, "lanczos")
    np.testing.assert_allclose(m.sum(1), 1.0)
    assert (m < 0).any()  # Lanczos has negative lobes


def test_random_resample_draws_one_kernel_per_patch_reproducibly():
    x = torch.randint(0, 256, (40, 3, 24, 24), dtype=torch.uint8)
    out, names = degrade.random_resample(x, scale=3, seed=5, return_kernels=True)
    assert out.shape == (40, 3, 8, 8) and len(names) == 40 and set(names) == set(degrade.KERNELS)
    for i, k in enumerate(names):
        assert torch.equal(out[i], degrade.resample(x[i], (8, 8), k)), (i, k)
    again = degrade.random_resample(x, scale=3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again, out)
    counts = np.bincount([degrade.KERNELS.index(k) for k in degrade.random_resample(
        x[:1].expand(1000, -1, -1, -1), size=(2, 2), seed=0, return_kernels=True)[1]], minlength=5)
    assert counts.min() > 150 and counts.max() < 250  # uniform: 200 each (binomial sd 12.6)


def test_one_kernel_draws_nothing_and_bad_choices_are_refused():
    x = torch.randint(0, 256, (3, 24, 30), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert torch.equal(degrade.random_resample(x, size=(8, 10), kernels=("bicubic",), generator=g),
                       degrade.bicubic_aa(x, (8, 10)))
    assert torch.equal(g.get_state(), state)
    assert degrade.check_kernels("random") == degrade.KERNELS
    assert degrade.check_kernels(["area", "area", "nearest"]) == ("area", "nearest")
    with pytest.raises(CourseError, match="pass generator=torch.Generator"):
        degrade.random_resample(x, scale=2)
    with pytest.raises(CourseError, match="got cubic"):
        degrade.random_resample(x, scale=2, kernels=["cubic"], seed=0)
    with pytest.raises(CourseError, match="exactly one of scale= or size="):
        degrade.random_resample(x, seed=0)
    with pytest.raises(CourseError, match="unknown resampling kernel"):
        degrade.resample(x, (8, 10), "gaussian")


def test_training_samplers_take_the_kernels_and_default_to_todays_pairs(tmp_path):
    hr = data.HRFolder(write_images(tmp_path / "hr", 3, size=(40, 44)))
    base = data.MultiScalePatches(hr, scales=(2, 3), patch=8, seed=1)
    same = data.MultiScalePatches(hr, scales=(2, 3), patch=8, seed=1, degrade="bicubic")
    for i in range(3):
        for (lr, h), (lr2, h2) in zip(base[i], same[i]):
            assert torch.equal(lr, lr2) and torch.equal(h, h2)
            u8 = (h * 255).round().to(torch.uint8)
            assert torch.equal(lr, degrade.bicubic_aa(u8, (8, 8)).float() / 255)  # flips commute with it
    mixed = data.MultiScalePatches(hr, scales=(2, 3), patch=8, seed=1, degrade="random", augment=False)
    used = set()
    for i in range(3):
        for lr, h in mixed[i]:
            u8 = (h * 255).round().to(torch.uint8)
            hits = [k for k in degrade.KERNELS if torch.equal(lr, degrade.resample(u8, (8, 8), k).float() / 255)]
            assert hits, i
            used.update(hits)
    assert len(used) > 1
    liif = data.LIIFPatches(hr, patch=8, sample_q=None, seed=1, degrade=("nearest", "area"), augment=False)
    for i in range(3):
        item = liif[i]
        crop = round(len(item["gt"]) ** 0.5)
        u8 = (item["gt"].t().reshape(3, crop, crop) * 255).round().to(torch.uint8)
        assert any(torch.equal(item["lr"], degrade.resample(u8, (8, 8), k).float() / 255) for k in ("nearest", "area"))
    with pytest.raises(CourseError, match="resampling kernels must be"):
        data.MultiScalePatches(hr, degrade=["box"])


def test_the_training_config_key(tmp_path):
    from course_lib import config, train

    folder = write_images(tmp_path / "hr", 2, size=(40, 44))
    base = {"data.train_dir": [str(folder)], "data.patch": 8, "data.scales": [2]}
    assert config.load_config().data.degrade == ["bicubic"]  # today's pairs by default
    assert train.build_dataset(config.load_config(overrides=base)).kernels == ("bicubic",)
    mixed = train.build_dataset(config.load_config(overrides={**base, "data.degrade": "random"}))
    assert mixed.kernels == degrade.KERNELS
    liif = train.build_dataset(config.load_config(overrides={**base, "data.recipe": "liif", "data.sample_q": 16,
                                                             "data.scale_max": 4, "data.degrade": ["area"]}))
    assert liif.kernels == ("area",)
    with pytest.raises(CourseError, match="resampling kernels must be"):
        train.build_dataset(config.load_config(overrides={**base, "data.degrade": ["cubic"]}))
