"""The command line: ``python -m course_lib upscale`` and the dispatcher's errors."""

import os
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
    assert main(["upscale", str(png), str(out), "--scale", "2", "--force"]) == 0  # out exists: --force replaces it
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


# ---------------------------------------------------------------------------------------------- issue 15: outputs
def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_upscale_never_writes_over_its_input(png, capsys):
    before = png.read_bytes()
    for force in ([], ["--force"]):
        assert main(["upscale", str(png), str(png), "--scale", "2", "--model", "bicubic", *force]) == 2
        assert "is the input file" in one_line(capsys)
    link = png.parent / "same.png"
    os.link(png, link)  # another name of the same file
    assert main(["upscale", str(png), str(link), "--scale", "2", "--model", "bicubic", "--force"]) == 2
    assert "is the input file" in one_line(capsys) and png.read_bytes() == before


def test_upscale_replaces_an_existing_output_only_with_force(png, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"a result I want to keep")
    assert main(["upscale", str(png), str(out), "--scale", "2", "--model", "bicubic"]) == 2
    assert "already exists; pass --force" in one_line(capsys) and out.read_bytes() == b"a result I want to keep"
    assert main(["upscale", str(png), str(out), "--scale", "2", "--model", "bicubic", "--force"]) == 0
    assert load_image(out).shape == (3, 20, 28)


@pytest.mark.parametrize("name,msg", [("sub", "is a directory"), ("file.txt/o.png", "which is a file"),
                                      ("o.jpg", "not a lossless format"), ("o.gif", "not a lossless format"),
                                      ("o.pdf", "not a lossless format"), ("o.xyz", "cannot tell the image format")])
def test_upscale_checks_the_output_before_any_work(png, tmp_path, capsys, monkeypatch, name, msg):
    import course_lib.upscale as up

    (tmp_path / "sub").mkdir()
    (tmp_path / "file.txt").write_text("x")
    monkeypatch.setattr(up, "resolve", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["upscale", str(png), str(tmp_path / name), "--scale", "2"]) == 2
    assert msg in one_line(capsys)


@pytest.mark.parametrize("suffix", [".tif", ".webp", ".bmp"])
def test_upscale_writes_other_lossless_formats(png, tmp_path, suffix):
    assert main(["upscale", str(png), str(tmp_path / "a.png"), "--scale", "1.5", "--model", "bicubic"]) == 0
    assert main(["upscale", str(png), str(tmp_path / f"a{suffix}"), "--scale", "1.5", "--model", "bicubic"]) == 0
    assert torch.equal(load_image(tmp_path / f"a{suffix}"), load_image(tmp_path / "a.png"))


@pytest.fixture
def hr_folder(tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("where,msg", [("dir", "is a directory"), ("file.txt/rows.json", "which is a file")])
def test_evaluate_checks_the_json_path_before_evaluating(hr_folder, tmp_path, capsys, monkeypatch, where, msg):
    import course_lib.evaluate as ev

    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking --json"))
    assert main(["evaluate", "--model", "bicubic", "--datasets", str(hr_folder), "--scales", "2", "--quiet",
                 "--json", str(tmp_path / where)]) == 2
    assert msg in one_line(capsys)


def test_evaluate_json_is_replaced_atomically(hr_folder, tmp_path, capsys):
    import json

    rows = tmp_path / "rows.json"
    rows.write_text("[]\n")
    os.link(rows, tmp_path / "old.json")  # a second name: a rewrite in place would change it too
    assert main(["evaluate", "--model", "bicubic", "--datasets", str(hr_folder), "--scales", "2", "--quiet",
                 "--json", str(rows)]) == 0
    written = json.loads(rows.read_text())
    assert len(written) == 1 and written[0]["n_images"] == 2 and written[0]["method"] == "bicubic"
    assert (tmp_path / "old.json").read_text() == "[]\n" and not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------------------------------------- the data command
def test_data_list_fetch_and_verify_a_present_set(course_data, capsys, monkeypatch):
    from course_lib import data

    monkeypatch.setattr(data, "_fetch", lambda *a: pytest.fail("downloaded a set that is present"))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert f"data folder: {course_data}" in out
    assert f"Set5         test  present in {course_data / 'Set5' / 'HR'}" in out
    assert main(["data", "fetch", "Set5"]) == 0
    assert "Set5: already present" in capsys.readouterr().out
    assert main(["data", "verify", "Set5", "Set14"]) == 0
    out = capsys.readouterr().out
    assert "Set5: all 5 files match their sha256" in out and "Set14: all 14 files match" in out


def test_data_verify_names_a_changed_file(course_data, tmp_path, capsys, monkeypatch):
    import shutil

    from course_lib import data

    shutil.copytree(course_data / "Set5" / "HR", tmp_path / "Set5" / "HR")
    with open(tmp_path / "Set5" / "HR" / "bird.png", "ab") as f:
        f.write(b"\0")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "no-repo")
    assert main(["data", "verify"]) == 1  # every present set: here only Set5
    out = capsys.readouterr().out
    assert "bird.png: sha256 differs" in out and "Set14" not in out


def test_data_fetch_without_network_is_one_line(tmp_path, capsys, monkeypatch):
    from course_lib import data

    def offline(*args):
        raise OSError("network is unreachable")

    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "no-repo")
    monkeypatch.setattr(data, "_fetch", offline)
    assert main(["data", "fetch", "Set5"]) == 2
    err = one_line(capsys)
    assert "download failed" in err and str(tmp_path / "Set5" / "HR") in err
    assert main(["data", "fetch", "Set6"]) == 2
    assert "unknown dataset 'Set6'" in one_line(capsys)
