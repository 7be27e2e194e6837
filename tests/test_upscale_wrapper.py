"""The one wrapper around every ``upscale``'s rendering (``models._upscale_context``), on each model kind.

Contract: the rendering runs in eval mode and, with ``amp=True``, under ``precision.autocast_dtype``'s autocast; the
training flag is restored afterwards, also when the rendering raises; an allocation failure inside it becomes the
course's one-line CourseError naming the output size; any other error passes through unchanged (the same object).
"""

from __future__ import annotations

import pytest
import torch

from course_lib import models
from course_lib.errors import CourseError
from course_lib.precision import autocast_dtype

# name, build arguments, the method that upscale wraps (the rendering), the scale asked
KINDS = {
    "diinn": (dict(encoder="edsr-less"), "_upscale_chunks", 2.5),  # SRModel, decoded in chunks
    "diinn-var": (dict(model="H", encoder="edsr-less"), "_render_boxes", 2.5),  # VariantSRModel, tiles with halos
    "memnet": (dict(blocks=1, recursions=1), "_upscale", 2.5),  # ConvSR, pre-upsampling
    "srresnet": (dict(blocks=1), "_upscale", 4),  # ConvSR, fixed x4
    "bicubic": ({}, "forward", 2.5),  # no parameters; the same wrapper without amp
}
OOM_ERRORS = [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried "
                 "to allocate 123456789 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    MemoryError(),
]


def build(name):
    kwargs, method, scale = KINDS[name]
    torch.manual_seed(0)
    return models.build(name, **kwargs), method, scale


def modes(model):
    """The training flag of every module (the model's own first)."""
    return [m.training for m in model.modules()]


@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize("was_training", [True, False])
@pytest.mark.parametrize("name", list(KINDS))
def test_the_rendering_runs_in_eval_mode_under_amp_and_the_flag_comes_back(name, was_training, amp, monkeypatch):
    model, method, scale = build(name)
    model.train(was_training)
    render, seen = getattr(model, method), {}

    def spy(*args, **kwargs):
        seen["modes"] = modes(model)
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        seen["dtype"] = torch.get_autocast_dtype("cpu")
        return render(*args, **kwargs)

    monkeypatch.setattr(model, method, spy)
    out = model.upscale(torch.rand(1, 3, 6, 7), scale=scale, amp=amp)
    assert out.shape[-2:] == models.output_size((6, 7), scale)
    assert not any(seen["modes"]), "the rendering ran with a module in training mode"
    assert modes(model) == [was_training] * len(modes(model))
    want = autocast_dtype("auto" if amp and name != "bicubic" else "off", "cpu")  # bicubic: amp changes nothing
    assert seen["autocast"] == (want is not None)
    if want is not None:
        assert seen["dtype"] == want
    assert not torch.is_autocast_enabled("cpu")  # and autocast is left as it was


@pytest.mark.parametrize("err", OOM_ERRORS, ids=["cpu-alloc", "cuda-oom", "MemoryError"])
@pytest.mark.parametrize("name", list(KINDS))
def test_an_allocation_failure_in_the_rendering_is_one_course_error_and_the_flag_comes_back(name, err, monkeypatch):
    model, method, scale = build(name)
    model.train()

    def fail(*args, **kwargs):
        assert not model.training
        raise err

    monkeypatch.setattr(model, method, fail)
    H, W = models.output_size((6, 7), scale)
    with pytest.raises(CourseError, match=rf"^out of memory making an output of {H}x{W} pixels on cpu \(estimated "
                                          r"peak \d+\.\d GiB, \d+\.\d GiB free now\); ask for a smaller") as info:
        model.upscale(torch.rand(1, 3, 6, 7), scale=scale)
    assert len(str(info.value).splitlines()) == 1
    assert info.value.__cause__ is None and info.value.__suppress_context__  # raise ... from None: no torch traceback
    assert modes(model) == [True] * len(modes(model))


@pytest.mark.parametrize("name", list(KINDS))
def test_any_other_error_in_the_rendering_passes_through_unchanged(name, monkeypatch):
    model, method, scale = build(name)
    model.train()
    err = RuntimeError("shapes cannot be multiplied (mat1 and mat2)")

    def fail(*args, **kwargs):
        raise err

    monkeypatch.setattr(model, method, fail)
    with pytest.raises(RuntimeError) as info:
        model.upscale(torch.rand(1, 3, 6, 7), scale=scale)
    assert info.value is err
    assert modes(model) == [True] * len(modes(model))
