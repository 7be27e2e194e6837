"""Meta-SR: a convolution kernel predicted from each HR pixel's position and the scale  (lesson 09).

Meta-SR (Hu et al., CVPR'19) as the LIIF code re-implements it (``yinboc/liif``, ``models/misc.py``; the DIINN
authors compare against that re-implementation), for a feature map (B, C, h, w) and queries ``coord``, ``cell``
(B, Q, 2) in (row, col):

* **corner convention**: the HR query is moved to its top-left corner, ``corner = coord - cell / 2``; its LR
  source pixel is the one containing ``corner + 1e-6`` (clamped to ``[-1 + 1e-6, 1 - 1e-6]``), i.e.
  ``floor(i * h / H)`` for HR row i, a corner exactly on an LR border going to the pixel below it;
* **position input** ``[rel_row, rel_col, 1/r]``: ``rel = (corner - LR pixel's top-left corner) * (h/2, w/2)``,
  the offset in LR pixels, in [0, 1); ``1/r = cell_row * h / 2`` = h / H (the row axis only);
* **Pos2Weight**: ``Linear(3, 256) -> ReLU -> Linear(256, 9C * 3)``, output reshaped to (9C, 3) (index k*3 + o);
* **prediction**: ``z^T W`` with ``z`` the 3x3-unfolded feature (9C, zero padding) of the source pixel, one
  batched matrix product per query, **no bias**: a 3x3 convolution whose kernel depends on the query.

Where the original Meta-SR code (``XuecaiHu/Meta-SR-Pytorch``, ``model/metardn.py``) differs:

* input order ``[1/r, rel_row, rel_col]`` (scale first) where the LIIF code has ``[rel_row, rel_col, 1/r]``;
* integer HR indices with the top-left convention, ``i/r - floor(i/r)`` with the nominal scale r (the same
  numbers as the corner form here when H = r h), on a ``ceil(r) h x ceil(r) w`` grid of repeated features masked to
  ``int(r h) x int(r w)``;
* LR images from MATLAB ``imresize`` (LIIF's training pipeline uses PIL bicubic), rgb_range 255 with MeanShift,
  and its test quantises the SR image to 8 bits.

**Fast path** (``decoder.fast = True``, the default; exact, lesson 09): the prediction is linear in the kernel and
the kernel's last layer is linear, so with ``a = relu(A_1 p + b_1)`` (256 values per query)
``pred_o = sum_j a_j (sum_k z_k A_2[k*3+o, j]) + sum_k z_k b_2[k*3+o]``. The brackets depend on the LR pixel only:
one 3x3 convolution of the feature map with 3 * 256 + 3 output channels at LR size, after which each query needs
its 3 -> 256 layer and a 3 x 256 product: about 1.5k multiply-adds instead of 445k, and the (9C x 3) kernel is
never built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .coords import coord_to_index
from .encoders import build_encoder
from .errors import CourseError
from .features import check_feature_map, query_nearest, unfold3x3

TIE_SHIFT = 1e-6  # the LIIF code's shift of the corner before the nearest lookup
CLAMP = 1e-6


def metasr_position(coord: torch.Tensor, cell: torch.Tensor, lr_size):
    """Meta-SR's source pixel and Pos2Weight input, LIIF-code convention (lesson 09).

    ``coord``, ``cell`` (B, Q, 2) -> (``lookup`` (B, Q, 2): a coordinate inside the source LR pixel, for
    :func:`query_nearest`; ``p`` (B, Q, 3) = ``[rel_row, rel_col, 1/r]``, float64)."""
    h, w = (int(n) for n in lr_size)
    if not isinstance(coord, torch.Tensor) or coord.dim() != 3 or coord.shape[-1] != 2 or cell.shape != coord.shape:
        raise CourseError(f"coord and cell must both have shape (B, Q, 2), got {tuple(coord.shape)} and "
                          f"{tuple(cell.shape)}")
    c, s = coord.double(), cell.double()
    corner = c - s / 2
    lookup = (corner + TIE_SHIFT).clamp(-1 + CLAMP, 1 - CLAMP)
    rel = []
    for axis, n in ((0, h), (1, w)):
        lr_corner = -1 + 2 * coord_to_index(lookup[..., axis], n).double() / n
        rel.append((corner[..., axis] - lr_corner) * (n / 2))
    inv_scale = s[..., 0] * (h / 2)
    return lookup, torch.stack([*rel, inv_scale], dim=-1)


class MetaSRDecoder(nn.Module):
    """Meta-SR's Pos2Weight decoder as re-implemented in the LIIF code (lesson 09). See the module docstring.

    ``feat_dim``: encoder channels C; ``hidden``: Pos2Weight's width (256). Same interface as ``DIINNDecoder``."""

    def __init__(self, feat_dim: int = 64, hidden: int = 256):
        super().__init__()
        self.feat_dim, self.width = int(feat_dim), int(hidden)
        self.z_dim = 9 * self.feat_dim
        self.pos2weight = nn.Sequential(nn.Linear(3, self.width), nn.ReLU(), nn.Linear(self.width, self.z_dim * 3))
        self.fast = True  # the LR-size reassociation (module docstring); False = the per-query kernel

    @property
    def uses_fast_path(self) -> bool:
        """True when queries take the fast path (exact, so: when asked for)."""
        return self.fast

    def kernel(self, p: torch.Tensor) -> torch.Tensor:
        """The predicted 3x3 kernel for position inputs ``p`` (..., 3): (..., 9C, 3) (lesson 09)."""
        return self.pos2weight(p).reshape(*p.shape[:-1], self.z_dim, 3)

    def _fast_weights(self) -> torch.Tensor:
        """Conv weight (3 * width + 3, C, 3, 3): channel o*width + j holds A_2[k*3+o, j], channel 3*width + o b_2."""
        a2, b2 = self.pos2weight[2].weight, self.pos2weight[2].bias
        mats = a2.reshape(self.z_dim, 3, self.width).permute(1, 2, 0).reshape(3 * self.width, self.z_dim)
        weight = torch.cat([mats, b2.reshape(self.z_dim, 3).t()], dim=0)
        return weight.reshape(-1, self.feat_dim, 3, 3)

    def prepare(self, feat: torch.Tensor) -> dict:
        """LR-size work done once per image (lesson 09).

        Reference: ``{"unfolded": (B, 9C, h, w)}``. Fast: ``{"lr": (B, 3 * width + 3, h, w)}`` (module docstring)."""
        check_feature_map(feat, self.feat_dim)
        if not self.uses_fast_path:
            return {"unfolded": unfold3x3(feat).contiguous(memory_format=torch.channels_last)}
        feat = feat.contiguous(memory_format=torch.channels_last)
        lr = F.conv2d(feat, self._fast_weights().to(feat.dtype), padding=1)
        return {"lr": lr.contiguous(memory_format=torch.channels_last)}

    def query(self, state: dict, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB (normalised space) at query points: coord, cell (B, Q, 2) -> (B, Q, 3) (lesson 09)."""
        lr_map = state["lr"] if "lr" in state else state["unfolded"]
        lookup, p = metasr_position(coord, cell, lr_map.shape[-2:])
        g = query_nearest(lr_map, lookup)  # (B, Q, 9C) or (B, Q, 3 * width + 3)
        p = p.to(g.dtype)
        n = g.shape[0] * g.shape[1]
        if "unfolded" in state:
            pred = torch.bmm(g.reshape(n, 1, self.z_dim), self.kernel(p).reshape(n, self.z_dim, 3))
        else:
            a = torch.relu(self.pos2weight[0](p)).reshape(n, 1, self.width)
            pred = (g[..., : 3 * self.width].reshape(n, 3, self.width) * a).sum(-1)  # (4x faster than bmm on CPU)
            pred = pred + g[..., 3 * self.width:].reshape(n, 3)
        return pred.reshape(g.shape[0], g.shape[1], 3)

    def forward(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query(self.prepare(feat), coord, cell)


def build_metasr(encoder: str = "rdn", skip: str | None = None):
    """Meta-SR (LIIF's re-implementation): encoder + Pos2Weight decoder. ``skip`` as for DIINN (off). Lesson 09."""
    from .models import SRModel  # models imports the decoders; importing it here keeps this module independent

    enc = build_encoder(encoder)
    return SRModel(enc, MetaSRDecoder(enc.out_dim), skip=skip)
