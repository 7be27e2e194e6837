"""course_lib.notebook: cmp, the exercise solutions (checked against the library), sliders, setup cell."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import coords, decoders, features, inr, metrics, models
from course_lib import notebook as nb
from course_lib.errors import CourseError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ cmp
@pytest.fixture(autouse=True)
def _student_mode(monkeypatch):
    """Every test starts as a student in Jupyter would: not strict (tests that want strict mode set it)."""
    monkeypatch.setenv("COURSE_STRICT", "0")


@pytest.mark.parametrize(
    "mine, ref, verdict, ok",
    [
        (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]), "exact", True),
        (np.array([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-9], dtype=torch.float64), "close (max diff 1e-09)",
         True),
        (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]),
         "WRONG (max diff 0.5, 1 of 2 entries differ, shapes (2,)): [1] yours 2, expected 2.5", False),
        (torch.zeros(2, 3), torch.zeros(3, 2), "WRONG (shapes (2, 3) vs reference (3, 2))", False),
        (None, torch.zeros(2), "not done yet", False),
        (3, 3.0, "exact", True),
        ([1, 2, 3], np.array([1, 2, 3]), "exact", True),
        (0.1 + 0.2, 0.3, "close", True),
        (0.5, 0.3, "WRONG (max diff 0.2, 1 of 1 entries differ, shapes ()): yours 0.5, expected 0.3", False),
        (torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0]), "exact", True),
        (torch.tensor([True, False, True]), torch.tensor([True, True, True]),
         "WRONG (1 of 3 entries differ, shapes (3,)): [1] yours False, expected True", False),
        (torch.tensor([float("nan")]), torch.tensor([1.0]), "WRONG (max diff inf", False),
        # a float answer for an integer index is not "exact", even with equal values
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), "WRONG dtype: yours is float32, the reference is int64 "
         "(integers); the values agree, convert with .long()", False),
        (torch.tensor([0, 1]), torch.tensor([False, True]), "WRONG dtype: yours is int64, the reference is bool",
         False),
        (torch.tensor([0, 1], dtype=torch.int32), torch.tensor([0, 1]), "exact", True),  # int32 vs int64: fine
        (torch.tensor([0, 1]), torch.tensor([0.0, 1.0]), "exact", True),  # an integer answer to a float question
    ],
)
def test_cmp_verdicts(capsys, mine, ref, verdict, ok):
    result = nb.cmp("x", mine, ref)
    assert bool(result) is ok and result == ok and repr(result) == repr(ok)
    assert capsys.readouterr().out.startswith(f"x: {verdict}")
    assert result._ipython_display_() is None  # a notebook cell ending in nb.cmp(...) shows only the line


def test_cmp_names_the_differing_entries_and_their_expected_values(capsys):
    ref = torch.arange(12.0).reshape(3, 4)
    mine = ref.clone()
    mine[0, 1], mine[2, 3] = 7.0, -1.0  # two wrong entries among twelve
    assert not nb.cmp("m", mine, ref)
    out = capsys.readouterr().out
    assert "2 of 12 entries differ" in out
    assert "[0, 1] yours 7, expected 1" in out and "[2, 3] yours -1, expected 11" in out
    many = torch.zeros(10)
    assert not nb.cmp("v", many, torch.ones(10))
    assert "... (6 more)" in capsys.readouterr().out  # the first four, then how many more


def test_cmp_tolerances_and_grad_tensors(capsys):
    a = torch.tensor([1.0], requires_grad=True)
    assert not nb.cmp("t", a * 1.01, torch.tensor([1.0]))
    assert nb.cmp("t", a * 1.01, torch.tensor([1.0]), atol=0.02)
    assert nb.cmp("t", torch.tensor([101.0]), torch.tensor([100.0]), atol=0, rtol=0.011)  # relative to the reference
    assert not nb.cmp("t", torch.tensor([101.0]), torch.tensor([100.0]), atol=0, rtol=0.009)
    with pytest.raises(CourseError, match="cmp compares"):
        nb.cmp("t", "text", torch.tensor([1.0]))


# ------------------------------------------------------------------------------------------------ strict mode
def test_strict_mode_raises_on_a_failed_check_and_passes_good_ones(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_STRICT", "1")
    assert nb.strict()
    assert nb.cmp("good", torch.tensor([1.0]), torch.tensor([1.0]))
    with pytest.raises(nb.CheckFailed, match=r"bad: WRONG .*\[1\] yours 3, expected 2"):
        nb.cmp("bad", torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0]))
    with pytest.raises(nb.CheckFailed, match="not done yet"):
        nb.cmp("todo", None, torch.tensor([1.0]))
    with pytest.raises(nb.CheckFailed, match="WRONG dtype"):
        nb.cmp("index", torch.tensor([1.0]), torch.tensor([1]))
    assert issubclass(nb.CheckFailed, AssertionError)


def test_strict_mode_switches(monkeypatch):
    for value, expected in [("1", True), ("true", True), ("0", False), ("no", False)]:
        monkeypatch.setenv("COURSE_STRICT", value)
        assert nb.strict() is expected
    monkeypatch.delenv("COURSE_STRICT")
    assert not nb.batch_kernel()  # plain python (pytest): not a kernel started by papermill / nbclient
    assert not nb.strict()


def test_exercise_uses_the_solution_only_in_strict_mode(capsys, monkeypatch):
    def my_psnr(sr, hr):
        return None  # your code here, as committed

    wrapped = nb.exercise("00", "psnr", my_psnr)
    hr = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert wrapped(hr + 0.1, hr) is None  # a student: None stays None, cmp says "not done yet"
    monkeypatch.setenv("COURSE_STRICT", "1")
    answer = wrapped(hr + 0.1, hr)  # CI: the stored solution answers, so the check runs
    assert answer.item() == pytest.approx(20.0, abs=1e-6)
    assert "stored solution answers" in capsys.readouterr().out
    wrapped(hr + 0.1, hr)
    assert capsys.readouterr().out == ""  # said once

    def done(sr, hr):
        return torch.tensor(1.5)  # a student's own (wrong) answer is never replaced

    assert nb.exercise("00", "psnr", done)(hr, hr).item() == 1.5
    with pytest.raises(nb.CheckFailed):
        nb.cmp("PSNR", nb.exercise("00", "psnr", done)(hr + 0.1, hr), 20.0)
    with pytest.raises(CourseError, match="no solution 'nope' for lesson 00"):
        nb.exercise("00", "nope", done)


# ------------------------------------------------------------------------------------------------ solutions
def test_solution_prints_source_and_rejects_unknown(capsys):
    nb.solution("02", "preactivation_std")
    out = capsys.readouterr().out
    assert "Solution: lesson 02" in out and "def _sol_02_preactivation_std" in out
    nb.solution(2, "preactivation_std")  # a lesson number works as well
    with pytest.raises(CourseError, match="known: positional_encoding, preactivation_std"):
        nb.solution("02", "nope")


def test_every_solution_is_tested_here():
    tested = {("00", "psnr"), ("00", "rgb_to_y"), ("01", "nearest_index"), ("01", "local_coord"),
              ("02", "positional_encoding"), ("02", "preactivation_std"), ("03", "unfold3x3"), ("03", "query_nearest"),
              ("04", "first_layer"), ("04", "decoder_params"), ("04", "k_as_conv")}
    assert {key for key in nb.SOLUTIONS if key[0] <= "04"} == tested


def test_every_solution_is_called_by_some_test():
    # lessons 05 onwards test their solutions in their own files (tests/test_lessonNN.py): each must be called there
    text = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").glob("test_*.py"))
    untested = [key for key in nb.SOLUTIONS if f'SOLUTIONS["{key[0]}", "{key[1]}"](' not in text]
    assert untested == []


def test_solution_00_psnr_matches_library_and_skimage():
    from skimage.metrics import peak_signal_noise_ratio

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 20, 24, generator=g)
    sr = (hr + 0.05 * torch.randn(3, 20, 24, generator=g)).clamp(0, 1)
    mine = nb.SOLUTIONS["00", "psnr"](sr, hr).item()
    assert mine == pytest.approx(metrics.psnr(sr, hr, protocol="paper"), abs=1e-6)
    assert mine == pytest.approx(peak_signal_noise_ratio(hr.numpy(), sr.numpy(), data_range=1), abs=1e-6)
    assert nb.SOLUTIONS["00", "psnr"](hr + 0.1, hr).item() == pytest.approx(20.0, abs=1e-6)  # MSE 0.01


def test_solution_00_rgb_to_y_matches_library_and_skimage():
    from skimage.color import rgb2ycbcr

    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (2, 3, 9, 11), generator=g).double()
    mine = nb.SOLUTIONS["00", "rgb_to_y"](img)
    assert torch.equal(mine, metrics.rgb_to_y(img))
    sk = rgb2ycbcr(img[0].permute(1, 2, 0).numpy().astype(np.uint8))[..., 0]  # float Y, not rounded
    np.testing.assert_allclose(mine[0, 0].numpy(), np.floor(sk + 0.5), atol=0)


@pytest.mark.parametrize("n_lr, n_hr", [(2, 4), (3, 7), (5, 5), (4, 13)])
def test_solutions_01_match_library(n_lr, n_hr):
    idx = nb.SOLUTIONS["01", "nearest_index"](n_lr, n_hr)
    assert torch.equal(idx, coords.nearest_index(n_lr, n_hr))
    x = torch.arange(n_lr, dtype=torch.float32)[None, None]
    assert torch.equal(idx.float(), F.interpolate(x, size=n_hr, mode="nearest-exact")[0, 0])
    hr = coords.pixel_centers(n_hr, dtype=torch.float64)
    mine = nb.SOLUTIONS["01", "local_coord"](hr, n_lr)
    ref = coords.local_coord(torch.stack([hr, hr], -1), (n_lr, n_lr))[:, 0]
    torch.testing.assert_close(mine, ref, atol=1e-9, rtol=0)


def test_solutions_02_match_library():
    v = torch.rand(7, 2) * 2 - 1
    mine = nb.SOLUTIONS["02", "positional_encoding"](v, 5)
    torch.testing.assert_close(mine, inr.PositionalEncoding(2, 5)(v))


@pytest.mark.parametrize("fan_in, w0, c", [(256, 30.0, 1 / 16), (256, 1.0, 1 / 16), (64, 30.0, None), (128, 7.0, 0.3)])
def test_solution_02_preactivation_std_matches_a_measurement(fan_in, w0, c):
    # oracle: measure the std of w0 * (W x) with W ~ U(-c, c) and x = sin(uniform angle) (arcsine, variance 1/2)
    c = inr.siren_bound(fan_in, w0) if c is None else c
    g = torch.Generator().manual_seed(0)
    weight = (torch.rand(512, fan_in, generator=g, dtype=torch.float64) * 2 - 1) * c
    x = torch.sin(torch.rand(fan_in, 4096, generator=g, dtype=torch.float64) * 2 * math.pi)
    measured = (w0 * weight @ x).std().item()
    assert nb.SOLUTIONS["02", "preactivation_std"](fan_in, w0, c) == pytest.approx(measured, rel=0.03)


def test_solution_02_preactivation_std_is_one_at_sirens_bound():
    for fan_in in (64, 256):  # SIREN's c = sqrt(6/n)/w0 is exactly the bound that makes the spread 1
        assert nb.SOLUTIONS["02", "preactivation_std"](fan_in, 30.0, inr.siren_bound(fan_in, 30.0)) == pytest.approx(1)
    # PyTorch's default U(-1/sqrt(n), 1/sqrt(n)) at w0 = 30: the spread is w0 / sqrt(6), about 12 radians
    assert nb.SOLUTIONS["02", "preactivation_std"](256, 30.0, 1 / 16) == pytest.approx(30 / math.sqrt(6))


def test_solutions_03_match_library_and_torch():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 4, 5, 6, generator=g)
    unfolded = nb.SOLUTIONS["03", "unfold3x3"](feat)
    assert torch.equal(unfolded, features.unfold3x3(feat))
    assert torch.equal(unfolded, F.unfold(feat, 3, padding=1).reshape(2, 36, 5, 6))
    coord = torch.rand(2, 50, 2, generator=g) * 2 - 1
    assert torch.equal(nb.SOLUTIONS["03", "query_nearest"](feat, coord), features.query_nearest(feat, coord))


def test_solution_04_first_layer_matches_decoder():
    torch.manual_seed(0)
    dec = decoders.DIINNDecoder(in_dim=18, width=8, depth=1)
    z, p = torch.randn(5, 18), torch.randn(5, 3)
    ref = dec.last_layer.weight @ nb.SOLUTIONS["04", "first_layer"](z, p, dec.K[0], dec.Q[0]).T
    torch.testing.assert_close(ref.T + dec.last_layer.bias, dec.mlp(z, p))


def test_solution_04_k_as_conv_equals_linear_on_unfolded_z():
    g = torch.Generator().manual_seed(0)
    feat, k = torch.randn(2, 5, 6, 7, generator=g), torch.randn(8, 45, generator=g)
    by_conv = F.conv2d(feat, nb.SOLUTIONS["04", "k_as_conv"](k, 5), padding=1)  # (2, 8, 6, 7)
    z = F.unfold(feat, 3, padding=1)  # (2, 45, 42): the unfolded z of every LR pixel
    torch.testing.assert_close(by_conv.reshape(2, 8, 42), k @ z, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", list(decoders.VARIANTS))
def test_solution_04_decoder_params_matches_library(variant):
    mod_input, pos_init = decoders.VARIANTS[variant]
    dec = decoders.DIINNDecoder(in_dim=576, width=256, depth=4, mod_input=mod_input, pos_init=pos_init)
    assert nb.SOLUTIONS["04", "decoder_params"](576, 3, 256, 4, variant) == models.count_parameters(dec)


def test_solution_04_decoder_params_matches_authors_counts():
    # diinn-official-code.md: decoder parameters (f)/(d) 986,627; (e)/(c) 1,135,619; (b) 544,259; (a) 693,251
    counts = {v: nb.SOLUTIONS["04", "decoder_params"](576, 3, 256, 4, v) for v in "abcdef"}
    assert counts == {"a": 693251, "b": 544259, "c": 1135619, "d": 986627, "e": 1135619, "f": 986627}


# ------------------------------------------------------------------------------------------------ sliders
def test_slider_headless_calls_once_with_defaults(monkeypatch):
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    calls = []

    def draw(scale=2.0, n=3, mode="a"):
        calls.append((scale, n, mode))
        return scale * n

    assert nb.is_headless()
    assert nb.slider(draw, scale=(1.0, 8.0, 0.5), n=(1, 9, 1, 4), mode=["b", "a"]) is None  # nothing printable
    assert calls == [(2.0, 4, "a")]
    with pytest.raises(CourseError, match="has no argument 'size'"):
        nb.slider(draw, size=(1, 2, 1))
    with pytest.raises(CourseError, match="needs low <= high"):
        nb.slider(draw, scale=(3.0, 1.0, 0.5))


def test_is_headless_outside_a_kernel(monkeypatch):
    monkeypatch.delenv("COURSE_HEADLESS", raising=False)
    assert nb.is_headless()  # plain python (pytest): no IPython kernel


# ------------------------------------------------------------------------------------------------ setup
def test_setup_and_expected_runtime(capsys, monkeypatch):
    dev = nb.setup(seed=1)
    out = capsys.readouterr().out
    assert f"torch {torch.__version__}" in out and f"device: {dev.type}" in out
    assert nb.device() == dev
    a = torch.rand(3)
    nb.setup(seed=1, verbose=False)
    assert torch.equal(a, torch.rand(3))  # seeded
    nb.expected_runtime(True, cpu="5 min", gpu="20 s")
    banner = capsys.readouterr().out
    assert banner.startswith("SMOKE = True") and "NOT meaningful" in banner and banner.count("\n") == 1
    monkeypatch.setitem(nb._STATE, "device", torch.device("cpu"))
    nb.expected_runtime(False, cpu="5 min", gpu="20 s")
    assert "WARNING: no GPU, so this run takes about 5 min" in capsys.readouterr().out
    nb.expected_runtime(False, cpu="5 s (2 cores)", gpu="5 s")  # a short lesson: no warning
    out = capsys.readouterr().out
    assert "Full-size run" in out and "WARNING" not in out
    monkeypatch.setitem(nb._STATE, "device", torch.device("cuda"))
    nb.expected_runtime(False, cpu="5 min", gpu="20 s")  # a GPU: no warning
    assert "WARNING" not in capsys.readouterr().out


def test_scratch_dir_is_removed_when_the_process_exits(tmp_path):
    # a child process with its own temporary directory: the folder (and what was written in it) exists while the
    # process runs and is gone after a normal exit; a folder removed by the lesson itself is no error
    code = ("from course_lib import notebook as nb\n"
            "a = nb.scratch_dir('lesson99_runs_'); (a / 'x' / 'y').mkdir(parents=True)\n"
            "(a / 'x' / 'y' / 'f').write_text('1')\n"
            "b = nb.scratch_dir('lesson99_eval_'); b.rmdir()\n"
            "print(a.name.startswith('lesson99_runs_'), a.parent == b.parent, (a / 'x' / 'y' / 'f').is_file())\n"
            "print(a.parent)")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    first, parent = run.stdout.splitlines()
    assert first == "True True True" and Path(parent).resolve() == tmp.resolve()
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("prefix", ["", "a/b", "../x"])
def test_scratch_dir_rejects_a_path_as_prefix(prefix):
    with pytest.raises(CourseError, match="without a path separator"):
        nb.scratch_dir(prefix)


@pytest.mark.parametrize("text, seconds", [("175 s (2 cores)", 175), ("1.5 min", 90), ("about 4 min", 240),
                                           ("2 h", 7200), ("5 s", 5), ("a while", None)])
def test_runtime_seconds(text, seconds):
    assert nb.runtime_seconds(text) == seconds


def test_colab_addresses_come_from_repo_url():
    assert nb.colab_url("02_x.ipynb") == (
        "https://colab.research.google.com/github/" + nb.REPO_URL.removeprefix("https://github.com/")
        + f"/blob/{nb.REPO_REF}/notebooks/02_x.ipynb")
    assert nb.colab_url("notebooks/02_x.ipynb") == nb.colab_url("02_x.ipynb")
    assert nb.colab_url("02_x.ipynb") in nb.colab_badge("02_x.ipynb")
    cell = nb.setup_cell_source()
    assert f'"--no-deps", "{nb.install_spec()}"' in cell and "drive.mount" not in cell
    assert "torch" not in nb.LIGHT_DEPS.values()
    compile(cell, "setup-cell", "exec")


def test_setup_cell_runs_where_course_lib_is_installed(tmp_path):
    script = tmp_path / "cell.py"
    script.write_text(nb.setup_cell_source() + "print('DEVICE', DEVICE)\n")
    env = {**os.environ, "PYTHONPATH": ""}
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "DEVICE cpu" in run.stdout or "DEVICE cuda" in run.stdout


def test_setup_cell_explains_a_failed_install(capsys, monkeypatch):
    # Colab without course_lib, and pip fails: two ways forward and one line, not a bare CalledProcessError
    import importlib.util
    import types

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "course_lib"
                        else real_find_spec(name, *a))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = []

    def failing_pip(cmd, *args, **kwargs):
        calls.append(cmd)
        raise subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(subprocess, "check_call", failing_pip)
    with pytest.raises(ModuleNotFoundError, match="could not be installed; see the two ways forward above"):
        exec(compile(nb.setup_cell_source(), "setup-cell", "exec"), {})
    out = capsys.readouterr().out
    assert "pip exit status 1" in out and f"clone {nb.REPO_URL}" in out and "pip install -e ." in out
    assert "upload the repository's course_lib/ folder" in out
    assert calls and nb.install_spec() in calls[0]


def test_show_returns_axes_and_rejects_batches():
    import matplotlib

    matplotlib.use("Agg")
    axes = nb.show([torch.rand(3, 4, 5), torch.rand(4, 5), np.random.rand(4, 5, 3)], titles=["a", "b", "c"])
    assert len(axes) == 3
    with pytest.raises(CourseError, match="not a batch"):
        nb.show(torch.rand(2, 3, 4, 4))
    with pytest.raises(CourseError, match="titles"):
        nb.show([torch.rand(3, 4, 4)], titles=["a", "b"])
    assert math.isclose(float(nb._to_hwc(torch.full((3, 2, 2), 2.0)).max()), 1.0)
