"""The CPU memory allocator: keep freed memory for the next step instead of handing it back  (lesson 06).

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves every request above a threshold (128 KiB,
raised up to 32 MiB as large blocks are freed) with a fresh ``mmap`` and returns it with ``munmap`` when the tensor
is freed. A training step of DIINN allocates and frees the same few hundred-megabyte activations every step, so
every step the kernel maps, zero-fills and unmaps them again: measured on the dev CPU (AMD EPYC, 2 cores,
docs/RESULTS.md, seventh session), an EDSR-baseline DIINN step at batch 4 x 3 scales, 48-px patches took 14.6 s with
glibc's defaults and 5.7 s with heap reuse (the same step, the same numbers), at a higher peak resident memory
(10.1 instead of 6.4 GiB: freed memory stays with the process); ``configs/diinn-edsr-291-cpu.yaml`` went from 0.63
to 1.05 steps/s (peak 2.2 -> 2.8 GiB), and ``upscale`` to 512x512 in chunks of 2,048 gained 1.5x on the same machine.

:func:`reuse_heap` turns ``mmap`` off for ``malloc`` (``M_MMAP_MAX = 0``) and keeps up to 2 GiB of free memory at the
top of the heap (``M_TRIM_THRESHOLD``), the settings of the environment variables ``MALLOC_MMAP_MAX_=0`` and
``MALLOC_TRIM_THRESHOLD_``. It changes the whole process and only where the C library is glibc (Linux); elsewhere
it does nothing and says so. ``course_lib.train`` applies it on a CPU unless ``run.cpu_heap=off``, and the
``upscale`` command unless ``--cpu-heap off``; library calls such as ``model.upscale`` never change it. While it
is off they query in chunks of 1,024 instead of 2,048 (``models.default_chunk``), which avoids the churn from
48x48 inputs up in the twelfth session's runs; smaller inputs can still meet it (docs/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

from .errors import CourseError

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (glibc's malloc.h)
TRIM_THRESHOLD = 2**31 - 1  # bytes of free memory at the heap's top kept before it is returned (mallopt takes an int)
HEAP_MODES = ("auto", "on", "off")
_state = {"reused": False}


@functools.lru_cache(maxsize=1)
def _glibc():
    """glibc as a ctypes library, or None where the C library is not glibc (macOS, Windows, musl)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def supported() -> bool:
    """True where :func:`reuse_heap` can act (Linux with glibc). Notebook: 06_training."""
    return _glibc() is not None


def reuse_heap() -> bool:
    """Serve every ``malloc`` from the heap and keep freed memory for reuse (the module docstring); True when set.

    Idempotent; False (and nothing changed) where the C library is not glibc. Notebook: 06_training."""
    libc = _glibc()
    if libc is None:
        return False
    if not _state["reused"]:
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        _state["reused"] = bool(ok)
    return _state["reused"]


def heap_reused() -> bool:
    """True once :func:`reuse_heap` has taken effect in this process (``models.default_chunk`` asks). Notebook: 06."""
    return _state["reused"]


def apply(mode: str, device) -> bool:
    """``mode`` (auto | on | off) for a run on ``device``: auto and on reuse the heap on a CPU; True when in effect."""
    import torch

    if mode not in HEAP_MODES:
        raise CourseError(f"cpu_heap must be one of {', '.join(HEAP_MODES)}, got {mode!r}")
    if mode == "off" or torch.device(device).type != "cpu":
        return _state["reused"]
    return reuse_heap()


def describe() -> str:
    """One line for the start of a run: what the allocator does with freed memory."""
    if _state["reused"]:
        return "memory: freed CPU memory kept for reuse (glibc mmap off; course_lib.allocator)"
    if not supported():
        return "memory: the system allocator's defaults (heap reuse needs Linux with glibc)"
    return "memory: glibc's defaults (large blocks mapped and unmapped every step; run.cpu_heap=auto reuses them)"


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33+): ``hblkhd`` is the memory currently served by mmap."""

    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


def mmapped_bytes() -> int | None:
    """Bytes the allocator currently serves by ``mmap`` (glibc's ``mallinfo2().hblkhd``); None where unavailable."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = MallInfo2
    return int(libc.mallinfo2().hblkhd)
