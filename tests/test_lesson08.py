"""Lesson 08 (ablations, Table 5): the stored exercise solutions, the paper's numbers the lesson quotes, and the
behaviour of course_lib.compare / course_lib.train that notebooks/08_ablations.ipynb relies on and
tests/test_compare.py does not cover (rows with one seed see the same batches; the lesson's check of what it loads).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import notebook_constant
from test_train import tiny

from course_lib import compare, models, stats, train
from course_lib import notebook as nb
from course_lib.decoders import VARIANTS, DIINNDecoder

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "08_ablations.ipynb"

# The DIINN paper's Table 5 (Urban100; PSNR dB, SSIM, LR-PSNR dB at x3.14, x4, x8), typed here from the paper's text
# and not read from the lesson.
TABLE5 = {
    "a": {3.14: (25.67, 0.8105, 47.5), 4: (24.07, 0.7465, 47.25), 8: (20.68, 0.5643, 45.75)},
    "b": {3.14: (25.78, 0.814, 47.93), 4: (24.17, 0.7506, 48.02), 8: (20.74, 0.5673, 46.42)},
    "c": {3.14: (25.89, 0.8168, 48.73), 4: (24.26, 0.7538, 48.26), 8: (20.77, 0.5704, 46.26)},
    "d": {3.14: (26.07, 0.8218, 49.11), 4: (24.42, 0.7598, 48.88), 8: (20.87, 0.5762, 47.05)},
    "e": {3.14: (25.93, 0.8179, 48.58), 4: (24.3, 0.7555, 48.12), 8: (20.8, 0.5725, 45.95)},
    "f": {3.14: (26.14, 0.8233, 49.4), 4: (24.49, 0.7624, 48.75), 8: (20.91, 0.5798, 46.23)},
}
# The authors' decoder parameter counts (reference notes, sec. 1.3; also pinned in tests/test_models.py).
AUTHORS = {"a": 693_251, "b": 544_259, "c": 1_135_619, "d": 986_627, "e": 1_135_619, "f": 986_627}


# ------------------------------------------------------------------------------------------ the paper's numbers
def test_the_lesson_quotes_table5_exactly():
    assert notebook_constant(LESSON, "PAPER_T5") == TABLE5


def test_table5_f_at_x4_is_table1s_urban100_x4_row():
    # the authors' evaluation script scores Table 5's x4 with the model of Table 1 (reference notes, sec. 4)
    assert TABLE5["f"][4] == (24.49, 0.7624, 48.75) == notebook_constant(LESSON, "PAPER_T1_URBAN100_X4")


def test_the_papers_claims_hold_on_its_own_numbers():
    # the claims the lesson checks with nb.cmp, here on the numbers typed from the paper
    def better(x, y, k=0):
        return all(TABLE5[x][s][k] > TABLE5[y][s][k] for s in TABLE5[x])

    assert all(better("f", v, k) for v in "abcde" for k in (0, 1))
    assert better("c", "a") and better("d", "b") and better("e", "c") and better("f", "d")
    assert better("b", "a") and better("d", "c") and better("f", "e")
    assert not better("f", "d", k=2)  # LR-PSNR: (d) beats (f) at x4 and x8, not at x3.14


# ------------------------------------------------------------------------------------------ exercise solutions
def test_lesson08_solutions_are_registered():
    assert {name for lesson, name in nb.SOLUTIONS if lesson == "08"} == {"design_costs", "seed_spread", "is_finding"}


def test_design_costs_solution_for_the_real_decoder():
    # independent oracle: the authors' counts, (d) - (b), (e) - (f), (f) - (d)
    expected = [AUTHORS["d"] - AUTHORS["b"], AUTHORS["e"] - AUTHORS["f"], AUTHORS["f"] - AUTHORS["d"]]
    assert nb.SOLUTIONS["08", "design_costs"](576, 3, 256, 4) == expected == [442_368, 148_992, 0]


@pytest.mark.parametrize("z_dim, width, depth", [(576, 256, 4), (288, 256, 4), (18, 4, 3), (45, 8, 2), (27, 5, 1)])
def test_design_costs_solution_matches_the_library(z_dim, width, depth):
    n = {v: models.count_parameters(DIINNDecoder(z_dim, width, depth, *VARIANTS[v])) for v in VARIANTS}
    assert nb.SOLUTIONS["08", "design_costs"](z_dim, 3, width, depth) == [n["d"] - n["b"], n["e"] - n["f"],
                                                                         n["f"] - n["d"]]


def test_seed_spread_solution_by_hand():
    per_seed = [np.array([30.0, 32.0]), np.array([31.0, 35.0]), np.array([29.0, 33.0])]  # seed means 31, 33, 31
    assert nb.SOLUTIONS["08", "seed_spread"](per_seed) == [pytest.approx(95 / 3), pytest.approx(2.0)]


@pytest.mark.parametrize("n_seeds", [1, 2, 3])
def test_seed_spread_solution_matches_compare_spread(n_seeds):
    rng = np.random.default_rng(n_seeds)
    scores = {(row, s): {("Set", 4.0): rng.normal(28 + s * 0.3, 1.5, 12)} for row in ("(f)", "(b)")
              for s in range(n_seeds)}
    for r in compare.spread(scores, "(f)", "Set", 4.0, n=200):
        mine = nb.SOLUTIONS["08", "seed_spread"]([scores[r["row"], s]["Set", 4.0] for s in range(n_seeds)])
        assert mine == [pytest.approx(r["psnr"], abs=1e-12), pytest.approx(r["seed_spread"], abs=1e-12)]


def test_is_finding_solution_on_the_lessons_planted_cases():
    cases = [(0.30, 0.20, 0.40, 0.05), (0.30, -0.05, 0.65, 0.05), (0.04, 0.02, 0.06, 0.10), (-0.25, -0.35, -0.15, 0.10),
             (0.10, 0.05, 0.15, 0.10)]
    assert [nb.SOLUTIONS["08", "is_finding"](*c) for c in cases] == [True, False, False, True, False]


def test_is_finding_solution_agrees_with_the_intervals_own_verdict_without_seed_noise():
    rng = np.random.default_rng(0)
    for shift in (-0.3, -0.05, 0.0, 0.02, 0.4):
        iv = stats.paired_bootstrap(rng.normal(shift, 0.3, 20), n=2000)
        assert nb.SOLUTIONS["08", "is_finding"](iv.mean, iv.low, iv.high, 0.0) == iv.excludes_zero
    # the reference row of compare.spread (difference 0, interval [0, 0]) is never a finding
    assert nb.SOLUTIONS["08", "is_finding"](0.0, 0.0, 0.0, 0.0) is False


# ------------------------------------------------------------------------------------------ compare / train behaviour
def _batches_seen(monkeypatch, overrides):
    """Train a tiny run and return the (LR, HR) tensors of every step's batch, as the trainer received them."""
    seen = []
    original = train.Trainer.step

    def recording_step(self, batch):
        seen.append([t.detach().clone() for t in _tensors(batch)])
        return original(self, batch)

    monkeypatch.setattr(train.Trainer, "step", recording_step)
    train.train("compare-cpu", overrides=overrides)
    monkeypatch.setattr(train.Trainer, "step", original)
    return seen


