"""Seed paper 000's VGG-SE encoder and the output stride every decoder must respect (issue 13, lesson 10).

The encoder is checked against a parameter count by hand (reference note seed-variations.md sec. 1.1: 16,690,688)
and against a functional re-implementation written here from the note (F.conv2d, the SE block by hand, the global
residual from the LAST block, PixelShuffle). The decoders are checked to take the feature grid (2h x 2w), not the
LR image, as their LR grid: DIINN's scale channel is 4/s^2 and its local coordinates are those of the 2x grid,
LIIF's relative cell is 2 * (2h) / H, Meta-SR's scale input (2h) / H.
"""

import pytest
import torch
import torch.nn.functional as F

from course_lib import encoders, models
from course_lib.encoders import VGGSE, SEBlock, build_encoder, output_stride
from course_lib.errors import CourseError
from course_lib.models import count_parameters


def vgg_se_params(g0=64, n_blocks=12, n_layers=8, growth=64, reduction=16):
    """By hand: stem 3 convs; per RDB the dense convs, the 1x1 fusion and the SE's two bias-free Linear layers;
    GFF 1x1 + 3x3 + SE; the conv 64 -> 256 before PixelShuffle."""
    conv = lambda i, o, k: i * o * k * k + o  # noqa: E731
    se = 2 * g0 * (g0 // reduction)
    stem = conv(3, g0, 3) + 2 * conv(g0, g0, 3)
    rdb = sum(conv(g0 + c * growth, growth, 3) for c in range(n_layers)) + conv(g0 + n_layers * growth, g0, 1) + se
    gff = conv(n_blocks * g0, g0, 1) + conv(g0, g0, 3) + se
    return stem + n_blocks * rdb + gff + conv(g0, 4 * g0, 3)


def test_parameter_count_is_the_reference_notes():
    assert vgg_se_params() == 16_690_688
    assert count_parameters(build_encoder("vgg-se")) == 16_690_688
    assert count_parameters(VGGSE(g0=8, n_blocks=2, n_layers=3, growth=4, reduction=4)) == \
        vgg_se_params(8, 2, 3, 4, 4)


def test_output_is_at_twice_the_size_and_the_stride_says_so():
    torch.manual_seed(0)
    enc = VGGSE(g0=16, n_blocks=2, n_layers=2, growth=8)
    assert enc(torch.rand(2, 3, 5, 7)).shape == (2, 16, 10, 14)
    assert output_stride(enc) == 2 and output_stride(build_encoder("vgg-se")) == 2
    for name in encoders.ENCODERS:  # the course's backbones: stride 1
        assert output_stride(build_encoder(name)) == 1
    assert output_stride(torch.nn.Identity()) == 1  # no attribute: stride 1


def _se(x, block):
    w1, w2 = block.excitation[0].weight, block.excitation[2].weight
    s = torch.sigmoid(torch.relu(x.mean(dim=(2, 3)) @ w1.t()) @ w2.t())
    return x * s[:, :, None, None]


def _conv(x, conv):
    return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding)


def vgg_se_oracle(enc: VGGSE, x):
    """The note's sec. 1.1, written with functional ops; only the weights are read from ``enc``."""
    for i in (0, 2, 4):
        x = torch.relu(_conv(x, enc.stem[i]))
    outs = []
    for block in enc.blocks:
        dense = x
        for layer in block.convs:
            dense = torch.cat([dense, torch.relu(_conv(dense, layer.conv[0]))], dim=1)
        x = x + _se(_conv(dense, block.lff), block.se)  # SE after the fusion, before the local residual
        outs.append(x)
    fused = _se(_conv(_conv(torch.cat(outs, 1), enc.gff[0]), enc.gff[1]), enc.gff[2])
    return F.pixel_shuffle(_conv(fused + outs[-1], enc.upsample[0]), 2)  # residual from the LAST block


def test_forward_equals_the_notes_description():
    torch.manual_seed(0)
    enc = VGGSE(g0=16, n_blocks=3, n_layers=2, growth=8, reduction=4).double()
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(enc(x), vgg_se_oracle(enc, x), rtol=0, atol=1e-12)


