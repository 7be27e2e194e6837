"""LIIF and LIIF+SIREN (course_lib.liif, lesson 09) against hand-computed weights, F.grid_sample and LIIF's own code."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import encoders, liif, models
from course_lib.coords import coord_to_index, grid_chunk, make_cell
from course_lib.errors import CourseError
from course_lib.features import query_nearest
from course_lib.models import SRModel, count_parameters

FLAGS = {  # LIIF's Table 3 ablations, one flag each
    "full": {},
    "-c": {"cell_decode": False},
    "-u": {"feat_unfold": False},
    "-e": {"local_ensemble": False},
    "-d": {"hidden": [256, 256]},
}


def grid(hr_size, batch=1):
    H, W = hr_size
    coord = grid_chunk((H, W), 0, H * W, dtype=torch.float64).expand(batch, -1, -1)
    return coord, make_cell((H, W), (batch, H * W), dtype=torch.float64)


def liif_query_rgb(feat, coord, cell, imnet, local_ensemble=True, feat_unfold=True, cell_decode=True):
    """Independent oracle: LIIF.query_rgb of yinboc/liif (models/liif.py, MIT licence), ported line by line
    (``.cuda()`` dropped, ``make_coord`` inlined, any dtype)."""
    if feat_unfold:
        feat = F.unfold(feat, 3, padding=1).view(feat.shape[0], feat.shape[1] * 9, feat.shape[2], feat.shape[3])
    if local_ensemble:
        vx_lst, vy_lst, eps_shift = [-1, 1], [-1, 1], 1e-6
    else:
        vx_lst, vy_lst, eps_shift = [0], [0], 0
    rx = 2 / feat.shape[-2] / 2
    ry = 2 / feat.shape[-1] / 2
    seqs = [-1 + 1 / n + (2 / n) * torch.arange(n, dtype=feat.dtype) for n in feat.shape[-2:]]  # make_coord
    feat_coord = torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1).permute(2, 0, 1) \
        .unsqueeze(0).expand(feat.shape[0], 2, *feat.shape[-2:])
    preds, areas = [], []
    for vx in vx_lst:
        for vy in vy_lst:
            coord_ = coord.clone()
            coord_[:, :, 0] += vx * rx + eps_shift
            coord_[:, :, 1] += vy * ry + eps_shift
            coord_.clamp_(-1 + 1e-6, 1 - 1e-6)
            q_feat = F.grid_sample(feat, coord_.flip(-1).unsqueeze(1), mode="nearest",
                                   align_corners=False)[:, :, 0, :].permute(0, 2, 1)
            q_coord = F.grid_sample(feat_coord, coord_.flip(-1).unsqueeze(1), mode="nearest",
                                    align_corners=False)[:, :, 0, :].permute(0, 2, 1)
            rel_coord = coord - q_coord
            rel_coord[:, :, 0] *= feat.shape[-2]
            rel_coord[:, :, 1] *= feat.shape[-1]
            inp = torch.cat([q_feat, rel_coord], dim=-1)
            if cell_decode:
                rel_cell = cell.clone()
                rel_cell[:, :, 0] *= feat.shape[-2]
                rel_cell[:, :, 1] *= feat.shape[-1]
                inp = torch.cat([inp, rel_cell], dim=-1)
            bs, q = coord.shape[:2]
            preds.append(imnet(inp.view(bs * q, -1)).view(bs, q, -1))
            areas.append(torch.abs(rel_coord[:, :, 0] * rel_coord[:, :, 1]) + 1e-9)
    tot_area = torch.stack(areas).sum(dim=0)
    if local_ensemble:
        areas[0], areas[3] = areas[3], areas[0]
        areas[1], areas[2] = areas[2], areas[1]
    ret = 0
    for pred, area in zip(preds, areas):
        ret = ret + pred * (area / tot_area).unsqueeze(-1)
    return ret


# ------------------------------------------------------------------------------------------ the ensemble itself
def test_ensemble_weights_by_hand_2x2_to_5x5():
    """2x2 LR, 5x5 HR. HR centres -0.8 -0.4 0 0.4 0.8, LR centres -0.5 0.5, half an LR pixel = 0.5. Per axis, the
    shifts -1/+1 pick (pixel, rel): -0.8: (0, -0.6) (0, -0.6); -0.4: (0, 0.2) (1, -1.8); 0: (0, 1) (1, -1);
    0.4: (0, 1.8) (1, -0.2); 0.8: (1, 0.6) (1, 0.6) (clamped at the border). The swapped weight of shift -1 is
    |rel(+1)| / (|rel(-1)| + |rel(+1)|) per axis, and the 2-D weight is the product."""
    pix = [(0, 0), (0, 1), (0, 1), (0, 1), (1, 1)]
    rel = [(-0.6, -0.6), (0.2, -1.8), (1.0, -1.0), (1.8, -0.2), (0.6, 0.6)]
    w1 = [(0.5, 0.5), (0.9, 0.1), (0.5, 0.5), (0.1, 0.9), (0.5, 0.5)]
    coord, _ = grid((5, 5))
    shifted, got_rel, weights = liif.ensemble_queries(coord, (2, 2))
    assert shifted.shape == got_rel.shape == (4, 1, 25, 2) and weights.shape == (4, 1, 25)
    for k, (a, b) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):  # shifts (-1,-1), (-1,1), (1,-1), (1,1)
        for i in range(5):
            for j in range(5):
                q = i * 5 + j
                assert coord_to_index(shifted[k, 0, q, 0], 2).item() == pix[i][a]
                assert coord_to_index(shifted[k, 0, q, 1], 2).item() == pix[j][b]
                assert got_rel[k, 0, q].tolist() == pytest.approx([rel[i][a], rel[j][b]], abs=1e-12)
                assert weights[k, 0, q].item() == pytest.approx(w1[i][a] * w1[j][b], abs=1e-8)


@pytest.mark.parametrize("lr_size,hr_size", [((24, 30), (72, 90)), ((5, 7), (13, 17)), ((23, 2), (51, 9))])
def test_shifted_queries_match_grid_sample(lr_size, hr_size):
    """The four shifted nearest queries pick the features and centres that F.grid_sample(nearest) picks in LIIF's
    code, ties included: at x3 with 24 LR rows, shifted HR centres land exactly on LR borders (LIIF's 1e-6 decides)."""
    torch.manual_seed(0)
    h, w = lr_size
    coord, _ = grid(hr_size)
    coord = torch.cat([coord, torch.rand(1, 500, 2, dtype=torch.float64) * 2 - 1], dim=1)
    feat = torch.randn(1, 5, h, w, dtype=torch.float64)
    seqs = [-1 + (2 * torch.arange(n, dtype=torch.float64) + 1) / n for n in (h, w)]
    feat_coord = torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=0)[None]
    shifted, rel, _ = liif.ensemble_queries(coord, lr_size)
    ties = 0
    for k, (vx, vy) in enumerate([(-1, -1), (-1, 1), (1, -1), (1, 1)]):
        oracle = (coord + torch.tensor([vx / h + 1e-6, vy / w + 1e-6], dtype=torch.float64)).clamp(-1 + 1e-6,
                                                                                                    1 - 1e-6)
        pos = (oracle[0, :, 0] + 1) * h / 2
        ties += int(((pos - pos.round()).abs() < 1e-4).sum())
        grid_xy = oracle.flip(-1)[:, None]
        picked = F.grid_sample(feat, grid_xy, mode="nearest", align_corners=False)[:, :, 0]
        torch.testing.assert_close(query_nearest(feat, shifted[k]), picked.transpose(1, 2), rtol=0, atol=0)
        q_coord = F.grid_sample(feat_coord, grid_xy, mode="nearest", align_corners=False)[:, :, 0].transpose(1, 2)
        torch.testing.assert_close(rel[k], (coord - q_coord) * torch.tensor([h, w], dtype=torch.float64),
                                   rtol=0, atol=1e-12)
    if lr_size == (24, 30):
        assert ties > 0  # the case the tie-break exists for does occur here


