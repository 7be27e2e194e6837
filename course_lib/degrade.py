"""Degradations: how low-resolution (LR) inputs are made from high-resolution (HR) images.

Two bicubic downsamplers matter in super-resolution, and they do not give the same pixels:

* :func:`bicubic_aa` is what the DIINN authors (and torchvision) use: torch's antialiased bicubic
  (Keys cubic with a = -0.5, the kernel stretched by the scale when shrinking, like PIL), applied to
  the uint8 image as float and rounded back to uint8. The LR size is Python ``round(H / s)``
  (:func:`lr_size`), so non-integer scales work without cropping the HR image.
* :func:`imresize_matlab` is MATLAB's ``imresize(..., 'bicubic')``, used to make the LR files of the
  EDSR/RCAN-era benchmarks (the "standard" protocol in :mod:`course_lib.metrics`).

Derived in notebooks/00_sisr_problem.ipynb and notebooks/07_evaluation.ipynb.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import CourseError, check_scale, check_size


def lr_size(hr_size, scale) -> tuple[int, int]:
    """LR size for an HR size and a scale, as the DIINN authors compute it: Python ``round`` per side.

    ``round`` ties to even, so 391 / 2 = 195.5 -> 196 and 257 / 2 = 128.5 -> 128. Works for any
    scale > 0, integer or not (x2.5, x3.14). Notebook: 00_sisr_problem.
    """
    h, w = check_size(hr_size, "hr_size")
    s = check_scale(scale)
    out = (round(h / s), round(w / s))
    if min(out) < 1:
        raise CourseError(f"an image of {h}x{w} is too small for scale {s:g} (LR would be {out[0]}x{out[1]})")
    return out


def _as_batch(img, name: str) -> tuple[torch.Tensor, bool]:
    """(C, H, W) or (B, C, H, W) tensor -> (B, C, H, W) plus whether a batch dim was added."""
    if not isinstance(img, torch.Tensor):
        raise CourseError(f"{name} must be a tensor (C, H, W) or (B, C, H, W), not {type(img).__name__}")
    if img.dim() == 3:
        return img[None], True
    if img.dim() == 4:
        return img, False
    raise CourseError(f"{name} must have shape (C, H, W) or (B, C, H, W), got {tuple(img.shape)}")


def bicubic_aa(img: torch.Tensor, size) -> torch.Tensor:
    """Antialiased bicubic, the DIINN authors' LR maker (= torchvision ``Resize(BICUBIC, antialias=True)``).

    ``img`` is (C, H, W) or (B, C, H, W). ``size`` is the output (h, w).

    * uint8 input (values 0..255): resized as float, clamped to [0, 255], rounded -> uint8. This is
      how the authors make every LR input (training and test).
    * float input: resized as is, **not** rounded and **not** clamped. This is the variant that
      LR-PSNR uses (SR and HR are both shrunk this way before comparing).

    Uses ``F.interpolate(mode="bicubic", antialias=True, align_corners=False)`` (cubic a = -0.5).
    Notebook: 00_sisr_problem.
    """
    x, added = _as_batch(img, "img")
    h, w = check_size(size)
    if x.dtype == torch.uint8:
        y = F.interpolate(x.float(), size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        y = y.clamp(0, 255).round().to(torch.uint8)
    elif x.is_floating_point():
        y = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    else:
        raise CourseError(f"img must be uint8 (0..255) or float, got dtype {x.dtype}")
    return y[0] if added else y


# ---------------------------------------------------------------------------------------------------
# MATLAB imresize (bicubic)
# ---------------------------------------------------------------------------------------------------


def cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel; MATLAB (and antialiased torch/PIL) use a = -0.5.

    Torch's non-antialiased ``mode="bicubic"`` uses a = -0.75 instead. Notebook: 07_evaluation.
    """
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = ((a + 2) * ax3 - (a + 3) * ax2 + 1) * (ax <= 1)
    far = (a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax <= 2))
    return near + far


def contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based input indices (both (out_len, taps)) of MATLAB's bicubic imresize along one axis.

    Output pixel i (1-based) sits at input position u = i / scale + (1 - 1 / scale) / 2. When
    shrinking (scale < 1) the kernel is widened by 1 / scale (antialiasing): w = scale * cubic(scale * d).
    Each row is normalised to sum 1, and taps falling outside the image are mirrored back
    (symmetric padding: ..., 2, 1, 1, 2, ..., n, n, n-1, ...). Notebook: 07_evaluation.
    """
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions
    d = u[:, None] - idx
    weights = scale * cubic(scale * d) if scale < 1 else cubic(d)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])  # 0-based, period 2n
    return weights, mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]


def resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """The (out_len, in_len) matrix of :func:`contributions`: resizing an axis is a product with it.

    Notebook: 07_evaluation.
    """
    weights, idx = contributions(in_len, out_len, scale)
    m = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(out_len), weights.shape[1]), idx.ravel()), weights.ravel())
    return m


def _resize_axis(x: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    """Resize one axis: output = sum over taps j of weight[:, j] * x[index[:, j]] (taps are few)."""
    weights, idx = contributions(x.shape[axis], out_len, scale)
    shape = [1] * x.ndim
    shape[axis] = out_len
    out = np.zeros(x.shape[:axis] + (out_len,) + x.shape[axis + 1 :], dtype=np.float64)
    for j in range(weights.shape[1]):
        out += weights[:, j].reshape(shape) * np.take(x, idx[:, j], axis=axis)
    return out


def _matlab_round_u8(x: np.ndarray) -> np.ndarray:
    """MATLAB's conversion of double to uint8: round half away from zero, then saturate."""
    return np.clip(np.floor(x + 0.5), 0, 255)


