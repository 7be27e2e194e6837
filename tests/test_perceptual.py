"""ImageNet backbones (course_lib.imagenet), YCbCr and 004's AlexNet-feature metric (course_lib.metrics), and the
metric in evaluate (lesson 11 planned). No ImageNet weights exist on the test machines: the tests use randomly
initialised layers through the same code path (``weights="random"``, labelled as such) and torchvision's own
modules as oracles, and check that the real thing refuses, in one line, when its weights are missing."""

import numpy as np
import pytest
import skimage.color
import torch
import torchvision
from conftest import write_images

from course_lib import evaluate, imagenet, metrics
from course_lib.errors import CourseError


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty $COURSE_WEIGHTS_DIR and torch cache."""
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(metrics, "_ALEX_CACHE", {})
    return tmp_path


# ------------------------------------------------------------------------------------------------ backbones
def test_backbones_are_torchvisions_layers():
    vgg, alex = imagenet.build_features("vgg19"), imagenet.build_features("alexnet")
    assert sum(p.numel() for p in vgg.parameters()) == 20_024_384  # the note's features[:36]
    assert sum(p.numel() for p in alex.parameters()) == 2_469_696
    tv_vgg = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])[:36]
    tv_alex = torchvision.models.alexnet().features
    for mine, theirs in ((vgg, tv_vgg), (alex, tv_alex)):
        shapes = {k: v.shape for k, v in theirs.state_dict().items()}
        assert {k: v.shape for k, v in mine.state_dict().items()} == shapes
        assert [type(m) for m in mine] == [type(m) for m in theirs]
    assert isinstance(vgg[35], torch.nn.ReLU) and len(vgg) == 36  # after conv5_4's ReLU, before the last pool


def test_weights_load_from_a_torchvision_style_file(tmp_path):
    """A whole-model state dict (``features.N.*`` and ``classifier.*`` keys) loads; the features match
    torchvision's AlexNet with those weights."""
    torch.manual_seed(1)
    tv = torchvision.models.alexnet().eval()
    torch.save(tv.state_dict(), tmp_path / "my_alexnet.pth")
    net = imagenet.load_backbone("alexnet", tmp_path / "my_alexnet.pth")
    assert net.weights_source == str(tmp_path / "my_alexnet.pth") and not net.training
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.rand(2, 3, 70, 90)
    torch.testing.assert_close(net(x), tv.features(x))
    random = imagenet.load_backbone("alexnet", "random")
    assert random.weights_source == imagenet.RANDOM_LABEL and "NOT ImageNet" in random.weights_source
    assert torch.equal(random[0].weight, imagenet.load_backbone("alexnet", "random")[0].weight)  # seeded