@pytest.mark.parametrize("lr_size", [(2, 2), (6, 9), (13, 4)])
def test_swap_makes_the_nearest_pixel_weigh_most_and_equals_bilinear(lr_size):
    """Weights sum to 1; the shift that picks the query's own (nearest) LR pixel gets the largest weight; and
    sum_k weight_k * v[pixel_k] is bilinear interpolation of v with border padding (F.grid_sample)."""
    torch.manual_seed(1)
    h, w = lr_size
    coord = torch.rand(2, 400, 2, dtype=torch.float64) * 2 - 1
    shifted, _, weights = liif.ensemble_queries(coord, lr_size)
    torch.testing.assert_close(weights.sum(0), torch.ones(2, 400, dtype=torch.float64))
    own = coord_to_index(coord[..., 0], h) * w + coord_to_index(coord[..., 1], w)
    picked = torch.stack([coord_to_index(s[..., 0], h) * w + coord_to_index(s[..., 1], w) for s in shifted])
    share = (weights * (picked == own)).sum(0)  # the nearest pixel's total weight (two shifts share it at borders)
    assert (share >= weights.max(0).values - 1e-12).all() and (share >= 0.25).all()
    v = torch.randn(2, 1, h, w, dtype=torch.float64)
    mixed = sum(weights[k] * query_nearest(v, shifted[k])[..., 0] for k in range(4))
    bilinear = F.grid_sample(v, coord.flip(-1)[:, None], mode="bilinear", padding_mode="border",
                             align_corners=False)[:, 0, 0]
    torch.testing.assert_close(mixed, bilinear, rtol=0, atol=1e-7)


