"""GPU campaign: train a course checkpoint in short, resumable GPU windows (docs/TRAINING.md, "GPU campaign").

A lent GPU comes for about 30 minutes, in commands of under 10 minutes, with a small payload in (the repository
plus carried data, under 64 MiB) and files of under 16 MiB out. So one run is split into invocations:

    python scripts/gpu_campaign.py pack --out .carry/data                # once, here: lossless WebP copies
    # on the GPU machine, each window (the state folder travels back and forth):
    COURSE_DATA_DIR=.carry/data python scripts/gpu_campaign.py train --config diinn-edsr-291 \\
        --minutes 9 --state-in .carry/state --state-out $OUT
    COURSE_DATA_DIR=.carry/data python scripts/gpu_campaign.py finish --config diinn-edsr-291 \\
        --state-in .carry/state --out $OUT --sets Set5 Set14

* ``pack`` writes T91, BSD200, Set5 and Set14 as lossless WebP (about 2/3 of the PNG bytes; every decoded
  pixel is checked against the original) under ``<out>/<Set>/HR``, the layout ``COURSE_DATA_DIR`` expects.
  ``--limit N --crop S`` packs only centred crops of the first N images of test sets (for a GPU run that scores
  crops, e.g. lesson 10's; docs/GPU_QUEUE.md row 3), so that they fit the payload beside the training sets.
* ``train`` restores the run folder from ``--state-in`` (if it holds a state), trains with ``course_lib.train``
  (``resume="auto"``) and stops cleanly after ``--minutes`` (``train(deadline=...)``: ``last.pt`` is saved), then
  writes the state to ``--state-out``: ``last.pt`` split into parts under 15 MiB, ``metrics.jsonl`` and
  ``config.yaml``. The config's ``run.max_minutes`` is the budget of the whole run; its schedule was planned to
  fit it on the first invocation (``course_lib.train.plan_steps``), so the windows add up to one run.
* ``finish`` restores the state, exports ``last.pt`` (not the best validation checkpoint: validation uses Set5,
  a test set, and choosing on it would flatter the table) as an fp16 course checkpoint, and evaluates it.
* ``snapshot`` copies the state of a run that is still going (``last.pt`` is written atomically) to a
  folder: a run started in the background on the GPU machine keeps training between two commands, and each
  command brings its latest state back.
* ``restore`` only rebuilds the run folder from a state folder (to export or evaluate on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from course_lib import data, evaluate, models, train  # noqa: E402
from course_lib.errors import CourseError  # noqa: E402
from course_lib.images import centre_crop, load_image_uint8  # noqa: E402

PART_BYTES = 15 * 2**20  # each returned file stays under the 16 MiB limit
STATE_FILES = ("metrics.jsonl", "config.yaml")
PACK_SETS = ("T91", "BSD200", "Set5", "Set14")


# ---------------------------------------------------------------------------------------------------- pack
def pack(sets, out: Path, limit: int | None = None, crop: int | None = None) -> dict:
    """Lossless WebP copies of ``sets`` under ``out/<Set>/HR``; returns {set: (files, bytes)}.

    ``limit``: only the first images of each set (the registry's order, as ``data.get_dataset(limit=...)``);
    ``crop``: only each image's centred ``crop`` x ``crop`` part (``images.centre_crop``). Both shrink test sets for
    a GPU run that scores centred crops of the first images (lesson 10: 96-px crops of the first 10; packing
    ``--limit 10 --crop 256`` gives the very same 96-px crops). Never use a cropped pack to train or to score whole
    images: the folder keeps the set's name."""
    import numpy as np
    from PIL import Image

    if crop is not None and int(crop) < 1:
        raise CourseError(f"crop must be a positive side in pixels, got {crop}")
    summary = {}
    for name in sets:
        src = data.get_dataset(name, download_missing=False, limit=limit)
        dest = out / data.dataset_info(name).folder / "HR"
        dest.mkdir(parents=True, exist_ok=True)
        total = 0
        for path in src.paths:
            target = dest / f"{path.stem}.webp"
            original = centre_crop(load_image_uint8(path), crop)  # (3, H, W) uint8: what the course reads
            if target.is_file() and load_image_uint8(target).shape != original.shape:
                target.unlink()  # packed before with another crop: write it again
            if not target.is_file():
                tmp = target.with_suffix(".webp.tmp")
                Image.fromarray(original.permute(1, 2, 0).numpy()).save(tmp, format="WEBP", lossless=True,
                                                                        quality=100, method=4)
                os.replace(tmp, target)
            if not np.array_equal(load_image_uint8(target).numpy(), original.numpy()):
                raise CourseError(f"{target} does not decode to the pixels of {path}; delete it and pack again")
            total += target.stat().st_size
        summary[name] = (len(src.paths), total)
        print(f"{name}: {len(src.paths)} images, {total / 2**20:.1f} MiB in {dest}")
    return summary


# ---------------------------------------------------------------------------------------------------- state
def save_state(run_dir: Path, state_out: Path) -> list[Path]:
    """``last.pt`` split into parts of at most PART_BYTES, plus the run's small files, into ``state_out``."""
    state_out.mkdir(parents=True, exist_ok=True)
    written = []
    for old in state_out.glob("last.pt.part*"):
        old.unlink()
    blob = (run_dir / "last.pt").read_bytes()
    for k, start in enumerate(range(0, len(blob), PART_BYTES)):
        part = state_out / f"last.pt.part{k:02d}"
        part.write_bytes(blob[start:start + PART_BYTES])
        written.append(part)
    for name in STATE_FILES:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, state_out / name)
            written.append(state_out / name)
    return written


