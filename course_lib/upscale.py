"""The course's main job in one line: ``python -m course_lib upscale IN.png OUT.png --scale 3.5``  (lesson 04).

Options: ``--scale S`` (any real S > 0) or ``--size WxH``, ``--model NAME|FILE`` (a shipped pretrained name, a
checkpoint file, or ``bicubic`` for the baseline), ``--device cpu|cuda``, ``--chunk-size N``, ``--precision auto|fp32``
(auto: bf16 only where the device runs it natively), ``--cpu-heap auto|off`` (auto: on a CPU, keep freed memory
for reuse, :mod:`course_lib.allocator`, about 1.5x faster here), ``--quiet`` (no progress bar), ``--force``
(replace an existing output). Without ``--model`` it uses the best shipped DIINN checkpoint
(:func:`course_lib.models.best_pretrained`) and says which. The output is written atomically in a lossless format
(PNG; also BMP, TIFF, lossless WebP); the input file itself is never an acceptable output.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from . import allocator
from .errors import CourseError, pick_device
from .files import check_output
from .images import image_format, load_image, save_image
from .models import best_pretrained, describe, resolve


def parse_size(text: str) -> tuple[int, int]:
    """``"1024x768"`` (width x height, as image tools write it) -> (H, W) = (768, 1024)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise CourseError(f"size must look like WIDTHxHEIGHT, e.g. 1024x768; got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w == 0 or h == 0:
        raise CourseError(f"size {text!r} has a zero side; both width and height must be positive")
    return h, w


def default_model() -> str:
    """The model ``upscale`` uses when none is named: the best shipped DIINN, else bicubic."""
    return best_pretrained("diinn") or "bicubic"


def upscale_file(src, dst, scale=None, size=None, checkpoint=None, device=None, chunk_size: int | None = None,
                 precision: str = "auto", progress: bool | None = None, force: bool = False) -> tuple[Path, str]:
    """Read ``src``, upscale with ``checkpoint`` (default: :func:`default_model`), write ``dst`` (PNG).

    ``checkpoint``: a pretrained name, a checkpoint file or ``"bicubic"``. ``precision``: ``auto`` (bf16 autocast
    on CUDA and on CPUs with native bf16, ``course_lib.precision``; fp32 elsewhere) or ``fp32``. ``dst`` is checked
    before any work: it may not be ``src``, a directory, a lossy format, or (without ``force=True``) an existing file.
    Returns the path written and the model's description. Notebook: 04_modulated_periodic_decoder.
    """
    if precision not in ("auto", "fp32"):
        raise CourseError(f"precision must be auto or fp32, got {precision!r}")
    check_output(dst, "output", force=force, src=src)
    image_format(dst)
    lr = load_image(src)[None]
    dev = pick_device(device)
    model = resolve(checkpoint or default_model(), dev).eval()
    lr = lr.to(dev)
    sr = model.upscale(lr, scale=scale, size=size, chunk_size=chunk_size, amp=precision == "auto", progress=progress)
    return save_image(sr[0].cpu(), dst), describe(model.config)


def cli(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib upscale", description=__doc__.splitlines()[0])
    p.add_argument("input", help="image file to upscale (png, jpg, bmp, ...)")
    p.add_argument("output", help="where to write the result (.png; also .tif, .bmp, .webp, all lossless)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--scale", type=float, help="any real scale > 0, e.g. 3.5")
    group.add_argument("--size", help="output size WIDTHxHEIGHT, e.g. 1024x768")
    p.add_argument("--model", "--checkpoint", dest="model",
                   help="pretrained name, checkpoint file, or bicubic (default: the best shipped DIINN)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="query pixels per decoder call (default: 2048 on a CPU with heap reuse, 1024 with "
                        "--cpu-heap off, 32768 on a GPU)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32"],
                   help="auto: bf16 where the device runs it natively, else fp32 (default)")
    p.add_argument("--cpu-heap", default="auto", choices=["auto", "off"],
                   help="auto: on a CPU keep freed memory for reuse (course_lib.allocator; Linux/glibc), off: the "
                        "C library's defaults")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    args = p.parse_args(argv)
    size = parse_size(args.size) if args.size else None
    allocator.apply(args.cpu_heap, pick_device(args.device))  # this process only; model.upscale never changes it
    model = args.model or default_model()
    if not args.model:
        print(f"no --model given: using {model}" + (" (the best shipped DIINN checkpoint; --model bicubic for "
                                                      "the baseline)" if model != "bicubic" else
                                                      " (no DIINN checkpoint is shipped)"))
    dst, model_name = upscale_file(args.input, args.output, args.scale, size, model, args.device, args.chunk_size,
                                   args.precision, progress=False if args.quiet else None, force=args.force)
    print(f"wrote {dst} ({model_name})")
    return 0
