"""Lesson 05's stored exercise solutions (course_lib.notebook.SOLUTIONS["05", ...]) against the library.

Each solution must give what notebooks/05_encoders.ipynb's check cell compares it with: the library's parameter
count, its traced receptive field, and the multiply-adds the library counts on a whole upscale.
"""

import pytest
import torch

from course_lib import complexity, models
from course_lib import notebook as nb
from course_lib.encoders import EDSR, RDN


def test_lesson05_solutions_are_registered():
    assert {name for lesson, name in nb.SOLUTIONS if lesson == "05"} == {"edsr_params", "receptive_field",
                                                                         "encoder_share"}


@pytest.mark.parametrize("n, c", [(16, 64), (16, 32), (4, 48), (1, 8), (0, 5)])
def test_edsr_params_solution(n, c):
    assert nb.SOLUTIONS["05", "edsr_params"](n, c) == models.count_parameters(EDSR(n_resblocks=n, n_feats=c))


def test_edsr_params_solution_gives_seed_paper_003s_count():
    assert nb.SOLUTIONS["05", "edsr_params"](16, 32) == 306_080


@pytest.mark.parametrize("kind, blocks, layers", [("edsr", 16, 0), ("edsr", 4, 0), ("edsr", 0, 0), ("rdn", 16, 8),
                                                  ("rdn", 3, 4), ("rdn", 1, 1)])
def test_receptive_field_solution(kind, blocks, layers):
    enc = EDSR(n_resblocks=blocks, n_feats=4) if kind == "edsr" else RDN(g0=4, n_blocks=blocks, n_layers=layers,
                                                                        growth=4)
    expected = complexity.receptive_field(enc)
    assert (nb.SOLUTIONS["05", "receptive_field"](kind, blocks, layers),) * 2 == expected


@pytest.mark.parametrize("encoder", ["edsr-less", "edsr-baseline"])
@pytest.mark.parametrize("scale", [2, 4])
def test_encoder_share_solution(encoder, scale):
    torch.manual_seed(0)
    model = models.build("diinn", encoder=encoder).eval()
    model.decoder.fast = False  # the reference path: a fixed cost per query
    lr = torch.rand(1, 3, 5, 6)
    enc = complexity.macs_per_pixel(model.encoder, (5, 6))
    c = model.encoder.out_dim
    dec = complexity.count_macs(model.decoder.mlp, torch.randn(7, 9 * c), torch.randn(7, 3)) / 7
    share = complexity.count_macs(model.encode, lr) / complexity.count_macs(model.upscale, lr, scale=scale,
                                                                             progress=False)
    assert nb.SOLUTIONS["05", "encoder_share"](enc, dec, scale) == pytest.approx(share, rel=1e-12)
