"""SRResNet / SRGAN (course_lib.srgan, lesson 11 planned): sizes by hand, the fixed x4 scale in upscale and
evaluate, exact tiles, the discriminator, and every loss against hand-computed values."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import write_images
from torch import nn

from course_lib import evaluate, models, srgan
from course_lib.errors import CourseError


def conv(cin, cout, k):
    return cin * cout * k * k + cout


def generator_params(blocks, c=64):
    """By hand: head conv9x9 + PReLU(1); per block two 3x3 convs, two BNs, one PReLU; conv3x3 + BN; two upsampling
    convs 64 -> 256 with a PReLU each; tail conv9x9 64 -> 3."""
    block = 2 * conv(c, c, 3) + 2 * 2 * c + 1
    return conv(3, c, 9) + 1 + blocks * block + conv(c, c, 3) + 2 * c + 2 * (conv(c, 4 * c, 3) + 1) + conv(c, 3, 9)


def discriminator_params(patch):
    stages = [(3, 64, False), (64, 64, True), (64, 128, True), (128, 128, True), (128, 256, True), (256, 256, True),
              (256, 512, True), (512, 512, True)]
    convs = sum(conv(a, b, 3) + (2 * b if bn else 0) for a, b, bn in stages)
    flat = 512 * (patch // 16) ** 2
    return convs + flat * 1024 + 1024 + 1024 + 1


# ------------------------------------------------------------------------------------------------ generator
def test_generator_has_the_papers_size_and_layers():
    model = models.build("srresnet")
    assert models.count_parameters(model) == generator_params(16) == 1_549_462  # the note's "about 1.55M"
    assert round(models.count_parameters(model) / 1e6, 2) == 1.55
    assert [type(m) for m in model.modules()].count(nn.PixelShuffle) == 2
    assert [type(m) for m in model.modules()].count(nn.PReLU) == 1 + 16 + 2
    assert models.count_parameters(models.build("srresnet", blocks=4)) == generator_params(4)
    assert models.REGISTRY["srresnet"] is srgan.build_srresnet and model.fixed_scale == 4


def test_generator_equals_the_papers_wiring():
    """Oracle: the layers applied by hand in the paper's order (long skip around the blocks and the conv + BN)."""
    torch.manual_seed(0)
    model = srgan.build_srresnet(blocks=2).double().eval()
    lr = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        first = model.head(lr)
        h = first
        for blk in model.body:
            h = h + blk.body(h)
        h = first + model.body_end(h)
        for k in range(2):
            conv_, shuffle, prelu = model.upsample[3 * k : 3 * k + 3]
            h = prelu(F.pixel_shuffle(conv_(h), 2))
        expected = model.tail(h)
        torch.testing.assert_close(model.predict(lr, (20, 24)), expected)
        torch.testing.assert_close(model(lr, (20, 24)), (expected * 0.5 + 0.5).clamp(0, 1))


def test_tiled_upscale_equals_one_pass_and_needs_the_whole_halo(monkeypatch):
    torch.manual_seed(0)
    model = srgan.build_srresnet(blocks=1).double()
    with torch.no_grad():
        model.tail.weight.mul_(0.05)  # outputs inside [0, 1], so the clamp hides nothing
    lr = torch.rand(1, 3, 25, 23, dtype=torch.float64)
    assert model.halo == 10
    with torch.no_grad():
        whole = model.eval()(lr, (100, 92))
    assert 0 < whole.min() and whole.max() < 1
    chunk = 48 * 48  # 12x12 LR cores: the middle ones have halos inside the image
    torch.testing.assert_close(model.upscale(lr, scale=4, chunk_size=chunk), whole, rtol=0, atol=1e-12)
    monkeypatch.setattr(srgan.SRResNet, "halo", property(lambda self: 2 * self.n_blocks + 7))
    assert (model.upscale(lr, scale=4, chunk_size=chunk) - whole).abs().max() > 1e-9


