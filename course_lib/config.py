"""Training configs: typed dataclasses read from YAML, one-flag overrides, and the model a config builds (lesson 06).

A config may start with ``base: other.yaml`` and override only what differs (the Table 5 ablations are one-flag
diffs). ``--override key=value`` changes one value (parsed with ``yaml.safe_load``); ``model.options.w0=15`` reaches
into the family's own options. Unknown keys are errors that list the valid ones; every value is checked against its
type. :func:`resume_changes` says which keys a resumed run may not change (:data:`SAFE_ON_RESUME` lists those it
may). The trainer (``course_lib.train``) re-exports these names: ``train.load_config`` is ``config.load_config``.
Derived in notebooks/06_training.ipynb; docs/TRAINING.md lists every key.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from torch import nn

from .errors import CourseError

REPO_ROOT = Path(__file__).resolve().parents[1]
# configs/ of a clone; an installed course (pip install git+..., as in Colab) has the same files in course_lib/configs
CONFIG_DIR = REPO_ROOT / "configs"
if not CONFIG_DIR.is_dir():
    CONFIG_DIR = Path(__file__).resolve().parent / "configs"
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the largest number a config may hold


@dataclass
class ModelConfig:
    """Which network: ``models.build(name, encoder=..., variant=..., **options)``.

    ``variant`` and ``scale_mode`` are DIINN's; another family refuses them unless left at their defaults. Options
    that only one family has (LIIF's ``mlp``, ``w0``, ``local_ensemble``...) go in ``options``."""

    name: str = "diinn"
    # rdn | edsr-baseline | edsr-less | vgg-se; null: the registry entry's own (diinn-var: the seed-000 model's)
    encoder: str | None = "rdn"
    variant: str = "f"  # Table 5: a..f
    scale_mode: str = "area"  # scale channel: area (authors' code, h*w/(H*W)) | inverse (the paper's 1/s)
    skip: str | None = None  # null (the authors' model) | bicubic | bilinear: add the upsampled LR, learn the residual
    # further keyword options of the registry entry, e.g. {mlp: siren, w0: 30.0} for liif (override model.options.w0=15)
    options: dict = field(default_factory=dict)


@dataclass
class DataConfig:
    """Training pairs, made on the fly from a folder of HR images."""

    train_dir: list[str] | None = None  # folders or dataset names; None -> T91 + BSD200 (the "291" set)
    recipe: str = "authors"  # authors (all scales per batch, dense patches) | liif (U(scale_min, scale_max))
    scales: list[float] = field(default_factory=lambda: [2.0, 3.0, 4.0])  # authors recipe
    scale_min: float = 1.0  # liif recipe
    scale_max: float = 4.0  # liif recipe
    sample_q: int = 2304  # liif recipe: HR pixels queried per patch
    patch: int = 48  # LR patch side
    batch_size: int = 4  # HR images per step and per process
    repeat: int = 1  # passes over the folder per epoch (the authors use 20 on DIV2K)
    num_workers: int = 0
    cache: bool = False  # keep decoded training images in memory (per DataLoader worker)
    # LR kernels, one drawn per patch (degrade.random_resample): [bicubic] (the authors' LR, nothing drawn) | random
    # (004's general resampling: nearest, bilinear, bicubic, lanczos, area) | some of those names
    degrade: list[str] = field(default_factory=lambda: ["bicubic"])


@dataclass
class OptimConfig:
    """Adam with PyTorch's default betas (or SGD with momentum), step-decayed learning rate."""

    name: str = "adam"  # adam | sgd (with momentum and weight decay: MemNet's original solver)
    lr: float = 1e-4
    schedule: str = "step"  # step (the authors': x gamma at each milestone) | cosine (to 0 at max_steps)
    milestones: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])  # fractions of max_steps
    gamma: float = 0.5  # learning rate factor at each milestone
    warmup_steps: int = 0  # linear warm-up from lr/warmup_steps to lr over the first steps (0 = none)
    grad_clip: float | None = None  # max gradient norm; None = no clipping (the authors')
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # L2 penalty added to the gradient (MemNet's solver: 1e-4)