def test_residual_is_from_the_last_block_not_the_stem():
    """RDN adds the stem's output; their code adds the last block's. The two differ (so the oracle can tell)."""
    torch.manual_seed(0)
    enc = VGGSE(g0=8, n_blocks=2, n_layers=1, growth=4, reduction=4).double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    stem = x
    for i in (0, 2, 4):
        stem = torch.relu(_conv(stem, enc.stem[i]))
    h = enc.blocks[1](enc.blocks[0](stem))
    fused = enc.gff(torch.cat([enc.blocks[0](stem), h], 1))
    rdn_style = enc.upsample(fused + stem)
    assert (enc(x) - rdn_style).abs().max() > 1e-3


def test_se_block_by_hand():
    se = SEBlock(4, reduction=2)
    with torch.no_grad():
        se.excitation[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))
        se.excitation[2].weight.copy_(torch.tensor([[1.0, 0], [0, 1.0], [-1.0, 0], [0, 0]]))
    x = torch.zeros(1, 4, 2, 2)
    x[0, 0] = 2.0  # channel means (2, 0, 0, -1) -> relu(W1 m) = (2, 0) -> W2: (2, 0, -2, 0) -> sigmoid
    x[0, 3] = -1.0
    s = torch.sigmoid(torch.tensor([2.0, 0.0, -2.0, 0.0]))
    torch.testing.assert_close(se(x), x * s[None, :, None, None])
    assert [m.bias for m in se.modules() if isinstance(m, torch.nn.Linear)] == [None, None]


def _grid_oracle(n_out, n_feat):
    """Local coordinate along one axis on the feature grid, from pixel centres (no course_lib code)."""
    i = torch.arange(n_out, dtype=torch.float64)
    c = -1 + (2 * i + 1) / n_out
    j = torch.floor((i + 0.5) * n_feat / n_out)
    return (c - (-1 + (2 * j + 1) / n_feat)) * n_feat


def spy(fn, seen: dict, key: str):
    """``fn`` that also keeps its first positional argument of the first call in ``seen[key]``."""

    def wrapped(*args):
        seen.setdefault(key, args[-1] if key == "p" else args[0])
        return fn(*args)

    return wrapped


@pytest.fixture(scope="module")
def small_vgg():
    torch.manual_seed(0)
    return VGGSE(g0=16, n_blocks=1, n_layers=1, growth=8, reduction=4)


def _with_small_encoder(name, enc, **kw):
    model = models.build(name, encoder="edsr-less", **kw)
    feat_dim = enc.out_dim
    if name == "diinn":
        from course_lib.decoders import DIINNDecoder
        model.decoder = DIINNDecoder(in_dim=9 * feat_dim)
    elif name == "liif":
        from course_lib.liif import LIIFDecoder
        model.decoder = LIIFDecoder(feat_dim)
    else:
        from course_lib.metasr import MetaSRDecoder
        model.decoder = MetaSRDecoder(feat_dim)
    model.encoder = enc
    return model.eval()


def test_diinn_with_vgg_se_uses_the_2x_grid(small_vgg):
    """Scale channel (2h)(2w)/(HW) = 4/s^2 and local coordinates of the 2x grid, on the reference path."""
    model = _with_small_encoder("diinn", small_vgg)
    model.decoder.fast = False
    seen = {}
    model.decoder.mlp = spy(model.decoder.mlp, seen, "p")  # mlp(z, p): keeps p
    lr, (H, W) = torch.rand(1, 3, 5, 7), (17, 23)
    out = model.upscale(lr, size=(H, W))
    assert out.shape == (1, 3, H, W)
    p = seen["p"][0].double().reshape(H, W, 3)
    torch.testing.assert_close(p[..., 2], torch.full((H, W), 4 * 5 * 7 / (H * W), dtype=torch.float64))
    torch.testing.assert_close(p[:, 0, 0], _grid_oracle(H, 10), atol=1e-6, rtol=0)
    torch.testing.assert_close(p[0, :, 1], _grid_oracle(W, 14), atol=1e-6, rtol=0)
    assert abs(4 * 5 * 7 / (H * W) - 4 / (H / 5) ** 2) < 0.05  # about 4/s^2 (s = 17/5 rows, 23/7 columns)


