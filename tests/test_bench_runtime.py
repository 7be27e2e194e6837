"""scripts/bench_runtime.py (Table 4 layout): every family it is asked for gets timed rows (issue 12)."""

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import torch

from course_lib import precision

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_runtime.py"


def test_table4_has_liif_and_metasr_rows(tmp_path):
    out, day = tmp_path / "rows.json", date.today().isoformat()
    run = subprocess.run([sys.executable, str(SCRIPT), "--models", "liif", "metasr", "--encoders", "edsr-less",
                          "--sizes", "24", "32", "--input", "8", "--runs", "1", "--warmup", "0", "--paths", "fast",
                          "--device", "cpu", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads(out.read_text())
    rows = record["rows"]
    assert record["date"] in {day, date.today().isoformat()} and record["machine"]  # a figure names when and where
    timed = {(r["model"], r["size"]) for r in rows if r["path"] == "fast"}
    assert timed >= {("LIIF + edsr-less", 24), ("LIIF + edsr-less", 32), ("Meta-SR + edsr-less", 24),
                     ("Meta-SR + edsr-less", 32)}
    assert all(r["ms"] > 0 for r in rows)
    assert "| LIIF + edsr-less | fast | fp32 |" in run.stdout and "| Meta-SR + edsr-less | fast |" in run.stdout


def test_train_step_rows_count_multiply_adds(tmp_path):
    """--train-step: seconds and multiply-adds per step for both paths, and the ratio of each."""
    out = tmp_path / "rows.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--models", "diinn", "--encoders", "edsr-less", "--sizes", "16",
                          "--input", "8", "--runs", "1", "--warmup", "0", "--device", "cpu", "--train-step",
                          "--train-patch", "4", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    steps = {r["path"]: r for r in json.loads(out.read_text())["rows"] if "seconds" in r}
    assert set(steps) == {"reference", "fast"}
    for r in steps.values():
        assert r["model"].endswith("patch 4") and r["seconds"] > 0
        assert r["gmac_per_s"] == r["gmac"] / r["seconds"]
    assert steps["reference"]["gmac"] > steps["fast"]["gmac"] > 0
    ratio = steps["reference"]["gmac"] / steps["fast"]["gmac"]
    assert f"{ratio:.2f}x in multiply-adds" in run.stdout


def test_profile_lists_the_top_operators_of_each_path():
    """--profile TOP: one profiled upscale per group, a table of at most TOP operators each, nothing timed."""
    run = subprocess.run([sys.executable, str(SCRIPT), "--models", "diinn", "--encoders", "edsr-less", "--sizes", "24",
                          "--input", "8", "--warmup", "0", "--device", "cpu", "--profile", "5"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    for path in ("reference", "fast"):
        assert f"DIINN (f) + edsr-less, {path} path, fp32, 8x8 -> 24x24 on cpu:" in run.stdout
    # one table per path and precision: fp32, and bf16 too on a CPU with native bf16 (as the script decides)
    precs = 1 + (precision.autocast_dtype("auto", torch.device("cpu")) == torch.bfloat16)
    assert run.stdout.count("Self CPU time total") == 2 * precs and "| model |" not in run.stdout  # no timing table
    assert "aten::" in run.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--profile", "0"], capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode != 0 and "--profile takes how many operators" in bad.stderr.strip().splitlines()[-1]
