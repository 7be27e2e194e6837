"""Writing files so that nothing a user saved is lost (images, models, train and evaluate write through it).

* :func:`atomic_write` writes to a temporary file in the target's folder, flushes it to disk and renames it over the
  target (``os.replace``): a crash or a kill leaves either the old file or the new one, never half of one. The new
  file's mode follows the umask, as a file made by ``open`` would (``tempfile`` alone gives 0600).
* :func:`check_output` and :func:`check_output_dir` check an output path *before* any work is done: a directory
  where a file is wanted, a path under a file, a folder without write permission, the input file itself, and (when
  the caller asks) an existing file that only ``--force`` may replace.
* :func:`clean_stale_temps` removes the temporary files that a killed :func:`atomic_write` left behind.

Notebook: 00_sisr_problem (saving images); docs/TRAINING.md (checkpoints).
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

from .errors import CourseError


def umask() -> int:
    """This process's umask (read from /proc where possible: setting and restoring it races with other threads).

    Notebook: 06_training (checkpoints)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def temp_pattern(name: str) -> str:
    """The glob pattern of :func:`atomic_write`'s temporary files for a target ``name``. Notebook: 06_training."""
    return f"{glob.escape(name)}.*.tmp"


def atomic_write(path, write, mode: str = "wb") -> Path:
    """Call ``write(f)`` on a temporary file next to ``path``, then rename it to ``path``; returns ``path``.

    The temporary file is ``<name>.<random>.tmp`` in the same folder (so the rename is atomic) and is removed when
    ``write`` fails. Parent folders are created. The file gets mode ``0o666 & ~umask``. Notebook: 00_sisr_problem.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def clean_stale_temps(folder, names) -> list[Path]:
    """Remove the temporary files (``<name>.*.tmp``) of ``names`` in ``folder`` left by a killed writer.

    Returns the removed paths. Call it only where no other process is writing these files (the trainer does at the
    start of a run). Notebook: 06_training.
    """
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for name in names:
        for p in folder.glob(temp_pattern(name)):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _check_ancestors(start: Path, path: Path, what: str) -> None:
    """The nearest existing folder at or above ``start`` must be a folder this process may write in."""
    parent = start
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise CourseError(f"{what} {path} lies under {parent}, which is a file, not a folder; choose another path")
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        raise CourseError(f"cannot write {what} {path}: no permission to write in {parent}; choose another folder")


def check_output(path, what: str = "output", force: bool | None = None, src=None) -> Path:
    """Refuse an output file path before any work is done, with one line naming the problem and the fix.

    Refused: a directory; a path under a file; a folder without write permission; the file ``src`` itself (writing it
    would destroy the input); with ``force=False`` an existing file (the message names ``--force``). ``force=None``:
    an existing file may be replaced (atomically). Returns ``Path(path)``. Notebook: 04_modulated_periodic_decoder.
    """
    path = Path(path)
    if path.is_dir():
        raise CourseError(f"{what} {path} is a directory; give a file name inside it")
    _check_ancestors(path.parent, path, what)
    if src is not None and path.exists() and Path(src).exists() and os.path.samefile(src, path):
        raise CourseError(f"{what} {path} is the input file: writing it would destroy the input; "
                          "choose another output name")
    if force is False and path.exists():
        raise CourseError(f"{what} {path} already exists; pass --force to replace it, or choose another name")
    return path


def check_output_dir(path, what: str = "output folder") -> Path:
    """Refuse a folder path that is a file or lies under a file (before any work is done). Notebook: 06_training."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CourseError(f"{what} {path} is a file, not a folder; choose another path")
    _check_ancestors(path, path, what)
    return path
