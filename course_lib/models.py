"""Models: an encoder and a decoder make an arbitrary-scale SR model; one registry names them all  (lessons 04-06).

``build("diinn", encoder="rdn", variant="f")`` is the one way to name a model: notebooks, configs, the CLI and the
tests all use it, and a saved checkpoint stores exactly these arguments (``model.config``), so ``load`` rebuilds the
right architecture. Table 5's ablations differ from the final model (f) by the single flag ``variant``; the paper's
scale input (1/s instead of the code's area ratio) is the single flag ``scale_mode="inverse"``.

``SRModel`` takes RGB in [0, 1] and normalises internally ((x - 0.5) / 0.5, as the authors' code does), so
``model(lr, size)`` returns [0, 1] (clamped) while training uses ``model.predict`` (normalised, unclamped).
``model.upscale`` is the user-facing call: any real scale or an explicit size, queried in chunks so that peak memory
is bounded whatever the output size.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import resource
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import allocator, images
from .coords import grid_chunk, make_cell
from .data import sha256_file
from .decoders import VARIANTS, DIINNDecoder
from .encoders import ALL_ENCODERS, EDSR, RDN, VGGSE, build_encoder, output_stride
from .errors import CourseError, check_image_batch, check_scale, check_size
from .files import atomic_write
from .liif import build_liif
from .memnet import build_memnet
from .metasr import build_metasr
from .progress import LazyBar
from .srgan import build_srresnet

DEFAULT_CHUNK = 32768  # query pixels per decoder call on a GPU: about 0.3 GB of activations for DIINN
SKIPS = (None, "bicubic", "bilinear")  # SRModel's optional global skip (not in DIINN)
CPU_CHUNK = 1024  # on a CPU: 1 MB per 256-wide activation, so the decoder's element-wise work stays in cache
CPU_CHUNK_HEAP = 2048  # on a CPU once allocator.reuse_heap() is in effect (the upscale command, the trainer)


def default_chunk(device) -> int:
    """Query pixels per decoder call in ``upscale``: :data:`DEFAULT_CHUNK` on a GPU; on a CPU :data:`CPU_CHUNK`, or
    :data:`CPU_CHUNK_HEAP` where ``course_lib.allocator`` keeps freed memory (outputs are the same for any chunk).

    On a 2-core CPU, 64x64 -> 512x512 with EDSR-baseline DIINN took 1.6 s in chunks of 2,048 and 3.1 s in chunks
    of 32,768: past the cache, the sines and products wait on memory. With glibc's default allocator, chunks of
    2,048 made the C library hand freed memory back to the kernel after every chunk: 48x48 -> 512x512 caused 636k
    page faults and took 2.8 s, against 7.5k and 1.9 s in chunks of 1,024; with heap reuse both ran in 1.9 s, and
    2,048 was up to 10 % faster at 1024x1024. The churn depends on the input's size and on what the process
    freed before: below 48x48 inputs chunks of 1,024 met it too (docs/RESULTS.md, twelfth session). Notebook: 04."""
    if torch.device(device).type != "cpu":
        return DEFAULT_CHUNK
    return CPU_CHUNK_HEAP if allocator.heap_reused() else CPU_CHUNK


CHECKPOINT_FORMAT = "course_lib.model/1"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


def output_size(lr_size, scale=None, size=None) -> tuple[int, int]:
    """Output size for an LR image of ``lr_size``: (round(h*s), round(w*s)) or an explicit ``size`` (lesson 04)."""
    if (scale is None) == (size is None):
        raise CourseError("give exactly one of scale=... or size=(H, W)")
    if size is not None:
        return check_size(size)
    s = check_scale(scale)
    h, w = lr_size
    out = (round(h * s), round(w * s))
    if min(out) < 1:
        raise CourseError(f"scale {s:g} turns a {h}x{w} image into {out[0]}x{out[1]}; use a larger scale")
    return out


# ---------------------------------------------------------------------------------------------- inputs and memory
def check_pixels(lr: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``lr`` (B, 3, h, w) checked for what ``upscale`` needs, converted to the model's ``dtype`` (lesson 04).

    Refused with one line: NaN or infinite pixels, and values outside [0, 1] (a 0-255 image: divide by 255; a slight
    overshoot of an unclamped interpolation: ``clamp(0, 1)``). fp16, bf16 and fp64 input is converted to ``dtype``."""
    check_image_batch(lr, "lr")
    bad = ~torch.isfinite(lr)
    if bad.any():
        raise CourseError(f"lr has {int(bad.sum())} NaN or infinite pixel values; the model needs finite values in "
                          "[0, 1] (check how the image was made)")
    lo, hi = float(lr.min()), float(lr.max())
    if hi > 1 + 1e-6:
        fix = "divide a 0-255 image by 255 (lr / 255)" if hi > 2 else "clamp it with lr.clamp(0, 1)"
        raise CourseError(f"lr has values up to {hi:g} but the model expects [0, 1]: {fix}")
    if lo < -1e-6:
        fix = "undo the normalisation (lr * 0.5 + 0.5)" if lo < -0.5 else "clamp it with lr.clamp(0, 1)"
        raise CourseError(f"lr has values down to {lo:g} but the model expects [0, 1]: {fix}")
    return lr.to(dtype)


