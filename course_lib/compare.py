"""Equal-budget comparisons: one base config, rows that differ from it by one flag, several seeds (lessons 08-10).

An ablation is only worth reading next to its noise. :func:`train_rows` trains every (row, seed) of a comparison
with the same config and budget (``configs/compare-cpu.yaml`` on a CPU), one run folder each, resuming a folder
that was interrupted and skipping one that is finished, so a notebook cell or a script can be re-run at no cost.
:func:`score_rows` evaluates the runs with per-image scores, and :func:`spread` puts the spread between seeds
next to the differences between rows. :func:`save_scores` records the per-image scores (and what each run cost)
so a lesson can rebuild its tables without the runs; :func:`load_scores` reads them back, and
:func:`merge_records` joins records that scored parts of one comparison (e.g. a few rows per GPU command).

    rows = {"(f)": {}, "(a)": {"model.variant": "a"}}
    runs = compare.train_rows("compare-cpu", rows, seeds=[0, 1], root="runs/table5")
    scores = compare.score_rows(runs, "Set14", scales=[4])
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from . import evaluate, stats, train
from .config import _deep_merge, parse_overrides
from .errors import CourseError

# Table 5 of the DIINN paper, each row one flag away from the final model (f); plus the scale channel (area ratio in
# the authors' code, 1/s in the paper) as a seventh row.
TABLE5_ROWS = {
    "(a)": {"model.variant": "a"},
    "(b)": {"model.variant": "b"},
    "(c)": {"model.variant": "c"},
    "(d)": {"model.variant": "d"},
    "(e)": {"model.variant": "e"},
    "(f)": {},
    "(f) 1/s": {"model.scale_mode": "inverse"},
}

# The decoder families of lesson 09 at the same budget (DIINN (f) is the base config's model).
FAMILY_ROWS = {
    "DIINN (f)": {},
    "LIIF": {"model.name": "liif"},
    "LIIF+SIREN-30": {"model.name": "liif", "model.options": {"mlp": "siren", "w0": 30.0}},
    "Meta-SR": {"model.name": "metasr"},
}
# Seed paper 003's encoder question (lesson 09, section 8): LIIF and LIIF+SIREN-30 again with the smaller EDSR-LESS
# encoder, one more flag each.
FAMILY_LESS_ROWS = {f"{name} (EDSR-LESS)": {**FAMILY_ROWS[name], "model.encoder": "edsr-less"}
                    for name in ("LIIF", "LIIF+SIREN-30")}

# Seed paper 000's models A-H (lesson 10; course_lib.diinn_var) at the same budget: the base config is
# configs/seed000-a.yaml (model A, EDSR-baseline where the paper has RDN), and each row changes the model letter and,
# for G and H, the encoder to the paper's vgg-se, exactly as configs/seed000-b.yaml .. seed000-h.yaml do.
SEED000_ROWS = {
    "A": {},
    **{letter: {"model.options": {"model": letter}} for letter in "BCDEF"},
    **{letter: {"model.encoder": "vgg-se", "model.options": {"model": letter}} for letter in "GH"},
}

# Issue 9's CPU recipe question (docs/TRAINING.md, "On a CPU"): the shipped CPU recipe (configs/diinn-edsr-291-cpu.yaml)
# and rows one flag away from it, compared at the same *time* budget (``-o run.max_minutes=M``), so a row that makes a
# step cheaper or dearer pays for it in steps: PSNR per CPU-hour. LIIF's sampling: one scale per image from U(1, 4)
# and patch x patch random HR queries per patch (LIIF's rule: 2,304 = 48 x 48; here 32 x 32 = 1,024, as many as the
# smallest crop holds) instead of every HR pixel at x2, x3 and x4, with the same batch and LR patch. The last two rows
# are one flag away from LIIF's sampling, the winner at 9 minutes: batch 16 (LIIF's) and 48-px patches (LIIF's, with
# its 2,304 queries).
_LIIF = {"data.recipe": "liif", "data.sample_q": 1024}
RECIPE_ROWS = {
    "shipped": {},
    "lr 5e-4": {"optim.lr": 5e-4},
    "LIIF sampling": _LIIF,
    "LIIF, batch 16": {**_LIIF, "data.batch_size": 16},
    "LIIF, patch 48": {**_LIIF, "data.patch": 48, "data.sample_q": 2304},
}


def run_dir(root, row: str, seed: int) -> Path:
    """The run folder of one (row, seed): ``<root>/<row as a file name>-seed<seed>``, e.g. ``f-1-s-seed0``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", row).strip("-").lower() or "base"
    return Path(root) / f"{slug}-seed{int(seed)}"


