"""course_lib.data: training-pair samplers, HR folders and the dataset registry (no network used)."""

import csv
import logging
import shutil
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode, Resize

from course_lib import data
from course_lib.errors import CourseError


@pytest.fixture
def folder(tmp_path):
    """Four small random RGB PNGs; c.png (20x24) is too small for a 24-px crop."""
    rng = np.random.default_rng(0)
    root = tmp_path / "hr"
    root.mkdir()
    for name, (h, w) in {"a": (40, 50), "b": (30, 33), "c": (20, 24), "d": (36, 28)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / f"{name}.png")
    return root


def to_u8(x):
    return (x * 255).round().to(torch.uint8)


def tv_bicubic(img_u8, size):
    """The authors' LR maker, torchvision's antialiased bicubic Resize on uint8 (independent of course_lib)."""
    return Resize(size, interpolation=InterpolationMode.BICUBIC, antialias=True)(img_u8)


def same(a, b):
    if isinstance(a, dict):
        return all(torch.equal(a[k], b[k]) for k in a)
    return all(torch.equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))


def samplers(hr):
    return [data.MultiScalePatches(hr, scales=(2, 3), patch=8, repeat=2, seed=5),
            data.LIIFPatches(hr, scale_min=1, scale_max=3, patch=8, sample_q=50, repeat=2, seed=5)]


# ------------------------------------------------------------------------------------------ samplers
def test_multiscale_shapes_and_collate(folder):
    ds = data.MultiScalePatches(data.HRFolder(folder), scales=(2, 3), patch=8, repeat=3)
    assert len(ds) == 12
    item = ds[0]
    assert [(lr.shape, hr.shape) for lr, hr in item] == [((3, 8, 8), (3, 16, 16)), ((3, 8, 8), (3, 24, 24))]
    assert all(t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1 for p in item for t in p)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert [[t.shape for t in pair] for pair in batch] == [[(4, 3, 8, 8), (4, 3, 16, 16)],
                                                           [(4, 3, 8, 8), (4, 3, 24, 24)]]


def test_multiscale_lr_is_bicubic_aa_of_the_hr_crop(folder):
    hr_set = data.HRFolder(folder)
    plain = data.MultiScalePatches(hr_set, scales=(2, 2.5), patch=8, augment=False, seed=1)
    for i in range(len(plain)):
        for lr, hr in plain[i]:
            assert torch.equal(to_u8(lr), tv_bicubic(to_u8(hr), (8, 8)))
            crop = to_u8(hr)
            img = hr_set[i]  # the crop really is a window of the image (no substitute needed at these sizes)
            windows = img.unfold(1, crop.shape[1], 1).unfold(2, crop.shape[2], 1)
            assert (windows == crop[:, None, None]).flatten(3).all(3).all(0).any()
    flipped = data.MultiScalePatches(hr_set, scales=(2,), patch=8, seed=1)
    for i in range(len(flipped)):  # flips commute with the symmetric resize up to float rounding
        lr, hr = flipped[i][0]
        assert (to_u8(lr).int() - tv_bicubic(to_u8(hr), (8, 8)).int()).abs().max() <= 1


def test_liif_item(folder):
    ds = data.LIIFPatches(data.HRFolder(folder), scale_min=1.5, scale_max=2.5, patch=8, sample_q=None,
                          augment=False, seed=2)
    for i in range(len(ds)):
        item = ds[i]
        q = item["gt"].shape[0]
        crop = int(round(q**0.5))
        assert crop * crop == q and 12 <= crop <= 20 and item["lr"].shape == (3, 8, 8)
        assert torch.allclose(item["cell"], torch.full((q, 2), 2 / crop))
        hr = item["gt"].t().reshape(3, crop, crop)  # all pixels, row-major
        assert torch.equal(to_u8(item["lr"]), tv_bicubic(to_u8(hr), (8, 8)))
        # oracle: nearest grid_sample of the crop at the coordinates gives back gt
        got = F.grid_sample(hr[None], item["coord"].flip(-1)[None, None], mode="nearest", align_corners=False)
        assert torch.equal(got[0, :, 0].t(), item["gt"])


def test_liif_samples_without_replacement(folder):
    ds = data.LIIFPatches(data.HRFolder(folder), scale_min=2, scale_max=2, patch=8, sample_q=200, seed=0)
    item = ds[1]
    assert item["coord"].shape == (200, 2) and item["cell"].shape == (200, 2) and item["gt"].shape == (200, 3)
    assert len(torch.unique(item["coord"], dim=0)) == 200
    assert item["coord"].abs().max() < 1
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["lr"].shape == (3, 3, 8, 8) and batch["gt"].shape == (3, 200, 3)


