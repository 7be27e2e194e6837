"""Table 5 at the budget of the course's best CPU checkpoint: train rows, score them per image, record them.

Lesson 08's sections 2-3 train the six variants of the paper's Table 5 for 400 steps, two seeds each. This script
trains them at the budget of the shipped ``diinn-edsr-291-cpu-liif-bf16`` (15,447 steps of
``configs/diinn-edsr-291-cpu.yaml`` with LIIF's sampling, the same seed, so every row sees the same batches), one
row per command, and scores each on all of Urban100 at Table 5's scales (x3.14, x4, x8; paper protocol, fp16
weights scored in fp32, as the shipped checkpoints are). Row (f) *is* the shipped checkpoint: it is scored, not
trained again (its training planned 15,447 steps from a 45-minute budget; this script trains the other rows with
exactly that many steps, ``run.max_minutes=null``). Lesson 08, section 6 reads the record::

    python scripts/table5_budget.py --rows "(b)" "(d)" --out docs/results/table5-291-cpu.json
    python scripts/table5_budget.py --rows "(a)" --out docs/results/table5-291-cpu.json   # another session

Each command adds its rows to the record (and keeps the rows already there, when the record was made with the same
config, overrides, sets and scales); a row already in the record is not scored again. Training is
``compare.train_rows`` (resumable: an interrupted command resumes where it stopped); the row's run folder is
``<root>/<row>-seed<seed>``. On 2 cores of a CPU with native bf16 a fast-path row ((b), (d)) trains in about 30
minutes, a positional-init row ((a), (c), (e): no fast path) in about twice that; scoring one row on Urban100 takes
about 25 minutes (docs/RESULTS.md, "Twenty-first session").

Each record row: where the weights came from, steps, training seconds, parameters, the last Set5 validation, how
its training config differs from the row's (``changes``: empty for a row trained here; for (f), the budget's
``run.max_minutes`` and the planned ``run.max_steps``), and evaluate's rows with per-image PSNR / SSIM / LR-PSNR.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_lib import compare, evaluate, models, train  # noqa: E402
from course_lib.config import parse_overrides  # noqa: E402
from course_lib.errors import CourseError  # noqa: E402
from course_lib.files import atomic_write  # noqa: E402
from course_lib.precision import machine  # noqa: E402

CONFIG = "diinn-edsr-291-cpu"
BUDGET = ["data.recipe=liif", "data.sample_q=1024", "run.max_minutes=null", "run.max_steps=15447",
          "val.every=1000"]  # validation does not touch the training batches: fewer of them only save time
SEED = 123  # the config's run.seed, which the shipped (f) was trained with
PRETRAINED = {"(f)": "diinn-edsr-291-cpu-liif-bf16"}
MATCH = ("config", "overrides", "seed", "sets", "scales", "limit", "protocol")  # what two records must share


def _flat_overrides(items) -> dict:
    return compare._flat(parse_overrides(list(items)))


def read_record(path: Path, meta: dict) -> dict:
    """The rows of an existing record made with the same ``MATCH`` keys as ``meta``; {} when there is none."""
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or "rows" not in doc or "meta" not in doc:
        raise CourseError(f"{path} is not a table5_budget record; give another --out")
    differ = [k for k in MATCH if doc["meta"].get(k) != meta[k]]
    if differ:
        then = ", ".join(f"{k}={doc['meta'].get(k)!r}" for k in differ)
        raise CourseError(f"{path} was made with other {', '.join(differ)} ({then}); give another --out, or the "
                          "same settings")
    return doc["rows"]


def last_validation(log: list[dict]) -> dict | None:
    vals = [m["val"] for m in log if "val" in m]
    return vals[-1] if vals else None


def trained_row(folder: Path, config, overrides: dict) -> tuple[dict, Path]:
    """A run folder's facts and its fp16 export (written into ``<folder>/fp16``); ``changes``: where the run differs
    from ``config`` + ``overrides`` (its row's), by ``compare.run_changes``."""
    ckpt = train.load_checkpoint(folder / "last.pt")
    log = train.read_metrics(folder)
    losses = [m for m in log if "loss" in m]
    path = train.export_pretrained(folder / "last.pt", "model", folder=folder / "fp16")
    changes = compare.run_changes({"steps": int(ckpt["step"]), "train_config": ckpt["train_config"]}, config,
                                  overrides)
    return {"weights": f"{folder}/last.pt (fp16 export)", "steps": int(ckpt["step"]),
            "seconds": round(float(ckpt["elapsed"]), 1),
            "steps_per_s": round(losses[-1]["step"] / losses[-1]["time"], 3) if losses else None,
            "changes": [list(c) for c in changes], "val": last_validation(log)}, path


def pretrained_row(name: str, config, overrides: dict) -> tuple[dict, str]:
    """A shipped checkpoint's facts (its training run planned its own length) and its name."""
    entry = models.list_pretrained().get(name)
    if entry is None:
        raise CourseError(f"no pretrained model named {name!r}; python -m course_lib list-pretrained lists them")
    extra = models.read_checkpoint(models.PRETRAINED_DIR / entry["file"]).get("extra") or {}
    changes = compare.run_changes({"steps": extra.get("step"), "train_config": extra.get("train_config") or {}},
                                  config, overrides)
    return {"weights": f"pretrained {name}", "steps": extra.get("step"), "seconds": None, "steps_per_s": None,
            "changes": [list(c) for c in changes], "trained": entry["trained"], "val": None}, name


def write(path: Path, doc: dict) -> Path:
    text = json.dumps(doc, indent=1) + "\n"
    return atomic_write(path, lambda f: f.write(text), "w")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", required=True,
                   help=f"rows of compare.TABLE5_ROWS: {', '.join(compare.TABLE5_ROWS)}")
    p.add_argument("--out", required=True, help="the record (JSON); rows already in it are kept")
    p.add_argument("--config", default=CONFIG)
    p.add_argument("--override", "-o", nargs="*", default=BUDGET, help="the budget, for every row")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--root", default="runs/table5-291", help="run folders")
    p.add_argument("--sets", nargs="+", default=["Urban100"])
    p.add_argument("--scales", type=float, nargs="+", default=[3.14, 4.0, 8.0])
    p.add_argument("--limit", type=int, default=None, help="first N images of each set (tests)")
    p.add_argument("--pretrained", nargs="*", default=[f"{r}={n}" for r, n in PRETRAINED.items()],
                   metavar="ROW=NAME", help="rows scored from a shipped checkpoint instead of trained")
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    unknown = [r for r in args.rows if r not in compare.TABLE5_ROWS]
    if unknown:
        raise CourseError(f"unknown row {unknown[0]!r}; choose from {', '.join(compare.TABLE5_ROWS)}")
    bad = [item for item in args.pretrained if "=" not in item]
    if bad:
        raise CourseError(f"--pretrained {bad[0]!r}: write ROW=NAME, e.g. \"(f)=diinn-edsr-291-cpu-liif-bf16\"")
    pretrained = dict(item.split("=", 1) for item in args.pretrained)
    overrides = _flat_overrides(args.override)
    meta = {"config": args.config, "overrides": overrides, "seed": args.seed, "sets": args.sets,
            "scales": [float(s) for s in args.scales], "limit": args.limit, "protocol": "paper"}
    out = Path(args.out)
    rows = read_record(out, meta)
    for row in args.rows:
        if row in rows:
            print(f"{row}: already in {out}")
            continue
        row_overrides = {**overrides, **compare.TABLE5_ROWS[row], "run.seed": args.seed}
        if row in pretrained:
            info, weights = pretrained_row(pretrained[row], args.config, row_overrides)
        else:
            folder = compare.train_rows(args.config, {row: compare.TABLE5_ROWS[row]}, seeds=[args.seed],
                                        root=args.root, overrides=overrides, progress=False)[row, args.seed]
            info, weights = trained_row(Path(folder), args.config, row_overrides)
        start = time.perf_counter()
        model = models.resolve(weights, device=args.device)  # a shipped one's sha256 is checked
        info["parameters"] = models.count_parameters(model)
        info["scores"] = evaluate.evaluate(model, args.sets, args.scales, device=args.device, limit=args.limit,
                                           progress=False, per_image=True)
        info["score_seconds"] = round(time.perf_counter() - start, 1)
        # where it was scored (and trained, unless it is a shipped checkpoint)
        info["machine"] = f"{machine(args.device or 'cpu')}, {os.cpu_count()} CPUs"
        info["date"] = time.strftime("%Y-%m-%d")
        rows[row] = info
        write(out, {"meta": meta, "rows": rows})
        print(f"{row}: {info['steps']} steps; " + ", ".join(f"{r['dataset']} x{r['scale']:g} {r['psnr']:.2f}"
                                                             for r in info["scores"])
              + f" (scored in {info['score_seconds']:.0f} s); wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except CourseError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
