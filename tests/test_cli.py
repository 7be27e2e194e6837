"""The command line: ``python -m course_lib upscale`` and the dispatcher's errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import models
from course_lib.__main__ import main
from course_lib.images import load_image
from course_lib.upscale import parse_size


@pytest.fixture
def png(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)).save(path)
    return path


def test_upscale_bicubic_by_scale(png, tmp_path, capsys):
    out = tmp_path / "sub" / "out.png"
    assert main(["upscale", str(png), str(out), "--scale", "3.5", "--model", "bicubic"]) == 0
    text = capsys.readouterr().out
    assert "bicubic" in text and f"wrote {out}" in text
    sr = load_image(out)
    assert sr.shape == (3, 35, 49)
    oracle = models.build("bicubic").upscale(load_image(png)[None], scale=3.5)[0]
    assert (sr - oracle).abs().max() <= 0.5 / 255 + 1e-6  # only the uint8 rounding of the PNG differs


def test_upscale_by_size_with_checkpoint(png, tmp_path, capsys):
    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less")
    ckpt = models.save(model, tmp_path / "m.pt")
    out = tmp_path / "out.png"
    assert main(["upscale", str(png), str(out), "--size", "31x17", "--checkpoint", str(ckpt), "--device", "cpu",
                 "--precision", "fp32"]) == 0
    assert "diinn(encoder=edsr-less" in capsys.readouterr().out
    sr = load_image(out)
    assert sr.shape == (3, 17, 31)
    oracle = model.upscale(load_image(png)[None], size=(17, 31))[0]
    assert (sr - oracle).abs().max() <= 0.5 / 255 + 1e-6


def test_default_model_is_the_best_shipped_diinn(png, tmp_path, capsys, monkeypatch):
    index = models.list_pretrained()
    best = models.best_pretrained("diinn")
    set5_x4 = {n: max((r["psnr"] for r in e["results"] if r["dataset"] == "Set5" and r["scale"] == 4), default=0)
               for n, e in index.items() if e["config"]["name"] == "diinn"}
    assert best == max(set5_x4, key=set5_x4.get)
    out = tmp_path / "out.png"
    assert main(["upscale", str(png), str(out), "--scale", "2", "--device", "cpu", "--precision", "fp32"]) == 0
    text = capsys.readouterr().out
    assert f"using {best}" in text and "--model bicubic" in text
    oracle = models.load_pretrained(best).upscale(load_image(png)[None], scale=2)[0]
    assert (load_image(out) - oracle).abs().max() <= 0.5 / 255 + 1e-6
    monkeypatch.setattr(models, "_index", lambda: {})  # nothing shipped: bicubic, and it says so
    assert main(["upscale", str(png), str(out), "--scale", "2"]) == 0
    assert "using bicubic (no DIINN checkpoint is shipped)" in capsys.readouterr().out


def test_precision_auto_is_fp32_on_a_cpu_without_native_bf16(png, tmp_path, monkeypatch):
    from course_lib import precision

    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less")
    ckpt = models.save(model, tmp_path / "m.pt")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    for prec in ("auto", "fp32"):
        assert main(["upscale", str(png), str(tmp_path / f"{prec}.png"), "--scale", "2", "--model", str(ckpt),
                     "--device", "cpu", "--precision", prec, "--quiet"]) == 0
    assert torch.equal(load_image(tmp_path / "auto.png"), load_image(tmp_path / "fp32.png"))


def test_default_upscale_beats_bicubic_on_a_set5_image(tmp_path, course_data):
    from course_lib import degrade, metrics
    from course_lib.data import get_dataset
    from course_lib.images import save_image

    hr = get_dataset("Set5")[3]  # head.png, 280x280
    lr = degrade.bicubic_aa(hr[:, :280, :280], (140, 140))
    save_image(lr.float() / 255, tmp_path / "lr.png")
    scores = {}
    for model in (None, "bicubic"):
        out = tmp_path / f"{model}.png"
        assert main(["upscale", str(tmp_path / "lr.png"), str(out), "--scale", "2", "--device", "cpu"]
                    + (["--model", model] if model else [])) == 0
        scores[model] = metrics.psnr(load_image(out)[None], hr[None, :, :280, :280].float() / 255, "paper", scale=2)
    assert scores[None] > scores["bicubic"] + 0.5, scores


def test_parse_size():
    assert parse_size("1024x768") == (768, 1024)


@pytest.mark.parametrize("args,msg", [
    (["--scale", "0"], "scale must be > 0"),
    (["--scale", "nan"], "finite"),
    (["--size", "0x10"], "zero side"),
    (["--size", "ten"], "WIDTHxHEIGHT"),
    (["--scale", "2", "--checkpoint", "nowhere.pt"], "neither 'bicubic'"),
    (["--scale", "2", "--model", "nowhere.pt"], "neither 'bicubic'"),
])
def test_upscale_bad_input_is_one_line(png, tmp_path, capsys, args, msg):
    assert main(["upscale", str(png), str(tmp_path / "o.png"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_not_an_image_is_one_line(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["upscale", str(bad), str(tmp_path / "o.png"), "--scale", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "notes.png" in err and len(err.splitlines()) == 1


def test_unknown_command_and_help(capsys):
    assert main(["fly"]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err
    assert main([]) == 0
    assert "upscale" in capsys.readouterr().out


def test_module_entry_point_runs(png, tmp_path):
    out = tmp_path / "o.png"
    proc = subprocess.run([sys.executable, "-m", "course_lib", "upscale", str(png), str(out), "--scale", "2"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
