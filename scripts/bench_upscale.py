"""Benchmark: peak resident memory and time of ``model.upscale`` for a 64x64 input (issue: core library).

Each output size runs in a fresh subprocess so that its peak resident set size (ru_maxrss) is its own.
Usage: python scripts/bench_upscale.py [--sizes 1024 2048 4096] [--encoder edsr-baseline] [--device cpu]
Prints a markdown table; copy it into docs/RESULTS.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time


def one(size: int, encoder: str, device: str, chunk: int) -> dict:
    import torch

    from course_lib import models

    torch.manual_seed(0)
    model = models.build("diinn", encoder=encoder, variant="f").to(device).eval()
    lr = torch.rand(1, 3, 64, 64, device=device)
    model.upscale(lr, size=(64, 64), chunk_size=chunk, progress=False)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = model.upscale(lr, size=(size, size), chunk_size=chunk, amp=device == "cuda", progress=False)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    assert out.shape == (1, 3, size, size)
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    gpu_gib = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {"size": size, "seconds": seconds, "peak_rss_gib": rss_gib, "peak_gpu_gib": gpu_gib,
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    p.add_argument("--encoder", default="edsr-baseline")
    p.add_argument("--device", default="cpu")
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    from course_lib.models import default_chunk

    chunk = args.chunk_size or default_chunk(args.device)
    if args.one:
        print(json.dumps(one(args.one, args.encoder, args.device, chunk)))
        return
    from course_lib.precision import machine

    print(f"machine: {machine(args.device)}, python {platform.python_version()}, encoder {args.encoder}, chunk {chunk}")
    print("| input | output | time (s) | peak RSS (GiB) | peak GPU (GiB) | threads |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(size), "--encoder", args.encoder, "--device", args.device,
               "--chunk-size", str(chunk)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        gpu = f"{r['peak_gpu_gib']:.2f}" if r["peak_gpu_gib"] is not None else "-"
        print(f"| 64x64 | {size}x{size} | {r['seconds']:.1f} | {r['peak_rss_gib']:.2f} | {gpu} | {r['threads']} |",
              flush=True)


if __name__ == "__main__":
    main()
