"""course_lib.evaluate: the runner reproduces the published bicubic rows; table, JSON, CLI and errors."""

import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from skimage.metrics import structural_similarity

from course_lib import evaluate as ev
from course_lib.__main__ import main
from course_lib.errors import CourseError
from course_lib.images import load_image_uint8

# DIINN paper, Table 1, Bicubic rows: (PSNR, SSIM, LR-PSNR) for x2, x3, x4.
PAPER_TABLE1 = {
    "Set5": {2: (31.81, 0.9097, 40.77), 3: (28.63, 0.8385, 38.79), 4: (26.70, 0.7739, 37.29)},
    "Set14": {2: (28.33, 0.8437, 38.25), 3: (25.74, 0.7413, 37.18), 4: (24.24, 0.6648, 36.57)},
}
# Bicubic under the EDSR/RCAN-era protocol (Y channel, shave = scale), e.g. RCAN Table 3.
STANDARD_PSNR = {"Set5": {2: 33.66, 3: 30.39, 4: 28.42}, "Set14": {2: 30.24, 3: 27.55, 4: 26.00}}


@pytest.fixture(scope="module")
def bicubic_rows(data_dir):
    """Bicubic on Set5 and Set14 at x2, x3, x4 under both protocols (computed once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_DATA_DIR", str(data_dir))
        rows = {}
        for protocol in ("paper", "standard"):
            for r in ev.evaluate("bicubic", ["Set5", "Set14"], [2, 3, 4], protocol=protocol, progress=False):
                rows[(protocol, r["dataset"], r["scale"])] = r
        return rows


@pytest.mark.parametrize("dataset", ["Set5", "Set14"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_paper_protocol_reproduces_table1_bicubic(bicubic_rows, dataset, scale):
    row = bicubic_rows[("paper", dataset, scale)]
    psnr, ssim, lr_psnr = PAPER_TABLE1[dataset][scale]
    assert row["n_images"] == {"Set5": 5, "Set14": 14}[dataset]
    assert abs(row["psnr"] - psnr) <= 0.01
    assert abs(row["ssim"] - ssim) <= 0.0003
    assert abs(row["lr_psnr"] - lr_psnr) <= 0.02


@pytest.mark.parametrize("dataset", ["Set5", "Set14"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_standard_protocol_reproduces_published_bicubic(bicubic_rows, dataset, scale):
    row = bicubic_rows[("standard", dataset, scale)]
    assert abs(row["psnr"] - STANDARD_PSNR[dataset][scale]) <= 0.03
    assert row["protocol"] == "standard" and row["method"] == "bicubic"


@pytest.fixture
def bird_folder(data_dir, tmp_path):
    folder = tmp_path / "one" / "HR"
    folder.mkdir(parents=True)
    shutil.copy(data_dir / "Set5" / "HR" / "bird.png", folder / "bird.png")
    return folder


def test_non_integer_scale_follows_the_authors_rule(bird_folder):
    """Independent computation for x3.14: LR 92x92 (round(288 / 3.14)), SR at the full 288x288."""
    (row,) = ev.evaluate("bicubic", [str(bird_folder)], [3.14], progress=False)
    assert row["dataset"] == "one" and row["n_images"] == 1 and row["scale"] == 3.14
    hr = load_image_uint8(bird_folder / "bird.png")
    lr = TF.resize(hr, [92, 92], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    sr = F.interpolate(lr[None].float() / 255, size=(288, 288), mode="bicubic", antialias=True,
                       align_corners=False).clamp(0, 1)[0].double()
    hrf = hr.double() / 255
    psnr = 10 * math.log10(1 / ((sr - hrf) ** 2).mean().item())
    ssim = structural_similarity(sr.numpy(), hrf.numpy(), gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0, channel_axis=0)
    bicubic = TF.InterpolationMode.BICUBIC
    down = [TF.resize(x, [92, 92], interpolation=bicubic, antialias=True) for x in (sr, hrf)]
    lr_psnr = 10 * math.log10(1 / ((down[0] - down[1]) ** 2).mean().item())
    assert row["psnr"] == pytest.approx(psnr, abs=1e-6)
    assert row["ssim"] == pytest.approx(ssim, abs=1e-6)
    assert row["lr_psnr"] == pytest.approx(lr_psnr, abs=1e-4)


def test_format_table_layout():
    rows = [{"dataset": "Set5", "scale": s, "method": "bicubic", "protocol": "paper", "psnr": p, "ssim": 0.9,
             "lr_psnr": 40.0, "n_images": 5} for s, p in [(2, 31.8085), (2.5, 30.0)]]
    rows.append({**rows[0], "method": "diinn", "psnr": math.inf})
    table = ev.format_table(rows)
    lines = table.splitlines()
    assert "PSNR (dB) / SSIM / LR-PSNR (dB); protocol: paper" in lines[0]
    assert lines[2] == "| Method | Set5 x2 | Set5 x2.5 |"
    assert lines[4] == "| bicubic | 31.81 / 0.9000 / 40.00 | 30.00 / 0.9000 / 40.00 |"
    assert lines[5] == "| diinn | inf / 0.9000 / 40.00 | - |"
    mixed = ev.format_table([rows[0], {**rows[0], "protocol": "standard"}])
    assert "| bicubic (paper) |" in mixed and "| bicubic (standard) |" in mixed


def test_cli_prints_table_and_writes_json(course_data, tmp_path, capsys):
    out = tmp_path / "res" / "rows.json"
    assert main(["evaluate", "--datasets", "Set5", "--scales", "2", "2.5", "--limit", "2", "--quiet",
                 "--json", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "| bicubic |" in text and "Set5 x2.5" in text and f"wrote {out}" in text
    rows = json.loads(out.read_text())
    assert [r["scale"] for r in rows] == [2.0, 2.5] and all(r["n_images"] == 2 for r in rows)
    assert set(rows[0]) >= {"dataset", "scale", "method", "protocol", "psnr", "ssim", "lr_psnr", "n_images"}


def test_cli_per_image_writes_each_images_scores_that_average_to_the_row(course_data, tmp_path):
    out = tmp_path / "rows.json"
    assert main(["evaluate", "--datasets", "Set5", "--scales", "3.14", "--limit", "3", "--quiet",
                 "--json", str(out), "--device", "cpu", "--per-image"]) == 0
    (row,) = json.loads(out.read_text())
    assert [m["image"] for m in row["images"]] == ["baby", "bird", "butterfly"]
    for key in ("psnr", "ssim", "lr_psnr"):
        assert row[key] == pytest.approx(sum(m[key] for m in row["images"]) / 3, abs=1e-12)
    # the same numbers as the library's per-image rows (the oracle: evaluate(..., per_image=True))
    (lib,) = ev.evaluate("bicubic", ["Set5"], [3.14], limit=3, progress=False, per_image=True, device="cpu")
    assert row["images"] == lib["images"]


@pytest.mark.parametrize("args,msg", [
    (["--per-image"], "give --json FILE too"),
    (["--datasets", "Set99"], "known datasets: DIV2K"),
    (["--scales", "0"], ">= 1"),
    (["--scales", "nan"], "finite"),
    (["--scales", "0.5"], ">= 1"),
    (["--model", "nowhere.pt"], "neither 'bicubic'"),
])
def test_cli_errors_are_one_line(course_data, capsys, args, msg):
    assert main(["evaluate", "--quiet", "--limit", "1", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_empty_folder_and_bad_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseError, match="holds no"):
        ev.evaluate("bicubic", [str(tmp_path / "empty")], [2], progress=False)
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(CourseError, match="not a course_lib checkpoint"):
        ev.evaluate(str(bad), ["Set5"], [2], progress=False)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CourseError, match="not a course_lib model checkpoint"):
        ev.evaluate(str(tmp_path / "plain.pt"), ["Set5"], [2], progress=False)
    with pytest.raises(CourseError, match="upscale"):
        ev.evaluate(object(), ["Set5"], [2], progress=False)


def test_model_with_wrong_output_size_is_caught(bird_folder):
    class Wrong:
        def upscale(self, lr, size, chunk_size=None):
            return torch.zeros(1, 3, size[0] - 1, size[1])

    with pytest.raises(CourseError, match=r"sr \(1, 3, 287, 288\), hr \(1, 3, 288, 288\)"):
        ev.evaluate(Wrong(), [str(bird_folder)], [2], progress=False)


@pytest.fixture
def small_set5(data_dir, tmp_path):
    """The top-left 32x32 of two Set5 images (a model on full images is too slow for a CPU test)."""
    folder = tmp_path / "small5"
    folder.mkdir()
    for name in ("baby", "bird"):
        img = Image.open(data_dir / "Set5" / "HR" / f"{name}.png")
        img.crop((100, 100, 132, 132)).save(folder / f"{name}.png")
    return folder


def test_models_path_tiny_diinn_and_bicubic_model(small_set5, tmp_path):
    from course_lib import models

    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-baseline")
    rows = ev.evaluate(model, [str(small_set5)], [2, 3.5], progress=False, chunk_size=300)
    assert [r["n_images"] for r in rows] == [2, 2] and rows[0]["method"].startswith("diinn(")
    for r in rows:
        assert math.isfinite(r["psnr"]) and 0 < r["psnr"] < 60 and -1 <= r["ssim"] <= 1
    lr = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    sr = ev.super_resolve(model, ev.metrics.PROTOCOLS["paper"], lr, (32, 32), torch.device("cpu"), 100)
    assert sr.shape == (3, 32, 32) and sr.min() >= 0 and sr.max() <= 1
    # a checkpoint file gives the same rows as the model object
    path = models.save(model, tmp_path / "tiny.pt")
    again = ev.evaluate(str(path), [str(small_set5)], [2, 3.5], progress=False, chunk_size=300)
    assert [r["psnr"] for r in again] == pytest.approx([r["psnr"] for r in rows], abs=1e-9)
    assert again[0]["method"] == "tiny"
    # the library's bicubic model is the paper protocol's bicubic baseline
    named = ev.evaluate("bicubic", [str(small_set5)], [2, 3.5], progress=False)
    built = ev.evaluate(models.build("bicubic"), [str(small_set5)], [2, 3.5], progress=False)
    for a, b in zip(named, built):
        for key in ("psnr", "ssim", "lr_psnr"):
            assert a[key] == pytest.approx(b[key], abs=1e-9)
