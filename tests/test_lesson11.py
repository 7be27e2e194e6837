"""Lesson 11 (fixed-scale SR and perceptual losses, seed paper 004): the exercises' stored solutions, the published
numbers the lesson quotes, and the helpers it defines (checked against the library, torch and scipy).

The lesson's stored solutions live in ``course_lib.notebook.SOLUTIONS`` (``_sol_11_*``), like every lesson's."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import notebook_code, notebook_constant
from torch import nn

from course_lib import complexity, degrade, evaluate, memnet, metrics, models, srgan
from course_lib import notebook as nb
from course_lib.images import centre_crop

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "11_fixed_scale.ipynb"
CELLS = notebook_code(LESSON)

# Typed from the reference notes (seed-variations.md, sec. 3.3 and 3.6), not read from the lesson.
NOTES_004_TABLE1 = {"Nearest": {"Set5": (23.46, 0.702), "Set14": (21.44, 0.709)},
                    "Bicubic": {"Set5": (25.93, 0.835), "Set14": (22.78, 0.797)},
                    "SRGAN": {"Set5": (25.89, 0.932), "Set14": (23.07, 0.899)},
                    "MemNet x4": {"Set5": (28.53, 0.938), "Set14": (25.44, 0.902)}}
NOTES_LEDIG_X4 = {"bicubic": {"Set5": 28.43, "Set14": 25.99}, "SRResNet": {"Set5": 32.05, "Set14": 28.49},
                  "SRGAN": {"Set5": 29.40, "Set14": 26.02}}
NOTES_COUNTS = {"MemNet M6R6": 678_209, "MemNet M4R4": 403_393, "MemNet M3R3": 284_417, "SRResNet": 1_549_462}


def lesson_definitions(*names, **extra):
    """The lesson's top-level functions/classes of these names, executed in a namespace with the usual imports."""
    namespace = {"math": math, "np": np, "torch": torch, "F": F, "nn": nn, "metrics": metrics, "degrade": degrade,
                 "models": models, "memnet": memnet, "srgan": srgan, "complexity": complexity,
                 "tqdm": lambda it, **kw: it, "DEVICE": torch.device("cpu"), **extra}
    found = set()
    for source in CELLS:
        tree = ast.parse(source)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign)) and (
                    getattr(node, "name", None) in names
                    or any(getattr(t, "id", None) in names for t in getattr(node, "targets", []))):
                exec(compile(ast.Module([node], []), str(LESSON), "exec"), namespace)  # noqa: S102
                found.add(getattr(node, "name", None) or node.targets[0].id)
    assert found == set(names), f"{LESSON.name} defines no {sorted(set(names) - found)}"
    return namespace


SOLUTIONS = {k: f for k, f in nb.SOLUTIONS.items() if k[0] == "11"}


# ------------------------------------------------------------------------------------------ exercise solutions
def test_the_three_exercises_have_stored_solutions_and_use_them():
    assert set(SOLUTIONS) == {("11", "memnet_conv_params"), ("11", "memnet_macs"), ("11", "blend_penalty_db")}
    text = "\n".join(CELLS)
    for _, name in SOLUTIONS:
        assert f'nb.exercise("11", "{name}", ' in text


@pytest.mark.parametrize("m, r, c", [(6, 6, 64), (4, 4, 64), (3, 3, 64), (10, 10, 64), (1, 1, 64), (2, 5, 16)])
def test_conv_params_solution_matches_the_library(m, r, c):
    net = memnet.MemNet(m, r, channels=c)
    conv = sum(p.numel() for mod in net.modules() if isinstance(mod, nn.Conv2d) for p in mod.parameters())
    assert SOLUTIONS["11", "memnet_conv_params"](m, r, c) == conv


def test_conv_params_solution_matches_the_notes():
    # the reference notes' own arithmetic: M6R6 678,209, M10R10 1,375,297, 004's M3R3 284,417 and M4R4 403,393
    assert [SOLUTIONS["11", "memnet_conv_params"](m, m) for m in (6, 10, 3, 4)] == [678_209, 1_375_297, 284_417,
                                                                                   403_393]


@pytest.mark.parametrize("m, r, ms, c", [(3, 3, True, 64), (6, 6, True, 64), (2, 4, False, 64), (1, 1, True, 8),
                                         (2, 3, False, 16)])
def test_macs_solution_matches_count_macs(m, r, ms, c):
    counted = complexity.count_macs(memnet.MemNet(m, r, ms, channels=c).eval(), torch.rand(1, 1, 6, 5)) / 30
    assert SOLUTIONS["11", "memnet_macs"](m, r, ms, c) == counted


def test_macs_exceed_parameters_because_of_the_shared_recursions():
    # with R = 1 nothing is shared: MACs = conv weights (params less biases) when the reconstruction runs once
    net = memnet.MemNet(3, 1, multi_supervised=False)
    weights = sum(mod.weight.numel() for mod in net.modules() if isinstance(mod, nn.Conv2d))
    assert SOLUTIONS["11", "memnet_macs"](3, 1, False) == weights
    assert SOLUTIONS["11", "memnet_macs"](3, 3) / SOLUTIONS["11", "memnet_conv_params"](3, 3) == pytest.approx(2.557,
                                                                                                             abs=1e-3)


def test_blend_penalty_solution_against_a_simulation():
    g = torch.Generator().manual_seed(1)
    truth, other = torch.randn(2, 400_000, generator=g, dtype=torch.float64)
    for a in (0.0, 0.3, 1.0, 2.5):
        measured = 10 * math.log10(((truth - a * other) ** 2).mean().item() / (truth**2).mean().item())
        assert SOLUTIONS["11", "blend_penalty_db"](a) == pytest.approx(measured, abs=0.03)
    assert SOLUTIONS["11", "blend_penalty_db"](1.0) == pytest.approx(10 * math.log10(2), abs=1e-12)