def test_fixed_scale_refuses_other_scales_in_one_line():
    model = srgan.build_srresnet(blocks=1)
    lr = torch.rand(1, 3, 6, 7)
    assert model.upscale(lr, scale=4).shape == (1, 3, 24, 28)
    assert model.upscale(lr, size=(24, 28)).shape == (1, 3, 24, 28)
    for kwargs in ({"scale": 3}, {"scale": 4.5}, {"size": (24, 27)}):
        with pytest.raises(CourseError, match="srresnet is a fixed x4 model: it cannot make") as err:
            model.upscale(lr, **kwargs)
        assert "\n" not in str(err.value) and "resize=True" in str(err.value)
    with pytest.raises(CourseError, match="fixed x4"):
        model(lr, (18, 21))


def test_resize_is_asked_for_and_said():
    torch.manual_seed(0)
    model = srgan.build_srresnet(blocks=1)
    lr = torch.rand(1, 3, 6, 7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = model.upscale(lr, scale=3, resize=True)
    assert out.shape == (1, 3, 18, 21)
    assert len(caught) == 1 and "resized to 18x21" in str(caught[0].message)
    x4 = model.upscale(lr, scale=4)
    expected = F.interpolate(x4, size=(18, 21), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = models.build("srresnet", blocks=2)
    models.save(model, tmp_path / "g.pt")
    back = models.load(tmp_path / "g.pt")
    assert back.config == {"name": "srresnet", "blocks": 2}
    lr = torch.rand(1, 3, 5, 5)
    torch.testing.assert_close(back.upscale(lr, scale=4), model.upscale(lr, scale=4), rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ evaluate
def test_evaluate_takes_a_fixed_scale_model_honestly(tmp_path):
    torch.manual_seed(0)
    folder = write_images(tmp_path / "odd", 2, size=(26, 30))  # 26 = 4 x 6.5: no exact x4 LR under "paper"
    model = srgan.build_srresnet(blocks=1)
    with pytest.raises(CourseError, match=r"fixed x4 model: evaluate it at scale 4 only \(asked for x3\)"):
        evaluate.evaluate(model, [folder], [3, 4], progress=False)
    with pytest.raises(CourseError, match=r"odd/im0 x4 \(paper protocol\).*protocol='standard' crops"):
        evaluate.evaluate(model, [folder], [4], progress=False)
    rows = evaluate.evaluate(model, [folder], [4], protocol="standard", progress=False)
    assert rows[0]["n_images"] == 2 and "resized_images" not in rows[0]
    rows = evaluate.evaluate(model, [folder], [3, 4], progress=False, resize_fixed=True)
    assert [r["resized_images"] for r in rows] == [2, 2]  # x3 always; x4: 26x30 from a 6x8 (or 7x8) LR


# ------------------------------------------------------------------------------------------------ discriminator
@pytest.mark.parametrize("patch,flat", [(96, 18_432), (64, 8_192)])
def test_discriminator_sizes(patch, flat):
    d = srgan.Discriminator(patch)
    assert d.flat == flat and models.count_parameters(d) == discriminator_params(patch)
    drops = [m for m in d.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 9 and all(m.p == 0.3 for m in drops)  # after every LeakyReLU (8 conv stages + dense)
    assert [m.stride[0] for m in d.modules() if isinstance(m, nn.Conv2d)] == [1, 2, 1, 2, 1, 2, 1, 2]
    out = d.eval()(torch.rand(3, 3, patch, patch) * 2 - 1)
    assert out.shape == (3,) and bool(((out > 0) & (out < 1)).all())


def test_discriminator_refuses_other_sizes():
    with pytest.raises(CourseError, match="built for 64x64 patches, got 96x96"):
        srgan.Discriminator(64)(torch.zeros(1, 3, 96, 96))
    with pytest.raises(CourseError, match="multiple of 16"):
        srgan.Discriminator(50)
    assert not any(isinstance(m, nn.Dropout) for m in srgan.Discriminator(64, dropout=0).modules())


# ------------------------------------------------------------------------------------------------ losses
def test_pixel_and_adversarial_losses_by_hand():
    sr = torch.tensor([[0.0, 0.5], [1.0, 0.25]])
    hr = torch.tensor([[0.5, 0.5], [0.0, 0.0]])
    assert srgan.pixel_loss(sr, hr).item() == pytest.approx((0.25 + 0 + 1 + 0.0625) / 4)
    assert srgan.pixel_loss(sr, hr, "l1").item() == pytest.approx((0.5 + 0 + 1 + 0.25) / 4)
    d_sr, d_hr = torch.tensor([0.2, 0.9]), torch.tensor([0.8, 0.6])
    assert srgan.generator_adversarial_loss(d_sr).item() == pytest.approx(((1 - 0.2) + (1 - 0.9)) / 2)
    assert srgan.generator_adversarial_loss(d_sr, "ledig").item() == pytest.approx(-(math.log(0.2) +
                                                                                       math.log(0.9)) / 2)
    assert srgan.discriminator_loss(d_hr, d_sr).item() == pytest.approx((0.2 + 0.4) / 2 + (0.2 + 0.9) / 2)
    bce = -(math.log(0.8) + math.log(0.6)) / 2 - (math.log(0.8) + math.log(0.1)) / 2
    assert srgan.discriminator_loss(d_hr, d_sr, "ledig").item() == pytest.approx(bce)
    with pytest.raises(CourseError, match="after the sigmoid"):
        srgan.generator_adversarial_loss(torch.tensor([1.5]))
    with pytest.raises(CourseError, match="form must be"):
        srgan.discriminator_loss(d_hr, d_sr, "wgan")


def test_vgg_content_loss_is_the_mse_of_torchvisions_conv5_4_features():
    """Oracle: torchvision's own VGG19 layers (``make_layers(cfgs["E"])[:36]``) with the same weights on the
    ImageNet-normalised images; the loss is their mean squared difference, and the generator's total adds it x 0.006."""
    torch.manual_seed(0)
    loss = srgan.VGGLoss(weights="random")
    assert "NOT ImageNet" in loss.weights_source
    oracle = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])[:36].eval()
    oracle.load_state_dict(loss.vgg.state_dict())
    sr = torch.rand(2, 3, 32, 32, requires_grad=True)
    hr = torch.rand(2, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    a, b = oracle((sr - mean) / std), oracle((hr - mean) / std)
    assert a.shape == (2, 512, 2, 2)
    expected = ((a - b) ** 2).sum() / a.numel()
    value = loss(sr, hr)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=0)
    value.backward()
    assert sr.grad.abs().sum() > 0 and all(p.grad is None for p in loss.parameters())
    d_sr = torch.tensor([0.3, 0.7])
    terms = srgan.generator_loss(sr, hr, d_sr, loss)
    by_hand = F.mse_loss(sr, hr) + 0.006 * expected + 1e-3 * (0.7 + 0.3) / 2
    torch.testing.assert_close(terms["total"], by_hand, rtol=1e-5, atol=0)
    assert srgan.generator_loss(sr, hr)["total"].item() == pytest.approx(F.mse_loss(sr, hr).item())  # pre-training


def test_content_loss_refuses_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(CourseError, match=r"no ImageNet weights for vgg19 .*vgg19-dcbb9e9d\.pth") as err:
        srgan.VGGLoss(download=False)
    assert "\n" not in str(err.value) and "weights='random'" in str(err.value)


def test_upscale_command_refuses_x3_in_one_line(tmp_path, capsys):
    from PIL import Image

    from course_lib.__main__ import main

    models.save(models.build("srresnet", blocks=1), tmp_path / "g.pt")
    Image.new("RGB", (7, 5), (120, 30, 200)).save(tmp_path / "in.png")
    assert main(["upscale", str(tmp_path / "in.png"), str(tmp_path / "x3.png"), "--scale", "3",
                 "--model", str(tmp_path / "g.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fixed x4 model: it cannot make x3 (5x7 -> 15x21)" in err
    assert not (tmp_path / "x3.png").exists()
    assert main(["upscale", str(tmp_path / "in.png"), str(tmp_path / "x4.png"), "--scale", "4",
                 "--model", str(tmp_path / "g.pt")]) == 0
    assert Image.open(tmp_path / "x4.png").size == (28, 20)