def _encoder_maps(encoder: nn.Module) -> int:
    """Feature maps (channels at LR size) alive at the peak of an encoder's forward pass without autograd.

    RDN: the block outputs it keeps for its global fusion plus their concatenation (2 x blocks x G0), or, inside the
    last block, the other outputs plus the dense concatenation and its copy; EDSR: the head's output, the running
    block input and the block's two convolutions, product and sum (6 x C); VGG-SE (seed 000): RDN's count for its
    blocks, or at its end the fused map, the last block's output and the 4C-channel map before and after the
    PixelShuffle (12 x C); any other encoder: 8 x C."""
    c = int(getattr(encoder, "out_dim", 64))
    if isinstance(encoder, VGGSE):
        n, block = len(encoder.blocks), encoder.blocks[0]
        dense = c + len(block.convs) * block.convs[0].conv[0].out_channels
        return max(2 * n * c + 2 * c, (n - 1) * c + 2 * dense + 2 * c, 12 * c)
    if isinstance(encoder, RDN):
        n, block = len(encoder.blocks), encoder.blocks[0]
        dense = c + len(block.convs) * block.convs[0].conv[0].out_channels
        return max(2 * n * c + 2 * c, (n - 1) * c + 2 * dense + 2 * c)
    if isinstance(encoder, EDSR):
        return 6 * c
    return 8 * c


PEAK_MARGIN = 1.5  # peak_bytes: factor over its sum of tensors (see its docstring)
PEAK_FIXED = 32 * 2**20  # peak_bytes: bytes added whatever the size


