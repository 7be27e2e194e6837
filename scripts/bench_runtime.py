"""Runtime in the shape of DIINN's Table 4: DIINN, LIIF and Meta-SR, reference vs fast decoder path, fp32 and bf16.

    python scripts/bench_runtime.py                                  # RDN and EDSR-baseline, 128..1024, both paths
    python scripts/bench_runtime.py --models diinn liif metasr --encoders rdn --sizes 128 256 512   # Table 4's rows
    python scripts/bench_runtime.py --encoders edsr-baseline --sizes 128 256 --runs 2 --json out.json
    python scripts/bench_runtime.py --train-step                     # also training steps, reference vs fast
    python scripts/bench_runtime.py --train-step --cpu-heap off on   # ... with and without heap reuse (CPU)
    python scripts/bench_runtime.py --encoders rdn --sizes 512 --profile 15   # where the time goes (no timing)

The paper times "the average runtime of the forward pass ... over 100 runs" of one 48x48 RGB input upscaled to
128x128, 256x256 and 512x512 on an NVIDIA Quadro RTX 3000 (DIINN 56.6 / 95.51 / 243.59 ms, bicubic 0.11 / 0.15 /
0.49 ms; Meta-SR 50.27 / 69.27 / 162.22; LIIF 73.36 / 185.42 / 693.27, both retrained by the authors with RDN). Here
each row is ``model.upscale`` (no gradients, the device's default chunk size) of a randomly initialised DIINN (f),
LIIF or Meta-SR (``--models``), median of ``--runs`` timed calls after ``--warmup``; every (model, encoder, path,
precision) group runs in its own process so that its peak memory is its own (``ru_maxrss`` on a CPU,
``torch.cuda.max_memory_allocated`` on CUDA). bf16 rows only where the device runs bf16 natively (CUDA, or a CPU
with AVX512-BF16/AMX: ``course_lib.precision``). Prints Markdown; ``--json`` writes the rows. ``--profile TOP``
times nothing: it runs one upscale per group at the first size under ``torch.profiler`` and prints the TOP operators
by their own device time (CUDA) or CPU time, with call counts, to show where a path spends it (kernel launches,
casts, copies) when a ratio surprises (docs/RESULTS.md, "Eighteenth session").
Lesson 04 explains the two paths; docs/RESULTS.md holds the figures with the machine they came from.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_lib import allocator, complexity, decoders, models, precision  # noqa: E402
from course_lib.errors import pick_device  # noqa: E402

PAPER_MS = {"bicubic": (0.11, 0.15, 0.49), "Meta-SR (RDN)": (50.27, 69.27, 162.22),
            "LIIF (RDN)": (73.36, 185.42, 693.27), "DIINN (RDN)": (56.6, 95.51, 243.59)}
FAMILIES = {"diinn": ("DIINN (f)", {"variant": "f"}), "liif": ("LIIF", {}), "metasr": ("Meta-SR", {})}


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn, device, runs: int, warmup: int) -> float:
    """Median milliseconds of ``fn()`` over ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def peak_mib(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def setup(args, family: str, encoder: str, path: str):
    """(device, row label, the randomly initialised model on that path, one random LR input)."""
    device = pick_device(args.device)
    torch.manual_seed(0)
    label, kwargs = FAMILIES[family]
    model = models.build(family, encoder=encoder, **kwargs).to(device).eval()
    decoders.use_fast_path(model, path == "fast")
    return device, label, model, torch.rand(1, 3, args.input, args.input, device=device)


def group(args, family: str, encoder: str, path: str, prec: str) -> list[dict]:
    """Time one (model family, encoder, path, precision) over every size, in this process."""
    device, label, model, lr = setup(args, family, encoder, path)
    rows = []
    for size in args.sizes:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        ms = time_ms(lambda s=size: model.upscale(lr, size=(s, s), chunk_size=args.chunk_size, amp=prec == "bf16",
                                                  progress=False), device, args.runs, args.warmup)
        rows.append({"model": f"{label} + {encoder}", "path": path, "precision": prec, "input": args.input,
                     "size": size, "ms": ms, "peak_mib": peak_mib(device),
                     "chunk": args.chunk_size or models.default_chunk(device)})
    return rows


def profile_table(args, family: str, encoder: str, path: str, prec: str, top: int) -> str:
    """One ``model.upscale`` at ``args.sizes[0]`` under ``torch.profiler`` (after the warm-up calls): the ``top``
    operators by self device time (CUDA) or self CPU time, as torch's text table."""
    from torch.profiler import ProfilerActivity, profile

    device, label, model, lr = setup(args, family, encoder, path)
    size = args.sizes[0]

    def call():
        model.upscale(lr, size=(size, size), chunk_size=args.chunk_size, amp=prec == "bf16", progress=False)

    for _ in range(max(args.warmup, 1)):
        call()
    sync(device)
    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        call()
        sync(device)
    keys = ["self_device_time_total", "self_cuda_time_total"] if cuda else ["self_cpu_time_total"]
    for key in keys:  # torch < 2.4 names the device column after CUDA
        try:
            table = prof.key_averages().table(sort_by=key, row_limit=top)
            break
        except (AttributeError, KeyError, ValueError):
            continue
    else:
        raise SystemExit(f"torch {torch.__version__}'s profiler sorts by none of {keys}")
    return f"{label} + {encoder}, {path} path, {prec}, {args.input}x{args.input} -> {size}x{size} on {device}:\n{table}"


def train_step(args, path: str) -> dict:
    """Seconds per training step (median): the authors' recipe, EDSR-baseline, batch 4 x scales {2, 3, 4}, patch 48
    (``--train-patch``), and the step's multiply-adds, forward and backward (``complexity.count_step_macs``)."""
    device = pick_device(args.device)
    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-baseline", variant="f").to(device)
    decoders.use_fast_path(model, path == "fast")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    p = args.train_patch
    batch = [(torch.rand(4, 3, p, p, generator=g).to(device), torch.rand(4, 3, p * s, p * s, generator=g)
              .to(device)) for s in (2, 3, 4)]

    def loss():
        return torch.stack([F.l1_loss(model.predict(lr, hr.shape[-2:]), model.normalize(hr))
                            for lr, hr in batch]).mean()

    def step():
        value = loss()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()

    seconds = time_ms(step, device, args.runs, 1) / 1000  # median of --runs steps (3 on a CPU) after one
    peak = peak_mib(device)
    macs = complexity.count_step_macs(loss)  # one more forward and backward, untimed
    return {"model": f"train step, EDSR-baseline, batch 4 x 3 scales, patch {p}", "path": path, "precision": "fp32",
            "seconds": seconds, "peak_mib": peak, "gmac": macs / 1e9, "gmac_per_s": macs / 1e9 / seconds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["diinn"], choices=list(FAMILIES), help="decoder families")
    p.add_argument("--encoders", nargs="+", default=["rdn", "edsr-baseline"])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    p.add_argument("--input", type=int, default=48, help="LR side (the paper: 48)")
    p.add_argument("--paths", nargs="+", default=["reference", "fast"], choices=["reference", "fast"])
    p.add_argument("--runs", type=int, default=None, help="timed calls (default 100 on CUDA, 3 on a CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 10 on CUDA, 1 on CPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--chunk-size", type=int, default=None, help="query pixels per decoder call (default: the "
                   "device's, models.default_chunk; 32768 = the chunk every device used before the fast path)")
    p.add_argument("--train-step", action="store_true",
                   help="also time training steps per path (median of --runs after one)")
    p.add_argument("--train-patch", type=int, default=48, help="LR patch side of the training step (the paper: 48)")
    p.add_argument("--cpu-heap", nargs="+", default=["off"], choices=["off", "on"],
                   help="glibc heap reuse (course_lib.allocator) in each timed process: off (the system default), "
                        "on, or both (each row once per setting, in one run)")
    p.add_argument("--json", help="write every row to this JSON file")
    p.add_argument("--profile", type=int, metavar="TOP", default=None,
                   help="time nothing: profile one upscale per group at the first size and print its TOP operators")
    p.add_argument("--one", nargs=4, metavar=("MODEL", "ENCODER", "PATH", "PREC"), help=argparse.SUPPRESS)
    p.add_argument("--one-train", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--heap", choices=["off", "on"], default="off", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.heap == "on" and not allocator.reuse_heap():
        raise SystemExit("--cpu-heap on needs Linux with glibc (course_lib.allocator)")
    device = pick_device(args.device)
    args.runs = args.runs or (100 if device.type == "cuda" else 3)
    args.warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)
    heap_tag = "" if args.heap == "off" else " +heap"  # rows timed with allocator.reuse_heap() carry it
    if args.one:
        rows = group(args, *args.one)
        print(json.dumps([{**r, "path": r["path"] + heap_tag} for r in rows]))
        return 0
    if args.one_train:
        row = train_step(args, args.one_train)
        print(json.dumps({**row, "path": row["path"] + heap_tag}))
        return 0
    precs = ["fp32"] + (["bf16"] if precision.autocast_dtype("auto", device) == torch.bfloat16 else [])
    if args.profile is not None:
        if args.profile < 1:
            raise SystemExit(f"--profile takes how many operators to list (1 or more), got {args.profile}")
        for family in args.models:
            for enc in args.encoders:
                for prec in precs:
                    for path in args.paths:
                        print(profile_table(args, family, enc, path, prec, args.profile), flush=True)
        return 0
    base = [sys.executable, __file__, "--sizes", *map(str, args.sizes), "--input", str(args.input), "--runs",
            str(args.runs), "--warmup", str(args.warmup), "--device", args.device]
    if args.chunk_size:
        base += ["--chunk-size", str(args.chunk_size)]
    base += ["--train-patch", str(args.train_patch)]

    def child(extra) -> list:
        out = subprocess.run(base + extra, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(extra)} failed:\n{out.stderr[-2000:]}")
        got = json.loads(out.stdout.strip().splitlines()[-1])
        return got if isinstance(got, list) else [got]

    lr = torch.rand(1, 3, args.input, args.input, device=device)
    rows = [{"model": "bicubic (F.interpolate)", "path": "-", "precision": "fp32", "input": args.input, "size": s,
             "ms": time_ms(lambda s=s: F.interpolate(lr, size=(s, s), mode="bicubic"), device, args.runs,
                           args.warmup), "peak_mib": None} for s in args.sizes]
    for family in args.models:
        for enc in args.encoders:
            for prec in precs:
                for heap in args.cpu_heap:
                    for path in args.paths:
                        rows += child(["--one", family, enc, path, prec, "--heap", heap])
    if args.train_step:
        for heap in args.cpu_heap:
            for path in args.paths:
                rows += child(["--one-train", path, "--heap", heap])
    chunks = sorted({r["chunk"] for r in rows if r.get("chunk")})  # each process's own (models.default_chunk)
    print(f"machine: {precision.machine(device)}; input {args.input}x{args.input}; median of {args.runs} after "
          f"{args.warmup}; chunk {' / '.join(map(str, chunks)) or '-'}")
    heads = " | ".join(f"{s}x{s}" for s in args.sizes)
    print(f"| model | path | precision | {heads} | peak memory (MiB) |")
    print("| --- | --- | --- |" + " --- |" * len(args.sizes) + " --- |")
    timed = [r for r in rows if "size" in r]
    keys = list(dict.fromkeys((r["model"], r["path"], r["precision"]) for r in timed))
    by = {(r["model"], r["path"], r["precision"], r["size"]): r for r in timed}
    for key in keys:
        cells = [by[(*key, s)] for s in args.sizes]
        peak = max((c["peak_mib"] or 0) for c in cells)
        print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(f"{c['ms']:.1f} ms" for c in cells)
              + (f" | {peak:.0f} |" if peak else " | - |"))
        ref = key[1].replace("fast", "reference")
        if key[1].startswith("fast") and (key[0], ref, key[2], args.sizes[0]) in by:
            ratio = [by[(key[0], ref, key[2], s)]["ms"] / by[(*key, s)]["ms"] for s in args.sizes]
            print(f"| {key[0]} | {ref} / {key[1]} | {key[2]} | " + " | ".join(f"{r:.2f}x" for r in ratio) + " | |")
    if args.input == 48 and args.sizes[:3] == [128, 256, 512]:
        for label, ms in PAPER_MS.items():
            print(f"| paper: {label} (Quadro RTX 3000) | - | fp32 | " + " | ".join(f"{v:.2f} ms" for v in ms)
                  + " |" * (len(args.sizes) - 2) + " |")
    steps = {r["path"]: r for r in rows if "seconds" in r}
    for r in steps.values():
        print(f"{r['model']}, {r['path']}: {r['seconds']:.2f} s per step, {r['gmac']:.1f} GMAC forward + backward "
              f"({r['gmac_per_s']:.1f} GMAC/s; peak {r['peak_mib']:.0f} MiB)")
    for path, r in steps.items():
        ref = steps.get(path.replace("fast", "reference"))
        if path.startswith("fast") and ref:
            print(f"{ref['path']} / {path}: {ref['seconds'] / r['seconds']:.2f}x in time; "
                  f"{ref['gmac'] / r['gmac']:.2f}x in multiply-adds (the time ratio if only the products took "
                  "time, at one rate)")
    if args.json:
        record = {"machine": precision.machine(device), "date": date.today().isoformat(), "rows": rows}
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
