"""PSNR, SSIM and LR-PSNR under two named evaluation protocols.

Super-resolution papers do not all measure the same thing. A "protocol" fixes every choice:

* ``"paper"``: what the DIINN authors' code does, and so what the paper's Table 1 reports. LR made
  by :func:`~course_lib.degrade.bicubic_aa` to round(H/s) x round(W/s); SR predicted at the full HR
  size; RGB in [0, 1]; no border shave; SR not rounded to 8 bits; SSIM per RGB channel over the valid
  area (a 5-pixel border dropped); LR-PSNR compares the unrounded ``bicubic_aa`` of SR and of HR.
* ``"standard"``: the EDSR/RCAN-era convention. HR cropped to a multiple of the scale, LR made by
  MATLAB's imresize, SR rounded to 8 bits, metrics on the BT.601 luma Y (a greyscale image is its
  own Y), ceil(scale) pixels shaved from every border.

``PROTOCOLS[name]`` describes each one and carries its LR maker and bicubic baseline, so the
evaluation runner (:mod:`course_lib.evaluate`) needs no protocol-specific code.
Derived in notebooks/00_sisr_problem.ipynb and notebooks/07_evaluation.ipynb.

Also here: full YCbCr (:func:`rgb_to_ycbcr`, for MemNet) and seed paper 004's AlexNet-feature metric
(:func:`alex_similarity`: cosine similarity of 9,216-d pooled AlexNet features; needs ImageNet weights,
see :mod:`course_lib.imagenet`), both from notebooks/11_fixed_scale.ipynb.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .degrade import bicubic_aa, imresize_matlab, lr_size
from .errors import CourseError, check_scale

# ---------------------------------------------------------------------------------------------------
# The two protocols: how LR inputs and the bicubic baseline are made
# ---------------------------------------------------------------------------------------------------


def paper_pair(hr_u8: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) for the paper protocol: LR = bicubic_aa(HR) to round(H/s) x round(W/s); HR unchanged.

    ``hr_u8`` is uint8 (C, H, W); both results are uint8. Notebook: 07_evaluation.
    """
    return bicubic_aa(hr_u8, lr_size(hr_u8.shape[-2:], scale)), hr_u8


