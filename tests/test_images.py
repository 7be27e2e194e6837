"""course_lib.images: reading any image file as 8-bit RGB, and writing PNGs."""

import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.errors import CourseError
from course_lib.images import centre_box, centre_crop, load_image, load_image_uint8, save_image

RNG = np.random.default_rng(0)


def rgb_array(h=6, w=7):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_png16_rgb(path, arr):
    """A 16-bit RGB PNG written by hand (Pillow cannot write one): IHDR bit depth 16, colour type 2."""
    h, w, _ = arr.shape

    def chunk(kind, payload):
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_rgb_png_roundtrip(tmp_path):
    arr = rgb_array()
    Image.fromarray(arr).save(tmp_path / "a.png")
    u8 = load_image_uint8(tmp_path / "a.png")
    assert u8.dtype == torch.uint8 and u8.shape == (3, 6, 7)
    assert np.array_equal(u8.permute(1, 2, 0).numpy(), arr)
    f = load_image(tmp_path / "a.png")
    assert f.dtype == torch.float32 and torch.equal(f, u8.float() / 255)


@pytest.mark.parametrize("suffix", [".bmp", ".jpg"])
def test_other_formats(tmp_path, suffix):
    arr = rgb_array()
    Image.fromarray(arr).save(tmp_path / f"a{suffix}")
    oracle = np.asarray(Image.open(tmp_path / f"a{suffix}").convert("RGB"))
    assert np.array_equal(load_image_uint8(tmp_path / f"a{suffix}").permute(1, 2, 0).numpy(), oracle)