@dataclass
class LossConfig:
    """The training loss (``train.Objective``); a GAN on top of it (``course_lib.gan``). Lesson 11."""

    pixel: str = "l1"  # l1 (normalised images: the authors') | mse (images in [0, 1]: SRResNet) | memnet | memnet-004
    content_weight: float = 0.0  # SRGAN's VGG19 conv5_4 content term (004: 0.006); needs ImageNet weights
    vgg_weights: str = "imagenet"  # imagenet | a file path | random (NOT ImageNet: tests and smoke runs only)
    gan: dict = field(default_factory=dict)  # {} = no GAN; any key turns it on, e.g. {pretrain_steps: 1000} (gan.py)


@dataclass
class ValConfig:
    """Periodic validation PSNR (course_lib.evaluate, paper protocol by default)."""

    sets: list[str] = field(default_factory=lambda: ["Set5"])
    scales: list[float] = field(default_factory=lambda: [2.0, 3.0, 4.0])
    every: int = 1000  # steps between validations; 0 = only at the end of the run
    limit: int | None = None  # use only the first `limit` images of each set
    protocol: str = "paper"


@dataclass
class RunConfig:
    """Length, precision, device, output and logging of the run."""

    max_steps: int = 200_000  # the schedule's length (milestones are fractions of it)
    stop_at: int | None = None  # stop early at this step (saving last.pt) as if interrupted; resume goes on
    max_minutes: float | None = None  # time budget of the whole run (all resumes): max_steps is planned to fit it
    calibrate_steps: int = 20  # with max_minutes: steps timed (after 5 warm-up steps) to plan max_steps
    replan_at: float | None = 0.25  # with max_minutes: once this fraction of the budget is spent, time the steps
    # since the plan and plan max_steps again (once); None = keep the first plan
    seed: int = 0
    init_from: str | None = None  # a new run starts from these weights (checkpoint file or shipped name), e.g.
    # SRGAN from a trained SRResNet as Ledig et al.; None = random init. A resume ignores it (its weights win)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (CUDA: bf16 where supported, else fp16; CPU: bf16 only if native) | bf16 | fp16 | off
    channels_last: str = "auto"  # auto (on CUDA) | on | off
    cpu_heap: str = "auto"  # auto/on: on a CPU keep freed memory for reuse (course_lib.allocator; faster steps, higher
    # peak memory) | off: the C library's defaults. Process-wide, Linux with glibc only
    compile: bool = False  # torch.compile the encoder and the decoder
    out_dir: str | None = None  # None -> runs/<name>
    log_every: int = 50  # steps between metric lines
    save_every: int = 1000  # steps between last.pt saves (also saved at the end and on interrupt)
    progress: bool = True  # tqdm bar


@dataclass
class Config:
    """The whole training config. ``name`` names the run folder (default: the config file's stem)."""

    name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    val: ValConfig = field(default_factory=ValConfig)
    run: RunConfig = field(default_factory=RunConfig)


def valid_keys(cls=Config, prefix: str = "") -> list[str]:
    """Every dotted key a config accepts, e.g. ``["name", "model.name", ..., "run.progress"]`` (lesson 06)."""
    keys, hints = [], typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += valid_keys(hints[f.name], prefix + f.name + ".")
        else:
            keys.append(prefix + f.name)
    return keys