def restore_state(state_in: Path, run_dir: Path) -> bool:
    """Rebuild ``run_dir/last.pt`` (atomically) and the small files from a state folder; False if it is empty."""
    parts = sorted(state_in.glob("last.pt.part*")) if state_in and state_in.is_dir() else []
    if not parts:
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "last.pt.tmp"
    with open(tmp, "wb") as f:
        for part in parts:
            f.write(part.read_bytes())
    os.replace(tmp, run_dir / "last.pt")
    train.load_checkpoint(run_dir / "last.pt")  # a broken or incomplete state fails here, in one line
    for name in STATE_FILES:
        if (state_in / name).is_file():
            shutil.copyfile(state_in / name, run_dir / name)
    return True


def run_dir_of(args) -> Path:
    cfg = train.load_config(args.config, args.override)
    return Path(args.run_dir or cfg.run.out_dir or REPO / "runs" / cfg.name)


# ---------------------------------------------------------------------------------------------------- train
def train_window(args) -> train.TrainResult:
    """Resume (or start) the run, train for ``args.minutes`` at most, save the state."""
    run_dir = run_dir_of(args)
    if args.state_in and restore_state(Path(args.state_in), run_dir):
        print(f"restored {run_dir / 'last.pt'} from {args.state_in}")
    overrides = list(args.override) + [f"run.out_dir={run_dir}"]
    t = time.time()
    deadline = t + args.minutes * 60 if args.minutes else None  # a clean stop: the step ends, last.pt is saved
    result = train.train(args.config, overrides, resume="auto", deadline=deadline)
    print(f"trained to step {result.step} in {time.time() - t:.0f} s; "
          f"{'stopped (resume next window)' if result.interrupted else 'the run is complete'}")
    if args.state_out:
        for path in save_state(run_dir, Path(args.state_out)):
            print(f"state: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return result


# ---------------------------------------------------------------------------------------------------- finish
def finish(args) -> list[dict]:
    """Export last.pt as an fp16 course checkpoint into ``args.out`` and evaluate it there."""
    import torch

    run_dir = run_dir_of(args)
    if args.state_in:
        restore_state(Path(args.state_in), run_dir)
    ckpt = train.load_checkpoint(run_dir / "last.pt")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    hours = float(ckpt["elapsed"]) / 3600
    gpu = torch.cuda.get_device_name(0) if dev == "cuda" else "CPU"
    trained = (f"{ckpt['step']} steps of configs/{ckpt['train_config']['name']}.yaml in {hours * 60:.1f} min "
               f"of training on {gpu}")
    path = train.export_pretrained(run_dir / "last.pt", args.name, results=[], trained=trained, folder=out)
    model = models.load(path, device=dev)
    rows = evaluate.evaluate(model, args.sets, args.scales, protocol="paper", device=dev, progress=False)
    for row in rows:
        row["method"] = args.name
    index_path = out / "index.json"
    index = json.loads(index_path.read_text())
    index[args.name]["results"] = rows
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    print(evaluate.format_table(rows))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="lossless WebP copies of the training and validation sets")
    pk.add_argument("--out", default=str(REPO / ".carry" / "data"))
    pk.add_argument("--sets", nargs="+", default=list(PACK_SETS))
    pk.add_argument("--limit", type=int, help="only the first N images of each set (test sets for a GPU run)")
    pk.add_argument("--crop", type=int, help="only each image's centred crop of this side (test sets only)")
    for name in ("train", "finish", "restore"):
        sp = sub.add_parser(name)
        sp.add_argument("--config", required=True, help="a config in configs/ or a YAML path")
        sp.add_argument("--override", "-o", action="extend", nargs="+", default=[], metavar="KEY=VALUE")
        sp.add_argument("--run-dir", help="the run folder (default: the config's run.out_dir or runs/<name>)")
        sp.add_argument("--state-in", help="a state folder written by an earlier window (may be absent)")
    sn = sub.add_parser("snapshot", help="copy a running run's last.pt (split) and logs to a state folder")
    sn.add_argument("--run-dir", required=True)
    sn.add_argument("--state-out", required=True)
    tr = sub.choices["train"]
    tr.add_argument("--minutes", type=float, help="stop this window after this many minutes (state saved)")
    tr.add_argument("--state-out", help="write the state here (e.g. $OUT on the GPU machine)")
    fi = sub.choices["finish"]
    fi.add_argument("--out", required=True, help="folder for the fp16 checkpoint, index.json and the table")
    fi.add_argument("--name", help="the checkpoint's name (default: the config's name)")
    fi.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    fi.add_argument("--scales", nargs="+", type=float, default=[2, 3, 4])
    args = p.parse_args(argv)
    try:
        if args.cmd == "pack":
            pack(args.sets, Path(args.out), limit=args.limit, crop=args.crop)
        elif args.cmd == "train":
            train_window(args)
        elif args.cmd == "snapshot":
            if not (Path(args.run_dir) / "last.pt").is_file():
                raise CourseError(f"{args.run_dir} holds no last.pt yet; wait for the first save")
            for path in save_state(Path(args.run_dir), Path(args.state_out)):
                print(f"state: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        elif args.cmd == "restore":
            run_dir = run_dir_of(args)
            if not restore_state(Path(args.state_in or ""), run_dir):
                raise CourseError(f"{args.state_in} holds no last.pt.part* files; give the folder a window wrote")
            print(f"restored {run_dir / 'last.pt'}")
        else:
            args.name = args.name or train.load_config(args.config, args.override).name
            finish(args)
    except CourseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
