"""MemNet (course_lib.memnet, lesson 11 planned) against its published sizes, a functional re-implementation from the
prototxt's description, bicubic (zero body) and one-pass inference (tiles)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import memnet, metrics, models
from course_lib.errors import CourseError


def conv_params(blocks, recursions, c=64):
    """By hand: FENet 1->64 3x3; per block two shared 64->64 3x3 convs and the 1x1 gate over (m + R) x 64 channels;
    one 64->1 3x3 reconstruction conv (shared by the outputs)."""
    fe = 9 * c + c
    unit = 2 * (9 * c * c + c)
    gates = sum((m + recursions) * c * c + c for m in range(1, blocks + 1))
    return fe + blocks * unit + gates + 9 * c + 1


def bn_params(blocks, recursions, multi, c=64):
    """By hand: 2 per channel; the 1-channel input BN, two per pass, the gate's, one per output."""
    outs = blocks if multi else 1
    return 2 * (1 + blocks * recursions * 2 * c + sum((m + recursions) * c for m in range(1, blocks + 1)) + outs * c)


def count(model, kind):
    return sum(p.numel() for mod in model.modules() if isinstance(mod, kind) for p in mod.parameters(recurse=False))


def randomise_bn(model, seed=0):
    """Running statistics and affine parameters away from identity, so that a wrong BN would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


# ------------------------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize("blocks,recursions,published,depth", [(6, 6, 678_209, 80), (3, 3, 284_417, 23),
                                                               (4, 4, 403_393, 38)])
def test_conv_parameter_counts_are_the_published_ones(blocks, recursions, published, depth):
    """M6R6 678,209 (the note, from the prototxt) and 004's M3R3 / M4R4 (284,417 / 403,393; 23 and 38 layers)."""
    model = models.build("memnet", blocks=blocks, recursions=recursions)
    assert count(model, nn.Conv2d) == published == conv_params(blocks, recursions)
    assert count(model, nn.BatchNorm2d) == bn_params(blocks, recursions, True)
    assert model.net.depth == depth
    assert models.count_parameters(model) == published + bn_params(blocks, recursions, True) + blocks


def test_m6r6_batch_norm_count_and_single_supervision():
    multi = models.build("memnet")
    assert count(multi, nn.BatchNorm2d) == 17_282  # the note's figure for M6R6
    single = models.build("memnet", multi_supervised=False)
    assert count(single, nn.Conv2d) == 678_209 and single.net.out_weights is None
    assert count(single, nn.BatchNorm2d) == 17_282 - 5 * 128
    assert multi.net.out_weights.tolist() == pytest.approx([1 / 6] * 6)  # the DEFAULT start (Caffe: 1)


def test_recursions_share_one_conv_tensor_and_accumulate_its_gradient():
    """Each block has three conv layers (two shared by the R passes, the gate); the shared weight's gradient is the
    sum of the gradients of R separate copies (oracle: the block unrolled with cloned weights)."""
    torch.manual_seed(0)
    block = memnet.MemoryBlock(m=1, recursions=3, channels=4).double()
    randomise_bn(block).train()
    assert [type(m) for m in block.modules()].count(nn.Conv2d) == 3
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    block([x]).square().sum().backward()
    copies = [(block.conv1.weight.detach().clone().requires_grad_(), block.conv2.weight.detach().clone()
               .requires_grad_()) for _ in range(3)]
    h, shorts = x, []
    for (w1, w2), bn1, bn2 in zip(copies, block.bn1, block.bn2):
        t = F.conv2d(F.relu(bn1(h)), w1, block.conv1.bias, padding=1)
        h = F.conv2d(F.relu(bn2(t)), w2, block.conv2.bias, padding=1) + h
        shorts.append(h)
    cat = torch.cat([x] + shorts, 1)
    F.conv2d(F.relu(block.gate_bn(cat)), block.gate.weight, block.gate.bias).square().sum().backward()
    for shared, k in ((block.conv1.weight, 0), (block.conv2.weight, 1)):
        parts = [c[k].grad for c in copies]
        assert all(p.abs().sum() > 0 for p in parts)  # every pass contributes
        torch.testing.assert_close(shared.grad, sum(parts))


