"""Time the evaluation runner: bicubic on Set5 and Set14 at x2, x3, x4 under both protocols.

    python scripts/bench_evaluate.py [--threads N] [--repeat R]

Uses $COURSE_DATA_DIR (else ../shared/data beside the repository when it exists). Prints the tables
and the wall-clock seconds per protocol and in total (target: under a minute on 2 CPU cores).
``--threads`` sets torch's intra-op threads for the run (default: torch's own choice).
Notebook: 07_evaluation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for this run")
    parser.add_argument("--repeat", type=int, default=1, help="time the run this many times (best kept)")
    args = parser.parse_args(argv)
    shared = REPO.parent / "shared" / "data"
    if not os.environ.get("COURSE_DATA_DIR") and shared.is_dir():
        os.environ["COURSE_DATA_DIR"] = str(shared)
    if args.threads:
        torch.set_num_threads(args.threads)
    from course_lib import evaluate
    from course_lib.precision import machine

    print(f"machine: {machine()}, {os.cpu_count()} CPUs, cuda: {torch.cuda.is_available()}")
    best = {}
    for _ in range(max(1, args.repeat)):
        for protocol in ("paper", "standard"):
            start = time.perf_counter()
            rows = evaluate.evaluate("bicubic", ["Set5", "Set14"], [2, 3, 4], protocol=protocol,
                                     device="cpu", progress=False)
            seconds = time.perf_counter() - start
            if seconds < best.get(protocol, (float("inf"),))[0]:
                best[protocol] = (seconds, rows)
    for protocol, (seconds, rows) in best.items():
        print(evaluate.format_table(rows))
        print(f"{protocol}: {seconds:.1f} s\n")
    total = sum(s for s, _ in best.values())
    print(f"total: {total:.1f} s (Set5 + Set14, x2 x3 x4, bicubic, both protocols)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