def test_without_ensemble_one_unshifted_query():
    coord = torch.rand(1, 50, 2, dtype=torch.float64) * 2 - 1
    shifted, rel, weights = liif.ensemble_queries(coord, (4, 5), local_ensemble=False)
    assert shifted.shape == (1, 1, 50, 2) and torch.equal(shifted[0], coord)
    assert torch.equal(weights, torch.ones(1, 1, 50, dtype=torch.float64))
    assert rel.abs().max() <= 1  # the nearest pixel only: within half an LR pixel = 1 unit


def test_without_ensemble_a_query_on_an_lr_border_goes_up():
    """The one documented difference to LIIF's code: 2 -> 3 pixels puts the middle HR centre (0) exactly on the LR
    border; without the ensemble it takes pixel 1 here (rel -1), where grid_sample rounds half to even (pixel 0)."""
    coord, _ = grid((3, 3))
    shifted, rel, _ = liif.ensemble_queries(coord, (2, 2), local_ensemble=False)
    assert coord_to_index(shifted[0, 0, 4], 2).tolist() == [1, 1] and rel[0, 0, 4].tolist() == [-1.0, -1.0]


# ------------------------------------------------------------------------------------------ the decoder
@pytest.mark.parametrize("flags", list(FLAGS))
@pytest.mark.parametrize("mlp", ["relu", "siren"])
@pytest.mark.parametrize("lr_size,hr_size", [((5, 7), (13, 17)), ((6, 8), (18, 24))])
def test_decoder_equals_liif_reference_code(flags, mlp, lr_size, hr_size):
    """Both paths of LIIFDecoder against the port of LIIF's query_rgb, with the decoder's own MLP as imnet."""
    torch.manual_seed(0)
    kw = FLAGS[flags]
    dec = liif.LIIFDecoder(feat_dim=4, mlp=mlp, **kw).double()
    feat = torch.randn(2, 4, *lr_size, dtype=torch.float64)
    coord, cell = grid(hr_size, batch=2)
    oracle = liif_query_rgb(feat, coord, cell, dec.mlp, kw.get("local_ensemble", True), kw.get("feat_unfold", True),
                            kw.get("cell_decode", True))
    for fast in (False, True):
        dec.fast = fast
        # 1e-7, not 1e-12: where a query sits on an LR centre line at the border, all four areas are about 1e-9
        # and the last-bit difference of LIIF's make_coord (-1 + 1/n + 2i/n) moves the weights by ~1e-6 relative
        torch.testing.assert_close(dec(feat, coord, cell), oracle, rtol=0, atol=1e-7)