def finished_step(folder) -> int | None:
    """The step of ``<folder>/last.pt`` when the run reached its planned ``run.max_steps``, else None."""
    last = Path(folder) / "last.pt"
    if not last.is_file():
        return None
    ckpt = train.load_checkpoint(last)
    plan = ckpt.get("plan") or {}  # a time-budget run planned its own length
    planned = plan.get("max_steps") or (ckpt.get("train_config") or {}).get("run", {}).get("max_steps")
    return int(ckpt["step"]) if planned is not None and int(ckpt["step"]) >= int(planned) else None


def _check_rows(rows: dict, seeds) -> list[int]:
    if not isinstance(rows, dict) or not rows:
        raise CourseError("rows must be a non-empty dict {row name: overrides}, e.g. {'(f)': {}, '(a)': "
                          "{'model.variant': 'a'}}")
    for name, over in rows.items():
        if not isinstance(over, dict):
            raise CourseError(f"row {name!r}: its overrides must be a dict like {{'model.variant': 'a'}}, got "
                              f"{over!r}")
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
        raise CourseError(f"seeds must be a non-empty list of integers, e.g. [0, 1], got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise CourseError(f"seeds repeat: {seeds}; give each seed once")
    slugs = [run_dir("", r, 0).name for r in rows]
    if len(set(slugs)) != len(slugs):
        raise CourseError(f"two row names make the same folder name ({', '.join(rows)}); rename one")
    return [int(s) for s in seeds]


def train_rows(config, rows: dict, seeds=(0,), root="runs/compare", overrides=None, progress: bool = True,
               log=print) -> dict:
    """Train every (row, seed) with ``config`` + ``overrides`` + the row's overrides + ``run.seed``; return
    ``{(row, seed): run folder}``.

    Each run lives in :func:`run_dir`; a finished one is skipped, an interrupted one resumed bit-exactly (the
    trainer's ``resume="auto"``), so re-running the call only does what is missing; a Ctrl-C (or SIGTERM) saves
    the current run and stops the whole grid (KeyboardInterrupt). Every run shares the base's
    budget (``run.max_steps``); a row may not change the budget or the folder. Every run's config is checked before
    the first one trains, so a row that cannot train is refused at once, not after the rows before it. Notebooks
    08_ablations, 09_liif_metasr and 10_seed000."""
    seeds = _check_rows(rows, seeds)
    base = parse_overrides(overrides or {})
    for name, over in rows.items():
        flat = parse_overrides(over)
        if "run" in flat and ({"max_steps", "max_minutes", "out_dir", "seed"} & set(flat["run"])):
            raise CourseError(f"row {name!r} changes the budget, seed or folder; rows of a comparison must share "
                              "them (set run.* in overrides, for every row)")
    merged = {}
    for name, over in rows.items():  # every run's config is checked before the first one trains
        for seed in seeds:
            merged[name, seed] = _deep_merge(_deep_merge(base, parse_overrides(over)), {"run": {
                "seed": seed, "out_dir": str(run_dir(root, name, seed)), "progress": progress}})
            try:
                train.load_config(config, overrides=_flat(merged[name, seed]))
            except CourseError as err:
                raise CourseError(f"row {name!r} (seed {seed}): {err}") from None
    out = {}
    for (name, seed), run_overrides in merged.items():
        folder = run_dir(root, name, seed)
        out[name, seed] = folder
        step = finished_step(folder)
        if step is not None:
            log(f"{name} seed {seed}: finished at step {step} ({folder})")
            continue
        log(f"{name} seed {seed}: training in {folder}")
        result = train.train(config, overrides=_flat(run_overrides), resume="auto")
        if result.stopped_by is not None:  # Ctrl-C, SIGTERM or a deadline: stop the grid, not just this run
            log(f"{name} seed {seed}: stopped at step {result.step} ({result.stopped_by}); run the same call "
                "again to resume")
            raise KeyboardInterrupt(f"comparison stopped in {folder}")
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    """Nested overrides -> dotted keys, leaving ``model.options`` whole (it is one value)."""
    out = {}
    for k, v in d.items():
        key = prefix + k
        if isinstance(v, dict) and key != "model.options":
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def score_rows(runs: dict, datasets, scales, limit: int | None = None, which: str = "last", device=None,
               progress: bool = False) -> dict:
    """Per-image PSNR of every run: ``{(row, seed): {(dataset, scale): np.ndarray of PSNRs, image order}}``.

    ``dataset`` is evaluate's label: the registry name (``"Set14"``) or the folder's name.
    ``which``: ``"last"`` (the end of the budget, the fair choice for a comparison) or ``"best"``. Uses
    ``evaluate.evaluate(..., per_image=True)`` under the paper protocol. Notebooks 08_ablations, 09_liif_metasr,
    10_seed000."""
    from . import models

    if which not in ("last", "best"):
        raise CourseError(f"which must be 'last' or 'best', got {which!r}")
    out = {}
    for key, folder in runs.items():
        path = Path(folder) / f"{which}.pt"
        if not path.is_file():
            raise CourseError(f"{path} does not exist; train the row first (compare.train_rows)")
        model = models.load(path, device=device)
        rows = evaluate.evaluate(model, datasets, scales, device=device, limit=limit, progress=progress,
                                 per_image=True)
        out[key] = {(r["dataset"], r["scale"]): np.array([m["psnr"] for m in r["images"]]) for r in rows}
    return out


def run_summary(folder) -> dict:
    """What a run cost and what it was: ``{"steps", "seconds", "parameters", "train_config", "log"}`` from its
    ``last.pt`` and ``metrics.jsonl`` (seconds: the trainer's clock at its last logged step; ``log``: the
    metrics lines that hold a training loss, as ``{"step", "loss", "time"}``, or a validation, as ``{"step",
    "val"}``, enough to redraw the loss curves and the end-of-run validation). Notebooks 08_ablations, 10_seed000."""
    from . import models

    folder = Path(folder)
    if not (folder / "last.pt").is_file():
        raise CourseError(f"{folder / 'last.pt'} does not exist; train the row first (compare.train_rows)")
    ckpt = train.load_checkpoint(folder / "last.pt")
    metrics = train.read_metrics(folder)
    losses = [ln for ln in metrics if "loss" in ln]
    log = [{k: ln[k] for k in ("step", "loss", "time")} if "loss" in ln else {"step": ln["step"], "val": ln["val"]}
           for ln in metrics if "loss" in ln or "val" in ln]
    return {"steps": int(ckpt["step"]), "seconds": float(losses[-1]["time"]) if losses else None,
            "parameters": models.count_parameters(models.load(folder / "last.pt")),
            "train_config": ckpt.get("train_config") or {}, "log": log}


def run_changes(summary: dict, config, overrides: dict | None = None) -> list:
    """Where a run differs from ``config`` + ``overrides`` (its row and seed): ``[(key, got, wanted), ...]`` from
    :func:`train.resume_changes` on its stored training config, plus ``("step", got, wanted)`` when it stopped short
    of the budget; ``[]`` when it is exactly that run, trained to the end. ``summary``: :func:`run_summary` of a
    folder or a :func:`load_scores` record's entry (a finished folder is trusted by its name; this checks it).
    Notebooks 08_ablations, 10_seed000."""
    want = train.load_config(config, dict(overrides or {}))
    changes = train.resume_changes(want, summary["train_config"])
    if summary["steps"] != want.run.max_steps:
        changes.append(("step", summary["steps"], want.run.max_steps))
    return changes


def save_scores(path, scores: dict, runs: dict | None = None, **meta) -> Path:
    """Record :func:`score_rows`' per-image scores as JSON, so that a lesson can rebuild its tables and intervals
    without the runs (as lesson 11 reads ``docs/results/equal-budget-x4.json``); :func:`save_arrays` records what
    figures need from the runs' weights.

    ``runs``: the ``{(row, seed): folder}`` that were scored; each run's :func:`run_summary` is stored with its
    scores. ``meta``: what a reader must match before trusting the file (e.g. the sets, scales and crops scored,
    the config and budget, the machine). Written atomically. :func:`load_scores` reads it back. Notebooks
    08_ablations, 10_seed000.
    """
    import json

    from .files import atomic_write

    entries = []
    for (row, seed), per in scores.items():
        entry = {"row": row, "seed": int(seed),
                 "scores": [{"dataset": d, "scale": float(sc), "psnr": [float(v) for v in arr]}
                            for (d, sc), arr in per.items()]}
        if runs is not None:
            entry.update(run_summary(runs[row, seed]))
        entries.append(entry)
    doc = {"meta": meta, "runs": entries}
    return atomic_write(Path(path), lambda f: f.write(json.dumps(doc, indent=1) + "\n"), "w")


def load_scores(path) -> tuple[dict, dict, dict]:
    """Read a :func:`save_scores` file: ``(scores, info, meta)`` with ``scores`` shaped like :func:`score_rows`'
    result (``{(row, seed): {(dataset, scale): np.ndarray}}``), ``info`` each run's stored summary (steps, seconds,
    parameters, train_config, log) by ``(row, seed)``, and ``meta`` as saved. Notebooks 08_ablations,
    10_seed000."""
    return _read_scores(path)[1]


def _read_scores(path) -> tuple[dict, tuple[dict, dict, dict]]:
    """A :func:`save_scores` file as ``(its JSON document, load_scores' result)``, or a one-line CourseError."""
    import json

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        scores, info = {}, {}
        for e in doc["runs"]:
            key = (e["row"], int(e["seed"]))
            scores[key] = {(s["dataset"], float(s["scale"])): np.asarray(s["psnr"], dtype=float) for s in e["scores"]}
            info[key] = {k: v for k, v in e.items() if k not in ("row", "seed", "scores")}
        return doc, (scores, info, dict(doc.get("meta") or {}))
    except FileNotFoundError:
        raise CourseError(f"{path} does not exist; record scores with compare.save_scores first") from None
    except (ValueError, KeyError, TypeError) as e:
        raise CourseError(f"{path} is not a compare.save_scores file ({type(e).__name__}: {e}); re-record it with "
                          "compare.save_scores") from None


# Meta keys that may differ between the parts of one record: where and when each part was made.
MERGE_FREE = ("machine", "date")


def merge_records(paths, out) -> Path:
    """Join :func:`save_scores` records made with the same settings into one (e.g. a GPU campaign that trains and
    scores a few rows per command, each command possibly on a fresh machine: docs/GPU_QUEUE.md row 3).

    The result holds every part's runs, in the parts' order, and the parts' meta; ``machine`` and ``date``
    (:data:`MERGE_FREE`) may differ between parts and are joined with "; ". A part whose other meta differ, or a
    (row, seed) in two parts, is refused in one line naming it: such parts do not make one comparison. Written
    atomically; :func:`load_scores` and :func:`read_record` read the result like any record. Notebook 10_seed000.
    """
    import json

    from .files import atomic_write

    paths = [Path(p) for p in paths]
    if not paths:
        raise CourseError("merge_records: give at least one record to merge")
    meta, runs, where, free = None, [], {}, {k: [] for k in MERGE_FREE}
    for path in paths:
        doc, (_, _, part) = _read_scores(path)  # a missing or malformed part: refused in one line
        for k in MERGE_FREE:
            if k in part and part[k] not in free[k]:
                free[k].append(part[k])
        fixed = {k: v for k, v in part.items() if k not in MERGE_FREE}
        if meta is None:
            meta, first = fixed, path
        elif fixed != meta:
            differ = sorted(k for k in set(fixed) | set(meta) if fixed.get(k) != meta.get(k))
            raise CourseError(f"{path} was made with other settings than {first} ({', '.join(differ)} differ): "
                              "merge only records of one comparison")
        for entry in doc["runs"]:
            key = (entry["row"], int(entry["seed"]))
            if key in where:
                raise CourseError(f"{key[0]} seed {key[1]} is in both {where[key]} and {path}: keep it in one part")
            where[key] = path
            runs.append(entry)
    meta.update({k: "; ".join(map(str, v)) for k, v in free.items() if v})
    doc = {"meta": meta, "runs": runs}
    return atomic_write(Path(out), lambda f: f.write(json.dumps(doc, indent=1) + "\n"), "w")


def save_arrays(path, arrays: dict) -> Path:
    """Record named arrays (what a lesson's figures draw from the runs' weights: features, curves, image windows)
    as a compressed ``.npz``, written atomically, so that a record of scores (:func:`save_scores`) can stand in for
    the runs' figures too. Names must be non-empty strings without ``/``. :func:`load_arrays` reads them back
    exactly. Notebook 09_liif_metasr."""
    import io

    from .files import atomic_write

    bad = [k for k in arrays if not isinstance(k, str) or not k or "/" in k]
    if bad:
        raise CourseError(f"array names must be non-empty strings without '/', got {bad!r}; rename them")
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write(Path(path), lambda f: f.write(buf.getvalue()))


def load_arrays(path) -> dict:
    """Read a :func:`save_arrays` file: ``{name: np.ndarray}``, exactly as saved. Notebook 09_liif_metasr."""
    import zipfile

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise CourseError(f"{path} does not exist; record the arrays with compare.save_arrays first") from None
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise CourseError(f"{path} is not a compare.save_arrays file ({type(e).__name__}: {e}); re-record it with "
                          "compare.save_arrays") from None


def read_record(path, wanted: dict, keys, log=print) -> tuple[dict, dict, dict] | None:
    """A :func:`save_scores` record that may stand in for the runs ``keys`` (``(row, seed)`` pairs), or None.

    The record is used only if its meta equals ``wanted`` key by key (what the lesson's parameters ask for: config,
    overrides, sets, crops, scales, ...) and it holds every run of ``keys``; otherwise ``log`` gets one line saying
    why (or that the file is missing: records live in a clone's ``docs/results/``) and None is returned, so the
    caller trains instead. Returns :func:`load_scores`' ``(scores, info, meta)``. Notebooks 08_ablations,
    09_liif_metasr, 10_seed000."""
    path = Path(path)
    if not path.is_file():
        log(f"{path} is not here (records come with a clone of the repository): training instead")
        return None
    scores, info, meta = load_scores(path)
    why = [f"{k} differs" for k, v in wanted.items() if meta.get(k) != v]
    why += [f"no {row} seed {seed}" for row, seed in keys if (row, seed) not in scores]
    if why:
        log(f"{path} does not match this run ({'; '.join(why)}): training instead")
        return None
    return scores, info, meta


def spread(scores: dict, reference: str, dataset: str, scale: float, level: float = 0.95, n: int = 10_000) -> list:
    """For each row: mean PSNR over images and seeds, the spread between its seeds (max - min of the seed means),
    and its paired difference from ``reference`` (per image, averaged over the seeds both rows share) with a
    bootstrap confidence interval. Rows: ``{"row", "psnr", "seed_spread", "n_seeds", "diff", "low", "high"}``.
    A row whose interval holds 0, or whose difference is smaller than the seed spread, is not a finding.
    Notebooks 08_ablations, 10_seed000."""
    by_row: dict = {}
    for (row, seed), per_set in scores.items():
        if (dataset, scale) not in per_set:
            raise CourseError(f"no scores for {dataset} x{scale}; score the runs on it first (compare.score_rows)")
        by_row.setdefault(row, {})[seed] = per_set[dataset, scale]
    if reference not in by_row:
        raise CourseError(f"reference row {reference!r} is not among the rows ({', '.join(by_row)})")
    ref = by_row[reference]
    table = []
    for row, seeds in by_row.items():
        means = [float(v.mean()) for v in seeds.values()]
        shared = sorted(set(seeds) & set(ref))
        diffs = np.mean([stats.paired_differences(seeds[s], ref[s]) for s in shared], axis=0)
        ci = stats.paired_bootstrap(diffs, n=n, level=level)
        table.append({"row": row, "psnr": float(np.mean(means)), "seed_spread": max(means) - min(means),
                      "n_seeds": len(means), "diff": float(diffs.mean()), "low": ci.low, "high": ci.high})
    return table


ROW_SETS = {"table5": TABLE5_ROWS, "families": FAMILY_ROWS, "families-less": FAMILY_LESS_ROWS,
            "seed000": SEED000_ROWS, "recipes": RECIPE_ROWS}
# the base config of a row set whose rows are not one flag from compare-cpu
ROW_SET_CONFIGS = {"seed000": "seed000-a", "recipes": "diinn-edsr-291-cpu"}


def format_spread(table: list[dict], dataset: str, scale: float, reference: str) -> str:
    """:func:`spread`'s rows as a Markdown table."""
    lines = [f"| row | {dataset} x{scale:g} PSNR (dB) | seed spread | vs {reference} (95% CI) | finding? |",
             "| --- | --- | --- | --- | --- |"]
    for r in table:
        real = r["row"] != reference and (r["low"] > 0 or r["high"] < 0) and abs(r["diff"]) > r["seed_spread"]
        lines.append(f"| {r['row']} | {r['psnr']:.3f} | {r['seed_spread']:.3f} ({r['n_seeds']} seeds) | "
                     f"{r['diff']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] | {'yes' if real else 'no'} |")
    return "\n".join(lines)


def cli(argv=None) -> int:
    """``python -m course_lib compare --rows table5 --seeds 0 1 --root runs/table5-cpu --datasets Set14 --scales 4``:
    train the grid (resumably), score it and print the spread table of each (dataset, scale). ``--merge A.json
    B.json --out C.json`` joins records of one comparison instead (:func:`merge_records`)."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m course_lib compare", description=cli.__doc__.split(":")[0])
    p.add_argument("--config", default=None, help="the base config (default: compare-cpu; seed000-a for "
                   "--rows seed000, diinn-edsr-291-cpu for --rows recipes)")
    p.add_argument("--rows", default="table5", choices=list(ROW_SETS), help="table5: (a)-(f) + 1/s; families: "
                   "DIINN, LIIF, LIIF+SIREN, Meta-SR; families-less: LIIF and LIIF+SIREN with EDSR-LESS; "
                   "seed000: seed paper 000's models A-H; recipes: the CPU recipe, one-flag changes of it and "
                   "of LIIF's sampling (with -o run.max_minutes=M: PSNR per CPU-hour)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--root", default=None, help="folder of the runs (default: runs/<rows>-<config>)")
    p.add_argument("--override", "-o", nargs="*", default=[], help="key=value for every row, e.g. run.max_steps=200")
    p.add_argument("--datasets", nargs="+", default=["Set14"])
    p.add_argument("--scales", type=float, nargs="+", default=[4.0])
    p.add_argument("--limit", type=int, default=None, help="first N images of each set")
    p.add_argument("--reference", default=None, help="the row differences are taken from (default: the base row)")
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--json", help="write the spread rows to this file")
    p.add_argument("--merge", nargs="+", metavar="RECORD", help="join these save_scores records (the parts of one "
                   "comparison) into --out, and do nothing else")
    p.add_argument("--out", help="with --merge: the joined record")
    args = p.parse_args(argv)
    if args.merge:
        if not args.out:
            raise CourseError("--merge needs --out FILE: where to write the joined record")
        path = merge_records(args.merge, args.out)
        scores, _, meta = load_scores(path)
        where = meta.get("machine", "not recorded")
        print(f"{path}: {len(scores)} runs from {len(args.merge)} records; machine: {where}")
        return 0
    rows = ROW_SETS[args.rows]
    args.config = args.config or ROW_SET_CONFIGS.get(args.rows, "compare-cpu")
    root = args.root or f"runs/{args.rows}-{Path(str(args.config)).stem}"
    try:
        runs = train_rows(args.config, rows, args.seeds, root, overrides=parse_overrides(args.override))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run was saved and train_rows said how to resume
        print("comparison stopped; the same command resumes it", file=sys.stderr)
        return 130
    if args.train_only:
        return 0
    scores = score_rows(runs, args.datasets, args.scales, limit=args.limit, progress=True)
    reference = args.reference or next(name for name, over in rows.items() if not over)
    out = []
    labels = sorted({k for per in scores.values() for k in per}, key=lambda k: (str(k[0]), k[1]))
    for dataset, scale in labels:
        table = spread(scores, reference, dataset, scale)
        print(format_spread(table, dataset, scale, reference) + "\n")
        out += [{"dataset": dataset, "scale": scale, **r} for r in table]
    if args.json:
        from .files import atomic_write

        atomic_write(Path(args.json), lambda f: f.write(json.dumps(out, indent=1) + "\n"), "w")
    return 0