def memnet_oracle(net, x):
    """MemNet written from the prototxt's description with functional ops (eval-mode BN by its formula)."""
    def bn(mod, t):
        scale = mod.weight / torch.sqrt(mod.running_var + mod.eps)
        return (t - mod.running_mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1) + mod.bias.view(1, -1, 1, 1)

    def unit(bn_mod, conv, t):
        k = conv.weight.shape[-1]
        return F.conv2d(torch.clamp(bn(bn_mod, t), min=0), conv.weight, conv.bias, padding=k // 2)

    longs = [unit(net.fe_bn, net.fe, x)]
    for blk in net.blocks:
        h, shorts = longs[-1], []
        for r in range(net.recursions):
            h = unit(blk.bn2[r], blk.conv2, unit(blk.bn1[r], blk.conv1, h)) + h
            shorts.append(h)
        longs.append(unit(blk.gate_bn, blk.gate, torch.cat(longs + shorts, 1)))
    if not net.multi_supervised:
        return unit(net.rec_bn[0], net.rec, longs[-1]) + x
    return sum(w * (unit(b, net.rec, m) + x) for w, b, m in zip(net.out_weights, net.rec_bn, longs[1:]))


@pytest.mark.parametrize("multi", [True, False])
def test_forward_equals_the_functional_oracle(multi):
    torch.manual_seed(0)
    net = randomise_bn(memnet.MemNet(3, 2, multi, channels=5).double()).eval()
    if multi:
        with torch.no_grad():
            net.out_weights.copy_(torch.tensor([0.2, 0.5, 0.3]))
    x = torch.rand(2, 1, 7, 8, dtype=torch.float64)
    with torch.no_grad():
        y, ys = net.outputs(x)
        torch.testing.assert_close(y, memnet_oracle(net, x))
    assert len(ys) == (3 if multi else 1)


# ------------------------------------------------------------------------------------------------ colour, bicubic
@pytest.mark.parametrize("multi", [True, False])
def test_zero_reconstruction_gives_bicubic_exactly(multi):
    """The global residual: with the reconstruction conv at zero every y_m is the bicubic Y, the output weights sum to
    1, so the RGB output is the course's bicubic (``build("bicubic")``), Cb and Cr included."""
    torch.manual_seed(0)
    model = models.build("memnet", blocks=2, recursions=2, multi_supervised=multi)
    nn.init.zeros_(model.net.rec.weight)
    nn.init.zeros_(model.net.rec.bias)
    lr = torch.rand(2, 3, 6, 7)
    bicubic = models.build("bicubic").upscale(lr, scale=3)
    torch.testing.assert_close(model.upscale(lr, scale=3), bicubic, rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(lr, (18, 21)), bicubic, rtol=0, atol=1e-6)


def test_the_network_refines_y_and_cbcr_stay_bicubic():
    torch.manual_seed(0)
    model = models.build("memnet", blocks=2, recursions=1).eval()
    with torch.no_grad():
        model.net.rec.weight.mul_(0.02)  # a small change of Y, so that the output's clamp to [0, 1] does not act
    lr = torch.rand(1, 3, 8, 8) * 0.6 + 0.2
    out = model.upscale(lr, size=(20, 19))
    assert 0 < out.min() and out.max() < 1
    ycc_out = metrics.rgb_to_ycbcr(out.double())
    ycc_bic = metrics.rgb_to_ycbcr(models.build("bicubic").upscale(lr, size=(20, 19)).double())
    torch.testing.assert_close(ycc_out[:, 1:], ycc_bic[:, 1:], rtol=0, atol=1e-6)
    with torch.no_grad():
        y = model.net(ycc_bic[:, :1].float())
    torch.testing.assert_close(ycc_out[:, :1].float(), y, rtol=0, atol=1e-5)
    assert (y.double() - ycc_bic[:, :1]).abs().max() > 1e-2  # the network does change Y


# ------------------------------------------------------------------------------------------------ upscale
def test_tiled_upscale_equals_one_pass_and_needs_the_whole_radius(monkeypatch):
    torch.manual_seed(0)
    model = randomise_bn(models.build("memnet", blocks=2, recursions=2).double())  # float64: no rounding noise
    lr = torch.rand(2, 3, 9, 7, dtype=torch.float64)
    assert model.halo == 10
    with torch.no_grad():
        whole = model.eval()(lr, (27, 21))
    model.train()
    tiled = model.upscale(lr, scale=3, chunk_size=36)  # 6x6 cores: 20 tiles
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-12)
    assert model.training  # the flag is restored
    monkeypatch.setattr(memnet.MemNetSR, "halo", property(lambda self: self.net.radius - 1))
    assert (model.upscale(lr, scale=3, chunk_size=36) - whole).abs().max() > 1e-6


