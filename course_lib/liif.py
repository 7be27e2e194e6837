"""LIIF and LIIF+SIREN: the local implicit image function with its local ensemble  (lesson 09).

LIIF (Chen et al., CVPR'21) as its code (``yinboc/liif``, ``models/liif.py``) computes it, for a feature map
(B, C, h, w) and queries ``coord``, ``cell`` (B, Q, 2) in the course's (row, col) convention:

* **feature unfolding** (``feat_unfold``): the 3x3 neighbourhood, 9C channels, zero padding (:func:`unfold3x3`);
* **local ensemble** (``local_ensemble``): four queries, the coordinate shifted by half an LR pixel
  (``1/h``, ``1/w``) towards each diagonal, in LIIF's loop order (row shift, col shift) = (-1,-1), (-1,1), (1,-1),
  (1,1), each shift plus ``1e-6`` (so a shifted query landing exactly on an LR border, which happens at odd integer
  scales, takes the pixel below/right of it), then clamped to ``[-1 + 1e-6, 1 - 1e-6]``. Each shifted query takes
  the feature of its nearest LR pixel (``F.grid_sample`` nearest in LIIF; :func:`query_nearest` here);
* **relative coordinate**: ``rel = (coord - centre) * (h, w)`` with ``coord`` the *unshifted* query and ``centre``
  the centre of the pixel the shifted query picked. The factor (h, w) makes the unit **half an LR pixel** (an LR
  pixel is 2/h wide in [-1, 1]), so ``rel`` lies in [-2, 2] per axis (the nearest pixel alone gives [-1, 1]);
* **relative cell** (``cell_decode``): ``cell * (h, w)`` = 2/r per axis for scale r;
* the MLP on ``[feature (9C), rel (2), rel_cell (2)]`` (580 inputs for C = 64) -> ``hidden`` -> 3;
* **area weights with the diagonal swap**: ``area_k = |rel_row * rel_col| + 1e-9``; the prediction of shift k is
  weighted by the area of the *opposite* shift (0<->3, 1<->2) over the total. For the four pixels around a query
  these are exactly the bilinear weights: the nearest pixel gets the largest share.

Without the ensemble (``local_ensemble=False``, the ``-e`` ablation) there is one query, no shift, no ``1e-6``.
One known difference: there, a query exactly on an LR border (some non-integer scales with an even LR size) goes to
the upper pixel here (``coords.coord_to_index``) and to the even one in ``grid_sample`` (round half to even); with
the ensemble, LIIF's ``+1e-6`` and the course's tie rule both send ties up, so the pixels picked are LIIF's.

The ablations of LIIF's Table 3 are one flag each: ``-c`` ``cell_decode=False``, ``-u`` ``feat_unfold=False``,
``-e`` ``local_ensemble=False``, ``-d`` ``hidden=[256, 256]``.

**LIIF+SIREN** (seed paper 003, Jiang): ``mlp="siren"`` keeps every input and every Linear layer and replaces
ReLU by ``sin(w0 * (W x + b))``. 003 names SIREN-30 and SIREN-15 and says only that they differ in "weight
initialization"; it leaves open which layers use w0, the initialisation and the output layer. Defaults chosen here,
SIREN's reference code (``vsitzmann/siren``): the same ``w0`` in every sine layer (``w0_hidden=None``; give a number
to use another w0 after the first layer), first layer weights U(-1/n, 1/n), every later layer *including the
linear output* U(-sqrt(6/n)/w0_hidden, +sqrt(6/n)/w0_hidden) (n = fan-in), biases at PyTorch's default. SIREN's
first-layer init assumes inputs in [-1, 1]; here they are encoder features, ``rel`` in [-2, 2] and the cell.

**Fast path** (``decoder.fast = True``, the default; exact, lesson 09 derives it as lesson 04 did for DIINN's K_0):
the first layer's product with the unfolded feature, ``W_z z + b``, is constant inside an LR pixel, and ``W_z z``
of the 3x3 unfolding is a 3x3 convolution of the feature map with ``W_z`` reshaped to (256, C, 3, 3) (1x1 without
unfolding). ``prepare`` makes that (B, 256, h, w) map once; each of the four queries gathers 256 values and adds
``W_pos [rel, rel_cell]`` (one ``addmm``). The per-query work drops from about 346k to 198k multiply-adds per
shift, and the 9C-channel unfolded map is never built. A sine first layer is the same linear map inside ``sin``, so
LIIF+SIREN takes the fast path too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .coords import coord_to_index, pixel_centers
from .encoders import build_encoder
from .errors import CourseError, check_size
from .features import check_feature_map, query_nearest, unfold3x3

SHIFTS = ((-1, -1), (-1, 1), (1, -1), (1, 1))  # (row, col) in half-LR-pixel steps, LIIF's loop order
TIE_SHIFT = 1e-6  # LIIF's eps_shift: added to every shifted coordinate (ties go to the upper/right pixel)
CLAMP = 1e-6  # shifted coordinates are clamped to [-1 + CLAMP, 1 - CLAMP]
AREA_EPS = 1e-9  # added to every area, so the weights exist when a query sits on an LR centre line
MLPS = ("relu", "siren")
DEFAULT_HIDDEN = (256, 256, 256, 256)
SIREN_W0 = 30.0


def ensemble_queries(coord: torch.Tensor, lr_size, local_ensemble: bool = True):
    """LIIF's shifted queries, relative coordinates and ensemble weights (lesson 09).

    ``coord`` (B, Q, 2) in [-1, 1] (row, col), ``lr_size`` = (h, w). Returns float64 tensors

    * ``shifted`` (K, B, Q, 2): the K = 4 shifted, clamped query coordinates (K = 1, unshifted, without ensemble);
      the feature of shift k is the one of ``shifted[k]``'s nearest LR pixel;
    * ``rel`` (K, B, Q, 2): ``(coord - centre of that pixel) * (h, w)``, in half-LR-pixel units;
    * ``weights`` (K, B, Q): the area of the diagonally opposite shift over the total (they sum to 1).
    """
    h, w = check_size(lr_size, "lr_size")
    if not isinstance(coord, torch.Tensor) or coord.dim() != 3 or coord.shape[-1] != 2:
        shape = tuple(coord.shape) if isinstance(coord, torch.Tensor) else type(coord).__name__
        raise CourseError(f"coord must have shape (B, Q, 2), got {shape}")
    c = coord.double()
    half = c.new_tensor([1.0 / h, 1.0 / w])  # half an LR pixel in [-1, 1] units (LIIF's rx, ry)
    units = c.new_tensor([float(h), float(w)])
    centres = (pixel_centers(h, c.device, torch.float64), pixel_centers(w, c.device, torch.float64))
    shifts, eps = (SHIFTS, TIE_SHIFT) if local_ensemble else (((0, 0),), 0.0)
    shifted, rel = [], []
    for v in shifts:
        s = (c + (c.new_tensor(v) * half + eps)).clamp(-1 + CLAMP, 1 - CLAMP)
        centre = torch.stack([centres[a][coord_to_index(s[..., a], n)] for a, n in ((0, h), (1, w))], dim=-1)
        shifted.append(s)
        rel.append((c - centre) * units)
    shifted, rel = torch.stack(shifted), torch.stack(rel)
    area = (rel[..., 0] * rel[..., 1]).abs() + AREA_EPS
    weights = area.flip(0) / area.sum(0)  # flip = the diagonal swap (0<->3, 1<->2); identity for K = 1
    return shifted, rel, weights


def siren_init_(layers, w0: float, w0_hidden: float | None = None) -> None:
    """SIREN's initialisation (Sitzmann et al. 2020, reference code) of a stack of Linear layers (lesson 09).

    First layer U(-1/n, 1/n); every later layer U(-sqrt(6/n)/w0_hidden, +sqrt(6/n)/w0_hidden), n = fan-in,
    ``w0_hidden`` defaulting to ``w0``; biases untouched (PyTorch's default)."""
    w_h = float(w0 if w0_hidden is None else w0_hidden)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            n = layer.weight.shape[1]
            bound = 1.0 / n if i == 0 else math.sqrt(6.0 / n) / w_h
            layer.weight.uniform_(-bound, bound)


class LIIFDecoder(nn.Module):
    """LIIF's decoder, with the ReLU MLP or seed 003's SIREN (lesson 09). See the module docstring.

    ``feat_dim``: encoder channels C; ``hidden``: MLP widths (LIIF: [256] * 4); ``mlp``: "relu" or "siren" with
    ``w0`` (first sine layer, default 30) and ``w0_hidden`` (later sine layers, default ``w0``).
    Same interface as ``DIINNDecoder``: ``prepare(feat) -> state``, ``query(state, coord, cell) -> (B, Q, 3)``.
    """

    def __init__(self, feat_dim: int = 64, hidden=DEFAULT_HIDDEN, local_ensemble: bool = True,
                 feat_unfold: bool = True, cell_decode: bool = True, mlp: str = "relu", w0: float | None = None,
                 w0_hidden: float | None = None):
        super().__init__()
        if mlp not in MLPS:
            raise CourseError(f"mlp must be one of {MLPS}, got {mlp!r}")
        if mlp == "relu" and (w0 is not None or w0_hidden is not None):
            raise CourseError("w0 and w0_hidden set the sine frequency: use them with mlp='siren'")
        hidden = [int(x) for x in hidden] if isinstance(hidden, (list, tuple)) else None
        if not hidden or min(hidden) < 1:
            raise CourseError(f"hidden must be a non-empty list of layer widths such as [256, 256], got {hidden!r}")
        self.feat_dim, self.hidden = int(feat_dim), hidden
        self.local_ensemble, self.feat_unfold, self.cell_decode = bool(local_ensemble), bool(feat_unfold), \
            bool(cell_decode)
        self.mlp_kind = mlp
        self.w0 = float(SIREN_W0 if w0 is None else w0) if mlp == "siren" else None
        self.w0_hidden = (self.w0 if w0_hidden is None else float(w0_hidden)) if mlp == "siren" else None
        self.z_dim = self.feat_dim * (9 if self.feat_unfold else 1)
        self.in_dim = self.z_dim + 2 + (2 if self.cell_decode else 0)
        dims = [self.in_dim, *hidden, 3]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])
        if mlp == "siren":
            siren_init_(self.layers, self.w0, self.w0_hidden)
        self.fast = True  # the LR-size first layer (module docstring); False = LIIF's per-query reference

    @property
    def uses_fast_path(self) -> bool:
        """True when queries take the fast path (exact for every flag combination, so: when asked for)."""
        return self.fast

    def _activation(self, x: torch.Tensor, i: int) -> torch.Tensor:
        if self.mlp_kind == "relu":
            return torch.relu(x)
        return torch.sin((self.w0 if i == 0 else self.w0_hidden) * x)

    def _after_first(self, pre: torch.Tensor) -> torch.Tensor:
        """The MLP from the first layer's pre-activation on: (..., hidden[0]) -> (..., 3)."""
        x = self._activation(pre, 0)
        for i, layer in enumerate(self.layers[1:-1], start=1):
            x = self._activation(layer(x), i)
        return self.layers[-1](x)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP on full input vectors ``[feature, rel, rel_cell]`` (..., in_dim) -> (..., 3) (lesson 09)."""
        return self._after_first(self.layers[0](x))

    def prepare(self, feat: torch.Tensor) -> dict:
        """LR-size work done once per image (lesson 09).

        Reference: ``{"feat": (B, 9C or C, h, w)}`` (the unfolded map). Fast: ``{"lr": (B, hidden[0], h, w)}``,
        the first layer's ``W_z z + b`` at every LR pixel, made by one 3x3 (or 1x1) convolution."""
        check_feature_map(feat, self.feat_dim)
        if not self.uses_fast_path:
            z = unfold3x3(feat) if self.feat_unfold else feat
            return {"feat": z.contiguous(memory_format=torch.channels_last)}  # query_nearest reads whole rows
        k = 3 if self.feat_unfold else 1
        first = self.layers[0]
        weight = first.weight[:, : self.z_dim].reshape(-1, self.feat_dim, k, k)  # channel c*9 + k as in unfold3x3
        feat = feat.contiguous(memory_format=torch.channels_last)
        lr = F.conv2d(feat, weight.to(feat.dtype), first.bias.to(feat.dtype), padding=k // 2)
        return {"lr": lr.contiguous(memory_format=torch.channels_last)}

    def query(self, state: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB (normalised space) at query points: coord, cell (B, Q, 2) -> (B, Q, 3) (lesson 09).

        ``state``: what :meth:`prepare` returned. The four shifted predictions are summed with their area weights
        (in float32 at least, whatever the autocast dtype)."""
        lr_map = state["lr"] if "lr" in state else state["feat"]
        h, w = lr_map.shape[-2:]
        shifted, rel, weights = ensemble_queries(coord, (h, w), self.local_ensemble)
        dtype = lr_map.dtype
        acc = torch.promote_types(dtype, torch.float32)
        pos = rel.to(dtype)
        if self.cell_decode:
            rel_cell = (cell.double() * cell.new_tensor([float(h), float(w)], dtype=torch.float64)).to(dtype)
            pos = torch.cat([pos, rel_cell.expand(pos.shape[0], *rel_cell.shape)], dim=-1)
        first = self.layers[0]
        out = 0
        for k in range(shifted.shape[0]):
            g = query_nearest(lr_map, shifted[k])
            if "lr" in state:  # W_z z + b gathered from LR size, plus W_pos [rel, rel_cell] in the same addmm
                w_pos = first.weight[:, self.z_dim:].to(g.dtype)
                pre = torch.addmm(g.reshape(-1, g.shape[-1]), pos[k].reshape(-1, pos.shape[-1]).to(g.dtype),
                                  w_pos.t()).reshape(g.shape)
                pred = self._after_first(pre)
            else:
                pred = self.mlp(torch.cat([g, pos[k].to(g.dtype)], dim=-1))
            out = out + pred.to(acc) * weights[k].to(acc).unsqueeze(-1)
        return out

    def forward(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query(self.prepare(feat), coord, cell)


def build_liif(encoder: str = "rdn", local_ensemble: bool = True, feat_unfold: bool = True, cell_decode: bool = True,
               hidden: list | None = None, mlp: str = "relu", w0: float | None = None, w0_hidden: float | None = None,
               skip: str | None = None):
    """LIIF (``mlp="relu"``) or seed 003's LIIF+SIREN (``mlp="siren"``, ``w0`` 30 or 15): encoder + LIIF decoder.

    ``hidden`` defaults to LIIF's [256, 256, 256, 256]; the ablations are ``cell_decode=False`` (-c),
    ``feat_unfold=False`` (-u), ``local_ensemble=False`` (-e), ``hidden=[256, 256]`` (-d). ``skip`` as for DIINN
    (:meth:`SRModel.base`, off by default, not in LIIF). Lesson 09."""
    from .models import SRModel  # models imports the decoders; importing it here keeps this module independent

    enc = build_encoder(encoder)
    dec = LIIFDecoder(enc.out_dim, DEFAULT_HIDDEN if hidden is None else hidden, local_ensemble, feat_unfold,
                      cell_decode, mlp, w0, w0_hidden)
    return SRModel(enc, dec, skip=skip)