def test_deterministic_per_seed_epoch_index_and_no_global_rng(folder):
    hr = data.HRFolder(folder)
    for a, b in zip(samplers(hr), samplers(hr)):
        state = torch.get_rng_state()
        torch.manual_seed(123)
        first = a[3]
        torch.manual_seed(999)
        assert same(first, b[3])  # global RNG plays no part
        assert not same(first, a[2])
        a.set_epoch(1)
        assert not same(first, a[3])
        a.set_epoch(0)
        assert same(first, a[3])
        torch.set_rng_state(state)
    other = data.MultiScalePatches(hr, scales=(2, 3), patch=8, repeat=2, seed=6)
    assert not same(other[3], samplers(hr)[0][3])


def test_dataloader_workers_give_the_same_batches(folder):
    for ds in samplers(data.HRFolder(folder)):
        ds.set_epoch(2)
        one = list(DataLoader(ds, batch_size=3, num_workers=0))
        two = list(DataLoader(ds, batch_size=3, num_workers=2))
        for x, y in zip(one, two):
            if isinstance(x, dict):
                assert same(x, y)
            else:
                assert all(torch.equal(p, q) for px, py in zip(x, y) for p, q in zip(px, py))


def test_too_small_image_is_replaced_and_logged_once(folder, caplog):
    data._PatchSampler._logged.clear()
    ds = data.MultiScalePatches(data.HRFolder(folder), scales=(3,), patch=8, repeat=3, seed=0)  # 24-px crops
    with caplog.at_level(logging.INFO, logger="course_lib.data"):
        items = [ds[i] for i in range(len(ds))]  # c.png (20x24) three times
    assert all(hr.shape == (3, 24, 24) for item in items for _, hr in item)
    notes = [r.getMessage() for r in caplog.records if "smaller than" in r.getMessage()]
    assert len(notes) == 1 and "image c (20x24)" in notes[0]


def test_any_dataset_of_tensors_works_without_sizes():
    """A plain list of images (no ``sizes``, no ``names``): too-small images are found by loading them."""
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 20, 24), generator=gen, dtype=torch.uint8),
              torch.rand(3, 40, 50, generator=gen)]  # float images are rounded to uint8
    ds = data.MultiScalePatches(images, scales=(3,), patch=8, seed=0)
    for i in range(2):
        (lr, hr), = ds[i]
        assert hr.shape == (3, 24, 24) and lr.shape == (3, 8, 8)
    liif = data.LIIFPatches(images, scale_min=2.9, scale_max=3, patch=8, sample_q=10)
    assert liif[0]["gt"].shape == (10, 3)


def test_crop_larger_than_every_image_is_an_error(folder):
    with pytest.raises(CourseError, match="exceeds every image"):
        data.MultiScalePatches(data.HRFolder(folder), scales=(4,), patch=16)
    with pytest.raises(CourseError, match="sample_q"):
        data.LIIFPatches(data.HRFolder(folder), patch=8, sample_q=65)
    with pytest.raises(CourseError, match=">= 1"):
        data.MultiScalePatches(data.HRFolder(folder), scales=(0.5,), patch=8)


# ------------------------------------------------------------------------------------------ HRFolder
def test_hr_folder(folder):
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(folder / "e.bmp")
    (folder / "notes.txt").write_text("not an image")
    hr = data.HRFolder(folder)
    assert hr.names == ["a", "b", "c", "d", "e"] and len(hr) == 5
    img = hr[0]
    assert img.dtype == torch.uint8 and img.shape == (3, 40, 50)
    assert hr.sizes == [(40, 50), (30, 33), (20, 24), (36, 28), (5, 6)]
    assert data.HRFolder(folder, limit=2).names == ["a", "b"]
    assert data.HRFolder(folder, stems=["d", "b"]).names == ["b", "d"]
    with pytest.raises(IndexError):
        hr[5]


def test_hr_folder_cache_returns_the_same_pixels_and_reads_each_file_once(folder, monkeypatch):
    plain, cached = data.HRFolder(folder), data.HRFolder(folder, cache=True)
    reads = []
    real = data.load_image_uint8
    monkeypatch.setattr(data, "load_image_uint8", lambda p: reads.append(p) or real(p))
    for _ in range(3):
        for i in range(len(cached)):
            assert torch.equal(cached[i], real(plain.paths[i]))
    assert torch.equal(cached[-1], cached[len(cached) - 1])
    assert len(reads) == len(cached)  # each file decoded once


