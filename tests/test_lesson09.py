"""Lesson 09 (LIIF, LIIF+SIREN, Meta-SR): the stored exercise solutions, and the claims the lesson relies on.

The solutions are checked against the library (``liif.ensemble_queries``, ``complexity.count_macs``) and independent
oracles (hand-computed weights, ``np.polyfit``). The claims: LIIF's output is continuous in the query position while
DIINN's, Meta-SR's and LIIF's without the ensemble jump at LR borders (section 4's sweep); Meta-SR's output is linear
in the features (section 3); the FLOP counter sees 3 * width of Meta-SR's fast-path multiply-adds per query, and the
lesson adds the other 3 * width by hand (section 5).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import notebook_constant

from course_lib import compare, complexity, coords, liif, metasr, train
from course_lib import notebook as nb
from course_lib.decoders import DIINNDecoder

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "09_liif_metasr.ipynb"


def grid(size):
    return coords.make_coord(size, dtype=torch.float64, flatten=True)[None]


def test_lesson09_solutions_are_registered():
    assert {name for lesson, name in nb.SOLUTIONS if lesson == "09"} == {"ensemble_weights", "query_macs",
                                                                         "time_line"}


# ------------------------------------------------------------------------------------------------- exercise 1
def test_ensemble_weights_solution_by_hand():
    # 2x2 -> 5x5, HR pixel (1, 3): x_q = (-0.4, 0.4); per axis the neighbours' rel (half-pixels) are row 0.2 / -1.8,
    # col 1.8 / -0.2; own areas 0.36, 0.04, 3.24, 0.36 (sum 4); swapped: 0.09, 0.81, 0.01, 0.09 (= bilinear 0.9 x 0.9)
    weights = nb.SOLUTIONS["09", "ensemble_weights"](grid((5, 5)), (2, 2))
    assert weights.shape == (4, 1, 25)
    assert weights[:, 0, 1 * 5 + 3].tolist() == pytest.approx([0.09, 0.81, 0.01, 0.09], abs=1e-9)


@pytest.mark.parametrize("coord_kind, lr_size", [("grid5", (2, 2)), ("grid9", (3, 3)), ("grid7x10", (3, 4)),
                                                 ("random", (3, 4)), ("random", (1, 5)), ("border", (4, 4))])
def test_ensemble_weights_solution_matches_library(coord_kind, lr_size):
    if coord_kind == "random":
        coord = torch.rand(2, 40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    elif coord_kind == "border":  # queries exactly on LR borders and centres, and at the image edge
        ticks = torch.tensor([-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
        coord = torch.stack(torch.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(1, -1, 2)
    else:
        size = {"grid5": (5, 5), "grid9": (9, 9), "grid7x10": (7, 10)}[coord_kind]
        coord = grid(size)
    mine = nb.SOLUTIONS["09", "ensemble_weights"](coord, lr_size)
    assert torch.allclose(mine, liif.ensemble_queries(coord, lr_size)[2], atol=1e-12)


# ------------------------------------------------------------------------------------------------- exercise 2
def test_query_macs_solution_gives_the_lessons_numbers():
    assert nb.SOLUTIONS["09", "query_macs"](64, 256, 4) == [984_576, 1_383_424, 444_864]


def query_macs_counted(dec, c, fast, n=16):
    torch.manual_seed(0)
    feat = torch.randn(1, c, 5, 6)
    dec.fast = fast
    coord = torch.rand(1, n, 2, dtype=torch.float64) * 2 - 1
    cell = coords.make_cell((13, 17), (1, n))
    return complexity.count_macs(dec.query, dec.prepare(feat), coord, cell) / n


@pytest.mark.parametrize("c, width, depth", [(64, 256, 4), (32, 256, 4), (4, 16, 2), (3, 8, 3), (5, 12, 1)])
def test_query_macs_solution_matches_the_flop_counter(c, width, depth):
    decs = [DIINNDecoder(9 * c, width, depth), liif.LIIFDecoder(c, [width] * depth), metasr.MetaSRDecoder(c, width)]
    assert nb.SOLUTIONS["09", "query_macs"](c, width, depth) == [query_macs_counted(d, c, fast=False) for d in decs]


def test_counter_sees_3_width_of_metasr_fast_query_and_the_lesson_adds_the_rest():
    # fast path: relu(A_1 p + b_1) is a counted matrix product (3 x width); the 3 x width product with the gathered
    # LR-size map is element-wise (not counted), so the lesson adds 3 * width by hand: 2 * 3 * width in all
    for width in (256, 16):
        assert query_macs_counted(metasr.MetaSRDecoder(4, width), 4, fast=True) == 3 * width
    dec = metasr.MetaSRDecoder(4, 16)
    state = dec.prepare(torch.randn(1, 4, 5, 6))
    assert state["lr"].shape[1] == 3 * 16 + 3  # per query: 3 x 16 products with a (16,) activation, 3 more adds


# ------------------------------------------------------------------------------------------------- exercise 3
@pytest.mark.parametrize("pixels, ms", [([128**2, 256**2, 512**2], [56.6, 95.51, 243.59]),
                                        ([1, 2, 3, 4], [2.0, 2.9, 4.2, 4.8]), ([10, 30], [5.0, 9.0])])
def test_time_line_solution_matches_polyfit(pixels, ms):
    t0, t1 = nb.SOLUTIONS["09", "time_line"](pixels, ms)
    slope, intercept = np.polyfit(pixels, ms, 1)
    assert t1 == pytest.approx(slope, rel=1e-9) and t0 == pytest.approx(intercept, rel=1e-9, abs=1e-9)


def test_time_line_solution_through_two_points_is_exact():
    assert nb.SOLUTIONS["09", "time_line"]([10, 30], [5.0, 9.0]) == pytest.approx([3.0, 0.2])


# ------------------------------------------------------------------------------------------------- the claims
def sweep_steps(decode, lr_size, out_size, at, delta=1e-5):
    """|output(a + delta) - output(a - delta)| (largest over RGB) for column positions `at` on the middle LR row.

    delta = 1e-5 is above coords.TIE_EPS (1e-5 LR pixels = 3.3e-6 here), so the two points lie in different pixels."""
    h, w = lr_size
    row = float(coords.pixel_centers(h, dtype=torch.float64)[h // 2])
    cols = torch.tensor([a + s * delta for a in at for s in (-1, 1)], dtype=torch.float64)
    coord = torch.stack([torch.full_like(cols, row), cols], -1)[None]
    cell = coords.make_cell(out_size, coord.shape[:2], dtype=torch.float64)
    with torch.no_grad():
        out = decode(coord, cell)[0]
    return (out[1::2] - out[0::2]).abs().max(-1).values


LR, OUT = (5, 6), (20, 24)  # x4
BORDERS = [-1 + 2 * k / LR[1] for k in range(1, LR[1])]
CENTRES = [float(c) for c in coords.pixel_centers(LR[1], dtype=torch.float64)]


def random_feat(c=3):
    return torch.randn(1, c, *LR, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.parametrize("mlp", ["relu", "siren"])
@pytest.mark.parametrize("fast", [False, True])
def test_liif_is_continuous_across_lr_borders_and_centres(mlp, fast):
    torch.manual_seed(0)
    dec = liif.LIIFDecoder(3, hidden=[16, 16], mlp=mlp, w0=30.0 if mlp == "siren" else None).double()
    dec.fast = fast
    feat = random_feat()
    steps = sweep_steps(lambda c, s: dec(feat, c, s), LR, OUT, BORDERS + CENTRES)
    assert steps.max() < 5e-4  # a step of 2e-5 in position: a continuous output barely moves (about 1e-5 here)


def test_without_the_ensemble_liif_jumps_at_lr_borders():
    torch.manual_seed(0)
    dec = liif.LIIFDecoder(3, hidden=[16, 16], local_ensemble=False).double()
    steps = sweep_steps(lambda c, s: dec(random_feat(), c, s), LR, OUT, BORDERS)
    assert steps.min() > 5e-3  # a new z, and rel jumping from +1 to -1: a jump at every border


def test_diinn_and_metasr_jump_where_they_switch_lr_pixels():
    torch.manual_seed(0)
    diinn = DIINNDecoder(27, width=16, depth=2).double()
    assert sweep_steps(lambda c, s: diinn(random_feat(), c, s), LR, OUT, BORDERS).min() > 5e-3
    meta = metasr.MetaSRDecoder(3, 16).double()
    half_cell = 1 / OUT[1]  # Meta-SR's source pixel holds the query's corner, x - cell / 2
    at_switch = sweep_steps(lambda c, s: meta(random_feat(), c, s), LR, OUT, [b + half_cell for b in BORDERS])
    elsewhere = sweep_steps(lambda c, s: meta(random_feat(), c, s), LR, OUT, BORDERS)
    assert at_switch.min() > 5e-3 and elsewhere.max() < 5e-4


@pytest.mark.parametrize("fast", [False, True])
def test_metasr_output_is_linear_in_the_features(fast):
    torch.manual_seed(0)
    dec = metasr.MetaSRDecoder(3, 16).double()
    dec.fast = fast
    coord = grid((7, 10))
    cell = coords.make_cell((7, 10), coord.shape[:2], dtype=torch.float64)
    f1 = torch.randn(1, 3, 3, 4, dtype=torch.float64)
    f2 = torch.randn(1, 3, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(dec(2 * f1 - 0.5 * f2, coord, cell),
                              2 * dec(f1, coord, cell) - 0.5 * dec(f2, coord, cell), atol=1e-12)
        liif_dec = liif.LIIFDecoder(3, hidden=[8]).double()  # the contrast: LIIF is not linear in z
        assert not torch.allclose(liif_dec(2 * f1, coord, cell), 2 * liif_dec(f1, coord, cell), atol=1e-6)


# ------------------------------------------------------------------------------------------------- the recorded runs
def _run_lesson(tmp_path, figures, *params):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_lesson.py"), str(LESSON), "-p", "SMOKE=True",
                           *[x for p in params for x in ("-p", p)], "--figures", str(figures)], capture_output=True,
                          text=True, timeout=900, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _tables(out: str) -> list[str]:
    """The lesson's printed results from section 0's check on, less the runtime benchmark of section 6 (timings) and
    what names a run folder, a time or a machine, or says where the scores came from."""
    body = out[out.index("claim: every run was trained"):]
    head, rest = body.split("\nmachine: ", 1)
    rest = rest[rest.index(" (set, scale) pairs "):]
    lines = (head + rest[rest.index("\n"):]).splitlines()
    drop = ("[cell", "lesson run time", "09_liif_metasr.ipynb:", "row            seed", "precision:", "memory:",
            "recorded ", "the EDSR-LESS pair's per-image scores")
    return [ln for ln in lines if ln.strip() and not ln.startswith(drop) and " training in " not in ln
            and "read back" not in ln]


def test_the_lesson_reads_the_record_in_place_of_missing_runs(course_data, tmp_path):
    """SMOKE once with `record = True` (trains 8 + 4 tiny runs, writes their scores, logs and figure data), then again
    with the runs gone: the lesson must say it reads the record, print the same tables, checks and findings (the
    EDSR-LESS gaps of section 8 included) and draw byte-identical figures, the weight-dependent ones of sections 2-4,
    7 and 9 from the record's arrays. A record made with other overrides is refused, and the lesson trains instead."""
    rec = tmp_path / "rec.json"
    live = _run_lesson(tmp_path, tmp_path / "live", f"recorded={str(rec)!r}", "record=True")
    assert "8 trained now" in live and "LIIF (EDSR-LESS) seed 1: training in" in live
    assert "the recorded scores read back: exact" in live and "recorded figure arrays read back: exact" in live
    scores, info, meta = compare.load_scores(rec)
    assert len(scores) == 12 and meta["score_sets"] == {"Set5": [4.0, 3.5]} and meta["visual"] == ["Set5", "butterfly"]
    figs = compare.load_arrays(rec.with_suffix(".npz"))
    assert {"Meta-SR maps", "LIIF+SIREN-30 features", "LIIF ablation features", "LIIF sweep, ensemble off",
            "DIINN (f) sweep", "Meta-SR x8 PSNR", "LIIF x3.5 window"} <= set(figs)
    read = _run_lesson(tmp_path, tmp_path / "read", f"recorded={str(rec)!r}")
    assert "8 of 8 runs are not in" in read and "figure data recorded in" in read
    assert "trained now" not in read and " training in " not in read and "pair's per-image scores: read from" in read
    got, want = _tables(read), _tables(live)
    assert len(want) > 60 and got == want
    pngs = sorted(p.name for p in (tmp_path / "live").iterdir())
    assert len(pngs) >= 8 and pngs == sorted(p.name for p in (tmp_path / "read").iterdir())
    assert [p for p in pngs if (tmp_path / "live" / p).read_bytes() != (tmp_path / "read" / p).read_bytes()] == []
    meta["overrides"]["run.max_steps"] = 3  # another budget: the record no longer matches
    compare.save_scores(rec, scores, None, **meta)
    other = _run_lesson(tmp_path, tmp_path / "other", f"recorded={str(rec)!r}", "runtime_timing='read'")
    assert "overrides differs" in other and "8 trained now" in other
    # section 6 read the committed benchmark rows (RDN, 48 -> 128 / 256 / 512) instead of timing tiny ones
    assert "read docs/results/runtime-families-cpu.json" in other and "LIIF + rdn" in other


