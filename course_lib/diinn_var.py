"""Seed paper 000's DIINN variations: models A-H, a dilated SiLU decoder, tiles with halos  (lesson 10).

Seed paper 000 (Koska & Arviv) changes DIINN in several ways at once and trains eight models, A-H (its Sec. 5.3).
Everything here follows the authors' own code (``src/models/components/diinn.py``, ``updated_new_encoder.py``) as the
reference note ``seed-variations.md`` sec. 1 pins it down; **DEFAULT** marks a choice no source settles. Derived in
notebooks/10_seed000.ipynb (lesson 10).

The decoder (:class:`VariantDecoder`) works on whole grids of HR pixels, as their ``NewImplicitDecoder`` does:

* content ``z``: the 3x3-unfolded feature map (9C = 576 channels), upsampled to the output grid, **bilinear**
  (``F.interpolate``, align_corners False; their code) or **nearest-exact** (the official DIINN);
* position ``p = [local_row, local_col, scale]``: the local coordinate inside the *nearest* feature pixel (their code
  keeps nearest-exact for it even when ``z`` is bilinear) and the area ratio (h_f w_f) / (H W), where (h_f, w_f) is
  the **feature** grid: 4/s^2 with the VGG-SE encoder, whose output stride is 2;
* layer i = 0..3 with dilation d_i = 1, 2, 4, 8: K_i and Q_i are 3x3 convolutions (dilation = padding = d_i, zero
  padding) or 1x1 convolutions, each followed by its activation and Dropout(p); M_i ("adaptive modulation") is a
  1x1 convolution 256 -> 256 + SiLU + Dropout(p):
  ``k_0 = K_0(z)``, ``q_0 = k_0 * Q_0(p)``, ``m = M_0(k_0)``; for i >= 1: ``k_i = K_i([q_{i-1}, z])``,
  ``q_i = k_i * Q_i(q_{i-1})``, ``m += M_i(k_i)``; output: conv1x1 256 -> 3 on ``q_3 * m`` (on ``q_3`` without M);
* activations: ``"silu"`` (SiLU in K and Q, their final code) or ``"relu-sin"`` (ReLU in K, sine in Q: DIINN's);
  no normalisation layer and PyTorch's default initialisation everywhere (their code).

Models (reference note, table 1.2; decoder parameters for a 64-channel encoder):

    encoder  K/Q kernels     K/Q activations  M    dropout  feature upsampling  decoder parameters
A   RDN      1x1             ReLU/sine        yes  0        nearest-exact       1,249,795
B   RDN      3x3 d=1,2,4,8   ReLU/sine        no   0        nearest-exact       8,857,091
C   RDN      3x3 d=1,2,4,8   SiLU/SiLU        yes  0.5      bilinear            9,120,259
D   as C                                           0.3                          9,120,259
E   as C                                           0.1                          9,120,259
F   as C                                           0                            9,120,259
G   VGG-SE   DIINN's decoder (f) (course_lib.decoders.DIINNDecoder)             986,627
H   VGG-SE   as F                                                               9,120,259

**DEFAULT (D) for A and B** (reference note): the official decoder plus the one named change; M uses SiLU (the only
M code there is); the features stay nearest-exact, as in the official decoder. G is DIINN's decoder (f) unchanged
(the table; built as ``DIINNDecoder``, with its exact fast path). C-F differ only by ``dropout`` (their code's
``dropout_prob``: element-wise ``nn.Dropout`` after each of the 12 K, Q and M layers, none on the output); only H's
code survives.

**Whole grids, tiles and halos.** A 3x3 dilated decoder is not a per-pixel function: an output pixel depends on the
inputs within 15 HR pixels (radius 1 + 2 + 4 + 8; a 31 x 31 field), so it cannot be queried at scattered points
(``query`` refuses; train with ``data.recipe: authors``). ``upscale`` still bounds its memory: it cuts the output
into tiles and computes each on a window enlarged by a **halo** of ``decoder.radius`` pixels (fewer at the image
border, where the zero padding of one pass applies), then keeps the tile's core; the result equals the whole image
(tested to 1e-5). The authors instead evaluated narrow **column strips** with zero padding at their sides and no
halo (their ``batched_step``, ``eval_bsize // H`` columns): :func:`upscale_strips` reproduces it, and its output
differs from the whole image within 15 pixels of every strip border (the seams of notebook 10).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .coords import local_coord, nearest_index, pixel_centers, scale_channel
from .decoders import DIINNDecoder
from .encoders import ALL_ENCODERS, build_encoder, output_stride
from .errors import CourseError, check_size
from .features import check_feature_map, query_nearest, unfold3x3
from .models import (
    PEAK_FIXED,
    PEAK_MARGIN,
    SRModel,
    _check_fits,
    _encoder_maps,
    _upscale_context,
    check_pixels,
    output_size,
)
from .progress import LazyBar

ACTIVATIONS = ("relu-sin", "silu")
UPSAMPLINGS = ("nearest-exact", "bilinear")
DILATIONS = (1, 2, 4, 8)
DEFAULT_TILE = {"cpu": 128}  # output pixels per tile side in upscale; 512 on other devices
GPU_TILE = 512
STRIP_BSIZE = 3000  # the authors' eval_bsize: strips of eval_bsize // H columns

# letter -> (encoder, decoder options or None for DIINN's decoder (f)); reference note sec. 1.2
_SILU = {"kernel": 3, "activation": "silu", "modulation": True, "upsample": "bilinear"}
MODELS = {
    "A": ("rdn", {"kernel": 1, "activation": "relu-sin", "modulation": True, "dropout": 0.0,
                  "upsample": "nearest-exact"}),
    "B": ("rdn", {"kernel": 3, "activation": "relu-sin", "modulation": False, "dropout": 0.0,
                  "upsample": "nearest-exact"}),
    "C": ("rdn", {**_SILU, "dropout": 0.5}),
    "D": ("rdn", {**_SILU, "dropout": 0.3}),
    "E": ("rdn", {**_SILU, "dropout": 0.1}),
    "F": ("rdn", {**_SILU, "dropout": 0.0}),
    "G": ("vgg-se", None),
    "H": ("vgg-se", {**_SILU, "dropout": 0.0}),
}


# ---------------------------------------------------------------------------------------------- sampling a window
def bilinear_taps(n_in: int, n_out: int, start: int = 0, stop: int | None = None):
    """The two source pixels and the weight of the second for output pixels ``start..stop-1`` of a bilinear
    resize ``n_in -> n_out`` (align_corners False, ``F.interpolate``'s rule): ``src = (i + 0.5) n_in / n_out - 0.5``
    clamped at 0, ``i0 = floor(src)``, ``i1 = min(i0 + 1, n_in - 1)``, ``w1 = src - i0``. Returns (i0, i1, w1),
    w1 in float64. Notebook: 10_seed000."""
    stop = n_out if stop is None else stop
    i = torch.arange(start, stop, dtype=torch.float64)
    src = ((i + 0.5) * (n_in / n_out) - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    return i0, (i0 + 1).clamp(max=n_in - 1), src - i0.double()


def upsample_window(feat: torch.Tensor, size, rows=None, cols=None, mode: str = "bilinear") -> torch.Tensor:
    """The rows ``rows = (r0, r1)`` and columns ``cols`` of ``F.interpolate(feat, size, mode)`` without building
    the rest: (B, C, h, w) -> (B, C, r1 - r0, c1 - c0), ``mode`` "nearest-exact" or "bilinear" (align_corners
    False). The whole window equals ``F.interpolate`` (tests). Notebook: 10_seed000."""
    if mode not in UPSAMPLINGS:
        raise CourseError(f"upsampling must be one of {UPSAMPLINGS}, got {mode!r}")
    H, W = check_size(size)
    h, w = feat.shape[-2:]
    r0, r1 = rows or (0, H)
    c0, c1 = cols or (0, W)
    dev = feat.device
    if mode == "nearest-exact":
        ri, ci = nearest_index(h, H, dev)[r0:r1], nearest_index(w, W, dev)[c0:c1]
        return feat.index_select(2, ri).index_select(3, ci)
    i0, i1, wr = (t.to(dev) for t in bilinear_taps(h, H, r0, r1))
    wr = wr.to(feat.dtype)[:, None]
    x = feat.index_select(2, i0) * (1 - wr) + feat.index_select(2, i1) * wr
    j0, j1, wc = (t.to(dev) for t in bilinear_taps(w, W, c0, c1))
    wc = wc.to(feat.dtype)
    return x.index_select(3, j0) * (1 - wc) + x.index_select(3, j1) * wc


def local_axis(n_feat: int, n_out: int, start: int, stop: int, device=None) -> torch.Tensor:
    """Local coordinate along one axis of output pixels ``start..stop-1``: (centre - centre of the nearest feature
    pixel) x ``n_feat`` (float64), as ``coords.local_coord`` and the authors' ``_make_pos_encoding``. Notebook 10."""
    centre = pixel_centers(n_out, device, torch.float64)[start:stop]
    nearest = pixel_centers(n_feat, device, torch.float64)[nearest_index(n_feat, n_out, device)[start:stop]]
    return (centre - nearest) * n_feat


# ---------------------------------------------------------------------------------------------- the decoder
class VariantDecoder(nn.Module):
    """Seed 000's decoder family on whole grids (module docstring): models A-F and H. Notebook: 10_seed000.

    ``in_dim`` 9C (576), ``width`` 256, ``kernel`` 3 (dilations 1, 2, 4, 8) or 1, ``activation`` "silu" or
    "relu-sin", ``modulation`` (the M branch), ``dropout`` p in [0, 1), ``upsample`` "bilinear" or
    "nearest-exact". ``radius``: how far (HR pixels) an output depends on its inputs (15 for 3x3, 0 for 1x1).
    Interface: ``state = prepare(feat)``, ``render(state, (H, W), rows, cols)`` -> (B, 3, rows, cols) for a
    window (zero padding at the window's edges, exactly the whole grid when the window is the image);
    ``query(state, coord, cell)`` for 1x1 kernels only."""

    def __init__(self, in_dim: int = 576, width: int = 256, kernel: int = 3, activation: str = "silu",
                 modulation: bool = True, dropout: float = 0.0, upsample: str = "bilinear",
                 dilations=DILATIONS):
        super().__init__()
        if kernel not in (1, 3):
            raise CourseError(f"kernel must be 1 (per-pixel, as DIINN) or 3 (dilated), got {kernel!r}")
        if activation not in ACTIVATIONS:
            raise CourseError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if upsample not in UPSAMPLINGS:
            raise CourseError(f"upsample must be one of {UPSAMPLINGS}, got {upsample!r}")
        dropout = check_dropout(dropout)
        if int(in_dim) < 9 or int(in_dim) % 9:
            raise CourseError(f"in_dim must be 9 x the encoder's channels (the 3x3 unfolding), got {in_dim}")
        dilations = tuple(int(d) for d in dilations)
        if not dilations or min(dilations) < 1:
            raise CourseError(f"dilations must be positive integers, one per layer, got {dilations!r}")
        self.in_dim, self.width, self.kernel, self.activation = int(in_dim), int(width), int(kernel), activation
        self.modulation, self.dropout_p, self.upsample = bool(modulation), dropout, upsample
        self.dilations = dilations if kernel == 3 else (1,) * len(dilations)
        self.depth = len(dilations)

        def conv(c_in, d):
            return nn.Conv2d(c_in, self.width, kernel, padding=d * (kernel // 2), dilation=d)

        w = self.width
        self.K = nn.ModuleList([conv(self.in_dim if i == 0 else w + self.in_dim, d)
                                for i, d in enumerate(self.dilations)])
        self.Q = nn.ModuleList([conv(3 if i == 0 else w, d) for i, d in enumerate(self.dilations)])
        self.M = nn.ModuleList([nn.Conv2d(w, w, 1) for _ in self.dilations]) if self.modulation else None
        self.last_layer = nn.Conv2d(w, 3, 1)
        self.dropout = nn.Dropout(dropout)

    @property
    def radius(self) -> int:
        """HR pixels on each side that one output pixel depends on: sum of dilation x (kernel // 2) (15 or 0)."""
        return sum(d * (self.kernel // 2) for d in self.dilations)

    def _act_k(self, x):
        return torch.relu(x) if self.activation == "relu-sin" else F.silu(x)

    def _act_q(self, x):
        return torch.sin(x) if self.activation == "relu-sin" else F.silu(x)

    def _drop(self, x):
        return self.dropout(x) if self.dropout_p > 0 else x

    def synth(self, z: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The network on input grids: ``z`` (B, 9C, h', w'), ``p`` (B, 3, h', w') -> (B, 3, h', w') (normalised
        space). Zero padding at the grid's edges (module docstring's recurrence). Notebook: 10_seed000."""
        drop = self._drop
        k = drop(self._act_k(self.K[0](z)))
        q = k * drop(self._act_q(self.Q[0](p)))
        m = drop(F.silu(self.M[0](k))) if self.modulation else None
        for i in range(1, self.depth):
            k = drop(self._act_k(self.K[i](torch.cat([q, z], dim=1))))
            q = k * drop(self._act_q(self.Q[i](q)))
            if self.modulation:
                m = m + drop(F.silu(self.M[i](k)))
        return self.last_layer(q * m if self.modulation else q)

    def prepare(self, feat: torch.Tensor) -> dict:
        """Work done once per image: ``{"unfolded": (B, 9C, h_f, w_f)}`` on the feature grid. Notebook 10."""
        check_feature_map(feat, self.in_dim // 9)
        return {"unfolded": unfold3x3(feat)}

    def inputs(self, state: dict, size, rows=None, cols=None):
        """``z`` (B, 9C, n_r, n_c) and ``p`` (B, 3, n_r, n_c) for output rows ``rows = (r0, r1)`` and columns
        ``cols`` of an (H, W) output (default: all). Notebook: 10_seed000."""
        u = state["unfolded"]
        H, W = check_size(size)
        (r0, r1), (c0, c1) = rows or (0, H), cols or (0, W)
        hf, wf = u.shape[-2:]
        z = upsample_window(u, (H, W), (r0, r1), (c0, c1), self.upsample)
        pr = local_axis(hf, H, r0, r1, u.device)[:, None].expand(r1 - r0, c1 - c0)
        pc = local_axis(wf, W, c0, c1, u.device)[None, :].expand(r1 - r0, c1 - c0)
        ratio = torch.full_like(pr, hf * wf / (H * W))  # the area ratio on the feature grid (authors' code)
        p = torch.stack([pr, pc, ratio]).to(z.dtype)[None].expand(u.shape[0], -1, -1, -1)
        return z, p

    def render(self, state: dict, size, rows=None, cols=None) -> torch.Tensor:
        """The output (normalised space) on the window ``rows`` x ``cols`` of an (H, W) grid, computed on that
        window alone (zero padding at its edges): (B, 3, n_r, n_c). Notebook: 10_seed000."""
        return self.synth(*self.inputs(state, size, rows, cols))

    def query(self, state: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Per-point queries (B, Q, 2) -> (B, Q, 3), for 1x1 kernels only (a 3x3 decoder needs whole grids)."""
        if self.kernel != 1:
            raise CourseError("a decoder with 3x3 kernels needs its neighbouring queries, not scattered points: use "
                              "model.predict / model.upscale, and train it with data.recipe: authors")
        u = state["unfolded"]
        hf, wf = u.shape[-2:]
        if self.upsample == "nearest-exact":
            z = query_nearest(u, coord)
        else:  # grid_sample bilinear with border padding = F.interpolate's bilinear at pixel centres
            grid = coord.flip(-1).unsqueeze(1).to(u.dtype)
            z = F.grid_sample(u, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]
            z = z.transpose(1, 2)
        p = torch.cat([local_coord(coord.double(), (hf, wf)), scale_channel((hf, wf), cell.double(), "area")], -1)
        out = self.synth(z.transpose(1, 2)[..., None], p.to(z.dtype).transpose(1, 2)[..., None])
        return out[..., 0].transpose(1, 2)

    def forward(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query(self.prepare(feat), coord, cell)


def check_dropout(p) -> float:
    """A dropout probability in [0, 1), or one CourseError. Notebook: 10_seed000."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise CourseError(f"dropout must be a probability in [0, 1), got {p!r}") from None
    if not 0.0 <= p < 1.0:
        raise CourseError(f"dropout must be a probability in [0, 1) (the paper uses 0, 0.1, 0.3, 0.5), got {p:g}")
    return p


# ---------------------------------------------------------------------------------------------- the model
class VariantSRModel(SRModel):
    """``SRModel`` for a whole-grid decoder (:class:`VariantDecoder`): ``predict`` renders the whole grid and
    ``upscale`` renders tiles with halos. Encoder, normalisation, ``skip``, ``query`` (1x1 kernels), ``save`` and
    ``load`` are ``SRModel``'s. Notebook: 10_seed000."""

    def _skip_window(self, lr_normalized, size, rows, cols) -> torch.Tensor:
        """The global skip (``SRModel.base``) on a window: (B, 3, n_r, n_c)."""
        H, W = size
        (r0, r1), (c0, c1) = rows, cols
        yy = pixel_centers(H, lr_normalized.device, torch.float64)[r0:r1]
        xx = pixel_centers(W, lr_normalized.device, torch.float64)[c0:c1]
        coord = torch.stack(torch.meshgrid(yy, xx, indexing="ij"), -1).reshape(1, -1, 2)
        b = lr_normalized.shape[0]
        out = self.base(lr_normalized, coord.expand(b, -1, -1))
        return out.transpose(1, 2).reshape(b, 3, r1 - r0, c1 - c0)

    def _render(self, state, lr_normalized, size, rows, cols) -> torch.Tensor:
        out = self.decoder.render(state, size, rows, cols)
        if self.skip is not None:
            out = out + self._skip_window(lr_normalized, size, rows, cols).to(out.dtype)
        return out

    def predict(self, lr: torch.Tensor, size) -> torch.Tensor:
        """Every pixel of an (H, W) output in normalised space, unclamped, differentiable (one whole grid)."""
        H, W = check_size(size)
        state = self.decoder.prepare(self.encode(lr))
        lr_n = self.normalize(lr) if self.skip is not None else None
        return self._render(state, lr_n, (H, W), (0, H), (0, W))

    def peak_bytes(self, lr_size, out_size, batch: int, tile: int, halo: int) -> int:
        """Estimated peak memory (fp32) of :meth:`upscale`: the largest of the encoder's maps
        (``models._encoder_maps``), the unfolding (the feature map and 2 x 9C maps on the feature grid), and
        decoding (the unfolded map, the output, and one window of (tile + 2 halo)^2 pixels x (3 x 9C + 8 x width)
        floats: the upsampled ``z`` and its temporaries, the concatenation, k, q, m and the layer outputs), with
        ``models.peak_bytes``'s margins. Notebook: 10_seed000."""
        h, w = (int(v) for v in lr_size)
        H, W = (int(v) for v in out_size)
        dec, stride = self.decoder, output_stride(self.encoder)
        lr_px, feat_px, out_px = batch * h * w, batch * h * w * stride**2, batch * H * W
        c = dec.in_dim // 9
        win = batch * min(H, tile + 2 * halo) * min(W, tile + 2 * halo)
        decode = dec.in_dim * feat_px + 3 * out_px + win * (3 * dec.in_dim + 8 * dec.width)
        peak = max(_encoder_maps(self.encoder) * lr_px, (c + 2 * dec.in_dim) * feat_px, decode)
        return int(PEAK_MARGIN * 4 * peak + PEAK_FIXED)

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor, scale=None, size=None, chunk_size: int | None = None, amp: bool = False,
                progress: bool | None = None, halo: int | None = None) -> torch.Tensor:
        """Upscale ``lr`` (B, 3, h, w) in [0, 1] by ``scale`` or to ``size`` = (H, W), tile by tile (lesson 10).

        ``chunk_size``: output pixels per tile core (tiles of side isqrt(chunk_size); default 128 x 128 on a CPU,
        512 x 512 elsewhere); each tile is computed on a window with ``halo`` extra pixels per side (default and
        minimum ``decoder.radius``: 15 for 3x3 kernels, 0 for 1x1), so the result equals the whole grid
        (``predict``) whatever the tiles. Runs in eval mode (dropout off) and restores the training flag. Input
        checks, ``amp`` and the memory refusal as ``SRModel.upscale``. Notebook: 10_seed000."""
        in_dtype = lr.dtype if isinstance(lr, torch.Tensor) else None
        param = next(self.parameters(), None)
        lr = check_pixels(lr, param.dtype if param is not None else torch.float32)
        H, W = output_size(lr.shape[-2:], scale, size)
        radius = self.decoder.radius
        halo = radius if halo is None else halo
        if not isinstance(halo, int) or isinstance(halo, bool) or halo < radius:
            raise CourseError(f"halo must be an integer >= the decoder's receptive radius {radius} (pixels per side) "
                              f"for an exact result, got {halo!r}; upscale_strips shows what too little context does")
        if chunk_size is None:
            tile = DEFAULT_TILE.get(lr.device.type, GPU_TILE)
        elif not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise CourseError(f"chunk_size must be a positive number of output pixels per tile, got {chunk_size!r}")
        else:
            tile = math.isqrt(chunk_size)
            if tile < max(halo, 1):
                raise CourseError(f"chunk_size {chunk_size} gives tiles of {tile} x {tile} pixels, smaller than the "
                                  f"halo of {halo} pixels around each: ask for chunk_size >= {max(halo, 1) ** 2}")
        boxes = [((top, min(top + tile, H)), (left, min(left + tile, W)))
                 for top in range(0, H, tile) for left in range(0, W, tile)]
        need = self.peak_bytes(lr.shape[-2:], (H, W), lr.shape[0], tile, halo)
        _check_fits(need, (H, W), lr.device)
        with _upscale_context(self, lr.device, amp, (H, W), need):
            out = self._render_boxes(lr, (H, W), boxes, halo, progress, f"upscale to {W}x{H}")
        return out.to(in_dtype)

    def _render_boxes(self, lr, size, boxes, halo: int, progress, desc: str) -> torch.Tensor:
        """Encode once, then render each box ((r0, r1), (c0, c1)) on its window enlarged by ``halo`` (clipped to
        the image) and keep the box: the output in [0, 1], clamped, (B, 3, H, W)."""
        H, W = size
        state = self.decoder.prepare(self.encode(lr))
        lr_n = self.normalize(lr) if self.skip is not None else None
        out = torch.empty(lr.shape[0], 3, H, W, device=lr.device, dtype=lr.dtype)
        with LazyBar(len(boxes), desc, "tile", progress) as bar:
            for (r0, r1), (c0, c1) in boxes:
                wr = (max(r0 - halo, 0), min(r1 + halo, H))
                wc = (max(c0 - halo, 0), min(c1 + halo, W))
                pred = self.decoder.render(state, size, wr, wc)[..., r0 - wr[0]:r1 - wr[0], c0 - wc[0]:c1 - wc[0]]
                if self.skip is not None:
                    pred = pred + self._skip_window(lr_n, size, (r0, r1), (c0, c1)).to(pred.dtype)
                out[..., r0:r1, c0:c1] = self.denormalize(pred.float()).clamp(0, 1)
                bar.update()
        return out


def strip_boxes(size, bsize: int = STRIP_BSIZE):
    """The authors' evaluation strips (``batched_step``): full-height column strips of ``bsize // H`` columns
    (at least 1), as ((0, H), (c0, c1)) boxes. Notebook: 10_seed000."""
    H, W = check_size(size)
    if not isinstance(bsize, int) or isinstance(bsize, bool) or bsize < 1:
        raise CourseError(f"bsize must be a positive number of query pixels per strip, got {bsize!r}")
    width = max(bsize // H, 1)
    return [((0, H), (c, min(c + width, W))) for c in range(0, W, width)]


@torch.no_grad()
def upscale_strips(model: VariantSRModel, lr: torch.Tensor, scale=None, size=None, bsize: int = STRIP_BSIZE,
                   progress: bool | None = False) -> torch.Tensor:
    """The authors' strip evaluation (their ``eval_bsize`` = 3000): the output computed in column strips of
    ``bsize // H`` columns, each **alone** (zero padding at its sides, no halo), in eval mode, clamped to [0, 1].

    For a 1x1 decoder this equals the whole image; for a 3x3 dilated one it differs within ``decoder.radius`` (15)
    pixels of every strip border (tests), which with strips 2-11 columns wide is every pixel. Notebook: 10_seed000
    (the seams)."""
    if not isinstance(model, VariantSRModel):
        raise CourseError(f"upscale_strips needs a whole-grid model (build('diinn-var', model='B'..'F' or 'H')), got "
                          f"{type(model).__name__}")
    param = next(model.parameters(), None)
    lr = check_pixels(lr, param.dtype if param is not None else torch.float32)
    H, W = output_size(lr.shape[-2:], scale, size)
    boxes = strip_boxes((H, W), bsize)
    was_training = model.training
    model.eval()
    try:
        return model._render_boxes(lr, (H, W), boxes, 0, progress, "strips")
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------------------- the registry entry
def build_diinn_var(model: str = "H", encoder: str | None = None, dropout: float | None = None,
                    skip: str | None = None) -> SRModel:
    """Seed 000's model ``model`` ("A".."H", the module docstring's table) (notebooks/10_seed000.ipynb).

    ``encoder``: None for the model's own (RDN for A-F, VGG-SE for G and H), or any course encoder (the course-scale
    runs use ``edsr-baseline`` for A-F); ``dropout``: None for the model's own, or a probability in [0, 1) (not for
    G, which is DIINN's decoder (f)); ``skip``: SRModel's global skip (not in the paper). Registered as
    ``models.build("diinn-var", model=..., ...)``."""
    if not isinstance(model, str) or model not in MODELS:
        raise CourseError(f"unknown seed-000 model {model!r}; choose one of: {', '.join(MODELS)} (capital letters)")
    own_encoder, options = MODELS[model]
    enc_name = own_encoder if encoder is None else encoder
    if enc_name not in ALL_ENCODERS:
        raise CourseError(f"unknown encoder {enc_name!r}; choose one of: {', '.join(ALL_ENCODERS)}")
    enc = build_encoder(enc_name)
    if options is None:
        if dropout is not None and check_dropout(dropout) > 0:
            raise CourseError("model G uses DIINN's decoder (f), which has no dropout; leave dropout unset")
        return SRModel(enc, DIINNDecoder(in_dim=9 * enc.out_dim), skip=skip)
    options = dict(options)
    if dropout is not None:
        options["dropout"] = check_dropout(dropout)
    return VariantSRModel(enc, VariantDecoder(in_dim=9 * enc.out_dim, **options), skip=skip)
