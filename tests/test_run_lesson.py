"""scripts/run_lesson.py: a lesson's code cells as a script, with papermill-style parameters (docs/GPU_QUEUE.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import run_lesson  # noqa: E402


def code(source, tags=None):
    return {"cell_type": "code", "metadata": {"tags": tags or []}, "source": source, "outputs": [],
            "execution_count": None}


def write_notebook(path, cells):
    doc = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def toy(tmp_path):
    return write_notebook(tmp_path / "toy.ipynb", [
        {"cell_type": "markdown", "metadata": {}, "source": "# not code"},
        code("import os\nstart_dir = os.getcwd()"),
        code(["SMOKE = False\n", "steps = 3  # a knob\n", "name, tag = 'a', 'b'\n"], tags=["parameters"]),
        code("%matplotlib inline\n!echo skipped\ntotal = steps * 10\nlabel = name + tag"),
        code("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nwritten = open('out.txt', 'w').write(label)"),
    ])


def test_parameters_are_set_after_the_parameters_cell_and_magics_are_skipped(toy, tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_STRICT", raising=False)
    monkeypatch.setenv("COURSE_DATA_DIR", "some/relative/data")
    before = (os.getcwd(), {k: os.environ.get(k) for k in run_lesson.ENVIRONMENT})
    toy_cells = json.loads(toy.read_text())
    toy_cells["cells"].append(code("import os\n"
                                   "env = {k: os.environ.get(k) for k in ('COURSE_STRICT', 'COURSE_DATA_DIR')}"))
    toy.write_text(json.dumps(toy_cells))
    lines = []
    ns = run_lesson.run(toy, {"steps": 7, "name": "z"}, log=lines.append)
    assert ns["env"] == {"COURSE_STRICT": "1", "COURSE_DATA_DIR": str(Path(before[0]) / "some/relative/data")}
    assert (os.getcwd(), {k: os.environ.get(k) for k in run_lesson.ENVIRONMENT}) == before  # restored
    assert (ns["SMOKE"], ns["steps"], ns["total"], ns["label"]) == (False, 7, 70, "zb")
    assert ns["start_dir"] == str(tmp_path)  # the notebook's folder, as in Jupyter
    assert (tmp_path / "out.txt").read_text() == "zb"
    assert lines[-1].startswith("toy.ipynb: 6 cells in")  # 5 code cells + the injected parameters
    assert any(ln.startswith("[injected parameters:") for ln in lines)


def test_without_parameters_the_defaults_run(toy):
    ns = run_lesson.run(toy, {}, log=lambda *_: None)
    assert (ns["steps"], ns["total"]) == (3, 30)


def test_figures_are_saved_per_cell(toy, tmp_path):
    run_lesson.run(toy, {}, figures=tmp_path / "figs", log=lambda *_: None)
    assert [p.name for p in (tmp_path / "figs").iterdir()] == ["toy-cell4-0.png"]


@pytest.mark.parametrize("pairs, value", [(["a=1"], 1), (["a=True"], True), (["a=None"], None),
                                          (["a=[0, 1]"], [0, 1]), (['a="x y"'], "x y"), (["a=/tmp/s0"], "/tmp/s0"),
                                          (["a=x=y"], "x=y")])
def test_values_are_literals_or_strings(pairs, value):
    assert run_lesson.parse_parameters(pairs) == {"a": value}


@pytest.mark.parametrize("pair", ["steps", "=3", "two words=3"])
def test_a_malformed_parameter_is_refused(pair):
    with pytest.raises(run_lesson.LessonError, match="NAME=VALUE"):
        run_lesson.parse_parameters([pair])


def test_an_unknown_parameter_is_named_with_the_known_ones(toy):
    with pytest.raises(run_lesson.LessonError,
                       match=r"does not set stpes; its parameters are: SMOKE, steps, name, tag"):
        run_lesson.run(toy, {"stpes": 7}, log=lambda *_: None)


def test_a_notebook_without_a_parameters_cell_refuses_parameters(tmp_path):
    path = write_notebook(tmp_path / "plain.ipynb", [code("x = 1")])
    with pytest.raises(run_lesson.LessonError, match="no cell tagged 'parameters'"):
        run_lesson.run(path, {"x": 2}, log=lambda *_: None)
    assert run_lesson.run(path, {}, log=lambda *_: None)["x"] == 1


def test_the_command_line_reports_errors_in_one_line_or_names_the_failing_cell(toy, tmp_path, capsys):
    assert run_lesson.main([str(tmp_path / "missing.ipynb")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run_lesson.main([str(toy), "-p", "nope=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not set nope" in err
    broken = write_notebook(tmp_path / "broken.ipynb", [code("x = 1"), code("y = 1 / 0")])
    assert run_lesson.main([str(broken)]) == 1
    captured = capsys.readouterr()
    assert "broken.ipynb: cell 1 failed" in captured.out and "ZeroDivisionError" in captured.err


def test_a_real_lesson_runs_strictly_in_smoke_mode(tmp_path):
    """Lesson 01 as a script in a fresh interpreter: its nb.cmp self-checks are strict, so this passes only if every
    check passes; SMOKE=True reaches the lesson (the printed run-time line says so)."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_lesson.py"),
                           str(ROOT / "notebooks" / "01_coordinate_grids.ipynb"), "-p", "SMOKE=True"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "[injected parameters:" in proc.stdout
    assert "SMOKE" in proc.stdout and "01_coordinate_grids.ipynb:" in proc.stdout
