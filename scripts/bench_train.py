"""Training speed and peak memory of the paper's recipe: the course trainer (fp32 and AMP) vs a plain loop.

    python scripts/bench_train.py                 # RDN, batch 4 x scales {2, 3, 4}, 48x48 LR patches
    python scripts/bench_train.py --small         # EDSR-LESS, batch 2, 16x16 patches: seconds on a CPU
    python scripts/bench_train.py --encoder edsr-baseline --patch 24 --steps 3

Rows: ``plain fp32`` (a hand-written Adam loop over model.predict, the floor the trainer should match),
``trainer fp32`` (course_lib.train.Trainer, amp off) and ``trainer amp`` (bf16 autocast where the device
supports it, fp16 + GradScaler on older GPUs; on a CPU bf16 autocast). Each row runs in a fresh process so
that the peak memory is its own: ``torch.cuda.max_memory_allocated`` on CUDA, the peak resident set on a CPU.
Batches are fixed random tensors, so the numbers are compute only (no image decoding). Lesson 06.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

MODES = ("plain fp32", "trainer fp32", "trainer amp")


def make_batch(batch: int, patch: int, scales, device) -> list:
    g = torch.Generator().manual_seed(0)
    out = []
    for s in scales:
        side = round(patch * s)
        out.append((torch.rand(batch, 3, patch, patch, generator=g).to(device),
                    torch.rand(batch, 3, side, side, generator=g).to(device)))
    return out


def run_one(mode: str, args) -> dict:
    """Time ``args.steps`` training steps (after ``args.warmup``) in this process; return one table row."""
    from course_lib import models, train

    device = train.pick_device(args.device)
    torch.manual_seed(0)
    model = models.build("diinn", encoder=args.encoder, variant="f")
    batch = make_batch(args.batch, args.patch, args.scales, device)
    if mode == "plain fp32":
        model = model.to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step():
            loss = torch.stack([F.l1_loss(model.predict(lr, hr.shape[-2:]), model.normalize(hr))
                                for lr, hr in batch]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()
    else:
        amp = "off" if mode == "trainer fp32" else ("auto" if device.type == "cuda" else "bf16")
        cfg = train.load_config(None, {"model.encoder": args.encoder, "run.amp": amp, "run.device": args.device,
                                       "run.compile": args.compile, "run.channels_last": args.channels_last})
        trainer = train.Trainer(model, cfg, device)
        batch = train._to_device(batch, device, trainer.channels_last)

        def step():
            return trainer.step(batch)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    seconds = (time.perf_counter() - t) / args.steps
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        where = "GPU"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        where = "RSS"
    return {"mode": mode, "s_per_step": seconds, "steps_per_s": 1 / seconds, "peak_mib": peak,
            "memory": where, "loss": float(loss), "device": str(device), "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="EDSR-LESS, batch 2, 16x16 patches (quick CPU check)")
    p.add_argument("--encoder", default=None, help="rdn (default), edsr-baseline or edsr-less")
    p.add_argument("--batch", type=int, default=None, help="HR images per step (default 4)")
    p.add_argument("--patch", type=int, default=None, help="LR patch side (default 48)")
    p.add_argument("--scales", type=float, nargs="+", default=[2, 3, 4])
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 20 on CUDA, 2 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (3 on CUDA, 1 on CPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile in the trainer rows")
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"],
                   help="memory format in the trainer rows (auto: on with CUDA)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)  # internal: run one row, print JSON
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    args.encoder = args.encoder or ("edsr-less" if args.small else "rdn")
    args.batch = args.batch or (2 if args.small else 4)
    args.patch = args.patch or (16 if args.small else 48)
    args.steps = args.steps or (20 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return 0
    forward = list(argv if argv is not None else sys.argv[1:])
    rows = []
    for mode in args.modes:
        cmd = [sys.executable, __file__, *forward, "--one", mode]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{mode}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"DIINN (f) + {args.encoder}, batch {args.batch} x scales {args.scales}, LR patch {args.patch}, "
          f"compile {args.compile}, channels_last {args.channels_last}, "
          f"{args.steps} timed steps after {args.warmup}, device {rows[0]['device']}, "
          f"{rows[0]['threads']} threads, torch {torch.__version__}")
    print(f"| {'mode':<13} | {'steps/s':>8} | {'s/step':>8} | {'peak memory':>16} | {'loss':>7} |")
    print(f"|{'-' * 15}|{'-' * 10}|{'-' * 10}|{'-' * 18}|{'-' * 9}|")
    for r in rows:
        mem = f"{r['peak_mib']:.0f} MiB {r['memory']}"
        print(f"| {r['mode']:<13} | {r['steps_per_s']:8.3f} | {r['s_per_step']:8.3f} | {mem:>16} "
              f"| {r['loss']:7.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
