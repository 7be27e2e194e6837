"""The evaluation runner: PSNR / SSIM / LR-PSNR tables shaped like the paper's Table 1.

``evaluate(model, ["Set5", "Set14"], [2, 3, 4], protocol="paper")`` makes the LR input of every HR
image with the protocol's LR maker, asks the model for an SR image of the HR size (any real scale:
the LR is round(H/s) x round(W/s) and the model is queried at the full HR size, as the authors do),
scores it with :func:`course_lib.metrics.measure` and averages per dataset and scale.
``model`` may be ``"bicubic"`` (the protocol's own bicubic baseline), a pretrained name, a
checkpoint file or a model object with ``upscale(lr, size=..., chunk_size=...)``.

Command line: ``python -m course_lib evaluate --model bicubic --datasets Set5 Set14 --scales 2 3 4
--protocol paper --json rows.json``. Derived in notebooks/07_evaluation.ipynb.

Seed paper 004's AlexNet-feature metric is one option away (``metrics=["psnr", "ssim", "alex"]``, CLI
``--metrics psnr ssim alex``): rows then also carry ``"alex"`` and ``"alex_weights"`` (it needs ImageNet weights,
:mod:`course_lib.imagenet`). A fixed-scale model (``model.fixed_scale``, e.g. SRResNet's 4) is evaluated only at
its scale and only where the HR size is that multiple of the LR size (the standard protocol crops HR so that it
is), else refused with one line; ``resize_fixed=True`` resizes its output instead and the rows count the images
(``"resized_images"``). notebooks/11_fixed_scale.ipynb.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import time
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import data, metrics
from . import metrics as _metrics  # evaluate()'s argument `metrics` hides the module there
from .errors import CourseError, check_scale, pick_device
from .files import atomic_write, check_output
from .images import load_image_uint8


def resolve_model(model_or_name, device: torch.device):
    """(model or None for the protocol's bicubic, method label) from a name, a checkpoint path or a model.

    Notebook: 07_evaluation.
    """
    if isinstance(model_or_name, (str, Path)) and str(model_or_name) == "bicubic":
        return None, "bicubic"
    if isinstance(model_or_name, (str, Path)):
        from . import models  # imported here: evaluating bicubic needs no model code

        model = models.resolve(str(model_or_name), device)
        label = Path(str(model_or_name)).stem if Path(str(model_or_name)).suffix else str(model_or_name)
    else:
        model = model_or_name
        if not callable(getattr(model, "upscale", None)):
            raise CourseError(f"{type(model).__name__} has no upscale(lr, size=...); pass a course_lib model")
        config = getattr(model, "config", None)
        label = type(model).__name__
        if isinstance(config, dict) and config.get("name"):
            from . import models

            label = models.describe(config)
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    return model, label


METRICS = ("psnr", "ssim", "lr_psnr", "alex")  # names ``evaluate(metrics=...)`` and ``--metrics`` accept


def check_metrics(names) -> tuple[str, ...]:
    """The metrics asked for: None -> the three every row has (psnr, ssim, lr_psnr); otherwise names from
    :data:`METRICS` (the three are measured anyway: other code reads them from every row). Notebook:
    11_fixed_scale."""
    if names is None:
        return METRICS[:3]
    names = [names] if isinstance(names, str) else list(names)
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise CourseError(f"unknown metric {bad[0] if bad else '(none given)'!r}; choose from: {', '.join(METRICS)}")
    return tuple(dict.fromkeys(list(METRICS[:3]) + names))


def _open_dataset(name, limit):
    """(label, HRFolder) for a registry name or a folder of images."""
    if isinstance(name, str) and name in data.DATASETS:
        return name, data.get_dataset(name, limit=limit)
    folder = Path(name)
    if not folder.is_dir():
        raise CourseError(f"unknown dataset {str(name)!r}; known datasets: {', '.join(data.DATASETS)} "
                          "(or give a folder of images)")
    label = folder.parent.name if folder.name == "HR" else folder.name
    return label, data.HRFolder(folder, limit=limit)


def super_resolve(model, protocol: metrics.Protocol, lr_u8: torch.Tensor, size, device, chunk_size=None,
                  resize: bool = False):
    """SR image (C, H, W) float in [0, 1] for one uint8 LR image (C, h, w), under ``protocol``.

    ``model=None`` is the protocol's bicubic baseline. A model gets the LR as RGB in [0, 1] (a grey
    LR copied to 3 channels) and its output is averaged back to grey for a grey HR (standard protocol).
    ``resize=True`` lets a fixed-scale model resize its output to ``size`` (``upscale(..., resize=True)``).
    Notebook: 07_evaluation.
    """
    if model is None:
        return protocol.bicubic(lr_u8, size)
    lr = lr_u8.float().div(255.0)
    grey = lr.shape[0] == 1
    if grey:
        lr = lr.expand(3, -1, -1)
    kwargs = {} if chunk_size is None else {"chunk_size": int(chunk_size)}
    if "progress" in inspect.signature(model.upscale).parameters:
        kwargs["progress"] = False  # the runner shows its own bar over images
    if resize and getattr(model, "fixed_scale", None):
        kwargs["resize"] = True
    sr = model.upscale(lr[None].to(device), size=tuple(int(v) for v in size), **kwargs)[0].float()
    return sr.mean(0, keepdim=True) if grey else sr


def evaluate(model_or_name, datasets, scales, protocol="paper", device=None, chunk_size=None,
             progress: bool = True, limit: int | None = None, per_image: bool = False, metrics=None,
             alex_weights="imagenet", resize_fixed: bool = False) -> list[dict]:
    """Score a model on datasets x scales under a protocol; one row per (dataset, scale).

    Rows: ``{"dataset", "scale", "method", "protocol", "psnr", "ssim", "lr_psnr", "n_images",
    "seconds"}``, each metric the mean over the dataset's images. ``datasets``: registry names
    (``data.DATASETS``) or image folders; ``scales``: real numbers >= 1; ``limit``: first N images
    of each set. ``per_image=True`` adds ``"images"``: one ``{"image", "psnr", "ssim", "lr_psnr"}`` per image, in
    the set's order (``image`` is the file's stem), for paired comparisons (``course_lib.stats``).
    ``metrics``: None (the three above) or names from ``METRICS``; ``"alex"`` adds seed 004's AlexNet-feature
    similarity (``metrics.alex_similarity``, weights ``alex_weights``: "imagenet", a file, or "random" for tests)
    as ``"alex"`` plus ``"alex_weights"`` (where the weights came from). ``resize_fixed``: see the module docstring.
    Notebook: 07_evaluation (per-image rows: 08_ablations; ALEX and fixed scales: 11_fixed_scale).
    """
    p = _metrics.get_protocol(protocol)
    wanted = check_metrics(metrics)
    datasets = [datasets] if isinstance(datasets, (str, Path)) else list(datasets)
    scales = [scales] if isinstance(scales, (int, float)) else list(scales)
    if not datasets or not scales:
        raise CourseError("give at least one dataset and one scale, e.g. datasets=['Set5'], scales=[2, 3, 4]")
    scales = list(dict.fromkeys(check_scale(s, "scale", minimum=1.0) for s in scales))  # no duplicates
    dev = pick_device(device)
    model, method = resolve_model(model_or_name, dev)
    fixed = getattr(model, "fixed_scale", None)
    if fixed and not resize_fixed and any(s != fixed for s in scales):
        raise CourseError(f"{method} is a fixed x{fixed} model: evaluate it at scale {fixed} only (asked for "
                          f"{', '.join(f'x{s:g}' for s in scales if s != fixed)}), or pass resize_fixed=True "
                          f"(--resize-fixed) to resize its x{fixed} output (the rows count the resized images)")
    alex_net = _metrics.alex_network(alex_weights, dev) if "alex" in wanted else None  # refuses before any work
    rows = []
    for name in datasets:
        label, hr_set = _open_dataset(name, limit)
        scores = {s: [] for s in scales}
        seconds = {s: 0.0 for s in scales}
        bar = tqdm(total=len(hr_set) * len(scales), desc=f"{label} ({method}, {p.name})",
                   disable=not progress)
        for i in range(len(hr_set)):
            paths = getattr(hr_set, "paths", None)
            keep_grey = p.channel == "y" and paths is not None
            hr_u8 = load_image_uint8(paths[i], keep_grey=True) if keep_grey else hr_set[i]
            for s in scales:
                start = time.perf_counter()
                lr_u8, hr_used = p.make_pair(hr_u8, s)
                name_i = Path(paths[i]).stem if paths is not None else str(i)
                try:
                    with warnings.catch_warnings():  # a resized fixed-scale output is counted in the row instead
                        if fixed and resize_fixed:
                            warnings.simplefilter("ignore", UserWarning)
                        sr = super_resolve(model, p, lr_u8, hr_used.shape[-2:], dev, chunk_size, resize_fixed)
                except CourseError as err:
                    if not fixed:
                        raise
                    raise CourseError(f"{label}/{name_i} x{s:g} ({p.name} protocol): {err}; protocol='standard' "
                                      "crops the HR image to a multiple of the scale") from None
                scores[s].append({"image": name_i, **_metrics.measure(sr, hr_used, s, p)})
                if alex_net is not None:
                    sr_alex = torch.round(sr.clamp(0, 1) * 255) / 255 if p.quantise_sr else sr
                    scores[s][-1]["alex"] = _metrics.alex_similarity(sr_alex, hr_used, net=alex_net)
                if fixed and tuple(hr_used.shape[-2:]) != tuple(fixed * n for n in lr_u8.shape[-2:]):
                    scores[s][-1]["resized"] = True
                seconds[s] += time.perf_counter() - start
                bar.update(1)
        bar.close()
        for s in scales:
            n = len(scores[s])
            rows.append({"dataset": label, "scale": s, "method": method, "protocol": p.name,
                         **{k: sum(m[k] for m in scores[s]) / n for k in ("psnr", "ssim", "lr_psnr")},
                         "n_images": n, "seconds": round(seconds[s], 3)})
            if alex_net is not None:
                rows[-1]["alex"] = sum(m["alex"] for m in scores[s]) / n
                rows[-1]["alex_weights"] = alex_net.weights_source
            if fixed and resize_fixed:
                rows[-1]["resized_images"] = sum(m.pop("resized", False) for m in scores[s])
            if per_image:
                rows[-1]["images"] = scores[s]
    return rows


def _cell(row: dict) -> str:
    def num(v, digits):
        return "inf" if math.isinf(v) else f"{v:.{digits}f}"

    alex = f" / {row['alex']:.3f}" if "alex" in row else ""
    return f"{num(row['psnr'], 2)} / {num(row['ssim'], 4)} / {num(row['lr_psnr'], 2)}{alex}"


def format_table(rows: list[dict]) -> str:
    """Markdown table like the paper's Table 1: one row per method, one column per dataset x scale.

    Each cell is ``PSNR / SSIM / LR-PSNR``. When the rows mix protocols, the method label names its
    protocol. Notebook: 07_evaluation.
    """
    if not rows:
        return "(no results)"
    protocols = list(dict.fromkeys(r["protocol"] for r in rows))

    def label(r):
        return r["method"] if len(protocols) == 1 else f"{r['method']} ({r['protocol']})"

    columns = list(dict.fromkeys((r["dataset"], r["scale"]) for r in rows))
    methods = list(dict.fromkeys(label(r) for r in rows))
    cells = {(label(r), r["dataset"], r["scale"]): _cell(r) for r in rows}
    head = "| Method | " + " | ".join(f"{d} x{s:g}" for d, s in columns) + " |"
    rule = "| --- |" + " --- |" * len(columns)
    body = [f"| {m} | " + " | ".join(cells.get((m, d, s), "-") for d, s in columns) + " |" for m in methods]
    caption = f"PSNR (dB) / SSIM / LR-PSNR (dB); protocol: {', '.join(protocols)}"
    if any("alex" in r for r in rows):
        sources = ", ".join(dict.fromkeys(str(r.get("alex_weights")) for r in rows if "alex" in r))
        caption = caption.replace("LR-PSNR (dB);", f"LR-PSNR (dB) / ALEX (AlexNet-feature cosine; weights: {sources});")
    return "\n".join([caption, "", head, rule, *body])


def cli(argv=None) -> int:
    """``python -m course_lib evaluate ...``: print the table, optionally write the rows as JSON.

    Notebook: 07_evaluation.
    """
    parser = argparse.ArgumentParser(prog="python -m course_lib evaluate",
                                     description="PSNR / SSIM / LR-PSNR of a model (Table 1 layout).")
    parser.add_argument("--model", default="bicubic", help="bicubic, a pretrained name or a checkpoint file")
    parser.add_argument("--datasets", nargs="+", default=["Set5", "Set14"],
                        help=f"names ({', '.join(data.DATASETS)}) or image folders")
    parser.add_argument("--scales", nargs="+", default=["2", "3", "4"], help="e.g. 2 3 4 2.5 3.14")
    parser.add_argument("--protocol", default="paper", choices=list(metrics.PROTOCOLS))
    parser.add_argument("--json", default=None, help="write the result rows to this JSON file (checked first, "
                        "written atomically)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of each dataset")
    parser.add_argument("--chunk-size", type=int, default=None, help="query pixels per model call")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--metrics", nargs="+", default=None, choices=list(METRICS),
                        help="psnr, ssim and lr_psnr are always measured; alex adds seed 004's AlexNet metric")
    parser.add_argument("--alex-weights", default="imagenet",
                        help="AlexNet weights for --metrics alex: imagenet (default), a .pth file, or random (tests)")
    parser.add_argument("--resize-fixed", action="store_true",
                        help="let a fixed-scale model (srresnet: x4) resize its output to other sizes")
    parser.add_argument("--per-image", action="store_true",
                        help="also write each image's scores into the --json rows (for paired comparisons)")
    args = parser.parse_args(argv)
    if args.per_image and not args.json:
        raise CourseError("--per-image writes each image's scores into the JSON rows; give --json FILE too")
    scales = [check_scale(s, "scale", minimum=1.0) for s in args.scales]
    json_path = check_output(args.json, "--json file") if args.json else None  # before the (long) evaluation
    rows = evaluate(args.model, args.datasets, scales, protocol=args.protocol, device=args.device,
                    chunk_size=args.chunk_size, progress=not args.quiet, limit=args.limit, metrics=args.metrics,
                    alex_weights=args.alex_weights, resize_fixed=args.resize_fixed, per_image=args.per_image)
    print(format_table(rows))
    if json_path is not None:
        atomic_write(json_path, lambda f: f.write(json.dumps(rows, indent=2) + "\n"), "w")
        print(f"wrote {json_path}")
    return 0
