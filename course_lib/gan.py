"""GAN training inside the course's trainer: SRGAN's alternating discriminator / generator step  (lesson 11).

Seed paper 004 trains SRGAN as Ledig does: first the generator alone on the pixel MSE (SRResNet, "pre-training"),
then alternating updates of the discriminator D and the generator G. This module is that second half, and nothing
else: ``course_lib.train`` keeps the one loop, the data order, the schedule, the checkpoints (atomic, with D and its
optimiser in the same ``last.pt``), the resume, the metric log, the validation and the progress bar. A config turns
it on with a non-empty ``loss.gan`` (``configs/srgan-x4.yaml``)::

    loss:
      pixel: mse               # 004's pixel term, images in [0, 1]
      content_weight: 0.006    # VGG19 conv5_4 (needs ImageNet weights: course_lib.imagenet)
      gan: {pretrain_steps: 5000, adversarial_weight: 1.0e-3, form: "004"}

One step of :class:`Adversary` (``Trainer.step`` calls it), at trainer step ``s``:

* ``s < pretrain_steps``: the generator's ordinary step on the pixel loss alone (no content, no adversarial term);
  D is not run at all, so its weights, batch statistics and optimiser stay as built.
* otherwise, on a batch (LR, HR) of the one training scale: ``SR = G(LR)`` once; D's update on
  ``discriminator_loss(D(HR), D(SR.detach()))``; then G's update on ``pixel + content_weight * VGG(SR, HR) +
  adversarial_weight * generator_adversarial_loss(D(SR))`` with the updated D (frozen while G's gradient flows
  through it), in ``leftthomas/SRGAN``'s order (its train.py runs G again after D's update; G has not changed,
  so one forward serves both). Both losses in 004's form (App. 7.3: ``mean(1 - D(SR))`` and
  ``mean(1 - D(HR) + D(SR))``) or Ledig's (``form: ledig``): ``course_lib.srgan``.

D is :class:`course_lib.srgan.Discriminator` for the HR patch (``data.patch x scale``, a multiple of 16) with 004's
dropout, on images in the normalised space [-1, 1] (the generator's output space). Its Adam uses
``lr`` (default ``optim.lr``, Ledig's 1e-4 for both) times the generator's schedule factor at the same step, so both
decay together and a resume needs no second schedule. Logged per ``run.log_every`` steps beside ``loss`` (G's total):
``g_pixel``, ``g_content``, ``g_adv``, ``d_loss``, ``d_real`` = mean D(HR), ``d_fake`` = mean D(SR); pre-training
steps log ``g_pixel`` only.

:func:`check_loss` checks the whole ``loss`` section when a config is read (``course_lib.config``).
"""

from __future__ import annotations

import math

import torch

from .errors import CourseError
from .srgan import ADVERSARIAL_WEIGHT, D_DROPOUT, Discriminator, discriminator_loss, generator_adversarial_loss

PIXEL_LOSSES = ("l1", "mse", "memnet", "memnet-004")
GAN_DEFAULTS = {"pretrain_steps": 0, "adversarial_weight": ADVERSARIAL_WEIGHT, "form": "004", "lr": None,
                "dropout": D_DROPOUT}