def test_webp_is_read_like_png(folder):
    img = data.HRFolder(folder)[0]
    Image.open(folder / "a.png").save(folder / "w.webp", lossless=True)
    hr = data.HRFolder(folder)
    assert "w" in hr.names and torch.equal(hr[hr.names.index("w")], img)


def test_training_images_join_folders_and_dataset_names(folder, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(other / "z.png")
    both = data.training_images([str(folder), str(other)])
    assert both.names == ["a", "b", "c", "d", "z"] and len(both) == 5
    assert both.sizes == [(40, 50), (30, 33), (20, 24), (36, 28), (12, 10)]
    assert torch.equal(both[4], data.HRFolder(other)[0]) and torch.equal(both[1], data.HRFolder(folder)[1])
    root = tmp_path / "root"
    for name in ("T91", "BSD200"):
        shutil.copytree(folder if name == "T91" else other, root / name / "HR")
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))
    assert data.training_images().names == ["a", "b", "c", "d", "z"]  # the default: T91 + BSD200
    assert data.training_images("BSD200").names == ["z"]
    with pytest.raises(CourseError, match="does not exist and is no dataset name"):
        data.training_images(["T91", str(tmp_path / "nope")])
    with pytest.raises(CourseError, match="no training folders"):
        data.ConcatHR([])


def test_hr_folder_errors(tmp_path, folder):
    with pytest.raises(CourseError, match="does not exist"):
        data.HRFolder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseError, match="holds no"):
        data.HRFolder(tmp_path / "empty")
    (folder / "broken.png").write_text("garbage")
    hr = data.HRFolder(folder)
    with pytest.raises(CourseError, match="broken.png"):
        hr[hr.names.index("broken")]


# ------------------------------------------------------------------------------------------ registry
@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty data root and no repository data folder, so nothing local is found."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "root"))
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "repo")
    return tmp_path / "root"


def test_unknown_dataset_lists_known():
    with pytest.raises(CourseError, match="Set5, Set14, B100, Urban100, T91"):
        data.get_dataset("Set15")


def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert data.data_dir() == tmp_path
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert data.data_dir() == data.REPO_ROOT / "data"


def test_local_folder_wins_without_network(course_data, monkeypatch):
    monkeypatch.setattr(data, "_fetch", lambda *a: pytest.fail("tried the network"))
    hr = data.get_dataset("Set5")
    assert hr.names == ["baby", "bird", "butterfly", "head", "woman"]
    assert hr.root == course_data / "Set5" / "HR"
    assert data.verify("Set5") == []