def _coerce(value, tp, key: str):
    """Check ``value`` against the annotation ``tp`` (str, int, float, bool, list[...], X | None)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if tp is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise CourseError(f"config key {key} must be a mapping of names to values, e.g. {{mlp: siren}}, "
                              f"got {value!r}")
        return dict(value)
    if origin is list:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise CourseError(f"config key {key} must be a list, got {value!r}")
        return [_coerce(v, args[0], key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
    elif tp is int:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                f = float(value)
                if f.is_integer():
                    return int(f)
            except ValueError:
                pass
    elif tp is float:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                f = float(value)  # PyYAML reads 1e-4 (no dot) as a string
            except ValueError:
                f = None
            if f is not None and not (math.isfinite(f) and abs(f) <= FLOAT32_MAX):  # torch computes in float32
                raise CourseError(f"config key {key} must be a finite number (within float32's range), got {value!r}")
            if f is not None:
                return f
    elif tp is str:
        if isinstance(value, bool):  # YAML reads on/off as booleans
            return "on" if value else "off"
        if isinstance(value, (str, int, float)):
            return str(value)
    name = getattr(tp, "__name__", str(tp))
    raise CourseError(f"config key {key} must be {name}, got {value!r}")


def _from_dict(cls, d: dict, prefix: str = ""):
    if not isinstance(d, dict):
        raise CourseError(f"config section {prefix.rstrip('.') or 'top level'} must be a mapping, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in d if k not in names]
    if unknown:
        bad = prefix + str(unknown[0])
        raise CourseError(f"unknown config key {bad!r}; valid keys: {', '.join(valid_keys())}")
    kwargs = {}
    for k, v in d.items():
        if dataclasses.is_dataclass(hints[k]):
            kwargs[k] = _from_dict(hints[k], v or {}, prefix + k + ".")
        else:
            kwargs[k] = _coerce(v, hints[k], prefix + k)
    return cls(**kwargs)


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _resolve_config_path(path) -> Path:
    p = Path(path)
    if p.is_dir():
        raise CourseError(f"config {p} is a directory; give a .yaml file (or a name in configs/)")
    for cand in (p, CONFIG_DIR / p, CONFIG_DIR / f"{p}.yaml"):
        if cand.is_file():
            return cand
    known = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))) if CONFIG_DIR.is_dir() else "none"
    raise CourseError(f"config file {str(path)!r} not found; give a path or one of: {known}")


def _read_yaml(path: Path, seen=()) -> dict:
    """A YAML config as a dict, with its ``base:`` chain merged in (the base is relative to the file)."""
    if path.resolve() in seen:
        raise CourseError(f"config {path} includes itself through 'base:'; remove the loop")
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise CourseError(f"config {path} is not valid YAML: {_yaml_problem(err)}") from None
    if not isinstance(d, dict):
        raise CourseError(f"config {path} must be a mapping of keys to values")
    base = d.pop("base", None)
    d.setdefault("name", path.stem)
    if base is None:
        return d
    base_path = _resolve_config_path(path.parent / base if not Path(base).is_absolute() else base)
    parent = _read_yaml(base_path, seen + (path.resolve(),))
    parent.pop("name", None)
    return _deep_merge(parent, d)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line with its place, e.g. ``line 3, column 2: expected ',' or ']', but got ':'``."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        parts = str(key).split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise CourseError(f"override {key!r} goes inside {p!r}, which is not a section")
        node[parts[-1]] = value
    return out


def parse_overrides(overrides) -> dict:
    """``["run.max_steps=10", "data.patch=16"]`` or a dict -> nested dict; values via ``yaml.safe_load``."""
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return _nest(overrides)
    if isinstance(overrides, str):
        overrides = [overrides]
    flat = {}
    for item in overrides:
        if "=" not in str(item):
            raise CourseError(f"override {item!r} must look like key=value, e.g. run.max_steps=1000")
        key, value = str(item).split("=", 1)
        try:
            flat[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as err:
            raise CourseError(f"override {item!r}: the value is not valid YAML ({_yaml_problem(err)}); quote it or "
                              "write a list as [a, b]") from None
    return _nest(flat)


def load_config(config=None, overrides=None) -> Config:
    """A :class:`Config` from a YAML path, a config name in configs/, a dict, a Config or None (defaults),
    with ``overrides`` applied on top. Unknown keys raise CourseError listing the valid keys (lesson 06)."""
    if isinstance(config, Config):
        d = dataclasses.asdict(config)
    elif config is None:
        d = {}
    elif isinstance(config, dict):
        d = dict(config)
        base = d.pop("base", None)
        if base is not None:
            d = _deep_merge(_read_yaml(_resolve_config_path(base)), d)
    elif isinstance(config, (str, Path)):
        d = _read_yaml(_resolve_config_path(config))
    else:
        raise CourseError(f"config must be a path, a dict or a Config, got {type(config).__name__}")
    cfg = _from_dict(Config, _deep_merge(d, parse_overrides(overrides)))
    _check_config(cfg)
    return cfg


def _check_config(cfg: Config) -> None:
    d, o, r, v = cfg.data, cfg.optim, cfg.run, cfg.val
    if o.schedule not in ("step", "cosine"):
        raise CourseError(f"optim.schedule must be 'step' or 'cosine', got {o.schedule!r}")
    if o.warmup_steps < 0:
        raise CourseError(f"optim.warmup_steps must be >= 0, got {o.warmup_steps}")
    if r.max_minutes is not None and r.max_minutes <= 0:
        raise CourseError(f"run.max_minutes must be > 0 or null (no time budget), got {r.max_minutes}")
    if r.calibrate_steps < 1:
        raise CourseError(f"run.calibrate_steps must be >= 1, got {r.calibrate_steps}")
    if r.replan_at is not None and not 0 < r.replan_at < 1:
        raise CourseError(f"run.replan_at must be a fraction of the time budget between 0 and 1 (e.g. 0.25) or null "
                          f"(plan once), got {r.replan_at}")
    if d.recipe not in ("authors", "liif"):
        raise CourseError(f"data.recipe must be 'authors' or 'liif', got {d.recipe!r}")
    if d.patch < 1 or d.batch_size < 1 or d.repeat < 1 or d.num_workers < 0 or d.sample_q < 1:
        raise CourseError("data.patch, data.batch_size, data.repeat and data.sample_q must be >= 1 "
                          "and data.num_workers >= 0")
    if d.recipe == "authors" and (not d.scales or min(d.scales) < 1):
        raise CourseError(f"data.scales must be a non-empty list of scales >= 1, got {d.scales}")
    if d.recipe == "liif" and not 1 <= d.scale_min <= d.scale_max:
        raise CourseError(f"need 1 <= data.scale_min <= data.scale_max, got {d.scale_min}, {d.scale_max}")
    smallest = round(d.patch * d.scale_min) ** 2  # HR pixels of the smallest crop data.LIIFPatches cuts
    if d.recipe == "liif" and d.sample_q > smallest:
        raise CourseError(f"data.sample_q={d.sample_q} is more than the {smallest} HR pixels of the smallest crop "
                          f"(data.patch {d.patch} at data.scale_min {d.scale_min:g}); set data.sample_q <= {smallest} "
                          f"(LIIF's rule: patch x patch = {d.patch ** 2})")
    if o.lr <= 0 or not 0 < o.gamma <= 1 or any(not 0 <= m <= 1 for m in o.milestones):
        raise CourseError("optim.lr must be > 0, optim.gamma in (0, 1], optim.milestones fractions in [0, 1]")
    if o.grad_clip is not None and o.grad_clip <= 0:
        raise CourseError(f"optim.grad_clip must be > 0 or null (no clipping), got {o.grad_clip}")
    if r.max_steps < 1 or r.log_every < 1 or r.save_every < 1 or v.every < 0:
        raise CourseError("run.max_steps, run.log_every and run.save_every must be >= 1, val.every >= 0")
    if r.amp not in ("auto", "bf16", "fp16", "off"):
        raise CourseError(f"run.amp must be auto, bf16, fp16 or off, got {r.amp!r}")
    if r.cpu_heap not in ("auto", "on", "off"):
        raise CourseError(f"run.cpu_heap must be auto, on or off, got {r.cpu_heap!r}")
    if r.channels_last not in ("auto", "on", "off"):
        raise CourseError(f"run.channels_last must be auto, on or off, got {r.channels_last!r}")
    if r.stop_at is not None and r.stop_at < 1:
        raise CourseError(f"run.stop_at must be >= 1 or null, got {r.stop_at}")
    if r.seed < 0:
        raise CourseError(f"run.seed must be >= 0 (seeds of numpy's generators are non-negative), got {r.seed}")
    if any(s < 1 for s in v.scales):
        raise CourseError(f"val.scales must be scales >= 1 (this is super-resolution), got {v.scales}")
    if v.limit is not None and v.limit < 1:
        raise CourseError(f"val.limit must be >= 1 or null (all images), got {v.limit}")
    if o.name not in ("adam", "sgd") or o.momentum < 0 or o.weight_decay < 0:
        raise CourseError(f"optim.name must be adam or sgd (got {o.name!r}); optim.momentum, optim.weight_decay >= 0")
    from .gan import check_loss  # the loss section (and its GAN options) is checked where it is used

    check_loss(cfg)


def config_to_yaml(cfg: Config) -> str:
    """The full config (every key, defaults included) as YAML text."""
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)


# Keys that may differ when a run is resumed: where and how fast it runs, how often it logs, saves and validates, and
# where it stops. Every other key changes what the run trains (model, data, schedule and its length, time budget,
# seed, the validation that picks best.pt), so a resume that changes one is refused (docs/TRAINING.md).
SAFE_ON_RESUME = ("name", "run.stop_at", "run.progress", "run.log_every", "run.save_every", "run.out_dir",
                  "run.device", "run.amp", "run.channels_last", "run.cpu_heap", "run.compile", "data.num_workers",
                  "data.cache", "val.every")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def resume_changes(cfg: Config, saved: dict) -> list[tuple[str, object, object]]:
    """``(key, saved value, new value)`` for each key outside :data:`SAFE_ON_RESUME` where ``cfg`` differs from the
    checkpoint's ``train_config`` ``saved`` (a key it lacks counts as its default) (lesson 06)."""
    now, default = _flatten(dataclasses.asdict(cfg)), _flatten(dataclasses.asdict(Config()))
    then = _flatten(saved if isinstance(saved, dict) else {})
    keys = list(now) + [k for k in then if k not in now]  # a model option dropped since then is a change too
    return [(k, then.get(k, default.get(k)), now.get(k)) for k in keys
            if k not in SAFE_ON_RESUME and then.get(k, default.get(k)) != now.get(k, default.get(k))]