def _tensors(x):
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        return [t for k in sorted(x, key=str) for t in _tensors(x[k])]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tensors(v)]
    return []


def test_rows_with_the_same_seed_see_the_same_batches(folders, tmp_path, monkeypatch):
    # The lesson's claim (section 2): run.seed fixes the batches whatever the row's flag, even though the variants
    # build models of different sizes (initialising them draws different amounts of random numbers).
    base = tiny(folders, tmp_path / "unused", **{"run.max_steps": 3, "data.scales": [2, 3], "val.sets": []})
    seen = {}
    for row, seed in [("(f)", 0), ("(e)", 0), ("(f) 1/s", 0), ("(f)", 1)]:
        over = {**base, **compare.TABLE5_ROWS[row], "run.seed": seed,
                "run.out_dir": str(compare.run_dir(tmp_path, row, seed))}
        seen[row, seed] = _batches_seen(monkeypatch, over)
    assert len(seen["(f)", 0]) == 3 and len(seen["(f)", 0][0]) >= 2
    for key in [("(e)", 0), ("(f) 1/s", 0)]:
        assert all(torch.equal(a, b) for sa, sb in zip(seen[key], seen["(f)", 0]) for a, b in zip(sa, sb)), key
    assert not all(torch.equal(a, b) for sa, sb in zip(seen["(f)", 1], seen["(f)", 0]) for a, b in zip(sa, sb))


def test_the_lessons_check_of_loaded_runs(folders, tmp_path):
    # Section 2 of the lesson checks every loaded run (or its record) with compare.run_changes against the config its
    # row asks for: silent on runs that compare.train_rows made with the same overrides, loud on another budget or
    # flag. Oracle: train.resume_changes on the saved checkpoint's config, and its step.
    base = tiny(folders, tmp_path / "unused", **{"run.max_steps": 2, "val.sets": []})
    base.pop("run.out_dir"), base.pop("run.seed")
    rows = {"(f)": compare.TABLE5_ROWS["(f)"], "(b)": compare.TABLE5_ROWS["(b)"]}
    runs = compare.train_rows("compare-cpu", rows, seeds=[0], root=tmp_path / "grid", overrides=base,
                              progress=False, log=lambda line: None)

    def changes(folder, row, seed, overrides):  # the lesson's check
        return compare.run_changes(compare.run_summary(folder), "compare-cpu",
                                   {**overrides, **compare.TABLE5_ROWS[row], "run.seed": seed})

    for (row, seed), folder in runs.items():
        assert changes(folder, row, seed, base) == []
        assert train.load_checkpoint(folder / "last.pt")["step"] == 2
    found = changes(runs["(f)", 0], "(f)", 0, {**base, "run.max_steps": 5})
    assert ("run.max_steps", 2, 5) in found and ("step", 2, 5) in found
    found = changes(runs["(b)", 0], "(e)", 0, base)  # a folder of (b) loaded as (e)
    assert ("model.variant", "b", "e") in found
    saved = train.load_checkpoint(runs["(b)", 0] / "last.pt")["train_config"]
    assert found == train.resume_changes(train.load_config("compare-cpu", {**base, "model.variant": "e",
                                                                           "run.seed": 0}), saved)


