"""Equal-budget comparisons (course_lib.compare): rows one flag apart, seeds, resumable, per-image scores, spread."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_train import tiny

from course_lib import compare, evaluate, models, stats, train
from course_lib.errors import CourseError


def test_table5_rows_are_one_flag_each_from_f():
    assert list(compare.TABLE5_ROWS) == ["(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "(f) 1/s"]
    for name, over in compare.TABLE5_ROWS.items():
        assert len(over) == (0 if name == "(f)" else 1)
        cfg = train.load_config("compare-cpu", overrides=over)
        m = train.build_model(cfg.model)
        assert m.config["variant"] == name[1]
        assert m.config["scale_mode"] == ("inverse" if "1/s" in name else "area")


def test_family_rows_build_their_families():
    for name, over in compare.FAMILY_ROWS.items():
        m = train.build_model(train.load_config("compare-cpu", overrides=over).model)
        assert m.config["name"] == {"DIINN (f)": "diinn", "Meta-SR": "metasr"}.get(name, "liif")
        assert m.config.get("mlp") == ("siren" if "SIREN" in name else ("relu" if "LIIF" in name else None))


def test_edsr_less_rows_are_their_family_rows_with_the_smaller_encoder():
    assert list(compare.FAMILY_LESS_ROWS) == ["LIIF (EDSR-LESS)", "LIIF+SIREN-30 (EDSR-LESS)"]
    assert compare.ROW_SETS["families-less"] is compare.FAMILY_LESS_ROWS
    for name, over in compare.FAMILY_LESS_ROWS.items():
        family = name.removesuffix(" (EDSR-LESS)")
        assert over == {**compare.FAMILY_ROWS[family], "model.encoder": "edsr-less"}
        cfg = train.load_config("compare-cpu", overrides=over)
        m = train.build_model(cfg.model)
        assert m.config["name"] == "liif" and m.config["encoder"] == "edsr-less"
        assert m.config["mlp"] == ("siren" if "SIREN" in name else "relu")


def test_recipe_rows_are_one_change_each_from_the_shipped_cpu_recipe_or_from_liif_sampling():
    assert compare.ROW_SETS["recipes"] is compare.RECIPE_ROWS
    assert compare.ROW_SET_CONFIGS["recipes"] == "diinn-edsr-291-cpu"
    base = train.load_config("diinn-edsr-291-cpu")
    liif = compare.RECIPE_ROWS["LIIF sampling"]
    assert liif == {"data.recipe": "liif", "data.sample_q": 1024}
    for name, over in compare.RECIPE_ROWS.items():
        # one flag each, from the shipped recipe or (rows named "LIIF, ...") from LIIF sampling; LIIF's sampling sets
        # its query count by LIIF's rule, patch x patch
        start = liif if name.startswith("LIIF, ") else {}
        own = {k: v for k, v in over.items() if start.get(k) != v}
        assert len(own) == {"shipped": 0, "LIIF sampling": 2, "LIIF, patch 48": 2}.get(name, 1), name
        if "data.sample_q" in over:
            assert over["data.sample_q"] == over.get("data.patch", base.data.patch) ** 2
        cfg = train.load_config("diinn-edsr-291-cpu", overrides=over)
        changed = {key for key, _, _ in train.resume_changes(cfg, dataclasses.asdict(base))}
        # exactly the row's flags differ from the shipped recipe (whose unused sample_q is already 2,304)
        assert changed == {k for k in over if not (k == "data.sample_q" and over[k] == base.data.sample_q)}
        assert cfg.model == base.model  # the model stays DIINN (f) + EDSR-baseline + skip


def test_a_row_that_cannot_train_is_refused_before_any_row_trains(tmp_path):
    rows = {"(f)": {}, "LIIF sampling": {"data.recipe": "liif", "data.sample_q": 2304}}  # 2,304 > 16 x 16 pixels
    with pytest.raises(CourseError) as err:
        compare.train_rows("compare-cpu", rows, [0], root=tmp_path)
    msg = str(err.value)
    assert msg.startswith("row 'LIIF sampling' (seed 0): data.sample_q=2304 is more than the 256 HR pixels")
    assert "set data.sample_q <= 256" in msg and len(msg.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # the good row before it did not start


def test_run_dir_names():
    assert compare.run_dir("r", "(f) 1/s", 1).as_posix() == "r/f-1-s-seed1"
    assert compare.run_dir("r", "LIIF+SIREN-30", 0).name == "liif-siren-30-seed0"


@pytest.mark.parametrize("rows, seeds, words", [
    ({}, [0], "non-empty dict"),
    ({"(a)": "a"}, [0], "overrides must be a dict"),
    ({"(f)": {}}, [], "non-empty list of integers"),
    ({"(f)": {}}, [0, 0], "seeds repeat"),
    ({"(f) x": {}, "f-x": {}}, [0], "same folder name"),
    ({"(f)": {"run.max_steps": 5}}, [0], "changes the budget"),
])
def test_bad_comparisons_are_refused_in_one_line(rows, seeds, words, tmp_path):
    with pytest.raises(CourseError, match=words) as err:
        compare.train_rows("compare-cpu", rows, seeds, root=tmp_path)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def grid(folders, tmp_path_factory):
    """Two rows x two seeds of a tiny run, one of them interrupted first and resumed by train_rows."""
    root = tmp_path_factory.mktemp("grid")
    base = tiny(folders, root / "unused", **{"run.max_steps": 4, "run.save_every": 2})
    base.pop("run.out_dir"), base.pop("run.seed")
    rows = {"(f)": {}, "(b)": {"model.variant": "b"}}
    # an interrupted (b) seed 1: stopped at step 2 as if the machine went away
    train.train(None, overrides={**base, "model.variant": "b", "run.seed": 1, "run.stop_at": 2,
                                 "run.out_dir": str(compare.run_dir(root, "(b)", 1))})
    log = []
    runs = compare.train_rows(None, rows, seeds=[0, 1], root=root, overrides=base, progress=False, log=log.append)
    return root, rows, base, runs, log


def test_train_rows_trains_every_row_and_seed_to_the_same_budget(grid):
    root, rows, base, runs, log = grid
    assert sorted(runs) == [("(b)", 0), ("(b)", 1), ("(f)", 0), ("(f)", 1)]
    for (row, seed), folder in runs.items():
        assert compare.finished_step(folder) == 4
        saved = yaml.safe_load((folder / "config.yaml").read_text())
        assert saved["model"]["variant"] == ("b" if row == "(b)" else "f") and saved["run"]["seed"] == seed
    w = {k: torch.load(v / "last.pt", map_location="cpu", weights_only=False)["state_dict"] for k, v in runs.items()}
    key = next(iter(w["(f)", 0]))
    assert not torch.equal(w["(f)", 0][key], w["(f)", 1][key])  # the seeds really differ


def test_interrupted_run_is_resumed_to_the_same_weights_as_an_uninterrupted_one(grid, tmp_path):
    root, rows, base, runs, log = grid
    straight = train.train(None, overrides={**base, "model.variant": "b", "run.seed": 1,
                                            "run.out_dir": str(tmp_path / "straight")})
    a = torch.load(runs["(b)", 1] / "last.pt", map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(straight.last, map_location="cpu", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rerunning_skips_finished_runs(grid):
    root, rows, base, runs, log = grid
    stamps = {k: (v / "last.pt").stat().st_mtime_ns for k, v in runs.items()}
    again = []
    compare.train_rows(None, rows, seeds=[0, 1], root=root, overrides=base, progress=False, log=again.append)
    assert all("finished at step 4" in line for line in again) and len(again) == 4
    assert stamps == {k: (v / "last.pt").stat().st_mtime_ns for k, v in runs.items()}
    assert compare.finished_step(root / "nothing-here") is None


def test_score_rows_gives_evaluates_per_image_psnr(grid, folders):
    root, rows, base, runs, log = grid
    val = str(folders[1])
    scores = compare.score_rows(runs, [val], scales=[2])
    for key, folder in runs.items():
        psnrs = scores[key]["val", 2.0]
        assert psnrs.shape == (2,)
        row = evaluate.evaluate(models.load(folder / "last.pt"), [val], [2], progress=False)[0]
        assert psnrs.mean() == pytest.approx(row["psnr"], abs=1e-9)
    with pytest.raises(CourseError, match="which must be"):
        compare.score_rows(runs, [val], [2], which="first")


def test_recorded_scores_rebuild_the_same_tables_without_the_runs(grid, folders, tmp_path):
    """save_scores -> load_scores gives back score_rows' arrays exactly, each run's cost as its logs state it,
    and the same spread table; a missing or foreign file is refused in one line."""
    root, rows, base, runs, log = grid
    val = str(folders[1])
    scores = compare.score_rows(runs, [val], scales=[2, 3])
    path = compare.save_scores(tmp_path / "rec" / "scores.json", scores, runs, sets=["val"], scales=[2, 3])
    back, info, meta = compare.load_scores(path)
    assert meta == {"sets": ["val"], "scales": [2, 3]}
    assert sorted(back) == sorted(scores)
    for key, per in scores.items():
        assert sorted(back[key]) == sorted(per)
        for cell, arr in per.items():
            assert np.array_equal(back[key][cell], arr)  # floats survive JSON exactly
        last = [ln for ln in train.read_metrics(runs[key]) if "loss" in ln][-1]
        assert info[key]["steps"] == 4 == last["step"] and info[key]["seconds"] == last["time"]
        assert info[key]["parameters"] == models.count_parameters(models.load(runs[key] / "last.pt"))
        assert info[key]["train_config"]["run"]["seed"] == key[1]
        # the log: a loss every run.log_every = 2 steps and the end-of-run validation, as metrics.jsonl has them
        rec_log, metrics = info[key]["log"], train.read_metrics(runs[key])
        assert [(ln["step"], sorted(ln)) for ln in rec_log] == [(2, ["loss", "step", "time"]),
                                                                (4, ["loss", "step", "time"]), (4, ["step", "val"])]
        assert rec_log[1]["loss"] == last["loss"] and rec_log[1]["time"] == last["time"]
        assert rec_log[2]["val"] == [ln for ln in metrics if "val" in ln][-1]["val"] and rec_log[2]["val"]
    assert compare.spread(back, "(f)", "val", 2.0, n=500) == compare.spread(scores, "(f)", "val", 2.0, n=500)
    no_runs, info2, _ = compare.load_scores(compare.save_scores(tmp_path / "plain.json", scores))
    assert info2[("(f)", 0)] == {} and np.array_equal(no_runs[("(f)", 0)]["val", 2.0], scores[("(f)", 0)]["val", 2.0])
    with pytest.raises(CourseError, match="does not exist; record scores"):
        compare.load_scores(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(CourseError, match="is not a compare.save_scores file"):
        compare.load_scores(tmp_path / "other.json")
    with pytest.raises(CourseError, match="train the row first"):
        compare.run_summary(tmp_path / "no-run")


def test_run_changes_names_what_differs_from_the_row(grid):
    """compare.run_changes against train.resume_changes by hand: [] for the run itself (also from its record),
    the key that differs for another row's or seed's config, and ("step", got, wanted) for a run cut short."""
    root, rows, base, runs, log = grid
    summary = compare.run_summary(runs["(b)", 1])
    assert compare.run_changes(summary, None, {**base, "model.variant": "b", "run.seed": 1}) == []
    changes = compare.run_changes(summary, None, {**base, "run.seed": 1})  # row (f) asks for variant f
    want = train.load_config(None, {**base, "run.seed": 1})
    assert changes == train.resume_changes(want, summary["train_config"]) and changes
    assert any("variant" in str(key) for key, *_ in changes)
    assert any("seed" in str(key) for key, *_ in compare.run_changes(summary, None, {**base, "model.variant": "b"}))
    short = {**summary, "steps": 2}
    assert compare.run_changes(short, None, {**base, "model.variant": "b", "run.seed": 1}) == [("step", 2, 4)]


def test_evaluate_per_image_rows_average_to_the_row(folders):
    val = str(folders[1])
    row = evaluate.evaluate("bicubic", [val], [2, 3], progress=False, per_image=True)
    for r in row:
        assert [m["image"] for m in r["images"]] == ["im0", "im1"]
        for k in ("psnr", "ssim", "lr_psnr"):
            assert np.mean([m[k] for m in r["images"]]) == pytest.approx(r[k], abs=1e-12)
    assert "images" not in evaluate.evaluate("bicubic", [val], [2], progress=False)[0]


def test_spread_by_hand():
    rng = np.random.default_rng(0)
    ref = {0: rng.normal(30, 1, 8), 1: rng.normal(30, 1, 8)}
    other = {0: ref[0] + 0.5, 1: ref[1] + 0.1}  # seed means 0.5 and 0.1 above the reference: a spread of 0.4
    scores = {("ref", s): {("Set", 4.0): v} for s, v in ref.items()}
    scores.update({("b", s): {("Set", 4.0): v} for s, v in other.items()})
    table = {r["row"]: r for r in compare.spread(scores, "ref", "Set", 4.0, n=2000)}
    b = table["b"]
    assert b["diff"] == pytest.approx(0.3)
    assert b["seed_spread"] == pytest.approx(abs(other[0].mean() - other[1].mean()))
    assert b["psnr"] == pytest.approx((other[0].mean() + other[1].mean()) / 2)
    ci = stats.paired_bootstrap((other[0] - ref[0] + other[1] - ref[1]) / 2, n=2000)
    assert (b["low"], b["high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert table["ref"]["diff"] == 0 and b["n_seeds"] == 2
    with pytest.raises(CourseError, match="reference row 'x'"):
        compare.spread(scores, "x", "Set", 4.0)
    with pytest.raises(CourseError, match="no scores for Set x2"):
        compare.spread(scores, "ref", "Set", 2)


def test_cli_trains_scores_and_prints_the_spread_table(folders, tmp_path, capsys):
    from course_lib.__main__ import main

    base = tiny(folders, tmp_path / "unused", **{"run.max_steps": 2})
    base.pop("run.out_dir"), base.pop("run.seed")
    over = [f"{k}={v}" for k, v in base.items()]
    out = tmp_path / "spread.json"
    code = main(["compare", "--rows", "families", "--seeds", "0", "1", "--root", str(tmp_path / "runs"),
                 "--override", *over, "--datasets", str(folders[1]), "--scales", "2", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "| row | val x2 PSNR (dB) | seed spread | vs DIINN (f) (95% CI) | finding? |" in text
    rows = json.loads(out.read_text())
    assert [r["row"] for r in rows] == list(compare.FAMILY_ROWS)
    assert all(r["n_seeds"] == 2 for r in rows)
    assert (tmp_path / "runs" / "liif-siren-30-seed1" / "last.pt").is_file()
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--rows", "nonsense"])
    assert exit_.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_a_ctrl_c_stops_the_whole_grid_and_a_rerun_finishes_it(folders, tmp_path, monkeypatch):
    import signal

    base = tiny(folders, tmp_path / "unused", **{"run.max_steps": 4})
    base.pop("run.out_dir"), base.pop("run.seed")
    rows = {"(f)": {}, "(b)": {"model.variant": "b"}}
    real_step, calls = train.Trainer.step, []

    def step(self, batch):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)  # a first Ctrl-C in the first run: it saves and returns
        return real_step(self, batch)

    monkeypatch.setattr(train.Trainer, "step", step)
    log = []
    with pytest.raises(KeyboardInterrupt):
        compare.train_rows(None, rows, [0], tmp_path / "g", overrides=base, progress=False, log=log.append)
    assert "stopped at step 2 (signal)" in log[-1]
    assert not compare.run_dir(tmp_path / "g", "(b)", 0).exists()  # the grid stopped: (b) never started
    monkeypatch.setattr(train.Trainer, "step", real_step)
    runs = compare.train_rows(None, rows, [0], tmp_path / "g", overrides=base, progress=False)
    assert all(compare.finished_step(f) == 4 for f in runs.values())


def test_a_ctrl_c_in_the_command_line_exits_130_with_one_line(folders, tmp_path, monkeypatch, capsys):
    import signal

    from course_lib.__main__ import main

    base = tiny(folders, tmp_path / "unused", **{"run.max_steps": 4})
    base.pop("run.out_dir"), base.pop("run.seed")
    real_step, calls = train.Trainer.step, []

    def step(self, batch):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C during the first run
        return real_step(self, batch)

    monkeypatch.setattr(train.Trainer, "step", step)
    code = main(["compare", "--rows", "table5", "--seeds", "0", "--root", str(tmp_path / "g"), "--train-only",
                 "--override", *[f"{k}={v}" for k, v in base.items()]])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "comparison stopped; the same command resumes it"
    assert compare.finished_step(compare.run_dir(tmp_path / "g", "(a)", 0)) is None  # saved, not finished
    assert (compare.run_dir(tmp_path / "g", "(a)", 0) / "last.pt").is_file()


def test_read_record_uses_a_record_only_when_it_matches(tmp_path):
    """compare.read_record: the record back when its meta equals what is wanted and it holds every run asked for;
    None and one line naming each difference otherwise, or that the file is missing."""
    scores = {(row, s): {("Set", 4.0): np.array([20.0 + s, 21.0])} for row in ("(f)", "(b)") for s in (0, 1)}
    path = compare.save_scores(tmp_path / "rec.json", scores, None, config="compare-cpu", eval_limit=3,
                               overrides={"run.max_steps": 8})
    wanted = {"config": "compare-cpu", "eval_limit": 3, "overrides": {"run.max_steps": 8}}
    lines = []
    got = compare.read_record(path, wanted, [("(f)", 0), ("(b)", 1)], log=lines.append)
    assert lines == [] and np.array_equal(got[0]["(b)", 1]["Set", 4.0], [21.0, 21.0]) and got[2]["eval_limit"] == 3
    assert compare.read_record(path, {**wanted, "eval_limit": 4, "overrides": {}}, [("(f)", 0), ("(e)", 1)],
                               log=lines.append) is None
    assert lines == [f"{path} does not match this run (eval_limit differs; overrides differs; no (e) seed 1): "
                     "training instead"]
    assert compare.read_record(tmp_path / "none.json", wanted, [], log=lines.append) is None
    assert lines[-1].startswith(f"{tmp_path / 'none.json'} is not here") and len(lines) == 2


def test_save_arrays_round_trips_exactly_and_refuses_bad_names_and_files(tmp_path):
    """compare.save_arrays / load_arrays: every array back bit for bit with its dtype and shape (oracle: the arrays
    saved); names a zip member cannot hold and files that are not such a record give one-line CourseErrors."""
    rng = np.random.default_rng(0)
    arrays = {"siren features": rng.normal(size=(1, 4, 5, 6)).astype(np.float32), "psnr x3.5": np.float64(27.125),
              "maps (Meta-SR)": rng.normal(size=(16, 3, 3)), "ids": np.arange(7, dtype=np.int16)}
    path = compare.save_arrays(tmp_path / "sub" / "figures.npz", arrays)
    back = compare.load_arrays(path)
    assert sorted(back) == sorted(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == np.asarray(v).dtype and back[k].shape == np.asarray(v).shape
        assert np.array_equal(back[k], v)
    assert [p.name for p in path.parent.iterdir()] == ["figures.npz"]  # no temporary file left behind
    for bad in ({"a/b": np.zeros(1)}, {"": np.zeros(1)}, {3: np.zeros(1)}):
        with pytest.raises(CourseError, match="array names must be"):
            compare.save_arrays(tmp_path / "bad.npz", bad)
    with pytest.raises(CourseError, match="does not exist"):
        compare.load_arrays(tmp_path / "none.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(CourseError, match="is not a compare.save_arrays file"):
        compare.load_arrays(tmp_path / "text.npz")


def test_merge_records_joins_the_parts_of_one_comparison(tmp_path, capsys):
    """compare.merge_records (and `compare --merge`): the parts' runs in one record that read_record accepts for all
    of them; machine and date joined; other meta differing, a run in two parts, or no part refused in one line."""
    def part(name, rows, seeds, machine, **meta):
        scores = {(r, s): {("Set5-crop96", 4.0): np.array([20.0 + s, 21.0 + len(r)]),
                           ("Set5-crop96", 8.0): np.array([17.0, 18.0 + s])} for r in rows for s in seeds}
        return scores, compare.save_scores(tmp_path / name, scores, None, config="seed000-a", max_steps=4000,
                                           machine=machine, date="2026-11-24", **meta)

    s1, p1 = part("a.json", ["A", "G"], [0, 1], "H100")
    s2, p2 = part("b.json", ["C", "F"], [0, 1], "H200")
    s3, p3 = part("c.json", ["H"], [0, 1], "H100")
    out = compare.merge_records([p1, p2, p3], tmp_path / "all.json")
    scores, info, meta = compare.load_scores(out)
    want = {**s1, **s2, **s3}
    assert list(scores) == list(want)  # every run, in the parts' order
    assert all(np.array_equal(scores[k][c], want[k][c]) for k in want for c in want[k])
    assert meta == {"config": "seed000-a", "max_steps": 4000, "machine": "H100; H200", "date": "2026-11-24"}
    wanted = {"config": "seed000-a", "max_steps": 4000}
    assert compare.read_record(out, wanted, list(want), log=print) is not None

    _, p4 = part("d.json", ["B"], [0], "H100", overrides={"model.skip": None})
    with pytest.raises(CourseError, match=r"d.json was made with other settings than .*a.json \(overrides differ\)"):
        compare.merge_records([p1, p4], tmp_path / "x.json")
    with pytest.raises(CourseError, match=r"A seed 0 is in both .*a.json and .*a.json"):
        compare.merge_records([p1, p1], tmp_path / "x.json")
    with pytest.raises(CourseError, match="at least one record"):
        compare.merge_records([], tmp_path / "x.json")
    with pytest.raises(CourseError, match="does not exist"):
        compare.merge_records([tmp_path / "none.json"], tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()  # nothing written by a refused merge

    assert compare.cli(["--merge", str(p1), str(p2), "--out", str(tmp_path / "cli.json")]) == 0
    assert f"{tmp_path / 'cli.json'}: 8 runs from 2 records; machine: H100; H200" in capsys.readouterr().out
    with pytest.raises(CourseError, match="--merge needs --out"):
        compare.cli(["--merge", str(p1)])


def test_merging_the_parts_of_a_committed_record_gives_it_back(tmp_path):
    """Lesson 10's record of seed 000's rows (docs/results), cut into parts by row and merged: the same file."""
    source = Path(__file__).resolve().parents[1] / "docs" / "results" / "seed000-cpu-skip-none.json"
    doc = json.loads(source.read_text())
    groups = [["A", "C"], ["F"], ["G", "H", "DIINN (f)"]]
    assert sorted(r for g in groups for r in g) == sorted({e["row"] for e in doc["runs"]})
    parts = []
    for i, rows in enumerate(groups):
        parts.append(tmp_path / f"part{i}.json")
        parts[-1].write_text(json.dumps({"meta": doc["meta"], "runs": [e for e in doc["runs"] if e["row"] in rows]}))
    merged = json.loads(compare.merge_records(parts, tmp_path / "merged.json").read_text())
    order = {r: i for i, g in enumerate(groups) for r in g}
    assert merged["meta"] == doc["meta"]
    assert merged["runs"] == sorted(doc["runs"], key=lambda e: order[e["row"]])  # the parts' order, entries intact