def test_fast_state_is_the_first_layer_at_lr_size():
    """prepare() on the fast path = W_z z + b of F.unfold's z at every LR pixel, computed by hand."""
    torch.manual_seed(0)
    dec = liif.LIIFDecoder(feat_dim=3).double()
    feat = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    z = F.unfold(feat, 3, padding=1).transpose(1, 2)  # (2, 20, 27)
    by_hand = (z @ dec.layers[0].weight[:, :27].T + dec.layers[0].bias).transpose(1, 2).reshape(2, 256, 4, 5)
    torch.testing.assert_close(dec.prepare(feat)["lr"], by_hand, rtol=1e-12, atol=1e-12)
    dec.fast = False
    torch.testing.assert_close(dec.prepare(feat)["feat"], F.unfold(feat, 3, padding=1).reshape(2, 27, 4, 5))


@pytest.mark.parametrize("flags,mlp", [(f, "relu") for f in FLAGS] + [("full", "siren")])
def test_fast_equals_reference_outputs_and_gradients(flags, mlp):
    torch.manual_seed(1)
    model = SRModel(encoders.EDSR(n_resblocks=2, n_feats=8), liif.LIIFDecoder(8, mlp=mlp, **FLAGS[flags]))
    model = model.double()  # float64: the L1 gradients sum thousands of terms, float32 rounding would blur the check
    lr, hr = torch.rand(2, 3, 8, 9, dtype=torch.float64), torch.rand(2, 3, 19, 23, dtype=torch.float64)

    def run():
        model.zero_grad()
        out = model.predict(lr, (19, 23))
        F.l1_loss(out, model.normalize(hr)).backward()
        return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}

    model.decoder.fast = False
    ref, ref_grads = run()
    model.decoder.fast = True
    assert model.decoder.uses_fast_path
    fast, fast_grads = run()
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
    for k in ref_grads:
        scale = ref_grads[k].abs().max().clamp_min(1e-12)
        assert (fast_grads[k] - ref_grads[k]).abs().max() / scale < 1e-9, k


@pytest.mark.parametrize("mlp", ["relu", "siren"])
def test_gradients_reach_every_parameter(mlp):
    torch.manual_seed(0)
    model = liif.build_liif("edsr-less", mlp=mlp)
    F.l1_loss(model.predict(torch.rand(1, 3, 6, 7), (15, 16)), torch.zeros(1, 3, 15, 16)).backward()
    for k, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, k


