"""course_lib.allocator: glibc heap reuse on a CPU (lesson 06; docs/RESULTS.md, seventh session).

The oracle is glibc's own accounting (``mallinfo2().hblkhd``, the bytes it serves by mmap): with the defaults a
64 MiB tensor is mmapped, after ``reuse_heap()`` it is not. Each check runs in a fresh Python process, since the
setting is process-wide and cannot be observed from a process that has already switched. A training run with heap
reuse gives bit-identical weights to one without it: the allocator changes speed, never numbers.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import assert_same_state
from conftest import load_state as weights

from course_lib import allocator, train
from course_lib.errors import CourseError

ROOT = Path(__file__).resolve().parents[1]
glibc_only = pytest.mark.skipif(allocator.mmapped_bytes() is None,
                                reason="heap reuse and its oracle (mallinfo2) need Linux with glibc 2.33+")


def fresh_python(code: str) -> dict:
    """Run ``code`` in a new interpreter (course_lib importable); it prints one JSON object, returned here."""
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


PROBE = """
    import json, torch
    from course_lib import allocator
    {setup}
    before = allocator.mmapped_bytes()
    t = torch.ones(16 * 1024 * 1024)  # 64 MiB, far above glibc's largest mmap threshold (32 MiB)
    during = allocator.mmapped_bytes()
    ok = float(t.sum()) == 16 * 1024 * 1024
    print(json.dumps({{"mapped": during - before, "ok": ok, "describe": allocator.describe(), "set": {result}}}))
"""


@glibc_only
def test_default_allocator_maps_a_large_tensor_and_heap_reuse_does_not():
    default = fresh_python(PROBE.format(setup="", result="None"))
    assert default["mapped"] >= 64 * 1024 * 1024 and default["ok"]
    assert "glibc's defaults" in default["describe"]
    reused = fresh_python(PROBE.format(setup="r = allocator.reuse_heap(); r2 = allocator.reuse_heap()",
                                       result="[r, r2]"))
    assert reused["set"] == [True, True]  # idempotent
    assert reused["mapped"] == 0 and reused["ok"]
    assert "kept for reuse" in reused["describe"]


@glibc_only
def test_apply_reuses_the_heap_only_on_a_cpu_and_only_when_asked():
    for mode, device, expected in (("off", "cpu", False), ("auto", "meta", False), ("on", "meta", False),
                                   ("auto", "cpu", True), ("on", "cpu", True)):
        got = fresh_python(PROBE.format(setup=f"r = allocator.apply({mode!r}, {device!r})", result="r"))
        assert got["set"] is expected, (mode, device)
        assert (got["mapped"] == 0) is expected, (mode, device)


def test_bad_mode_is_one_line():
    with pytest.raises(CourseError, match="cpu_heap must be one of auto, on, off"):
        allocator.apply("yes", "cpu")
    with pytest.raises(CourseError, match="run.cpu_heap must be auto, on or off"):
        train.load_config("diinn-edsr", ["run.cpu_heap=sometimes"])


def test_cpu_heap_may_change_on_resume():
    from course_lib.config import SAFE_ON_RESUME

    assert "run.cpu_heap" in SAFE_ON_RESUME  # it changes speed and memory, never what the run trains


TRAIN = """
    import json
    from course_lib import train, allocator
    o = json.loads({overrides!r})
    train.train("diinn-edsr", [f"{{k}}={{json.dumps(v) if isinstance(v, list) else v}}" for k, v in o.items()])
    print(json.dumps({{"reused": allocator._state["reused"]}}))
"""


@glibc_only
def test_training_with_heap_reuse_gives_identical_weights(folders, tmp_path):
    runs = {}
    for mode in ("off", "on"):
        out = tmp_path / mode
        o = {"model.encoder": "edsr-less", "run.device": "cpu", "run.amp": "off", "data.train_dir": str(folders[0]),
             "data.patch": 8, "data.scales": [2], "data.batch_size": 2, "data.num_workers": 0, "run.max_steps": 4,
             "run.seed": 3, "run.progress": False, "run.out_dir": str(out), "val.sets": [str(folders[1])],
             "val.scales": [2], "val.every": 0, "run.cpu_heap": mode}
        got = fresh_python(TRAIN.format(overrides=json.dumps(o)))
        assert got["reused"] is (mode == "on")
        assert yaml.safe_load((out / "config.yaml").read_text())["run"]["cpu_heap"] == mode
        runs[mode] = weights(out / "last.pt")
    assert runs["on"]["step"] == runs["off"]["step"] == 4
    assert_same_state(runs["on"], runs["off"])
    logs = {m: (tmp_path / m / "metrics.jsonl").read_text().splitlines() for m in runs}
    losses = {m: [json.loads(line)["loss"] for line in lines if '"loss"' in line] for m, lines in logs.items()}
    assert losses["on"] == losses["off"] and losses["on"]


def test_describe_names_the_setting():
    assert allocator.describe().startswith("memory: ")
