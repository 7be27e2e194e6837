"""Issue 15: nothing a user saved is lost, runs that fail do not look successful, every mistake is one line.

Trainer runs are tiny (EDSR-LESS, 8x8 LR patches at x2, 2 images per step, CPU, fp32), as in tests/test_train.py.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from course_lib import models, train
from course_lib.__main__ import main
from course_lib.errors import CourseError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import tiny  # noqa: E402  (the same tiny runs as test_train; data: conftest's `folders`)

REPO = Path(__file__).resolve().parents[1]


def cli_overrides(o: dict) -> list[str]:
    return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in o.items()]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 14, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def umask():
    """Set the process umask for a test, restoring it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda value: os.umask(value)
    os.umask(old)


# ---------------------------------------------------------------------------------------------- 1. data loss
def test_a_new_run_refuses_a_folder_with_best_pt_or_a_log_but_no_last_pt(folders, tmp_path):
    out = tmp_path / "run"
    train.train("diinn-edsr", tiny(folders, out))
    (out / "last.pt").unlink()
    best, log = (out / "best.pt").read_bytes(), (out / "metrics.jsonl").read_text()
    with pytest.raises(CourseError) as err:
        train.train("diinn-edsr", tiny(folders, out, **{"run.max_steps": 6}))
    msg = str(err.value)
    assert "best.pt" in msg and "metrics.jsonl" in msg and "--resume" in msg and "run.out_dir" in msg
    assert "\n" not in msg
    with pytest.raises(CourseError, match="earlier run"):  # resume="auto" without last.pt would start afresh: refused
        train.train("diinn-edsr", tiny(folders, out, **{"run.max_steps": 6}), resume="auto")
    assert (out / "best.pt").read_bytes() == best and (out / "metrics.jsonl").read_text() == log
    (out / "best.pt").unlink()
    with pytest.raises(CourseError, match=r"metrics\.jsonl of an earlier run .*run\.out_dir"):
        train.train("diinn-edsr", tiny(folders, out))
    assert (out / "metrics.jsonl").read_text() == log


def test_truncating_the_log_replaces_the_file_instead_of_rewriting_it(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 11)))
    before = tmp_path / "before.jsonl"
    os.link(log, before)  # a second name of the same file: a rewrite in place would change it too
    train._truncate_log(log, 5)
    assert [json.loads(ln)["step"] for ln in log.read_text().splitlines()] == [1, 2, 3, 4, 5]
    assert len(before.read_text().splitlines()) == 10  # the old file was never opened for writing
    assert not list(tmp_path.glob("*.tmp"))