def imresize_matlab(img, scale: float | None = None, size=None):
    """MATLAB-compatible ``imresize(img, scale | [h w], 'bicubic')`` (antialiased when shrinking).

    ``img`` is a numpy array or a torch tensor laid out channels-first: (H, W), (C, H, W) or
    (B, C, H, W); the last two axes are resized. Give either ``scale`` (output side =
    ceil(scale * input side), as MATLAB does) or ``size`` = (h, w). As in MATLAB, the axis with the
    smaller scale is resized first, and a uint8 input is rounded to uint8 after each axis (float
    input is never rounded). Returns the same type, dtype and device as the input.
    Notebook: 07_evaluation.
    """
    is_torch = isinstance(img, torch.Tensor)
    if not is_torch and not isinstance(img, np.ndarray):
        raise CourseError(f"img must be a numpy array or torch tensor, got {type(img).__name__}")
    arr = img.detach().cpu().numpy() if is_torch else img
    if arr.ndim < 2 or arr.ndim > 4:
        raise CourseError(f"img must be (H, W), (C, H, W) or (B, C, H, W), got shape {tuple(arr.shape)}")
    if not is_torch and arr.ndim == 3 and arr.shape[-1] in (1, 3, 4) and arr.shape[0] not in (1, 3, 4):
        raise CourseError(f"img looks channels-last {arr.shape}; pass arr.transpose(2, 0, 1) instead")
    is_u8 = arr.dtype == np.uint8
    if not is_u8 and not np.issubdtype(arr.dtype, np.floating):
        raise CourseError(f"img must be uint8 or float, got dtype {arr.dtype}")
    in_hw = arr.shape[-2:]
    if (scale is None) == (size is None):
        raise CourseError("give exactly one of scale= or size= to imresize_matlab")
    if size is not None:
        out_hw = check_size(size)
        scales = (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])
    else:
        s = check_scale(scale)
        out_hw = (math.ceil(s * in_hw[0]), math.ceil(s * in_hw[1]))
        scales = (s, s)
    out = arr.astype(np.float64)
    for axis in sorted((0, 1), key=lambda k: scales[k]):  # stable: rows first on ties, like MATLAB
        out = _resize_axis(out, out.ndim - 2 + axis, out_hw[axis], scales[axis])
        if is_u8:
            out = _matlab_round_u8(out)
    out = out.astype(arr.dtype)
    if is_torch:
        return torch.from_numpy(np.ascontiguousarray(out)).to(img.device)
    return out


# ---------------------------------------------------------------------------------------------------
# Other resampling kernels, and a random one per patch (seed paper 004's "general resampling")
# ---------------------------------------------------------------------------------------------------

KERNELS = ("nearest", "bilinear", "bicubic", "lanczos", "area")  # random_resample's default pool


def _lanczos3(x: np.ndarray) -> np.ndarray:
    """PIL's Lanczos kernel (a = 3): sinc(x) sinc(x / 3) on [-3, 3), 0 elsewhere (np.sinc is sin(pi x)/(pi x))."""
    return np.where((x >= -3.0) & (x < 3.0), np.sinc(x) * np.sinc(x / 3.0), 0.0)


def _box(x: np.ndarray) -> np.ndarray:
    """PIL's box kernel: 1 on (-1/2, 1/2], 0 elsewhere."""
    return ((x > -0.5) & (x <= 0.5)).astype(np.float64)


_SEPARABLE = {"lanczos": (_lanczos3, 3.0), "area": (_box, 0.5)}  # kernel and its support (input pixels)


def pil_weights(in_len: int, out_len: int, kernel: str) -> np.ndarray:
    """The (out_len, in_len) matrix with which PIL resizes one axis with the ``"lanczos"`` or ``"area"`` (box) kernel.

    Output pixel i sits at input position c = (i + 1/2) * in_len / out_len. When shrinking, the kernel is stretched
    by f = in_len / out_len (antialiasing; f = 1 when enlarging): input pixel x gets k((x + 1/2 - c) / f), over the
    pixels x from trunc(c - support * f + 1/2) to trunc(c + support * f + 1/2) (exclusive) inside the image, and
    each row is normalised to sum 1 (so nothing is mirrored: taps outside the image are dropped). With the box
    kernel this is the exact area average. Notebook: 11_fixed_scale.
    """
    fn, support = _SEPARABLE[kernel]
    ratio = in_len / out_len
    f = max(ratio, 1.0)
    m = np.zeros((out_len, in_len), dtype=np.float64)
    for i in range(out_len):
        c = (i + 0.5) * ratio
        lo = max(int(c - support * f + 0.5), 0)
        hi = min(int(c + support * f + 0.5), in_len)
        x = np.arange(lo, hi, dtype=np.float64)
        w = fn((x + 0.5 - c) / f)
        m[i, lo:hi] = w / w.sum()
    return m


