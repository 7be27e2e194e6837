"""scripts/equal_budget.py (lesson 11's equal-budget table): per-image scores equal course_lib.evaluate's, run facts
come from the run's checkpoint, and bicubic is the first row."""

import importlib.util
import json
import sys
from pathlib import Path

from course_lib import evaluate, models, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import tiny  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "equal_budget.py"
spec = importlib.util.spec_from_file_location("equal_budget", SCRIPT)
equal_budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(equal_budget)


def test_rows_are_the_evaluators_per_image_scores(folders, tmp_path):
    train_dir, val_dir = folders
    run = tmp_path / "run"
    train.train("diinn-edsr", tiny(folders, run, **{"run.max_steps": 4}))
    out = tmp_path / "table.json"
    assert equal_budget.main([str(run), str(tmp_path / "no-run"), "--datasets", str(val_dir), "--scale", "2",
                              "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert [r["name"] for r in table["rows"]] == ["bicubic", "run"]  # a folder without last.pt is skipped
    row = table["rows"][1]
    assert row["steps"] == 4 and row["train_scales"] == [2] and row["train_seconds"] > 0
    (name, got), = row["sets"].items()
    want = evaluate.evaluate(models.load(run / "last.pt"), [str(val_dir)], [2], protocol="paper", progress=False,
                             per_image=True)[0]
    assert [i["psnr"] for i in got["images"]] == [i["psnr"] for i in want["images"]]
    assert abs(got["psnr"] - want["psnr"]) < 1e-9 and len(got["images"]) == 2
    from course_lib import data, metrics  # detail ratio of the first image, recomputed by hand
    hr = data.HRFolder(val_dir)[0]
    lr = metrics.paper_pair(hr, 2)[0]
    sr = models.load(run / "last.pt").upscale((lr.float() / 255)[None], size=tuple(hr.shape[-2:]))[0]
    assert abs(got["images"][0]["detail"] - metrics.detail_ratio(sr, hr)) < 1e-6
    bic = evaluate.evaluate(models.build("bicubic"), [str(val_dir)], [2], protocol="paper", progress=False)[0]
    assert abs(table["rows"][0]["sets"][name]["psnr"] - bic["psnr"]) < 1e-9