@pytest.mark.parametrize("fast", [False, True])
def test_chunked_upscale_equals_whole(fast):
    torch.manual_seed(0)
    model = liif.build_liif("edsr-less").eval()
    model.decoder.fast = fast
    lr = torch.rand(2, 3, 7, 9)
    whole = model.upscale(lr, scale=2.7, chunk_size=10**6)
    assert whole.shape == (2, 3, 19, 24)
    torch.testing.assert_close(model.upscale(lr, scale=2.7, chunk_size=37), whole, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(whole, model(lr, (19, 24)), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------ sizes and SIREN
def test_parameter_counts():
    """LIIF's RDN model and seed 003's Table 2 (its 5-Linear MLP, encoders without upsampler)."""
    rdn = liif.build_liif("rdn")
    assert count_parameters(rdn.encoder) == 21_973_952
    assert count_parameters(rdn.decoder) == 346_883 and rdn.decoder.in_dim == 580
    assert count_parameters(rdn) == 22_320_835
    assert "edsr-less" in encoders.ENCODERS
    assert count_parameters(liif.build_liif("edsr-baseline", mlp="siren", w0=30.0)) == 1_567_299
    assert count_parameters(liif.build_liif("edsr-less", mlp="siren")) == 579_235
    assert count_parameters(liif.build_liif("edsr-less")) == 579_235  # same layers, other activation


def test_ablation_flags_set_the_input_width_and_depth():
    assert [liif.LIIFDecoder(64, **FLAGS[f]).in_dim for f in FLAGS] == [580, 578, 68, 580, 580]
    assert [len(liif.LIIFDecoder(64, **FLAGS[f]).layers) for f in FLAGS] == [5, 5, 5, 5, 3]


@pytest.mark.parametrize("w0,w0_hidden", [(30.0, None), (15.0, None), (30.0, 1.0)])
def test_siren_is_sine_layers_with_siren_init(w0, w0_hidden):
    torch.manual_seed(0)
    dec = liif.LIIFDecoder(64, mlp="siren", w0=w0, w0_hidden=w0_hidden).double()
    w_h = w0 if w0_hidden is None else w0_hidden
    bounds = [1 / 580] + [math.sqrt(6 / 256) / w_h] * 4
    for layer, bound in zip(dec.layers, bounds):
        n = layer.weight.numel()
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.99 * bound
        assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=3 / math.sqrt(n))
        fan_in = layer.weight.shape[1]
        assert layer.bias.abs().max() <= 1 / math.sqrt(fan_in)  # PyTorch's default bias init, untouched
    x = torch.randn(10, 580, dtype=torch.float64)
    by_hand = x
    for i, layer in enumerate(dec.layers[:-1]):
        by_hand = torch.sin((w0 if i == 0 else w_h) * (by_hand @ layer.weight.T + layer.bias))
    by_hand = by_hand @ dec.layers[-1].weight.T + dec.layers[-1].bias
    torch.testing.assert_close(dec.mlp(x), by_hand)


def test_save_load_roundtrip_through_the_registry(tmp_path):
    """"liif" is in models.REGISTRY: the config rebuilds the architecture, weights round-trip."""
    torch.manual_seed(0)
    model = models.build("liif", encoder="edsr-less", mlp="siren", w0=15.0, hidden=[256, 256]).eval()
    assert model.config == {"name": "liif", "encoder": "edsr-less", "local_ensemble": True, "feat_unfold": True,
                            "cell_decode": True, "hidden": [256, 256], "mlp": "siren", "w0": 15.0}
    models.save(model, tmp_path / "m.pt")
    back = models.load(tmp_path / "m.pt")
    assert back.decoder.w0 == 15.0 and len(back.decoder.layers) == 3
    lr = torch.rand(1, 3, 5, 6)
    torch.testing.assert_close(back.upscale(lr, scale=3), model.upscale(lr, scale=3), rtol=0, atol=0)


def test_bad_arguments_get_one_line_errors():
    with pytest.raises(CourseError, match="mlp must be one of"):
        liif.LIIFDecoder(64, mlp="tanh")
    with pytest.raises(CourseError, match="mlp='siren'"):
        liif.LIIFDecoder(64, w0=30.0)
    with pytest.raises(CourseError, match="hidden must be"):
        liif.LIIFDecoder(64, hidden=[])
    with pytest.raises(CourseError, match="unknown encoder"):
        liif.build_liif("vgg")
    with pytest.raises(CourseError, match="feat_dim=32"):
        liif.LIIFDecoder(64).prepare(torch.zeros(1, 32, 4, 4))
    with pytest.raises(CourseError, match=r"\(B, C, h, w\)"):
        liif.LIIFDecoder(64).prepare(torch.zeros(32, 4, 4))
    with pytest.raises(CourseError, match=r"\(B, Q, 2\)"):
        liif.ensemble_queries(torch.zeros(5, 2), (4, 4))


def test_registry_builds_it_and_use_fast_path_switches_it():
    from course_lib.decoders import use_fast_path

    model = models.build("liif", encoder="edsr-less")
    assert models.REGISTRY["liif"] is liif.build_liif
    assert model.decoder.uses_fast_path
    use_fast_path(model, False)
    assert not model.decoder.uses_fast_path
    use_fast_path(model, True)
    assert model.decoder.uses_fast_path
