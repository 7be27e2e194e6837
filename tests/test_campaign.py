"""scripts/gpu_campaign.py end to end on a CPU with a tiny budget: pack, train in windows, resume, export."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import models, train
from course_lib.errors import CourseError
from course_lib.images import load_image_uint8

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_campaign.py"
spec = importlib.util.spec_from_file_location("gpu_campaign", SCRIPT)
campaign = importlib.util.module_from_spec(spec)
spec.loader.exec_module(campaign)


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A tiny course data folder: T91 (3 RGB images), BSD200 (2, one greyscale), Set5 (1)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for name, n in (("T91", 3), ("BSD200", 2), ("Set5", 1)):
        folder = root / name / "HR"
        folder.mkdir(parents=True)
        for i in range(n):
            small = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((28, 24), Image.BICUBIC)
            (img.convert("L") if name == "BSD200" and i == 1 else img).save(folder / f"im{i}.png")
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))
    return root


def test_pack_is_lossless_webp(data_root, tmp_path):
    out = tmp_path / "packed"
    summary = campaign.pack(["T91", "BSD200"], out)
    assert summary["T91"][0] == 3 and summary["BSD200"][0] == 2
    for name in ("T91", "BSD200"):
        for png in sorted((data_root / name / "HR").glob("*.png")):
            webp = out / name / "HR" / f"{png.stem}.webp"
            assert torch.equal(load_image_uint8(webp), load_image_uint8(png))  # greyscale: the same 3 channels


def test_pack_limit_and_crop_keep_the_centred_crops_of_the_first_images(data_root, tmp_path):
    """A packed centred crop (side 20 of 24 x 28 images; side 30 keeps the 24 rows whole) holds the centred 16-px (and
    14-px) crops of the originals exactly: what lesson 10 scores. Only the first `limit` images are packed."""
    for side, inner in ((20, 16), (30, 14)):
        out = tmp_path / f"packed{side}"
        assert campaign.pack(["T91"], out, limit=2, crop=side)["T91"][0] == 2
        packed = sorted((out / "T91" / "HR").glob("*.webp"))
        assert [p.stem for p in packed] == ["im0", "im1"]
        for webp in packed:
            small, whole = load_image_uint8(webp), load_image_uint8(data_root / "T91" / "HR" / f"{webp.stem}.png")
            assert small.shape == (3, min(24, side), min(28, side))
            crops = [img[:, (img.shape[1] - inner) // 2:(img.shape[1] - inner) // 2 + inner,
                         (img.shape[2] - inner) // 2:(img.shape[2] - inner) // 2 + inner] for img in (small, whole)]
            assert torch.equal(*crops)
    campaign.pack(["T91"], tmp_path / "packed20", limit=2, crop=None)  # packed again whole: written again
    assert load_image_uint8(tmp_path / "packed20" / "T91" / "HR" / "im0.webp").shape == (3, 24, 28)
    with pytest.raises(CourseError, match="crop must be a positive side"):
        campaign.pack(["T91"], tmp_path / "bad", crop=0)


def test_state_split_and_restore(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    blob = bytes(range(256)) * 41  # 10,496 bytes
    (run / "last.pt").write_bytes(blob)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    monkeypatch.setattr(campaign, "PART_BYTES", 4000)
    written = campaign.save_state(run, tmp_path / "state")
    parts = sorted((tmp_path / "state").glob("last.pt.part*"))
    assert [p.stat().st_size for p in parts] == [4000, 4000, 2496] and len(written) == 4
    assert b"".join(p.read_bytes() for p in parts) == blob
    with pytest.raises(CourseError):  # not a training checkpoint: restore refuses it in one line
        campaign.restore_state(tmp_path / "state", tmp_path / "run2")
    assert campaign.restore_state(tmp_path / "empty", tmp_path / "run3") is False


def test_windows_resume_and_finish_export(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(campaign, "PART_BYTES", 2 * 2**20)  # a 6 MB state in 3 parts
    o = ["model.encoder=edsr-less", "data.patch=8", "data.scales=[2]", "data.batch_size=2", "data.num_workers=0",
         "data.cache=false", "run.max_minutes=0.3", "run.calibrate_steps=2", "run.amp=off", "run.device=cpu",
         "val.every=0", "val.scales=[2]", "run.save_every=2", "run.log_every=2", "optim.warmup_steps=2"]
    state, run = tmp_path / "state", tmp_path / "run"
    common = ["--config", "diinn-edsr-291", "-o", *o, "--run-dir", str(run)]
    assert campaign.main(["train", *common, "--minutes", "0.1", "--state-out", str(state)]) == 0
    first = train.load_checkpoint(run / "last.pt")
    planned = first["plan"]  # measured after step 5 + 2; None if the 6 s window closed first (a loaded machine)
    assert 1 <= first["step"] < (planned["max_steps"] if planned else 7)  # stopped by the window, not the plan
    assert len(list(state.glob("last.pt.part*"))) >= 2
    fresh = tmp_path / "fresh"  # a new machine: the run folder comes back from the state alone
    assert campaign.main(["train", *common[:-1], str(fresh), "--state-in", str(state), "--state-out",
                          str(state)]) == 0
    done = train.load_checkpoint(fresh / "last.pt")
    assert done["step"] == done["plan"]["max_steps"] > first["step"]  # resumed, planned, ran to its end
    if planned:  # resumed on window 1's plan (its measured speed), not planned again
        assert done["plan"]["steps_per_s"] == planned["steps_per_s"]
    assert "restored" in capsys.readouterr().out
    out = tmp_path / "out"
    assert campaign.main(["finish", *common[:-1], str(tmp_path / "again"), "--state-in", str(state), "--out",
                          str(out), "--sets", "Set5", "--scales", "2"]) == 0
    index = json.loads((out / "index.json").read_text())["diinn-edsr-291"]
    assert index["sha256"] == models.sha256_file(out / "diinn-edsr-291.pt")
    assert index["results"][0]["dataset"] == "Set5" and index["results"][0]["scale"] == 2.0
    assert f"{done['step']} steps of configs/diinn-edsr-291.yaml" in index["trained"]
    model = models.load(out / "diinn-edsr-291.pt")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 on disk, fp32 when loaded


def test_snapshot_needs_a_saved_state(tmp_path, capsys):
    assert campaign.main(["snapshot", "--run-dir", str(tmp_path), "--state-out", str(tmp_path / "s")]) == 2
    assert "holds no last.pt yet" in capsys.readouterr().err
