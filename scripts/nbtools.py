"""Keep the lesson notebooks consistent: ``python scripts/nbtools.py {sync,strip,check}``.

* ``sync``  rewrites, from ``course_lib.notebook.REPO_URL``, the first cell of every lesson (the shared setup
  cell), the "Open in Colab" badge in its title cell, and the lesson table in README.md (between the markers
  ``<!-- lessons:start -->`` and ``<!-- lessons:end -->``; docs/LESSONS.md when README.md has no markers).
* ``strip`` removes outputs, execution counts and run metadata (papermill, widgets) from committed notebooks and
  gives every cell without an id one (nbformat 4.5).
* ``check`` reports what tests/test_notebooks.py checks and exits with status 1 on any problem: no outputs,
  an id on every cell, the setup cell first, the right badge, one ``parameters``-tagged cell defining ``SMOKE``, a
  stated run time that starts with a number and a unit, every ``# EXERCISE`` cell wrapped with ``nb.exercise`` (the
  strict-mode convention of notebooks/README.md), and the lesson table in sync.

A lecturer who forks the course changes ``REPO_URL`` / ``REPO_REF`` in course_lib/notebook.py, then runs
``sync``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import notebook as nb  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
LESSONS_MD = ROOT / "docs" / "LESSONS.md"
START, END = "<!-- lessons:start -->", "<!-- lessons:end -->"
BADGE_RE = re.compile(r"^\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]\(.*\)$",
                      re.M)
RUNTIME_RE = re.compile(r'expected_runtime\(\s*SMOKE\s*,\s*cpu="([^"]*)"\s*,\s*gpu="([^"]*)"\s*\)')
NB_METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}

# The course's twelve lessons: (number, notebook file, title). A lesson is "ready" when its notebook exists.
LESSONS = [
    ("00", "00_sisr_problem.ipynb", "The SISR problem and how it is measured"),
    ("01", "01_coordinate_grids.ipynb", "Coordinate grids: pixels as squares, global and local coordinates"),
    ("02", "02_image_as_function.ipynb", "An image as a function: fitting one image with an INR"),
    ("03", "03_feature_unfolding.ipynb", "Feature unfolding and nearest queries"),
    ("04", "04_modulated_periodic_decoder.ipynb", "The modulated periodic decoder"),
    ("05", "05_encoders.ipynb", "Encoders"),
    ("06", "06_training.ipynb", "Training on a GPU"),
    ("07", "07_evaluation.ipynb", "Evaluation (Tables 1-4)"),
    ("08", "08_ablations.ipynb", "Ablations (Table 5)"),
    ("09", "09_liif_metasr.ipynb", "LIIF, LIIF+SIREN and Meta-SR"),
    ("10", "10_seed000.ipynb", "A research project on DIINN, re-examined (seed paper 000)"),
    ("11", "11_fixed_scale.ipynb", "Fixed-scale SR and perceptual losses (seed paper 004)"),
]


def notebook_paths() -> list[Path]:
    """Every lesson notebook in notebooks/ (sorted)."""
    return sorted(p for p in NOTEBOOKS.glob("*.ipynb") if not p.name.startswith("."))


def read(path: Path):
    return nbformat.read(str(path), as_version=4)


def write_if_changed(path: Path, notebook) -> bool:
    text = nbformat.writes(notebook) + "\n"
    if path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def setup_cell():
    cell = nbformat.v4.new_code_cell(nb.setup_cell_source().rstrip("\n"))
    cell.metadata = {"tags": ["setup"]}
    cell.id = "setup"
    return cell


def source_of(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def runtime_of(notebook) -> tuple[str, str] | None:
    """The (cpu, gpu) run times a lesson states via ``nb.expected_runtime(SMOKE, cpu=..., gpu=...)``."""
    for cell in notebook.cells:
        match = RUNTIME_RE.search(source_of(cell)) if cell.cell_type == "code" else None
        if match:
            return match.group(1), match.group(2)
    return None


# ----------------------------------------------------------------------------------------------------

def sync_notebook(path: Path) -> bool:
    """Rewrite the setup cell and the badge of one notebook; True when the file changed."""
    notebook = read(path)
    cells = notebook.cells
    if cells and cells[0].cell_type == "code" and "setup" in cells[0].metadata.get("tags", []):
        cells[0] = setup_cell()
    else:
        cells.insert(0, setup_cell())
    badge = nb.colab_badge(path.name)
    if len(cells) > 1 and cells[1].cell_type == "markdown":
        text = source_of(cells[1])
        cells[1].source = BADGE_RE.sub(badge, text) if BADGE_RE.search(text) else f"{badge}\n\n{text}"
    else:
        cells.insert(1, nbformat.v4.new_markdown_cell(badge))
    notebook.metadata = {**NB_METADATA, **{k: v for k, v in notebook.metadata.items() if k not in NB_METADATA
                                           and k not in ("papermill", "widgets")}}
    return write_if_changed(path, notebook)


def lesson_table() -> str:
    """The Markdown lesson table (README.md / docs/LESSONS.md), generated from LESSONS and the notebooks."""
    lines = ["| # | lesson | status | run time (CPU / GPU) | open |", "| --- | --- | --- | --- | --- |"]
    for number, name, title in LESSONS:
        path = NOTEBOOKS / name
        if path.exists():
            runtime = runtime_of(read(path))
            time_text = f"{runtime[0]} / {runtime[1]}" if runtime else "not stated"
            link, badge = f"[{title}](notebooks/{name})", nb.colab_badge(name)
            lines.append(f"| {number} | {link} | ready | {time_text} | {badge} |")
        else:
            lines.append(f"| {number} | {title} | planned | | |")
    return "\n".join(lines)


def lesson_block() -> str:
    note = ("CPU run times are measured at the default sizes on 2 idle cores of an AVX2-only x86 CPU in fp32 "
            "(`docs/RESULTS.md`); GPU times are estimates (no lesson has been timed on a GPU yet). Every lesson "
            "also runs in under a minute with `SMOKE = True` in its parameters cell. The badges open the lessons "
            "in Colab, "
            f"installed from {nb.REPO_URL} (`course_lib.notebook.REPO_URL`).")
    return f"{START}\n{lesson_table()}\n\n{note}\n{END}"


def readme_target() -> Path:
    return README if README.exists() and START in README.read_text(encoding="utf-8") else LESSONS_MD


def sync_table() -> bool:
    target = readme_target()
    block = lesson_block()
    if target == README:
        text = README.read_text(encoding="utf-8")
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1] if END in rest else ""
        new = head + block + tail
    else:
        new = f"# Lessons\n\n{block}\n"
    if target.exists() and target.read_text(encoding="utf-8") == new:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(new, encoding="utf-8")
    return True


def strip_notebook(path: Path) -> bool:
    """Remove outputs, execution counts and run metadata; True when the file changed."""
    notebook = read(path)
    for cell in notebook.cells:
        if "id" not in cell:  # nbformat 4.5 wants one per cell (a cell pasted in by hand has none)
            cell["id"] = uuid.uuid4().hex[:8]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime"):
            cell.metadata.pop(key, None)
        if not cell.metadata.get("tags"):
            cell.metadata.pop("tags", None)
    for key in ("papermill", "widgets"):
        notebook.metadata.pop(key, None)
    return write_if_changed(path, notebook)


# ----------------------------------------------------------------------------------------------------

def problems(path: Path) -> list[str]:
    """Everything wrong with one committed notebook (empty list when it is fine)."""
    found = []
    notebook = read(path)
    try:
        nbformat.validate(notebook)
    except nbformat.ValidationError as err:
        found.append(f"{path.name}: invalid notebook: {err.message}")
    cells = notebook.cells
    raw_cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])  # nbformat.read fills missing ids in
    for i, cell in enumerate(raw_cells):
        if "id" not in cell:
            found.append(f"{path.name}: cell {i} has no id (run nbtools.py strip, which gives it one)")
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            found.append(f"{path.name}: cell {i} has outputs or an execution count (run nbtools.py strip)")
    if not cells or source_of(cells[0]) != nb.setup_cell_source().rstrip("\n"):
        found.append(f"{path.name}: the first cell is not the shared setup cell (run nbtools.py sync)")
    if len(cells) < 2 or nb.colab_badge(path.name) not in source_of(cells[1]):
        found.append(f"{path.name}: the title cell lacks the Colab badge for {nb.REPO_URL} (run sync)")
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        found.append(f"{path.name}: needs exactly one cell tagged 'parameters', found {len(tagged)}")
    elif not re.search(r"^SMOKE\s*=\s*False\b", source_of(tagged[0]), re.M):
        found.append(f"{path.name}: the parameters cell must set `SMOKE = False` (the full-size default)")
    runtime = runtime_of(notebook)
    if runtime is None:
        found.append(f'{path.name}: no `nb.expected_runtime(SMOKE, cpu="...", gpu="...")` call')
    elif nb.runtime_seconds(runtime[0]) is None:
        found.append(f'{path.name}: the stated CPU time {runtime[0]!r} must start with a number and a unit '
                     '("175 s (2 cores)", "4 min")')
    for i, cell in enumerate(cells):
        text = source_of(cell)
        if cell.cell_type == "code" and text.lstrip().startswith("# EXERCISE") and "nb.exercise(" not in text:
            found.append(f"{path.name}: exercise cell {i} does not wrap its function with nb.exercise(lesson, name, "
                         "fn) (notebooks/README.md: strict mode)")
    if path.name not in {name for _, name, _ in LESSONS}:
        found.append(f"{path.name}: not in the LESSONS table of scripts/nbtools.py")
    return found


def table_problems() -> list[str]:
    target = readme_target()
    if not target.exists() or lesson_block() not in target.read_text(encoding="utf-8"):
        return [f"{target.relative_to(ROOT)}: the lesson table is out of date (run nbtools.py sync)"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["sync", "strip", "check"])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or notebook_paths()
    if args.command == "sync":
        changed = [p.name for p in paths if sync_notebook(p)]
        if sync_table():
            changed.append(str(readme_target().relative_to(ROOT)))
        print(f"sync: {len(changed)} file(s) rewritten" + (f": {', '.join(changed)}" if changed else ""))
        return 0
    if args.command == "strip":
        changed = [p.name for p in paths if strip_notebook(p)]
        print(f"strip: {len(changed)} notebook(s) cleaned" + (f": {', '.join(changed)}" if changed else ""))
        return 0
    found = [msg for p in paths for msg in problems(p)] + table_problems()
    for msg in found:
        print(msg)
    print(f"check: {len(paths)} notebook(s), {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
