"""Decoders: from an LR feature map and query coordinates to RGB values  (lesson 04).

A decoder is an implicit function: ``decoder(feat, coord, cell) -> (B, Q, 3)`` for queries at coordinates ``coord``
(B, Q, 2) standing for HR pixels of size ``cell`` (B, Q, 2) = (2/H, 2/W). For chunked inference the LR-size work is
split off: ``state = decoder.prepare(feat)`` once, then ``decoder.query(state, coord, cell)`` per chunk.

``DIINNDecoder`` is the modulated periodic decoder of DIINN (paper Sec. 3.2, eqs. 2-5, Table 5 eqs. 6-9), as the
authors' code builds it:

* content ``z``: the 3x3-unfolded feature (9C = 576 channels for a 64-channel encoder) of the nearest LR pixel;
* position ``p = [local_row, local_col, scale]`` (3 channels, see ``course_lib.coords``);
* modulation branch (ReLU): ``m_0 = relu(K_0 z)``, ``m_i = relu(K_i x_i)`` with ``x_i`` = ``m_{i-1}`` (mode ``"m"``,
  eq. 6), ``[m_{i-1}, z]`` (mode ``"mz"``, eq. 7) or ``[s_{i-1}, z]`` (mode ``"sz"``, eq. 4, the final model);
* synthesis branch (sine): ``s_0 = m_0 * sin(Q_0 p)``, ``s_i = m_i * sin(Q_i s_{i-1})`` (eqs. 2-3);
* output: a linear layer ``256 -> 3`` on ``s_3`` (eq. 5), no activation.
* positional init (eqs. 8-9, ``pos_init=True``): ``p' = sin(P p)`` (3 -> 9C), ``z' = p' * z``; ``Q_0`` then takes
  ``p'`` and every ``K_i`` takes ``z'`` in place of ``z``.

Code vs paper: plain ``sin`` without SIREN's w0 or initialisation, PyTorch default init everywhere, and the scale
channel is the area ratio (h*w)/(H*W) (the paper's text says 1/s: ``scale_mode="inverse"``). Layers are
``nn.Linear`` on (B, Q, D) tensors, which is the same function and parameter count as the authors' 1x1 convolutions.

Variants of Table 5: (a) m + init, (b) m, (c) mz + init, (d) mz, (e) sz + init, (f) sz (final).

Two exact paths (lesson 04 derives the second). ``mlp`` is the readable reference: gather the 576-channel ``z`` of every
query, then run the dual network on it. The **fast path** (``decoder.fast = True``, the default; :func:`use_fast_path`
switches a whole model) uses that ``z`` is constant inside an LR pixel, so every product with ``z`` can be done once
per LR pixel instead of once per HR query:

* ``K_0 z + b_0`` and, for modes ``"mz"``/``"sz"``, the ``z`` half of every ``K_i`` (``K_i = [K_i^x | K_i^z]`` on
  ``[x, z]``): ``K_i^z z + b_i``. Since ``z`` is the 3x3 unfolding, ``K z`` is a 3x3 convolution of the feature map
  with ``K`` reshaped to (256, C, 3, 3): one ``F.conv2d`` at LR size makes all four maps (4 x 256 channels), and the
  unfolded map is never built.
* per query: gather those 4 x 256 values, then only the products with ``s`` (or ``m``) remain, each a 256 x 256
  product whose sum with the gathered ``K_i^z z + b_i`` is one ``torch.addmm``.

For (f) this cuts the per-query work from about 985k to about 394k multiply-adds. The positional init of variants
(a), (c), (e) (``z' = sin(P p) * z``) makes ``z'`` depend on the query, so nothing can move to LR size: those
variants always take the reference path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .coords import SCALE_MODES, local_coord, scale_channel
from .errors import CourseError
from .features import query_nearest, unfold3x3

MOD_INPUTS = ("m", "mz", "sz")
VARIANTS = {  # Table 5: variant -> (modulation input, positional init)
    "a": ("m", True),
    "b": ("m", False),
    "c": ("mz", True),
    "d": ("mz", False),
    "e": ("sz", True),
    "f": ("sz", False),
}


class DIINNDecoder(nn.Module):
    """DIINN's modulated periodic decoder (lesson 04). See the module docstring for the equations.

    Parameters: ``in_dim`` = 9C (576 for a 64-channel encoder), ``width`` 256, ``depth`` 4,
    ``mod_input`` in {"m", "mz", "sz"}, ``pos_init`` (eqs. 8-9), ``scale_mode`` "area" (code) or "inverse" (paper).
    """

    def __init__(self, in_dim: int = 576, width: int = 256, depth: int = 4, mod_input: str = "sz",
                 pos_init: bool = False, scale_mode: str = "area"):
        super().__init__()
        if mod_input not in MOD_INPUTS:
            raise CourseError(f"mod_input must be one of {MOD_INPUTS}, got {mod_input!r}")
        if scale_mode not in SCALE_MODES:
            raise CourseError(f"scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}")
        self.in_dim, self.width, self.depth = in_dim, width, depth
        self.mod_input, self.pos_init, self.scale_mode = mod_input, pos_init, scale_mode
        k_in = width if mod_input == "m" else width + in_dim
        self.K = nn.ModuleList([nn.Linear(in_dim, width)] + [nn.Linear(k_in, width) for _ in range(depth - 1)])
        q0_in = in_dim if pos_init else 3
        self.Q = nn.ModuleList([nn.Linear(q0_in, width)] + [nn.Linear(width, width) for _ in range(depth - 1)])
        self.first_layer = nn.Linear(3, in_dim) if pos_init else None
        self.last_layer = nn.Linear(width, 3)
        self.fast = True  # the LR-size algebra (module docstring); False = the per-query reference

    @property
    def uses_fast_path(self) -> bool:
        """True when queries take the fast path: asked for, and exact for this variant (no positional init)."""
        return self.fast and not self.pos_init

    def mlp(self, z: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The dual network on per-query vectors: z (..., in_dim), p (..., 3) -> (..., 3) (eqs. 2-9)."""
        if self.pos_init:
            p = torch.sin(self.first_layer(p))  # eq. 8
            z = p * z  # eq. 9
        m = torch.relu(self.K[0](z))
        s = m * torch.sin(self.Q[0](p))
        for k, q in zip(self.K[1:], self.Q[1:]):
            if self.mod_input == "m":
                x = m
            elif self.mod_input == "mz":
                x = torch.cat([m, z], dim=-1)
            else:
                x = torch.cat([s, z], dim=-1)
            m = torch.relu(k(x))
            s = m * torch.sin(q(s))
        return self.last_layer(s)

    def _z_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The maps that read ``z`` as one 3x3 convolution: weight (n*width, C, 3, 3), bias (n*width,)."""
        w = self.width
        mats = [self.K[0].weight] + ([k.weight[:, w:] for k in self.K[1:]] if self.mod_input != "m" else [])
        biases = [self.K[0].bias] + ([k.bias for k in self.K[1:]] if self.mod_input != "m" else [])
        weight = torch.cat(mats, dim=0)
        return weight.reshape(weight.shape[0], self.in_dim // 9, 3, 3), torch.cat(biases)

    def prepare(self, feat: torch.Tensor) -> dict:
        """LR-size work done once per image (lesson 04).

        Reference path: ``{"unfolded": (B, 9C, h, w)}``. Fast path: ``{"lr": (B, n*width, h, w)}`` holding
        ``relu(K_0 z + b_0)`` and, for modes mz/sz, ``K_i^z z + b_i`` (i = 1..depth-1), made by one 3x3 convolution.
        """
        if not isinstance(feat, torch.Tensor) or feat.dim() != 4:
            unfold3x3(feat)  # raises the one-line shape error
        if feat.shape[1] * 9 != self.in_dim:
            raise CourseError(f"decoder expects {self.in_dim // 9}-channel features (in_dim {self.in_dim}), "
                              f"got {feat.shape[1]} channels: build the decoder with in_dim={feat.shape[1] * 9}")
        if not self.uses_fast_path:
            return {"unfolded": unfold3x3(feat)}
        weight, bias = self._z_weights()
        feat = feat.contiguous(memory_format=torch.channels_last)  # so the output is channels_last too:
        maps = F.conv2d(feat, weight.to(feat.dtype), bias.to(feat.dtype), padding=1)  # query_nearest reads rows
        maps = maps.contiguous(memory_format=torch.channels_last)  # (a no-op when the convolution kept the format)
        relu_part = torch.relu(maps[:, : self.width])  # m_0 (a new tensor: autograd keeps maps intact)
        if torch.is_grad_enabled():
            return {"lr": torch.cat([relu_part, maps[:, self.width:]], dim=1).contiguous(
                memory_format=torch.channels_last)}
        maps[:, : self.width] = relu_part  # inference: no second copy of the (B, n*width, h, w) map
        return {"lr": maps}

    def query(self, state, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB (normalised space) at query points: coord, cell (B, Q, 2) -> (B, Q, 3).

        ``state``: what :meth:`prepare` returned, or an unfolded map (B, 9C, h, w) (the reference path)."""
        if isinstance(state, torch.Tensor):
            state = {"unfolded": state}
        lr_map = state["unfolded"] if "unfolded" in state else state["lr"]
        lr_size = lr_map.shape[-2:]
        g = query_nearest(lr_map, coord)
        p = torch.cat([local_coord(coord, lr_size), scale_channel(lr_size, cell, self.scale_mode)], dim=-1)
        p = p.to(g.dtype)
        if "unfolded" in state:
            return self.mlp(g, p)
        return self._fast_mlp(g, p)

    def _fast_mlp(self, g: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The dual network given the gathered LR-size maps ``g`` (..., n*width): equal to ``mlp`` (lesson 04)."""
        w = self.width
        # One split, not slices: autograd's backward of a split is one concatenation of the parts' gradients, while
        # each slice's backward would fill a zero tensor as wide as g (measured: 12 % of a CPU training step).
        parts = g.split(w, dim=-1)
        m = parts[0]  # relu(K_0 z + b_0), computed at LR size
        s = m * torch.sin(self.Q[0](p))
        for i in range(1, self.depth):
            k, q = self.K[i], self.Q[i]
            if self.mod_input == "m":  # K_i reads m only
                pre = k(m)
            else:  # K_i^x x + (K_i^z z + b_i), the bracket gathered from LR size; addmm adds it in the product
                x = s if self.mod_input == "sz" else m
                zi = parts[i]
                pre = torch.addmm(zi.reshape(-1, w), x.reshape(-1, w), k.weight[:, :w].t()).reshape(zi.shape)
            qs = q(s)
            m = torch.relu(pre)
            s = m * torch.sin(qs)
        return self.last_layer(s)

    def forward(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        return self.query(self.prepare(feat), coord, cell)


def use_fast_path(module: nn.Module, on: bool = True) -> nn.Module:
    """Switch every decoder with a fast path (DIINN, LIIF, Meta-SR) inside ``module`` on or off (lessons 04, 09).

    The two give the same function (tests: outputs within 2e-4 for random weights under which every input matters,
    2e-6 for the shipped checkpoints; gradients within 1e-4 relative); variants with
    positional init always run the reference. Returns ``module``."""
    for sub in module.modules():
        if hasattr(sub, "uses_fast_path"):  # DIINN, LIIF and Meta-SR decoders
            sub.fast = bool(on)
    return module
