"""The lesson notebooks: clean committed sources, the shared setup cell, lint, and a smoke run of each one.

The smoke run executes every notebook in notebooks/ with papermill (kernel python3, cwd notebooks/,
parameters ``SMOKE=True``) in strict mode (``COURSE_STRICT=1``: a failed ``nb.cmp`` fails the run, and unfinished
exercises are answered by their stored solutions, notebooks/README.md) and writes the executed copy to a temporary
folder, never into notebooks/. The static checks are the ones ``python scripts/nbtools.py check`` prints.
Further tests run tiny notebooks to show that strict mode and headless mode are detected under papermill without
any environment variable, that a kernel started as Jupyter starts one is not strict, and that a wrong self-check
or a wrong exercise answer fails a papermill run.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def data_root() -> Path | None:
    """The course data exactly where the library finds it (course_lib.data.data_dir(): $COURSE_DATA_DIR, else data/
    in the repository); None when that holds no Set5. A COURSE_DATA_DIR that holds no Set5 is an error, never a skip."""
    from course_lib import data as course_data

    root = course_data.data_dir()
    if (root / "Set5" / "HR").is_dir():
        return root.resolve()
    if os.environ.get("COURSE_DATA_DIR"):
        raise RuntimeError(f"COURSE_DATA_DIR={root} holds no Set5/HR: point it at the course data or unset it")
    return None


DATA = data_root()

_spec = importlib.util.spec_from_file_location("nbtools", ROOT / "scripts" / "nbtools.py")
nbtools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbtools)

PATHS = nbtools.notebook_paths()
IDS = [p.stem for p in PATHS]
SMOKE_LIMIT_S = 300  # per notebook; SMOKE runs take well under a minute on 2 cores, this only catches a hang


def test_there_are_lessons():
    assert len(PATHS) >= 1


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_committed_notebook_is_clean_and_consistent(path):
    # no outputs or execution counts, setup cell first, Colab badge, one `parameters` cell with SMOKE = False,
    # a stated run time, listed in the lesson table
    assert nbtools.problems(path) == []


def test_lesson_table_is_in_sync():
    assert nbtools.table_problems() == []


def test_ruff_lints_the_notebooks():
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "notebooks"], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_problems_are_detected(tmp_path):
    import nbformat

    notebook = nbformat.read(str(PATHS[0]), as_version=4)
    notebook.cells[0].source = "print('not the setup cell')"
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", text="hi")]
    for cell in notebook.cells:
        cell.metadata.pop("tags", None)
    bad = tmp_path / PATHS[0].name
    nbformat.write(notebook, str(bad))
    found = "\n".join(nbtools.problems(bad))
    assert "not the shared setup cell" in found and "outputs" in found and "tagged 'parameters'" in found
    assert nbtools.strip_notebook(bad)
    assert "outputs" not in "\n".join(nbtools.problems(bad))


def test_cells_without_an_id_are_detected_and_strip_gives_them_one(tmp_path):
    """A cell pasted in as JSON by hand has no id: nbformat 4.5 wants one (nbformat.read only fills it in memory)."""
    raw = json.loads(PATHS[0].read_text(encoding="utf-8"))
    del raw["cells"][3]["id"]
    bad = tmp_path / PATHS[0].name
    bad.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert any("cell 3 has no id" in msg for msg in nbtools.problems(bad))
    assert nbtools.strip_notebook(bad)
    assert all("id" in cell for cell in json.loads(bad.read_text(encoding="utf-8"))["cells"])
    assert nbtools.problems(bad) == []


def test_exercise_cells_must_use_the_strict_mode_convention(tmp_path):
    import nbformat

    notebook = nbformat.read(str(PATHS[0]), as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("# EXERCISE: something\ndef my_x():\n    return None\n"))
    bad = tmp_path / PATHS[0].name
    nbformat.write(notebook, str(bad))
    assert any("does not wrap its function with nb.exercise" in msg for msg in nbtools.problems(bad))


def _execute(path, out, env=None, parameters=None, cwd=NOTEBOOKS):
    """papermill with the given environment changes (None removes a variable); returns the executed notebook."""
    import nbformat
    import papermill

    saved = {key: os.environ.get(key) for key in (env or {})}
    try:
        for key, value in (env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        papermill.execute_notebook(str(path), str(out), parameters=parameters or {}, kernel_name="python3",
                                   cwd=str(cwd), progress_bar=False, execution_timeout=SMOKE_LIMIT_S)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nbformat.read(str(out), as_version=4)


def _tiny_notebook(path, *sources):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata = nbtools.NB_METADATA
    notebook.cells = [nbtools.setup_cell()] + [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(notebook, str(path))
    return path


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


NO_ENV = {"COURSE_STRICT": None, "COURSE_HEADLESS": None, "MPLBACKEND": None}


@pytest.mark.slow
def test_papermill_is_detected_strict_and_headless_without_environment_variables(tmp_path):
    path = _tiny_notebook(
        tmp_path / "detect.ipynb",
        "print('modes', nb.batch_kernel(), nb.strict(), nb.is_headless())",
        "import matplotlib.pyplot as plt\n\n\ndef draw(k=2):\n    plt.plot([0, k])\n    plt.show()\n\n\n"
        "nb.slider(draw, k=(1, 5, 1))",
    )
    run = _execute(path, tmp_path / "out.ipynb", env=NO_ENV, cwd=tmp_path)
    assert "modes True True True" in _text(run.cells[1])
    outputs = run.cells[2].outputs  # the slider ran once, headless: a figure, no widget, no printed repr
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert not any(o.output_type == "execute_result" for o in outputs)


@pytest.mark.slow
def test_a_kernel_started_as_jupyter_starts_one_is_not_strict():
    # Jupyter (Lab, Notebook) starts kernels through jupyter_client without nbclient's in-memory history
    from jupyter_client.manager import start_new_kernel

    saved = {key: os.environ.pop(key, None) for key in ("COURSE_STRICT", "COURSE_HEADLESS")}
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        reply_text = []
        kc.execute_interactive("from course_lib import notebook as nb\nprint('modes', nb.batch_kernel(), nb.strict())",
                               output_hook=lambda msg: reply_text.append(msg["content"].get("text", "")),
                               timeout=120)
        assert "modes False False" in "".join(reply_text)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value


@pytest.mark.slow
def test_a_wrong_self_check_fails_under_papermill_and_only_prints_for_a_student(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    path = _tiny_notebook(tmp_path / "wrong.ipynb",
                          "import torch\n\nok = nb.cmp('right', torch.tensor([1, 2]), torch.tensor([1, 2]))",
                          "nb.cmp('planted', torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]))",
                          "print('after the check')")
    with pytest.raises(PapermillExecutionError) as err:  # papermill detected, no environment variable
        _execute(path, tmp_path / "out.ipynb", env=NO_ENV, cwd=tmp_path)
    assert err.value.ename == "CheckFailed" and "[1] yours 2, expected 2.5" in err.value.evalue
    run = _execute(path, tmp_path / "student.ipynb", env={**NO_ENV, "COURSE_STRICT": "0"}, cwd=tmp_path)
    assert "planted: WRONG" in _text(run.cells[2]) and "after the check" in _text(run.cells[3])


@pytest.mark.slow
def test_a_wrong_exercise_answer_fails_a_lesson_under_papermill(tmp_path):
    # lesson 01, exercise 1 answered with plain `nearest` (floor(i h / H)), the classic mistake: the run must fail
    # at its check cell; the same lesson as committed passes (tested by test_notebook_runs_at_smoke_size)
    import nbformat
    from papermill.exceptions import PapermillExecutionError

    lesson = NOTEBOOKS / "01_coordinate_grids.ipynb"
    notebook = nbformat.read(str(lesson), as_version=4)
    (cell,) = [c for c in notebook.cells if "def my_nearest_index" in c.source]
    cell.source = cell.source.replace("return None  # your code here",
                                      "return torch.arange(n_hr) * n_lr // n_hr  # wrong: top-left corners")
    wrong = tmp_path / lesson.name
    nbformat.write(notebook, str(wrong))
    with pytest.raises(PapermillExecutionError) as err:
        _execute(wrong, tmp_path / "out.ipynb", env={"COURSE_STRICT": "1", "COURSE_HEADLESS": "1",
                                                     "MPLBACKEND": "Agg"}, parameters={"SMOKE": True})
    assert err.value.ename == "CheckFailed" and "nearest LR pixel" in err.value.evalue


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_runs_at_smoke_size(path, tmp_path, monkeypatch):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    monkeypatch.setenv("COURSE_STRICT", "1")  # a failed nb.cmp fails the run; exercises get their solutions
    monkeypatch.setenv("COURSE_HEADLESS", "1")  # widgets run once with their defaults
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if DATA is not None:
        monkeypatch.setenv("COURSE_DATA_DIR", str(DATA))
    scratch = tmp_path / "tmp"  # the kernel's temporary directory: nothing the lesson puts there may outlive it
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(path), str(tmp_path / path.name), parameters={"SMOKE": True},
                                   kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False,
                                   execution_timeout=SMOKE_LIMIT_S)
    except PapermillExecutionError as err:
        first_line = err.source.strip().splitlines()[0] if err.source.strip() else ""
        pytest.fail(f"{path.name}: cell {err.exec_count} ({first_line!r}) raised {err.ename}: {err.evalue}",
                    pytrace=False)
    elapsed = time.perf_counter() - start
    print(f"{path.name}: {elapsed:.1f} s at smoke size")
    assert elapsed < SMOKE_LIMIT_S
    # CI runs every lesson: leftovers would fill its disk (torch's compile cache is torch's, and bounded)
    left = sorted(p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_"))
    assert left == [], f"{path.name} left temporary files behind: {left} (make folders with nb.scratch_dir)"
    import nbformat

    text = "".join(o.get("text", "") for c in nbformat.read(str(tmp_path / path.name), as_version=4).cells
                   if c.cell_type == "code" for o in c.outputs)
    assert "not done yet" not in text  # every exercise's check ran on real values
    if DATA is not None:  # with the course data present, no lesson may fall back to stand-in images silently
        assert "no benchmark data" not in text