def test_missing_weights_refuse_in_one_line_saying_how_to_get_them(no_weights, monkeypatch):
    for name, file in (("alexnet", "alexnet-owt-7be5be79.pth"), ("vgg19", "vgg19-dcbb9e9d.pth")):
        with pytest.raises(CourseError) as err:
            imagenet.load_backbone(name, download=False)
        text = str(err.value)
        assert "\n" not in text and file in text and "weights='random'" in text and "Colab" in text

    def offline(name):
        raise OSError("no network")

    monkeypatch.setattr(imagenet, "_download", offline)
    with pytest.raises(CourseError, match=r"the download failed \(OSError\).*alexnet-owt-7be5be79\.pth"):
        imagenet.load_backbone("alexnet")
    with pytest.raises(CourseError, match="no ImageNet weights for alexnet"):
        metrics.alex_similarity(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_weights_dir_is_searched_and_hashes_checked(no_weights):
    folder = no_weights / "weights"
    folder.mkdir()
    torch.save(torchvision.models.alexnet().state_dict(), folder / "alexnet-owt-7be5be79.pth")  # not the real file
    assert imagenet.cached_file("alexnet") == folder / "alexnet-owt-7be5be79.pth"
    with pytest.raises(CourseError, match="does not match the hash in its name"):
        imagenet.load_backbone("alexnet", download=False)
    state = imagenet.build_features("alexnet").state_dict()
    torch.save({**state, "0.weight": torch.zeros(1)}, no_weights / "wrong.pth")
    with pytest.raises(CourseError, match=r"not alexnet's torchvision weights \(0.weight has shape \(1,\)"):
        imagenet.load_backbone("alexnet", no_weights / "wrong.pth")
    torch.save({"features.0.weight": state["0.weight"]}, no_weights / "part.pth")
    with pytest.raises(CourseError, match=r"\(9 weights missing \(e.g. 0.bias\)\)"):
        imagenet.load_backbone("alexnet", no_weights / "part.pth")


# ------------------------------------------------------------------------------------------------ colour
def test_ycbcr_equals_scikit_image():
    rgb = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    ycc = metrics.rgb_to_ycbcr(rgb)
    ref = skimage.color.rgb2ycbcr(rgb.permute(0, 2, 3, 1).numpy()) / 255.0
    np.testing.assert_allclose(ycc.permute(0, 2, 3, 1).numpy(), ref, rtol=0, atol=1e-12)
    back = skimage.color.ycbcr2rgb(ycc.permute(0, 2, 3, 1).numpy() * 255.0)
    np.testing.assert_allclose(metrics.ycbcr_to_rgb(ycc).permute(0, 2, 3, 1).numpy(), back, rtol=0, atol=1e-12)
    torch.testing.assert_close(metrics.ycbcr_to_rgb(ycc), rgb)
    y_u8 = metrics.rgb_to_y(torch.round(rgb * 255))  # the standard protocol's rounded Y is the same luma
    torch.testing.assert_close(torch.floor(metrics.rgb_to_ycbcr(torch.round(rgb * 255) / 255)[:, :1] * 255 + 0.5),
                               y_u8)


# ------------------------------------------------------------------------------------------------ the metric
def test_cosine_similarity_by_hand():
    a = torch.tensor([[1.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    b = torch.tensor([[1.0, 1.0, 0.0], [4.0, 3.0, 0.0]])
    torch.testing.assert_close(metrics.cosine_similarity(a, b), torch.tensor([1 / 2**0.5, 24 / 25],
                                                                              dtype=torch.float64))
    with pytest.raises(CourseError, match="all zeros"):
        metrics.cosine_similarity(torch.zeros(1, 3), a[:1])


@pytest.mark.parametrize("size", [(300, 400), (257, 180), (100, 100), (256, 259)])  # last: a crop offset of 17.5
def test_preset_preprocessing_is_torchvisions(size):
    img = torch.rand(2, 3, *size)
    preset = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.transforms()
    torch.testing.assert_close(metrics.alex_preprocess(img, "preset"), preset(img), rtol=0, atol=1e-5)
    torch.testing.assert_close(metrics.alex_preprocess(img, "full"), imagenet.imagenet_normalize(img))


def test_alex_features_are_alexnets_pooled_9216_vector():
    """Oracle: torchvision's AlexNet with the same weights, up to the input of its first FC layer."""
    net = metrics.alex_network("random")
    tv = torchvision.models.alexnet().eval()
    tv.features.load_state_dict(net.state_dict())
    img = torch.rand(2, 3, 260, 300)  # "full": 7x8 feature maps, so the 6x6 pool averages
    for preprocess in ("preset", "full"):
        f = metrics.alex_features(img, net, preprocess=preprocess)
        x = metrics.alex_preprocess(img, preprocess)
        with torch.no_grad():
            ref = torch.flatten(tv.avgpool(tv.features(x)), 1)
        assert f.shape == (2, metrics.ALEX_DIM) == ref.shape and (f >= 0).all()
        torch.testing.assert_close(f, ref)
    with pytest.raises(CourseError, match="at least 63x63"):
        metrics.alex_features(torch.rand(1, 3, 40, 80), net, preprocess="full")


def test_alex_similarity_is_the_cosine_of_the_features():
    net = metrics.alex_network("random")
    torch.manual_seed(0)
    hr = torch.rand(3, 3, 64, 64)
    sr = (hr + 0.2 * torch.randn_like(hr)).clamp(0, 1)
    per_image = metrics.alex_similarity_per_image(sr, hr, net)
    a, b = metrics.alex_features(sr, net).double(), metrics.alex_features(hr, net).double()
    by_hand = torch.stack([a[i] @ b[i] / (a[i].norm() * b[i].norm()) for i in range(3)])
    torch.testing.assert_close(per_image, by_hand)
    assert metrics.alex_similarity(sr, hr, net) == pytest.approx(by_hand.mean().item())
    assert metrics.alex_similarity(hr, hr, net) == pytest.approx(1.0, abs=1e-6)
    assert all(0 <= v < 1 - 1e-6 for v in per_image.tolist())
    grey = metrics.alex_similarity(sr[:, :1], hr[:, :1], net)  # a grey image is copied to R, G and B
    assert grey == pytest.approx(metrics.alex_similarity(sr[:, :1].expand(-1, 3, -1, -1),
                                                         hr[:, :1].expand(-1, 3, -1, -1), net))


# ------------------------------------------------------------------------------------------------ evaluate
def test_evaluate_adds_alex_only_when_asked(tmp_path):
    folder = write_images(tmp_path / "imgs", 2, size=(32, 36))
    plain = evaluate.evaluate("bicubic", [folder], [2], progress=False)
    assert list(plain[0]) == ["dataset", "scale", "method", "protocol", "psnr", "ssim", "lr_psnr", "n_images",
                              "seconds"]
    rows = evaluate.evaluate("bicubic", [folder], [2], progress=False, metrics=["psnr", "ssim", "alex"],
                             alex_weights="random", per_image=True)
    for k in ("psnr", "ssim", "lr_psnr"):
        assert rows[0][k] == plain[0][k]
    assert rows[0]["alex_weights"] == imagenet.RANDOM_LABEL
    scores = [im["alex"] for im in rows[0]["images"]]
    assert rows[0]["alex"] == pytest.approx(sum(scores) / 2) and all(0 < v <= 1 for v in scores)
    table = evaluate.format_table(rows)
    assert "ALEX" in table and "NOT ImageNet" in table and f"/ {rows[0]['alex']:.3f} |" in table
    assert "ALEX" not in evaluate.format_table(plain)
    with pytest.raises(CourseError, match="unknown metric 'lpips'"):
        evaluate.evaluate("bicubic", [folder], [2], progress=False, metrics=["lpips"])


def test_evaluate_refuses_alex_without_weights_before_any_work(no_weights, monkeypatch):
    def offline(name):
        raise OSError("no network")

    monkeypatch.setattr(imagenet, "_download", offline)
    missing = no_weights / "not-a-folder"  # the weights are checked first: this folder is never opened
    with pytest.raises(CourseError, match="no ImageNet weights for alexnet"):
        evaluate.evaluate("bicubic", [missing], [2], progress=False, metrics=["alex"])
    with pytest.raises(CourseError, match="unknown dataset"):
        evaluate.evaluate("bicubic", [missing], [2], progress=False)


def test_cli_metrics_option(tmp_path, capsys):
    folder = write_images(tmp_path / "imgs", 1, size=(32, 36))
    assert evaluate.cli(["--datasets", str(folder), "--scales", "2", "--quiet", "--metrics", "psnr", "ssim", "alex",
                         "--alex-weights", "random"]) == 0
    out = capsys.readouterr().out
    assert "ALEX (AlexNet-feature cosine; weights: random (NOT ImageNet" in out
