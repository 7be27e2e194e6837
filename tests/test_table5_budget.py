"""scripts/table5_budget.py (lesson 08, section 6): a trained row is exactly its row's config at the budget, its
per-image scores are course_lib.evaluate's on its fp16 export, a shipped row is scored and its differences from the
row's config are recorded, and a record only grows with rows made the same way."""

import importlib.util
import json
from pathlib import Path

import pytest

from course_lib import evaluate, models, train
from course_lib.errors import CourseError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "table5_budget.py"
spec = importlib.util.spec_from_file_location("table5_budget", SCRIPT)
table5_budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table5_budget)

SHIPPED = "diinn-edsr-291-cpu-liif-bf16"


def budget(folders):
    train_dir, val_dir = folders
    return ["model.encoder=edsr-less", "run.device=cpu", "run.amp=off", f"data.train_dir={train_dir}",
            "data.patch=8", "data.scales=[2]", "data.batch_size=2", "data.num_workers=0", "run.max_steps=3",
            "run.max_minutes=null", "run.log_every=1", "run.save_every=3", f"val.sets=[{val_dir}]", "val.scales=[2]",
            "val.every=3"]


def test_rows_are_trained_at_the_budget_scored_per_image_and_recorded(folders, tmp_path, capsys):
    _, val_dir = folders
    out, root = tmp_path / "rec" / "table5.json", tmp_path / "runs"
    args = ["--config", "diinn-edsr", "--override", *budget(folders), "--seed", "5", "--root", str(root),
            "--sets", str(val_dir), "--scales", "2", "3", "--pretrained", f"(f)={SHIPPED}", "--device", "cpu"]
    assert table5_budget.main(["--rows", "(b)", "(f)", "--out", str(out), *args]) == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["seed"] == 5 and doc["meta"]["scales"] == [2.0, 3.0] and list(doc["rows"]) == ["(b)", "(f)"]
    b, f = doc["rows"]["(b)"], doc["rows"]["(f)"]
    folder = root / "b-seed5"
    ckpt = train.load_checkpoint(folder / "last.pt")
    assert ckpt["train_config"]["model"]["variant"] == "b" and ckpt["train_config"]["run"]["seed"] == 5
    assert b["steps"] == 3 and b["changes"] == [] and b["val"] is not None and b["seconds"] > 0
    # the oracle: course_lib.evaluate on the row's fp16 export, image by image
    want = evaluate.evaluate(models.load(folder / "fp16" / "model.pt"), [str(val_dir)], [2, 3], progress=False,
                             per_image=True, device="cpu")
    assert [r["scale"] for r in b["scores"]] == [2.0, 3.0]
    for got, ref in zip(b["scores"], want):
        assert got["images"] == ref["images"] and got["psnr"] == ref["psnr"] and len(got["images"]) == 2
    assert b["parameters"] == models.count_parameters(models.load(folder / "last.pt"))
    # the shipped (f) is scored, not trained; its training differs from this tiny budget, and the record says how
    assert not (root / "f-seed5").exists() and f["weights"] == f"pretrained {SHIPPED}" and f["steps"] == 15447
    assert ["run.max_minutes", 45.0, None] in f["changes"] and ["run.seed", 123, 5] in f["changes"]
    assert [len(r["images"]) for r in f["scores"]] == [2, 2]
    # a second command adds rows and never scores a recorded row again
    mtime = (folder / "last.pt").stat().st_mtime_ns
    assert table5_budget.main(["--rows", "(b)", "(d)", "--out", str(out), *args]) == 0
    assert "(b): already in" in capsys.readouterr().out
    doc2 = json.loads(out.read_text())
    assert list(doc2["rows"]) == ["(b)", "(f)", "(d)"] and doc2["rows"]["(b)"] == b
    assert (folder / "last.pt").stat().st_mtime_ns == mtime and (root / "d-seed5" / "last.pt").is_file()