def test_a_run_removes_stale_temp_files_of_a_killed_save(folders, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = [out / "last.pt.k2j4h1x9.tmp", out / "best.pt.abcdefgh.tmp", out / "metrics.jsonl.q1w2e3r4.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    keep = out / "notes.tmp"
    keep.write_text("mine")
    train.train("diinn-edsr", tiny(folders, out, **{"run.max_steps": 2, "val.sets": []}))
    assert not any(p.exists() for p in stale) and keep.read_text() == "mine"


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoints_and_images_follow_the_umask(tmp_path, umask, mask, mode):
    from course_lib.images import save_image

    umask(mask)
    path = models.save(models.build("diinn", encoder="edsr-less"), tmp_path / "m.pt")
    assert path.stat().st_mode & 0o777 == mode
    img = save_image(torch.rand(3, 4, 5), tmp_path / "a.png")
    assert img.stat().st_mode & 0o777 == mode
    plain = tmp_path / "plain.txt"  # the oracle: a file made by open()
    plain.write_text("x")
    assert plain.stat().st_mode & 0o777 == mode


def test_training_checkpoints_follow_the_umask(folders, tmp_path, umask):
    umask(0o022)
    train.train("diinn-edsr", tiny(folders, tmp_path / "r", **{"run.max_steps": 2}))
    for name in ("last.pt", "best.pt", "metrics.jsonl", "config.yaml"):
        assert (tmp_path / "r" / name).stat().st_mode & 0o777 == 0o644, name


# ---------------------------------------------------------------------------------------------- 2. false success
@pytest.mark.parametrize("item", ["optim.lr=inf", "optim.lr=nan", "optim.lr=.inf", "optim.gamma=nan",
                                  "data.scales=[2, nan]", "data.scale_max=inf", "run.max_minutes=nan",
                                  "optim.grad_clip=inf", "val.scales=[.inf]", "optim.milestones=[0.5, nan]",
                                  "optim.lr=1e39"])  # 1e39 is finite in Python but not in float32 (Adam's overflow)
def test_every_float_in_the_config_must_be_finite(item):
    key = item.split("=")[0]
    with pytest.raises(CourseError, match=rf"config key {key} must be a finite number"):
        train.load_config("diinn-edsr", [item])


def _nan_from_step(monkeypatch, bad: int):
    """Make the loss NaN from step ``bad`` on (the weights stay those of a finite run: only the loss is poisoned)."""
    real, calls = train.Trainer.step, []

    def step(self, batch):
        calls.append(1)
        loss = real(self, batch)
        return loss * float("nan") if len(calls) >= bad else loss

    monkeypatch.setattr(train.Trainer, "step", step)


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_keeps_best_pt(folders, tmp_path, monkeypatch):
    out = tmp_path / "r"
    _nan_from_step(monkeypatch, 7)
    with pytest.raises(CourseError) as err:
        train.train("diinn-edsr", tiny(folders, out, **{"val.every": 3}))
    msg = str(err.value)
    assert "not finite" in msg and "step 7" in msg and "\n" not in msg
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["step"] in (3, 6) and np.isfinite(best["best_psnr"])  # best.pt of a finite step, not overwritten
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 4  # the last save before the NaN
    lines = train.read_metrics(out)
    assert max(r["step"] for r in lines) == 6 and all(np.isfinite(r.get("loss", 0.0)) for r in lines)


def test_a_diverging_run_ends_with_one_line_and_exit_2(folders, tmp_path, capsys):
    """lr 1e30: the first update leaves weights near 1e30 (finite, saved at step 1), the next loss overflows."""
    o = tiny(folders, tmp_path / "r", **{"optim.lr": 1e30, "run.max_steps": 6, "run.save_every": 1})
    assert main(["train", "--config", "diinn-edsr", "--override", *cli_overrides(o)]) == 2
    err = one_line(capsys)
    assert "training stopped" in err and "not finite" in err and "step 2" in err, err
    assert torch.load(tmp_path / "r" / "last.pt", weights_only=True)["step"] == 1  # nothing saved after step 1


def test_a_learning_rate_that_overflows_adam_is_one_line(folders, tmp_path, capsys):
    """lr 1e38 fits float32, but Adam's first step lr / (1 - beta1) = 1e39 does not: torch raises deep inside Adam."""
    o = tiny(folders, tmp_path / "r", **{"optim.lr": 1e38, "run.max_steps": 6})
    assert main(["train", "--config", "diinn-edsr", "--override", *cli_overrides(o)]) == 2
    err = one_line(capsys)
    assert "step 1" in err and "overflows float32 with optim.lr=1e+38" in err, err


@pytest.fixture(scope="module")
def stopped_run(folders, tmp_path_factory):
    """A run stopped at step 4 of 8 (max_steps 8, lr 1e-4): its folder, to resume with changes."""
    out = tmp_path_factory.mktemp("stopped")
    train.train("diinn-edsr", tiny(folders, out, **{"run.max_steps": 8, "run.stop_at": 4, "val.sets": []}))
    return out


@pytest.mark.parametrize("key,value", [("run.max_steps", 40), ("run.seed", 4), ("data.batch_size", 3),
                                       ("optim.lr", 5e-5), ("optim.milestones", [0.5]), ("data.patch", 6),
                                       ("run.max_minutes", 5.0), ("val.limit", 1)])
def test_resume_refuses_a_change_of_meaning_naming_the_key(folders, stopped_run, tmp_path, key, value):
    config = (stopped_run / "config.yaml").read_text()
    o = tiny(folders, stopped_run, **{"run.max_steps": 8, "val.sets": [], key: value})
    with pytest.raises(CourseError) as err:
        train.train("diinn-edsr", o, resume=True)
    msg = str(err.value)
    assert f"changed {key} (" in msg and "another run.out_dir" in msg and "\n" not in msg
    assert (stopped_run / "config.yaml").read_text() == config


def test_resume_allows_safe_changes_and_never_rewrites_config_yaml(folders, tmp_path):
    out = tmp_path / "r"
    base = tiny(folders, out, **{"run.max_steps": 8, "val.sets": []})
    train.train("diinn-edsr", {**base, "run.stop_at": 3})
    config = (out / "config.yaml").read_text()
    safe = {"run.stop_at": 6, "run.log_every": 3, "run.save_every": 2, "run.progress": True, "val.every": 5,
            "data.num_workers": 0, "name": "renamed"}
    result = train.train("diinn-edsr", {**base, **safe}, resume=True)
    assert result.step == 6 and (out / "config.yaml").read_text() == config
    assert yaml.safe_load(config)["run"]["stop_at"] == 3  # the run's config as it was started
    ckpt = torch.load(out / "last.pt", weights_only=True)
    # the schedule of max_steps 8: milestones round(8 x 0.2, 0.4, 0.6, 0.8) = 2, 3, 5, 6, all passed at step 6
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.5**4, rel=1e-12)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_and_exits_128_plus_the_signal(folders, tmp_path, sig, code):
    # SIGTERM too: `kill PID`, a job scheduler, and background jobs of a non-interactive shell (which ignore SIGINT)
    out = tmp_path / "r"
    o = tiny(folders, out, **{"run.max_steps": 100000, "run.log_every": 1, "run.save_every": 100000, "val.sets": []})
    proc = subprocess.Popen([sys.executable, "-m", "course_lib", "train", "--config", "diinn-edsr", "--override",
                             *cli_overrides(o)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log, t0 = out / "metrics.jsonl", time.time()
    while not (log.is_file() and log.read_text().strip()) and proc.poll() is None and time.time() - t0 < 240:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == code, (stdout, stderr)
    step = torch.load(out / "last.pt", weights_only=True)["step"]
    assert step >= 1 and f"stopped at step {step}" in stdout and "Traceback" not in stderr


@pytest.mark.parametrize("name", ["diinn", "bicubic"])
def test_upscale_refuses_non_finite_pixels_and_0_255_images(name):
    model = models.build(name, **({"encoder": "edsr-less"} if name == "diinn" else {}))
    x = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(0))
    with pytest.raises(CourseError, match="NaN or infinite"):
        model.upscale(x.clone().index_put_((torch.tensor(0),) * 4, torch.tensor(float("nan"))), scale=2)
    with pytest.raises(CourseError, match="NaN or infinite"):
        model.upscale(torch.where(x > 0.5, torch.inf, x), scale=2)
    with pytest.raises(CourseError, match=r"values up to .* but the model expects \[0, 1\]: divide .* by 255"):
        model.upscale(x * 255, scale=2)
    with pytest.raises(CourseError, match=r"values down to -.*lr \* 0\.5 \+ 0\.5"):
        model.upscale(x * 2 - 1, scale=2)
    with pytest.raises(CourseError, match=r"clamp"):
        model.upscale(x * 1.05, scale=2)


@pytest.mark.parametrize("name", ["diinn", "bicubic"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_upscale_converts_other_float_dtypes_to_the_models(name, dtype):
    torch.manual_seed(0)
    model = models.build(name, **({"encoder": "edsr-less"} if name == "diinn" else {}))
    x = torch.rand(1, 3, 6, 7).to(dtype)
    sr = model.upscale(x, scale=1.5)
    oracle = model.upscale(x.float(), scale=1.5)  # the model's dtype, fp32
    assert sr.dtype == dtype and sr.shape == (1, 3, 9, 10)
    assert torch.equal(sr, oracle.to(dtype))


# ---------------------------------------------------------------------------------------------- 3. one line
def _damaged(tmp_path, edit) -> Path:
    torch.manual_seed(0)
    path = models.save(models.build("diinn", encoder="edsr-less"), tmp_path / "m.pt")
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("edit,msg", [
    (lambda c: c["config"].update(encoder="edsr-baseline"), r"weights of another shape \(e\.g\. encoder\."),
    (lambda c: c["state_dict"].pop("decoder.last_layer.weight"), r"1 weights missing \(e\.g\. decoder\.last_layer"),
    (lambda c: c["state_dict"].update(extra=torch.zeros(1)), r"1 unexpected weights \(e\.g\. extra\)"),
    (lambda c: c.update(config="diinn"), r"its config is a str, not a dict"),
    (lambda c: c.update(state_dict=[1, 2]), r"its state_dict is a list, not a dict"),
    (lambda c: c["config"].pop("name"), r"names no model"),
    (lambda c: c["config"].update(variant="z"), r"config cannot be built: unknown DIINN variant 'z'"),
])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, capsys, edit, msg, png):
    path = _damaged(tmp_path, edit)
    with pytest.raises(CourseError, match=msg) as err:
        models.load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert main(["upscale", str(png), str(tmp_path / "o.png"), "--scale", "2", "--model", str(path)]) == 2
    assert str(path) in one_line(capsys)


@pytest.mark.parametrize("item,msg", [
    ("run.seed=-1", r"run\.seed must be >= 0"),
    ("data.scales=[nan]", r"config key data\.scales must be a finite number"),
    ("val.scales=[0]", r"val\.scales must be scales >= 1"),
    ("val.scales=[2, 0.5]", r"val\.scales must be scales >= 1"),
    ("data.scales=[2, [3", r"override 'data\.scales=\[2, \[3': the value is not valid YAML \(line 1"),
    # diinn-edsr: 48-px patches; LIIF's recipe at scale_min 1 cuts 48 x 48 = 2,304 HR pixels at the least
    (["data.recipe=liif", "data.sample_q=2305"],
     r"data\.sample_q=2305 is more than the 2304 HR pixels of the smallest crop \(data\.patch 48 at data\.scale_min "
     r"1\); set data\.sample_q <= 2304 \(LIIF's rule: patch x patch = 2304\)"),
    (["data.recipe=liif", "data.patch=20", "data.scale_min=1.5", "data.sample_q=901"], r"more than the 900 HR pixels"),
])
def test_bad_config_values_are_one_line_naming_the_key(item, msg):
    with pytest.raises(CourseError, match=msg) as err:
        train.load_config("diinn-edsr", item if isinstance(item, list) else [item])
    assert "\n" not in str(err.value)


def test_a_yaml_error_gives_the_line_number(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrun:\n  max_steps: [1\n  seed: 2\n")
    with pytest.raises(CourseError, match=r"bad\.yaml is not valid YAML: line 4, column 7: expected ',' or ']'"):
        train.load_config(bad)
    assert main(["train", "--config", str(bad)]) == 2
    assert "line 4" in one_line(capsys)


def test_directories_where_files_are_expected_say_so(tmp_path, capsys, png):
    from course_lib.images import load_image

    with pytest.raises(CourseError, match="is a directory"):
        load_image(tmp_path)
    assert main(["upscale", str(tmp_path), str(tmp_path / "o.png"), "--scale", "2"]) == 2
    assert "is a directory" in one_line(capsys)
    with pytest.raises(CourseError, match="is a directory"):
        train.load_config(tmp_path)
    with pytest.raises(CourseError, match="checkpoint .* is a directory"):
        models.load(tmp_path)
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "is a directory" in one_line(capsys)


def test_bicubic_refuses_a_bad_chunk_size():
    bicubic = models.build("bicubic")
    for bad in (-5, 0):
        with pytest.raises(CourseError, match="chunk_size must be a positive"):
            bicubic.upscale(torch.rand(1, 3, 4, 4), scale=2, chunk_size=bad)


def test_a_run_folder_under_a_file_is_refused_before_any_work(folders, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(train, "build_dataset", lambda cfg: pytest.fail("work started"))
    with pytest.raises(CourseError, match=r"lies under .*file, which is a file"):
        train.train("diinn-edsr", tiny(folders, tmp_path / "file" / "run"))
    with pytest.raises(CourseError, match=r"run\.out_dir .*file is a file, not a folder"):
        train.train("diinn-edsr", tiny(folders, tmp_path / "file"))


# ------------------------------------------------------------------ memory: the real peak, and allocation failures
RSS_PROBE = r"""
import re, sys, torch
from course_lib import models
def status(key):  # kB -> bytes
    return int(re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
torch.manual_seed(0); torch.set_num_threads(1)
model = models.build("diinn", encoder=sys.argv[1])
h, w, H, W = (int(v) for v in sys.argv[2:6])
model.upscale(torch.rand(1, 3, 8, 8), size=(16, 16), chunk_size=2048)  # warm up: lazy allocations, kernels
x = torch.rand(1, 3, h, w)
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the present resident size
before = status("VmRSS")
y = model.upscale(x, size=(H, W), chunk_size=2048, progress=False)
print(status("VmHWM") - before, models.peak_bytes(model, (h, w), (H, W), 1, 2048), 3 * H * W * 4)
"""


@pytest.mark.parametrize("encoder,sizes", [("edsr-baseline", (200, 200, 300, 300)),
                                           ("rdn", (96, 96, 192, 192)),
                                           ("edsr-less", (64, 64, 1000, 1000))])
def test_the_memory_estimate_covers_the_measured_peak(encoder, sizes):
    """Oracle: the growth of the resident memory's peak (VmHWM, reset just before) during one upscale in a fresh
    process. The estimate must cover it and stay within 2.5x of it; the output image alone (the old estimate) is far
    below it."""
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, encoder, *map(str, sizes)], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    measured, estimate, image = (int(v) for v in out.stdout.split())
    assert measured <= estimate <= 2.5 * measured, (measured, estimate, image)
    assert image < measured / 2


def test_an_upscale_that_cannot_fit_names_the_size_before_it_starts(monkeypatch):
    model = models.build("diinn", encoder="edsr-baseline")
    need = models.peak_bytes(model, (256, 256), (512, 512))
    assert need > 50 * (3 * 512 * 512 * 4)  # the LR-size features dominate, not the 3 MiB output
    monkeypatch.setattr(models, "free_bytes", lambda device: 20 * 3 * 512 * 512 * 4)
    monkeypatch.setattr(model.decoder, "prepare", lambda feat: pytest.fail("work started"))
    with pytest.raises(CourseError, match=r"output of 512x512 pixels needs about 0\.\d GiB at its peak"):
        model.upscale(torch.rand(1, 3, 256, 256), size=(512, 512))


def test_an_allocation_failure_is_one_line_naming_the_size(monkeypatch):
    model = models.build("diinn", encoder="edsr-less")

    def fail(feat):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 123456789 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(model.decoder, "prepare", fail)
    with pytest.raises(CourseError, match=r"out of memory making an output of 33x40 pixels on cpu"):
        model.upscale(torch.rand(1, 3, 10, 12), size=(33, 40))
    monkeypatch.setattr(model.decoder, "prepare", lambda feat: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="other"):  # any other error is not dressed up as a memory problem
        model.upscale(torch.rand(1, 3, 10, 12), size=(33, 40))


def test_a_real_allocation_failure_under_a_memory_limit_is_one_line(png, tmp_path):
    """``ulimit -v`` (RLIMIT_AS) of 8 GiB (torch alone maps about 3.2 GiB) and a 40000x40000 output (19 GiB): with
    the early check switched off, the allocator itself fails."""
    code = ("import sys; from course_lib import models; models._check_fits = lambda *a: None; "
            "from course_lib.__main__ import main; sys.exit(main(sys.argv[1:]))")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))

    out = subprocess.run([sys.executable, "-c", code, "upscale", str(png), str(tmp_path / "o.png"), "--size",
                          "40000x40000", "--model", "bicubic"], cwd=REPO, capture_output=True, text=True,
                         preexec_fn=limit, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2, out.stderr
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and "out of memory making an output of 40000x40000 pixels" in err, err


# ---------------------------------------------------------------------------------------------- 4. data/
def test_the_data_folder_has_a_readme_and_keeps_images_out_of_git():
    readme = (REPO / "data" / "README.md").read_text()
    for text in ("COURSE_DATA_DIR", "python -m course_lib data list", "data fetch", "data verify", "<Set>/HR"):
        assert text in readme, text
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "data/Set5/HR/baby.png", "data/T91/HR/t1.bmp",
                              "data/DIV2K/HR/0801.png"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert len(ignored) == 3
    kept = subprocess.run(["git", "check-ignore", "--no-index", "data/README.md"], cwd=REPO, capture_output=True)
    assert kept.returncode == 1  # README.md is not ignored