def test_registry_matches_the_manifest(data_dir):
    with open(data_dir / "MANIFEST.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for name in ("Set5", "Set14", "B100", "Urban100", "BSD200"):
        manifest = {r["file"].split("/")[-1]: r["sha256"] for r in rows if r["set"] == name}
        files = data.DATASETS[name].files()
        assert {f: sha for f, _, sha in files} == manifest
        assert all(url.startswith("https://raw.githubusercontent.com/") for _, url, _ in files)
    t91 = data.DATASETS["T91"].files()
    assert len(t91) == 91 and all(sha is None and f.endswith(".bmp") for f, _, sha in t91)  # BMP hash unknown
    assert data.DATASETS["DIV2K"].archive_sha256 is None and len(data.DATASETS["DIV2K"].stems) == 100


def test_no_local_copy_and_no_network_is_one_error(isolated, monkeypatch):
    def offline(url, folder, filename):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(data, "_fetch", offline)
    with pytest.raises(CourseError) as err:
        data.get_dataset("Set14")
    msg = str(err.value)
    assert str(isolated / "Set14" / "HR") in msg and "denoising_datasets" in msg and "\n" not in msg
    with pytest.raises(CourseError, match="Set5 not found: create"):
        data.dataset_folder("Set5", download_missing=False)


def test_download_checks_sha256(isolated, data_dir, monkeypatch):
    def fake_fetch(url, folder, filename):  # a "download" from the local course data
        assert url.startswith("https://raw.githubusercontent.com/majedelhelou/denoising_datasets/")
        shutil.copy(data_dir / "Set5" / "HR" / filename, folder / filename)

    monkeypatch.setattr(data, "_fetch", fake_fetch)
    hr = data.get_dataset("Set5", limit=2)
    assert hr.names == ["baby", "bird"] and hr.root == isolated / "Set5" / "HR"
    assert len(data.HRFolder(hr.root)) == 5 and data.verify("Set5") == []
    assert not (isolated / "Set5" / "download-Set5").exists()

    def corrupt_fetch(url, folder, filename):
        fake_fetch(url, folder, filename)
        if filename == "head.png":
            (folder / filename).write_bytes(b"corrupt")

    monkeypatch.setattr(data, "_fetch", corrupt_fetch)
    with pytest.raises(CourseError, match="head.png.*sha256"):
        data.download("Set5", isolated / "b")
    assert not (isolated / "b" / "Set5" / "HR").exists()  # nothing half-done looks like a local copy
    assert not (isolated / "b" / "Set5" / "download-Set5" / "head.png").exists()


def test_div2k_archive_download_is_sorted_into_place(isolated, monkeypatch):
    def fake_archive(url, download_root, extract_root):
        assert url.endswith("DIV2K_valid_HR.zip")
        out = extract_root / "DIV2K_valid_HR"
        out.mkdir(parents=True)
        for stem in ("0801", "0802"):
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / f"{stem}.png")

    monkeypatch.setattr(data, "_fetch_archive", fake_archive)
    hr = data.get_dataset("DIV2K")
    assert hr.names == ["0801", "0802"] and hr.root == isolated / "DIV2K" / "HR"
    with pytest.raises(CourseError, match="download failed"):
        monkeypatch.setattr(data, "_fetch_archive", lambda *a: (_ for _ in ()).throw(OSError("offline")))
        data.get_dataset("DIV2K-train")  # the valid images do not count for the train split


def test_verify_reports_a_corrupted_a_missing_and_an_unknown_file(data_dir, tmp_path):
    folder = tmp_path / "Set5"
    shutil.copytree(data_dir / "Set5" / "HR", folder)
    assert data.verify("Set5", folder) == []
    raw = bytearray((folder / "bird.png").read_bytes())
    raw[-20] ^= 0xFF  # one byte of the last chunk flipped: still a file of the same size and name
    (folder / "bird.png").write_bytes(bytes(raw))
    (folder / "head.png").unlink()
    shutil.copy(folder / "baby.png", folder / "extra.png")
    assert data.verify("Set5", folder) == [f"{folder / 'bird.png'}: sha256 differs", f"{folder / 'head.png'}: missing",
                                           f"{folder / 'extra.png'}: unknown file (not in the Set5 registry)"]


def test_verify_without_known_hashes_still_finds_a_missing_image(data_dir, tmp_path):
    """T91's registry lists BMP files without a sha256: any image of that name counts, a missing one does not."""
    folder = tmp_path / "T91"
    shutil.copytree(data_dir / "T91" / "HR", folder)
    assert data.verify("T91", folder) == []
    gone = sorted(folder.iterdir())[0]
    gone.unlink()
    assert data.verify("T91", folder) == [f"{folder / gone.stem}.bmp: missing"]


def test_crop_set_writes_the_centre_crops_under_a_labelled_folder(course_data, tmp_path):
    from course_lib import evaluate
    from course_lib.images import load_image_uint8

    folder = data.crop_set("Set14", 96, tmp_path / "crops", limit=3)
    assert folder == tmp_path / "crops" / "Set14-crop96"
    hr = data.get_dataset("Set14", limit=3)
    assert sorted(p.stem for p in folder.iterdir()) == sorted(hr.names)
    for i, name in enumerate(hr.names):  # the set's own pixels, by slicing by hand (Set14 images exceed 96 px)
        img = hr[i]
        top, left = (img.shape[1] - 96) // 2, (img.shape[2] - 96) // 2
        assert torch.equal(load_image_uint8(folder / f"{name}.png"), img[:, top:top + 96, left:left + 96])
    (row,) = evaluate.evaluate("bicubic", [folder], [2], progress=False)
    assert row["dataset"] == "Set14-crop96" and row["n_images"] == 3
    assert data.crop_set("Set14", 96, tmp_path / "crops", limit=3) == folder  # the same crops again: replaced
    with pytest.raises(CourseError, match=r"already holds 1 image\(s\) that are not among these crops"):
        data.crop_set("Set14", 96, tmp_path / "crops", limit=2)  # fewer: the third would be scored with them
    assert len(list(folder.iterdir())) == 3  # nothing deleted