def test_liif_and_metasr_with_vgg_se_use_the_2x_grid(small_vgg):
    lr, (H, W) = torch.rand(1, 3, 5, 7), (17, 23)
    liif = _with_small_encoder("liif", small_vgg)
    liif.decoder.fast = False
    seen = {}
    liif.decoder.mlp = spy(liif.decoder.mlp, seen, "x")  # mlp(x): keeps [feature, rel, rel_cell]
    assert liif.upscale(lr, size=(H, W)).shape == (1, 3, H, W)
    x = seen["x"][0].double()
    torch.testing.assert_close(x[:, -2:], torch.tensor([[2 * 10 / H, 2 * 14 / W]], dtype=torch.float64).expand(
        H * W, 2), atol=1e-6, rtol=0)  # LIIF's rel_cell: cell x (h_f, w_f)
    assert x[:, -4:-2].abs().max() <= 2 + 1e-6  # rel in half-feature-pixel units
    meta = _with_small_encoder("metasr", small_vgg)
    meta.decoder.fast = False
    meta.decoder.kernel = spy(meta.decoder.kernel, seen, "p")  # kernel(p): keeps [rel_row, rel_col, 1/r]
    assert meta.upscale(lr, size=(H, W)).shape == (1, 3, H, W)
    torch.testing.assert_close(seen["p"][0, :, 2].double(), torch.full((H * W,), 10 / H, dtype=torch.float64),
                               atol=1e-6, rtol=0)  # Meta-SR's 1/r on the feature grid: cell x h_f / 2


def test_variant_decoder_with_vgg_se_uses_the_2x_grid(small_vgg):
    """Seed 000's H: the position input of its whole-grid decoder is taken on the 2x grid too."""
    from course_lib.diinn_var import VariantDecoder, VariantSRModel

    model = VariantSRModel(small_vgg, VariantDecoder(in_dim=9 * 16, width=8)).eval()
    seen = {}
    model.decoder.synth = spy(model.decoder.synth, seen, "p")  # synth(z, p): keeps p
    lr, (H, W) = torch.rand(1, 3, 5, 7), (17, 23)
    assert model.upscale(lr, size=(H, W)).shape == (1, 3, H, W)
    p = seen["p"][0].double()
    torch.testing.assert_close(p[2], torch.full((H, W), 4 * 5 * 7 / (H * W), dtype=torch.float64))
    torch.testing.assert_close(p[0, :, 0], _grid_oracle(H, 10), atol=1e-6, rtol=0)
    torch.testing.assert_close(p[1, 0, :], _grid_oracle(W, 14), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["diinn", "liif", "metasr"])
def test_registry_builds_every_family_with_vgg_se(name):
    model = models.build(name, encoder="vgg-se")
    assert model.config["encoder"] == "vgg-se"
    assert count_parameters(model.encoder) == 16_690_688
    assert output_stride(model.encoder) == 2


def test_peak_estimate_counts_the_feature_grid():
    """With vgg-se the decoder's maps live on (2h)(2w) pixels. At 100x100 -> 800x800 (fast path, chunks of 2048):
    preparation = feature map + channels_last copy + 4 x 256 maps + one 256 map, on 200 x 200 feature pixels;
    decoding = the 4 x 256 maps + the output + one chunk; the encoder's peak is on 100 x 100 pixels."""
    model = models.build("diinn", encoder="vgg-se")
    feat_px, lr_px = 200 * 200, 100 * 100
    prepare = (2 * 64 + 4 * 256 + 256) * feat_px
    decode = 4 * 256 * feat_px + 3 * 800 * 800 + (4 * 256 + 8 * 256 + 32) * 2048
    encoder = (11 * 64 + 2 * (64 + 8 * 64) + 2 * 64) * lr_px  # 11 block outputs + the last block's dense maps
    assert prepare > max(decode, encoder)
    assert models.peak_bytes(model, (100, 100), (800, 800), chunk=2048) == int(1.5 * 4 * prepare + 32 * 2**20)


def test_unknown_encoder_is_one_line():
    with pytest.raises(CourseError, match="unknown encoder 'vgg'.*vgg-se") as err:
        build_encoder("vgg")
    assert "\n" not in str(err.value)
    with pytest.raises(CourseError, match="unknown encoder"):
        models.build("diinn", encoder="vgg")
