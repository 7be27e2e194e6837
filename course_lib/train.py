"""The trainer: one config file in, a trained checkpoint out (lesson 06).

Read top to bottom:

1. **Config** - ``course_lib/config.py``: a typed config (dataclasses with defaults) read from YAML, with
   ``base:`` chains and ``--override key=value``; this module re-exports its names (``train.load_config``).
2. **Data order** - step-indexed: global batch ``k`` of epoch ``e`` is a fixed slice of a permutation
   seeded by ``(seed, e)``, and every dataset item is drawn with the dataset's ``set_epoch(e)``.
   A resumed run therefore sees exactly the batches the interrupted run would have seen.
3. **Objective** - the authors' recipe (``recipe: authors``): for each scale in {2, 3, 4} a batch of
   (LR 48x48, HR 48s x 48s) pairs, L1 on normalised images averaged over the scales; or LIIF's recipe
   (``recipe: liif``): one scale per image from U(1, 4), ``sample_q`` random HR pixels queried. The ``loss``
   section swaps the pixel loss (MSE, MemNet's multi-supervised loss on Y), adds SRGAN's VGG content term, or a
   GAN (``course_lib.gan``: its step runs inside this trainer's step, its discriminator in the same checkpoint).
4. **Loop** - Adam (or SGD), learning rate halved at 1/5, 2/5, 3/5 and 4/5 of the run (or cosine), AMP (bf16 or fp16 +
   GradScaler on CUDA; bf16 on a CPU only where it is native, see ``course_lib.precision``), channels_last on CUDA,
   optional ``torch.compile``, optional gradient clipping, DistributedDataParallel under ``torchrun``.
5. **Checkpoints** - atomic ``last.pt`` / ``best.pt`` with everything needed to resume bit-exactly
   (model, optimiser, scheduler, scaler, RNG states, data position, config, step), JSON-lines metrics.
6. **Export** - :func:`export_pretrained` turns a checkpoint into a small fp16 file listed in
   ``course_lib/pretrained/index.json`` (read by ``models.load_pretrained``).

Command line: ``python -m course_lib train --config configs/diinn-edsr.yaml [--override k=v ...] [--resume]``.
Python: ``train.train("configs/diinn-edsr.yaml", overrides={"run.max_steps": 100})``.
Derived in notebooks/06_training.ipynb; docs/TRAINING.md has the recipes for CPU, one GPU and N GPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import allocator, gan, precision

# 1. Config: course_lib/config.py; its public names are part of the trainer's interface (train.load_config, ...)
from .config import (  # noqa: F401
    CONFIG_DIR,
    REPO_ROOT,
    SAFE_ON_RESUME,
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    ValConfig,
    build_model,
    config_to_yaml,
    load_config,
    parse_overrides,
    resume_changes,
    valid_keys,
)
from .errors import CourseError, pick_device
from .files import atomic_write, check_output_dir, clean_stale_temps

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
CHECKPOINT_FORMAT = "course_lib.train/1"


# ----------------------------------------------------------------------------------------------------
# 2. Data order: step-indexed, so that a resumed run sees exactly the same batches
# ----------------------------------------------------------------------------------------------------
class _Epoched(torch.utils.data.Dataset):
    """Wraps a dataset with ``set_epoch``: item ``(epoch, i)`` is ``dataset[i]`` drawn in that epoch.

    The epoch travels with the index, so DataLoader workers (each with its own copy) agree on it."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, i = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[i]


