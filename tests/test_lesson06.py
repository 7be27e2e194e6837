"""Lesson 06 (training): the stored exercise solutions, and the claims notebooks/06_training.ipynb relies on.

The solutions are checked against the library (real batches of the training datasets, ``train.LRFactor`` and the
stepped scheduler, ``train.plan_steps``) and against hand-computed values. The lesson also rebuilds a training item
draw by draw from its generator, scores one crop with both recipes' objectives, resumes a ``compare-cpu`` run (the
bicubic-skip model) bit for bit, and reads the course's stored GPU log and the precision record: each of those is
tested here so that a change in the library that would break the lesson fails a test first.
"""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from conftest import lively_decoder, write_images
from torch.utils.data import default_collate

from course_lib import data, degrade, models, precision, train
from course_lib import notebook as nb

ROOT = Path(__file__).resolve().parents[1]
GPU_LOG = ROOT / "docs" / "results" / "diinn-edsr-291-metrics.jsonl"


def gpu_log() -> list[dict]:
    """The course's GPU run log, as section 3 and exercise 3 of the lesson read it."""
    return [json.loads(ln) for ln in GPU_LOG.read_text().splitlines() if ln.strip()]


def test_lesson06_solutions_are_registered():
    assert {name for lesson, name in nb.SOLUTIONS if lesson == "06"} == {"pixels_per_step", "learning_rate",
                                                                         "plan_steps"}


# ---------------------------------------------------------------------- exercise 1: pixels per step
@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory):
    return data.HRFolder(write_images(tmp_path_factory.mktemp("hr"), 5, size=(70, 66)))


@pytest.mark.parametrize("patch, batch, scales", [(8, 2, (2, 3, 4)), (5, 3, (2, 2.5, 3.5)), (16, 1, (4,)),
                                                  (6, 4, (1, 3))])
def test_pixels_per_step_solution_counts_real_batches(hr_folder, patch, batch, scales):
    q = patch * patch
    authors = default_collate([data.MultiScalePatches(hr_folder, scales=scales, patch=patch)[k] for k in range(batch)])
    liif = default_collate([data.LIIFPatches(hr_folder, scale_max=max(scales), patch=patch, sample_q=q)[k]
                            for k in range(batch)])
    counted = [sum(hr.shape[0] * hr.shape[2] * hr.shape[3] for _, hr in authors),
               liif["gt"].shape[0] * liif["gt"].shape[1]]
    assert nb.SOLUTIONS["06", "pixels_per_step"](patch, batch, scales, q) == counted


def test_pixels_per_step_solution_by_hand():
    # the paper's step: 4 images x (96^2 + 144^2 + 192^2) = 4 x 2304 x 29 HR pixels; LIIF's: 4 x 2304
    assert nb.SOLUTIONS["06", "pixels_per_step"](48, 4, (2, 3, 4), 2304) == [267_264, 9_216]
    assert nb.SOLUTIONS["06", "pixels_per_step"](10, 1, (2.5,), 7) == [625, 7]  # round(25.0) = 25


# ---------------------------------------------------------------------- exercise 2: the learning rate
SCHEDULES = [(1e-4, 200_000, 0, "step", [0.2, 0.4, 0.6, 0.8], 0.5),  # the paper's (diinn-rdn.yaml)
             (2e-4, 150, 50, "cosine", [0.2, 0.4, 0.6, 0.8], 0.5),  # compare-cpu as the lesson runs it
             (3e-4, 37, 4, "step", [0.5, 0.75], 0.1),  # a warm-up on a step schedule, odd milestones
             (1e-3, 10, 0, "cosine", [], 0.5)]


@pytest.mark.parametrize("lr, max_steps, warmup, schedule, milestones, gamma", SCHEDULES)
def test_learning_rate_solution_matches_the_stepped_scheduler(lr, max_steps, warmup, schedule, milestones, gamma):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=lr)
    sched = train.make_schedule(opt, max_steps, milestones, gamma, schedule, warmup)
    factor = train.LRFactor(max_steps, milestones, gamma, schedule, warmup)
    ks = sorted({0, 1, warmup, max(0, warmup - 1), max_steps - 1, max_steps,
                 *(round(m * max_steps) + d for m in milestones for d in (-1, 0))} | set(range(0, max_steps, 997)))
    k = 0
    for target in ks:
        while k < target:
            opt.step()
            sched.step()
            k += 1
        mine = nb.SOLUTIONS["06", "learning_rate"](k, lr, max_steps, warmup, schedule, milestones, gamma)
        assert mine == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=0), k
        assert mine == pytest.approx(lr * factor(k), rel=1e-12, abs=0), k


