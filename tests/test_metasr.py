"""Meta-SR (course_lib.metasr, lesson 09) against a per-pixel convolution loop and LIIF's re-implementation."""

from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from course_lib import encoders, metasr, models
from course_lib.coords import grid_chunk, make_cell
from course_lib.errors import CourseError
from course_lib.models import SRModel, count_parameters


def grid(hr_size, batch=1):
    H, W = hr_size
    coord = grid_chunk((H, W), 0, H * W, dtype=torch.float64).expand(batch, -1, -1)
    return coord, make_cell((H, W), (batch, H * W), dtype=torch.float64)


def per_pixel_convolution(feat, dec, hr_size):
    """Oracle: for HR pixel (i, j), the source LR pixel is (floor(i h / H), floor(j w / W)) and the Pos2Weight input
    [i h / H - floor(i h / H), j w / W - floor(j w / W), h / H] (exact fractions); the output is the 3x3
    convolution of the zero-padded feature around the source pixel with the predicted kernel W[c*9 + dy*3 + dx, o]."""
    b, c, h, w = feat.shape
    H, W = hr_size
    padded = F.pad(feat, (1, 1, 1, 1))
    out = torch.zeros(b, H * W, 3, dtype=feat.dtype)
    for i in range(H):
        for j in range(W):
            y, x = Fraction(i * h, H), Fraction(j * w, W)
            sy, sx = int(y), int(x)  # floor
            p = torch.tensor([float(y - sy), float(x - sx), h / H], dtype=feat.dtype)
            kernel = dec.pos2weight(p).reshape(c, 3, 3, 3)  # (channel, dy, dx, colour)
            for o in range(3):
                for ch in range(c):
                    for dy in range(3):
                        for dx in range(3):
                            out[:, i * W + j, o] += padded[:, ch, sy + dy, sx + dx] * kernel[ch, dy, dx, o]
    return out


def liif_metasr_query_rgb(feat, coord, cell, imnet):
    """Independent oracle: MetaSR.query_rgb of yinboc/liif (models/misc.py, MIT licence), ported line by line
    (``.cuda()`` dropped, ``make_coord`` inlined, any dtype)."""
    feat = F.unfold(feat, 3, padding=1).view(feat.shape[0], feat.shape[1] * 9, feat.shape[2], feat.shape[3])
    seqs = [-1 + 1 / n + (2 / n) * torch.arange(n, dtype=feat.dtype) for n in feat.shape[-2:]]  # make_coord
    feat_coord = torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)
    feat_coord[:, :, 0] -= (2 / feat.shape[-2]) / 2
    feat_coord[:, :, 1] -= (2 / feat.shape[-1]) / 2
    feat_coord = feat_coord.permute(2, 0, 1).unsqueeze(0).expand(feat.shape[0], 2, *feat.shape[-2:])
    coord_ = coord.clone()
    coord_[:, :, 0] -= cell[:, :, 0] / 2
    coord_[:, :, 1] -= cell[:, :, 1] / 2
    coord_q = (coord_ + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6)
    q_feat = F.grid_sample(feat, coord_q.flip(-1).unsqueeze(1), mode="nearest",
                           align_corners=False)[:, :, 0, :].permute(0, 2, 1)
    q_coord = F.grid_sample(feat_coord, coord_q.flip(-1).unsqueeze(1), mode="nearest",
                            align_corners=False)[:, :, 0, :].permute(0, 2, 1)
    rel_coord = coord_ - q_coord
    rel_coord[:, :, 0] *= feat.shape[-2] / 2
    rel_coord[:, :, 1] *= feat.shape[-1] / 2
    r_rev = cell[:, :, 0] * (feat.shape[-2] / 2)
    inp = torch.cat([rel_coord, r_rev.unsqueeze(-1)], dim=-1)
    bs, q = coord.shape[:2]
    pred = imnet(inp.view(bs * q, -1)).view(bs * q, feat.shape[1], 3)
    pred = torch.bmm(q_feat.contiguous().view(bs * q, 1, -1), pred)
    return pred.view(bs, q, 3)


@pytest.mark.parametrize("lr_size,hr_size", [((3, 4), (7, 10)), ((3, 4), (6, 8)), ((2, 3), (9, 9))])
@pytest.mark.parametrize("fast", [False, True])
def test_equals_explicit_per_pixel_convolution(lr_size, hr_size, fast):
    torch.manual_seed(0)
    dec = metasr.MetaSRDecoder(feat_dim=2).double()
    dec.fast = fast
    feat = torch.randn(2, 2, *lr_size, dtype=torch.float64)
    coord, cell = grid(hr_size, batch=2)
    torch.testing.assert_close(dec(feat, coord, cell), per_pixel_convolution(feat, dec, hr_size), rtol=0, atol=1e-10)


@pytest.mark.parametrize("lr_size,hr_size", [((5, 7), (13, 17)), ((6, 8), (24, 16)), ((24, 30), (72, 90))])
@pytest.mark.parametrize("fast", [False, True])
def test_equals_liif_reimplementation(lr_size, hr_size, fast):
    torch.manual_seed(0)
    dec = metasr.MetaSRDecoder(feat_dim=3).double()
    dec.fast = fast
    feat = torch.randn(2, 3, *lr_size, dtype=torch.float64)
    coord, cell = grid(hr_size, batch=2)
    oracle = liif_metasr_query_rgb(feat, coord, cell, dec.pos2weight)
    torch.testing.assert_close(dec(feat, coord, cell), oracle, rtol=0, atol=1e-10)


