"""course_lib.inr: encodings checked against hand-computed values, SIREN's init, and fitting one image."""

import math

import pytest
import torch

from course_lib import inr
from course_lib.coords import make_coord
from course_lib.errors import CourseError


def test_positional_encoding_matches_hand_values():
    enc = inr.PositionalEncoding(in_features=2, num_frequencies=2)
    v = torch.tensor([[0.5, -0.25]], dtype=torch.float64)
    s = math.sqrt(0.5)
    # [v, sin(pi v), cos(pi v), sin(2 pi v), cos(2 pi v)]
    expected = torch.tensor([[0.5, -0.25, 1.0, -s, 0.0, s, 0.0, -1.0, -1.0, 0.0]], dtype=torch.float64)
    out = enc(v)
    assert enc.out_features == 10 and out.shape == (1, 10)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_positional_encoding_without_input_and_shapes():
    enc = inr.PositionalEncoding(in_features=3, num_frequencies=4, include_input=False)
    out = enc(torch.rand(5, 7, 3))
    assert out.shape == (5, 7, 24) and enc.out_features == 24


def test_nyquist_frequencies_match_siren_code():
    # SIREN's code: floor(log2(side / 4)) -> 7 octaves at 512 px, 6 at 256 px
    assert inr.nyquist_frequencies(512) == 7
    assert inr.nyquist_frequencies(256) == 6
    assert inr.nyquist_frequencies(8) == 1


def test_fourier_features_match_hand_values():
    ff = inr.GaussianFourierFeatures(in_features=2, num_features=2, sigma=1.0)
    ff.B.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    v = torch.tensor([[0.25, 0.5], [0.0, 0.125]])
    # projections 2 pi v B^T: [[pi/2, 2 pi], [0, pi/2]]
    expected = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    torch.testing.assert_close(ff(v), expected, atol=1e-6, rtol=0)


def test_fourier_features_shape_sigma_and_seed():
    ff = inr.GaussianFourierFeatures(in_features=2, num_features=4096, sigma=5.0, seed=3)
    assert ff(torch.rand(4, 6, 2)).shape == (4, 6, 8192) and ff.out_features == 8192
    assert abs(ff.B.std().item() - 5.0) < 0.15  # B ~ N(0, sigma^2)
    again = inr.GaussianFourierFeatures(in_features=2, num_features=4096, sigma=5.0, seed=3)
    assert torch.equal(ff.B, again.B)


def test_siren_init_bounds():
    torch.manual_seed(0)
    net = inr.SIREN(in_features=2, out_features=3, hidden_features=256, hidden_layers=3, w0=30.0)
    first, hidden = net.net[0].linear.weight, net.net[1].linear.weight
    assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.45  # U(-1/n, 1/n), n = 2
    bound = math.sqrt(6 / 256) / 30
    for w in (hidden, net.net[2].linear.weight, net.last.weight):
        assert w.abs().max() <= bound and w.abs().max() > 0.98 * bound
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound  # std of U(-c, c) is c / sqrt(3)
    assert inr.siren_bound(2, 30.0, is_first=True) == 0.5


def test_siren_activations_keep_the_arcsine_distribution_through_depth():
    # Sitzmann et al.: with their init every hidden sine activation is arcsine-distributed, std 1/sqrt(2).
    torch.manual_seed(0)
    net = inr.SIREN(hidden_features=256, hidden_layers=6)
    x = make_coord((64, 64), flatten=True)
    stds = []
    for layer in net.net:
        x = layer(x)
        stds.append(x.std().item())
    for s in stds[1:]:
        assert abs(s - 1 / math.sqrt(2)) < 0.03, stds


def test_relu_mlp_structure_and_encoding_width():
    net = inr.ReLUMLP(hidden_features=16, hidden_layers=3, encoding=inr.PositionalEncoding(num_frequencies=3))
    linears = [m for m in net.net if isinstance(m, torch.nn.Linear)]
    assert [m.in_features for m in linears] == [14, 16, 16, 16]
    assert net(torch.rand(10, 2)).shape == (10, 3)


def test_interleaved_mask():
    m = inr.interleaved_mask((5, 4))
    assert m.shape == (5, 4) and m.sum() == 3 * 2
    assert m[0, 0] and m[2, 2] and not m[0, 1] and not m[1, 0] and not m[1, 1]


def test_fit_image_improves_psnr_on_a_tiny_image():
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    image = torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(6 * xx) * torch.cos(4 * yy)])
    net = inr.SIREN(hidden_features=32, hidden_layers=2)
    hist = inr.fit_image(net, image, steps=150, lr=1e-3, log_every=50)
    assert hist["step"] == [50, 100, 150] and hist["test_psnr"] == []
    assert hist["psnr"][-1] > 30 and hist["psnr"][-1] > hist["psnr"][0]
    # the logged PSNR is the PSNR of what render() returns
    out = inr.render(net, (16, 16))
    assert out.shape == (3, 16, 16)
    assert abs(-10 * math.log10(torch.mean((out - image) ** 2).item()) - hist["psnr"][-1]) < 1e-3


def _psnr_by_hand(a, b) -> float:
    return -10 * math.log10(torch.mean((a.double() - b.double()) ** 2).item())


def test_fit_image_with_mask_never_sees_the_held_out_pixels():
    """Two images that differ only in the held-out pixels must train the same network, bit for bit; the logged
    PSNRs are those of render() on exactly the training and the held-out pixels."""
    image = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    mask = inr.interleaved_mask((8, 8))
    other = torch.where(mask, image, 1 - image)  # every held-out pixel changed, every training pixel kept
    nets, hists = [], []
    for img in (image, other):
        torch.manual_seed(0)
        nets.append(inr.ReLUMLP(out_features=1, hidden_features=16, hidden_layers=2))
        hists.append(inr.fit_image(nets[-1], img[0], steps=20, lr=1e-3, train_mask=mask, log_every=10))
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(p, q)
    assert hists[0]["psnr"] == hists[1]["psnr"] and hists[0]["test_psnr"] != hists[1]["test_psnr"]
    assert len(hists[0]["psnr"]) == len(hists[0]["test_psnr"]) == 2 and hists[0]["seconds"] > 0
    out = inr.render(nets[0], (8, 8))
    for img, hist in zip((image, other), hists):
        assert hist["psnr"][-1] == pytest.approx(_psnr_by_hand(out[:, mask], img[:, mask]), abs=1e-4)
        assert hist["test_psnr"][-1] == pytest.approx(_psnr_by_hand(out[:, ~mask], img[:, ~mask]), abs=1e-4)


def test_bad_inputs_raise_course_errors():
    with pytest.raises(CourseError, match="coordinates must have shape"):
        inr.SIREN()(torch.rand(4, 3))
    with pytest.raises(CourseError, match="image must be"):
        inr.fit_image(inr.SIREN(), torch.rand(2, 3, 8, 8), steps=1)
    with pytest.raises(CourseError, match="train_mask"):
        bad_mask = torch.ones(4, 4, dtype=torch.bool)
        inr.fit_image(inr.SIREN(), torch.rand(3, 8, 8), steps=1, train_mask=bad_mask)
    with pytest.raises(CourseError, match="sigma"):
        inr.GaussianFourierFeatures(sigma=0)
    with pytest.raises(CourseError, match="num_frequencies"):
        inr.PositionalEncoding(num_frequencies=0)