class StepBatches(torch.utils.data.Sampler):
    """Batches of ``(epoch, index)`` for steps ``start, start+1, ..., stop-1`` of one process (lesson 06).

    Epoch ``e`` uses the permutation ``numpy.random.default_rng([seed, e]).permutation(n)``; global step
    ``k`` takes the ``batch_size * world`` indices ``perm[j*B*W : (j+1)*B*W]`` (``j`` = position of ``k`` in
    its epoch; an incomplete tail is dropped) and rank ``r`` gets the ``r``-th slice of ``batch_size``.
    So the order depends only on (seed, step), never on how often the run was interrupted, and
    ``world`` processes with batch ``B`` see the same images as one process with batch ``B * world``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0,
                 world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self.steps_per_epoch = n // (batch_size * world)
        if self.steps_per_epoch < 1:
            raise CourseError(f"the training set has {n} items, fewer than one step needs ({batch_size} per "
                              f"process x {world} processes): lower data.batch_size or raise data.repeat")

    def __len__(self):
        return max(0, self.stop - self.start)

    def batch_at(self, step: int) -> list[tuple[int, int]]:
        """This process's ``(epoch, index)`` pairs for global step ``step``."""
        epoch, j = divmod(step, self.steps_per_epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        g = self.batch_size * self.world
        mine = perm[j * g + self.rank * self.batch_size: j * g + (self.rank + 1) * self.batch_size]
        return [(epoch, int(i)) for i in mine]

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield self.batch_at(step)


def build_dataset(cfg: Config):
    """The training dataset of the config (``data.MultiScalePatches`` or ``data.LIIFPatches``) (lesson 06)."""
    from . import data

    d = cfg.data
    hr = data.training_images(d.train_dir, cache=d.cache)  # CourseError for a missing or empty folder
    top = max(d.scales) if d.recipe == "authors" else d.scale_max
    need = math.ceil(d.patch * top - 1e-9)
    sizes = hr.sizes  # (H, W) from the file headers
    if sizes and max(min(s) for s in sizes) < need:
        big = max(sizes, key=min)
        raise CourseError(f"an HR crop of {need} px (patch {d.patch} x scale {top:g}) is larger than every "
                          f"training image (largest {big[0]}x{big[1]}); lower data.patch or the scales")
    if d.recipe == "authors":
        return data.MultiScalePatches(hr, scales=tuple(d.scales), patch=d.patch, repeat=d.repeat,
                                      seed=cfg.run.seed, degrade=tuple(d.degrade))
    return data.LIIFPatches(hr, scale_min=d.scale_min, scale_max=d.scale_max, patch=d.patch,
                            sample_q=d.sample_q, repeat=d.repeat, seed=cfg.run.seed, degrade=tuple(d.degrade))


# ----------------------------------------------------------------------------------------------------
# 3. Objective: the loss of one batch (a module, so that DistributedDataParallel can wrap it)
# ----------------------------------------------------------------------------------------------------
class Objective(nn.Module):
    """The loss of one batch for either recipe (lesson 06; the ``loss`` section: lesson 11).

    * ``authors``: batch = list over scales of (lr (B,3,p,p), hr (B,3,ps,ps)) in [0, 1]; loss = mean over the
      scales of the pixel loss of ``model.predict(lr, hr size)`` (every HR pixel of every patch queried), plus
      ``content_weight`` x SRGAN's VGG content loss ``vgg`` when one is given. Pixel losses (``pixel``): ``l1``
      (the authors': L1 on normalised images), ``mse`` (MSE on images in [0, 1]: SRResNet, 004),
      ``memnet`` / ``memnet-004`` (MemNet's Euclidean loss on Y over the final and every intermediate output,
      ``memnet.memnet_loss`` with Tai's or 004's weighting; MemNet only).
    * ``liif``: batch = dict(lr, coord, cell, gt); loss =
      ``L1(model.query(encoder(normalize(lr)), coord, cell), normalize(gt))``.

    ``last_terms`` keeps the detached ``pixel`` and ``content`` terms of the last batch when there are two."""

    def __init__(self, model: nn.Module, recipe: str = "authors", pixel: str = "l1", vgg: nn.Module | None = None,
                 content_weight: float = 0.0):
        super().__init__()
        self.model, self.recipe, self.pixel = model, recipe, pixel
        self.vgg, self.content_weight = vgg, float(content_weight)
        self.last_terms: dict = {}

    def generate(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(SR of ``lr`` at ``hr``'s size in normalised space (differentiable), its pixel loss against ``hr``)."""
        m, size = self.model, tuple(hr.shape[-2:])
        if self.pixel in ("memnet", "memnet-004"):
            from .memnet import memnet_loss
            from .metrics import rgb_to_ycbcr, ycbcr_to_rgb

            y_in, cbcr = m.split(lr, size)
            y, ys = m.net.outputs(y_in)
            yf = y.float()
            ysf = [yf] if len(ys) == 1 and ys[0] is y else [p.float() for p in ys]
            loss = memnet_loss(yf, ysf, rgb_to_ycbcr(hr.float())[:, :1], "tai" if self.pixel == "memnet" else "004")
            return m.normalize(ycbcr_to_rgb(torch.cat([y.to(cbcr.dtype), cbcr], dim=1))), loss
        pred = m.predict(lr, size=size)
        if self.pixel == "mse":
            return pred, F.mse_loss(m.denormalize(pred.float()), hr.float())
        return pred, F.l1_loss(pred.float(), m.normalize(hr).float())

    def content(self, pred: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """The VGG content loss of SR (normalised ``pred``) against ``hr`` (0 without a VGG)."""
        if self.vgg is None:
            return pred.new_zeros((), dtype=torch.float32)
        return self.vgg(self.model.denormalize(pred).float(), hr.float()).float()

    def forward(self, batch, content: bool = True):
        m = self.model
        if self.recipe == "authors":
            totals, pixels, contents = [], [], []
            for lr, hr in batch:
                pred, loss = self.generate(lr, hr)
                pixels.append(loss)
                if content and self.vgg is not None:
                    contents.append(self.content(pred, hr))
                    loss = loss + self.content_weight * contents[-1]
                totals.append(loss)
            self.last_terms = {"pixel": torch.stack(pixels).mean().detach(),
                               "content": torch.stack(contents).mean().detach()} if contents else {}
            return torch.stack(totals).mean()
        feat = m.encoder(m.normalize(batch["lr"]))
        pred = m.query(feat, batch["coord"], batch["cell"], lr=m.normalize(batch["lr"]))
        return F.l1_loss(pred.float(), m.normalize(batch["gt"]).float())


def content_network(loss: LossConfig, device) -> nn.Module | None:
    """SRGAN's VGG content loss for ``loss.content_weight > 0`` (None otherwise): ImageNet VGG19 weights or one line
    saying how to get them; ``loss.vgg_weights=random`` only for tests and smoke runs (lesson 11)."""
    if not loss.content_weight:
        return None
    from .srgan import VGGLoss

    try:
        return VGGLoss(loss.vgg_weights, device=device)
    except CourseError as err:
        raise CourseError(f"loss.content_weight={loss.content_weight:g} needs VGG19 weights: {err} (in a config: "
                          "loss.vgg_weights=/path/to/vgg19-dcbb9e9d.pth, or loss.vgg_weights=random for a smoke "
                          "run that is NOT the perceptual loss)") from None


def check_fits(cfg: Config, model: nn.Module, world: int = 1) -> None:
    """Refuse at the start of a run, in one line, a config this model cannot train with (lesson 11): the
    LIIF recipe for a convolutional model, other scales for a fixed-scale one (training or validation), MemNet's
    loss for another model, a GAN under several processes."""
    name = getattr(model, "config", {}).get("name", type(model).__name__)
    if cfg.data.recipe == "liif" and not (hasattr(model, "encoder") and hasattr(model, "query")):
        raise CourseError(f"data.recipe=liif queries coordinates of an implicit model (diinn, liif, metasr); {name} "
                          "is convolutional: use data.recipe=authors")
    fixed = getattr(model, "fixed_scale", None)
    if fixed is not None:
        for key, scales in (("data.scales", cfg.data.scales), ("val.scales", cfg.val.scales)):
            if cfg.data.recipe == "liif" or any(float(s) != fixed for s in scales):
                raise CourseError(f"{name} is a fixed x{fixed} model but {key}={list(scales)}; set {key}=[{fixed}]")
    if cfg.loss.pixel in ("memnet", "memnet-004") and not hasattr(getattr(model, "net", None), "outputs"):
        raise CourseError(f"loss.pixel={cfg.loss.pixel} is MemNet's loss on Y and needs model.name=memnet; for "
                          f"{name} use loss.pixel=l1 or mse")
    if cfg.loss.gan and world > 1:
        raise CourseError("GAN training (loss.gan) runs in one process; start it without torchrun")


def compile_parts(model: nn.Module) -> None:
    """``torch.compile`` the networks of a model (run.compile): DIINN's / LIIF's encoder and decoder, or each
    top-level part of a convolutional model (MemNet's ``net``, SRResNet's head, body, ... tail) (lesson 06)."""
    parts = [model.encoder, model.decoder] if hasattr(model, "encoder") and hasattr(model, "decoder") \
        else list(model.children())
    for part in parts:
        part.compile()


def _to_device(batch, device, channels_last: bool):
    """Move a (nested list/dict) batch to the device; 4-D image tensors in channels_last when asked."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device, channels_last) for v in batch)
    return batch


# ----------------------------------------------------------------------------------------------------
# 4. The loop's pieces: device, precision, optimiser, one step
# ----------------------------------------------------------------------------------------------------
class LRFactor:
    """The learning-rate factor at step ``s`` (lesson 06): a linear warm-up, then

    * ``step`` (the authors'): ``gamma ** (number of milestones passed)``, milestones = fractions of max_steps;
    * ``cosine``: ``0.5 * (1 + cos(pi * t))``, t = progress from the end of the warm-up to ``max_steps``.

    A callable object (not a lambda), so that LambdaLR saves it with the scheduler and a run whose
    ``max_steps`` was planned from a time budget resumes with the same schedule."""

    def __init__(self, max_steps: int, milestones=(), gamma: float = 0.5, schedule: str = "step",
                 warmup_steps: int = 0):
        self.max_steps, self.milestones, self.gamma = int(max_steps), [float(m) for m in milestones], gamma
        self.schedule, self.warmup_steps = schedule, int(warmup_steps)

    def __call__(self, s: int) -> float:
        warm = min(1.0, (s + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.schedule == "cosine":
            span = max(1, self.max_steps - self.warmup_steps)
            t = min(1.0, max(0.0, (s - self.warmup_steps) / span))
            return warm * 0.5 * (1 + math.cos(math.pi * t))
        steps = [int(round(m * self.max_steps)) for m in self.milestones]
        return warm * self.gamma ** sum(s >= m for m in steps)


def make_optimizer(params, o) -> torch.optim.Optimizer:
    """``optim.name``: Adam (PyTorch's default betas; the authors', Ledig's) or SGD with ``optim.momentum`` (MemNet's
    original solver); ``optim.weight_decay`` for either (lesson 06)."""
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)


def make_schedule(optimizer, max_steps: int, milestones, gamma: float, schedule: str = "step",
                  warmup_steps: int = 0):
    """LambdaLR driven by :class:`LRFactor` (step decay at fractions of ``max_steps``, or cosine)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LRFactor(max_steps, milestones, gamma, schedule,
                                                                 warmup_steps))


class Trainer:
    """Model + optimiser + schedule + precision on one device: ``step(batch) -> loss`` (lesson 06).

    Used by :func:`train` and by scripts/bench_train.py. ``ddp=True`` wraps the objective in
    DistributedDataParallel (the process group must exist)."""

    def __init__(self, model: nn.Module, cfg: Config, device: torch.device, ddp: bool = False):
        self.cfg, self.device = cfg, device
        self.channels_last = cfg.run.channels_last == "on" or (cfg.run.channels_last == "auto"
                                                                and device.type == "cuda")
        self.model = model.to(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        check_fits(cfg, self.model, world=2 if ddp else 1)
        if cfg.run.compile:
            compile_parts(self.model)
        vgg = content_network(cfg.loss, device)
        self.loss_fn = Objective(self.model, cfg.data.recipe, cfg.loss.pixel, vgg, cfg.loss.content_weight)
        self.objective: nn.Module = self.loss_fn
        if ddp:
            ids = [device.index] if device.type == "cuda" else None
            self.objective = nn.parallel.DistributedDataParallel(self.objective, device_ids=ids)
        self.amp_dtype = precision.autocast_dtype(cfg.run.amp, device)
        self.heap_reused = allocator.apply(cfg.run.cpu_heap, device)  # glibc heap reuse on a CPU (2.6x a step)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.optimizer = make_optimizer(self.model.parameters(), cfg.optim)
        o = cfg.optim
        self.scheduler = make_schedule(self.optimizer, cfg.run.max_steps, o.milestones, o.gamma, o.schedule,
                                       o.warmup_steps)
        self.updating = False
        self.terms: dict = {}  # the loss's terms at the last step (GAN: G's and D's), logged beside the loss
        self.adversary = gan.Adversary(cfg, device, self.amp_dtype, self.channels_last) if cfg.loss.gan else None

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, batch) -> torch.Tensor:
        """One training step on a batch already on the device (a GAN's: D's update, then G's); returns the detached
        loss and leaves its terms in ``self.terms``."""
        if self.adversary is not None:
            return self.adversary.step(self, batch)
        return self.update(batch)

    def update(self, batch, content: bool = True) -> torch.Tensor:
        """The model's optimisation step on its own loss (``content=False``: the pixel loss alone)."""
        self.model.train()
        with self.autocast():
            loss = self.objective(batch, content=content)
        self.terms = dict(self.loss_fn.last_terms) if content else {}
        self.apply(loss)
        return loss.detach()

    def apply(self, loss: torch.Tensor) -> None:
        """Backward, optional gradient clipping, the optimiser's and the schedule's step for the model's ``loss``."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.updating = True  # weights, optimiser and schedule change together: not a state to save
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.updating = False

    def set_max_steps(self, max_steps: int) -> None:
        """Stretch or shrink the schedule to ``max_steps`` (a run planned from its time budget)."""
        factor = self.scheduler.lr_lambdas[0]
        factor.max_steps = int(max_steps)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * factor(self.steps_done)
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    @property
    def steps_done(self) -> int:
        """Completed optimisation steps (the schedule counts them, and is saved with the checkpoint)."""
        return self.scheduler.last_epoch

    def state_dict(self) -> dict:
        state = {"state_dict": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict()}
        if self.adversary is not None:
            state["gan"] = self.adversary.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.adversary is not None:
            if "gan" not in state:
                raise CourseError("this config trains a GAN (loss.gan) but the checkpoint holds no discriminator; "
                                  "resume with the checkpoint's own config, or start a new run")
            self.adversary.load_state_dict(state["gan"])
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        o = self.cfg.optim  # the schedule follows this config (a saved LRFactor's fields are overwritten)
        self.scheduler.lr_lambdas[0].__dict__.update(
            LRFactor(self.cfg.run.max_steps, o.milestones, o.gamma, o.schedule, o.warmup_steps).__dict__)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


# ----------------------------------------------------------------------------------------------------
# 5. Checkpoints and logs
# ----------------------------------------------------------------------------------------------------
def rng_state() -> dict:
    """torch, CUDA, Python and numpy RNG states (numpy's array as a tensor, so weights_only loads it)."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))


def load_checkpoint(path) -> dict:
    """A training checkpoint written by :func:`train` (CourseError if missing or not one)."""
    from . import models

    ckpt = models.read_checkpoint(path)  # missing, unreadable or not a model checkpoint: one line
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CourseError(f"{path} is not a training checkpoint of course_lib.train (format tag "
                          f"{CHECKPOINT_FORMAT!r} missing); resume from runs/<name>/last.pt")
    return ckpt


def read_metrics(run_dir) -> list[dict]:
    """The JSON lines of ``<run_dir>/metrics.jsonl`` as a list of dicts (for plots in the notebook)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise CourseError(f"{path} does not exist; is {run_dir} a run folder made by course_lib.train?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "config.yaml")  # what a run writes (atomically) in its folder


def _truncate_log(path: Path, step: int) -> None:
    """Drop metric lines written after ``step`` (a resumed run redoes those steps); atomic, so a kill during it
    leaves the old log, never an empty one."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        keep = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
        if len(keep) < len(lines):
            atomic_write(path, lambda f: f.write("".join(ln + "\n" for ln in keep)), "w")


def _weights_finite(model: nn.Module) -> bool:
    """True when every parameter is finite (one check on the device, one synchronisation)."""
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


class Validator:
    """Validation PSNR on held-out HR images (lesson 06): ``Validator(cfg)(model) -> {"val_psnr", "val"}``.

    ``cfg.val.sets`` holds dataset names (``Set5`` -> ``data.get_dataset``) or folders of images;
    ``cfg.val.limit`` keeps the first images of each. LR inputs are made once with the protocol's
    ``make_pair`` (paper: antialiased bicubic on uint8), the model upscales to the HR size, and
    ``metrics.psnr`` scores it under the same protocol. The RNG states are left untouched.
    """

    def __init__(self, cfg: Config):
        from . import data, metrics

        self.protocol = metrics.get_protocol(cfg.val.protocol)
        self.pairs = []  # (label, scale, lr float (1,3,h,w), hr float (1,3,H,W))
        for entry in cfg.val.sets:
            folder = Path(entry).expanduser()
            if folder.is_dir():
                label = folder.parent.name if folder.name == "HR" else folder.name
                hr_set = data.HRFolder(folder, limit=cfg.val.limit)
            elif entry in data.DATASETS:
                label, hr_set = entry, data.get_dataset(entry, limit=cfg.val.limit)
            else:
                raise CourseError(f"validation set {entry!r} is neither a folder nor a dataset name "
                                  f"({', '.join(data.DATASETS)}); fix val.sets")
            n = len(hr_set)
            for i in range(n):
                hr_u8 = hr_set[i]
                for s in cfg.val.scales:
                    lr_u8, hr_used = self.protocol.make_pair(hr_u8, s)
                    self.pairs.append((f"{label} x{s:g}", s, lr_u8[None].float() / 255,
                                       hr_used[None].float() / 255))

    def __call__(self, model: nn.Module) -> dict:
        from . import metrics

        was_training, saved = model.training, rng_state()
        model.eval()
        device = next(iter(model.parameters()), torch.empty(0)).device
        scores: dict[str, list[float]] = {}
        try:
            for label, s, lr, hr in self.pairs:
                sr = model.upscale(lr.to(device), size=tuple(hr.shape[-2:]), progress=False).float().cpu()
                scores.setdefault(label, []).append(metrics.psnr(sr, hr, self.protocol.name, scale=s))
        finally:
            model.train(was_training)
            set_rng_state(saved)
        per = {k: float(np.mean(v)) for k, v in scores.items()}
        return {"val_psnr": float(np.mean(list(per.values()))), "val": per}


# ----------------------------------------------------------------------------------------------------
# 6. train(): the whole run
# ----------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What :func:`train` returns: where the run lives and how it ended."""

    out_dir: Path
    step: int
    last: Path | None
    best: Path | None
    best_psnr: float | None
    interrupted: bool
    history: list = field(default_factory=list)  # the metric lines written by this call
    model: nn.Module | None = None  # the trained model (this process's copy, on its device)
    stopped_by: str | None = None  # "signal" (Ctrl-C or SIGTERM: the CLI exits 130 / 143), "deadline", or None
    signal: int | None = None  # the signal that stopped the run (signal.SIGINT or signal.SIGTERM)


def _dist_setup() -> tuple[int, int, bool]:
    """(rank, world, we_initialised) from torchrun's environment; initialises the process group if needed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    import torch.distributed as dist

    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size(), True


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _run_step(trainer: Trainer, batch) -> torch.Tensor:
    """One training step; out-of-memory and a learning rate that overflows float32 become a CourseError with the fix."""
    try:
        return trainer.step(batch)
    except torch.cuda.OutOfMemoryError:
        d = trainer.cfg.data
        raise CourseError(f"out of GPU memory with data.batch_size={d.batch_size} and data.patch={d.patch}: "
                          "lower one of them (or use run.amp=bf16/fp16)") from None
    except RuntimeError as err:
        if "without overflow" not in str(err):
            raise
        raise CourseError(f"training stopped at step {trainer.steps_done + 1}: the update overflows float32 with "
                          f"optim.lr={trainer.cfg.optim.lr:g} (Adam's step is lr / (1 - 0.9) at first); start a "
                          "new run with a much lower optim.lr") from None


def train(config=None, overrides=None, resume=None, deadline: float | None = None) -> TrainResult:
    """Train a model from a config (path, name in configs/, dict or Config) (lesson 06).

    ``overrides``: ``["run.max_steps=100", ...]`` or ``{"run.max_steps": 100}``. ``resume``: a checkpoint
    path, ``True``/``"last"`` for ``<out_dir>/last.pt``, or ``"auto"``: continue ``<out_dir>/last.pt`` when it
    exists, else start (a notebook cell that can be re-run). With ``config=None`` the checkpoint's own config
    is used. A new run refuses a folder that already holds ``last.pt``, or ``best.pt`` / ``metrics.jsonl`` of an
    earlier run. A resume refuses a config that differs from the checkpoint's in a key outside
    :data:`SAFE_ON_RESUME` and never rewrites ``config.yaml``. A NaN or infinite loss stops the run with one
    CourseError naming the step; nothing is saved after it.

    Under ``torchrun --nproc_per_node N`` each process trains with DistributedDataParallel on its share of
    every global batch; only rank 0 logs and writes files. A first Ctrl-C (SIGINT) or SIGTERM stops after the current
    step and saves ``last.pt``; the run continues bit-exactly with ``resume``. ``deadline`` (a ``time.time()``
    value) stops the run the same way once passed: a window of a longer run (scripts/gpu_campaign.py).
    """
    from . import models

    ckpt = None
    named = resume in (True, "last", "auto")
    if resume not in (None, False) and not named:
        ckpt = load_checkpoint(resume)
        if config is None:
            config = ckpt["train_config"]
    cfg = load_config(config, overrides)
    out_dir = check_output_dir(Path(cfg.run.out_dir) if cfg.run.out_dir else Path("runs") / cfg.name, "run.out_dir")
    source = resume
    if resume in (True, "last") or (resume == "auto" and (out_dir / "last.pt").is_file()):
        source = out_dir / "last.pt"
        ckpt = load_checkpoint(source)
    elif ckpt is None:
        _refuse_used_folder(out_dir)

    rank, world, own_group = _dist_setup()
    try:
        device = pick_device(cfg.run.device)
        seed_everything(cfg.run.seed)
        model = build_model(cfg.model)
        check_fits(cfg, model, world)  # before the data is read: what this model cannot train is refused at once
        if ckpt is None and cfg.run.init_from:
            init_weights(model, cfg.run.init_from)
        if ckpt is not None and dict(ckpt["config"]) != dict(model.config):
            have, want = models.describe(ckpt["config"]), models.describe(model.config)
            raise CourseError(f"the resume checkpoint holds {have} but this config builds {want}; "
                              "resume with the checkpoint's own config")
        changed = resume_changes(cfg, ckpt["train_config"]) if ckpt is not None else []
        if changed:
            listed = ", ".join(f"{k} ({old} -> {new})" for k, old, new in changed)
            raise CourseError(f"cannot resume {source} with changed {listed}: that would change what the run trains "
                              f"(only {', '.join(SAFE_ON_RESUME)} may change); resume without the change, or start "
                              "a new run in another run.out_dir")
        dataset = build_dataset(cfg)
        trainer = Trainer(model, cfg, device, ddp=world > 1)
        start, elapsed, best_psnr, plan = 0, 0.0, None, None
        if ckpt is not None:
            trainer.load_state_dict(ckpt)
            set_rng_state(ckpt["rng"])
            start, elapsed, best_psnr = int(ckpt["step"]), float(ckpt["elapsed"]), ckpt.get("best_psnr")
            plan = ckpt.get("plan") if cfg.run.max_minutes else None
        if plan:
            trainer.set_max_steps(plan["max_steps"])
        return _loop(cfg, trainer, dataset, out_dir, start, elapsed, best_psnr, rank, world, plan, deadline,
                     resumed=ckpt is not None)
    finally:
        if own_group:
            torch.distributed.destroy_process_group()


def init_weights(model: nn.Module, source: str) -> nn.Module:
    """Load trained weights into a new run's model (``run.init_from``; lesson 11: SRGAN starts from SRResNet).

    ``source``: a checkpoint file (a run's ``last.pt`` / ``best.pt`` or an exported model) or the name of a shipped
    model (``python -m course_lib list-pretrained``). Only the weights travel: the optimiser, schedule and step
    start afresh. A checkpoint of another architecture is refused in one line naming both."""
    from . import models

    try:
        if not Path(source).exists() and source in models.list_pretrained():  # a shipped model, sha256 verified
            trained = models.load_pretrained(source)
            return models.load_state(model, {"config": trained.config, "state_dict": trained.state_dict()}, source)
        return models.load_state(model, source)
    except CourseError as err:
        raise CourseError(f"run.init_from={source}: {err}") from None


def _refuse_used_folder(out_dir: Path) -> None:
    """A new run would replace an earlier run's best.pt or metrics.jsonl: refuse, naming them and the ways out."""
    found = [name for name in ("last.pt", "best.pt", "metrics.jsonl")
             if (out_dir / name).is_file() and (out_dir / name).stat().st_size > 0]
    if "last.pt" in found:
        raise CourseError(f"{out_dir} already holds a run (last.pt); continue it with resume (--resume), "
                          "or give another run.out_dir, or delete the folder")
    if found:
        way = (f"continue from its best.pt with --resume {out_dir / 'best.pt'}" if "best.pt" in found
               else "move those files away")
        raise CourseError(f"{out_dir} holds {' and '.join(found)} of an earlier run (no last.pt) that a new run would "
                          f"replace; {way}, or give another run.out_dir")


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops cleanly after the current step."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def plan_steps(rate: float, seconds_left: float, val_seconds: float = 0.0, val_every: int = 0,
               reserve: float = 0.03) -> int:
    """How many more steps fit in ``seconds_left`` (lesson 06): steps at ``rate`` per second, plus a
    validation of ``val_seconds`` every ``val_every`` steps and one at the end, keeping ``reserve`` of the
    time for saving. Solves ``n / rate + val_seconds * (1 + n / val_every) = (1 - reserve) * seconds_left``."""
    usable = (1 - reserve) * seconds_left - val_seconds
    per_step = 1 / rate + (val_seconds / val_every if val_every else 0.0)
    return max(0, int(usable / per_step))


def _loop(cfg, trainer, dataset, out_dir, start, elapsed, best_psnr, rank, world, plan=None,
          deadline=None, resumed: bool = False) -> TrainResult:
    from tqdm.auto import tqdm

    from . import models

    main = rank == 0
    log_path = out_dir / "metrics.jsonl"
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        stale = clean_stale_temps(out_dir, RUN_FILES)  # left by a save that was killed
        if stale:
            print(f"removed {len(stale)} temporary file(s) left by an interrupted save: "
                  f"{', '.join(p.name for p in stale)}")
        if not resumed or not (out_dir / "config.yaml").is_file():  # a resume never rewrites the run's config
            atomic_write(out_dir / "config.yaml", lambda f: f.write(config_to_yaml(cfg)), "w")
        print(precision.describe(trainer.amp_dtype, trainer.device), flush=True)
        if trainer.device.type == "cpu":
            print(allocator.describe(), flush=True)
        if trainer.loss_fn.vgg is not None:
            print(f"content loss: VGG19 weights {trainer.loss_fn.vgg.weights_source}", flush=True)
        _truncate_log(log_path, start)
    budget = cfg.run.max_minutes * 60 if cfg.run.max_minutes else None
    end = plan["max_steps"] if plan else cfg.run.max_steps  # the schedule's last step (planned: fits the budget)
    stop = min(end, cfg.run.stop_at or end)
    calib_from = start + 5 if budget and not plan else None  # time steps calib_from .. + calibrate_steps
    sampler = StepBatches(len(dataset), cfg.data.batch_size, cfg.run.seed, start, stop, rank, world)
    loader = torch.utils.data.DataLoader(
        _Epoched(dataset), batch_sampler=sampler, num_workers=cfg.data.num_workers,
        pin_memory=trainer.device.type == "cuda", worker_init_fn=_ignore_sigint,
        generator=torch.Generator().manual_seed(cfg.run.seed))

    wants_val = cfg.val.sets and (cfg.val.every or stop == end or budget)  # val.sets: [] = no validation
    validator = Validator(cfg) if main and wants_val else None
    history: list[dict] = []
    step, last, best = start, None, (out_dir / "best.pt" if (out_dir / "best.pt").exists() else None)
    stop_requested = []  # why the run stops early: "signal" (Ctrl-C or SIGTERM), "deadline"
    caught = []  # the signal numbers received (the CLI exits 128 + the first)
    bad_step = torch.zeros((), dtype=torch.long, device=trainer.device)  # first step with a non-finite loss (0: none)

    def on_sigint(signum, frame):  # first Ctrl-C or SIGTERM: finish this step, save, return; second: raise now
        if stop_requested:
            raise KeyboardInterrupt
        stop_requested.append("signal")
        caught.append(signum)

    def check_finite(everywhere: bool = True) -> None:
        """Stop the run (one line naming the step) once a loss was NaN or infinite: nothing more is logged, saved or
        validated, so last.pt and best.pt keep their earlier, finite states. ``everywhere``: agree across processes."""
        flag = bad_step
        if everywhere and world > 1:
            flag = flag.clone()
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if int(flag):
            raise CourseError(f"training stopped: the loss is not finite (NaN or inf) at step {int(flag)}; nothing "
                              f"was saved after it ({out_dir} keeps earlier checkpoints); start a new run with a "
                              "lower optim.lr or with optim.grad_clip")

    def log(line: dict) -> None:
        history.append(line)
        if main:
            with open(log_path, "a") as f:
                f.write(json.dumps(line) + "\n")

    def save(name: str) -> Path:
        check_finite(everywhere=False)
        if not _weights_finite(trainer.model) or (trainer.adversary and not _weights_finite(trainer.adversary.d)):
            raise CourseError(f"training stopped: the weights are not finite after step {step} (the learning rate is "
                              f"too large?); nothing was saved after it ({out_dir} keeps earlier checkpoints); start "
                              "a new run with a lower optim.lr or with optim.grad_clip")
        state = trainer.state_dict()
        spe = sampler.steps_per_epoch
        state.update(format=CHECKPOINT_FORMAT, config=dict(trainer.model.config), step=step, epoch=step//spe,
                     plan=plan,
                     elapsed=elapsed + time.time() - t0, best_psnr=best_psnr, extra={"step": step},
                     train_config=dataclasses.asdict(cfg), rng=rng_state(),
                     data_order={"seed": cfg.run.seed, "steps_per_epoch": spe, "world": world,
                                 "batch_size": cfg.data.batch_size, "items": len(dataset)})
        return models.atomic_save(state, out_dir / name)

    def maybe_validate() -> float:
        """Validate (rank 0), keep best.pt; returns the seconds it took."""
        nonlocal best, best_psnr, val_total, n_val
        if not cfg.val.sets:
            return 0.0
        tv = time.time()
        if main:
            res = validator(trainer.model)
            log({"step": step, "time": round(elapsed + time.time() - t0, 2), **res})
            if best_psnr is None or res["val_psnr"] > best_psnr:
                best_psnr = res["val_psnr"]
                best = save("best.pt")
            bar.set_postfix_str(f"loss {run_loss:.4f} val {res['val_psnr']:.2f} dB")
        _barrier(world)
        val_total, n_val = val_total + time.time() - tv, n_val + 1
        return time.time() - tv

    def make_plan() -> None:
        """Time budget: from the measured speed, fix the schedule's length so the run ends in time."""
        nonlocal plan
        rate = cfg.run.calibrate_steps / (time.time() - t_cal)
        val_s = maybe_validate() if cfg.val.sets and cfg.val.every else 0.0
        plan = {"max_steps": set_end(rate, val_s), "steps_per_s": round(rate, 4), "val_seconds": round(val_s, 2),
                "max_minutes": cfg.run.max_minutes}
        log({"step": step, "plan": dict(plan)})
        mark_reference()

    def set_end(rate: float, val_s: float) -> int:
        """Fix the schedule's last step so that the rest of the budget fits (every process agrees)."""
        nonlocal end, stop
        left = budget - (elapsed + time.time() - t0)
        end = min(cfg.run.max_steps, step + plan_steps(rate, left, val_s, cfg.val.every))
        if world > 1:  # every process must agree on the plan
            t = torch.tensor([float(end)], device=trainer.device)
            torch.distributed.broadcast(t, 0)
            end = int(t.item())
        stop = min(end, cfg.run.stop_at or end)
        trainer.set_max_steps(end)
        bar.total = end
        return int(end)

    def mark_reference() -> None:
        """Start timing the steps that the re-plan measures (after the plan, or a few steps into a resume)."""
        nonlocal ref
        ref = (step, time.time(), val_total, n_val)

    def wants_replan() -> bool:
        """Once ``run.replan_at`` of the budget is spent and ``run.calibrate_steps`` steps were timed since the
        reference: the same answer in every process."""
        if not (ref and plan and cfg.run.replan_at and "replanned_at" not in plan):
            return False
        due = step - ref[0] >= cfg.run.calibrate_steps and elapsed + time.time() - t0 >= cfg.run.replan_at * budget
        if world > 1:
            flag = torch.tensor([float(due)], device=trainer.device)
            torch.distributed.broadcast(flag, 0)
            due = bool(flag.item())
        return due

    def replan() -> None:
        """Plan the schedule's length again from the steps since the reference, their validations left out: the
        first plan rests on a few steps that can mislead it (a process's first steps, a machine whose load changes).
        Done once; the cosine is stretched or shrunk from here on (``Trainer.set_max_steps``)."""
        step0, t_ref, val0, n0 = ref
        val_s = (val_total - val0) / (n_val - n0) if n_val > n0 else plan["val_seconds"]
        rate = (step - step0) / max(time.time() - t_ref - (val_total - val0), 1e-9)
        before = plan["max_steps"]
        plan.update(max_steps=set_end(rate, val_s), replanned_at=step, replan_steps_per_s=round(rate, 4),
                    replan_val_seconds=round(val_s, 2))
        log({"step": step, "time": round(elapsed + time.time() - t0, 2), "replan": {
            "max_steps": plan["max_steps"], "was": before, "steps_per_s": plan["replan_steps_per_s"],
            "val_seconds": plan["replan_val_seconds"]}})

    old_handlers = {}  # SIGINT (Ctrl-C) and SIGTERM (`kill`, a job scheduler) both stop cleanly after a save
    if threading.current_thread() is threading.main_thread():
        old_handlers = {sig: signal.signal(sig, on_sigint) for sig in (signal.SIGINT, signal.SIGTERM)}
    bar = tqdm(total=end, initial=start, disable=not (main and cfg.run.progress),
               desc=cfg.name, dynamic_ncols=True)
    t0 = time.time()
    loss_sum, n_loss, run_loss, t_log, step_log = None, 0, float("nan"), time.time(), start
    term_sums: dict[str, list] = {}  # name -> [sum, count] of the loss's terms (trainer.terms) since the last log
    t_cal = None
    val_total, n_val, ref = 0.0, 0, None  # seconds spent validating; the re-plan's reference (step, time, ...)
    if budget and plan and elapsed >= budget:
        stop = start  # the budget is spent: nothing left to train
    try:
        for batch in loader:
            if step >= stop:
                break
            batch = _to_device(batch, trainer.device, trainer.channels_last)
            loss = _run_step(trainer, batch)
            step += 1
            finite = torch.isfinite(torch.stack([loss, *trainer.terms.values()])).all() if trainer.terms \
                else torch.isfinite(loss)
            bad_step = torch.where((bad_step == 0) & ~finite, step, bad_step)  # no sync with the GPU
            loss_sum = loss if loss_sum is None else loss_sum + loss
            n_loss += 1
            for name, value in trainer.terms.items():
                acc = term_sums.setdefault(name, [0.0, 0])
                acc[0], acc[1] = acc[0] + value, acc[1] + 1
            bar.update(1)
            if (step % cfg.run.log_every == 0 or step % cfg.run.save_every == 0 or step == stop
                    or (cfg.val.every and step % cfg.val.every == 0)
                    or (calib_from is not None and step == calib_from + cfg.run.calibrate_steps)):
                check_finite()  # at every step that logs, saves or validates (the same steps in every process)
            if step % cfg.run.log_every == 0 or step == stop:
                run_loss = float(loss_sum) / n_loss
                now = time.time()
                rate = (step - step_log) / max(now - t_log, 1e-9)
                terms = {name: float(total) / count for name, (total, count) in sorted(term_sums.items())}
                if world > 1:  # the mean loss (and terms) over all processes
                    t = torch.tensor([run_loss, *terms.values()], device=trainer.device)
                    torch.distributed.all_reduce(t)
                    run_loss, terms = float(t[0]) / world, {k: float(v) / world for k, v in zip(terms, t[1:].tolist())}
                log({"step": step, "epoch": step // sampler.steps_per_epoch, "loss": run_loss, **terms,
                     "lr": trainer.optimizer.param_groups[0]["lr"], "steps_per_s": round(rate, 4),
                     "time": round(elapsed + now - t0, 2)})
                d_part = f" D {terms['d_loss']:.3f}" if "d_loss" in terms else ""
                bar.set_postfix_str(f"loss {run_loss:.4f}{d_part} {rate:.2f} it/s")
                loss_sum, n_loss, t_log, step_log = None, 0, now, step
                term_sums = {}
            if step == calib_from:
                t_cal = time.time()
            if plan and budget and ref is None and step == start + 5:
                mark_reference()  # a resumed run that has not re-planned yet times its steps from here
            if calib_from is not None and step == calib_from + cfg.run.calibrate_steps:
                make_plan()
            elif cfg.val.every and step % cfg.val.every == 0 and step != end:
                maybe_validate()
            if budget and step < stop and wants_replan():
                replan()
            if budget and elapsed + time.time() - t0 >= budget and step < stop:
                end = stop = step  # slower than planned: end the run here (validated and saved below)
                if plan:
                    plan["max_steps"] = int(end)
                log({"step": step, "event": "time budget spent before the planned end"})
            if main and (step % cfg.run.save_every == 0 or step == stop) and step != end:
                last = save("last.pt")
            if deadline is not None and time.time() >= deadline and step < stop and not stop_requested:
                stop_requested.append("deadline")  # this window is over: save and return, as after a Ctrl-C
            if world > 1:  # every process must stop at the same step
                flag = torch.tensor([float(bool(stop_requested))], device=trainer.device)
                torch.distributed.all_reduce(flag)
                if flag.item() and not stop_requested:
                    stop_requested.append("signal")  # another process was interrupted
            if stop_requested:
                break
        check_finite()
        if step == end and step > start and not stop_requested:
            maybe_validate()
            if main:
                last = save("last.pt")
        if main and (last is None or stop_requested):
            last = save("last.pt")
    except KeyboardInterrupt:
        if main and not trainer.updating and not int(bad_step):  # weights of a completed, finite step: safe to save
            step = trainer.steps_done
            last = save("last.pt")
            print(f"\ninterrupted: saved {out_dir / 'last.pt'} at step {step}; continue with resume")
        raise
    finally:
        bar.close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
    if stop_requested and main:
        print(f"\nstopped at step {step}: saved {last}; continue with --resume")
    return TrainResult(out_dir=out_dir, step=step, last=last if main else None, best=best if main else None,
                       best_psnr=best_psnr, interrupted=bool(stop_requested) or step < end,
                       history=history, model=trainer.model, stopped_by=stop_requested[0] if stop_requested else None,
                       signal=caught[0] if caught else None)


# ----------------------------------------------------------------------------------------------------
# 7. Export a checkpoint as a shipped pretrained model (course_lib/pretrained/index.json)
# ----------------------------------------------------------------------------------------------------
def export_pretrained(checkpoint, name: str, results=None, trained: str = "", folder=None) -> Path:
    """Write ``<folder>/<name>.pt`` (fp16 weights + model config), list it in ``index.json`` (lesson 06).

    ``checkpoint``: a training checkpoint (last.pt / best.pt). ``results``: table rows (e.g. from
    ``course_lib.evaluate``) stored with the entry. ``trained``: how, where and how long. The index entry is
    ``{"file", "sha256", "config", "results", "trained"}``; ``models.load_pretrained`` checks the sha256.
    """
    from . import models

    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise CourseError(f"pretrained name {name!r} must be a plain file name without spaces or slashes")
    ckpt = load_checkpoint(checkpoint)
    folder = Path(folder) if folder else PRETRAINED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    mc = dict(ckpt["config"])
    model = models.build(mc.pop("name"), **mc)
    models.load_state(model, ckpt)
    path = folder / f"{name}.pt"
    models.save(model, path, extra={"step": ckpt["step"], "train_config": ckpt["train_config"]}, half=True)
    index_path = folder / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    index[name] = {"file": path.name, "sha256": models.sha256_file(path), "config": dict(model.config),
                   "results": list(results) if results is not None else [],
                   "trained": trained or f"{ckpt['step']} steps of config {ckpt['train_config'].get('name')}"}
    tmp = index_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, index_path)
    return path


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------
def cli(argv=None) -> int:
    """``python -m course_lib train --config FILE [--override key=value ...] [--resume [PATH]]``."""
    p = argparse.ArgumentParser(prog="python -m course_lib train", description="Train a model from a config.")
    p.add_argument("--config", help="YAML config (path, or a name in configs/, e.g. diinn-edsr)")
    p.add_argument("--override", "-o", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change one config value, e.g. run.max_steps=1000 data.patch=32")
    p.add_argument("--resume", nargs="?", const="last", default=None, metavar="PATH",
                   help="continue a run: from PATH, or from <out_dir>/last.pt when no PATH is given")
    p.add_argument("--print-config", action="store_true", help="print the full config and exit")
    args = p.parse_args(argv)
    if args.config is None and args.resume in (None, "last"):
        raise CourseError("give --config FILE (or --resume PATH to continue a run with its own config)")
    if args.print_config:
        print(config_to_yaml(load_config(args.config, args.override)), end="")
        return 0
    try:
        result = train(args.config, args.override, resume=args.resume)
    except KeyboardInterrupt:
        return 130
    if result.last is not None:
        print(f"step {result.step}: {result.last}" + (f"; best {result.best_psnr:.2f} dB: {result.best}"
                                                      if result.best_psnr is not None else ""))
    if result.stopped_by == "signal":  # Ctrl-C (130) or SIGTERM (143): saved, but not finished (the shell's convention)
        return 128 + (result.signal or signal.SIGINT)
    return 0
