"""Run a lesson's code cells as a plain Python script, with parameters, where Jupyter and papermill are missing.

    python scripts/run_lesson.py notebooks/10_seed000.ipynb -p rows='["C", "F"]' -p max_steps=4000 -p record=True

The GPU machine of docs/GPU_QUEUE.md has torch but no Jupyter, papermill or nbformat; this script needs only the
standard library (and what the lesson itself imports). It does what papermill does, without a kernel:

* reads the notebook's JSON and runs its code cells in order, in one namespace, with the notebook's folder as the
  working directory (as Jupyter and the CI's papermill run do; a relative ``COURSE_DATA_DIR`` is taken from the
  caller's folder);
* after the cell tagged ``parameters`` it runs one assignment per ``-p NAME=VALUE``; VALUE is a Python literal
  (``4000``, ``True``, ``None``, ``[0, 1]``, ``"text"``) and otherwise taken as a string (``-p runs_root=/tmp/s``).
  A NAME the parameters cell does not assign is an error, so a typo never runs a whole lesson with the default;
* self-checks are strict and widgets headless (``COURSE_STRICT=1``, ``COURSE_HEADLESS=1``, as in CI); figures go
  to matplotlib's Agg backend and are closed after their cell, as Jupyter's inline backend does (``--figures
  DIR`` saves them there as PNGs first); IPython lines (``%magic``, ``!shell``) are skipped;
* prints each cell's number and run time; a failing cell stops the run with exit status 1, naming the cell.

Tested in tests/test_run_lesson.py (a small notebook, and lesson 01 in SMOKE mode).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
import traceback
from pathlib import Path

ENVIRONMENT = ("COURSE_STRICT", "COURSE_HEADLESS", "MPLBACKEND", "COURSE_DATA_DIR")  # set while a lesson runs


class LessonError(Exception):
    """A problem with the notebook or the parameters (printed as one line, exit status 2)."""


def code_cells(notebook: dict) -> list[tuple[int, str, list]]:
    """``[(cell index, source, tags), ...]`` of the notebook's code cells."""
    out = []
    for i, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") == "code":
            src = cell.get("source", "")
            out.append((i, "".join(src) if isinstance(src, list) else src, cell.get("metadata", {}).get("tags", [])))
    return out


def parse_value(text: str):
    """``-p`` values: a Python literal when ``text`` is one, else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_parameters(pairs: list[str]) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; a pair without ``=`` or with a bad name is a LessonError."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise LessonError(f"-p takes NAME=VALUE (e.g. -p max_steps=4000), got {pair!r}")
        out[name] = parse_value(value)
    return out


def assigned_names(source: str) -> list[str]:
    """The names a cell assigns at top level (``a = 1``, ``a, b = 1, 2``, ``a: int = 1``)."""
    names = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Name):
                    names.append(sub.id)
    return names


def plan(notebook: dict, parameters: dict) -> list[tuple[str, str]]:
    """The cells to run, ``[(label, source), ...]``, with the parameters' assignments after the parameters cell."""
    cells = code_cells(notebook)
    tagged = [k for k, (_, _, tags) in enumerate(cells) if "parameters" in tags]
    if parameters and not tagged:
        raise LessonError("the notebook has no cell tagged 'parameters'; run it without -p")
    steps = []
    for k, (index, source, _) in enumerate(cells):
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        steps.append((f"cell {index}", "\n".join(lines)))
        if tagged and k == tagged[0] and parameters:
            known = assigned_names(source)
            unknown = [name for name in parameters if name not in known]
            if unknown:
                raise LessonError(f"the parameters cell does not set {', '.join(unknown)}; its parameters are: "
                                  f"{', '.join(known)}")
            steps.append(("injected parameters", "\n".join(f"{k_} = {v!r}" for k_, v in parameters.items())))
    return steps


def run(path, parameters: dict | None = None, figures=None, log=print) -> dict:
    """Run the notebook at ``path`` with ``parameters``; return its namespace. Raises LessonError on a bad notebook
    or parameter, and re-raises a failing cell's exception after logging which cell it was."""
    path = Path(path).resolve()
    try:
        notebook = json.loads(path.read_text())
    except FileNotFoundError:
        raise LessonError(f"{path} does not exist; pass a lesson such as notebooks/10_seed000.ipynb") from None
    except ValueError as e:
        raise LessonError(f"{path} is not a notebook ({e}); pass an .ipynb file") from None
    steps = plan(notebook, dict(parameters or {}))
    fig_dir = Path(figures).resolve() if figures else None
    if fig_dir:
        fig_dir.mkdir(parents=True, exist_ok=True)
    namespace = {"__name__": "__main__", "__file__": str(path)}
    cwd, saved = os.getcwd(), {k: os.environ.get(k) for k in ENVIRONMENT}
    os.environ.setdefault("COURSE_STRICT", "1")
    os.environ.setdefault("COURSE_HEADLESS", "1")
    os.environ["MPLBACKEND"] = "Agg"
    if os.environ.get("COURSE_DATA_DIR"):  # a relative data folder names one beside the caller, not the notebook
        os.environ["COURSE_DATA_DIR"] = str(Path(os.environ["COURSE_DATA_DIR"]).resolve())
    os.chdir(path.parent)
    try:
        total = time.perf_counter()
        for label, source in steps:
            start = time.perf_counter()
            try:
                exec(compile(source, f"<{path.name} {label}>", "exec"), namespace)
            except BaseException:
                log(f"{path.name}: {label} failed after {time.perf_counter() - start:.1f} s")
                raise
            if "matplotlib.pyplot" in sys.modules:  # as Jupyter's inline backend: show (save) and close
                plt = sys.modules["matplotlib.pyplot"]
                for n, num in enumerate(plt.get_fignums() if fig_dir else []):
                    plt.figure(num).savefig(fig_dir / f"{path.stem}-{label.replace(' ', '')}-{n}.png", dpi=80)
                plt.close("all")
            log(f"[{label}: {time.perf_counter() - start:.1f} s]")
        log(f"{path.name}: {len(steps)} cells in {time.perf_counter() - total:.0f} s")
    finally:  # the caller's folder and environment back (a test or a script that runs several lessons)
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return namespace


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebook", help="the lesson, e.g. notebooks/10_seed000.ipynb")
    p.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter after the parameters cell (repeatable)")
    p.add_argument("--figures", help="save each cell's matplotlib figures in this folder")
    args = p.parse_args(argv)
    try:
        run(args.notebook, parse_parameters(args.parameter), figures=args.figures)
    except LessonError as e:
        print(f"run_lesson: {e}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
