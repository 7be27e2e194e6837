"""MemNet: a deep recursive network that refines a bicubic upsampling, on the Y channel  (lesson 11).

MemNet (Tai et al., ICCV'17) as its official Caffe code builds it (``tyshiwo/MemNet``, the M6R6 prototxt), the
model seed paper 004 trains. Its input ``x`` is the **bicubic-upsampled** LR image's Y channel (pre-upsampling:
the network sees the output grid, so it runs at any scale; it only learned the scales it was trained on, x2-x4 in
the original). Every convolution has 64 channels, 3x3 kernels (the gates 1x1), and is **pre-activated**: BN (with
scale and shift), ReLU, then the convolution (the first one included).

* **Feature extraction**: BN-ReLU-conv 1 -> 64 gives ``B_0``.
* **Memory block m** (m = 1..M): a recursive unit, one residual block [BN-ReLU-conv, BN-ReLU-conv] + identity,
  applied R times, ``H_r = F_r(H_{r-1}) + H_{r-1}`` from ``H_0 = B_{m-1}``. The R passes **share the two conv
  layers** (one weight tensor each, gradients summed over the passes) but each pass has its **own BNs**. Then the
  gate: concat ``[B_0, ..., B_{m-1}, H_1, ..., H_R]`` ((m + R) x 64 channels) -> BN-ReLU-conv1x1 -> ``B_m``.
* **Reconstruction** plus the **global residual**: ``y = Rec(B_M) + x`` with Rec = BN-ReLU-conv 64 -> 1.
* **Multi-supervision** (the released nets, ``multi_supervised=True``): every ``B_m`` gets an output
  ``y_m = Rec_m(B_m) + x`` (one shared conv, separate BNs) and ``y = sum_m w_m y_m`` with learnable scalars ``w_m``.
  Caffe's Scale layers start them at 1; the course starts them at **1/M** (the note's DEFAULT), so the weights sum
  to 1 and a network whose reconstruction is zero returns the bicubic input exactly.

Sizes: 2 + M(2R + 1) convolutions (M6R6: 80, 004's "80 layers"; M3R3: 23, M4R4: 38). Conv parameters: M6R6 678,209
(+ 17,282 BN, + 6 output weights), M3R3 284,417, M4R4 403,393 (004's smaller nets). 004's ">4.75M" cannot be
reproduced: without weight sharing M6R6 would have 2.89M. Init: MSRA (He normal, fan-in), biases zero.

**Colour** (:class:`MemNetSR`, what ``build("memnet")`` returns): the RGB LR is upsampled with the course's
bicubic (antialiased, a = -0.5, clamped: ``build("bicubic")``), converted to YCbCr (MATLAB's ``rgb2ycbcr`` of a
double image, :func:`course_lib.metrics.rgb_to_ycbcr`), the network refines Y, and Cb, Cr stay bicubic, as
MemNet's test script does; the result goes back to RGB. So ``upscale`` and ``evaluate`` take it like any model.

**Loss** (:func:`memnet_loss`): Caffe's Euclidean loss ``1/(2N) sum ||y - t||^2`` (N images) on the final output
and on every ``y_m``, all with weight 1 (Tai's alpha-weighting up to a constant; the note's DEFAULT), or 004's
written form (``weighting="004"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .convsr import ConvSR, tiled
from .errors import CourseError, check_image_batch, check_size
from .metrics import rgb_to_ycbcr, ycbcr_to_rgb

CHANNELS = 64


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    """A same-size convolution with MemNet's init: MSRA (He normal, fan-in), bias zero."""
    conv = nn.Conv2d(cin, cout, k, padding=k // 2)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


def pre_activation(bn: nn.BatchNorm2d, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """MemNet's unit: ``conv(relu(bn(x)))`` (BN first, then ReLU, then the convolution). Lesson 11."""
    return conv(F.relu(bn(x)))


class MemoryBlock(nn.Module):
    """Memory block ``m`` (1-based): a recursive unit with shared convs and per-pass BNs, then the 1x1 gate.

    ``forward(longs)`` takes ``[B_0, ..., B_{m-1}]`` and returns ``B_m``. Lesson 11."""

    def __init__(self, m: int, recursions: int, channels: int = CHANNELS):
        super().__init__()
        self.m, self.recursions = int(m), int(recursions)
        self.conv1, self.conv2 = _conv(channels, channels, 3), _conv(channels, channels, 3)  # shared by all passes
        self.bn1 = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(recursions))  # one BN per pass
        self.bn2 = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(recursions))
        gate_in = (self.m + self.recursions) * channels
        self.gate_bn, self.gate = nn.BatchNorm2d(gate_in), _conv(gate_in, channels, 1)

    def short_term(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[H_1, ..., H_R]`` from ``H_0 = x``: ``H_r = conv2(relu(bn2_r(conv1(relu(bn1_r(H_{r-1})))))) + H_{r-1}``."""
        h, out = x, []
        for bn1, bn2 in zip(self.bn1, self.bn2):
            h = pre_activation(bn2, self.conv2, pre_activation(bn1, self.conv1, h)) + h
            out.append(h)
        return out

    def forward(self, longs: list[torch.Tensor]) -> torch.Tensor:
        if len(longs) != self.m:
            raise CourseError(f"memory block {self.m} takes the {self.m} earlier outputs B_0..B_{self.m - 1}, "
                              f"got {len(longs)}")
        return pre_activation(self.gate_bn, self.gate, torch.cat(longs + self.short_term(longs[-1]), dim=1))


class MemNet(nn.Module):
    """MemNet on one channel (Y): ``x`` (B, 1, H, W), the bicubic-upsampled Y in [0, 1] -> refined Y.

    ``outputs(x)`` -> (y, [y_1, ..., y_M]) (one entry, y itself, without multi-supervision); ``forward(x)`` -> y.
    See the module docstring. Lesson 11."""

    def __init__(self, blocks: int = 6, recursions: int = 6, multi_supervised: bool = True,
                 channels: int = CHANNELS):
        super().__init__()
        self.n_blocks, self.recursions, self.multi_supervised = int(blocks), int(recursions), bool(multi_supervised)
        self.fe_bn, self.fe = nn.BatchNorm2d(1), _conv(1, channels, 3)
        self.blocks = nn.ModuleList(MemoryBlock(m, self.recursions, channels) for m in range(1, self.n_blocks + 1))
        n_out = self.n_blocks if self.multi_supervised else 1
        self.rec_bn = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(n_out))  # separate BNs
        self.rec = _conv(channels, 1, 3)  # one reconstruction conv, shared by every output
        self.out_weights = nn.Parameter(torch.full((self.n_blocks,), 1.0 / self.n_blocks)) \
            if self.multi_supervised else None

    @property
    def depth(self) -> int:
        """Convolutions on the longest path: 2 + M (2R + 1) (M6R6: 80)."""
        return 2 + self.n_blocks * (2 * self.recursions + 1)

    @property
    def radius(self) -> int:
        """Receptive radius in pixels: one per 3x3 convolution on the path, 2 + 2 M R (M6R6: 74)."""
        return 2 + 2 * self.n_blocks * self.recursions

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1:
            raise CourseError(f"MemNet takes the Y channel (B, 1, H, W), got {tuple(getattr(x, 'shape', ()))}; "
                              "use build('memnet') for RGB images")
        longs = [pre_activation(self.fe_bn, self.fe, x)]
        for block in self.blocks:
            longs.append(block(longs))
        if not self.multi_supervised:
            y = pre_activation(self.rec_bn[0], self.rec, longs[-1]) + x
            return y, [y]
        ys = [pre_activation(bn, self.rec, b) + x for bn, b in zip(self.rec_bn, longs[1:])]
        y = (torch.stack(ys) * self.out_weights.to(x.dtype).view(-1, 1, 1, 1, 1)).sum(0)
        return y, ys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]


def euclidean_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Caffe's EuclideanLoss: ``sum ||pred - target||^2 / (2 N)``, N = images in the batch. Lesson 11."""
    return ((pred - target) ** 2).sum() / (2 * pred.shape[0])


def memnet_loss(y: torch.Tensor, ys: list[torch.Tensor], target: torch.Tensor, weighting: str = "tai"):
    """MemNet's training loss from :meth:`MemNet.outputs` (lesson 11).

    ``"tai"`` (default, the released prototxt): :func:`euclidean_loss` of the final ``y`` plus that of every
    ``y_m``, all weight 1 (a single-supervised net: just ``y``). ``"004"`` (the paper's App. 7.2.2):
    ``alpha/(2 M N) ||y - t||^2 + sum_m (1 - alpha)/(2 M N) ||y_m - t||^2`` with ``alpha = 1/(1 + M)``."""
    if weighting not in ("tai", "004"):
        raise CourseError(f"weighting must be 'tai' or '004', got {weighting!r}")
    if len(ys) == 1 and ys[0] is y:
        return euclidean_loss(y, target)
    if weighting == "tai":
        return euclidean_loss(y, target) + sum(euclidean_loss(p, target) for p in ys)
    m = len(ys)
    alpha = 1.0 / (1 + m)
    return (alpha * euclidean_loss(y, target) + (1 - alpha) * sum(euclidean_loss(p, target) for p in ys)) / m


class MemNetSR(ConvSR):
    """MemNet for RGB images in the course's interface: bicubic upsampling, MemNet on Y, bicubic Cb and Cr.

    ``forward(lr, size)`` / ``predict(lr, size)`` (normalised, unclamped, differentiable) / ``upscale(lr,
    scale=|size=)`` (tiled, exact) as ``SRModel``; ``split(lr, size)`` gives the network's input Y and the bicubic
    CbCr; ``net`` is the Y network (:class:`MemNet`). Any scale (pre-upsampling). Lesson 11."""

    fixed_scale = None
    factor = 1

    def __init__(self, net: MemNet):
        super().__init__()
        self.net = net
        self.config = {"name": "memnet"}

    @property
    def halo(self) -> int:
        return self.net.radius

    @property
    def floats_per_pixel(self) -> int:
        """At the last gate: the M + 1 block outputs, R passes, their concatenation and two temporaries."""
        return (2 * (self.net.n_blocks + self.net.recursions) + 4) * CHANNELS

    @staticmethod
    def upsample(lr: torch.Tensor, size) -> torch.Tensor:
        """The course's bicubic (``build("bicubic")``): antialiased, a = -0.5, clamped to [0, 1]."""
        return F.interpolate(lr, size=check_size(size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)

    def split(self, lr: torch.Tensor, size) -> tuple[torch.Tensor, torch.Tensor]:
        """(Y (B, 1, H, W), CbCr (B, 2, H, W)) of the bicubic upsampling of ``lr`` (RGB in [0, 1]) to ``size``."""
        check_image_batch(lr, "lr")
        ycc = rgb_to_ycbcr(self.upsample(lr, size))
        return ycc[:, :1], ycc[:, 1:]

    def predict(self, lr: torch.Tensor, size) -> torch.Tensor:
        """RGB (normalised, unclamped, differentiable) of the output of size (H, W)."""
        y, cbcr = self.split(lr, size)
        return self.normalize(ycbcr_to_rgb(torch.cat([self.net(y), cbcr], dim=1)))

    def forward(self, lr: torch.Tensor, size) -> torch.Tensor:
        return self.denormalize(self.predict(lr, size)).clamp(0, 1)

    def _upscale(self, lr, H: int, W: int, tile: int, progress) -> torch.Tensor:
        y, cbcr = self.split(lr, (H, W))
        y = tiled(self.net, y, 1, tile, self.halo, progress, desc=f"memnet to {W}x{H}")
        return ycbcr_to_rgb(torch.cat([y.to(cbcr.dtype), cbcr], dim=1))


def build_memnet(blocks: int = 6, recursions: int = 6, multi_supervised: bool = True) -> MemNetSR:
    """MemNet M{blocks}R{recursions} for RGB images (:class:`MemNetSR`): M6R6 is the original, M3R3 and M4R4 are
    004's smaller nets; ``multi_supervised=False`` has one output. Lesson 11."""
    for name, value in (("blocks", blocks), ("recursions", recursions)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CourseError(f"{name} must be a positive integer (MemNet's M6R6: blocks=6, recursions=6), "
                              f"got {value!r}")
    return MemNetSR(MemNet(blocks, recursions, multi_supervised))
