"""The shipped fixed-scale checkpoint memnet-m3r3-cpu (lesson 11): what its index entry claims, and that shipping it
changes nothing for the arbitrary-scale default (``models.best_pretrained("diinn")``, ``upscale``'s default model,
``list-pretrained``). tests/test_pretrained.py re-evaluates its Set5 x2 / x4 paper rows like every shipped model."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import evaluate, models, upscale
from course_lib.__main__ import main
from course_lib.images import load_image

NAME = "memnet-m3r3-cpu"
INDEX = models.list_pretrained()
ENTRY = INDEX[NAME]


def rows(protocol="paper", dataset="Set5"):
    return {r["scale"]: r for r in ENTRY["results"] if r["protocol"] == protocol and r["dataset"] == dataset}


def test_entry_is_a_small_fp16_memnet_m3r3_trained_at_x4():
    path = models.PRETRAINED_DIR / ENTRY["file"]
    assert path.stat().st_size < 1_000_000
    assert models.sha256_file(path) == ENTRY["sha256"]
    assert ENTRY["config"] == {"name": "memnet", "blocks": 3, "recursions": 3, "multi_supervised": True}
    ckpt = models.read_checkpoint(path)
    floats = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    train_config = ckpt["extra"]["train_config"]
    assert train_config["data"]["scales"] == [4.0] and ckpt["extra"]["step"] == 2528
    model = models.load_pretrained(NAME)
    conv = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d) for p in m.parameters())
    assert conv == 284_417  # 004's M3R3 (reference notes, sec. 3.2)
    assert "docs/CHECKPOINTS.md" in ENTRY["trained"] and "x4" in ENTRY["trained"]


def test_stored_rows_cover_both_protocols_and_beat_bicubic_only_at_x4():
    bicubic = {("paper", "Set5"): {2.0: 31.81, 3.0: 28.63, 4.0: 26.70},  # the DIINN paper's Table 1
               ("paper", "Set14"): {2.0: 28.33, 3.0: 25.74, 4.0: 24.24},
               ("standard", "Set5"): {2.0: 33.66, 3.0: 30.39, 4.0: 28.42},  # MemNet's README (reference notes 3.1)
               ("standard", "Set14"): {4.0: 26.00}}  # Ledig / the notes (Y, shave)
    for (protocol, dataset), ref in bicubic.items():
        stored = rows(protocol, dataset)
        assert set(stored) == {2.0, 3.0, 4.0}, (protocol, dataset)
        assert stored[4.0]["psnr"] > ref[4.0] + 0.25, (protocol, dataset)  # its trained scale
        for s in (2.0, 3.0):  # outside it: below bicubic, as docs/CHECKPOINTS.md and lesson 11 say
            if s in ref:
                assert stored[s]["psnr"] < ref[s], (protocol, dataset, s)


def test_standard_protocol_row_reproduces(course_data):
    model = models.load_pretrained(NAME)
    (row,) = evaluate.evaluate(model, ["Set5"], [4], protocol="standard", progress=False)
    stored = rows("standard")[4.0]
    assert abs(row["psnr"] - stored["psnr"]) < 0.01 and abs(row["ssim"] - stored["ssim"]) < 0.0005


def test_the_default_model_stays_the_best_shipped_diinn(monkeypatch):
    assert models.best_pretrained("memnet") == NAME
    best = models.best_pretrained("diinn")
    assert INDEX[best]["config"]["name"] == "diinn"
    assert upscale.default_model() == best
    # even a fixed-scale or MemNet entry with a far higher Set5 x4 never becomes the arbitrary-scale default
    fake = copy.deepcopy(INDEX)
    for name, family in ((NAME, "memnet"), ("srresnet-fake", "srresnet")):
        fake[name] = copy.deepcopy(ENTRY)
        fake[name]["config"] = {**ENTRY["config"], "name": family}
        for r in fake[name]["results"]:
            r["psnr"] = 60.0
    monkeypatch.setattr(models, "_index", lambda: fake)
    assert models.best_pretrained("diinn") == best and upscale.default_model() == best


def test_list_pretrained_prints_every_entry_with_its_protocols(capsys):
    assert main(["list-pretrained"]) == 0
    out = capsys.readouterr().out
    heads = [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")]
    assert heads == list(INDEX)  # the DIINN checkpoints are still listed, in index order
    assert f"{NAME}: memnet(blocks=3, multi_supervised=True, recursions=3)" in out
    assert "Set5 x4 (paper): PSNR 27.14 dB" in out and "Set5 x4 (standard): PSNR 28.92 dB" in out


def test_list_pretrained_by_name_and_its_refusals(capsys):
    assert main(["list-pretrained", NAME]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")] == [NAME]
    assert main(["list-pretrained", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no shipped checkpoint named 'no-such-model'; shipped: ") and NAME in err
    assert len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as stop:  # argparse: an unknown option is refused, --help prints the usage
        main(["list-pretrained", "--x"])
    assert stop.value.code == 2


def test_upscale_cli_with_the_memnet_checkpoint(tmp_path, capsys):
    rng = np.random.default_rng(0)
    src = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "out.png"
    assert main(["upscale", str(src), str(out), "--scale", "4", "--model", NAME, "--device", "cpu",
                 "--precision", "fp32", "--quiet"]) == 0
    assert "memnet(blocks=3" in capsys.readouterr().out
    oracle = models.load_pretrained(NAME).upscale(load_image(src)[None], scale=4)[0]
    assert load_image(out).shape == (3, 48, 64)
    assert (load_image(out) - oracle).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("scale", [3, 2.5])
def test_memnet_runs_at_other_scales_but_srresnet_refuses(scale):
    """Pre-upsampling runs at any scale (the x2/x3 rows above say how well); post-upsampling cannot."""
    lr = torch.rand(1, 3, 10, 12)
    sr = models.load_pretrained(NAME).upscale(lr, scale=scale)
    assert sr.shape[-2:] == (round(10 * scale), round(12 * scale))
    from course_lib.errors import CourseError

    with pytest.raises(CourseError, match="fixed x4 model"):
        models.build("srresnet", blocks=1).upscale(lr, scale=scale)
