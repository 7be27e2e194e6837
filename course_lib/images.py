"""Reading and writing image files as tensors.

Every image in the course is an 8-bit RGB picture. Files that are not (greyscale, RGBA, palette,
16-bit PNGs) are converted to 8-bit RGB with a ``warnings.warn`` note that names the file and the
conversion, rather than refused. Derived in notebooks/00_sisr_problem.ipynb.
"""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import CourseError
from .files import atomic_write, check_output

GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def _grey_to_u8(im: Image.Image, path) -> np.ndarray:
    """(H, W) uint8 from a greyscale PIL image; 16-bit values 0..65535 are scaled to 0..255."""
    mode = im.mode
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if mode == "LA":
        return np.asarray(im.getchannel("L"), dtype=np.uint8)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if arr.size and arr.max() <= 1.0:  # a float image in [0, 1]
            arr = arr * 255.0
        return np.clip(np.round(arr), 0, 255).astype(np.uint8)
    arr = np.asarray(im).astype(np.float64)  # "I" (32-bit int) or "I;16*" (16-bit): both hold 0..65535 here
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise CourseError(f"{path}: integer image with values outside 0..65535; save it as an 8-bit PNG")
    return np.round(arr * (255.0 / 65535.0)).astype(np.uint8)


def _is_16bit_colour(im: Image.Image) -> bool:
    """True for a 16-bit RGB(A) PNG, which PIL would silently cut to its high byte."""
    rawmode = im.tile[0].args if im.tile else None
    return im.mode in ("RGB", "RGBA") and isinstance(rawmode, str) and ";16" in rawmode


