"""The fast decoder path (LR-size algebra, lesson 04) against the per-query reference: same function, same gradients."""

import pytest
import torch

from course_lib import allocator, complexity, decoders, models
from course_lib.coords import grid_chunk, make_cell


def both(model, fn):
    """fn(model) on the reference path, then on the fast path."""
    decoders.use_fast_path(model, False)
    ref = fn(model)
    decoders.use_fast_path(model, True)
    return ref, fn(model)


@pytest.mark.parametrize("variant", ["b", "d", "f"])
@pytest.mark.parametrize("lr_size,out_size", [((17, 23), (53, 72)), ((48, 48), (151, 151))])
def test_fast_equals_reference_outputs(variant, lr_size, out_size, lively):
    """With lively decoder weights (conftest: outputs of std 0.5-2.3 that depend on every input), the two paths
    differed by 3e-6 to 4.4e-5 (float32 summation order) in these six cases; the bound is 2e-4. With PyTorch's
    default init the output barely depends on the position input: a fast path that swapped its row and column
    passed for variant (b) at 1e-5."""
    torch.manual_seed(0)
    model = lively(models.build("diinn", encoder="edsr-less", variant=variant)).eval()
    assert model.decoder.uses_fast_path
    lr = torch.rand(2, 3, *lr_size)
    with torch.no_grad():
        ref, fast = both(model, lambda m: m.predict(lr, out_size))
    assert ref.shape == fast.shape == (2, 3, *out_size)
    torch.testing.assert_close(fast, ref, rtol=0, atol=2e-4)


@pytest.mark.parametrize("variant", ["b", "d", "f"])
def test_fast_equals_reference_gradients(variant):
    torch.manual_seed(1)
    model = models.build("diinn", encoder="edsr-less", variant=variant)
    lr, hr = torch.rand(2, 3, 9, 11), torch.rand(2, 3, 25, 29)

    def grads(m):
        m.zero_grad()
        torch.nn.functional.l1_loss(m.predict(lr, (25, 29)), m.normalize(hr)).backward()
        return {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}

    ref, fast = both(model, grads)
    assert ref.keys() == fast.keys() and len(ref) == len(list(model.parameters()))
    for k in ref:
        scale = ref[k].abs().max().clamp_min(1e-12)
        assert (fast[k] - ref[k]).abs().max() / scale < 1e-4, k


@pytest.mark.parametrize("variant", ["a", "c", "e"])
def test_positional_init_variants_always_take_the_reference(variant):
    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less", variant=variant).eval()
    assert model.decoder.fast and not model.decoder.uses_fast_path
    assert "unfolded" in model.decoder.prepare(torch.rand(1, 32, 4, 5))
    lr = torch.rand(1, 3, 7, 6)
    with torch.no_grad():
        ref, fast = both(model, lambda m: m.predict(lr, (15, 13)))
    assert torch.equal(ref, fast)


def test_fast_path_state_is_the_relu_and_z_maps_at_lr_size():
    """prepare() = one 3x3 convolution: relu(K_0 z + b_0) and K_i^z z + b_i, checked against F.unfold by hand."""
    torch.manual_seed(0)
    dec = models.build("diinn", encoder="edsr-less", variant="f").decoder
    feat = torch.rand(1, 32, 5, 6, dtype=torch.float64)
    dec = dec.double()
    lr_map = dec.prepare(feat)["lr"]
    z = torch.nn.functional.unfold(feat, 3, padding=1).transpose(1, 2)  # (1, 30, 288): z of every LR pixel
    w = dec.width
    by_hand = [torch.relu(dec.K[0](z))] + [z @ k.weight[:, w:].T + k.bias for k in dec.K[1:]]
    by_hand = torch.cat(by_hand, dim=-1).transpose(1, 2).reshape(1, 4 * w, 5, 6)
    assert lr_map.shape == (1, 4 * w, 5, 6)
    torch.testing.assert_close(lr_map, by_hand, rtol=1e-10, atol=1e-10)


def test_fast_chunked_equals_whole_and_takes_any_chunk():
    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less").eval()
    lr = torch.rand(1, 3, 10, 13)
    with torch.no_grad():
        whole = model(lr, (31, 40))
        for chunk in (1, 7, 500, 10**6):
            torch.testing.assert_close(model.upscale(lr, size=(31, 40), chunk_size=chunk), whole, rtol=0, atol=1e-6)
    assert models.default_chunk("cuda") == models.DEFAULT_CHUNK


def test_cpu_chunk_follows_the_allocator(monkeypatch):
    """Chunks of 2,048 only where freed memory is kept (allocator.reuse_heap): with glibc's defaults they made the
    C library return memory to the kernel after every chunk (docs/RESULTS.md, twelfth session)."""
    monkeypatch.setitem(allocator._state, "reused", False)
    assert models.default_chunk("cpu") == models.CPU_CHUNK == 1024
    monkeypatch.setitem(allocator._state, "reused", True)
    assert models.default_chunk("cpu") == models.CPU_CHUNK_HEAP == 2048
    assert models.default_chunk(torch.device("cuda", 0)) == models.DEFAULT_CHUNK