def gan_options(options: dict) -> dict:
    """``loss.gan`` checked, with :data:`GAN_DEFAULTS` filled in (lesson 11).

    ``pretrain_steps`` (int >= 0: steps of pixel loss only before D starts), ``adversarial_weight`` (004: 1e-3),
    ``form`` (``"004"`` or ``"ledig"``; YAML reads a bare 004 as the number 4, taken as "004"), ``lr`` (D's learning
    rate; null = ``optim.lr``), ``dropout`` (D's, in [0, 1); 004's DEFAULT 0.3). Anything else: one CourseError."""
    if not isinstance(options, dict):
        raise CourseError(f"loss.gan must be a mapping such as {{pretrain_steps: 1000}}, got {options!r}")
    unknown = sorted(set(options) - set(GAN_DEFAULTS))
    if unknown:
        raise CourseError(f"unknown key loss.gan.{unknown[0]}; valid keys: {', '.join(GAN_DEFAULTS)}")
    o = {**GAN_DEFAULTS, **options}
    if o["form"] in (4, "4"):
        o["form"] = "004"
    steps = o["pretrain_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise CourseError(f"loss.gan.pretrain_steps must be an integer >= 0, got {steps!r}")
    for key, low, high in (("adversarial_weight", 0.0, math.inf), ("dropout", 0.0, 1.0)):
        v = o[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (low <= v < high):
            raise CourseError(f"loss.gan.{key} must be a number in [{low:g}, {high:g}), got {v!r}")
        o[key] = float(v)
    if o["form"] not in ("004", "ledig"):
        raise CourseError(f"loss.gan.form must be '004' or 'ledig', got {o['form']!r}")
    if o["lr"] is not None:
        v = o["lr"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < math.inf):
            raise CourseError(f"loss.gan.lr must be a number > 0 or null (= optim.lr), got {v!r}")
        o["lr"] = float(v)
    return o


def check_loss(cfg) -> None:
    """The ``loss`` section of a config, checked when it is read: one CourseError per problem (lesson 11)."""
    loss, d = cfg.loss, cfg.data
    if loss.pixel not in PIXEL_LOSSES:
        raise CourseError(f"loss.pixel must be one of {', '.join(PIXEL_LOSSES)}, got {loss.pixel!r}")
    if loss.content_weight < 0:
        raise CourseError(f"loss.content_weight must be >= 0 (004: 0.006), got {loss.content_weight}")
    if d.recipe == "liif" and (loss.pixel != "l1" or loss.content_weight or loss.gan):
        raise CourseError("data.recipe=liif trains with the L1 loss only; loss.pixel, loss.content_weight and "
                          "loss.gan need data.recipe=authors")
    if not loss.gan:
        return
    gan_options(loss.gan)
    if len(d.scales) != 1:
        raise CourseError(f"a GAN trains at one scale (one discriminator input size), got data.scales={d.scales}; "
                          "set e.g. data.scales=[4]")
    hr = round(d.patch * d.scales[0])
    if hr % 16:
        raise CourseError(f"the discriminator needs HR patches of a multiple of 16 pixels (four stride-2 convs), got "
                          f"data.patch x scale = {hr}; e.g. data.patch=24 at x4 (96, Ledig's) or 16 (64)")


class Adversary:
    """The discriminator half of a GAN run: D, its Adam and GradScaler, and the alternating step (lesson 11).

    Built by ``train.Trainer`` when ``cfg.loss.gan`` is non-empty; ``Trainer.step`` calls :meth:`step`, and the
    trainer's checkpoint holds :meth:`state_dict` under ``"gan"``. See the module docstring."""

    def __init__(self, cfg, device: torch.device, amp_dtype=None, channels_last: bool = False):
        self.options = gan_options(cfg.loss.gan)
        patch = round(cfg.data.patch * cfg.data.scales[0])
        # D's initial weights from their own seed, leaving the global RNG as it was: the generator's pre-training
        # is then the same run, step for step, as the config without loss.gan (tested)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.run.seed + 1)
            self.d = Discriminator(patch, self.options["dropout"]).to(device)
        if channels_last:
            self.d = self.d.to(memory_format=torch.channels_last)
        if cfg.run.compile:
            self.d.compile()
        self.base_lr = self.options["lr"] or cfg.optim.lr
        self.optimizer = torch.optim.Adam(self.d.parameters(), lr=self.base_lr)  # beta1 0.9 (Ledig, 004)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    def pretraining(self, step: int) -> bool:
        """True while step ``step`` (0-based) is one of the generator's pixel-loss-only steps."""
        return step < self.options["pretrain_steps"]

    def step(self, trainer, batch) -> torch.Tensor:
        """One training step of the GAN run (pre-training, or D's update then G's); returns G's detached loss and
        leaves the logged terms in ``trainer.terms``."""
        if self.pretraining(trainer.steps_done):
            loss = trainer.update(batch, content=False)
            trainer.terms = {"g_pixel": loss}
            return loss
        if len(batch) != 1:
            raise CourseError(f"a GAN step takes the batch of one scale, got {len(batch)} scales; set one data.scales")
        (lr, hr), = batch
        model, objective, o = trainer.model, trainer.loss_fn, self.options
        model.train()
        self.d.train()
        factor = trainer.scheduler.lr_lambdas[0](trainer.steps_done)  # the generator's schedule, at this step
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * factor
        with trainer.autocast():
            pred, pixel = objective.generate(lr, hr)  # SR in normalised space, and its pixel loss
            real, fake = self.d(model.normalize(hr)).float(), self.d(pred.detach()).float()
        d_loss = discriminator_loss(real, fake, o["form"])
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(d_loss).backward()
        trainer.updating = True  # from D's update to the end of G's: not a state to save (Trainer.apply resets it)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.d.requires_grad_(False)  # G's gradient flows through D, D's own weights need none
        try:
            with trainer.autocast():
                d_sr = self.d(pred).float()
                content = objective.content(pred, hr)
            adversarial = generator_adversarial_loss(d_sr, o["form"])
            total = pixel + objective.content_weight * content + o["adversarial_weight"] * adversarial
            trainer.apply(total)
        finally:
            self.d.requires_grad_(True)
        trainer.terms = {"g_pixel": pixel.detach(), "g_content": content.detach(), "g_adv": adversarial.detach(),
                         "d_loss": d_loss.detach(), "d_real": real.mean().detach(), "d_fake": fake.mean().detach()}
        return total.detach()

    def state_dict(self) -> dict:
        return {"discriminator": self.d.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "options": dict(self.options)}

    def load_state_dict(self, state: dict) -> None:
        self.d.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