def build_model(mc: ModelConfig) -> nn.Module:
    """``models.build(mc.name, encoder=..., **mc.options)``: the common options the registry entry accepts, its own
    ``options``; a DIINN-only option set for another family is a CourseError, never silently dropped (lesson 06)."""
    from . import models

    if mc.name not in models.REGISTRY:
        known = ", ".join(sorted(models.REGISTRY))
        raise CourseError(f"unknown model.name {mc.name!r}; choose one of: {known}")
    params = inspect.signature(models.REGISTRY[mc.name]).parameters
    kwargs, defaults = {}, ModelConfig()
    for k in ("encoder", "variant", "scale_mode", "skip"):
        value = getattr(mc, k)
        if k in params:
            if value is not None:
                kwargs[k] = value
        elif value != getattr(defaults, k):  # e.g. model.variant=b for liif: refuse rather than ignore it
            raise CourseError(f"model.{k}={value} does not apply to model {mc.name!r} (its options: "
                              f"{', '.join(params) or 'none'}); remove it, or put {mc.name}'s own options under "
                              "model.options")
    clash = sorted(set(mc.options) & {"encoder", "variant", "scale_mode", "skip"})
    if clash:
        raise CourseError(f"model.options.{clash[0]}: set model.{clash[0]} instead")
    model = models.build(mc.name, **kwargs, **mc.options)
    if not any(p.requires_grad for p in model.parameters()):
        raise CourseError(f"model {mc.name!r} has no trainable parameters; train e.g. model.name=diinn")
    return model