def _colour16_to_u8(path) -> np.ndarray | None:
    """(H, W, 3) uint8 from a 16-bit colour PNG, value * 255 / 65535 rounded; None if it cannot decode.

    PIL keeps only the high byte of 16-bit colour, so torchvision's PNG decoder reads the 16 bits.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision.io decoding: deprecated
            import torchvision.io

            data = torchvision.io.read_file(str(path))
            t = torchvision.io.decode_image(data, mode=torchvision.io.ImageReadMode.UNCHANGED)[:3]
    except Exception:  # noqa: BLE001 - a torchvision without the decoder: fall back to PIL's high byte
        return None
    arr = t.to(torch.float64).numpy().transpose(1, 2, 0)
    return np.round(arr * (255.0 / 65535.0)).astype(np.uint8)


def load_image_uint8(path, keep_grey: bool = False) -> torch.Tensor:
    """Read any image file PIL can open as a uint8 tensor (3, H, W) (RGB, 0..255).

    Conversions (each announced with ``warnings.warn`` naming the file): greyscale -> the grey
    copied to R, G and B; 16-bit -> value * 255 / 65535, rounded; RGBA/LA -> the alpha channel is
    dropped (as PIL's ``convert("RGB")`` and torchvision's ``read_image(..., RGB)`` do); palette ->
    its RGB colours. With ``keep_grey=True`` a greyscale file is returned as (1, H, W) without a note
    (the "standard" metric protocol uses a grey image as its Y channel directly).
    A missing file or a file that is not an image raises CourseError naming the file.
    Notebook: 00_sisr_problem.
    """
    path = Path(path)
    if path.is_dir():
        raise CourseError(f"{path} is a directory, not an image file; give the path of an image file")
    if not path.is_file():
        raise CourseError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            mode = im.mode
            notes = []
            if mode in GREY_MODES:
                im.load()
                grey = _grey_to_u8(im, path)
                if mode.startswith("I"):
                    notes.append(f"16-bit {mode} scaled to 8-bit (x 255/65535)")
                elif mode == "F":
                    notes.append("32-bit float converted to 8-bit")
                if mode == "LA":
                    notes.append("alpha channel dropped")
                if keep_grey:
                    if notes:
                        warnings.warn(f"{path}: {'; '.join(notes)}", stacklevel=2)
                    return torch.from_numpy(grey.copy())[None]
                notes.append(f"greyscale ({mode}) copied to R, G and B")
                rgb = np.repeat(grey[:, :, None], 3, axis=2)
            elif _is_16bit_colour(im) and (rgb16 := _colour16_to_u8(path)) is not None:
                notes.append(f"16-bit {mode} scaled to 8-bit (x 255/65535)")
                if mode == "RGBA":
                    notes.append("alpha channel dropped")
                rgb = rgb16
            else:
                if mode == "RGBA":
                    notes.append("alpha channel dropped")
                elif mode in ("P", "PA"):
                    notes.append("palette image converted to RGB")
                elif mode != "RGB":
                    notes.append(f"{mode} image converted to RGB")
                if _is_16bit_colour(im):
                    notes.append("16-bit colour read as its high byte (no 16-bit PNG decoder found)")
                rgb = np.array(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, RuntimeError) as err:
        raise CourseError(f"{path} is not a readable image ({type(err).__name__}: {err})") from None
    if notes:
        warnings.warn(f"{path}: {'; '.join(notes)}", stacklevel=2)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()


def load_image(path) -> torch.Tensor:
    """Read an image file as a float tensor (3, H, W) in [0, 1] (see :func:`load_image_uint8`).

    Notebook: 00_sisr_problem.
    """
    return load_image_uint8(path).float() / 255.0


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] -> uint8 0..255 by rounding (values outside [0, 1] are clamped).

    Notebook: 00_sisr_problem.
    """
    if img.dtype == torch.uint8:
        return img
    if not img.is_floating_point():
        raise CourseError(f"image must be float in [0, 1] or uint8, got dtype {img.dtype}")
    if torch.isnan(img).any():
        raise CourseError("image contains NaN values; check the model output before saving")
    return (img.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Image in [0, 1] -> the models' internal space [-1, 1]: ``(x - 0.5) / 0.5`` (the authors' and LIIF's
    convention; every course model's encoder reads, and its ``predict`` returns, this space).

    Notebook: 04_modulated_periodic_decoder (the training target ``(hr - 0.5) / 0.5``).
    """
    return (x - 0.5) / 0.5


def denormalize(y: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`normalize`: ``y * 0.5 + 0.5`` (unclamped). Notebook: 04_modulated_periodic_decoder."""
    return y * 0.5 + 0.5


# Formats that keep every 8-bit pixel exactly: (PIL format name, save options). JPEG, GIF (a 256-colour palette),
# PDF and the rest would change the pixels that were computed, so save_image refuses them.
LOSSLESS = {".png": ("PNG", {}), ".bmp": ("BMP", {}), ".tif": ("TIFF", {}), ".tiff": ("TIFF", {}),
            ".webp": ("WEBP", {"lossless": True, "quality": 100, "method": 4})}


def image_format(path) -> tuple[str, dict]:
    """(PIL format, save options) for an output file name; lossy or unknown formats raise CourseError.

    Lossless only: ``.png`` (recommended), ``.bmp``, ``.tif``/``.tiff`` (uncompressed), ``.webp`` (lossless mode).
    Notebook: 00_sisr_problem.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in LOSSLESS:
        return LOSSLESS[suffix]
    hint = "use .png (or .tif, .bmp, .webp, all written lossless)"
    if suffix in Image.registered_extensions():
        raise CourseError(f"cannot write {path}: {suffix} is not a lossless format here (it would change the "
                          f"pixels that were computed); {hint}")
    raise CourseError(f"cannot tell the image format of {path}; {hint}")


def save_image(img: torch.Tensor, path) -> Path:
    """Write a (3, H, W) or (1, 3, H, W) image in [0, 1] (or uint8) to a file, rounded to 8 bits.

    The format follows the file extension and must be lossless (:func:`image_format`: PNG, BMP, TIFF, lossless
    WebP). The file is written atomically (a temporary file in the same folder, then renamed): a crash never destroys
    an existing file. Parent folders are created. Returns the path. Notebook: 00_sisr_problem.
    """
    if not isinstance(img, torch.Tensor):
        raise CourseError(f"image must be a torch.Tensor (3, H, W), got {type(img).__name__}")
    if img.dim() == 4 and img.shape[0] == 1:
        img = img[0]
    if img.dim() != 3 or img.shape[0] not in (1, 3):
        raise CourseError(f"image must have shape (3, H, W) or (1, 3, H, W), got {tuple(img.shape)}")
    path = check_output(path, "image file")
    fmt, options = image_format(path)
    arr = to_uint8(img).cpu().permute(1, 2, 0).numpy()
    arr = arr[:, :, 0] if arr.shape[2] == 1 else arr
    picture = Image.fromarray(np.ascontiguousarray(arr))
    return atomic_write(path, lambda f: picture.save(f, format=fmt, **options))


def centre_box(shape, side: int) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the centred ``side`` x ``side`` crop of an image of size ``shape[-2:]``.

    The course's rounding: ``top = (H - side) // 2``, ``left = (W - side) // 2``; a dimension shorter than ``side``
    is kept whole (``top`` or ``left`` 0, ``height = min(side, H)``, ``width = min(side, W)``). What
    :func:`centre_crop` cuts, for the lessons that also draw the crop's frame (``plt.Rectangle((left - 0.5,
    top - 0.5), width, height)`` on ``imshow``'s pixel centres). Notebooks: 05_encoders, 07_evaluation.
    """
    if isinstance(side, bool) or not isinstance(side, numbers.Integral) or side < 1:
        raise CourseError(f"crop side must be a positive number of pixels (an integer), got {side!r}")
    try:
        H, W = tuple(shape)[-2:]
    except (TypeError, ValueError):
        H = W = None
    if not all(isinstance(n, numbers.Integral) and n >= 1 for n in (H, W)):
        raise CourseError(f"centre_box needs an image size (..., H, W) with H, W >= 1, got {shape!r}")
    H, W, side = int(H), int(W), int(side)
    return max(0, (H - side) // 2), max(0, (W - side) // 2), min(side, H), min(side, W)


def centre_crop(img: torch.Tensor, side: int | None) -> torch.Tensor:
    """The centred ``side`` x ``side`` crop of a (..., H, W) image; ``None`` returns the image itself.

    The course's rounding (:func:`centre_box`): ``top = (H - side) // 2``, ``left = (W - side) // 2``; a dimension
    shorter than ``side`` is kept whole (so the crop of a 480 x 320 image at 400 is 400 x 320). A centred crop of
    side ``c`` of this crop, with ``side - c`` even, is the centred crop of side ``c`` of the whole image: that is how
    a GPU payload packs 256-px crops (scripts/gpu_campaign.py) that lesson 10 crops again to 96 px. Notebooks:
    08_ablations, 09_liif_metasr, 10_seed000.
    """
    if side is None:
        return img
    if not isinstance(img, torch.Tensor) or img.dim() < 2:
        raise CourseError(f"centre_crop needs an image tensor (..., H, W), got {getattr(img, 'shape', type(img))}")
    top, left, height, width = centre_box(img.shape, side)
    return img[..., top:top + height, left:left + width]
