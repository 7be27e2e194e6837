"""The shipped checkpoints: every index entry loads (sha256 verified) and reaches the numbers it claims."""

import json

import pytest
import torch

from course_lib import evaluate, models
from course_lib.errors import CourseError

INDEX = models.list_pretrained()


@pytest.mark.parametrize("name", sorted(INDEX))
def test_shipped_checkpoint_loads_and_matches_its_table(name, course_data):
    model = models.load_pretrained(name)
    assert model.config == INDEX[name]["config"]
    claimed = {(r["dataset"], r["scale"]): r for r in INDEX[name]["results"]
               if r.get("protocol", "paper") == "paper"}  # standard-protocol rows are stored beside them
    fixed = getattr(model, "fixed_scale", None) if getattr(model, "factor", 1) != 1 else None
    scales = [fixed] if fixed else [2, 4]  # a post-upsampling model (SRResNet) serves only its own scale
    assert all(("Set5", float(s)) in claimed for s in scales), f"each shipped model records its Set5 {scales} rows"
    for row in evaluate.evaluate(model, ["Set5"], scales, protocol="paper", progress=False):
        stored = claimed[("Set5", row["scale"])]
        assert abs(row["psnr"] - stored["psnr"]) < 0.01, (row["scale"], row["psnr"], stored["psnr"])
        assert abs(row["ssim"] - stored["ssim"]) < 0.0005


def test_corrupt_or_unknown_pretrained(tmp_path, monkeypatch):
    with pytest.raises(CourseError, match="no pretrained model named 'nope'"):
        models.load_pretrained("nope")
    model = models.build("diinn", encoder="edsr-less")
    models.save(model, tmp_path / "m.pt")
    (tmp_path / "index.json").write_text(json.dumps(
        {"m": {"file": "m.pt", "sha256": "0" * 64, "config": model.config, "results": []}}))
    monkeypatch.setattr(models, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(CourseError, match="corrupt"):
        models.load_pretrained("m")
    (tmp_path / "index.json").write_text(json.dumps(
        {"m": {"file": "m.pt", "sha256": models.sha256_file(tmp_path / "m.pt"), "config": model.config}}))
    assert torch.equal(models.load_pretrained("m").decoder.last_layer.weight, model.decoder.last_layer.weight)


def test_checkpoints_doc_lists_every_shipped_checkpoint_with_its_sha256():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "CHECKPOINTS.md").read_text()
    for name, entry in INDEX.items():
        assert f"`{name}`" in doc, f"docs/CHECKPOINTS.md does not describe {name}"
        assert entry["sha256"] in doc, f"docs/CHECKPOINTS.md lacks the sha256 of {name}"
        assert "docs/CHECKPOINTS.md" in entry["trained"]


def test_shipped_implicit_checkpoints_beat_bicubic_on_set5():
    """Only checkpoints that beat bicubic are shipped (paper protocol, Set5, every stored scale)."""
    bicubic = {2.0: 31.81, 3.0: 28.63, 4.0: 26.70}  # the paper's Table 1 (reproduced in test_evaluate.py)
    for name, entry in INDEX.items():
        if entry["config"]["name"] not in ("diinn", "liif"):  # fixed-scale models: test_pretrained_memnet.py
            continue
        rows = [r for r in entry["results"] if r["dataset"] == "Set5" and r["scale"] in bicubic
                and r.get("protocol", "paper") == "paper"]
        assert rows, name
        for r in rows:
            assert r["psnr"] > bicubic[r["scale"]] + 0.5, (name, r["scale"], r["psnr"])


IMPLICIT = sorted(n for n, e in INDEX.items() if e["config"]["name"] in ("diinn", "liif", "metasr"))


@pytest.mark.parametrize("name", IMPLICIT)
def test_fast_path_equals_reference_with_trained_weights(name, course_data):
    """docs/RESULTS.md: the fast decoder path computes the reference function with trained weights too. Measured on
    two crops of Set5's bird at x3 (normalised space, outputs of std about 0.65): 1.2e-7 to 6e-7; the bound is 2e-6."""
    from course_lib import data, decoders

    model = models.load_pretrained(name)
    img = data.get_dataset("Set5")[1].float() / 255  # bird
    for rows, cols in [(slice(100, 132), slice(100, 140)), (slice(0, 48), slice(0, 48))]:
        lr = img[None, :, rows, cols]
        size = (3 * lr.shape[2] + 1, 3 * lr.shape[3] - 1)
        with torch.no_grad():
            ref = decoders.use_fast_path(model, False).predict(lr, size)
            fast = decoders.use_fast_path(model, True).predict(lr, size)
        assert (fast - ref).abs().max() < 2e-6
