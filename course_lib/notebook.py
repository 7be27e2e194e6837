"""Lesson helpers: the setup every notebook runs first, ``cmp`` self-checks, solutions, headless-safe widgets.

Used by every lesson (notebooks/00 ... 11). Four ideas:

* ``REPO_URL`` / ``REPO_REF`` are the ONE place the course's address is written. A lecturer who forks the
  course changes these two lines and runs ``python scripts/nbtools.py sync``; that rewrites the first cell of
  every lesson (:func:`setup_cell_source`), its "Open in Colab" badge (:func:`colab_badge`) and the lesson
  table in README.md.
* :func:`setup` picks the device (CUDA when present, else CPU), seeds the generators and prints versions;
  :func:`expected_runtime` states a lesson's run time and warns when a full-size run has no GPU;
  :func:`scratch_dir` gives SMOKE runs a temporary folder that is removed when the kernel exits.
* :func:`cmp` compares a student's answer with the library's and prints ``exact`` / ``close`` / ``WRONG``
  (naming the entries that differ and their expected values); :func:`solution` prints the source of a worked
  solution (hidden until asked for). :func:`exercise` wraps a student's exercise function.
* **Strict mode** (:func:`strict`): under CI or papermill a failed :func:`cmp` raises :class:`CheckFailed`, so the
  notebook run fails; and an exercise left as committed (its function returns None) is answered by the stored
  solution (:data:`SOLUTIONS`), so its check still runs. A student in Jupyter gets the printed line and goes on.
  Strict is on with ``COURSE_STRICT=1``, off with ``COURSE_STRICT=0``, and otherwise on exactly when the kernel
  was started by nbclient (papermill, ``jupyter nbconvert --execute``): see :func:`batch_kernel`.
* :func:`slider` is an ``ipywidgets`` slider that degrades to one call with the default values when there is
  no frontend (papermill, CI, ``COURSE_HEADLESS=1``), so lessons with widgets still run headless.
"""

from __future__ import annotations

