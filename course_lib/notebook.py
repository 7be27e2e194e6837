"""Lesson helpers: the setup every notebook runs first, ``cmp`` self-checks, solutions, headless-safe widgets.

Used by every lesson (notebooks/00 ... 11). Four ideas:

* ``REPO_URL`` / ``REPO_REF`` are the ONE place the course's address is written. A lecturer who forks the
  course changes these two lines and runs ``python scripts/nbtools.py sync``; that rewrites the first cell of
  every lesson (:func:`setup_cell_source`), its "Open in Colab" badge (:func:`colab_badge`) and the lesson
  table in README.md.
* :func:`setup` picks the device (CUDA when present, else CPU), seeds the generators and prints versions;
  :func:`expected_runtime` states a lesson's run time and warns when a full-size run has no GPU.
* :func:`cmp` compares a student's answer with the library's and prints ``exact`` / ``close`` / ``WRONG``;
  :func:`solution` prints the source of a worked solution (hidden until asked for).
* :func:`slider` is an ``ipywidgets`` slider that degrades to one call with the default values when there is
  no frontend (papermill, CI, ``COURSE_HEADLESS=1``), so lessons with widgets still run headless.
"""

from __future__ import annotations

import inspect
import math
import os
import platform
import random
import sys

import numpy as np
import torch

from .errors import CourseError

# The one place the course's address lives: a fork changes these two lines, then runs nbtools.py sync.
REPO_URL = "https://github.com/inr-sr-course/diinn-course"
REPO_REF = "main"  # branch or tag that Colab badges open and that the setup cell installs

# Light dependencies (module: pip name) the setup cell installs in Colab when missing; torch is never touched.
LIGHT_DEPS = {"numpy": "numpy", "PIL": "pillow", "skimage": "scikit-image", "matplotlib": "matplotlib",
              "tqdm": "tqdm", "yaml": "pyyaml", "ipywidgets": "ipywidgets"}

_STATE: dict = {"device": None}


# ----------------------------------------------------------------------------------------------------
# Addresses: Colab badges and the setup cell, all generated from REPO_URL.

def install_spec() -> str:
    """The pip requirement that installs the course from GitHub: ``git+https://...@main`` (all lessons)."""
    return f"git+{REPO_URL}@{REPO_REF}"


def colab_url(notebook: str) -> str:
    """Colab address of ``notebooks/<notebook>`` in the course repository (all lessons)."""
    name = os.path.basename(notebook)
    path = REPO_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/{REPO_REF}/notebooks/{name}"


def colab_badge(notebook: str) -> str:
    """Markdown of the "Open in Colab" badge for a lesson notebook (all lessons)."""
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook)})"


def _light_deps_source() -> str:
    items = [f"{module!r}: {name!r}" for module, name in LIGHT_DEPS.items()]
    half = (len(items) + 1) // 2
    return "{" + ", ".join(items[:half]) + ",\n                 " + ", ".join(items[half:]) + "}"


def setup_cell_source() -> str:
    """The first cell of every lesson, generated from ``REPO_URL`` (written by ``scripts/nbtools.py sync``).

    In Colab (``google.colab`` loaded) and without ``course_lib`` it installs the course with ``--no-deps``
    (so Colab's own torch stays) plus only the light dependencies that are missing. In a clone without an
    install it adds the repository to ``sys.path``. Everywhere it then calls :func:`setup`. It never mounts
    Drive.
    """
    return f'''# Setup: run this cell first. It is the same in every lesson (scripts/nbtools.py writes it).
# Colab: installs the course from GitHub with --no-deps, so Colab's own torch is kept. Never mounts Drive.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("course_lib") is None:
    if "google.colab" in sys.modules:
        pip = [sys.executable, "-m", "pip", "install", "-q"]
        subprocess.check_call(pip + ["--no-deps", "{install_spec()}"])
        light = {_light_deps_source()}
        missing = [name for module, name in light.items() if importlib.util.find_spec(module) is None]
        if missing:
            subprocess.check_call(pip + missing)
        importlib.invalidate_caches()
    elif os.path.isdir(os.path.join("..", "course_lib")):
        sys.path.insert(0, os.path.abspath(".."))  # a clone of the repository without `pip install -e .`
    else:
        raise ModuleNotFoundError("course_lib is missing: run `pip install -e .[notebooks]` in the repo")

from course_lib import notebook as nb  # noqa: E402

DEVICE = nb.setup()
'''


# ----------------------------------------------------------------------------------------------------
# Device, seeds, versions.

