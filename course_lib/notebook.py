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
  notebook run fails; and an exercise left as committed (its function returns None) is answered by the stored solution
  (:data:`SOLUTIONS`, from ``course_lib/solutions.py``), so its check still runs. A student in Jupyter gets the
  printed line and goes on. Strict is on with ``COURSE_STRICT=1``, off with ``COURSE_STRICT=0``, and otherwise on
  exactly when the kernel was started by nbclient (papermill, ``jupyter nbconvert --execute``): see
  :func:`batch_kernel`.
* :func:`slider` is an ``ipywidgets`` slider that degrades to one call with the default values when there is
  no frontend (papermill, CI, ``COURSE_HEADLESS=1``), so lessons with widgets still run headless.
"""

from __future__ import annotations

import atexit
import inspect
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
from .solutions import SOLUTIONS  # also nb.SOLUTIONS, the name the lessons and tests use

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
    key = _solution_key(lesson, name)
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


def _solution_key(lesson, name: str) -> tuple[str, str]:
    key = (str(lesson).zfill(2), name)
    if key not in SOLUTIONS:
        known = sorted(n for les, n in SOLUTIONS if les == key[0])
        raise CourseError(f"no solution {name!r} for lesson {key[0]}; known: {', '.join(known) or 'none'}")
    return key


def solution(lesson: str, name: str) -> None:
    """Print the worked solution of an exercise, e.g. ``solution("02", "preactivation_std")``.

    Solutions stay hidden until asked for (they live in ``course_lib/solutions.py``); each is tested against the
    library (all lessons).
    """
    key = _solution_key(lesson, name)
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