def test_query_accepts_an_unfolded_map_and_a_prepared_state():
    torch.manual_seed(0)
    dec = models.build("diinn", encoder="edsr-less").decoder
    feat = torch.rand(1, 32, 4, 4)
    coord = grid_chunk((9, 9), 0, 81, feat.device, torch.float64)[None]
    cell = make_cell((9, 9), (1, 81), feat.device)
    from course_lib.features import unfold3x3

    torch.testing.assert_close(dec.query(unfold3x3(feat), coord, cell), dec.query(dec.prepare(feat), coord, cell),
                               rtol=0, atol=1e-5)


def test_upscale_progress_bar(capsys):
    model = models.build("diinn", encoder="edsr-less").eval()
    lr = torch.rand(1, 3, 8, 8)
    model.upscale(lr, size=(40, 40), chunk_size=100, progress=True)
    assert "upscale to 40x40" in capsys.readouterr().err
    model.upscale(lr, size=(40, 40), chunk_size=100, progress=False)
    model.upscale(lr, size=(40, 40), chunk_size=100)  # auto: a fast upscale shows nothing
    assert "upscale to" not in capsys.readouterr().err


# ---------------------------------------------------------------------- the optional global skip (not DIINN's)
def test_bicubic_skip_with_a_silent_decoder_is_bicubic_upsampling():
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less", skip="bicubic").eval()
    assert model.config["skip"] == "bicubic" and "skip" not in models.build("diinn", encoder="edsr-less").config
    torch.nn.init.zeros_(model.decoder.last_layer.weight)
    torch.nn.init.zeros_(model.decoder.last_layer.bias)
    lr = torch.rand(2, 3, 9, 11)
    for size in [(18, 22), (25, 31)]:  # x2 and a non-integer scale
        oracle = F.interpolate(lr, size=size, mode="bicubic", align_corners=False)
        with torch.no_grad():
            torch.testing.assert_close(model.denormalize(model.predict(lr, size)), oracle, rtol=0, atol=1e-5)
            torch.testing.assert_close(model.upscale(lr, size=size, chunk_size=37), oracle.clamp(0, 1), rtol=0,
                                       atol=1e-5)


def test_skip_adds_exactly_the_interpolated_lr_and_is_saved_with_the_model(tmp_path):
    torch.manual_seed(0)
    plain = models.build("diinn", encoder="edsr-less").eval()
    skip = models.build("diinn", encoder="edsr-less", skip="bilinear").eval()
    skip.load_state_dict(plain.state_dict())
    lr = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        import torch.nn.functional as F

        diff = skip.predict(lr, (12, 14)) - plain.predict(lr, (12, 14))
        torch.testing.assert_close(diff, F.interpolate(plain.normalize(lr), size=(12, 14), mode="bilinear",
                                                       align_corners=False), rtol=0, atol=1e-5)
        feat = skip.encode(lr)
        coord = grid_chunk((12, 14), 0, 168, lr.device, torch.float64)[None]
        with pytest.raises(Exception, match="lr="):
            skip.query(feat, coord, make_cell((12, 14), (1, 168), lr.device))
    loaded = models.load(models.save(skip, tmp_path / "s.pt"))
    assert loaded.skip == "bilinear" and loaded.config == skip.config
    with pytest.raises(Exception, match="skip must be one of"):
        models.build("diinn", encoder="edsr-less", skip="lanczos")


@pytest.mark.parametrize("fast", [False, True])
def test_training_step_macs_match_the_hand_count(fast):
    """Forward + backward products of one decoder step, counted by hand (lesson 04: why a step gains less).

    Per query, forward: reference K_0 9C*w + 3 (w+9C)*w + Q_0 3w + 3 w*w + last 3w; fast 3 (w*w + w*w) + 3w + 3w.
    Backward: every layer's weight gradient (the forward's products again) and its input's gradient, except Q_0's
    input, the position. The fast path adds the LR-size 3x3 convolution C -> 4w, three times (forward, weight and
    input gradients)."""
    C, w, h, wd, Q = 4, 8, 5, 6, 37
    torch.manual_seed(0)
    dec = decoders.DIINNDecoder(in_dim=9 * C, width=w, depth=4, mod_input="sz")
    dec.fast = fast
    feat = torch.randn(1, C, h, wd, requires_grad=True)
    coord, cell = grid_chunk((11, 13), 0, Q, "cpu").unsqueeze(0), make_cell((11, 13), (1, Q), "cpu")
    if fast:
        forward = 3 * 2 * w * w + 3 * w + 3 * w
        expected = Q * (3 * forward - 3 * w) + 3 * (h * wd * 9 * C * 4 * w)
    else:
        forward = 9 * C * w + 3 * (w + 9 * C) * w + 3 * w + 3 * w * w + 3 * w
        expected = Q * (3 * forward - 3 * w)
    assert complexity.count_step_macs(lambda: dec(feat, coord, cell).abs().mean()) == expected