def setup(seed: int | None = 0, verbose: bool = True) -> torch.device:
    """Pick the device (CUDA when present, else CPU), seed python/numpy/torch, print versions (all lessons).

    Returns the ``torch.device``; :func:`device` returns it again later.
    """
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _STATE["device"] = dev
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
    if verbose:
        from . import __version__

        where = "Colab" if "google.colab" in sys.modules else platform.node() or "local"
        print(f"course_lib {__version__} | python {platform.python_version()} | torch {torch.__version__} | "
              f"numpy {np.__version__} | {where}")
        if dev.type == "cuda":
            print(f"device: cuda ({torch.cuda.get_device_name(0)})")
        else:
            print(f"device: cpu ({torch.get_num_threads()} threads); no GPU found. Each lesson states its "
                  "CPU time; in Colab pick Runtime > Change runtime type > GPU for the long ones.")
    return dev


def device() -> torch.device:
    """The device chosen by :func:`setup` (calls it quietly if it has not run) (all lessons)."""
    return _STATE["device"] if _STATE["device"] is not None else setup(seed=None, verbose=False)


def expected_runtime(smoke: bool, cpu: str, gpu: str) -> None:
    """Print a lesson's expected run time; warn loudly when a full-size run (``smoke`` False) has no GPU.

    ``cpu`` and ``gpu`` are the measured times at the default size, e.g. ``"4 min (2 cores)"`` (all lessons).
    """
    if smoke:
        print(f"SMOKE = True: tiny sizes, under a minute anywhere (the full run takes {cpu} on CPU, "
              f"{gpu} on a GPU).")
        return
    print(f"Full-size run: about {cpu} on CPU, {gpu} on a GPU.")
    if device().type != "cuda":
        print(f"WARNING: no GPU, so this run takes about {cpu}. Set SMOKE = True in the parameters cell "
              "for a quick pass, or (Colab) Runtime > Change runtime type > GPU.")


# ----------------------------------------------------------------------------------------------------
# Self-checks.

def _as_array(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.double().numpy() if x.is_floating_point() else x.numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (bool, int, float, np.number, list, tuple)):
        return np.asarray(x)
    raise CourseError(f"cmp compares tensors, arrays, numbers or lists, got {type(x).__name__}")


