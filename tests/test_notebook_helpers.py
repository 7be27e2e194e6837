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
@pytest.mark.parametrize(
    "mine, ref, verdict, ok",
    [
        (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]), "exact", True),
        (np.array([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-9], dtype=torch.float64), "close (max diff 1e-09)",
         True),
        (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]), "WRONG (max diff 0.5, shapes (2,))", False),
        (torch.zeros(2, 3), torch.zeros(3, 2), "WRONG (shapes (2, 3) vs reference (3, 2))", False),
        (None, torch.zeros(2), "not done yet", False),
        (3, 3.0, "exact", True),
        ([1, 2, 3], np.array([1, 2, 3]), "exact", True),
        (0.1 + 0.2, 0.3, "close", True),
        (torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0]), "exact", True),
        (torch.tensor([True, False, True]), torch.tensor([True, True, True]), "WRONG (1 of 3 entries differ",
         False),
        (torch.tensor([float("nan")]), torch.tensor([1.0]), "WRONG (max diff inf", False),
    ],
)
def test_cmp_verdicts(capsys, mine, ref, verdict, ok):
    assert nb.cmp("x", mine, ref) is ok
    assert capsys.readouterr().out.startswith(f"x: {verdict}")


def test_cmp_tolerances_and_grad_tensors(capsys):
    a = torch.tensor([1.0], requires_grad=True)
    assert not nb.cmp("t", a * 1.01, torch.tensor([1.0]))
    assert nb.cmp("t", a * 1.01, torch.tensor([1.0]), atol=0.02)
    with pytest.raises(CourseError, match="cmp compares"):
        nb.cmp("t", "text", torch.tensor([1.0]))


# ------------------------------------------------------------------------------------------------ solutions
def test_solution_prints_source_and_rejects_unknown(capsys):
    nb.solution("02", "siren_bound")
    out = capsys.readouterr().out
    assert "Solution: lesson 02" in out and "def _sol_02_siren_bound" in out
    nb.solution(2, "siren_bound")  # a lesson number works as well
    with pytest.raises(CourseError, match="known: positional_encoding, siren_bound"):
        nb.solution("02", "nope")


def test_every_solution_is_tested_here():
    tested = {("00", "psnr"), ("00", "rgb_to_y"), ("01", "nearest_index"), ("01", "local_coord"),
              ("02", "positional_encoding"), ("02", "siren_bound"), ("03", "unfold3x3"), ("03", "query_nearest"),
              ("04", "first_layer"), ("04", "decoder_params"), ("04", "k_as_conv")}
    assert set(nb.SOLUTIONS) == tested


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
    for fan_in, first in [(2, True), (256, False), (64, False)]:
        assert nb.SOLUTIONS["02", "siren_bound"](fan_in, 30.0, first) == pytest.approx(
            inr.siren_bound(fan_in, 30.0, first), rel=1e-12)


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
    assert nb.slider(draw, scale=(1.0, 8.0, 0.5), n=(1, 9, 1, 4), mode=["b", "a"]) == 8.0
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
    assert "SMOKE = True" in capsys.readouterr().out
    monkeypatch.setitem(nb._STATE, "device", torch.device("cpu"))
    nb.expected_runtime(False, cpu="5 min", gpu="20 s")
    assert "WARNING: no GPU, so this run takes about 5 min" in capsys.readouterr().out


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