def test_upscale_leaves_batch_statistics_alone_and_works_at_any_scale():
    model = models.build("memnet", blocks=1, recursions=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lr = torch.rand(1, 3, 5, 6)
    assert model.upscale(lr, scale=2.5).shape == (1, 3, 12, 15)  # pre-upsampling: any real scale
    assert model.upscale(lr, size=(7, 31)).shape == (1, 3, 7, 31)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_save_load_roundtrip_through_the_registry(tmp_path):
    torch.manual_seed(0)
    model = models.build("memnet", blocks=2, recursions=3, multi_supervised=False)
    assert model.config == {"name": "memnet", "blocks": 2, "recursions": 3, "multi_supervised": False}
    assert models.REGISTRY["memnet"] is memnet.build_memnet
    models.save(model, tmp_path / "m.pt")
    back = models.load(tmp_path / "m.pt")
    lr = torch.rand(1, 3, 5, 6)
    torch.testing.assert_close(back.upscale(lr, scale=2), model.upscale(lr, scale=2), rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ loss
def test_losses_by_hand():
    t = torch.zeros(2, 1, 1, 2)
    y = torch.tensor([[[[1.0, 2.0]]], [[[0.0, 1.0]]]])  # squared errors 1 + 4 + 0 + 1 = 6
    assert memnet.euclidean_loss(y, t).item() == pytest.approx(6 / (2 * 2))
    ys = [torch.ones(2, 1, 1, 2), 2 * torch.ones(2, 1, 1, 2)]  # sums 4 and 16
    assert memnet.memnet_loss(y, ys, t).item() == pytest.approx(6 / 4 + 4 / 4 + 16 / 4)
    alpha = 1 / 3  # 004: alpha / (2 m N) ||y - t||^2 + sum (1 - alpha) / (2 m N) ||y_i - t||^2, m = 2, N = 2
    assert memnet.memnet_loss(y, ys, t, "004").item() == pytest.approx(alpha * 6 / 8 + (1 - alpha) * (4 + 16) / 8)
    assert memnet.memnet_loss(y, [y], t).item() == pytest.approx(6 / 4)  # single supervision: the output only


def test_bad_arguments_get_one_line_errors():
    with pytest.raises(CourseError, match="blocks must be a positive integer"):
        models.build("memnet", blocks=0)
    with pytest.raises(CourseError, match="recursions must be"):
        models.build("memnet", recursions=2.5)
    with pytest.raises(CourseError, match=r"Y channel \(B, 1, H, W\)"):
        memnet.MemNet(1, 1)(torch.zeros(1, 3, 4, 4))
    with pytest.raises(CourseError, match="weighting must be"):
        memnet.memnet_loss(torch.zeros(1), [torch.zeros(1), torch.zeros(1)], torch.zeros(1), "mean")
    with pytest.raises(CourseError, match="resize=True is only for fixed-scale"):
        models.build("memnet", blocks=1, recursions=1).upscale(torch.rand(1, 3, 4, 4), scale=2, resize=True)
    with pytest.raises(CourseError, match="values up to 255"):
        models.build("memnet", blocks=1, recursions=1).upscale(torch.full((1, 3, 4, 4), 255.0), scale=2)


def test_default_is_one_pass_unless_memory_asks_for_tiles(monkeypatch):
    torch.manual_seed(0)
    model = models.build("memnet", blocks=1, recursions=1).double().eval()  # radius 4
    lr = torch.rand(1, 3, 20, 20, dtype=torch.float64)
    calls = []
    model.net.register_forward_hook(lambda mod, inp, out: calls.append(tuple(inp[0].shape[-2:])))
    whole = model.upscale(lr, scale=2)
    assert calls == [(40, 40)]
    fits = model.peak_bytes((40, 40), (40, 40), 1, 20)  # 20-pixel cores fit in half the free memory, 40 do not
    assert model.peak_bytes((40, 40), (40, 40), 1, 40) > fits
    monkeypatch.setattr(models, "free_bytes", lambda device: 2 * fits + 1)
    calls.clear()
    torch.testing.assert_close(model.upscale(lr, scale=2), whole, rtol=0, atol=1e-12)
    assert calls == [(24, 24)] * 4  # 2 x 2 cores of 20 pixels, each with a 4-pixel halo inside the image
    monkeypatch.setattr(models, "free_bytes", lambda device: 1000)
    with pytest.raises(CourseError, match="GiB is free"):
        model.upscale(lr, scale=2)
