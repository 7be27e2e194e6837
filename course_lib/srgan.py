"""SRResNet / SRGAN: a fixed x4 generator, a discriminator, and the perceptual and adversarial losses  (lesson 11).

Ledig et al. (CVPR'17, arXiv 1609.04802v5), as seed paper 004 trains it (16 residual blocks, x4, 64 or 96 pixel
HR patches, dropout in the discriminator).

**Generator** (:class:`SRResNet`, ``build("srresnet")``; 1,549,462 parameters with 16 blocks): conv9x9 3 -> 64 +
PReLU; ``blocks`` x [conv3x3, BN, PReLU, conv3x3, BN] + skip; conv3x3 + BN added to the first conv's output;
2 x [conv3x3 64 -> 256, PixelShuffle(2), PReLU]; conv9x9 64 -> 3. PReLU has one learnable slope per layer
(``nn.PReLU()``; the paper does not say). Post-upsampling: the network runs at LR size and its PixelShuffles make
exactly 4x the input, nothing else (``fixed_scale = 4``; asked for x3 it refuses, or with ``resize=True``
resizes its x4 output and warns: :mod:`course_lib.convsr`). Ranges as Ledig: LR in [0, 1] enters as it is; the
linear output is the HR image in [-1, 1] (the course's normalised space, so ``predict`` returns it unclamped and
``forward``/``upscale`` return (out + 1) / 2 clamped to [0, 1]).

**Discriminator** (:class:`Discriminator`): conv3x3 64 + LeakyReLU(0.2); 7 x [conv3x3, BN, LeakyReLU(0.2)] with
(channels, stride) (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2); Dense 1024 + LeakyReLU;
Dense 1 + sigmoid. The dense layer's input is 512 (P / 16)^2 for P x P patches (18,432 at 96, 8,192 at 64: 004's
"quick modification"), so ``patch`` is a parameter. 004 adds dropout to D (Dropout-GAN) without a rate: the
course puts ``Dropout(p=0.3)`` after every LeakyReLU (the note's DEFAULT).

**Losses** (images in [0, 1] where a network looks at them):

* :func:`pixel_loss`: MSE (Ledig, 004) or L1;
* :class:`VGGLoss`: the MSE between VGG19 features after the ReLU of conv5_4 (``vgg19().features[:36]``, on
  ImageNet-normalised RGB) of SR and HR, mean over C x H x W and the batch (004's 1/(W H C)). Ledig rescales the
  features by 1/12.75, i.e. the squared error by 1/12.75^2 = 0.00615; 004 (and ``leftthomas/SRGAN``) weight the
  plain MSE by **0.006** (``CONTENT_WEIGHT``), the same thing to 2.5 %;
* :func:`generator_adversarial_loss` and :func:`discriminator_loss` in 004's form (App. 7.3, as ``leftthomas/SRGAN``
  computes them: ``mean(1 - D(SR))`` and ``mean(1 - D(HR) + D(SR))``) or Ledig's (``-log D(SR)`` and the binary
  cross-entropy), with D's outputs in (0, 1);
* :func:`generator_loss`: 004's total, ``pixel + 0.006 * VGG + 1e-3 * adversarial``, term by term.

The VGG19 weights come from :mod:`course_lib.imagenet` (``weights="random"`` only for tests: without ImageNet
weights the content loss refuses, saying how to get them). Notebook: 11_fixed_scale.ipynb.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .convsr import ConvSR, fixed_output_size, tiled
from .errors import CourseError, check_image_batch

SCALE = 4
CONTENT_WEIGHT = 0.006  # lambda_1: the VGG term (Ledig's 1/12.75^2 = 0.00615, 004's 0.006)
ADVERSARIAL_WEIGHT = 1e-3  # lambda_2
D_STAGES = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))  # (channels, stride)
D_DROPOUT = 0.3


class ResidualBlock(nn.Module):
    """SRResNet's block: x + BN(conv(PReLU(BN(conv(x))))) with 3x3 convs. Lesson 11."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.PReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(ConvSR):
    """The SRGAN generator (SRResNet), x4 only. See the module docstring. Lesson 11."""

    fixed_scale = SCALE
    factor = SCALE

    def __init__(self, blocks: int = 16, channels: int = 64):
        super().__init__()
        self.n_blocks = int(blocks)
        self.head = nn.Sequential(nn.Conv2d(3, channels, 9, padding=4), nn.PReLU())
        self.body = nn.Sequential(*(ResidualBlock(channels) for _ in range(self.n_blocks)))
        self.body_end = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))
        self.upsample = nn.Sequential(*(layer for _ in range(2) for layer in (
            nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2), nn.PReLU())))
        self.tail = nn.Conv2d(channels, 3, 9, padding=4)
        self.config = {"name": "srresnet"}

    @property
    def halo(self) -> int:
        """LR pixels an output pixel depends on, on each side: the LR-size convs (head 4, 2 per block, 1 + 1) plus
        the 3x3 conv at 2x (half an LR pixel) and the 9x9 tail at 4x (one), rounded up where PixelShuffle's
        sub-pixel phase makes it so: 2 * blocks + 8 (40 for 16 blocks)."""
        return 2 * self.n_blocks + 8

    @property
    def floats_per_pixel(self) -> int:
        """Per LR pixel at the peak: the 256-channel conv at 2x (4 positions) and its shuffled copy at 4x."""
        return 40 * 64

    def net(self, lr: torch.Tensor) -> torch.Tensor:
        """The generator: LR (B, 3, h, w) in [0, 1] -> (B, 3, 4h, 4w) in normalised space, unclamped."""
        first = self.head(lr)
        return self.tail(self.upsample(first + self.body_end(self.body(first))))

    def predict(self, lr: torch.Tensor, size) -> torch.Tensor:
        """The x4 output in normalised space (unclamped, differentiable); ``size`` must be 4x the input size."""
        check_image_batch(lr, "lr")
        fixed_output_size(self.name, SCALE, lr.shape[-2:], size=size)
        return self.net(lr)

    def forward(self, lr: torch.Tensor, size) -> torch.Tensor:
        return self.denormalize(self.predict(lr, size)).clamp(0, 1)

    def _upscale(self, lr, H: int, W: int, tile: int, progress) -> torch.Tensor:
        return self.denormalize(tiled(self.net, lr, SCALE, tile, self.halo, progress, desc="srresnet x4"))