# ------------------------------------------------------------------------------------------ published numbers
def test_the_lesson_quotes_the_notes_exactly():
    assert notebook_constant(LESSON, "PAPER_004") == NOTES_004_TABLE1
    assert notebook_constant(LESSON, "LEDIG_X4") == NOTES_LEDIG_X4
    assert notebook_constant(LESSON, "NOTE_COUNTS") == NOTES_COUNTS
    assert notebook_constant(LESSON, "PAPER_BICUBIC_X4") == {"Set5": 26.70, "Set14": 24.24}  # the DIINN paper's Table 1


def test_the_lessons_reading_of_004s_table_holds():
    # the lesson says: on Set5 PSNR and ALEX swap SRGAN and bicubic; on Set14 they agree in order
    ns = lesson_definitions("kendall_tau")
    for s, tau in (("Set5", 4 / 6), ("Set14", 1.0)):
        xs = [NOTES_004_TABLE1[m][s][0] for m in NOTES_004_TABLE1]
        ys = [NOTES_004_TABLE1[m][s][1] for m in NOTES_004_TABLE1]
        assert ns["kendall_tau"](xs, ys) == pytest.approx(tau)
    assert NOTES_LEDIG_X4["SRGAN"]["Set5"] - NOTES_LEDIG_X4["SRResNet"]["Set5"] == pytest.approx(-2.65)


# ------------------------------------------------------------------------------------------ the lesson's helpers
def test_kendall_tau_matches_scipy():
    from scipy.stats import kendalltau

    ns = lesson_definitions("kendall_tau")
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.normal(size=7), rng.normal(size=7)
        assert ns["kendall_tau"](x, y) == pytest.approx(kendalltau(x, y).statistic)


def test_pixel_shuffle_by_hand_matches_torch():
    ns = lesson_definitions("pixel_shuffle_by_hand")
    x = torch.randn(2, 5 * 16, 3, 4)
    assert torch.equal(ns["pixel_shuffle_by_hand"](x, 4), nn.PixelShuffle(4)(x))


def test_memory_block_by_hand_matches_the_library_with_nontrivial_batch_norms():
    ns = lesson_definitions("batch_norm_eval", "memory_block_by_hand")
    torch.manual_seed(0)
    block = memnet.MemoryBlock(2, 3, channels=8).eval()
    for bn in block.modules():
        if isinstance(bn, nn.BatchNorm2d):  # running statistics and affine parameters away from their defaults
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(bn.weight, 0.5, 1.5)
            nn.init.uniform_(bn.bias, -0.2, 0.2)
    longs = [torch.randn(1, 8, 9, 7), torch.randn(1, 8, 9, 7)]
    with torch.no_grad():
        assert torch.allclose(ns["memory_block_by_hand"](block, longs), block(longs), atol=1e-5)


def test_zero_mean_detail_is_invisible_after_area_downsampling():
    ns = lesson_definitions("zero_mean_detail")
    d = ns["zero_mean_detail"]((3, 1, 16, 24), 4, torch.Generator().manual_seed(0))
    assert d.abs().mean() > 0.5
    assert F.avg_pool2d(d, 4).abs().max() < 1e-6
    assert torch.allclose(degrade.resample(d, (4, 6), "area"), torch.zeros(3, 1, 4, 6), atol=1e-6)


def test_score_reproduces_evaluate_for_bicubic(course_data):
    ns = lesson_definitions("Interpolation", "LAPLACIAN", "laplacian_energy", "load_images", "score",
                            data=__import__("course_lib.data", fromlist=["data"]), centre_crop=centre_crop)
    images = ns["load_images"]("Set5", None, None)
    mine = ns["score"](models.build("bicubic"), images, 4)
    (row,) = evaluate.evaluate("bicubic", ["Set5"], [4], protocol="paper", progress=False, per_image=True)
    assert mine["psnr"] == pytest.approx([r["psnr"] for r in row["images"]], abs=1e-9)
    assert mine["ssim"] == pytest.approx([r["ssim"] for r in row["images"]], abs=1e-9)
    assert all(0 < d < 1 for d in mine["detail"])  # bicubic is smoother than the originals
    nearest = ns["score"](ns["Interpolation"]("nearest-exact"), images[:1], 4, kernel="area")
    lr = degrade.resample(images[0][1], degrade.lr_size(images[0][1].shape[-2:], 4), "area").float() / 255
    sr = F.interpolate(lr[None], size=images[0][1].shape[-2:], mode="nearest-exact")
    assert nearest["psnr"][0] == pytest.approx(metrics.psnr(sr, images[0][1][None]), abs=1e-9)


def test_macs_per_output_pixel_helper():
    ns = lesson_definitions("macs_per_output_pixel")
    m3r3 = models.build("memnet", blocks=3, recursions=3)
    assert ns["macs_per_output_pixel"](m3r3, 4) == SOLUTIONS["11", "memnet_macs"](3, 3)
    assert ns["macs_per_output_pixel"](m3r3, 2) == ns["macs_per_output_pixel"](m3r3, 4)  # runs at the output size
    srres = models.build("srresnet", blocks=2)
    counted = complexity.count_macs(srres.net, torch.rand(1, 3, 5, 6)) / (20 * 24)
    assert ns["macs_per_output_pixel"](srres, 4) == pytest.approx(counted)
    diinn = models.build("diinn", encoder="edsr-less")
    assert ns["macs_per_output_pixel"](diinn, 4) < ns["macs_per_output_pixel"](diinn, 2)  # the encoder is shared