def standard_pair(hr_u8: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) for the standard protocol: HR cropped top-left to a multiple of the scale, LR by imresize.

    LR side h = floor(H / s); the HR is cropped to round(h * s) (= H - H mod s for an integer s).
    Both results are uint8 (MATLAB rounds a uint8 image after each axis). Notebook: 07_evaluation.
    """
    s = check_scale(scale)
    H, W = hr_u8.shape[-2:]
    h, w = math.floor(H / s + 1e-9), math.floor(W / s + 1e-9)
    if h < 1 or w < 1:
        raise CourseError(f"an image of {H}x{W} is too small for scale {s:g}")
    hr = hr_u8[..., : round(h * s), : round(w * s)]
    return imresize_matlab(hr, size=(h, w)), hr


def paper_bicubic(lr_u8: torch.Tensor, size) -> torch.Tensor:
    """Paper-protocol bicubic: torch antialiased bicubic (a = -0.5) of LR / 255 to ``size``, clamped.

    This (not torch's plain bicubic, a = -0.75, which scores ~0.2 dB higher) reproduces the paper's
    Table 1 bicubic rows. ``lr_u8`` (C, h, w) or (B, C, h, w); returns float in [0, 1].
    Notebook: 07_evaluation.
    """
    x = lr_u8.float() / 255.0 if lr_u8.dtype == torch.uint8 else lr_u8
    return bicubic_aa(x, size).clamp(0, 1)


def standard_bicubic(lr_u8: torch.Tensor, size) -> torch.Tensor:
    """Standard-protocol bicubic: MATLAB imresize of the uint8 LR to ``size`` (uint8), as float in [0, 1].

    Notebook: 07_evaluation.
    """
    return imresize_matlab(lr_u8, size=size).float() / 255.0


@dataclass(frozen=True)
class Protocol:
    """One named evaluation protocol: every choice that changes the numbers, in words and as functions."""

    name: str
    description: str
    channel: str  # "rgb" (all three channels) or "y" (BT.601 luma on 0..255)
    shave: str  # pixels dropped from every border before PSNR/SSIM
    quantise_sr: bool  # round SR to 8 bits before measuring
    lr_size: str  # how the LR size follows from the HR size
    lr_maker: str
    bicubic_baseline: str
    ssim: str
    lr_psnr: str
    make_pair: Callable = field(repr=False, compare=False)  # (hr_u8, scale) -> (lr_u8, hr_u8 used)
    bicubic: Callable = field(repr=False, compare=False)  # (lr_u8, (H, W)) -> float SR in [0, 1]

    def shave_pixels(self, scale) -> int:
        """Border dropped before PSNR/SSIM at this scale (0 for "paper", ceil(scale) for "standard")."""
        return 0 if self.channel == "rgb" else math.ceil(check_scale(scale))


PROTOCOLS: dict[str, Protocol] = {
    "paper": Protocol(
        name="paper",
        description="the DIINN authors' code (Table 1 of the paper)",
        channel="rgb",
        shave="none",
        quantise_sr=False,
        lr_size="round(H/s) x round(W/s) (Python round, ties to even); HR not cropped, SR at full HR size",
        lr_maker="bicubic_aa: torch antialiased bicubic (a=-0.5) of the uint8 HR, rounded to uint8",
        bicubic_baseline="torch antialiased bicubic (a=-0.5) of LR to HR size, clamped, not rounded",
        ssim="per RGB channel, Gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, range 1, 5-pixel border dropped",
        lr_psnr="PSNR (RGB, range 1) between unrounded bicubic_aa of SR and of HR to the LR size",
        make_pair=paper_pair,
        bicubic=paper_bicubic,
    ),
    "standard": Protocol(
        name="standard",
        description="EDSR/RCAN-era papers (MATLAB imresize, Y channel, shave = scale)",
        channel="y",
        shave="ceil(scale)",
        quantise_sr=True,
        lr_size="floor(H/s) x floor(W/s); HR cropped top-left to round(h*s) x round(w*s)",
        lr_maker="imresize_matlab (MATLAB bicubic, antialiased) of the uint8 HR, uint8",
        bicubic_baseline="imresize_matlab of the uint8 LR to the cropped HR size, uint8",
        ssim="on Y in [0, 255] after the shave, Gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, valid area",
        lr_psnr="PSNR (RGB, range 1) between imresize_matlab (float) of rounded SR and of HR (course choice)",
        make_pair=standard_pair,
        bicubic=standard_bicubic,
    ),
}


def get_protocol(protocol) -> Protocol:
    """A :class:`Protocol` from its name ("paper", "standard") or the object. Notebook: 07_evaluation."""
    if isinstance(protocol, Protocol):
        return protocol
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise CourseError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


# ---------------------------------------------------------------------------------------------------
# Helpers: checking inputs, the Y channel, quantisation
# ---------------------------------------------------------------------------------------------------


def _as_float_batch(img, name: str) -> torch.Tensor:
    """(C, H, W) or (B, C, H, W), uint8 or float -> float64 (B, C, H, W) in [0, 1] (same device)."""
    if not isinstance(img, torch.Tensor):
        raise CourseError(f"{name} must be a tensor (C, H, W) or (B, C, H, W), not {type(img).__name__}")
    if img.dim() == 3:
        img = img[None]
    if img.dim() != 4 or img.shape[1] not in (1, 3):
        raise CourseError(f"{name} must have shape (3, H, W) or (B, 3, H, W), not {tuple(img.shape)}")
    if img.dtype == torch.uint8:
        return img.detach().double() / 255.0
    if not img.is_floating_point():
        raise CourseError(f"{name} must be float in [0, 1] or uint8, got dtype {img.dtype}")
    return img.detach().double()


def _pair(sr, hr) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and convert an (SR, HR) pair; shapes must agree."""
    a, b = _as_float_batch(sr, "sr"), _as_float_batch(hr, "hr")
    if a.shape != b.shape:
        raise CourseError(f"sr and hr must have the same shape, got sr {tuple(a.shape)}, hr {tuple(b.shape)}")
    if torch.isnan(a).any():
        raise CourseError("sr contains NaN values; check the model's output")
    return a, b.to(a.device)


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of a (B, 3, H, W) image on 0..255, rounded as MATLAB's rgb2ycbcr does for uint8.

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B in 0..255, rounded half away from
    zero. A (B, 1, H, W) greyscale image is returned as is (it is its own Y). Notebook: 07_evaluation.
    """
    if img.shape[1] == 1:
        return img
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    return torch.floor(y + 0.5).clamp(0, 255)


def _standard_view(x: torch.Tensor, scale) -> torch.Tensor:
    """Float [0, 1] batch -> the standard protocol's measured array: 8-bit rounding, Y on 0..255, shave."""
    if scale is None:
        raise CourseError("the standard protocol shaves ceil(scale) pixels: pass scale=")
    shave = PROTOCOLS["standard"].shave_pixels(scale)
    y = rgb_to_y(torch.round(x.clamp(0, 1) * 255.0))
    if y.shape[-2] <= 2 * shave or y.shape[-1] <= 2 * shave:
        raise CourseError(f"image {tuple(y.shape[-2:])} is too small to shave {shave} pixels per border")
    return y[..., shave : y.shape[-2] - shave, shave : y.shape[-1] - shave] if shave else y


def _psnr_per_image(a: torch.Tensor, b: torch.Tensor, peak: float) -> torch.Tensor:
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(peak**2 / mse)  # inf when the images are equal


# ---------------------------------------------------------------------------------------------------
# The metrics
# ---------------------------------------------------------------------------------------------------


def psnr(sr, hr, protocol="paper", scale=None) -> float:
    """Peak signal-to-noise ratio in dB, mean over the images of a batch.

    ``sr``, ``hr``: (3, H, W) or (B, 3, H, W), float in [0, 1] (or uint8). "paper": RGB, range 1,
    no shave, SR used as is. "standard": SR rounded to 8 bits, Y on 0..255, ceil(scale) pixels
    shaved (``scale`` required). Notebook: 00_sisr_problem.
    """
    p = get_protocol(protocol)
    a, b = _pair(sr, hr)
    if p.channel == "rgb":
        return _psnr_per_image(a, b, 1.0).mean().item()
    return _psnr_per_image(_standard_view(a, scale), _standard_view(b, scale), 255.0).mean().item()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps; SSIM's window is its outer product.

    Notebook: 00_sisr_problem.
    """
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_matrix(n: int, size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None):
    """(n - size + 1, n) matrix whose product with a signal is its 'valid' Gaussian filtering.

    Row i holds the window at columns i .. i + size - 1. Notebook: 00_sisr_problem.
    """
    g = gaussian_window(size, sigma).to(dtype=dtype, device=device)
    m = torch.zeros(n - size + 1, n, dtype=dtype, device=device)
    rows = torch.arange(n - size + 1, device=device)
    for k in range(size):
        m[rows, rows + k] = g[k]
    return m


@functools.lru_cache(maxsize=32)
def _block_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return gaussian_matrix(n, dtype=dtype, device=device)


def gaussian_filter_valid(t: torch.Tensor, block: int = 32) -> torch.Tensor:
    """'Valid' 11 x 11 Gaussian (sigma 1.5) filtering of the last two axes: (..., H, W) -> (..., H-10, W-10).

    Separable: rows, then columns, each a product with :func:`gaussian_matrix`, done ``block`` output
    rows (columns) at a time so the work grows with H * W, not H^2 * W. Notebook: 00_sisr_problem.
    """
    H, W = t.shape[-2:]
    mid = t.new_empty(t.shape[:-2] + (H - 10, W))
    for i in range(0, H - 10, block):
        k = min(block, H - 10 - i)
        mid[..., i : i + k, :] = _block_matrix(k + 10, t.dtype, t.device) @ t[..., i : i + k + 10, :]
    out = t.new_empty(t.shape[:-2] + (H - 10, W - 10))
    for j in range(0, W - 10, block):
        k = min(block, W - 10 - j)
        out[..., j : j + k] = mid[..., j : j + k + 10] @ _block_matrix(k + 10, t.dtype, t.device).T
    return out


def ssim_per_image(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """SSIM of each image of two (B, C, H, W) float batches: the SSIM map's mean over channels and valid area.

    Gaussian window 11 x 11, sigma 1.5, K1 = 0.01, K2 = 0.03, population (co)variances; 'valid'
    filtering drops a 5-pixel border, as scikit-image and Wang et al.'s MATLAB code do.
    Notebook: 00_sisr_problem.
    """
    if min(a.shape[-2:]) < 11:
        raise CourseError(f"SSIM needs images of at least 11x11 pixels, got {tuple(a.shape[-2:])}")
    blur = gaussian_filter_valid
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(1)


def ssim(sr, hr, protocol="paper", scale=None) -> float:
    """Structural similarity, mean over the images of a batch (see :func:`ssim_per_image`).

    "paper": per RGB channel on [0, 1] (range 1). "standard": on the rounded Y channel in 0..255
    (range 255) after shaving ceil(scale) pixels (``scale`` required). Notebook: 00_sisr_problem.
    """
    p = get_protocol(protocol)
    a, b = _pair(sr, hr)
    if p.channel == "rgb":
        return ssim_per_image(a, b, 1.0).mean().item()
    return ssim_per_image(_standard_view(a, scale), _standard_view(b, scale), 255.0).mean().item()


def lr_psnr(sr, hr, scale, protocol="paper") -> float:
    """LR consistency (DIINN's LR-PSNR): PSNR between the downsampled SR and the downsampled HR.

    "paper": both shrunk with unrounded :func:`~course_lib.degrade.bicubic_aa` to
    round(H/s) x round(W/s), PSNR on RGB with range 1. "standard" (a course choice; the metric comes
    from DIINN): the 8-bit-rounded SR and the HR shrunk with float
    :func:`~course_lib.degrade.imresize_matlab` to the same size, RGB, range 1.
    Notebook: 07_evaluation.
    """
    p = get_protocol(protocol)
    a, b = _pair(sr, hr)
    size = lr_size(a.shape[-2:], scale)
    if p.name == "paper":
        a_lr, b_lr = bicubic_aa(a, size), bicubic_aa(b, size)
    else:
        a_lr = imresize_matlab(torch.round(a.clamp(0, 1) * 255.0) / 255.0, size=size)
        b_lr = imresize_matlab(b, size=size)
    return _psnr_per_image(a_lr, b_lr, 1.0).mean().item()


def measure(sr, hr, scale, protocol="paper") -> dict:
    """All three metrics at once: {"psnr", "ssim", "lr_psnr"} (each the mean over the batch).

    Same conventions as :func:`psnr`, :func:`ssim` and :func:`lr_psnr`, but the inputs are checked
    and converted once. The evaluation runner calls this per image. Notebook: 07_evaluation.
    """
    p = get_protocol(protocol)
    a, b = _pair(sr, hr)
    if p.channel == "rgb":
        va, vb, peak = a, b, 1.0
    else:
        va, vb, peak = _standard_view(a, scale), _standard_view(b, scale), 255.0
    return {
        "psnr": _psnr_per_image(va, vb, peak).mean().item(),
        "ssim": ssim_per_image(va, vb, peak).mean().item(),
        "lr_psnr": lr_psnr(a, b, scale, p),
    }


# ---------------------------------------------------------------------------------------------------
# Colour: full YCbCr (MemNet works on Y and takes Cb, Cr from bicubic)
# ---------------------------------------------------------------------------------------------------

_YCBCR = ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))  # BT.601, x 1/255
_YCBCR_OFFSET = (16.0, 128.0, 128.0)  # on 0..255


def rgb_to_ycbcr(img: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (B, 3, H, W) -> BT.601 YCbCr scaled to [0, 1] (Y in [16, 235] / 255), unrounded.

    MATLAB's ``rgb2ycbcr`` of a double image (what MemNet's code feeds the network): Y = (16 + 65.481 R +
    128.553 G + 24.966 B) / 255, Cb and Cr alike around 128 / 255; scikit-image's ``rgb2ycbcr`` / 255.
    :func:`rgb_to_y` is the same Y on 0..255, rounded for the standard protocol. Notebook: 11_fixed_scale.
    """
    if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] != 3 or not img.is_floating_point():
        raise CourseError(f"img must be a float tensor (B, 3, H, W) in [0, 1], got {getattr(img, 'shape', img)}")
    m = img.new_tensor(_YCBCR) / 255.0
    return torch.einsum("ij,bjhw->bihw", m, img) + img.new_tensor(_YCBCR_OFFSET).view(1, 3, 1, 1) / 255.0


def ycbcr_to_rgb(img: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_ycbcr` (unclamped), as scikit-image's ``ycbcr2rgb`` of 255 x ``img``.

    Notebook: 11_fixed_scale."""
    if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] != 3 or not img.is_floating_point():
        raise CourseError(f"img must be a float tensor (B, 3, H, W), got {getattr(img, 'shape', img)}")
    inv = torch.linalg.inv(torch.tensor(_YCBCR, dtype=torch.float64) / 255.0).to(img)
    shifted = img - img.new_tensor(_YCBCR_OFFSET).view(1, 3, 1, 1) / 255.0
    return torch.einsum("ij,bjhw->bihw", inv, shifted)


# ---------------------------------------------------------------------------------------------------
# The AlexNet-feature metric of seed paper 004
# ---------------------------------------------------------------------------------------------------

_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def laplacian_energy(img: torch.Tensor) -> float:
    """Mean squared 3x3 Laplacian of the Y channel (BT.601, [0, 1]) of one RGB image (3, H, W) in [0, 1], over the
    interior pixels (no padding): how much fine-scale detail the image holds. Notebook: 11_fixed_scale."""
    if not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != 3 or min(img.shape[1:]) < 3:
        raise CourseError(f"img must be one RGB image (3, H, W) with H, W >= 3, got {getattr(img, 'shape', img)}")
    y = rgb_to_ycbcr(img.float()[None])[:, :1]
    return F.conv2d(y, y.new_tensor(_LAPLACIAN).view(1, 1, 3, 3)).pow(2).mean().item()


def detail_ratio(sr: torch.Tensor, hr: torch.Tensor) -> float:
    """:func:`laplacian_energy` of ``sr`` over that of ``hr`` (both (3, H, W) in [0, 1]; uint8 is divided by 255):
    1 means as much fine detail as the original, below 1 smoother (lesson 11's perception-distortion section; NOT a
    perceptual metric: noise raises it too). Notebook: 11_fixed_scale."""
    sr, hr = (t.float() / 255 if t.dtype == torch.uint8 else t for t in (sr, hr))
    if sr.shape != hr.shape:
        raise CourseError(f"sr {tuple(sr.shape)} and hr {tuple(hr.shape)} must have the same shape")
    return laplacian_energy(sr) / laplacian_energy(hr)


ALEX_DIM = 9216  # 256 channels x 6 x 6 after AlexNet's adaptive average pool: the input of its first FC layer
ALEX_PREPROCESS = ("preset", "full")
_ALEX_CACHE: dict = {}


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a . b / (|a| |b|) of each row of two (B, D) tensors, in float64: (B,). Notebook: 11_fixed_scale."""
    a, b = a.double().flatten(1), b.double().flatten(1)
    if a.shape != b.shape:
        raise CourseError(f"feature vectors must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    den = a.norm(dim=1) * b.norm(dim=1)
    if (den == 0).any():
        raise CourseError("a feature vector is all zeros, so its cosine similarity is undefined (a blank image?)")
    return (a * b).sum(1) / den


def alex_network(weights="imagenet", device=None, download: bool = True):
    """AlexNet's ``features`` for the metric, loaded once per (weights, device) (course_lib.imagenet's rules:
    ``"imagenet"``, a file, or ``"random"`` for tests). Notebook: 11_fixed_scale."""
    from .imagenet import load_backbone

    key = (str(weights), str(torch.device(device or "cpu")))
    if key not in _ALEX_CACHE:
        _ALEX_CACHE[key] = load_backbone("alexnet", weights, download=download, device=device)
    return _ALEX_CACHE[key]


def alex_preprocess(img: torch.Tensor, preprocess: str = "preset") -> torch.Tensor:
    """RGB in [0, 1] (B, 3, H, W) -> AlexNet's input (float32, ImageNet-normalised).

    ``"preset"`` (the default): torchvision's ``AlexNet_Weights.IMAGENET1K_V1.transforms()``: short side resized to
    256 (antialiased bilinear; long side ``int(256 * long / short)``), centre crop 224 x 224 (offsets
    ``round((side - 224) / 2)``), normalised. ``"full"``: the whole image, only normalised (the adaptive pool still
    gives 9,216 values; at least 63 x 63 pixels). Notebook: 11_fixed_scale."""
    from .imagenet import imagenet_normalize

    if preprocess not in ALEX_PREPROCESS:
        raise CourseError(f"preprocess must be one of {', '.join(ALEX_PREPROCESS)}, got {preprocess!r}")
    x = img.float()
    H, W = x.shape[-2:]
    if preprocess == "preset":
        short, long = (H, W) if H <= W else (W, H)
        new_long = int(256 * long / short)
        size = (256, new_long) if H <= W else (new_long, 256)
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        top, left = int(round((size[0] - 224) / 2.0)), int(round((size[1] - 224) / 2.0))
        x = x[..., top : top + 224, left : left + 224]
    elif min(H, W) < 63:
        raise CourseError(f"AlexNet needs at least 63x63 pixels, got {H}x{W}; use preprocess='preset' (resizes)")
    return imagenet_normalize(x)


def alex_features(img, net=None, weights="imagenet", preprocess: str = "preset") -> torch.Tensor:
    """The 9,216-d AlexNet feature vector of each image: ``features`` -> 6x6 adaptive average pool -> flatten.

    ``img``: (3, H, W) or (B, 3, H, W), float in [0, 1] or uint8; a grey (1, H, W) image is copied to RGB.
    ``net``: a network from :func:`alex_network` (else loaded with ``weights``). The values are >= 0 (they
    follow a ReLU and a max-pool). Returns float32 (B, 9216). Notebook: 11_fixed_scale."""
    x = _as_float_batch(img, "img")
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    net = alex_network(weights) if net is None else net
    device = next(net.parameters()).device
    with torch.no_grad():
        f = net(alex_preprocess(x.to(device), preprocess))
        return F.adaptive_avg_pool2d(f, (6, 6)).flatten(1)


def alex_similarity_per_image(sr, hr, net=None, weights="imagenet", preprocess: str = "preset") -> torch.Tensor:
    """Seed 004's metric for each image of a batch: the cosine similarity of the AlexNet feature vectors of SR and
    HR (float64 (B,), in [0, 1] since the features are >= 0; 1 for identical images). Notebook:
    11_fixed_scale."""
    a, b = _pair(sr, hr)
    net = alex_network(weights) if net is None else net
    return cosine_similarity(alex_features(a, net, preprocess=preprocess), alex_features(b, net, preprocess=preprocess))


def alex_similarity(sr, hr, net=None, weights="imagenet", preprocess: str = "preset") -> float:
    """Mean over the batch of :func:`alex_similarity_per_image` (004's ALEX column). Without ImageNet weights it
    refuses (``course_lib.imagenet``); ``weights="random"`` gives a test-only number. Notebook:
    11_fixed_scale."""
    return alex_similarity_per_image(sr, hr, net, weights, preprocess).mean().item()
