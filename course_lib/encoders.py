"""Encoders: convolutional networks that turn an LR image into an LR-size feature map  (lesson 05).

All encoders here are the classic SR backbones *without their upsampler*: (B, 3, h, w) -> (B, C, h, w). The input is
already normalised to [-1, 1] by :class:`course_lib.models.SRModel`, so there is no MeanShift layer (the DIINN and
LIIF codes do the same).

* ``rdn``: Residual Dense Network, configuration "B" (G0=64, D=16 blocks, C=8 convs per block, growth G=64):
  21,973,952 parameters, the encoder of DIINN's paper.
* ``edsr-baseline``: EDSR baseline, 16 residual blocks of 64 features: 1,220,416 parameters.
* ``edsr-less``: 16 blocks of 32 features, seed paper 003's EDSR-LESS: 306,080 parameters (its Table 2 prints
  "579.3K" for this encoder + LIIF's MLP of 273,155).

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


ENCODERS = {
    "rdn": lambda: RDN(),
    "edsr-baseline": lambda: EDSR(n_resblocks=16, n_feats=64),
    "edsr-less": lambda: EDSR(n_resblocks=16, n_feats=32),
}


def build_encoder(name: str) -> nn.Module:
    """An encoder by name: ``"rdn"``, ``"edsr-baseline"`` or ``"edsr-less"`` (lesson 05)."""
    if name not in ENCODERS:
        raise CourseError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")
    return ENCODERS[name]()