def peak_bytes(model: nn.Module, lr_size, out_size, batch: int = 1, chunk: int = DEFAULT_CHUNK) -> int:
    """An upper estimate of the memory ``model.upscale`` allocates at its peak, in bytes (fp32) (lesson 04).

    The largest of three moments (``h x w`` the LR size, ``H x W`` the output): the encoder's activations
    (:func:`_encoder_maps`); the decoder's LR-size preparation (fast path: the feature map, its channels_last copy,
    the ``depth x width`` maps of the products with ``z`` and one more ``width`` map; reference path: the feature map
    and the 3x3 unfolding, 9C maps, twice); decoding: the prepared maps, the output image (3 x H x W) and one chunk's
    activations (per query: the gathered values, about 8 x width activations and the coordinates). Bicubic: the
    output and its clamped copy. The sum is multiplied by :data:`PEAK_MARGIN` and :data:`PEAK_FIXED` is added, for
    what it leaves out (convolution workspaces and reordered copies, the allocator's fragmentation, a fixed cost):
    measured as the growth of the resident memory's peak (VmHWM) during one upscale in a fresh process
    (tests/test_reliability.py; 2-core AMD EPYC, torch 2.14.1, one thread), the plain sum was 0.73-0.93 of the real
    peak for EDSR-baseline, RDN and EDSR-LESS DIINN, and the peak of the same RDN upscale varied by 9 MiB (88-97).
    The decoder's maps live on the feature grid: (stride h) x (stride w) for an encoder of output stride > 1
    (``vgg-se``, notebooks/10_seed000.ipynb)."""
    h, w = (int(v) for v in lr_size)
    H, W = (int(v) for v in out_size)
    lr_px, out_px = batch * h * w, batch * H * W
    feat_px = lr_px * output_stride(getattr(model, "encoder", None)) ** 2
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, DIINNDecoder):
        return int(PEAK_MARGIN * 4 * (2 * 3 * out_px) + PEAK_FIXED)
    c = decoder.in_dim // 9
    n = decoder.depth if decoder.mod_input != "m" else 1
    state = n * decoder.width if decoder.uses_fast_path else 9 * c
    prepare = (2 * c + state + decoder.width) if decoder.uses_fast_path else (c + 2 * 9 * c)
    per_query = state + 8 * decoder.width + 32
    queries = min(int(chunk), out_px // batch) * batch
    decode = state * feat_px + 3 * out_px + per_query * queries
    return int(PEAK_MARGIN * 4 * max(_encoder_maps(model.encoder) * lr_px, prepare * feat_px, decode) + PEAK_FIXED)


def free_bytes(device: torch.device) -> int:
    """Memory this process may still allocate on ``device``: CUDA's free memory (plus what the caching allocator
    holds unused); on a CPU the least of the system's available memory, the cgroup's limit and the address-space
    limit (``ulimit -v``). Notebook: 04_modulated_periodic_decoder."""
    if device.type == "cuda":
        reusable = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return torch.cuda.mem_get_info(device)[0] + reusable
    limits = []
    try:
        meminfo = Path("/proc/meminfo").read_text()
        limits.append(int(re.search(r"MemAvailable:\s+(\d+) kB", meminfo).group(1)) * 1024)
    except (OSError, AttributeError):
        try:
            limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            pass
    for limit_file, used_file in (("memory.max", "memory.current"),
                                  ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = Path("/sys/fs/cgroup", limit_file).read_text().strip()
            if limit.isdigit() and int(limit) < 2**60:
                limits.append(int(limit) - int(Path("/sys/fs/cgroup", used_file).read_text()))
        except (OSError, ValueError):
            pass
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft != resource.RLIM_INFINITY:
        try:
            status = Path("/proc/self/status").read_text()
            vm = int(re.search(r"VmSize:\s+(\d+) kB", status).group(1)) * 1024
            limits.append(soft - vm)
        except (OSError, AttributeError):
            pass
    return max(0, min(limits)) if limits else 2**40


def _check_fits(need: int, size, device: torch.device) -> None:
    """Refuse an upscale whose estimated peak (``need`` bytes, :func:`peak_bytes`) cannot fit, naming the size."""
    free = free_bytes(device)
    if need > 0.8 * free:
        raise CourseError(f"an output of {size[0]}x{size[1]} pixels needs about {need / 2**30:.1f} GiB at its peak "
                          f"but only {free / 2**30:.1f} GiB is free on {device.type}; ask for a smaller scale or size")


def _out_of_memory(err: BaseException) -> bool:
    """True for an allocation failure of torch (CPU or CUDA) or numpy."""
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def _memory_error(size, device: torch.device, need: int) -> CourseError:
    free = free_bytes(device)
    return CourseError(f"out of memory making an output of {size[0]}x{size[1]} pixels on {device.type} (estimated "
                       f"peak {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free now); ask for a smaller scale or "
                       "size, or a smaller chunk_size")


@contextlib.contextmanager
def _upscale_context(model: nn.Module, device: torch.device, amp: bool, size, need: int):
    """The wrapper around every ``upscale``'s rendering (``SRModel``, ``VariantSRModel``, ``ConvSR``, bicubic).

    Inside the ``with`` block: ``model`` is in eval mode (its training flag is restored afterwards, also after an
    error) and, with ``amp=True``, under autocast (``precision.autocast_dtype``: bf16 or fp16 on CUDA, bf16 on a CPU
    only where it is native; else fp32). An allocation failure in the block becomes one CourseError naming the
    output ``size`` (H, W) and the estimated peak ``need`` bytes (:func:`_memory_error`); any other error passes
    through unchanged. Notebooks: 04 (upscale), 10_seed000, 11_fixed_scale."""
    from .precision import autocast_dtype

    dtype = autocast_dtype("auto" if amp else "off", device)
    was_training = model.training
    model.eval()
    try:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            yield
    except (RuntimeError, MemoryError) as err:
        if _out_of_memory(err):
            raise _memory_error(size, device, need) from None
        raise
    finally:
        model.train(was_training)


class SRModel(nn.Module):
    """Arbitrary-scale SR model = encoder (LR image -> LR feature map) + implicit decoder (lessons 04-06).

    Inputs are RGB in [0, 1]; the model normalises internally. ``config`` is the registry entry that built it.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, config: dict | None = None, skip: str | None = None):
        super().__init__()
        if skip not in SKIPS:
            raise CourseError(f"skip must be one of {', '.join(map(str, SKIPS))}, got {skip!r}")
        self.encoder, self.decoder, self.skip = encoder, decoder, skip
        self.config = dict(config or {})

    normalize = staticmethod(images.normalize)  # [0, 1] -> [-1, 1], the space encoders read and predict returns
    denormalize = staticmethod(images.denormalize)

    def encode(self, lr: torch.Tensor) -> torch.Tensor:
        """LR image in [0, 1] -> feature map (B, C, h, w)."""
        check_image_batch(lr, "lr")
        return self.encoder(self.normalize(lr))

    def base(self, lr_normalized: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        """The global skip at query points: the LR image (normalised) interpolated at ``coord`` -> (B, Q, 3).

        ``skip="bicubic"`` or ``"bilinear"`` (``F.grid_sample``, border padding, pixel centres: on a full grid this
        is ``F.interpolate``'s upsampling). The decoder then learns only the residual, as LTE and later INR-SR models
        do. Not in DIINN (the default ``skip=None`` is the authors' model). Notebook: 06_training."""
        grid = coord.flip(-1).unsqueeze(1).to(lr_normalized.dtype)  # (B, 1, Q, 2) as (x, y)
        out = F.grid_sample(lr_normalized, grid, mode=self.skip, padding_mode="border", align_corners=False)
        return out[:, :, 0].transpose(1, 2)

    def query(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, lr=None) -> torch.Tensor:
        """Decoder output (normalised space, unclamped) at query points: (B, Q, 2) x 2 -> (B, Q, 3).

        A model with a global skip also needs ``lr``, the normalised LR image (B, 3, h, w)."""
        pred = self.decoder(feat, coord, cell)
        if self.skip is None:
            return pred
        if lr is None:
            raise CourseError("this model adds a skip from the LR image: call query(feat, coord, cell, lr=...) "
                              "with the normalised LR image")
        return pred + self.base(lr, coord).to(pred.dtype)

    def predict(self, lr: torch.Tensor, size) -> torch.Tensor:
        """Every pixel of an (H, W) output in normalised space, unclamped, differentiable: (B, 3, H, W).

        This is what training uses (L1 against the normalised HR image).
        """
        H, W = check_size(size)
        feat = self.encode(lr)
        b = lr.shape[0]
        coord = grid_chunk((H, W), 0, H * W, lr.device, torch.float64).expand(b, -1, -1)
        cell = make_cell((H, W), (b, H * W), lr.device)
        return self.query(feat, coord, cell, lr=self.normalize(lr)).transpose(1, 2).reshape(b, 3, H, W)

    def forward(self, lr: torch.Tensor, size) -> torch.Tensor:
        """SR image in [0, 1] (clamped) of size (H, W)."""
        return self.denormalize(self.predict(lr, size)).clamp(0, 1)

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor, scale=None, size=None, chunk_size: int | None = None,
                amp: bool = False, progress: bool | None = None) -> torch.Tensor:
        """Upscale ``lr`` (B, 3, h, w) in [0, 1] by any real ``scale`` > 0 or to ``size`` = (H, W) (lesson 04).

        The decoder runs on ``chunk_size`` query pixels at a time (default :func:`default_chunk` of the device), so
        peak memory does not grow with the output beyond the output image itself; the result equals the unchunked
        forward. ``lr`` must be finite and in [0, 1] (:func:`check_pixels`); fp16/bf16/fp64 input is computed in the
        model's dtype and returned in the input's. An upscale whose estimated peak (:func:`peak_bytes`) does not fit
        in free memory is refused before it starts, and an allocation failure becomes one CourseError naming the size.
        ``amp=True`` runs under autocast: bf16 or fp16 on CUDA, bf16 on a CPU only where it is native
        (``precision.autocast_dtype``; else fp32). ``progress``: a bar over chunks (None: only when the first chunk
        says the whole upscale will take more than 3 seconds; False: never). Runs in eval mode and restores the
        training flag (:func:`_upscale_context`).
        """
        in_dtype = lr.dtype if isinstance(lr, torch.Tensor) else None
        param = next(self.parameters(), None)
        lr = check_pixels(lr, param.dtype if param is not None else torch.float32)
        H, W = output_size(lr.shape[-2:], scale, size)
        chunk = default_chunk(lr.device) if chunk_size is None else chunk_size
        if int(chunk) < 1:
            raise CourseError(f"chunk_size must be a positive number of query pixels, got {chunk_size}")
        chunk = int(chunk)
        need = peak_bytes(self, lr.shape[-2:], (H, W), lr.shape[0], chunk)
        _check_fits(need, (H, W), lr.device)
        with _upscale_context(self, lr.device, amp, (H, W), need):
            out = self._upscale_chunks(lr, H, W, chunk, progress)
        return out.to(in_dtype)

    def _upscale_chunks(self, lr, H: int, W: int, chunk: int, progress) -> torch.Tensor:
        """The body of :meth:`upscale` (inputs checked; eval mode and autocast set by :func:`_upscale_context`):
        encode once, decode ``chunk`` queries at a time."""
        b, n = lr.shape[0], H * W
        sync = (lambda: torch.cuda.synchronize(lr.device)) if lr.device.type == "cuda" else None
        state = self.decoder.prepare(self.encode(lr))
        out = torch.empty(b, 3, n, device=lr.device, dtype=lr.dtype)
        lr_normalized = self.normalize(lr) if self.skip is not None else None
        with LazyBar(-(-n // chunk), f"upscale to {W}x{H}", "chunk", progress, sync=sync) as bar:
            for start in range(0, n, chunk):
                stop = min(start + chunk, n)
                coord = grid_chunk((H, W), start, stop, lr.device, torch.float64).expand(b, -1, -1)
                cell = make_cell((H, W), (b, stop - start), lr.device)
                pred = self.decoder.query(state, coord, cell)
                if self.skip is not None:
                    pred = pred + self.base(lr_normalized, coord).to(pred.dtype)
                out[:, :, start:stop] = self.denormalize(pred.float()).clamp(0, 1).transpose(1, 2)
                bar.update()
        return out.reshape(b, 3, H, W)


class BicubicModel(nn.Module):
    """Bicubic interpolation with the model interface: the baseline row of every table (lesson 00).

    torch's antialiased bicubic (a = -0.5, the kernel of torchvision's ``Resize``, which the authors used for their
    Bicubic rows), clamped to [0, 1], not rounded.
    """

    def __init__(self):
        super().__init__()
        self.config = {"name": "bicubic"}

    def forward(self, lr: torch.Tensor, size) -> torch.Tensor:
        check_image_batch(lr, "lr")
        return F.interpolate(lr, size=check_size(size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)

    @torch.no_grad()
    def upscale(self, lr, scale=None, size=None, chunk_size: int | None = None, amp: bool = False,
                progress: bool | None = None):
        """``SRModel.upscale``'s interface and input checks; ``chunk_size`` (checked) and ``amp`` change nothing."""
        in_dtype = lr.dtype if isinstance(lr, torch.Tensor) else None
        lr = check_pixels(lr)
        if chunk_size is not None and int(chunk_size) < 1:
            raise CourseError(f"chunk_size must be a positive number of query pixels, got {chunk_size}")
        H, W = output_size(lr.shape[-2:], scale, size)
        need = peak_bytes(self, lr.shape[-2:], (H, W), lr.shape[0])
        _check_fits(need, (H, W), lr.device)
        with _upscale_context(self, lr.device, False, (H, W), need):
            return self.forward(lr, (H, W)).to(in_dtype)


# ---------------------------------------------------------------------------------------------- the registry
REGISTRY: dict = {}


def register(name: str):
    """Decorator: make ``build(name, **kwargs)`` call the decorated builder (lesson 09 adds LIIF, Meta-SR...)."""

    def wrap(fn):
        REGISTRY[name] = fn
        return fn

    return wrap


@register("diinn")
def build_diinn(encoder: str = "rdn", variant: str = "f", scale_mode: str = "area", skip: str | None = None) -> SRModel:
    """DIINN: an encoder + the modulated periodic decoder; ``variant`` "a".."f" is Table 5's row (f = final).

    ``skip="bicubic"`` (or ``"bilinear"``) adds the interpolated LR image to the decoder's output, so the network
    learns only the residual (:meth:`SRModel.base`; not the authors' model, off by default)."""
    if variant not in VARIANTS:
        raise CourseError(f"unknown DIINN variant {variant!r}; choose one of: {', '.join(VARIANTS)} (f = final model)")
    enc = build_encoder(encoder)
    mod_input, pos_init = VARIANTS[variant]
    dec = DIINNDecoder(in_dim=9 * enc.out_dim, mod_input=mod_input, pos_init=pos_init, scale_mode=scale_mode)
    return SRModel(enc, dec, skip=skip)


@register("bicubic")
def build_bicubic() -> BicubicModel:
    """The bicubic baseline (no parameters)."""
    return BicubicModel()


register("liif")(build_liif)  # lesson 09: LIIF, its ablations (one flag each) and seed 003's LIIF+SIREN (mlp="siren")
register("metasr")(build_metasr)  # lesson 09: Meta-SR's Pos2Weight as the LIIF code re-implements it
register("memnet")(build_memnet)  # lesson 11: MemNet (seed 004), pre-upsampling, Y channel + bicubic CbCr
register("srresnet")(build_srresnet)  # lesson 11: SRGAN's generator (seed 004), fixed x4


@register("diinn-var")
def build_diinn_var(model: str = "F", encoder: str | None = None, dropout: float | None = None,
                    skip: str | None = None) -> nn.Module:
    """Seed paper 000's DIINN variations, models "A".."H" (``course_lib.diinn_var.build_diinn_var``; derived in
    notebooks/10_seed000.ipynb). ``encoder=None``: the model's own (RDN for A-F, VGG-SE for G and H)."""
    from .diinn_var import build_diinn_var as build_variation  # diinn_var subclasses SRModel: imported late

    return build_variation(model=model, encoder=encoder, dropout=dropout, skip=skip)


def build(name: str, **kwargs) -> nn.Module:
    """Build a model by registry name, e.g. ``build("diinn", encoder="edsr-baseline", variant="f")`` (lesson 04).

    The returned model's ``config`` holds the name and every argument (defaults filled in), enough to rebuild it.
    """
    if name not in REGISTRY:
        raise CourseError(f"unknown model {name!r}; choose one of: {', '.join(sorted(REGISTRY))}")
    params = inspect.signature(REGISTRY[name]).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = ", ".join(params) or "none"
        raise CourseError(f"model {name!r} has no option {', '.join(unknown)}; valid options: {valid}")
    if kwargs.get("encoder") is not None and kwargs["encoder"] not in ALL_ENCODERS:
        raise CourseError(f"unknown encoder {kwargs['encoder']!r}; choose one of: {', '.join(ALL_ENCODERS)}")
    config = {"name": name, **{k: p.default for k, p in params.items()}, **kwargs}
    config = {k: v for k, v in config.items() if v is not None}  # options left at None are not recorded
    model = REGISTRY[name](**kwargs)
    model.config = config
    return model


def describe(config: dict) -> str:
    """A model config as one readable name, e.g. ``diinn(encoder=rdn, variant=f, scale_mode=area)``."""
    args = ", ".join(f"{k}={v}" for k, v in config.items() if k != "name")
    return f"{config.get('name', '?')}({args})"


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (lesson 04)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------- save and load
def atomic_save(obj, path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename: a crash never leaves half a file.

    The file's mode follows the umask like any new file (``course_lib.files.atomic_write``); a killed save leaves a
    ``<name>.<random>.tmp`` file that the trainer removes when the next run starts. Notebook: 06_training."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def save(model: nn.Module, path, extra: dict | None = None, half: bool = False) -> Path:
    """Save a model with its config (atomically). ``half=True`` stores fp16 weights (shipped checkpoints)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
             for k, v in model.state_dict().items()}
    return atomic_save({"format": CHECKPOINT_FORMAT, "config": dict(model.config), "state_dict": state,
                        "extra": dict(extra or {})}, path)


def read_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save` (or the trainer) safely (``weights_only=True``).

    A missing file, a directory, an unreadable file, or one whose ``config`` or ``state_dict`` is not a dict raises
    one CourseError naming the file. Notebook: 06_training."""
    path = Path(path)
    if path.is_dir():
        raise CourseError(f"checkpoint {path} is a directory; pass the path of a .pt file inside it (e.g. last.pt)")
    if not path.is_file():
        raise CourseError(f"checkpoint {path} does not exist; pass the path of a .pt file written by course_lib")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise CourseError(f"{path} is not a course_lib checkpoint ({type(err).__name__}); "
                          f"pass a file written by course_lib.models.save or the trainer") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise CourseError(f"{path} is not a course_lib model checkpoint (no config/state_dict); "
                          f"pass a file written by course_lib.models.save or the trainer")
    for key in ("config", "state_dict"):
        if not isinstance(ckpt[key], dict):
            raise CourseError(f"{path} is damaged: its {key} is a {type(ckpt[key]).__name__}, not a dict; "
                              "pass a file written by course_lib.models.save or the trainer")
    if not isinstance(ckpt["config"].get("name"), str):
        raise CourseError(f"{path} is damaged: its config names no model ('name' missing); "
                          "pass a file written by course_lib.models.save or the trainer")
    return ckpt


def _weights_mismatch(model: nn.Module, state: dict) -> str | None:
    """What keeps ``state`` from loading into ``model`` (missing, unexpected or mis-shaped weights), or None."""
    ref = model.state_dict()
    missing = [k for k in ref if k not in state]
    unexpected = [k for k in state if k not in ref]
    not_tensor = [k for k in state if k in ref and not isinstance(state[k], torch.Tensor)]
    shapes = [k for k in state if k in ref and k not in not_tensor and state[k].shape != ref[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weights (e.g. {unexpected[0]})")
    if not_tensor:
        problems.append(f"{not_tensor[0]} is not a tensor")
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} weights of another shape (e.g. {k}: {tuple(state[k].shape)} in the file, "
                        f"{tuple(ref[k].shape)} in the model)")
    return "; ".join(problems) or None


def load_state(model: nn.Module, ckpt_or_path, source=None) -> nn.Module:
    """Load weights into an existing model, refusing a checkpoint of another architecture (naming both) or weights
    that do not match the model (missing, unexpected, other shapes: one line naming the file ``source``).

    Notebook: 06_training."""
    ckpt = ckpt_or_path if isinstance(ckpt_or_path, dict) else read_checkpoint(ckpt_or_path)
    where = source or (ckpt_or_path if not isinstance(ckpt_or_path, dict) else "the checkpoint")
    if dict(ckpt["config"]) != dict(model.config):
        raise CourseError(f"checkpoint is for {describe(ckpt['config'])} but the model is {describe(model.config)}; "
                          f"build the model with the checkpoint's config (course_lib.models.load does that)")
    problem = _weights_mismatch(model, ckpt["state_dict"])
    if problem:
        raise CourseError(f"{where}: its weights do not match its config {describe(ckpt['config'])}: {problem}; "
                          "the file is damaged or was edited: use another checkpoint")
    ref = model.state_dict()
    state = {k: v.to(ref[k].dtype) for k, v in ckpt["state_dict"].items()}
    model.load_state_dict(state)
    return model


def load(path, device=None) -> nn.Module:
    """Rebuild the architecture stored in a checkpoint and load its weights (fp32), in eval mode.

    Any problem (no such model or option, weights that do not fit) is one CourseError naming the file."""
    ckpt = read_checkpoint(path)
    config = dict(ckpt["config"])
    try:
        model = build(config.pop("name"), **config)
    except CourseError as err:
        raise CourseError(f"{path}: its config cannot be built: {err}") from None
    except TypeError as err:  # a builder's argument of the wrong type
        raise CourseError(f"{path}: its config {describe(ckpt['config'])} cannot be built ({err})") from None
    load_state(model, ckpt, source=path)
    return model.to(device or "cpu").eval()


# ---------------------------------------------------------------------------------------------- pretrained
def _index() -> dict:
    index = PRETRAINED_DIR / "index.json"
    return json.loads(index.read_text()) if index.is_file() else {}


def list_pretrained() -> dict:
    """The checkpoints shipped with the course: {name: entry with file, sha256, config, results, trained}."""
    return _index()


def best_pretrained(family: str = "diinn") -> str | None:
    """The shipped checkpoint of model ``family`` with the highest Set5 x4 PSNR (paper protocol), or None.

    This is what ``python -m course_lib upscale`` uses when no model is named (lesson 04)."""
    def set5_x4(entry):
        rows = [r for r in entry.get("results", []) if r.get("dataset") == "Set5" and float(r.get("scale")) == 4.0
                and r.get("protocol", "paper") == "paper"]
        return rows[0]["psnr"] if rows else float("-inf")

    candidates = {n: e for n, e in _index().items() if e.get("config", {}).get("name") == family}
    return max(candidates, key=lambda n: set5_x4(candidates[n])) if candidates else None


def load_pretrained(name: str, device=None) -> nn.Module:
    """Load a shipped checkpoint by name, verifying its sha256 (lesson 06)."""
    index = _index()
    if name not in index:
        known = ", ".join(index) or "none are shipped yet"
        raise CourseError(f"no pretrained model named {name!r}; known: {known}")
    entry = index[name]
    path = PRETRAINED_DIR / entry["file"]
    if not path.is_file():
        raise CourseError(f"pretrained file {path} is missing; reinstall the course or re-clone the repository")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise CourseError(f"pretrained file {path} is corrupt (sha256 {digest[:12]}... != {entry['sha256'][:12]}...); "
                          f"re-download it")
    return load(path, device)


def resolve(model_or_name, device=None) -> nn.Module:
    """A model from: a model object, ``"bicubic"``, a pretrained name, or a checkpoint path."""
    if isinstance(model_or_name, nn.Module):
        return model_or_name
    name = str(model_or_name)
    if name == "bicubic":
        return build("bicubic").to(device or "cpu")
    if name in _index():
        return load_pretrained(name, device)
    if Path(name).exists():
        return load(name, device)
    raise CourseError(f"{name!r} is neither 'bicubic', a pretrained name ({', '.join(_index()) or 'none shipped'}) "
                      f"nor an existing checkpoint file")


def cli_list_pretrained(argv=None) -> int:
    """``python -m course_lib list-pretrained [NAME ...]``: every shipped checkpoint (or the named ones) and what it
    reaches; an unknown name is refused in one line that lists the shipped ones."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_lib list-pretrained",
                                     description="The checkpoints shipped with the course and their stored results.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these checkpoints (default: all)")
    args = parser.parse_args(argv)
    index = _index()
    unknown = [n for n in args.names if n not in index]
    if unknown:
        raise CourseError(f"no shipped checkpoint named {', '.join(map(repr, unknown))}; shipped: "
                          f"{', '.join(index) or 'none yet'}")
    if not index:
        print("no pretrained checkpoints are shipped yet")
        return 0
    for name, entry in index.items():
        if args.names and name not in args.names:
            continue
        print(f"{name}: {describe(entry['config'])}, {entry.get('trained', '')}")
        for row in entry.get("results", []):
            where = f"{row['dataset']} x{row['scale']:g} ({row.get('protocol', 'paper')})"
            print(f"    {where}: PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f}")
    return 0
