"""Convolutional SR models in the course's interface: ``upscale`` on tiles with exact halos, honest fixed scales.

The implicit models (DIINN, LIIF, Meta-SR) answer any output size by querying coordinates. The two baselines of
seed paper 004 do not: MemNet refines a bicubic upsampling (pre-upsampling, so any scale works, but it only learned
the scales it was trained on) and SRGAN's generator ends in two PixelShuffle x2 layers (post-upsampling: x4 and
nothing else). :class:`ConvSR` gives both the same ``upscale(lr, scale=|size=, chunk_size, amp, progress)`` as
``SRModel``:

* **Tiles with exact halos.** A convolutional network's output pixel depends only on the input pixels within its
  receptive radius. ``upscale`` cuts the network's input into tiles of about ``chunk_size`` output pixels, gives
  each tile a border (halo) of that radius taken from the image itself (zero padding only at the image's own
  border, as in one pass), and keeps only each tile's core: the result equals one pass over the whole image
  (tested), while peak memory follows the tile, not the image. MemNet's own test script uses 16-pixel halos, an
  approximation; here the halo is the full radius (74 pixels for M6R6). Halos cost work (a 192-pixel core with
  74-pixel halos computes 3.1x its own pixels), so by default the whole image goes in one pass when its estimated
  peak fits in half the free memory, else the largest tiles that do.
* **Batch statistics off.** Both networks have batch normalisation; ``upscale`` runs in eval mode (running
  statistics, so the tiles do not interact) and restores the training flag afterwards.
* **Fixed scale, said out loud.** A model with ``fixed_scale = 4`` asked for x3 (or a size that is not 4x the
  input) raises one CourseError saying it cannot; with ``resize=True`` it makes its x4 output and resizes it to the
  size asked (antialiased bicubic) with a warning saying so. Never silently.

Derived in notebooks/11_fixed_scale.ipynb.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from . import images
from .errors import CourseError, check_scale
from .progress import LazyBar

MEMORY_SHARE = 0.5  # the default tiles: the largest whose estimated peak fits in this share of the free memory


def fixed_output_size(name: str, factor: int, lr_size, scale=None, size=None, resize: bool = False):
    """Output size for a fixed-scale (x ``factor``) model: (H, W, resized?) (lesson 11).

    ``scale`` must be ``factor`` and ``size`` must be ``factor`` x the input size; anything else raises a
    CourseError naming the model, the request and the ways out, unless ``resize=True`` (then the x ``factor``
    output will be resized to (H, W) and ``resized`` is True)."""
    from .models import output_size

    h, w = (int(v) for v in lr_size)
    H, W = output_size((h, w), scale, size)
    native = (factor * h, factor * w)
    if (H, W) == native and (scale is None or check_scale(scale) == factor):
        return H, W, False
    asked = f"x{check_scale(scale):g} ({h}x{w} -> {H}x{W})" if scale is not None else f"{h}x{w} -> {H}x{W}"
    if not resize:
        raise CourseError(f"{name} is a fixed x{factor} model: it cannot make {asked} (its output is "
                          f"{native[0]}x{native[1]}); ask for scale={factor}, pass resize=True to resize its "
                          f"x{factor} output and be told, or use an arbitrary-scale model (diinn, liif, metasr, "
                          "memnet)")
    return H, W, True


def tiled(fn, x: torch.Tensor, factor: int, tile: int, halo: int, progress=None, desc: str = "tiles"):
    """``fn(x)`` computed tile by tile: exact when ``halo`` covers ``fn``'s receptive radius (lesson 11).

    ``fn`` maps (B, C, h, w) to (B, C', factor h, factor w). ``x`` is cut into ``tile`` x ``tile`` cores; each is
    computed with up to ``halo`` extra input pixels on every side (fewer at the image border, where ``fn``'s own
    padding applies as in one pass) and only the core's output is kept. One tile when the image fits in one.
    ``progress``: a bar over tiles (None: only when the first tile says the whole will take more than 3 s)."""
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return fn(x)
    boxes = [(top, left) for top in range(0, h, tile) for left in range(0, w, tile)]
    out = None
    with LazyBar(len(boxes), desc, "tile", progress) as bar:
        for top, left in boxes:
            bottom, right = min(top + tile, h), min(left + tile, w)
            t, lft = max(top - halo, 0), max(left - halo, 0)
            y = fn(x[..., t : min(bottom + halo, h), lft : min(right + halo, w)])
            if out is None:
                out = y.new_empty(*y.shape[:2], factor * h, factor * w)
            f = factor
            out[..., f * top : f * bottom, f * left : f * right] = \
                y[..., f * (top - t) : f * (bottom - t), f * (left - lft) : f * (right - lft)]
            bar.update()
    return out


class ConvSR(nn.Module):
    """Base of the convolutional models (MemNet, SRResNet): the ``upscale`` of ``SRModel`` on exact tiles.

    A subclass sets ``fixed_scale`` (None: any scale), ``factor`` (output pixels per input pixel of the tiled
    network: 1 for pre-upsampling, 4 for SRResNet), and defines ``halo`` (the network's receptive radius in input
    pixels), ``floats_per_pixel`` (activations alive per input pixel at the peak, for the memory check) and
    ``_upscale(lr, H, W, tile, progress)`` -> (B, 3, H, W) in [0, 1]. ``normalize``/``denormalize`` are
    ``images.normalize``/``denormalize``, as ``SRModel``'s, so ``predict`` works in the same normalised space.
    Notebook: 11_fixed_scale."""

    fixed_scale: int | None = None
    factor: int = 1

    normalize = staticmethod(images.normalize)  # [0, 1] -> [-1, 1], the space encoders read and predict returns
    denormalize = staticmethod(images.denormalize)

    @property
    def name(self) -> str:
        return getattr(self, "config", {}).get("name", type(self).__name__)

    def output_size(self, lr_size, scale=None, size=None, resize: bool = False):
        """(H, W, resized?): any scale for a pre-upsampling model, :func:`fixed_output_size` for a fixed one."""
        if self.fixed_scale is None:
            from .models import output_size

            if resize:
                raise CourseError(f"{self.name} works at any scale; resize=True is only for fixed-scale models")
            return (*output_size(lr_size, scale, size), False)
        return fixed_output_size(self.name, self.fixed_scale, lr_size, scale, size, resize)

    def peak_bytes(self, lr_size, out_size, batch: int, tile: int) -> int:
        """Estimated peak memory (fp32): one tile's input with halos (``lr_size`` is the tiled network's input
        grid) x :attr:`floats_per_pixel`, plus 12 floats per output pixel (the output, the bicubic image and
        its copies), x 1.5 plus 32 MiB (``models.peak_bytes``'s margins)."""
        side = [min(int(n), tile + 2 * self.halo) for n in lr_size]
        in_px, out_px = side[0] * side[1], out_size[0] * out_size[1]
        return int(1.5 * 4 * batch * (self.floats_per_pixel * in_px + 12 * out_px) + 32 * 2**20)

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor, scale=None, size=None, chunk_size: int | None = None, amp: bool = False,
                progress: bool | None = None, resize: bool = False) -> torch.Tensor:
        """Upscale ``lr`` (B, 3, h, w) in [0, 1] by ``scale`` or to ``size`` = (H, W) (lesson 11).

        ``chunk_size``: output pixels per tile core (default: one pass if it fits in half the free memory, else
        the largest tiles that do); the result does not depend on it (exact halos). ``amp``: autocast as
        ``SRModel.upscale``. ``resize``: only for a fixed-scale model asked for another scale (see the module
        docstring). Runs in eval mode, input checks and memory refusal as ``SRModel.upscale``."""
        from .models import _check_fits, _upscale_context, check_pixels, free_bytes

        in_dtype = lr.dtype if isinstance(lr, torch.Tensor) else None
        param = next(self.parameters(), None)
        lr = check_pixels(lr, param.dtype if param is not None else torch.float32)
        H, W, resized = self.output_size(lr.shape[-2:], scale, size, resize)
        grid = lr.shape[-2:] if self.factor != 1 else (H, W)  # the tiled network's input grid
        if chunk_size is None:
            tile, budget = max(grid), MEMORY_SHARE * free_bytes(lr.device)
            while tile > 16 and self.peak_bytes(grid, (H, W), lr.shape[0], tile) > budget:
                tile = (tile + 1) // 2
        elif int(chunk_size) < 1:
            raise CourseError(f"chunk_size must be a positive number of output pixels per tile, got {chunk_size}")
        else:
            tile = max(1, math.isqrt(int(chunk_size)) // self.factor)
        need = self.peak_bytes(grid, (H, W), lr.shape[0], tile)
        _check_fits(need, (H, W), lr.device)
        with _upscale_context(self, lr.device, amp, (H, W), need):
            out = self._upscale(lr, H, W, tile, progress).to(lr.dtype)
        if resized:
            warnings.warn(f"{self.name} is a fixed x{self.fixed_scale} model: its x{self.fixed_scale} output "
                          f"({out.shape[-2]}x{out.shape[-1]}) was resized to {H}x{W} with antialiased bicubic",
                          stacklevel=3)  # the caller of upscale (past torch.no_grad's wrapper)
            out = F.interpolate(out, size=(H, W), mode="bicubic", antialias=True, align_corners=False)
        return out.clamp(0, 1).to(in_dtype)
