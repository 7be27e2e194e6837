"""Feature unfolding and nearest queries: a content vector for every HR pixel  (lesson 03).

The encoder turns an LR image into a feature map (B, C, h, w). DIINN (like LIIF) enriches each LR position with its
3x3 neighbourhood ("unfolding"): 9C channels, zero padding at the border, channel index ``c * 9 + (ky * 3 + kx)``,
exactly the order of ``F.unfold(feat, 3, padding=1)``.

Every HR query then takes the unfolded vector of its *nearest* LR pixel (``course_lib.coords``). Nearest, not
bilinear: the decoder also receives the local coordinate inside that LR pixel, so it can interpolate by itself; a
bilinear mix would blur features of different pixels before the decoder sees them.

The unfolded map is built at LR size only; queries gather from it, so the HR-size (9C, H, W) tensor never exists.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .coords import coord_to_index, nearest_index
from .errors import CourseError, check_size


def _check_feat(feat) -> None:
    if not isinstance(feat, torch.Tensor) or feat.dim() != 4:
        shape = tuple(feat.shape) if isinstance(feat, torch.Tensor) else type(feat).__name__
        raise CourseError(f"feature map must be a tensor of shape (B, C, h, w), got {shape}")


def check_feature_map(feat, channels: int) -> None:
    """One-line errors for a decoder's input: a (B, C, h, w) tensor with ``channels`` channels (lessons 04, 09)."""
    _check_feat(feat)
    if feat.shape[1] != channels:
        raise CourseError(f"decoder expects {channels}-channel features, got {feat.shape[1]} channels: "
                          f"build it with feat_dim={feat.shape[1]}")


def unfold3x3(feat: torch.Tensor) -> torch.Tensor:
    """3x3 unfolding with zero padding: (B, C, h, w) -> (B, 9C, h, w), channel order as ``F.unfold`` (lesson 03).

    Built from nine shifted copies of the zero-padded map (no im2col), so it is easy to read.
    """
    _check_feat(feat)
    b, c, h, w = feat.shape
    padded = F.pad(feat, (1, 1, 1, 1))
    shifts = [padded[:, :, ky : ky + h, kx : kx + w] for ky in range(3) for kx in range(3)]
    return torch.stack(shifts, dim=2).reshape(b, c * 9, h, w)  # (B, C, 9, h, w) -> channel c*9 + k


def query_nearest_dense(feat: torch.Tensor, size) -> torch.Tensor:
    """Nearest LR feature for every pixel of an (H, W) output: (B, C, h, w) -> (B, C, H, W) (lesson 03).

    Equals ``F.interpolate(feat, size, mode="nearest-exact")``.
    """
    _check_feat(feat)
    H, W = check_size(size)
    rows = nearest_index(feat.shape[2], H, feat.device)
    cols = nearest_index(feat.shape[3], W, feat.device)
    return feat[:, :, rows][:, :, :, cols]


def query_nearest(feat: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    """Nearest LR feature of arbitrary query coordinates (lesson 03).

    ``feat`` (B, C, h, w), ``coord`` (B, Q, 2) in [-1, 1] (row, col) -> (B, Q, C). Equals
    ``F.grid_sample(feat, coord.flip(-1)[:, None], mode="nearest", align_corners=False)`` away from exact ties.
    """
    _check_feat(feat)
    if coord.dim() != 3 or coord.shape[-1] != 2 or coord.shape[0] != feat.shape[0]:
        raise CourseError(f"coord must have shape (B={feat.shape[0]}, Q, 2), got {tuple(coord.shape)}")
    b, c, h, w = feat.shape
    flat = coord_to_index(coord[..., 0], h) * w + coord_to_index(coord[..., 1], w)  # (B, Q)
    # Whole rows of C values per query: a (B*h*w, C) table (no copy when feat is channels_last) and index_select,
    # so the result is contiguous (B, Q, C) and what follows reads it at full speed.
    rows = feat.permute(0, 2, 3, 1).reshape(b * h * w, c)
    offsets = torch.arange(b, device=flat.device)[:, None] * (h * w)
    return rows.index_select(0, (flat + offsets).reshape(-1)).reshape(b, -1, c)