def build_srresnet(blocks: int = 16) -> SRResNet:
    """SRResNet, the SRGAN generator (x4): ``blocks=16`` as Ledig and 004; fewer for CPU smoke runs. Lesson 11
    (notebooks/11_fixed_scale.ipynb)."""
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise CourseError(f"blocks must be a positive integer (SRGAN: 16), got {blocks!r}")
    return SRResNet(blocks)


class Discriminator(nn.Module):
    """SRGAN's discriminator for ``patch`` x ``patch`` HR images in normalised space ([-1, 1]), 004's dropout.

    ``forward(x)`` -> D(x) in (0, 1), shape (B,). See the module docstring. Lesson 11."""

    def __init__(self, patch: int = 96, dropout: float = D_DROPOUT):
        super().__init__()
        if isinstance(patch, bool) or not isinstance(patch, int) or patch < 16 or patch % 16:
            raise CourseError(f"patch must be a multiple of 16 (four stride-2 convs halve it four times; 004: 64 or "
                              f"96), got {patch!r}")
        if not 0 <= float(dropout) < 1:
            raise CourseError(f"dropout must be in [0, 1), got {dropout!r}")
        self.patch, self.dropout = int(patch), float(dropout)

        def act():
            return [nn.LeakyReLU(0.2)] + ([nn.Dropout(self.dropout)] if self.dropout > 0 else [])

        layers, ch = [nn.Conv2d(3, 64, 3, padding=1), *act()], 64
        for out, stride in D_STAGES:
            layers += [nn.Conv2d(ch, out, 3, stride=stride, padding=1), nn.BatchNorm2d(out), *act()]
            ch = out
        self.features = nn.Sequential(*layers)
        self.flat = 512 * (self.patch // 16) ** 2
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(self.flat, 1024), *act(), nn.Linear(1024, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, "x")
        if tuple(x.shape[-2:]) != (self.patch, self.patch):
            raise CourseError(f"this discriminator was built for {self.patch}x{self.patch} patches, got "
                              f"{x.shape[-2]}x{x.shape[-1]}; build Discriminator(patch={x.shape[-1]}) or crop")
        return torch.sigmoid(self.classifier(self.features(x))).squeeze(1)


# ---------------------------------------------------------------------------------------------- losses
def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Mean squared (``"mse"``, Ledig and 004) or absolute (``"l1"``) error over every value. Lesson 11."""
    if kind not in ("mse", "l1"):
        raise CourseError(f"kind must be 'mse' or 'l1', got {kind!r}")
    if sr.shape != hr.shape:
        raise CourseError(f"sr and hr must have the same shape, got {tuple(sr.shape)} and {tuple(hr.shape)}")
    return F.mse_loss(sr, hr) if kind == "mse" else F.l1_loss(sr, hr)


class VGGLoss(nn.Module):
    """SRGAN's content loss: MSE of VGG19 ``features[:36]`` (after the ReLU of conv5_4) of SR and HR in [0, 1].

    ``weights``: ``"imagenet"`` (default; refuses with one line saying how to get the file when it is not here),
    a file path, or ``"random"`` (not ImageNet: tests only; ``weights_source`` says which). The VGG is frozen; the
    gradient flows to SR. Unweighted: :func:`generator_loss` multiplies by ``CONTENT_WEIGHT``. Lesson 11.
    """

    def __init__(self, weights="imagenet", download: bool = True, device=None):
        super().__init__()
        from .imagenet import load_backbone

        self.vgg = load_backbone("vgg19", weights, download=download, device=device)
        self.weights_source = self.vgg.weights_source

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """VGG19 conv5_4 features (after ReLU) of RGB in [0, 1]: (B, 512, H/16, W/16)."""
        from .imagenet import imagenet_normalize

        check_image_batch(x, "image")
        return self.vgg(imagenet_normalize(x))

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if sr.shape != hr.shape:
            raise CourseError(f"sr and hr must have the same shape, got {tuple(sr.shape)} and {tuple(hr.shape)}")
        with torch.no_grad():
            target = self.features(hr)
        return F.mse_loss(self.features(sr), target)


def _check_prob(d: torch.Tensor, name: str) -> None:
    if not isinstance(d, torch.Tensor) or d.numel() == 0 or bool(((d < 0) | (d > 1)).any()):
        raise CourseError(f"{name} must be the discriminator's outputs in [0, 1] (after the sigmoid)")


def generator_adversarial_loss(d_sr: torch.Tensor, form: str = "004") -> torch.Tensor:
    """The generator's adversarial term from D's outputs on SR images: ``mean(1 - D(SR))`` (004, App. 7.3) or
    ``mean(-log D(SR))`` (``form="ledig"``). Lesson 11."""
    _check_prob(d_sr, "d_sr")
    if form == "004":
        return (1 - d_sr).mean()
    if form == "ledig":
        return -torch.log(d_sr.clamp_min(1e-12)).mean()
    raise CourseError(f"form must be '004' or 'ledig', got {form!r}")


def discriminator_loss(d_hr: torch.Tensor, d_sr: torch.Tensor, form: str = "004") -> torch.Tensor:
    """D's loss: ``mean(1 - D(HR) + D(SR))`` (004) or the binary cross-entropy ``-mean(log D(HR) + log(1 -
    D(SR)))`` (``form="ledig"``); ``d_sr`` from detached SR images. Lesson 11."""
    _check_prob(d_hr, "d_hr")
    _check_prob(d_sr, "d_sr")
    if form == "004":
        return (1 - d_hr).mean() + d_sr.mean()
    if form == "ledig":
        return -(torch.log(d_hr.clamp_min(1e-12)).mean() + torch.log((1 - d_sr).clamp_min(1e-12)).mean())
    raise CourseError(f"form must be '004' or 'ledig', got {form!r}")


def generator_loss(sr: torch.Tensor, hr: torch.Tensor, d_sr: torch.Tensor | None = None, vgg: VGGLoss | None = None,
                   content_weight: float = CONTENT_WEIGHT, adversarial_weight: float = ADVERSARIAL_WEIGHT,
                   pixel: str = "mse", form: str = "004") -> dict:
    """004's generator objective, term by term: ``{"pixel", "content", "adversarial", "total"}`` (lesson 11).

    ``sr``, ``hr``: images in [0, 1] (``denormalize`` the generator's output, unclamped). ``total = pixel +
    content_weight * content + adversarial_weight * adversarial``; ``vgg=None`` leaves the content term out (0) and
    ``d_sr=None`` the adversarial one (SRResNet's MSE pre-training is ``generator_loss(sr, hr)``)."""
    terms = {"pixel": pixel_loss(sr, hr, pixel)}
    terms["content"] = vgg(sr, hr) if vgg is not None else sr.new_zeros(())
    terms["adversarial"] = generator_adversarial_loss(d_sr, form) if d_sr is not None else sr.new_zeros(())
    terms["total"] = terms["pixel"] + content_weight * terms["content"] + adversarial_weight * terms["adversarial"]
    return terms
