"""Encoders: convolutional networks that turn an LR image into an LR-size feature map  (lesson 05).

All encoders here are the classic SR backbones *without their upsampler*: (B, 3, h, w) -> (B, C, h, w). The input is
already normalised to [-1, 1] by :class:`course_lib.models.SRModel`, so there is no MeanShift layer (the DIINN and
LIIF codes do the same).

* ``rdn``: Residual Dense Network, configuration "B" (G0=64, D=16 blocks, C=8 convs per block, growth G=64):
  21,973,952 parameters, the encoder of DIINN's paper.
* ``edsr-baseline``: EDSR baseline, 16 residual blocks of 64 features: 1,220,416 parameters.
* ``edsr-less``: 16 blocks of 32 features, seed paper 003's EDSR-LESS: 306,080 parameters (its Table 2 prints
  "579.3K" for this encoder + LIIF's MLP of 273,155).
* ``vgg-se`` (seed paper 000, Koska & Arviv; :class:`VGGSE`): a three-conv "VGG" stem, 12 RDBs with
  squeeze-and-excitation, and a PixelShuffle x2 at the end: 16,690,688 parameters, and its features come out at
  **2h x 2w** (``output_stride = 2``). It is kept in :data:`SEED_ENCODERS`, not :data:`ENCODERS` (the course's
  stride-1 backbones, whose MACs per LR pixel and receptive fields lesson 05 tabulates); :func:`build_encoder`
  and the registry accept both.

**Output stride.** Every encoder has ``output_stride``: its feature map is (stride h, stride w) for an (h, w) image
(1 for the course's backbones). A decoder never sees the LR image's size, only the feature map's: the unfolding,
the nearest feature pixel, the local coordinates and the scale channel (or cell) are all taken on the feature grid,
which for ``vgg-se`` is the 2x grid, so DIINN's scale channel there is (2h)(2w)/(HW) = 4/s^2, as in the authors'
code. :func:`output_stride` reads the attribute (1 when an encoder has none).

``course_lib.complexity`` counts their multiply-adds per LR pixel and their receptive fields (69 LR pixels for both
EDSRs, 263 for RDN); tests/test_encoders.py checks every count by hand.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import CourseError


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class ResBlock(nn.Module):
    """EDSR residual block: x + res_scale * conv(relu(conv(x))) (no batch norm)."""

    def __init__(self, n_feats: int, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.body(x) * self.res_scale


class EDSR(nn.Module):
    """EDSR without upsampler: head conv, ``n_resblocks`` residual blocks, body-tail conv, global skip (lesson 05)."""

    output_stride = 1  # features at the LR image's size

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0):
        super().__init__()
        self.head = conv3x3(3, n_feats)
        blocks = [ResBlock(n_feats, res_scale) for _ in range(n_resblocks)]
        self.body = nn.Sequential(*blocks, conv3x3(n_feats, n_feats))
        self.out_dim = n_feats

    def forward(self, x):
        x = self.head(x)
        return x + self.body(x)


class DenseLayer(nn.Module):
    """One RDB layer: concatenate the input with relu(conv3x3(input)) (growth G channels)."""

    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.conv = nn.Sequential(conv3x3(c_in, growth), nn.ReLU(inplace=True))

    def forward(self, x):
        return torch.cat([x, self.conv(x)], dim=1)


class RDB(nn.Module):
    """Residual dense block: C dense layers, a 1x1 local feature fusion back to G0 channels, a local residual."""

    def __init__(self, g0: int, growth: int, n_layers: int):
        super().__init__()
        self.convs = nn.Sequential(*[DenseLayer(g0 + i * growth, growth) for i in range(n_layers)])
        self.lff = nn.Conv2d(g0 + n_layers * growth, g0, 1)

    def forward(self, x):
        return x + self.lff(self.convs(x))


class RDN(nn.Module):
    """Residual Dense Network without upsampler (Zhang et al. 2018; config "B" by default) (lesson 05)."""

    output_stride = 1  # features at the LR image's size

    def __init__(self, g0: int = 64, n_blocks: int = 16, n_layers: int = 8, growth: int = 64):
        super().__init__()
        self.sfe1 = conv3x3(3, g0)
        self.sfe2 = conv3x3(g0, g0)
        self.blocks = nn.ModuleList([RDB(g0, growth, n_layers) for _ in range(n_blocks)])
        self.gff = nn.Sequential(nn.Conv2d(n_blocks * g0, g0, 1), conv3x3(g0, g0))
        self.out_dim = g0

    def forward(self, x):
        f1 = self.sfe1(x)
        x = self.sfe2(f1)
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return self.gff(torch.cat(outs, dim=1)) + f1


class SEBlock(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) as seed paper 000's code has it: global average pool, Linear C -> C/r
    (no bias), ReLU, Linear C/r -> C (no bias), sigmoid, per-channel scale of the input. Derived in
    notebooks/10_seed000.ipynb."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        if channels // reduction < 1:
            raise CourseError(f"SE block: {channels} channels cannot be reduced by {reduction}; use reduction <= "
                              f"{channels}")
        self.excitation = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
                                        nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def forward(self, x):
        weights = self.excitation(x.mean(dim=(2, 3)))  # (B, C): one weight per channel and image
        return x * weights[:, :, None, None].to(x.dtype)


class RDBSE(RDB):
    """Seed 000's RDB: dense layers, 1x1 local fusion, then an SE block, then the local residual (notebook 10)."""

    def __init__(self, g0: int, growth: int, n_layers: int, reduction: int = 16):
        super().__init__(g0, growth, n_layers)
        self.se = SEBlock(g0, reduction)

    def forward(self, x):
        return x + self.se(self.lff(self.convs(x)))


