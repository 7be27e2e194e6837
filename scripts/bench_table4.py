"""DIINN's Table 4: forward-pass time of one 48x48 RGB input upscaled to 128x128, 256x256 and 512x512.

    python scripts/bench_table4.py                           # DIINN (f) + RDN, fp32 and bf16 autocast, bicubic
    python scripts/bench_table4.py --encoder edsr-baseline --runs 10 --precisions fp32

The paper times "the average runtime of the forward pass ... over 100 runs" on an NVIDIA Quadro RTX 3000:
bicubic 0.11 / 0.15 / 0.49 ms, DIINN 56.6 / 95.51 / 243.59 ms. Here each row is ``model.upscale`` (no gradients,
the decoder in chunks of ``models.DEFAULT_CHUNK`` queries) after ``--warmup`` untimed runs; on CUDA timed with
``torch.cuda.synchronize`` around each run. Weights are random (time does not depend on them). bf16 rows use
autocast (CUDA: ``upscale(amp=True)``; CPU: only when asked, since CPUs without native bf16 run it far slower).
Prints a Markdown table; copy it into docs/RESULTS.md with the machine it ran on. Lesson 07.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_lib import models  # noqa: E402
from course_lib.errors import pick_device  # noqa: E402

PAPER_MS = {"bicubic": (0.11, 0.15, 0.49), "DIINN": (56.6, 95.51, 243.59)}


def time_ms(fn, device, runs: int, warmup: int) -> float:
    """Median milliseconds of ``fn()`` over ``runs`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="rdn")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--precisions", nargs="+", default=None, choices=["fp32", "bf16"],
                   help="default: fp32 and bf16 on CUDA, fp32 on a CPU")
    p.add_argument("--runs", type=int, default=None, help="timed runs (default 100 on CUDA, 3 on a CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 10 on CUDA, 1 on CPU)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    runs = args.runs or (100 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    precisions = args.precisions or (["fp32", "bf16"] if cuda else ["fp32"])
    torch.manual_seed(0)
    model = models.build("diinn", encoder=args.encoder, variant="f").to(device).eval()
    lr = torch.rand(1, 3, 48, 48, device=device)
    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name(device) if cuda else f"{platform.machine()} CPU, {threads} threads"
    print(f"Table 4 protocol: 48x48 input, median of {runs} runs after {warmup}; {where}; torch {torch.__version__}")
    rows = [("bicubic (F.interpolate)", [time_ms(lambda s=s: F.interpolate(lr, size=(s, s), mode="bicubic",
                                                                          align_corners=False), device, runs, warmup)
                                        for s in args.sizes])]
    for prec in precisions:
        ctx = (torch.autocast(device.type, dtype=torch.bfloat16) if prec == "bf16" and not cuda
               else torch.autocast(device.type, enabled=False))

        def run(s, prec=prec, ctx=ctx):
            with ctx:
                return model.upscale(lr, size=(s, s), amp=prec == "bf16")

        peak = []
        row = []
        for s in args.sizes:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            row.append(time_ms(lambda s=s: run(s), device, runs, warmup))
            peak.append(torch.cuda.max_memory_allocated(device) / 2**20 if cuda else float("nan"))
        label = f"DIINN (f) + {args.encoder}, {prec}"
        if cuda:
            label += f" (peak {max(peak):.0f} MiB)"
        rows.append((label, row))
    heads = " | ".join(f"{s}x{s}" for s in args.sizes)
    print(f"| method | {heads} |")
    print("| --- |" + " --- |" * len(args.sizes))
    for label, row in rows:
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    if args.sizes == [128, 256, 512]:
        for label, row in PAPER_MS.items():
            print(f"| paper: {label} (Quadro RTX 3000) | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