def test_learning_rate_solution_by_hand():
    sol = nb.SOLUTIONS["06", "learning_rate"]
    # authors: 1e-4 until step 40,000 (the first fifth of 200k), then halved at each fifth
    assert [sol(k, 1e-4, 200_000, 0, "step", [0.2, 0.4, 0.6, 0.8], 0.5) for k in (39_999, 40_000, 199_999)] == \
        pytest.approx([1e-4, 5e-5, 6.25e-6], rel=1e-12)
    # cosine with a 50-step warm-up over 150 steps: lr/50 first, lr at the end of the warm-up, half-way at step 100
    assert [sol(k, 2e-4, 150, 50, "cosine", [], 0.5) for k in (0, 49, 100, 150)] == \
        pytest.approx([2e-4 / 50, 2e-4, 1e-4, 0.0], rel=1e-12, abs=1e-20)


def test_the_gpu_runs_logged_learning_rates_follow_the_formula():
    # the lesson checks the exercise against every rate the course's GPU run logged, at its planned length
    lines = gpu_log()
    plan = next(ln["plan"] for ln in lines if "plan" in ln)
    cfg = train.load_config("diinn-edsr-291", {"run.max_steps": plan["max_steps"]})
    o = cfg.optim
    logged = [(ln["step"], ln["lr"]) for ln in lines if "lr" in ln]
    assert len(logged) > 40
    for k, lr in logged:
        mine = nb.SOLUTIONS["06", "learning_rate"](k, o.lr, plan["max_steps"], o.warmup_steps, o.schedule,
                                                   o.milestones, o.gamma)
        assert mine == pytest.approx(lr, rel=1e-12, abs=1e-20), k


# ---------------------------------------------------------------------- exercise 3: planning a time budget
@pytest.mark.parametrize("rate, seconds, val_seconds, val_every", [(10.0, 100.0, 1.0, 100), (10.0, 100.0, 0.0, 0),
                                                                   (0.55, 2700.0, 13.37, 250), (1.3, 5.0, 9.0, 250),
                                                                   (10.6286, 1015.72, 0.56, 2000), (3.0, 60.0, 2.0, 0)])
def test_plan_steps_solution_matches_the_library(rate, seconds, val_seconds, val_every):
    n = nb.SOLUTIONS["06", "plan_steps"](rate, seconds, val_seconds, val_every)
    assert n == train.plan_steps(rate, seconds, val_seconds, val_every)
    assert isinstance(n, int) and n >= 0
    if n:  # n steps and their validations fit in 97 % of the time; one more step would not
        def used(m):
            return m / rate + val_seconds * (1 + (m / val_every if val_every else 0))

        assert used(n) <= 0.97 * seconds + 1e-9 < used(n + 1)


def test_plan_steps_solution_by_hand():
    # 10 steps/s for 100 s, a 1 s validation every 100 steps and one at the end: n / 10 + n / 100 = 97 - 1
    assert nb.SOLUTIONS["06", "plan_steps"](10.0, 100.0, 1.0, 100) == math.floor(96 / 0.11)
    assert nb.SOLUTIONS["06", "plan_steps"](10.0, 0.5, 1.0, 100) == 0  # not even the validation fits


# ---------------------------------------------------------------------- the lesson's other claims
def _crop(img, crop, g):
    H, W = img.shape[-2:]
    top = int(torch.randint(0, H - crop + 1, (1,), generator=g))
    left = int(torch.randint(0, W - crop + 1, (1,), generator=g))
    return img[:, top:top + crop, left:left + crop]


def _flips(lr, hr, g):
    rows, cols, transpose = (torch.rand(3, generator=g) < 0.5).tolist()
    if rows:
        lr, hr = lr.flip(-2), hr.flip(-2)
    if cols:
        lr, hr = lr.flip(-1), hr.flip(-1)
    if transpose:
        lr, hr = lr.transpose(-2, -1), hr.transpose(-2, -1)
    return lr, hr