import atexit
import inspect
import math
import os
import platform
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path

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
    (so Colab's own torch stays) plus only the light dependencies that are missing; when that install fails it
    prints the two ways forward (a clone with ``pip install -e .``, or uploading ``course_lib/``) and ends with one
    ``ModuleNotFoundError`` line. In a clone without an install it adds the repository to ``sys.path``. Everywhere
    it then calls :func:`setup`. It never mounts Drive.
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
        light = {_light_deps_source()}
        try:
            subprocess.check_call(pip + ["--no-deps", "{install_spec()}"])
            missing = [name for module, name in light.items() if importlib.util.find_spec(module) is None]
            if missing:
                subprocess.check_call(pip + missing)
        except subprocess.CalledProcessError as err:
            print(f"Installing the course failed (pip exit status {{err.returncode}}, see above). Two ways on:\\n"
                  "  1. clone {REPO_URL}\\n"
                  "     and run `pip install -e .` in the clone, then open the lesson there;\\n"
                  "  2. or upload the repository's course_lib/ folder to this runtime (Files panel) and rerun.")
            raise ModuleNotFoundError("course_lib could not be installed; see the two ways forward above") from None
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
            print(f"device: cpu ({torch.get_num_threads()} threads)")
    return dev


def device() -> torch.device:
    """The device chosen by :func:`setup` (calls it quietly if it has not run) (all lessons)."""
    return _STATE["device"] if _STATE["device"] is not None else setup(seed=None, verbose=False)


LONG_CPU_S = 120  # a lesson whose default run takes at least this long on CPU warns when there is no GPU


def runtime_seconds(text: str) -> float | None:
    """Seconds of a stated run time that starts with a number and a unit: ``"175 s (2 cores)"`` -> 175.0,
    ``"1.5 min"`` -> 90.0, ``"2 h"`` -> 7200.0; None when it does not start that way (all lessons)."""
    match = re.match(r"\s*(?:about\s+)?(\d+(?:\.\d+)?)\s*(s|sec|seconds?|min|minutes?|h|hours?)\b", text)
    if not match:
        return None
    unit = match.group(2)
    return float(match.group(1)) * (3600 if unit.startswith("h") else 60 if unit.startswith("min") else 1)


def expected_runtime(smoke: bool, cpu: str, gpu: str) -> None:
    """Print a lesson's expected run time; at smoke size, a one-line banner that its numbers mean nothing.

    ``cpu`` and ``gpu`` are the measured times at the default size, each starting with a number and a unit, e.g.
    ``"4 min (2 cores)"`` (:func:`runtime_seconds`). Without a GPU, a full-size run (``smoke`` False) whose CPU time
    is at least ``LONG_CPU_S`` seconds warns; short lessons do not (all lessons).
    """
    if smoke:
        print(f"SMOKE = True: tiny sizes, so the numbers and figures below are NOT meaningful and may contradict "
              f"the text (the full run takes {cpu} on CPU, {gpu} on a GPU).")
        return
    print(f"Full-size run: about {cpu} on CPU, {gpu} on a GPU.")
    seconds = runtime_seconds(cpu)
    if device().type != "cuda" and (seconds is None or seconds >= LONG_CPU_S):
        print(f"WARNING: no GPU, so this run takes about {cpu}. Set SMOKE = True in the parameters cell "
              "for a quick pass, or (Colab) Runtime > Change runtime type > GPU.")


def scratch_dir(prefix: str) -> Path:
    """A new empty folder under the system's temporary directory, removed when this Python process exits.

    SMOKE runs of lessons 05-11 train, record and score into such a folder (never into the real ``runs/``): the
    Jupyter kernel, papermill's kernel or ``scripts/run_lesson.py`` deletes it on a normal exit, so CI's many
    smoke runs do not fill the disk. A process that is killed leaves it behind, as ``tempfile.mkdtemp`` would.
    ``prefix`` names the lesson, e.g. ``"lesson08_runs_"`` (all lessons).
    """
    if not prefix or os.sep in prefix or (os.altsep and os.altsep in prefix):
        raise CourseError(f"scratch_dir: prefix {prefix!r} must be a non-empty name without a path separator, "
                          "e.g. 'lesson08_runs_'")
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)  # ignore_errors: a folder the lesson removed itself is fine
    return path


# ----------------------------------------------------------------------------------------------------
# Self-checks, and strict mode (CI / papermill).

_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class CheckFailed(AssertionError):
    """A lesson self-check failed in strict mode (CI / papermill): the notebook run stops here (all lessons)."""


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    return True if value in _YES else False if value in _NO else None


def batch_kernel() -> bool:
    """True in a kernel started by nbclient, i.e. by papermill or ``jupyter nbconvert --execute`` (all lessons).

    nbclient starts every IPython kernel with ``--HistoryManager.hist_file=:memory:``; a kernel started by Jupyter
    (Lab, Notebook) keeps its history in a file. As a second sign, the kernel's parent process is ``papermill``
    (the command line). Never True in Colab (always a person at a browser) or outside a kernel.
    """
    if "google.colab" in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return False
    history = getattr(shell, "history_manager", None)
    if history is not None and str(getattr(history, "hist_file", "")) == ":memory:":
        return True
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            return b"papermill" in f.read()
    except OSError:
        return False


def strict() -> bool:
    """Whether self-checks are enforced: ``COURSE_STRICT=1`` / ``0`` decide, else :func:`batch_kernel` (all lessons).

    Strict: a failed :func:`cmp` raises :class:`CheckFailed` and :func:`exercise` answers an unfinished exercise
    with its stored solution. Not strict (a student in Jupyter or Colab): ``cmp`` prints its line and returns False.
    """
    flag = _env_flag("COURSE_STRICT")
    return flag if flag is not None else batch_kernel()