def resample(img: torch.Tensor, size, kernel: str = "bicubic") -> torch.Tensor:
    """Resize ``img`` (C, H, W) or (B, C, H, W) to ``size`` = (h, w) with one named kernel (shrink or enlarge).

    * ``"nearest"``: the pixel whose centre is nearest (``F.interpolate(mode="nearest-exact")``, PIL's NEAREST);
    * ``"bilinear"``: antialiased bilinear (``F.interpolate(antialias=True)``, PIL's BILINEAR);
    * ``"bicubic"``: :func:`bicubic_aa`, the course's LR maker (a = -0.5, PIL's BICUBIC);
    * ``"lanczos"``: Lanczos-3, antialiased (:func:`pil_weights`, PIL's LANCZOS);
    * ``"area"``: the exact area average of the input pixels under each output pixel (PIL's BOX; at an integer
      factor the mean of each s x s block).

    uint8 input is computed in float and rounded (and clamped) back to uint8 once; float input is returned unrounded
    and unclamped (Lanczos and bicubic overshoot). Notebook: 11_fixed_scale.
    """
    if kernel not in KERNELS:
        raise CourseError(f"unknown resampling kernel {kernel!r}; choose one of: {', '.join(KERNELS)}")
    x, added = _as_batch(img, "img")
    h, w = check_size(size)
    u8 = x.dtype == torch.uint8
    if not u8 and not x.is_floating_point():
        raise CourseError(f"img must be uint8 (0..255) or float, got dtype {x.dtype}")
    if kernel == "bicubic":
        y = bicubic_aa(x, (h, w))
        return y[0] if added else y
    xf = x.float() if u8 else x
    if kernel == "nearest":
        y = F.interpolate(xf, size=(h, w), mode="nearest-exact")
    elif kernel == "bilinear":
        y = F.interpolate(xf, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    else:
        rows = torch.from_numpy(pil_weights(x.shape[-2], h, kernel)).to(xf.device)
        cols = torch.from_numpy(pil_weights(x.shape[-1], w, kernel)).to(xf.device)
        y = (rows @ xf.double() @ cols.T).to(xf.dtype)
    if u8:
        y = y.clamp(0, 255).round().to(torch.uint8)
    return y[0] if added else y


def check_kernels(kernels) -> tuple[str, ...]:
    """A tuple of kernel names from a list, one name, or ``"random"`` (all of :data:`KERNELS`); unknown names and
    an empty list raise CourseError. Notebook: 11_fixed_scale."""
    if isinstance(kernels, str):
        kernels = KERNELS if kernels == "random" else (kernels,)
    kernels = tuple(KERNELS if k == "random" else (k,) for k in kernels)
    names = tuple(dict.fromkeys(n for group in kernels for n in group))
    bad = [n for n in names if n not in KERNELS]
    if not names or bad:
        raise CourseError(f"resampling kernels must be some of {', '.join(KERNELS)} (or 'random' for all), "
                          f"got {bad[0] if bad else 'none'}")
    return names


def random_resample(img: torch.Tensor, scale=None, size=None, kernels=KERNELS, generator=None, seed=None,
                    return_kernels: bool = False):
    """Shrink ``img`` with a kernel drawn at random for each patch: the LR maker of 004's "general resampling".

    ``img`` (C, H, W) or (B, C, H, W), uint8 or float; the output is ``size`` = (h, w) or :func:`lr_size` of
    ``scale``. Each patch of a batch draws its own kernel, uniformly from ``kernels`` (default: all five of
    :data:`KERNELS`; see :func:`resample`), with ``generator`` (a ``torch.Generator``) or a new one seeded with
    ``seed``; one of them is required (the draw must be reproducible). With a single kernel nothing is drawn (the
    generator is left untouched): ``kernels=("bicubic",)`` gives exactly :func:`bicubic_aa`, the course's LR.
    ``return_kernels=True`` also returns the kernel names, one per patch. Notebook: 11_fixed_scale.
    """
    names = check_kernels(kernels)
    x, added = _as_batch(img, "img")
    if (scale is None) == (size is None):
        raise CourseError("give exactly one of scale= or size= to random_resample")
    out_size = lr_size(x.shape[-2:], scale) if scale is not None else check_size(size)
    if len(names) == 1:  # nothing to draw: one call for the whole batch
        chosen = [names[0]] * x.shape[0]
        out = resample(x, out_size, names[0])
    else:
        if generator is None and seed is None:
            raise CourseError("random_resample draws a kernel per patch: pass generator=torch.Generator() or seed=")
        g = generator if generator is not None else torch.Generator().manual_seed(int(seed))
        chosen = [names[i] for i in torch.randint(len(names), (x.shape[0],), generator=g).tolist()]
        out = torch.cat([resample(x[i : i + 1], out_size, k) for i, k in enumerate(chosen)])
    out = out[0] if added else out
    return (out, chosen) if return_kernels else out