# ------------------------------------------------------------------------------------------ the recorded runs
def _run_lesson(tmp_path, *params):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_lesson.py"), str(LESSON), "-p", "SMOKE=True",
                           *[x for p in params for x in ("-p", p)]], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _tables(out: str) -> list[str]:
    """The lesson's printed results from section 2's check on, less the widget (section 4) and what names a run
    folder, a time or a machine."""
    body = out[out.index("claim: every run was trained"):]
    head = re.split(r"\n(?:ours  |the scores come from )", body, maxsplit=1)[0]
    lines = (head + "\n" + body[body.index("scale channel 'area'"):]).splitlines()
    drop = ("[cell", "lesson run time", "08_ablations.ipynb:", "row      seed  steps")
    return [ln for ln in lines if ln.strip() and not ln.startswith(drop) and " scored in " not in ln
            and "read back" not in ln]


def test_section_2_reads_the_record_in_place_of_missing_runs(course_data, tmp_path):
    """SMOKE once with `record = True` (trains 6 tiny runs, writes their scores and logs), then again with the runs
    gone: the lesson must say it reads the record and print the same tables, checks and findings, and the widget must
    fall back to every row's lines. A record made with other overrides is refused, and the lesson trains instead."""
    rec = tmp_path / "rec.json"
    live = _run_lesson(tmp_path, f"recorded={str(rec)!r}", "record=True")
    assert "the recorded scores read back: exact" in live and "6 trained now" in live
    scores, info, meta = compare.load_scores(rec)
    assert len(scores) == 6 and meta["extra_scales"] == [8.0] and all(len(i["log"]) >= 3 for i in info.values())
    read = _run_lesson(tmp_path, f"recorded={str(rec)!r}")
    assert "6 of 6 runs are not in" in read and "uses the scores and training logs recorded in" in read
    assert "trained now" not in read and "which holds no weights" in read
    got, want = _tables(read), _tables(live)
    assert len(want) > 40 and got == want
    meta["overrides"]["run.max_steps"] = 4  # another budget: the record no longer matches
    compare.save_scores(rec, scores, None, **meta)
    other = _run_lesson(tmp_path, f"recorded={str(rec)!r}")
    assert "overrides differs" in other and "6 trained now" in other


def test_the_record_is_what_the_lessons_parameters_ask_for(course_data):
    """Section 2 uses docs/results/table5-cpu.json in place of missing runs only when its meta equals the lesson's
    parameters; this keeps the two in step: the same config, overrides, set, crops and scales, every row of `rows` for
    every seed, with x8 for the two scale-channel rows, each run's stored training config exactly its row's
    (compare.run_changes), trained to the end of the budget, with a loss every 10 steps and the final validation."""
    from course_lib import data

    scores, info, meta = compare.load_scores(ROOT / notebook_constant(LESSON, "recorded"))
    config, overrides = notebook_constant(LESSON, "config"), notebook_constant(LESSON, "overrides")
    eval_set, crop = notebook_constant(LESSON, "eval_set"), notebook_constant(LESSON, "eval_crop")
    scales = [float(s) for s in notebook_constant(LESSON, "eval_scales")]
    extra = [float(s) for s in notebook_constant(LESSON, "extra_scales")]
    wanted = {"config": config, "overrides": overrides, "eval_set": eval_set,
              "eval_limit": notebook_constant(LESSON, "eval_limit"), "eval_crop": crop, "eval_scales": scales,
              "extra_scales": extra}
    assert {k: meta.get(k) for k in wanted} == wanted
    label, n_images = f"{eval_set}-crop{crop}", len(data.get_dataset(eval_set, limit=wanted["eval_limit"]))
    budget = train.load_config(config).run.max_steps
    rows, seeds = notebook_constant(LESSON, "rows"), notebook_constant(LESSON, "seeds")
    assert len(rows) == 7 and seeds == [0, 1] and sorted(scores) == sorted((r, s) for r in rows for s in seeds)
    for row in rows:
        for seed in seeds:
            want = {(label, s) for s in scales + (extra if row in ("(f)", "(f) 1/s") else [])}
            assert set(scores[row, seed]) == want, (row, seed)
            assert all(len(v) == n_images == 32 and np.isfinite(v).all() for v in scores[row, seed].values())
            assert compare.run_changes(info[row, seed], config,
                                       {**overrides, **compare.TABLE5_ROWS[row], "run.seed": seed}) == []
            assert info[row, seed]["steps"] == budget == 400 and info[row, seed]["seconds"] > 0
            log = info[row, seed]["log"]
            assert [ln["step"] for ln in log if "loss" in ln] == list(range(10, budget + 1, 10))
            assert [ln["step"] for ln in log if "val" in ln] == [budget]