class VGGSE(nn.Module):
    """Seed paper 000's encoder ("VGGSuperResEncoder"; reference note seed-variations.md sec. 1.1). Derived in
    notebooks/10_seed000.ipynb.

    1. stem: three conv3x3 + ReLU, 3 -> 64 -> 64 -> 64 (a VGG-like stem only: no pooling, no ImageNet weights);
    2. ``n_blocks`` = 12 RDBs (8 dense layers of growth 64, 1x1 fusion, SE with reduction 16 and no bias, local
       residual): :class:`RDBSE`;
    3. global fusion: concatenation of the 12 block outputs -> conv1x1 -> conv3x3 -> SE, added to the **last
       block's output** (their code reuses its loop variable; RDN adds the stem's output instead);
    4. conv3x3 64 -> 256 and PixelShuffle(2), no activation: features (B, 64, 2h, 2w), ``output_stride`` 2.

    16,690,688 parameters with the defaults; PyTorch's default initialisation everywhere, as their code."""

    output_stride = 2

    def __init__(self, g0: int = 64, n_blocks: int = 12, n_layers: int = 8, growth: int = 64, reduction: int = 16):
        super().__init__()
        self.stem = nn.Sequential(conv3x3(3, g0), nn.ReLU(inplace=True), conv3x3(g0, g0), nn.ReLU(inplace=True),
                                  conv3x3(g0, g0), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList([RDBSE(g0, growth, n_layers, reduction) for _ in range(n_blocks)])
        self.gff = nn.Sequential(nn.Conv2d(n_blocks * g0, g0, 1), conv3x3(g0, g0), SEBlock(g0, reduction))
        self.upsample = nn.Sequential(conv3x3(g0, 4 * g0), nn.PixelShuffle(2))
        self.out_dim = g0

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return self.upsample(self.gff(torch.cat(outs, dim=1)) + x)  # + x: the last block's output (see above)


ENCODERS = {  # the course's backbones (lesson 05): stride 1, no upsampler
    "rdn": lambda: RDN(),
    "edsr-baseline": lambda: EDSR(n_resblocks=16, n_feats=64),
    "edsr-less": lambda: EDSR(n_resblocks=16, n_feats=32),
}
SEED_ENCODERS = {  # encoders of the seed papers' variations (notebook 10)
    "vgg-se": lambda: VGGSE(),
}
ALL_ENCODERS = {**ENCODERS, **SEED_ENCODERS}


def output_stride(encoder: nn.Module) -> int:
    """Feature pixels per LR pixel along each axis: ``encoder.output_stride``, 1 when it has none (lesson 05;
    notebooks/10_seed000.ipynb for ``vgg-se``'s 2)."""
    return int(getattr(encoder, "output_stride", 1))


def build_encoder(name: str) -> nn.Module:
    """An encoder by name: ``"rdn"``, ``"edsr-baseline"``, ``"edsr-less"`` (lesson 05) or ``"vgg-se"`` (seed 000,
    notebooks/10_seed000.ipynb)."""
    if name not in ALL_ENCODERS:
        raise CourseError(f"unknown encoder {name!r}; choose one of: {', '.join(ALL_ENCODERS)}")
    return ALL_ENCODERS[name]()
