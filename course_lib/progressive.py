"""Progressive upscaling: reach a size in several calls, each feeding its output back as the next input  (lesson 10).

Seed paper 000 (Sec. 5.1, Table 1) upscales x4 either **upfront** (one call at (H, W)) or **gradually**: three calls,
each taking the previous call's SR image as its LR input (the encoder runs again on it), at sizes
round(1.25 h) -> round(1.6 h1) -> (H, W) (h = 64: 80 -> 128 -> 256). Between stages the image is clamped to [0, 1]
(the model's ``upscale`` does that) and, **DEFAULT** (reference note seed-variations.md sec. 1.3), rounded to 8 bits
as if saved to a file (``round_uint8=True``; ``False`` keeps the float image). Their result: upfront 21.03 dB,
gradual 17.88 dB: errors accumulate, because each stage sees an input unlike its training LR images.

Derived in notebooks/10_seed000.ipynb (lesson 10).
"""

from __future__ import annotations

import torch

from .errors import CourseError, check_image_batch, check_scale, check_size

PAPER_STEPS = (1.25, 1.6)  # their intermediate scales; the last stage goes to the target size


def progressive_sizes(lr_size, steps=None, size=None, sizes=None) -> list[tuple[int, int]]:
    """The size of every stage (notebooks/10_seed000.ipynb).

    Either ``sizes``: the stages' (H, W) given outright; or ``steps`` (scales, each applied to the previous
    stage's size and rounded per axis: round(s h_prev), round(s w_prev)) followed, when ``size`` = (H, W) is given,
    by a last stage at ``size``. The paper's protocol: ``steps=[1.25, 1.6], size=(H, W)``."""
    h, w = check_size(lr_size, "lr_size")
    if sizes is not None:
        if steps is not None or size is not None:
            raise CourseError("give either sizes=[(H1, W1), ...] or steps=[...] (with an optional final size), "
                              "not both")
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) == 0:
            raise CourseError(f"sizes must be a non-empty list of (H, W) pairs, got {sizes!r}")
        return [check_size(s, "each of sizes") for s in sizes]
    if steps is None:
        raise CourseError("give steps=[scale, ...] (e.g. [1.25, 1.6] with size=(H, W)) or sizes=[(H, W), ...]")
    if isinstance(steps, (str, bytes)) or not hasattr(steps, "__len__"):
        raise CourseError(f"steps must be a list of scales, e.g. [1.25, 1.6], got {steps!r}")
    out = []
    for s in steps:
        s = check_scale(s, "each of steps")
        h, w = round(h * s), round(w * s)
        if min(h, w) < 1:
            raise CourseError(f"step x{s:g} makes an empty image ({h}x{w}); use larger scales")
        out.append((h, w))
    if size is not None:
        out.append(check_size(size))
    if not out:
        raise CourseError("steps is empty and no size is given: there is nothing to do")
    return out


def round_to_uint8_levels(x: torch.Tensor) -> torch.Tensor:
    """``x`` in [0, 1] rounded to the nearest of the 256 levels k/255, as saving to an 8-bit file and reading back
    does (``images.to_uint8``: clamp, x 255, round half to even). Notebook: 10_seed000."""
    return (x.clamp(0, 1) * 255.0).round() / 255.0


@torch.no_grad()
def upscale_progressive(model, lr: torch.Tensor, steps=None, size=None, sizes=None, round_uint8: bool = True,
                        return_stages: bool = False, **upscale_kwargs):
    """Upscale ``lr`` (B, 3, h, w) in [0, 1] in stages, each stage's output the next stage's input (lesson 10).

    Stage sizes: :func:`progressive_sizes` (``steps=[1.25, 1.6], size=(H, W)`` is the paper's x4 protocol). Each
    stage is ``model.upscale(x, size=stage)``, clamped to [0, 1]; between stages (not after the last) the image is
    rounded to 8-bit levels when ``round_uint8`` (the **DEFAULT**: as if saved). ``upscale_kwargs`` (chunk_size,
    amp, progress) go to every call. Returns the last stage's output, or with ``return_stages=True`` the list of
    every stage's output (each as the model returned it, before any rounding). Any model with ``upscale(lr,
    size=...)`` works: bicubic (``models.build("bicubic")``) too. Notebook: 10_seed000."""
    if not callable(getattr(model, "upscale", None)):
        raise CourseError(f"{type(model).__name__} has no upscale(lr, size=...); pass a course_lib model")
    check_image_batch(lr, "lr")
    plan = progressive_sizes(lr.shape[-2:], steps, size, sizes)
    x, stages = lr, []
    for k, stage in enumerate(plan):
        y = model.upscale(x, size=stage, **upscale_kwargs).clamp(0, 1)
        stages.append(y)
        x = round_to_uint8_levels(y) if round_uint8 and k < len(plan) - 1 else y
    return stages if return_stages else stages[-1]
