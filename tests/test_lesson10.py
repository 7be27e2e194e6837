"""Lesson 10 (seed paper 000 re-examined): the stored exercise solutions, the paper's numbers the lesson quotes, the
claims it checks on them, and the counting rules it states.

Oracles: ``models.count_parameters`` of the library's ``VariantDecoder`` and the reference note's counts (decoder
parameters); the columns where ``diinn_var.upscale_strips`` really differs from the exact tiled ``upscale`` on a
model whose every layer has unit spread (seams); ``progressive.upscale_progressive`` and hand-chained bicubic
(progressive upscaling); ``complexity.count_macs`` (multiply-adds per output pixel). The paper's Tables 1-5 are typed
here from the course's reference note (seed-variations.md, sec. 1.3 and 1.5), not read from the lesson.
The library's own behaviour (tiles with halos, strips, VGG-SE's 2x grid) is tested in test_diinn_var.py,
test_progressive.py and test_vgg_se.py.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import notebook_constant
from test_diinn_var import lively, small_model

from course_lib import complexity, diinn_var, models, progressive
from course_lib import notebook as nb
from course_lib.diinn_var import VariantDecoder, upscale_strips

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "10_seed000.ipynb"

# Seed 000, Tables 2-5 (PSNR dB, SSIM at x3.14, x4, x8), from the reference note's sec. 1.5.
PSNR = {
    "B100": {"A": (23.8673, 23.1125, 21.3797), "B": (23.004, 22.5127, 20.593), "C": (23.2912, 22.66, 21.177),
             "D": (23.5244, 22.6884, 20.9663), "E": (23.0031, 22.4609, 21.0288), "F": (23.417, 22.7795, 21.1399),
             "G": (24.6562, 23.7387, 21.7813), "H": (26.0928, 25.0048, 22.6406)},
    "Set5": {"A": (24.2179, 24.4839, 21.2899), "B": (23.3229, 23.0572, 19.9573), "C": (23.0843, 22.5527, 20.4245),
             "D": (20.9223, 19.4025, 17.0171), "E": (23.1951, 22.7821, 20.5274), "F": (23.2674, 22.7108, 20.4132),
             "G": (25.6495, 24.9245, 21.8716), "H": (28.2304, 27.292, 22.9941)},
    "Set14": {"A": (22.9226, 22.6166, 20.371), "B": (20.9313, 20.4953, 18.7223), "C": (21.2536, 20.7414, 19.2767),
              "D": (21.6052, 20.4762, 18.7748), "E": (21.4753, 21.1035, 19.56), "F": (22.1275, 21.5959, 19.8252),
              "G": (22.7454, 22.0948, 20.1048), "H": (25.5856, 24.5622, 21.5713)},
    "Urban100": {"A": (19.9368, 20.3152, 17.9866), "B": (16.5178, 16.2864, 15.2531), "C": (16.4609, 16.3464, 15.4946),
                 "D": (20.1018, 19.6327, 17.8133), "E": (17.023, 17.2865, 16.1353), "F": (19.4871, 19.1938, 17.5303),
                 "G": (18.5722, 18.2792, 16.8758), "H": (23.5492, 22.5949, 19.7323)},
}
SSIM = {
    "B100": {"A": (0.5707, 0.5028, 0.3634), "B": (0.6188, 0.5643, 0.4096), "C": (0.6733, 0.6078, 0.4721),
             "D": (0.6819, 0.6031, 0.4577), "E": (0.6594, 0.596, 0.4554), "F": (0.6691, 0.6044, 0.4597),
             "G": (0.7093, 0.6466, 0.4826), "H": (0.7369, 0.6712, 0.524)},
    "Set5": {"A": (0.6074, 0.6027, 0.4254), "B": (0.6729, 0.6486, 0.4542), "C": (0.7097, 0.6662, 0.5123),
             "D": (0.6797, 0.5737, 0.4081), "E": (0.7151, 0.6816, 0.5161), "F": (0.7353, 0.6988, 0.5321),
             "G": (0.7772, 0.7537, 0.5936), "H": (0.8424, 0.8063, 0.6193)},
    "Set14": {"A": (0.5402, 0.501, 0.3478), "B": (0.6015, 0.5464, 0.3955), "C": (0.6517, 0.5935, 0.4477),
              "D": (0.663, 0.5738, 0.4232), "E": (0.6574, 0.6056, 0.4462), "F": (0.6823, 0.6283, 0.4644),
              "G": (0.6844, 0.6398, 0.4656), "H": (0.7486, 0.6924, 0.5305)},
    "Urban100": {"A": (0.503, 0.4901, 0.3075), "B": (0.5719, 0.5047, 0.3821), "C": (0.5534, 0.5025, 0.3616),
                 "D": (0.6499, 0.5736, 0.4061), "E": (0.5701, 0.5279, 0.3805), "F": (0.6599, 0.5955, 0.421),
                 "G": (0.6403, 0.6188, 0.4334), "H": (0.7439, 0.6839, 0.5017)},
}
TABLE1 = {"upfront": (21.0311, 0.6638), "gradual": (17.8846, 0.5848)}  # seed 000, Table 1 (sec. 1.3)
BICUBIC_X4 = {"B100": 24.64, "Set5": 26.70, "Set14": 24.24, "Urban100": 21.69}  # DIINN paper, Table 1
DECODER = {"A": 1_249_795, "B": 8_857_091, "C": 9_120_259, "D": 9_120_259, "E": 9_120_259, "F": 9_120_259,
           "G": 986_627, "H": 9_120_259}
CELLS = [(name, j) for name in PSNR for j in range(3)]


# ------------------------------------------------------------------------------------------ the paper's numbers
def test_the_lesson_quotes_the_papers_tables_exactly():
    assert notebook_constant(LESSON, "PAPER_PSNR") == PSNR
    assert notebook_constant(LESSON, "PAPER_SSIM") == SSIM
    assert notebook_constant(LESSON, "PAPER_T1_PROGRESSIVE") == TABLE1
    assert notebook_constant(LESSON, "BICUBIC_X4_001") == BICUBIC_X4
    assert notebook_constant(LESSON, "REFERENCE_DECODER") == DECODER
    assert notebook_constant(LESSON, "REFERENCE_ENCODER") == {"rdn": 21_973_952, "vgg-se": 16_690_688}


def leader(table, name, j, letters):
    return max(letters, key=lambda k: table[name][k][j])


def test_the_claims_the_lesson_checks_on_their_numbers():
    # A-G below bicubic at x4 on every set, H above on every set
    assert [all(PSNR[n][k][1] < BICUBIC_X4[n] for n in PSNR) for k in "ABCDEFGH"] == [True] * 7 + [False]
    assert all(PSNR[n]["H"][1] > BICUBIC_X4[n] for n in PSNR)
    # "A better PSNR, B better SSIM": every cell
    assert all(PSNR[n]["A"][j] > PSNR[n]["B"][j] and SSIM[n]["B"][j] > SSIM[n]["A"][j] for n, j in CELLS)
    # "F (no dropout) better than C, D, E on most sets": every scale only on Set14; D beats F on all of Urban100
    assert {n: sum(leader(PSNR, n, j, "CDEF") == "F" for j in range(3)) for n in PSNR} == {
        "B100": 1, "Set5": 1, "Set14": 3, "Urban100": 0}
    assert all(PSNR["Urban100"]["D"][j] > PSNR["Urban100"]["F"][j] for j in range(3))
    # "H best of all models across all sets and metrics": every cell, PSNR and SSIM
    assert all(leader(PSNR, n, j, "ABCDEFGH") == "H" and leader(SSIM, n, j, "ABCDEFGH") == "H" for n, j in CELLS)
    # Table 1: upfront beats gradual by 3.146 dB
    assert TABLE1["upfront"][0] - TABLE1["gradual"][0] == pytest.approx(3.1465, abs=1e-9)


# ------------------------------------------------------------------------------------------ exercise solutions
def test_lesson10_solutions_are_registered():
    assert {name for lesson, name in nb.SOLUTIONS if lesson == "10"} == {"decoder_params", "seam_columns",
                                                                         "upscale_progressive"}


def test_decoder_params_solution_gives_the_reference_counts():
    sol = nb.SOLUTIONS["10", "decoder_params"]
    assert sol(64, 256, 4, 1, True) == DECODER["A"]
    assert sol(64, 256, 4, 3, False) == DECODER["B"]
    assert sol(64, 256, 4, 3, True) == DECODER["F"] == DECODER["H"]
    assert sol(64, 256, 4, 1, False) == DECODER["G"]  # A without M: DIINN's decoder (f)


@pytest.mark.parametrize("c, width, depth, kernel, modulation", [
    (64, 256, 4, 1, True), (64, 256, 4, 3, False), (32, 256, 4, 3, True), (4, 16, 2, 3, False), (3, 8, 3, 1, True),
    (5, 12, 1, 3, True), (2, 7, 4, 1, False)])
def test_decoder_params_solution_matches_the_library(c, width, depth, kernel, modulation):
    dec = VariantDecoder(in_dim=9 * c, width=width, kernel=kernel, modulation=modulation,
                         dilations=diinn_var.DILATIONS[:depth])
    assert nb.SOLUTIONS["10", "decoder_params"](c, width, depth, kernel, modulation) == models.count_parameters(dec)


def test_seam_columns_solution_by_hand():
    sol = nb.SOLUTIONS["10", "seam_columns"]
    # strips [0, 4) [4, 8) [8, 10), radius 2: columns 2, 3 | 4, 5, 6, 7 | 8, 9
    assert sol(10, 4, 2).tolist() == [False, False, True, True, True, True, True, True, True, True]
    # one strip as wide as the image: no seam; radius 0 (a 1x1 decoder): no seam
    assert not sol(12, 12, 15).any() and not sol(12, 5, 0).any()
    # strips of 64 on 128 columns, radius 15: one band of 30 columns around column 64
    assert torch.nonzero(sol(128, 64, 15)).flatten().tolist() == list(range(49, 79))
    assert sol(128, 64, 15).dtype == torch.bool


@pytest.mark.parametrize("strip", [40, 20, 7, 13, 3000 // 24])
def test_seam_columns_solution_matches_the_library_strips(strip):
    # float64 model with unit-spread layers: a seam column differs by > 1e-3, the others only by float32 rounding
    # of the output (upscale returns float32 values), < 1e-6
    torch.manual_seed(0)
    model = small_model("F", dtype=torch.float64)
    lr = torch.rand(1, 3, 8, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    size = (24, 60)
    lively(model, lr, size)
    exact = model.upscale(lr, size=size, chunk_size=16 * 16)
    strips = upscale_strips(model, lr, size=size, bsize=strip * size[0])
    per_column = (strips - exact).abs().amax(dim=(0, 1, 2))
    predicted = nb.SOLUTIONS["10", "seam_columns"](size[1], strip, model.decoder.radius)
    assert torch.equal(per_column > 1e-6, predicted)
    if predicted.any():
        assert per_column[predicted].min() > 1e-3
    if (~predicted).any():
        assert per_column[~predicted].max() < 1e-6


def test_upscale_progressive_solution_matches_the_library():
    torch.manual_seed(0)
    model = small_model("F")
    bicubic = models.build("bicubic")
    lr = torch.rand(1, 3, 10, 8, generator=torch.Generator().manual_seed(2))
    sizes = progressive.progressive_sizes(lr.shape[-2:], steps=[1.25, 1.6], size=(40, 32))
    for m in (model, bicubic):
        for rounded in (True, False):
            mine = nb.SOLUTIONS["10", "upscale_progressive"](m, lr, sizes, rounded)
            theirs = progressive.upscale_progressive(m, lr, sizes=sizes, round_uint8=rounded)
            assert torch.allclose(mine, theirs, atol=1e-6)
    # independent oracle for bicubic: F.interpolate chained by hand, rounded to 8 bits between stages
    x = lr
    for k, s in enumerate(sizes):
        y = F.interpolate(x, size=s, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        x = torch.round(y * 255) / 255 if k < len(sizes) - 1 else y
    assert torch.allclose(nb.SOLUTIONS["10", "upscale_progressive"](bicubic, lr, sizes, True), y, atol=1e-6)
    assert not torch.allclose(nb.SOLUTIONS["10", "upscale_progressive"](bicubic, lr, sizes, False), y, atol=1e-6)


# ------------------------------------------------------------------------------------------ the lesson's counting rules
def decoder_macs_by_hand(letter, c, feat_px_per_out_px):
    """Section 1's rule: the variant decoders cost their weights per output pixel; G (DIINN (f), fast path) costs
    its per-query layers plus the z-products (9C -> 4 x 256) per feature pixel."""
    _, options = diinn_var.MODELS[letter]
    w, z = 256, 9 * c
    if options is None:
        return 3 * w + 6 * w * w + 3 * w + 4 * z * w * feat_px_per_out_px
    kk = options["kernel"] ** 2
    return (z * w * kk + 3 * (w + z) * w * kk + 3 * w * kk + 3 * w * w * kk
            + (4 * w * w if options["modulation"] else 0) + 3 * w)


@pytest.mark.parametrize("letter, encoder, lr_side, out_side", [
    ("A", "edsr-less", 6, 24), ("B", "edsr-less", 5, 16), ("F", "edsr-less", 6, 19), ("G", "edsr-less", 6, 24),
    ("G", "vgg-se", 6, 24), ("G", "vgg-se", 5, 16), ("H", "vgg-se", 4, 12)])
def test_decoder_macs_per_output_pixel(letter, encoder, lr_side, out_side):
    torch.manual_seed(0)
    model = models.build("diinn-var", model=letter, encoder=encoder).eval()
    lr = torch.rand(1, 3, lr_side, lr_side)
    total = complexity.count_macs(model.upscale, lr, size=(out_side, out_side), progress=False)
    enc = complexity.count_macs(model.encode, lr)
    stride = 2 if encoder == "vgg-se" else 1
    expected = decoder_macs_by_hand(letter, model.encoder.out_dim, (stride * lr_side) ** 2 / out_side**2)
    assert (total - enc) / out_side**2 == pytest.approx(expected, rel=1e-12)
    if letter != "G":  # the variant decoders: weights = parameters - biases, at any scale
        biases = sum(p.numel() for n, p in model.decoder.named_parameters() if n.endswith("bias"))
        assert expected == models.count_parameters(model.decoder) - biases


# ------------------------------------------------------------------------------------------ the recorded runs
RECORDS = {  # the file -> (the lesson's `skip` it was made with, the overrides that gives every run)
    "docs/results/seed000-cpu.json": ("bicubic", {}),
    "docs/results/seed000-cpu-skip-none.json": (None, {"model.skip": None}),
}


@pytest.mark.parametrize("record", list(RECORDS))
def test_the_record_is_what_the_lessons_parameters_ask_for(record, course_data):
    """Section 6 uses a record in place of the runs only when its meta equals the lesson's parameters; this keeps the
    two in step: the same config, budget, sets, scales, crops, every row of ``rows`` (the defaults' record) or of the
    record (the other) for every seed, each run's stored training config exactly its row's with the record's
    overrides (compare.run_changes), trained to the end; DIINN (f), when recorded, likewise from compare-cpu."""
    from course_lib import compare, data

    skip, overrides = RECORDS[record]
    assert notebook_constant(LESSON, "recorded") == "docs/results/seed000-cpu.json"
    assert notebook_constant(LESSON, "skip") == "bicubic"  # the defaults: no overrides
    scores, info, meta = compare.load_scores(ROOT / record)
    config, max_steps = notebook_constant(LESSON, "config"), notebook_constant(LESSON, "max_steps")
    wanted = {"config": config, "max_steps": max_steps, "overrides": overrides,
              "eval_sets": notebook_constant(LESSON, "eval_sets"),
              "eval_scales": [float(s) for s in notebook_constant(LESSON, "eval_scales")],
              "eval_limit": notebook_constant(LESSON, "eval_limit"),
              "eval_crop": notebook_constant(LESSON, "eval_crop")}
    assert {k: meta.get(k) for k in wanted} == wanted
    seeds = notebook_constant(LESSON, "seeds")
    crop = wanted["eval_crop"]
    n_images = {f"{name}-crop{crop}": len(data.get_dataset(name, limit=wanted["eval_limit"]))
                for name in wanted["eval_sets"]}  # Set5 has 5 images
    cells = {(label, s) for label in n_images for s in wanted["eval_scales"]}
    rows = notebook_constant(LESSON, "rows") if skip == "bicubic" else sorted({r for r, _ in scores} - {"DIINN (f)"})
    assert len(rows) >= 5
    for row in rows:
        for seed in seeds:
            assert set(scores[row, seed]) == cells, (row, seed)
            assert all(len(v) == n_images[label] and np.isfinite(v).all()
                       for (label, _), v in scores[row, seed].items())
            assert compare.run_changes(info[row, seed], config,
                                       {**overrides, **compare.SEED000_ROWS[row], "run.seed": seed}) == []
            assert info[row, seed]["steps"] == max_steps
            assert info[row, seed]["seconds"] > 0 and info[row, seed]["parameters"] > 0
    # the DIINN (f) reference row, when recorded, is compare-cpu.yaml (same recipe and budget) for each seed
    for seed in {s for row, s in scores if row == "DIINN (f)"}:
        assert set(scores["DIINN (f)", seed]) == cells
        assert compare.run_changes(info["DIINN (f)", seed], "compare-cpu", {**overrides, "run.seed": seed}) == []
        assert info["DIINN (f)", seed]["steps"] == max_steps
