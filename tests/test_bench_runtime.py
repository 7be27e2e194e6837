"""scripts/bench_runtime.py (Table 4 layout): every family it is asked for gets timed rows (issue 12)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_runtime.py"


def test_table4_has_liif_and_metasr_rows(tmp_path):
    out = tmp_path / "rows.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--models", "liif", "metasr", "--encoders", "edsr-less",
                          "--sizes", "24", "32", "--input", "8", "--runs", "1", "--warmup", "0", "--paths", "fast",
                          "--device", "cpu", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    timed = {(r["model"], r["size"]) for r in rows if r["path"] == "fast"}
    assert timed >= {("LIIF + edsr-less", 24), ("LIIF + edsr-less", 32), ("Meta-SR + edsr-less", 24),
                     ("Meta-SR + edsr-less", 32)}
    assert all(r["ms"] > 0 for r in rows)
    assert "| LIIF + edsr-less | fast | fp32 |" in run.stdout and "| Meta-SR + edsr-less | fast |" in run.stdout