def cmp(name: str, mine, reference, atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    """Compare your answer with the reference and print one line; return True when they agree (all lessons).

    ``name: exact`` (identical), ``name: close (max diff ...)`` (within ``atol + rtol * |reference|``),
    ``name: WRONG (max diff ..., shapes ...)``, or ``name: not done yet`` when ``mine`` is None (an exercise
    left as it was committed). Handles torch tensors, numpy arrays, numbers and lists; NaNs match NaNs.
    """
    if mine is None:
        print(f"{name}: not done yet (your answer is None)")
        return False
    a, b = _as_array(mine), _as_array(reference)
    if a.shape != b.shape:
        print(f"{name}: WRONG (shapes {tuple(a.shape)} vs reference {tuple(b.shape)})")
        return False
    if a.size == 0 or np.array_equal(a, b, equal_nan=a.dtype.kind == "f" and b.dtype.kind == "f"):
        print(f"{name}: exact")
        return True
    if a.dtype.kind == "b" or b.dtype.kind == "b":
        print(f"{name}: WRONG ({int(np.sum(a != b))} of {a.size} entries differ, shapes {tuple(a.shape)})")
        return False
    a, b = a.astype(np.float64), b.astype(np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(both_nan, 0.0, np.abs(a - b))
    max_diff = float(np.max(np.where(np.isnan(diff), np.inf, diff)))
    if np.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True):
        print(f"{name}: close (max diff {max_diff:.3g})")
        return True
    print(f"{name}: WRONG (max diff {max_diff:.3g}, shapes {tuple(a.shape)})")
    return False


# ----------------------------------------------------------------------------------------------------
# Solutions to the exercises. Each is a plain function; `solution(lesson, name)` prints its source.
# tests/test_notebook_helpers.py checks each one against the library, so solution and library cannot drift.

def _sol_01_local_coord(hr_centres, lr_n):
    """Lesson 01: local coordinate of HR centres (1D) relative to the nearest of lr_n LR pixels."""
    index = torch.floor((hr_centres + 1) / 2 * lr_n).clamp(0, lr_n - 1)  # the LR pixel containing the centre
    lr_centre = -1 + (2 * index + 1) / lr_n
    return (hr_centres - lr_centre) * lr_n  # the LR pixel's edges land on -1 and +1


def _sol_01_nearest_index(n_lr, n_hr):
    """Lesson 01: for each of n_hr HR pixels, the LR pixel whose square contains its centre."""
    i = torch.arange(n_hr)
    return torch.div((2 * i + 1) * n_lr, 2 * n_hr, rounding_mode="floor")


def _sol_02_positional_encoding(v, num_frequencies):
    """Lesson 02: [v, sin(2^0 pi v), cos(2^0 pi v), ..., sin(2^(L-1) pi v), cos(2^(L-1) pi v)]."""
    parts = [v]
    for k in range(num_frequencies):
        parts += [torch.sin(2**k * math.pi * v), torch.cos(2**k * math.pi * v)]
    return torch.cat(parts, dim=-1)


def _sol_02_siren_bound(fan_in, w0, is_first):
    """Lesson 02: half-width c of SIREN's uniform init U(-c, c)."""
    return 1 / fan_in if is_first else math.sqrt(6 / fan_in) / w0


def _sol_03_unfold3x3(feat):
    """Lesson 03: 3x3 unfolding with zero padding, channel c*9 + (ky*3 + kx)."""
    b, c, h, w = feat.shape
    padded = torch.nn.functional.pad(feat, (1, 1, 1, 1))
    out = torch.empty(b, c, 9, h, w, dtype=feat.dtype)
    for ky in range(3):
        for kx in range(3):
            out[:, :, ky * 3 + kx] = padded[:, :, ky : ky + h, kx : kx + w]
    return out.reshape(b, c * 9, h, w)


def _sol_03_query_nearest(feat, coord):
    """Lesson 03: nearest LR feature of query coordinates (B, Q, 2) -> (B, Q, C)."""
    b, c, h, w = feat.shape
    row = torch.floor((coord[..., 0] + 1) / 2 * h).long().clamp(0, h - 1)
    col = torch.floor((coord[..., 1] + 1) / 2 * w).long().clamp(0, w - 1)
    batch = torch.arange(b)[:, None]
    return feat.permute(0, 2, 3, 1)[batch, row, col]  # (B, Q, C)


def _sol_04_first_layer(z, p, k0, q0):
    """Lesson 04: eqs. 2-3, s0 = ReLU(k0(z)) * sin(q0(p)) for (Q, .) inputs and nn.Linear layers k0, q0."""
    m0 = torch.relu(k0(z))
    return m0 * torch.sin(q0(p))


def _sol_04_decoder_params(z_dim, p_dim, hidden, layers, variant):
    """Lesson 04: parameter count of the modulated periodic decoder (Table 5 variants a-f)."""
    linear = lambda n_in, n_out: n_in * n_out + n_out  # weights + biases
    mi_in = {"a": hidden, "b": hidden, "c": hidden + z_dim, "d": hidden + z_dim, "e": hidden + z_dim,
             "f": hidden + z_dim}[variant]
    init_p = variant in ("a", "c", "e")  # eqs. 8-9: p <- sin(W p + b) with z's width, then z <- p * z
    total = linear(p_dim, z_dim) if init_p else 0
    total += linear(z_dim, hidden) + linear(z_dim if init_p else p_dim, hidden)  # K0 and Q0
    total += (layers - 1) * (linear(mi_in, hidden) + linear(hidden, hidden))  # K_i and Q_i
    return total + linear(hidden, 3)  # the output layer


def _sol_04_k_as_conv(k_weight, channels):
    """Lesson 04: a (width, 9C) weight acting on unfolded z as a (width, C, 3, 3) kernel of a 3x3 convolution.

    z's channel c*9 + (ky*3 + kx) is feature c at offset (ky, kx): exactly conv2d's (out, in, ky, kx) layout."""
    return k_weight.reshape(k_weight.shape[0], channels, 3, 3)


def _sol_00_psnr(sr, hr):
    """Lesson 00: PSNR in dB of images in [0, 1]: 10 log10(1 / MSE)."""
    mse = torch.mean((sr.double() - hr.double()) ** 2)
    return 10 * torch.log10(1 / mse)


def _sol_00_rgb_to_y(img):
    """Lesson 00: BT.601 luma Y on 0..255 of a (B, 3, H, W) image on 0..255, rounded as MATLAB does."""
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    return torch.floor(y + 0.5).clamp(0, 255)  # round half up, as MATLAB rounds these positive values


SOLUTIONS = {
    ("00", "psnr"): _sol_00_psnr,
    ("00", "rgb_to_y"): _sol_00_rgb_to_y,
    ("01", "nearest_index"): _sol_01_nearest_index,
    ("01", "local_coord"): _sol_01_local_coord,
    ("02", "positional_encoding"): _sol_02_positional_encoding,
    ("02", "siren_bound"): _sol_02_siren_bound,
    ("03", "unfold3x3"): _sol_03_unfold3x3,
    ("03", "query_nearest"): _sol_03_query_nearest,
    ("04", "first_layer"): _sol_04_first_layer,
    ("04", "decoder_params"): _sol_04_decoder_params,
    ("04", "k_as_conv"): _sol_04_k_as_conv,
}


def solution(lesson: str, name: str) -> None:
    """Print the worked solution of an exercise, e.g. ``solution("02", "siren_bound")``.

    Solutions stay hidden until asked for; each is tested against the library (all lessons).
    """
    key = (str(lesson).zfill(2), name)
    if key not in SOLUTIONS:
        known = sorted(n for les, n in SOLUTIONS if les == key[0])
        raise CourseError(f"no solution {name!r} for lesson {key[0]}; known: {', '.join(known) or 'none'}")
    print(f"# Solution: lesson {key[0]}, exercise {name!r}\n")
    print(inspect.getsource(SOLUTIONS[key]))


# ----------------------------------------------------------------------------------------------------
# Widgets that also run headless, and a figure helper.

def is_headless() -> bool:
    """True without a frontend: ``COURSE_HEADLESS=1``, plain python or no ipywidgets (all lessons)."""
    if os.environ.get("COURSE_HEADLESS", "").lower() in ("1", "true", "yes"):
        return True
    try:
        from IPython import get_ipython

        shell = get_ipython()
        import ipywidgets  # noqa: F401
    except ImportError:
        return True
    return shell is None or not hasattr(shell, "kernel")


def slider(fn, **ranges):
    """Call ``fn`` from sliders: ``slider(draw, scale=(1.0, 8.0, 0.25))`` (all lessons).

    Each range is ``(low, high, step)`` or ``(low, high, step, default)``, or a list of choices; the default
    otherwise comes from ``fn``'s signature (else ``low``). Headless (:func:`is_headless`), ``fn`` runs once
    with the defaults and its result is returned; with a frontend an ``ipywidgets.interact`` panel is shown.
    """
    params = inspect.signature(fn).parameters
    defaults, widgets = {}, {}
    for key, spec in ranges.items():
        if key not in params:
            raise CourseError(f"slider: {fn.__name__}() has no argument {key!r}")
        if isinstance(spec, list):
            if not spec:
                raise CourseError(f"slider: the choices for {key!r} are empty")
            default = params[key].default if params[key].default in spec else spec[0]
        elif isinstance(spec, tuple) and len(spec) in (3, 4):
            low, high, step = spec[:3]
            if not low <= high or step <= 0:
                raise CourseError(f"slider: {key}={spec} needs low <= high and step > 0")
            fallback = params[key].default if params[key].default is not inspect.Parameter.empty else low
            default = spec[3] if len(spec) == 4 else fallback
        else:
            raise CourseError(f"slider: {key} must be (low, high, step[, default]) or a list, got {spec!r}")
        defaults[key] = default
        widgets[key] = spec
    if is_headless():
        return fn(**defaults)
    import ipywidgets

    controls = {}
    for key, spec in widgets.items():
        if isinstance(spec, list):
            controls[key] = ipywidgets.Dropdown(options=spec, value=defaults[key], description=key)
        elif all(isinstance(v, int) for v in spec):
            controls[key] = ipywidgets.IntSlider(value=defaults[key], min=spec[0], max=spec[1], step=spec[2],
                                                 description=key, continuous_update=False)
        else:
            controls[key] = ipywidgets.FloatSlider(value=defaults[key], min=spec[0], max=spec[1],
                                                   step=spec[2], description=key, continuous_update=False)
    return ipywidgets.interact(fn, **controls)


def _to_hwc(img):
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().float()
        if img.dim() == 4:
            if img.shape[0] != 1:
                raise CourseError(f"show: pass one image, not a batch of {img.shape[0]} (use x[0])")
            img = img[0]
        if img.dim() == 3:
            img = img.permute(1, 2, 0)
        img = img.numpy()
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    return np.clip(img, 0, 1)


def show(images, titles=None, size: float = 3.0, axes=None):
    """Show images side by side, pixels as squares (nearest), values clipped to [0, 1] (all lessons).

    ``images``: one image or a list of (3, H, W) / (1, 3, H, W) tensors, (H, W) maps or (H, W, 3) arrays.
    Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    if not isinstance(images, (list, tuple)):
        images = [images]
    titles = list(titles) if titles is not None else [None] * len(images)
    if len(titles) != len(images):
        raise CourseError(f"show: {len(images)} images but {len(titles)} titles")
    if axes is None:
        _, axes = plt.subplots(1, len(images), figsize=(size * len(images), size), squeeze=False)
        axes = axes[0]
    for ax, img, title in zip(axes, images, titles):
        arr = _to_hwc(img)
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        if title:
            ax.set_title(title)
    return axes