def test_greyscale_copied_to_rgb_with_a_note(tmp_path):
    grey = RNG.integers(0, 256, (5, 4), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    with pytest.warns(UserWarning, match=r"g\.png.*greyscale"):
        u8 = load_image_uint8(tmp_path / "g.png")
    assert u8.shape == (3, 5, 4)
    for c in range(3):
        assert np.array_equal(u8[c].numpy(), grey)


def test_keep_grey_returns_one_channel_silently(tmp_path, recwarn):
    grey = RNG.integers(0, 256, (5, 4), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    u8 = load_image_uint8(tmp_path / "g.png", keep_grey=True)
    assert u8.shape == (1, 5, 4) and np.array_equal(u8[0].numpy(), grey)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_rgba_drops_alpha(tmp_path):
    rgba = np.concatenate([rgb_array(), RNG.integers(0, 256, (6, 7, 1), dtype=np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with pytest.warns(UserWarning, match=r"a\.png.*alpha"):
        u8 = load_image_uint8(tmp_path / "a.png")
    assert np.array_equal(u8.permute(1, 2, 0).numpy(), rgba[:, :, :3])


def test_palette_converted(tmp_path):
    im = Image.fromarray(rgb_array()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    im.save(tmp_path / "p.png")
    with pytest.warns(UserWarning, match=r"p\.png.*palette"):
        u8 = load_image_uint8(tmp_path / "p.png")
    oracle = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    assert np.array_equal(u8.permute(1, 2, 0).numpy(), oracle)


def test_16bit_grey_scaled_not_truncated(tmp_path):
    v = np.array([[0, 257, 128], [65535, 40000, 1000]], dtype=np.uint16)
    Image.fromarray(v).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    with pytest.warns(UserWarning, match=r"g16\.png.*16-bit"):
        u8 = load_image_uint8(tmp_path / "g16.png")
    # by hand: 257 * 255 / 65535 = 1; 128 -> 0.498 -> 0; 40000 -> 155.64 -> 156; 1000 -> 3.89 -> 4
    expected = np.array([[0, 1, 0], [255, 156, 4]], dtype=np.uint8)
    assert np.array_equal(u8[0].numpy(), expected) and torch.equal(u8[0], u8[2])


def test_16bit_rgb_scaled_not_truncated(tmp_path):
    arr = RNG.integers(0, 65536, (4, 5, 3)).astype(np.uint16)
    arr[0, 0] = (2732, 65535, 0)  # 2732 * 255 / 65535 = 10.63 -> 11 (PIL alone would give the high byte, 10)
    write_png16_rgb(tmp_path / "c16.png", arr)
    with pytest.warns(UserWarning, match="16-bit"):
        u8 = load_image_uint8(tmp_path / "c16.png")
    expected = np.round(arr.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert np.array_equal(u8.permute(1, 2, 0).numpy(), expected)
    assert u8[:, 0, 0].tolist() == [11, 255, 0]


def test_not_an_image_names_the_file(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    with pytest.raises(CourseError, match="notes.png"):
        load_image_uint8(bad)
    with pytest.raises(CourseError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_save_image_rounds_and_creates_folders(tmp_path):
    x = torch.rand(1, 3, 5, 6)
    path = save_image(x, tmp_path / "sub" / "dir" / "out.png")
    back = load_image_uint8(path)
    assert torch.equal(back, (x[0] * 255).round().to(torch.uint8))
    save_image(x[0], tmp_path / "b.png")
    assert torch.equal(load_image_uint8(tmp_path / "b.png"), back)


@pytest.mark.parametrize("bad,msg", [
    (torch.rand(2, 3, 4, 4), "shape"),
    (torch.rand(4, 4), "shape"),
    (torch.full((3, 4, 4), float("nan")), "NaN"),
])
def test_save_image_bad_input(tmp_path, bad, msg):
    with pytest.raises(CourseError, match=msg):
        save_image(bad, tmp_path / "x.png")


def test_save_image_unknown_extension(tmp_path):
    with pytest.raises(CourseError, match="format"):
        save_image(torch.rand(3, 4, 4), tmp_path / "x.nope")


# ---------------------------------------------------------------------------------------------- issue 15: no data loss
def _crashing_save(self, fp, format=None, **params):
    """Stands in for PIL's encoder: writes a few bytes of the target, then fails (a full disk, a kill)."""
    if isinstance(fp, (str, bytes)) or hasattr(fp, "__fspath__"):
        with open(fp, "wb") as f:
            f.write(b"partial")
    else:
        fp.write(b"partial")
    raise OSError("No space left on device")


def test_a_crash_while_saving_keeps_the_existing_file(tmp_path, monkeypatch):
    path = save_image(torch.rand(3, 5, 6), tmp_path / "keep.png")
    before = path.read_bytes()
    monkeypatch.setattr(Image.Image, "save", _crashing_save)
    with pytest.raises(OSError, match="No space"):
        save_image(torch.rand(3, 5, 6), path)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


def test_save_image_replaces_the_file_instead_of_rewriting_it(tmp_path):
    path = save_image(torch.zeros(3, 5, 6), tmp_path / "a.png")
    before = path.read_bytes()
    os.link(path, tmp_path / "old.png")  # a second name of the same file: a rewrite in place would change it too
    save_image(torch.ones(3, 5, 6), path)
    assert (tmp_path / "old.png").read_bytes() == before
    assert torch.equal(load_image_uint8(path), torch.full((3, 5, 6), 255, dtype=torch.uint8))


@pytest.mark.parametrize("suffix", [".png", ".PNG", ".bmp", ".tif", ".tiff", ".webp"])
def test_lossless_formats_keep_every_pixel(tmp_path, suffix):
    x = torch.rand(3, 9, 11, generator=torch.Generator().manual_seed(1))
    path = save_image(x, tmp_path / f"a{suffix}")
    assert torch.equal(load_image_uint8(path), (x * 255).round().to(torch.uint8))


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".gif", ".pdf", ".ico"])
def test_lossy_formats_are_refused_in_one_line(tmp_path, suffix):
    with pytest.raises(CourseError) as err:
        save_image(torch.rand(3, 4, 4), tmp_path / f"x{suffix}")
    msg = str(err.value)
    assert "not a lossless format" in msg and ".png" in msg and "\n" not in msg
    assert not list(tmp_path.iterdir())


def test_save_image_into_a_directory_or_under_a_file(tmp_path):
    with pytest.raises(CourseError, match="is a directory"):
        save_image(torch.rand(3, 4, 4), tmp_path)
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(CourseError, match=r"lies under .*f\.png, which is a file"):
        save_image(torch.rand(3, 4, 4), tmp_path / "f.png" / "x.png")


@pytest.mark.parametrize("shape, side, rows, cols", [
    ((3, 7, 9), 3, (2, 5), (3, 6)),      # odd margins: (7 - 3) // 2 = 2, (9 - 3) // 2 = 3
    ((3, 8, 8), 3, (2, 5), (2, 5)),      # (8 - 3) // 2 = 2: the extra row and column fall below and right
    ((1, 3, 6, 4), 5, (0, 5), (0, 4)),   # a batch; W = 4 < 5 is kept whole
    ((5, 4), 8, (0, 5), (0, 4)),         # both dimensions shorter: the image itself
    ((3, 6, 6), 6, (0, 6), (0, 6)),
])
def test_centre_crop_by_hand(shape, side, rows, cols):
    img = torch.arange(int(np.prod(shape))).reshape(shape)
    assert torch.equal(centre_crop(img, side), img[..., rows[0]:rows[1], cols[0]:cols[1]])
    assert centre_crop(img, np.int64(side)).shape == centre_crop(img, side).shape  # numpy integers are sides too
    assert centre_crop(img, None) is img


@pytest.mark.parametrize("shape, side, box", [
    ((7, 9), 3, (2, 3, 3, 3)),           # hand-computed: (7 - 3) // 2 = 2, (9 - 3) // 2 = 3
    (torch.Size([1, 3, 6, 4]), 5, (0, 0, 5, 4)),  # W = 4 < 5 is kept whole; a torch.Size works
    ((3, 5, 4), 8, (0, 0, 5, 4)),
    ((480, 321), 256, (112, 32, 256, 256)),
])
def test_centre_box_by_hand_and_as_centre_crop_cuts(shape, side, box):
    assert centre_box(shape, side) == box
    assert all(type(v) is int for v in centre_box(shape, np.int64(side)))
    img = torch.arange(int(np.prod(shape))).reshape(tuple(shape))
    top, left, height, width = box
    assert torch.equal(centre_crop(img, side), img[..., top:top + height, left:left + width])


@pytest.mark.parametrize("shape", [(5,), (0, 4), (4, 2.5), None, "64x64"])
def test_centre_box_rejects_a_bad_size(shape):
    with pytest.raises(CourseError, match=r"centre_box needs an image size \(\.\.\., H, W\)"):
        centre_box(shape, 3)


def test_centre_crop_of_a_centre_crop():
    # a centred crop of side c of the centred crop of side s (s - c even) is the centred crop of side c: the GPU
    # payload packs 256-px crops that lesson 10 crops again to 96 px
    img = torch.arange(3 * 321 * 480).reshape(3, 321, 480)
    assert torch.equal(centre_crop(centre_crop(img, 256), 96), centre_crop(img, 96))


@pytest.mark.parametrize("side", [0, -3, 2.5, True, "64"])
def test_centre_crop_rejects_a_bad_side(side):
    with pytest.raises(CourseError, match="crop side must be a positive number of pixels"):
        centre_crop(torch.zeros(3, 8, 8), side)
    with pytest.raises(CourseError, match="crop side must be a positive number of pixels"):
        centre_box((8, 8), side)


def test_normalize_by_hand_and_inverse():
    from course_lib import convsr, images, models

    x = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.equal(images.normalize(x), torch.tensor([-1.0, -0.5, 0.0, 1.0]))  # (x - 0.5) / 0.5 by hand
    y = torch.rand(2, 3, 5, 7)
    assert torch.allclose(images.denormalize(images.normalize(y)), y, atol=1e-7)
    # unclamped:
    assert torch.equal(images.denormalize(torch.tensor([-1.5, 0.0, 1.5])), torch.tensor([-0.25, 0.5, 1.25]))
    # every model family reads and returns the same space: SRModel (DIINN, LIIF, Meta-SR) and ConvSR (MemNet, SRResNet)
    for cls in (models.SRModel, convsr.ConvSR):
        assert cls.normalize is images.normalize and cls.denormalize is images.denormalize
