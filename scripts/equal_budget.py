"""Score runs trained for the same budget at one scale, per image, into a JSON table (lesson 11, section 2).

The runs of lesson 11's equal-budget comparison (issue 14): each model trained for 18 minutes of one thread of the
same CPU with its own recipe, one after another (`run.max_minutes=18`, `OMP_NUM_THREADS=1`):

    python -m course_lib train --config diinn-edsr-291-cpu --override run.max_minutes=18 \\
        run.out_dir=runs/equal18/diinn-f-skip
    python -m course_lib train --config srresnet-x4 --override data.num_workers=0 run.out_dir=runs/equal18/srresnet-x4
    python -m course_lib train --config memnet-m3r3-cpu --override model.options.blocks=6 \\
        model.options.recursions=6 run.out_dir=runs/equal18/memnet-m6r6-x4
    python scripts/equal_budget.py runs/equal18/{diinn-f-skip,srresnet-x4,memnet-m6r6-x4} runs/memnet-m3r3-cpu \\
        --out docs/results/equal-budget-x4.json

Each row: the run's model and config, its steps and training seconds (from ``metrics.jsonl``), and per-image PSNR,
SSIM and detail ratio (``metrics.detail_ratio``) on Set5 and Set14 at the scale (paper protocol), with bicubic as the
first row, so a lesson can compute paired intervals (``course_lib.stats``) from the file without the runs. A
post-upsampling model (SRResNet) gives exactly 4x its input; where the HR side is not a multiple of 4 (Set14's comic,
zebra, ...) its output is resized to the HR size (``resize_fixed``; the row counts those images in
``resized_images``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_lib import evaluate, metrics, models, train  # noqa: E402
from course_lib.files import atomic_write  # noqa: E402
from course_lib.precision import machine  # noqa: E402


def details(model, dataset, scale: float) -> list[float]:
    """metrics.detail_ratio of each image's SR (paper-protocol LR) against its HR, in the set's order."""
    _, folder = evaluate._open_dataset(dataset, None)  # a registry name or a folder, as evaluate reads it
    out = []
    for i in range(len(folder)):
        lr_u8, hr_u8 = metrics.paper_pair(folder[i], scale)
        kwargs = {"resize": True} if getattr(model, "fixed_scale", None) else {}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the resize of a fixed-scale output, counted by evaluate below
            sr = model.upscale((lr_u8.float() / 255)[None], size=tuple(hr_u8.shape[-2:]), progress=False, **kwargs)
        out.append(metrics.detail_ratio(sr[0].float(), hr_u8))
    return out


def row(name: str, model, datasets, scale: float, info: dict) -> dict:
    scores = evaluate.evaluate(model, datasets, [scale], protocol="paper", progress=False, per_image=True,
                               resize_fixed=True)  # SRResNet on an HR side that is not 4x the LR side: resized
    sets = {}
    for dataset, r in zip(datasets, scores):
        detail = details(model, dataset, scale)
        sets[r["dataset"]] = {"psnr": r["psnr"], "ssim": r["ssim"], "detail": sum(detail) / len(detail),
                              "resized_images": r.get("resized_images", 0), "images": [
                                  {"image": i["image"], "psnr": i["psnr"], "ssim": i["ssim"], "detail": d}
                                  for i, d in zip(r["images"], detail)]}
    return {"name": name, **info, "scale": scale, "sets": sets}


def run_info(folder: Path) -> dict:
    ckpt = train.load_checkpoint(folder / "last.pt")
    log = train.read_metrics(folder)
    steps = [m for m in log if "loss" in m]
    cfg = ckpt["train_config"]
    return {"run": folder.name, "model": models.describe(ckpt["config"]), "config": cfg.get("name"),
            "steps": int(ckpt["step"]), "train_seconds": round(float(ckpt["elapsed"]), 1),
            "max_minutes": cfg["run"].get("max_minutes"), "train_scales": cfg["data"].get("scales"),
            "mean_steps_per_s": round(sum(m.get("steps_per_s", 0) for m in steps) / max(len(steps), 1), 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run folders (each with last.pt)")
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--datasets", nargs="+", default=["Set5", "Set14"])
    p.add_argument("--out", required=True, help="JSON file to write (atomically)")
    args = p.parse_args(argv)
    folders = [Path(r) for r in args.runs if (Path(r) / "last.pt").is_file()]
    rows = [row("bicubic", models.build("bicubic"), args.datasets, args.scale, {})]
    for folder in folders:
        info = run_info(folder)
        model = models.load(folder / "last.pt")
        rows.append(row(folder.name, model, args.datasets, args.scale, info))
        print(f"{folder.name}: {info['steps']} steps in {info['train_seconds']:.0f} s; " + ", ".join(
            f"{s} {r['psnr']:.2f}" for s, r in rows[-1]["sets"].items()), flush=True)
    out = {"machine": f"{machine()}, {os.cpu_count()} cores",
           "protocol": "paper", "scale": args.scale, "rows": rows}
    path = atomic_write(Path(args.out), lambda f: f.write(json.dumps(out, indent=1) + "\n"), "w")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