def test_the_record_is_what_the_lessons_parameters_ask_for(course_data):
    """Section 0 uses docs/results/families-cpu.json (and its .npz) in place of missing runs only when its meta equals
    the lesson's parameters; this keeps the two in step: the same config, overrides, sets, scales and figure
    parameters; every family and the EDSR-LESS pair for every seed, scored on every image; each run's stored training
    config exactly its row's (compare.run_changes), trained to the end of the budget; and every array the figures
    read, shaped as the parameters make it."""
    from course_lib import data

    path = ROOT / notebook_constant(LESSON, "recorded")
    scores, info, meta = compare.load_scores(path)
    figs = compare.load_arrays(path.with_suffix(".npz"))
    c = {name: notebook_constant(LESSON, name) for name in (
        "config", "overrides", "score_sets", "score_limit", "score_crop", "visual", "visual_centre", "visual_side",
        "visual_scales", "zoom_side", "sweep_scale", "sweep_points", "ablation_image", "ablation_scale",
        "ablation_side", "families", "seeds")}
    wanted = {"config": c["config"], "overrides": c["overrides"],
              "score_sets": {k: [float(s) for s in v] for k, v in c["score_sets"].items()},
              "score_limit": c["score_limit"], "score_crop": c["score_crop"], "visual": list(c["visual"]),
              "visual_centre": list(c["visual_centre"]), "visual_side": c["visual_side"],
              "visual_scales": [float(s) for s in c["visual_scales"]], "zoom_side": c["zoom_side"],
              "sweep_scale": float(c["sweep_scale"]), "sweep_points": c["sweep_points"],
              "ablation_image": list(c["ablation_image"]), "ablation_scale": float(c["ablation_scale"]),
              "ablation_side": c["ablation_side"]}
    assert {k: meta.get(k) for k in wanted} == wanted
    rows = {**{f: compare.FAMILY_ROWS[f] for f in c["families"]}, **compare.FAMILY_LESS_ROWS}
    assert c["families"] == list(compare.FAMILY_ROWS) and c["seeds"] == [0, 1]
    assert sorted(scores) == sorted((r, s) for r in rows for s in c["seeds"])
    budget = train.load_config(c["config"]).run.max_steps
    for (row, seed), per in scores.items():
        sets = c["score_sets"] if row in c["families"] else {"Set5": c["score_sets"]["Set5"]}
        assert set(per) == {(name, float(s)) for name, scs in sets.items() for s in scs}, (row, seed)
        for (name, _), v in per.items():
            assert len(v) == len(data.get_dataset(name)) and np.isfinite(v).all() and (v > 15).all()
        over = {**c["overrides"], **rows[row], "run.seed": seed}
        assert compare.run_changes(info[row, seed], c["config"], over) == []
        assert info[row, seed]["steps"] == budget == 400 and info[row, seed]["seconds"] > 0
    lr_side = round(c["visual_side"] / c["sweep_scale"])
    shapes = {"LIIF+SIREN-30 features": (1, 64, lr_side, lr_side), "Meta-SR maps": (16, 3, 3),
              "LIIF sweep, ensemble off": (c["sweep_points"],),
              "LIIF ablation features": (1, 64, c["ablation_side"] // c["ablation_scale"],
                                         c["ablation_side"] // c["ablation_scale"])}
    for f in c["families"]:
        shapes[f"{f} sweep"] = (c["sweep_points"],)
        for s in c["visual_scales"]:
            shapes[f"{f} x{s:g} window"], shapes[f"{f} x{s:g} PSNR"] = (3, c["zoom_side"], c["zoom_side"]), ()
    assert {k: v.shape for k, v in figs.items()} == shapes
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in figs.values())
    # the recorded windows are upscaled images, which SRModel.upscale clamps to [0, 1]
    assert all(0 <= v.min() and v.max() <= 1 for k, v in figs.items() if k.endswith("window"))


def test_the_stored_runtime_rows_are_what_section_6_asks_for():
    """With runtime_timing = "read", section 6 reads docs/results/runtime-families-cpu.json instead of timing: it must
    hold every (family, path) row at the lesson's encoder, input and output sizes, timed in fp32 on a named CPU."""
    import json

    assert notebook_constant(LESSON, "runtime_timing") in ("here", "read")
    stored = json.loads((ROOT / notebook_constant(LESSON, "runtime_json")).read_text())
    encoder, sizes = notebook_constant(LESSON, "runtime_encoder"), notebook_constant(LESSON, "runtime_sizes")
    timed = {(r["model"], r["path"], r["precision"], r["input"], r["size"]): r["ms"] for r in stored["rows"]
             if "size" in r}
    for family in ("DIINN (f)", "LIIF", "Meta-SR"):
        for path in ("reference", "fast"):
            for n in sizes:
                assert timed[f"{family} + {encoder}", path, "fp32", 48, n] > 0, (family, path, n)
    assert "AVX2" in stored["machine"] and "threads" in stored["machine"]