@pytest.mark.parametrize("epoch, index", [(0, 0), (0, 3), (2, 6)])
def test_an_item_is_rebuilt_draw_by_draw_as_the_lesson_does(hr_folder, epoch, index):
    # section 1 redoes an item from data.item_generator: per scale top, left, the LR, then the three flips (authors');
    # scale, crop, LR, flips, then the query permutation (LIIF's). A change of the draw order breaks the lesson.
    seed, patch = 7, 8
    img = hr_folder[index % len(hr_folder)]
    authors = data.MultiScalePatches(hr_folder, scales=(2, 3, 4), patch=patch, repeat=2, seed=seed)
    authors.set_epoch(epoch)
    g = data.item_generator(seed, epoch, index)
    for s, (lr_lib, hr_lib) in zip((2, 3, 4), authors[index]):
        hr = _crop(img, round(patch * s), g)
        lr, hr = _flips(degrade.bicubic_aa(hr, (patch, patch)), hr, g)
        assert torch.equal(lr.float() / 255, lr_lib) and torch.equal(hr.float() / 255, hr_lib)
    liif = data.LIIFPatches(hr_folder, scale_min=1, scale_max=4, patch=patch, sample_q=40, repeat=2, seed=seed)
    liif.set_epoch(epoch)
    item = liif[index]
    g = data.item_generator(seed, epoch, index)
    crop = round(patch * (1 + 3 * float(torch.rand(1, generator=g))))
    hr = _crop(img, crop, g)
    lr, hr = _flips(degrade.bicubic_aa(hr, (patch, patch)), hr, g)
    picked = torch.randperm(crop * crop, generator=g)[:40]
    coord = torch.stack([-1 + (2 * (picked // crop) + 1) / crop, -1 + (2 * (picked % crop) + 1) / crop], -1).float()
    assert torch.equal(lr.float() / 255, item["lr"]) and torch.equal(coord, item["coord"])
    assert torch.equal(hr.reshape(3, -1)[:, picked].t().float() / 255, item["gt"])
    assert torch.equal(item["cell"], torch.full((40, 2), 2 / crop))


@pytest.mark.parametrize("skip", [None, "bicubic"])
def test_liif_objective_on_every_pixel_equals_the_authors_objective(hr_folder, skip):
    # section 2: the two recipes' losses are one function; LIIF's scores a subset of the pixels
    torch.manual_seed(0)
    model = lively_decoder(models.build("diinn", encoder="edsr-less", skip=skip))
    item = data.LIIFPatches(hr_folder, scale_min=3, scale_max=3, patch=6, sample_q=None, seed=1)[2]
    hr = item["gt"].t().reshape(1, 3, 18, 18)
    with torch.no_grad():
        liif = train.Objective(model, "liif")(default_collate([item])).item()
        authors = train.Objective(model, "authors")([(item["lr"][None], hr)]).item()
        wrong = train.Objective(model, "authors")([(item["lr"][None], hr.transpose(-2, -1))]).item()
    assert liif == pytest.approx(authors, rel=1e-5)
    assert abs(wrong - authors) > 1e-3  # the comparison can tell a transposed target apart


def test_compare_cpu_run_resumes_bit_for_bit(tmp_path):
    # section 5 stops and resumes the live config (DIINN (f) + EDSR-baseline with the bicubic skip, cached images,
    # repeat 20) in fp32 on the CPU and checks that every weight equals the uninterrupted run's
    folder = write_images(tmp_path / "train", 6, size=(40, 44))
    o = {"data.train_dir": [str(folder)], "data.patch": 8, "run.max_steps": 4, "run.amp": "off", "run.device": "cpu",
         "val.sets": [], "run.progress": False, "run.log_every": 1, "run.save_every": 4, "data.batch_size": 2}
    whole = train.train("compare-cpu", {**o, "run.out_dir": str(tmp_path / "whole")})
    first = train.train("compare-cpu", {**o, "run.out_dir": str(tmp_path / "split"), "run.stop_at": 2})
    assert first.step == 2 and first.interrupted
    second = train.train("compare-cpu", {**o, "run.out_dir": str(tmp_path / "split")}, resume=True)
    a, b = train.load_checkpoint(whole.last), train.load_checkpoint(second.last)
    assert a["config"]["skip"] == "bicubic"
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    losses = [[ln["loss"] for ln in train.read_metrics(tmp_path / run) if "loss" in ln] for run in ("whole", "split")]
    assert losses[0] == losses[1] and len(losses[0]) == 4


def test_the_precision_record_the_lesson_prints():
    # section 4 reads the AVX2-only measurement from course_lib/precision.py's docstring with this expression
    record = re.search(r"took ([\d.]+) s in fp32 took ([\d.]+) s under bf16[^.]*?on an? ([\w-]+) machine",
                       " ".join(precision.__doc__.split()))
    assert record is not None
    assert record.group(3) == "AVX2-only" and round(float(record.group(2)) / float(record.group(1))) == 18


def test_the_gpu_runs_plan_is_recomputed_from_its_log():
    # exercise 3's last line: the plan the GPU run logged follows train.plan_steps from the logged speed and time
    lines = gpu_log()
    plan_line = next(ln for ln in lines if "plan" in ln)
    plan = plan_line["plan"]
    t_plan = next(ln["time"] for ln in lines if "val_psnr" in ln)
    every = train.load_config("diinn-edsr-291").val.every
    n = train.plan_steps(plan["steps_per_s"], plan["max_minutes"] * 60 - t_plan, plan["val_seconds"], every)
    assert abs(plan_line["step"] + n - plan["max_steps"]) <= 2