def _as_array(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.double().numpy() if x.is_floating_point() else x.numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (bool, int, float, np.number, list, tuple)):
        return np.asarray(x)
    raise CourseError(f"cmp compares tensors, arrays, numbers or lists, got {type(x).__name__}")


def _kind(x, arr) -> str:
    """'b' (bool), 'i' (integer) or 'f' (float, complex) of the value as given (a float tensor stays 'f')."""
    if isinstance(x, torch.Tensor):
        return "b" if x.dtype == torch.bool else "f" if x.is_floating_point() or x.is_complex() else "i"
    return {"b": "b", "i": "i", "u": "i"}.get(arr.dtype.kind, "f")


def _dtype_name(x, arr) -> str:
    return str(x.dtype).removeprefix("torch.") if isinstance(x, (torch.Tensor, np.ndarray)) else str(arr.dtype)


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, (float, np.floating)) else str(v)


def _differences(a, b, bad, limit: int = 4) -> str:
    """'[1] yours 2, expected 2.5; ...' for the first ``limit`` positions where ``bad`` is True."""
    where = np.argwhere(bad)
    parts = []
    for idx in where[:limit]:
        idx = tuple(int(i) for i in idx)
        label = "" if not idx else "[" + ", ".join(map(str, idx)) + "] "
        parts.append(f"{label}yours {_fmt(a[idx].item())}, expected {_fmt(b[idx].item())}")
    more = f"; ... ({len(where) - limit} more)" if len(where) > limit else ""
    return "; ".join(parts) + more