def test_position_input_is_corner_offset_and_inverse_scale():
    """x2.5 on 2 LR rows: HR rows 0..4 have top-left corners at 0, 0.4, 0.8, 1.2, 1.6 LR pixels."""
    coord, cell = grid((5, 1))
    _, p = metasr.metasr_position(coord, cell, (2, 1))
    torch.testing.assert_close(p[0, :, 0], torch.tensor([0, 0.4, 0.8, 0.2, 0.6], dtype=torch.float64))
    torch.testing.assert_close(p[0, :, 1], torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(p[0, :, 2], torch.full((5,), 0.4, dtype=torch.float64))


def test_fast_equals_reference_gradients():
    torch.manual_seed(1)
    model = SRModel(encoders.EDSR(n_resblocks=2, n_feats=8), metasr.MetaSRDecoder(8)).double()
    lr, hr = torch.rand(2, 3, 9, 11, dtype=torch.float64), torch.rand(2, 3, 25, 29, dtype=torch.float64)

    def run():
        model.zero_grad()
        out = model.predict(lr, (25, 29))
        F.l1_loss(out, model.normalize(hr)).backward()
        return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}

    model.decoder.fast = False
    ref, ref_grads = run()
    model.decoder.fast = True
    assert model.decoder.uses_fast_path
    fast, fast_grads = run()
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
    for k in ref_grads:
        assert ref_grads[k].abs().sum() > 0, k  # every parameter gets a gradient
        scale = ref_grads[k].abs().max()
        assert (fast_grads[k] - ref_grads[k]).abs().max() / scale < 1e-9, k


def test_fast_state_is_the_reassociated_kernel_at_lr_size():
    """prepare()["lr"][o*256 + j] = sum_k z_k A_2[k*3 + o, j] and [768 + o] = sum_k z_k b_2[k*3 + o], by hand."""
    torch.manual_seed(0)
    dec = metasr.MetaSRDecoder(feat_dim=2).double()
    feat = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    z = F.unfold(feat, 3, padding=1)[0].T  # (12, 18)
    a2, b2 = dec.pos2weight[2].weight.reshape(18, 3, 256), dec.pos2weight[2].bias.reshape(18, 3)
    by_hand = torch.cat([torch.einsum("pk,koj->poj", z, a2).reshape(12, 768), z @ b2], dim=1)
    torch.testing.assert_close(dec.prepare(feat)["lr"][0].reshape(771, 12).T, by_hand, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fast", [False, True])
def test_chunked_upscale_equals_whole(fast):
    torch.manual_seed(0)
    model = metasr.build_metasr("edsr-less").eval()
    model.decoder.fast = fast
    lr = torch.rand(2, 3, 7, 9)
    whole = model.upscale(lr, scale=3.3, chunk_size=10**6)
    assert whole.shape == (2, 3, 23, 30)
    torch.testing.assert_close(model.upscale(lr, scale=3.3, chunk_size=41), whole, rtol=0, atol=0)


def test_parameter_count_with_rdn():
    model = metasr.build_metasr("rdn")
    assert count_parameters(model.encoder) == 21_973_952
    assert count_parameters(model.decoder) == (3 * 256 + 256) + (256 * 1728 + 1728)
    assert count_parameters(model) == 22_419_072


def test_save_load_roundtrip_through_the_registry(tmp_path):
    torch.manual_seed(0)
    model = models.build("metasr", encoder="edsr-less").eval()
    assert model.config == {"name": "metasr", "encoder": "edsr-less"}
    models.save(model, tmp_path / "m.pt")
    back = models.load(tmp_path / "m.pt")
    lr = torch.rand(1, 3, 5, 6)
    torch.testing.assert_close(back.upscale(lr, scale=2.5), model.upscale(lr, scale=2.5), rtol=0, atol=0)


def test_bad_input_gets_one_line_errors():
    dec = metasr.MetaSRDecoder(64)
    with pytest.raises(CourseError, match="feat_dim=32"):
        dec.prepare(torch.zeros(1, 32, 4, 4))
    with pytest.raises(CourseError, match=r"\(B, C, h, w\)"):
        dec.prepare(torch.zeros(64, 4, 4))
    with pytest.raises(CourseError, match=r"\(B, Q, 2\)"):
        metasr.metasr_position(torch.zeros(1, 5, 2), torch.zeros(1, 4, 2), (4, 4))
    with pytest.raises(CourseError, match="unknown encoder"):
        metasr.build_metasr("vgg")


def test_registry_builds_it_and_use_fast_path_switches_it():
    from course_lib.decoders import use_fast_path

    model = models.build("metasr", encoder="edsr-less")
    assert models.REGISTRY["metasr"] is metasr.build_metasr
    assert model.decoder.uses_fast_path
    use_fast_path(model, False)
    assert not model.decoder.uses_fast_path
    use_fast_path(model, True)
    assert model.decoder.uses_fast_path
