"""Precision: which autocast dtype a device runs fast  (lessons 04 and 06).

bf16 autocast halves memory traffic and doubles matrix throughput on hardware built for it: CUDA GPUs from Ampere on,
and CPUs with native bf16 instructions (AVX512-BF16 or AMX). On a CPU without them every bf16 product is emulated:
an EDSR-baseline DIINN training step that took 4.6 s in fp32 took 82 s under bf16 autocast on an AVX2-only machine.
So ``auto`` never guesses: bf16 on a CPU only where the CPU reports native support, fp32 otherwise.
"""

from __future__ import annotations

import functools
import platform
import warnings
from pathlib import Path

import torch

from .errors import CourseError

AMP_MODES = ("auto", "bf16", "fp16", "off")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of x86 CPUs with bf16 arithmetic


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where there is no such file."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo's ``model name``, as ``lscpu`` prints it), else what ``platform`` knows.
    Notebooks 05_encoders, 06_training and 07_evaluation print it beside their timings."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine(device="cpu") -> str:
    """One line naming where a figure was measured, as DEVELOPERS.md asks: the GPU's name on CUDA; else the CPU's
    model, its vector ISA (AVX-512 / AVX2), whether it has native bf16, and torch's threads. Benchmarks and
    recorded results print it beside their figures (scripts/bench_*.py, scripts/equal_budget.py, notebook
    10_seed000's record)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    flags = cpu_flags()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return f"{cpu_model()} ({platform.machine()}, {isa}, {bf16}), {torch.get_num_threads()} threads, " \
           f"torch {torch.__version__}"


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes in bf16 natively (AVX512-BF16 or AMX on x86). Notebook: 06_training."""
    return bool(set(NATIVE_BF16_FLAGS) & cpu_flags())


def cuda_has_native_bf16(device) -> bool:
    """True on CUDA GPUs with bf16 tensor cores (compute capability 8.0+, Ampere and later). Older GPUs (T4, V100)
    emulate bf16 slowly, and ``torch.cuda.is_bf16_supported()`` counts emulation as support, so it is not asked.
    Notebook: 06_training."""
    return torch.cuda.get_device_capability(torch.device(device))[0] >= 8


def autocast_dtype(mode: str, device) -> torch.dtype | None:
    """The autocast dtype for ``mode`` on ``device``, or None for plain fp32 (lessons 04 and 06).

    ``auto``: bf16 on CUDA GPUs with native bf16 (:func:`cuda_has_native_bf16`), else fp16 + GradScaler on CUDA;
    bf16 on a CPU with native bf16, else None.
    ``bf16``: bf16 (on a CPU without native bf16 it works but is slow, and says so once). ``fp16``: CUDA only.
    ``off``: None.
    """
    device = torch.device(device)
    if mode not in AMP_MODES:
        raise CourseError(f"amp must be one of {', '.join(AMP_MODES)}, got {mode!r}")
    if mode == "off":
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise CourseError("amp fp16 needs a CUDA GPU (GradScaler); on a CPU use auto, bf16 or off")
        return torch.float16
    if device.type == "cuda":
        if mode == "bf16" or cuda_has_native_bf16(device):
            return torch.bfloat16
        return torch.float16
    if device.type != "cpu":
        return None if mode == "auto" else torch.bfloat16
    if mode == "auto":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if not cpu_has_native_bf16():
        warnings.warn("bf16 autocast on a CPU without native bf16 (AVX512-BF16/AMX) is emulated and can be 10-20x "
                      "slower than fp32; use amp auto or off", stacklevel=2)
    return torch.bfloat16


def describe(dtype: torch.dtype | None, device) -> str:
    """One line for the start of a run: the precision and why."""
    device = torch.device(device)
    name = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + GradScaler"}[dtype]
    if device.type == "cpu":
        native = "native bf16" if cpu_has_native_bf16() else "no native bf16"
        return f"precision: {name} on {platform.machine()} CPU ({native})"
    return f"precision: {name} on {device}"