def _verdict(name: str, mine, reference, atol: float, rtol: float) -> tuple[bool, str]:
    if mine is None:
        return False, f"{name}: not done yet (your answer is None)"
    a, b = _as_array(mine), _as_array(reference)
    if a.shape != b.shape:
        return False, f"{name}: WRONG (shapes {tuple(a.shape)} vs reference {tuple(b.shape)})"
    kind_a, kind_b = _kind(mine, a), _kind(reference, b)
    if kind_b in "bi" and kind_a != kind_b:  # a float answer is not an index, a 0/1 integer is not a mask
        what = {"b": "booleans", "i": "integers"}[kind_b]
        return False, (f"{name}: WRONG dtype: yours is {_dtype_name(mine, a)}, the reference is "
                       f"{_dtype_name(reference, b)} ({what}); "
                       + ("the values agree, convert with .long() or use integer arithmetic (//)"
                          if kind_b == "i" and a.size and np.array_equal(a, b) else "compare the values too"))
    if a.size == 0 or np.array_equal(a, b, equal_nan=kind_a == "f" and kind_b == "f"):
        return True, f"{name}: exact"
    if kind_a == "b" or kind_b == "b":
        bad = a != b
        return False, (f"{name}: WRONG ({int(bad.sum())} of {a.size} entries differ, shapes {tuple(a.shape)}): "
                       + _differences(a, b, bad))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    both_nan = np.isnan(a64) & np.isnan(b64)
    diff = np.where(both_nan, 0.0, np.abs(a64 - b64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    max_diff = float(np.max(diff))
    bad = diff > atol + rtol * np.abs(np.nan_to_num(b64, nan=0.0))
    if not bad.any():
        return True, f"{name}: close (max diff {max_diff:.3g})"
    return False, (f"{name}: WRONG (max diff {max_diff:.3g}, {int(bad.sum())} of {a.size} entries differ, "
                   f"shapes {tuple(a.shape)}): " + _differences(a, b, bad))


class Verdict:
    """What :func:`cmp` returns: true when the check passed, equal to True / False (all lessons).

    A notebook shows nothing for it when a cell ends with ``nb.cmp(...)`` (the printed line already says it all);
    ``repr`` is ``True`` / ``False``.
    """

    __slots__ = ("ok", "line")

    def __init__(self, ok: bool, line: str):
        self.ok, self.line = bool(ok), line

    def __bool__(self) -> bool:
        return self.ok

    def __eq__(self, other) -> bool:
        return self.ok == bool(other) if isinstance(other, (bool, Verdict)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.ok)

    def __repr__(self) -> str:
        return repr(self.ok)

    def _ipython_display_(self) -> None:  # IPython calls this instead of printing the repr: show nothing
        pass


def cmp(name: str, mine, reference, atol: float = 1e-6, rtol: float = 1e-5) -> Verdict:
    """Compare your answer with the reference and print one line; return True when they agree (all lessons).

    ``name: exact`` (identical), ``name: close (max diff ...)`` (every entry within ``atol + rtol * |reference|``),
    ``name: WRONG (...)`` naming how many entries differ and the first few with your value and the expected one,
    ``name: WRONG dtype`` when the reference holds integers (or booleans) and your answer does not (a float is not
    an index, even with equal values), or ``name: not done yet`` when ``mine`` is None (an exercise left as it was
    committed). Handles torch tensors, numpy arrays, numbers and lists; NaNs match NaNs.

    In strict mode (:func:`strict`: CI, papermill) anything but exact/close raises :class:`CheckFailed` with the
    same line, so a lesson whose self-check fails does not pass its test. Returns a :class:`Verdict` (truthy when
    the check passed), which a notebook cell does not echo.
    """
    ok, line = _verdict(name, mine, reference, atol, rtol)
    print(line)
    if not ok and strict():
        raise CheckFailed(f"self-check failed (strict mode, COURSE_STRICT=0 to only print): {line}")
    return Verdict(ok, line)


def exercise(lesson: str, name: str, fn):
    """Wrap a student's exercise function: ``my_psnr = nb.exercise("00", "psnr", my_psnr)`` (all lessons).

    The wrapper calls ``fn``. When ``fn`` returns None (the exercise as committed: ``return None  # your code
    here``) and strict mode is on (:func:`strict`: CI, papermill), it calls the stored solution
    ``SOLUTIONS[(lesson, name)]`` instead and says so once, so the check cell after it runs for real. For a
    student (not strict) None stays None and :func:`cmp` prints "not done yet".
    """
    key = (str(lesson).zfill(2), name)
    if key not in SOLUTIONS:
        known = sorted(n for les, n in SOLUTIONS if les == key[0])
        raise CourseError(f"no solution {name!r} for lesson {key[0]}; known: {', '.join(known) or 'none'}")
    announced = []

    def wrapped(*args, **kwargs):
        result = fn(*args, **kwargs)
        if result is None and strict():
            if not announced:
                print(f"(strict mode: exercise {name!r} is not done, so the stored solution answers; "
                      f"see nb.solution({key[0]!r}, {name!r}))")
                announced.append(True)
            result = SOLUTIONS[key](*args, **kwargs)
        return result

    wrapped.__name__ = getattr(fn, "__name__", name)
    wrapped.__doc__ = getattr(fn, "__doc__", None)
    wrapped.__wrapped__ = fn
    return wrapped


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


def _sol_02_preactivation_std(fan_in, w0, c):
    """Lesson 02: std of w0 * (W x) for W ~ U(-c, c) and fan_in inputs x of variance 1/2 (arcsine on [-1, 1]).

    Each of the fan_in products W_j x_j has variance E[W^2] E[x^2] = (c^2 / 3) (1 / 2); they are independent, so
    the sum has variance fan_in c^2 / 6, and multiplying by w0 multiplies the std by w0."""
    return w0 * c * math.sqrt(fan_in / 6)


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


def _sol_07_checkerboard_psnr(mse, amplitude):
    """Lesson 07: PSNR (dB, range 1) after adding a +-amplitude/255 checkerboard (no clamping) to an SR image.

    The new error is e + c with c = +-a/255 at every pixel: mean((e + c)^2) = mse + 2 mean(e c) + (a/255)^2. The
    checkerboard flips sign from pixel to pixel, so mean(e c) is about 0 for any error without that pattern."""
    return -10 * math.log10(mse + (amplitude / 255) ** 2)


def _sol_07_images_needed(sd, gap):
    """Lesson 07: images k so that a 95 % normal interval of a mean paired difference is +- gap at most.

    The mean of k differences with standard deviation sd has standard error sd / sqrt(k); 1.96 sd / sqrt(k) <= gap
    gives k >= (1.96 sd / gap)^2 (1.96 = the 97.5 % normal quantile)."""
    z = 1.959963984540054  # statistics.NormalDist().inv_cdf(0.975)
    return max(1, math.ceil((z * sd / gap) ** 2 - 1e-9))


def _sol_05_edsr_params(n_resblocks, n_feats):
    """Lesson 05: parameters of EDSR without upsampler: head 3 -> C, n_resblocks blocks of two C -> C convolutions,
    the body's tail C -> C, all 3x3. A k x k convolution from c_in to c_out: c_in c_out k^2 weights, c_out biases."""
    def conv(c_in, c_out):
        return c_in * c_out * 9 + c_out

    return conv(3, n_feats) + 2 * n_resblocks * conv(n_feats, n_feats) + conv(n_feats, n_feats)


def _sol_05_receptive_field(kind, n_blocks, n_layers):
    """Lesson 05: receptive field side (LR pixels) of "edsr" or "rdn": 1 + 2 x (3x3 convolutions on the longest path).

    EDSR: the head, two per residual block, the body's tail. RDN: SFE1, SFE2, n_layers chained dense layers per block
    (each reads every earlier one; the 1x1 fusion widens nothing) and GFF's 3x3 after its 1x1. Skips are shorter."""
    chain = 2 + 2 * n_blocks if kind == "edsr" else 3 + n_blocks * n_layers
    return 1 + 2 * chain


def _sol_05_encoder_share(enc_macs, dec_macs, scale):
    """Lesson 05: share of an x scale upscale's multiply-adds spent in the encoder (the decoder's reference path).

    Per LR pixel the encoder costs enc_macs once; the decoder runs once per HR pixel, scale^2 of them per LR pixel."""
    return enc_macs / (enc_macs + scale**2 * dec_macs)


def _sol_06_pixels_per_step(patch, batch, scales, sample_q):
    """Lesson 06: HR pixels scored in one step, [the authors' recipe, LIIF's recipe].

    Authors': every image gives one round(patch * s) square crop per scale and every pixel of it is scored. LIIF's:
    one crop per image, whatever its scale, and only sample_q of its pixels are scored."""
    authors = batch * sum(round(patch * s) ** 2 for s in scales)
    return [authors, batch * sample_q]


def _sol_06_learning_rate(k, lr, max_steps, warmup_steps, schedule, milestones, gamma):
    """Lesson 06: the learning rate after k completed steps (the rate of step k + 1).

    Warm-up: min(1, (k + 1) / W). Step: gamma to the number of milestones round(m * max_steps) that k has reached.
    Cosine: 0.5 (1 + cos(pi t)), t = (k - W) / (max_steps - W) clipped to [0, 1]."""
    warm = min(1.0, (k + 1) / warmup_steps) if warmup_steps else 1.0
    if schedule == "cosine":
        t = min(1.0, max(0.0, (k - warmup_steps) / max(1, max_steps - warmup_steps)))
        return lr * warm * 0.5 * (1 + math.cos(math.pi * t))
    passed = sum(k >= round(m * max_steps) for m in milestones)
    return lr * warm * gamma**passed


def _sol_06_plan_steps(rate, seconds, val_seconds, val_every):
    """Lesson 06: steps n that fit a time budget: n / rate + val_seconds (1 + n / val_every) = 0.97 seconds.

    Solve for n: the usable time, less the final validation, divided by the time per step (the step itself plus
    its share of the periodic validations); round down, never below 0."""
    usable = (1 - 0.03) * seconds - val_seconds  # 3 % of the time is kept for saving
    per_step = 1 / rate + (val_seconds / val_every if val_every else 0.0)
    return max(0, int(usable / per_step))


def _sol_08_design_costs(z_dim, p_dim, width, depth):
    """Lesson 08: parameters of Table 5's three design choices: [z skips (d) - (b), positional init (e) - (f),
    s instead of m (f) - (d)]. A linear layer from n to k values has n k + k parameters.

    z skips: each of the depth - 1 later modulation layers K_i reads [x z] instead of x, z_dim more inputs, so
    z_dim * width more weights (no more biases). Positional init: the layer p <- sin(P p + b) from p_dim to z_dim
    (eq. 8), and Q_0 then reads z_dim values instead of p_dim. s instead of m: s_(i-1) is as wide as m_(i-1)."""
    skips = (depth - 1) * z_dim * width
    pos_init = (p_dim * z_dim + z_dim) + (z_dim - p_dim) * width
    return [skips, pos_init, 0]


def _sol_08_seed_spread(per_seed):
    """Lesson 08: [mean PSNR over images and seeds, seed spread] of one row, from its per-image PSNRs (one array per
    seed, the same images). Each seed's mean over the images; the row's PSNR is the mean of those; the seed spread is
    the largest minus the smallest."""
    means = [float(np.mean(scores)) for scores in per_seed]
    return [float(np.mean(means)), max(means) - min(means)]


def _sol_08_is_finding(diff, low, high, seed_spread):
    """Lesson 08: a difference is a finding when its interval excludes 0 (other test images would not undo it) and it
    is larger in size than the spread between seeds (retraining would not undo it either)."""
    return bool((low > 0 or high < 0) and abs(diff) > seed_spread)


def _sol_09_ensemble_weights(coord, lr_size):
    """Lesson 09: LIIF's four ensemble weights (4, B, Q) for queries ``coord`` (B, Q, 2) on an (h, w) LR grid.

    For each shift (row, col) in (-1, -1), (-1, 1), (1, -1), (1, 1): move the query half an LR pixel (1/h, 1/w) that
    way plus 1e-6, clamp it into [-1 + 1e-6, 1 - 1e-6], take the centre of the LR pixel it lands in and
    rel = (query - centre) * (h, w). The area |rel_row * rel_col| + 1e-9 is the rectangle between the query and that
    centre; each prediction is weighted by the area of the diagonally opposite shift (0<->3, 1<->2), over the total."""
    h, w = lr_size
    c = coord.double()
    areas = []
    for v_row, v_col in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        rel = []
        for axis, n, v in ((0, h, v_row), (1, w, v_col)):
            s = (c[..., axis] + v / n + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6)
            index = torch.floor((s + 1) * n / 2).clamp(0, n - 1)  # the LR pixel holding s
            rel.append((c[..., axis] - (-1 + (2 * index + 1) / n)) * n)
        areas.append((rel[0] * rel[1]).abs() + 1e-9)
    areas = torch.stack(areas)
    return areas.flip(0) / areas.sum(0)


def _sol_09_query_macs(c, width, depth):
    """Lesson 09: multiply-adds per query on the reference path of [DIINN (f), LIIF, Meta-SR], for C encoder channels
    (z has 9C values), hidden ``width`` and ``depth`` (DIINN: layers per branch; LIIF: hidden layers; Meta-SR: always
    one hidden layer). A linear layer from n to k values costs n k multiply-adds.

    DIINN: K_0 (9C -> W), K_1.. ([s z] -> W), Q_0 (3 -> W), Q_1.. (W -> W), output (W -> 3). LIIF: four shifted
    queries, each an MLP 9C + 4 -> W -> ... -> 3. Meta-SR: Pos2Weight 3 -> W -> 9C * 3, then the 9C x 3 kernel
    times z."""
    z = 9 * c
    diinn = z * width + (depth - 1) * (width + z) * width + 3 * width + (depth - 1) * width * width + width * 3
    liif = 4 * ((z + 4) * width + (depth - 1) * width * width + width * 3)
    metasr = 3 * width + width * z * 3 + z * 3
    return [diinn, liif, metasr]


def _sol_09_time_line(pixels, ms):
    """Lesson 09: the least-squares line ms = fixed + per_pixel * pixels through timing points: [fixed, per_pixel].

    per_pixel = cov(pixels, ms) / var(pixels); the line passes through the means."""
    x, y = np.asarray(pixels, dtype=float), np.asarray(ms, dtype=float)
    per_pixel = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    return [float(y.mean() - per_pixel * x.mean()), per_pixel]


def _sol_10_decoder_params(c, width, depth, kernel, modulation):
    """Lesson 10: parameters of seed 000's variant decoder (models A-F and H) for C encoder channels (z: 9C values).

    A k x k convolution from n to m channels has n m k^2 weights and m biases. K_0 reads z (9C channels), K_i
    [q_(i-1) z] (width + 9C); Q_0 reads p (3), Q_i q_(i-1) (width); all with k x k kernels. With modulation, each M_i
    is a 1x1 convolution width -> width. The output is a 1x1 convolution width -> 3."""
    def conv(n, m, k):
        return n * m * k * k + m

    z = 9 * c
    total = conv(z, width, kernel) + (depth - 1) * conv(width + z, width, kernel)  # K
    total += conv(3, width, kernel) + (depth - 1) * conv(width, width, kernel)  # Q
    if modulation:
        total += depth * conv(width, width, 1)  # M
    return total + conv(width, 3, 1)


def _sol_10_seam_columns(width, strip_width, radius):
    """Lesson 10: which of ``width`` output columns (bool tensor) differ between the whole image and column strips of
    ``strip_width`` columns computed alone with zero padding (the authors' evaluation), for a decoder that reads
    ``radius`` columns on each side.

    In strip [c0, c1), column c needs column c0 - 1 when c - c0 + 1 <= radius, and column c1 when c1 - c <= radius;
    the strip has zeros there, the whole image has pixels, unless that side is the image's own edge (c0 = 0 or
    c1 = width), where the whole image is zero-padded too."""
    out = torch.zeros(width, dtype=torch.bool)
    for c0 in range(0, width, strip_width):
        c1 = min(c0 + strip_width, width)
        for c in range(c0, c1):
            out[c] = (c0 > 0 and c - c0 < radius) or (c1 < width and c1 - 1 - c < radius)
    return out


def _sol_10_upscale_progressive(model, lr, sizes, round_uint8):
    """Lesson 10: upscale ``lr`` through the stage sizes [(H1, W1), ...], each stage's output (clamped to [0, 1])
    the next stage's input; between stages (not after the last) rounded to the 256 levels k/255 when
    ``round_uint8``, as saving an 8-bit file would. Returns the last stage's output."""
    x = lr
    for k, size in enumerate(sizes):
        y = model.upscale(x, size=tuple(size)).clamp(0, 1)
        x = (y * 255).round() / 255 if round_uint8 and k < len(sizes) - 1 else y
    return y


def _sol_11_memnet_conv_params(blocks, recursions, channels=64):
    """Lesson 11: MemNet's convolution parameters (weights + biases), each shared convolution counted once."""
    c, M, R = channels, blocks, recursions

    def conv(c_in, c_out, k):
        return c_in * c_out * k * k + c_out

    gates = sum(conv((m + R) * c, c, 1) for m in range(1, M + 1))  # block m's gate reads (m + R) x c channels
    return conv(1, c, 3) + M * 2 * conv(c, c, 3) + gates + conv(c, 1, 3)  # first conv, shared pairs, gates, Rec


def _sol_11_memnet_macs(blocks, recursions, multi_supervised=True, channels=64):
    """Lesson 11: MemNet's multiply-adds per output pixel: every shared convolution computed R times."""
    c, M, R = channels, blocks, recursions
    gates = sum((m + R) * c * c for m in range(1, M + 1))
    reconstructions = M if multi_supervised else 1  # one shared Rec conv, applied to every B_m
    return 9 * c + M * R * 2 * 9 * c * c + gates + reconstructions * 9 * c


def _sol_11_blend_penalty_db(a):
    """Lesson 11: PSNR lost by the guess mean + a * (a plausible sample's detail) against the mean alone: the error
    is the true detail minus a independent detail of the same variance, so the MSE grows by (1 + a^2)."""
    return 10 * math.log10(1 + a * a)


SOLUTIONS = {
    ("00", "psnr"): _sol_00_psnr,
    ("00", "rgb_to_y"): _sol_00_rgb_to_y,
    ("01", "nearest_index"): _sol_01_nearest_index,
    ("01", "local_coord"): _sol_01_local_coord,
    ("02", "positional_encoding"): _sol_02_positional_encoding,
    ("02", "preactivation_std"): _sol_02_preactivation_std,
    ("03", "unfold3x3"): _sol_03_unfold3x3,
    ("03", "query_nearest"): _sol_03_query_nearest,
    ("04", "first_layer"): _sol_04_first_layer,
    ("04", "decoder_params"): _sol_04_decoder_params,
    ("04", "k_as_conv"): _sol_04_k_as_conv,
    ("05", "edsr_params"): _sol_05_edsr_params,
    ("05", "receptive_field"): _sol_05_receptive_field,
    ("05", "encoder_share"): _sol_05_encoder_share,
    ("06", "pixels_per_step"): _sol_06_pixels_per_step,
    ("06", "learning_rate"): _sol_06_learning_rate,
    ("06", "plan_steps"): _sol_06_plan_steps,
    ("07", "checkerboard_psnr"): _sol_07_checkerboard_psnr,
    ("07", "images_needed"): _sol_07_images_needed,
    ("08", "design_costs"): _sol_08_design_costs,
    ("08", "seed_spread"): _sol_08_seed_spread,
    ("08", "is_finding"): _sol_08_is_finding,
    ("09", "ensemble_weights"): _sol_09_ensemble_weights,
    ("09", "query_macs"): _sol_09_query_macs,
    ("09", "time_line"): _sol_09_time_line,
    ("10", "decoder_params"): _sol_10_decoder_params,
    ("10", "seam_columns"): _sol_10_seam_columns,
    ("10", "upscale_progressive"): _sol_10_upscale_progressive,
    ("11", "memnet_conv_params"): _sol_11_memnet_conv_params,
    ("11", "memnet_macs"): _sol_11_memnet_macs,
    ("11", "blend_penalty_db"): _sol_11_blend_penalty_db,
}


def solution(lesson: str, name: str) -> None:
    """Print the worked solution of an exercise, e.g. ``solution("02", "preactivation_std")``.

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
    """True when no person sees widgets (all lessons): ``COURSE_HEADLESS=1``; else (unless ``COURSE_HEADLESS=0``)
    plain python, no ipywidgets, or a kernel started by nbclient, i.e. papermill / nbconvert (:func:`batch_kernel`).
    """
    flag = _env_flag("COURSE_HEADLESS")
    if flag:
        return True
    try:
        from IPython import get_ipython

        shell = get_ipython()
        import ipywidgets  # noqa: F401
    except ImportError:
        return True
    if shell is None or not hasattr(shell, "kernel"):
        return True
    return flag is None and batch_kernel()


def slider(fn, **ranges):
    """Call ``fn`` from sliders: ``slider(draw, scale=(1.0, 8.0, 0.25))`` (all lessons).

    Each range is ``(low, high, step)`` or ``(low, high, step, default)``, or a list of choices; the default
    otherwise comes from ``fn``'s signature (else ``low``). Headless (:func:`is_headless`), ``fn`` runs once
    with the defaults, so its figure lands in the saved notebook; with a frontend an ``ipywidgets.interact``
    panel is shown. Returns None either way, so a cell ending in ``nb.slider(...)`` prints nothing more.
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
        fn(**defaults)
        return None
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
    ipywidgets.interact(fn, **controls)
    return None


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
