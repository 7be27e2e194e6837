"""Progressive upscaling (course_lib.progressive, seed paper 000's Table 1; issue 13, lesson 10).

Oracles: the stage sizes of the reference note (h = 64: 80 -> 128 -> 256), a hand-chained sequence of
``model.upscale`` calls with 8-bit rounding written here, and for bicubic a chain of ``F.interpolate`` calls that
shares no code with the library.
"""

import pytest
import torch
import torch.nn.functional as F

from course_lib import models
from course_lib.errors import CourseError
from course_lib.images import to_uint8
from course_lib.progressive import progressive_sizes, round_to_uint8_levels, upscale_progressive


def test_stage_sizes_of_the_paper():
    assert progressive_sizes((64, 64), steps=[1.25, 1.6], size=(256, 256)) == [(80, 80), (128, 128), (256, 256)]
    assert progressive_sizes((51, 77), steps=[1.25, 1.6], size=(204, 308)) == [(64, 96), (102, 154), (204, 308)]
    assert progressive_sizes((10, 10), steps=[1.5, 1.5, 1.5]) == [(15, 15), (22, 22), (33, 33)]  # round half even
    assert progressive_sizes((5, 5), sizes=[(7, 8), (20, 21)]) == [(7, 8), (20, 21)]


def test_uint8_levels_are_what_saving_does():
    x = torch.rand(1, 3, 9, 11)
    x[0, 0, 0, :4] = torch.tensor([0.5 / 255, 1.5 / 255, 254.5 / 255, 1.0])
    torch.testing.assert_close(round_to_uint8_levels(x), to_uint8(x).float() / 255, rtol=0, atol=0)


@pytest.fixture(scope="module")
def small_diinn():
    torch.manual_seed(0)
    return models.build("diinn", encoder="edsr-less").eval()


@pytest.mark.parametrize("round_uint8", [True, False])
def test_equals_a_hand_chained_sequence_of_upscale_calls(small_diinn, round_uint8):
    lr = torch.rand(1, 3, 12, 10)
    x = lr
    for i, size in enumerate([(15, 12), (24, 19), (48, 40)]):
        x = small_diinn.upscale(x, size=size)
        if round_uint8 and i < 2:
            x = torch.round(x * 255) / 255
    out = upscale_progressive(small_diinn, lr, steps=[1.25, 1.6], size=(48, 40), round_uint8=round_uint8)
    assert torch.equal(out, x)
    stages = upscale_progressive(small_diinn, lr, steps=[1.25, 1.6], size=(48, 40), round_uint8=round_uint8,
                                 return_stages=True)
    assert [tuple(s.shape[-2:]) for s in stages] == [(15, 12), (24, 19), (48, 40)] and torch.equal(stages[-1], x)


def test_one_stage_is_one_call(small_diinn):
    lr = torch.rand(2, 3, 7, 9)
    assert torch.equal(upscale_progressive(small_diinn, lr, sizes=[(21, 27)]), small_diinn.upscale(lr, size=(21, 27)))


def test_rounding_between_stages_changes_the_result(small_diinn):
    lr = torch.rand(1, 3, 12, 10)
    a = upscale_progressive(small_diinn, lr, steps=[1.25, 1.6], size=(48, 40))
    b = upscale_progressive(small_diinn, lr, steps=[1.25, 1.6], size=(48, 40), round_uint8=False)
    assert 0 < (a - b).abs().max() < 0.05


@pytest.mark.parametrize("round_uint8", [True, False])
def test_bicubic_chain_equals_f_interpolate(round_uint8):
    """BicubicModel is antialiased bicubic clamped to [0, 1]: the same chain written with F.interpolate."""
    lr = torch.rand(1, 3, 16, 20)
    x = lr
    for i, size in enumerate([(20, 25), (32, 40), (64, 80)]):
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        if round_uint8 and i < 2:
            x = (x * 255).round() / 255
    out = upscale_progressive(models.build("bicubic"), lr, steps=[1.25, 1.6], size=(64, 80), round_uint8=round_uint8)
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    upfront = models.build("bicubic").upscale(lr, size=(64, 80))
    assert (upfront - out).abs().max() > 1e-3  # three resamplings are not one


def test_works_with_a_tiled_variant_model():
    torch.manual_seed(0)
    model = models.build("diinn-var", model="F", encoder="edsr-less").eval()
    lr = torch.rand(1, 3, 8, 8)
    x = torch.round(model.upscale(lr, size=(10, 10)) * 255) / 255
    x = model.upscale(torch.round(model.upscale(x, size=(16, 16)) * 255) / 255, size=(32, 32))
    torch.testing.assert_close(upscale_progressive(model, lr, steps=[1.25, 1.6], size=(32, 32)), x, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, words", [
    ({}, "give steps="),
    ({"steps": [1.25], "sizes": [(4, 4)]}, "give either sizes="),
    ({"sizes": []}, "sizes must be a non-empty list"),
    ({"steps": "1.25"}, "steps must be a list"),
    ({"steps": [0]}, "each of steps must be > 0"),
    ({"steps": [0.01]}, "makes an empty image"),
    ({"steps": []}, "nothing to do"),
    ({"sizes": [(4, 0)]}, "each of sizes must have two positive sides"),
])
def test_bad_input_gets_one_line_errors(small_diinn, kwargs, words):
    with pytest.raises(CourseError, match=words) as err:
        upscale_progressive(small_diinn, torch.rand(1, 3, 8, 8), **kwargs)
    assert "\n" not in str(err.value)
    with pytest.raises(CourseError, match="has no upscale"):
        upscale_progressive(torch.nn.Identity(), torch.rand(1, 3, 8, 8), steps=[2])
    with pytest.raises(CourseError, match=r"shape \(B, 3, h, w\)"):
        upscale_progressive(small_diinn, torch.rand(3, 8, 8), steps=[2])