def test_a_record_made_otherwise_and_bad_rows_are_refused_in_one_line(folders, tmp_path):
    out = tmp_path / "rec.json"
    out.write_text(json.dumps({"meta": {"config": "diinn-edsr", "overrides": {}, "seed": 123, "sets": ["Urban100"],
                                        "scales": [4.0], "limit": None, "protocol": "paper"}, "rows": {}}))
    with pytest.raises(CourseError, match=r"made with other overrides, scales \(overrides=\{\}, scales=\[4.0\]\)"):
        table5_budget.main(["--rows", "(b)", "--out", str(out), "--config", "diinn-edsr", "--scales", "2"])
    with pytest.raises(CourseError, match=r"unknown row '\(g\)'"):
        table5_budget.main(["--rows", "(g)", "--out", str(tmp_path / "x.json")])
    with pytest.raises(CourseError, match="write ROW=NAME"):
        table5_budget.main(["--rows", "(f)", "--out", str(tmp_path / "x.json"), "--pretrained", "(f)"])
    with pytest.raises(CourseError, match="no pretrained model named 'nope'"):
        table5_budget.main(["--rows", "(f)", "--out", str(tmp_path / "x.json"), "--pretrained", "(f)=nope",
                            "--sets", "Set5", "--limit", "1"])
    (tmp_path / "junk.json").write_text("[]")
    with pytest.raises(CourseError, match="is not a table5_budget record"):
        table5_budget.main(["--rows", "(b)", "--out", str(tmp_path / "junk.json")])


def test_the_committed_record_is_the_scripts_default_run_at_full_size():
    """docs/results/table5-291-cpu.json (lesson 08, section 6): made with the script's defaults, 100 Urban100
    images per row and scale in one order (paired), means that are the means of the images, every trained row
    exactly its row's config at 15,447 steps, and (f) the shipped checkpoint, scored as its index entry says."""
    from course_lib import compare

    doc = json.loads((SCRIPT.parents[1] / "docs" / "results" / "table5-291-cpu.json").read_text())
    overrides = table5_budget._flat_overrides(table5_budget.BUDGET)
    assert doc["meta"] == {"config": "diinn-edsr-291-cpu", "overrides": overrides, "seed": 123, "sets": ["Urban100"],
                           "scales": [3.14, 4.0, 8.0], "limit": None, "protocol": "paper"}
    rows = doc["rows"]
    assert "(f)" in rows and len(rows) >= 3 and set(rows) <= set(compare.TABLE5_ROWS)
    order = None
    for row, info in rows.items():
        assert [(r["dataset"], r["scale"]) for r in info["scores"]] == [("Urban100", s) for s in (3.14, 4.0, 8.0)]
        for r in info["scores"]:
            names = [m["image"] for m in r["images"]]
            order = order or names
            assert names == order and len(names) == r["n_images"] == 100
            for key in ("psnr", "ssim", "lr_psnr"):
                assert r[key] == pytest.approx(sum(m[key] for m in r["images"]) / 100, abs=1e-9)
        cfg = train.load_config("diinn-edsr-291-cpu", {**overrides, **compare.TABLE5_ROWS[row]})
        assert info["parameters"] == models.count_parameters(train.build_model(cfg.model))
        assert info["steps"] == 15447
        if row == "(f)":  # its 45-minute budget planned the 15,447 steps the others run without a clock
            assert info["weights"] == f"pretrained {SHIPPED}"
            assert info["changes"] == [["run.max_steps", 1000000, 15447], ["run.max_minutes", 45.0, None]]
        else:
            assert info["changes"] == [] and info["seconds"] > 0
    stored = [r for r in models.list_pretrained()[SHIPPED]["results"] if r["dataset"] == "Urban100" and r["scale"] == 4]
    assert rows["(f)"]["scores"][1]["psnr"] == pytest.approx(stored[0]["psnr"], abs=0.005)
