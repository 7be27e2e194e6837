"""The trainer (course_lib.train): configs, data order, one step, exact resume, checkpoints, errors, export.

Every run here is tiny: EDSR-LESS encoder, 8x8 LR patches at x2, 2 images per step, a dozen steps on CPU.
"""

import dataclasses
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import assert_same_state
from conftest import load_state as weights

from course_lib import models, precision, train
from course_lib.__main__ import main
from course_lib.errors import CourseError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def tiny(folders, out_dir, **extra) -> dict:
    """Overrides for a tiny CPU run: edsr-less, patch 8, x2 only, 2 images per step, 12 steps.

    fp32 on the CPU whatever the CPU (amp auto would pick bf16 on CPUs with native bf16): there a resumed run is
    bit-identical to an uninterrupted one. On CUDA it is not (GPU kernels with atomic additions; seen on an H100,
    docs/TRAINING.md)."""
    train_dir, val_dir = folders
    o = {"model.encoder": "edsr-less", "run.device": "cpu", "run.amp": "off", "data.train_dir": str(train_dir),
         "data.patch": 8, "data.scales": [2], "data.batch_size": 2, "data.num_workers": 0, "run.max_steps": 12,
         "run.seed": 3, "run.log_every": 2, "run.save_every": 4, "run.progress": False, "run.out_dir": str(out_dir),
         "val.sets": [str(val_dir)], "val.scales": [2], "val.every": 0}
    o.update(extra)
    return o


# ---------------------------------------------------------------------- configs
def test_every_shipped_config_loads():
    names = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert {"diinn-rdn", "diinn-edsr", "diinn-rdn-a", "diinn-rdn-e"} <= set(names)
    for name in names:
        cfg = train.load_config(CONFIGS / f"{name}.yaml")
        assert cfg.name == name


def test_paper_recipe_config():
    cfg = train.load_config("diinn-rdn")
    assert (cfg.model.name, cfg.model.encoder, cfg.model.variant) == ("diinn", "rdn", "f")
    assert cfg.data.recipe == "authors" and cfg.data.scales == [2, 3, 4]
    assert (cfg.data.patch, cfg.data.batch_size) == (48, 4)
    assert cfg.optim.lr == 1e-4 and cfg.optim.gamma == 0.5 and cfg.optim.grad_clip is None
    assert cfg.optim.milestones == [0.2, 0.4, 0.6, 0.8]
    edsr = train.load_config("diinn-edsr")
    assert (edsr.model.encoder, edsr.model.variant) == ("edsr-baseline", "f")
    assert (edsr.data.scales, edsr.data.patch, edsr.data.batch_size, edsr.optim) == (
        cfg.data.scales, cfg.data.patch, cfg.data.batch_size, cfg.optim)


@pytest.mark.parametrize("variant", list("abcde"))
def test_ablation_configs_differ_by_one_flag(variant):
    base = dataclasses.asdict(train.load_config("diinn-rdn"))
    abl = dataclasses.asdict(train.load_config(f"diinn-rdn-{variant}"))
    assert abl["model"]["variant"] == variant
    base.pop("name"), abl.pop("name")
    abl["model"]["variant"] = "f"
    assert abl == base


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(CourseError) as err:
        train.load_config("diinn-edsr", ["data.pach=32"])
    msg = str(err.value)
    assert "'data.pach'" in msg and "data.patch" in msg and "run.max_steps" in msg and "\n" not in msg
    with pytest.raises(CourseError, match="unknown config key 'model.depth'"):
        train.load_config({"model": {"depth": 3}})


def test_overrides_are_parsed_as_yaml():
    cfg = train.load_config(None, ["optim.lr=2e-4", "data.scales=[2, 3.5]", "val.limit=null",
                                   "run.compile=true", "data.patch=32", "optim.grad_clip=1"])
    assert cfg.optim.lr == 2e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.data.scales == [2.0, 3.5] and cfg.val.limit is None and cfg.run.compile is True
    assert cfg.data.patch == 32 and cfg.optim.grad_clip == 1.0
    assert train.load_config(None, {"run.max_steps": 7}).run.max_steps == 7
    with pytest.raises(CourseError, match="data.patch must be int"):
        train.load_config(None, ["data.patch=big"])
    with pytest.raises(CourseError, match="key=value"):
        train.load_config(None, ["data.patch"])
    with pytest.raises(CourseError, match="run.amp"):
        train.load_config(None, ["run.amp=fp8"])


def test_base_chain_and_loop(tmp_path):
    (tmp_path / "a.yaml").write_text("model: {encoder: edsr-less}\nrun: {max_steps: 5, seed: 9}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nrun: {max_steps: 6}\n")
    cfg = train.load_config(tmp_path / "b.yaml")
    assert (cfg.name, cfg.model.encoder, cfg.run.max_steps, cfg.run.seed) == ("b", "edsr-less", 6, 9)
    (tmp_path / "c.yaml").write_text("base: d.yaml\n")
    (tmp_path / "d.yaml").write_text("base: c.yaml\n")
    with pytest.raises(CourseError, match="includes itself"):
        train.load_config(tmp_path / "c.yaml")
    with pytest.raises(CourseError, match="not found"):
        train.load_config("no-such-config")


# ---------------------------------------------------------------------- data order
def test_step_batches_cover_each_epoch_once_and_shard_like_one_big_batch():
    one = train.StepBatches(n=22, batch_size=4, seed=5, start=0, stop=10)
    assert one.steps_per_epoch == 5  # 22 // 4, the incomplete tail of 2 is dropped
    batches = list(one)
    epoch0 = [i for b in batches[:5] for _, i in b]
    assert len(set(epoch0)) == 20 and all(e == 0 for b in batches[:5] for e, _ in b)
    assert all(e == 1 for b in batches[5:] for e, _ in b) and batches[5] != batches[0]
    # resuming at step 7 gives exactly the batches 7, 8, 9 of the uninterrupted order
    assert list(train.StepBatches(22, 4, 5, start=7, stop=10)) == batches[7:]
    # two processes with batch 2 see, together, the images of one process with batch 4
    r0 = list(train.StepBatches(22, 2, 5, 0, 10, rank=0, world=2))
    r1 = list(train.StepBatches(22, 2, 5, 0, 10, rank=1, world=2))
    assert [a + b for a, b in zip(r0, r1)] == batches
    with pytest.raises(CourseError, match="fewer than one step"):
        train.StepBatches(3, 4, 0, 0, 1)


def test_schedule_halves_at_fifths():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-4)
    sched = train.make_schedule(opt, 10, [0.2, 0.4, 0.6, 0.8], 0.5)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-4] * 2 + [5e-5] * 2 + [2.5e-5] * 2 + [1.25e-5] * 2 + [6.25e-6] * 2)


def test_cosine_schedule_with_warmup_by_hand():
    f = train.LRFactor(10, schedule="cosine", warmup_steps=2)
    assert [f(0), f(1)] == pytest.approx([0.5, 1.0])  # linear warm-up to 1 over 2 steps
    # then 0.5 (1 + cos(pi t)), t = (s - 2) / 8
    assert [f(2), f(4), f(6), f(10)] == pytest.approx([1.0, 0.5 * (1 + 2 ** -0.5), 0.5, 0.0])
    step = train.LRFactor(10, [0.5], 0.1, "step", warmup_steps=4)
    assert [step(0), step(3), step(4), step(5)] == pytest.approx([0.25, 1.0, 1.0, 0.1])


def test_plan_steps_by_hand():
    assert train.plan_steps(10.0, 100.0, reserve=0.0) == 1000  # 10 steps/s for 100 s
    # 10 steps/s, 1 s validation every 100 steps and one at the end, 3 % kept:
    # 97 s - 1 s = n / 10 + n / 100  ->  n = 96 / 0.11 = 872.7
    assert train.plan_steps(10.0, 100.0, val_seconds=1.0, val_every=100) == 872
    assert train.plan_steps(10.0, 0.5, val_seconds=1.0, val_every=100) == 0


def test_set_max_steps_restretches_the_schedule():
    cfg = train.load_config(None, {"model.encoder": "edsr-less", "optim.schedule": "cosine", "run.max_steps": 1000,
                                   "run.device": "cpu"})
    trainer = train.Trainer(models.build("diinn", encoder="edsr-less"), cfg, torch.device("cpu"))
    for _ in range(5):
        trainer.optimizer.step()  # no gradients: a no-op, keeps PyTorch's step order
        trainer.scheduler.step()
    trainer.set_max_steps(10)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.5 * (1 + np.cos(np.pi * 0.5)))
    trainer.optimizer.step()
    trainer.scheduler.step()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.5 * (1 + np.cos(np.pi * 0.6)))


def test_time_budget_plans_the_schedule_and_resumes_with_the_plan(folders, tmp_path):
    o = tiny(folders, tmp_path / "r", **{"run.max_steps": 100000, "run.max_minutes": 0.1, "run.calibrate_steps": 3,
                                         "optim.schedule": "cosine", "val.every": 0})
    result = train.train("diinn-edsr", o)
    lines = train.read_metrics(result.out_dir)
    plan = [ln["plan"] for ln in lines if "plan" in ln]
    assert len(plan) == 1 and plan[0]["max_minutes"] == 0.1 and plan[0]["max_steps"] > 8
    ckpt = train.load_checkpoint(result.last)
    assert ckpt["plan"]["max_steps"] == result.step and not result.interrupted
    assert ckpt["elapsed"] <= 0.1 * 60 + 2  # finished (validated and saved) inside the budget (+ slack for saving)
    if not any("event" in ln for ln in lines):  # ended on plan: the cosine ran to its end
        assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
    else:  # a loaded machine ran slower than calibrated: the run ended when the budget was spent, plan updated
        assert ckpt["plan"]["max_steps"] == result.step < plan[0]["max_steps"]
    assert lines[-1]["step"] == result.step and "val_psnr" in lines[-1]  # validated at the end
    again = train.train("diinn-edsr", o, resume="auto")  # the plan is kept: nothing left to do
    assert again.step == result.step


def test_deadline_stops_like_a_ctrl_c_and_resume_is_bit_identical(reference_run, folders, tmp_path):
    import time

    stopped = train.train("diinn-edsr", tiny(folders, tmp_path / "r"), deadline=time.time())
    assert stopped.interrupted and stopped.step == 1  # the first step ends past the deadline: saved at once
    resumed = train.train("diinn-edsr", tiny(folders, tmp_path / "r"), resume="auto")
    assert resumed.step == 12 and not resumed.interrupted
    assert_same_state(weights(resumed.last), weights(reference_run[0].last))


def test_stopped_budget_run_resumes_on_its_planned_schedule(folders, tmp_path):
    o = tiny(folders, tmp_path / "r", **{"run.max_steps": 100000, "run.max_minutes": 0.2, "run.calibrate_steps": 2,
                                         "optim.schedule": "cosine", "val.every": 0})
    first = train.train("diinn-edsr", {**o, "run.stop_at": 10})
    planned = train.load_checkpoint(first.last)["plan"]["max_steps"]
    assert first.step == 10 and first.interrupted and planned > 10
    second = train.train("diinn-edsr", o, resume="auto")
    assert 10 < second.step and not second.interrupted
    lines = train.read_metrics(second.out_dir)
    assert sum("plan" in ln for ln in lines) == 1  # the resumed run kept the plan, it did not calibrate again
    final = train.load_checkpoint(second.last)["plan"]
    replans = [ln for ln in lines if "replan" in ln]  # timed from 5 steps after the resume, once
    assert len(replans) <= 1 and (final["max_steps"] == planned) == (not replans or replans[0]["replan"]["was"]
                                                                       == replans[0]["replan"]["max_steps"])
    assert all(ln["step"] >= 10 + 5 + 2 for ln in replans)
    assert second.step == final["max_steps"] or any("event" in ln for ln in lines)  # on plan, or out of time


def _slow_after(monkeypatch, step_from: int, seconds: float) -> None:
    """Make every training step from ``step_from`` on take ``seconds`` longer: a machine that slows down after the
    time-budget plan was made."""
    import time

    real, count = train._run_step, [0]

    def slow(trainer, batch):
        count[0] += 1
        if count[0] >= step_from:
            time.sleep(seconds)
        return real(trainer, batch)

    monkeypatch.setattr(train, "_run_step", slow)


def test_replan_fits_the_schedule_to_steps_slower_than_the_calibration(folders, tmp_path, monkeypatch):
    # 5 warm-up + 3 timed steps plan the run at full speed; from step 10 on each step takes 0.1 s longer
    _slow_after(monkeypatch, 10, 0.1)
    o = tiny(folders, tmp_path / "r", **{"run.max_steps": 100000, "run.max_minutes": 0.1, "run.calibrate_steps": 3,
                                         "optim.schedule": "cosine", "val.every": 0})
    result = train.train("diinn-edsr", o)
    lines = train.read_metrics(result.out_dir)
    first = next(ln["plan"] for ln in lines if "plan" in ln)
    replans = [ln for ln in lines if "replan" in ln]
    assert len(replans) == 1  # once
    again = replans[0]["replan"]
    assert again["was"] == first["max_steps"] and again["steps_per_s"] < 10 < first["steps_per_s"]
    assert result.step < again["max_steps"] + 1 < first["max_steps"]  # fewer steps, planned at the slower speed
    assert replans[0]["time"] >= 0.25 * 0.1 * 60  # not before a quarter of the budget
    ckpt = train.load_checkpoint(result.last)
    assert ckpt["plan"]["replanned_at"] == replans[0]["step"] and ckpt["plan"]["steps_per_s"] == first["steps_per_s"]
    if not any("event" in ln for ln in lines):  # ended on the new plan: the cosine ran to its end
        assert result.step == again["max_steps"]
        assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert ckpt["elapsed"] <= 0.1 * 60 + 2


def test_without_replan_a_slower_run_ends_when_the_budget_is_spent(folders, tmp_path, monkeypatch):
    _slow_after(monkeypatch, 10, 0.1)
    o = tiny(folders, tmp_path / "r", **{"run.max_steps": 100000, "run.max_minutes": 0.1, "run.calibrate_steps": 3,
                                         "run.replan_at": None, "optim.schedule": "cosine", "val.every": 0})
    result = train.train("diinn-edsr", o)
    lines = train.read_metrics(result.out_dir)
    assert not any("replan" in ln for ln in lines)
    assert any(ln.get("event") == "time budget spent before the planned end" for ln in lines)
    ckpt = train.load_checkpoint(result.last)
    assert ckpt["optimizer"]["param_groups"][0]["lr"] > 1e-6  # the cosine was cut off before its end


def test_replan_at_must_be_a_fraction(folders, tmp_path):
    with pytest.raises(CourseError, match="run.replan_at must be a fraction"):
        train.load_config("diinn-edsr", {"run.replan_at": 1.5})


# ---------------------------------------------------------------------- one step
def _batch(scale=2, b=2, p=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(b, 3, p, p, generator=g), torch.rand(b, 3, p * scale, p * scale, generator=g))]


def test_objective_is_l1_on_normalised_images_averaged_over_scales():
    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less")
    batch = _batch(2) + _batch(3, seed=1)
    loss = train.Objective(model, "authors")(batch)
    hand = np.mean([(model.predict(lr, hr.shape[-2:]) - (hr - 0.5) / 0.5).abs().mean().item()
                    for lr, hr in batch])
    assert loss.item() == pytest.approx(hand, rel=1e-6)


def test_liif_objective_and_run(folders, tmp_path):
    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less")
    g = torch.Generator().manual_seed(0)
    batch = {"lr": torch.rand(2, 3, 8, 8, generator=g), "coord": torch.rand(2, 5, 2, generator=g) * 2 - 1,
             "cell": torch.full((2, 5, 2), 2 / 20), "gt": torch.rand(2, 5, 3, generator=g)}
    loss = train.Objective(model, "liif")(batch)
    pred = model.decoder(model.encoder((batch["lr"] - 0.5) / 0.5), batch["coord"], batch["cell"])
    assert loss.item() == pytest.approx((pred - (batch["gt"] - 0.5) / 0.5).abs().mean().item(), rel=1e-6)
    result = train.train("diinn-edsr", tiny(folders, tmp_path, **{
        "data.recipe": "liif", "data.scale_max": 3, "data.sample_q": 50, "run.max_steps": 3, "val.sets": []}))
    assert result.step == 3 and all(np.isfinite(r["loss"]) for r in result.history if "loss" in r)


def test_first_adam_step_moves_each_weight_by_lr_times_sign_of_gradient():
    cfg = train.load_config(None, ["model.encoder=edsr-less", "optim.lr=1e-3", "run.amp=off"])
    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less")
    before = {k: v.clone() for k, v in model.named_parameters()}
    batch = _batch()
    train.Objective(model)(batch).backward()
    grads = {k: v.grad.clone() for k, v in model.named_parameters()}
    model.zero_grad()
    trainer = train.Trainer(model, cfg, torch.device("cpu"))
    trainer.step(batch)
    for k, p in model.named_parameters():  # Adam, step 1: update = lr * g / (|g| + eps)
        expected = before[k] - 1e-3 * grads[k] / (grads[k].abs() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7)
    assert trainer.steps_done == 1


def _record_outputs(layers: dict) -> tuple[dict, list]:
    """Forward hooks that keep each named layer's output: ({name: [outputs]}, hook handles)."""
    seen = {name: [] for name in layers}
    handles = [layer.register_forward_hook(lambda m, i, o, name=name: seen[name].append(o.detach()))
               for name, layer in layers.items()]
    return seen, handles


# bf16 autocast against fp32 on this test's model and batch (seeds 0-3, AMD EPYC with native bf16): the decoder's
# output (normalised space, spread 0.04-0.13) differed by 1.9e-4 to 3.2e-4 at most, the loss (about 0.5) by 2e-7 to
# 2.6e-6 relative. The bounds sit about 3-4x above; fp32 against fp32 (channels_last) differs by far less than the
# lower bound, so a forward that quietly ran in fp32 is caught by the numbers as well as by the dtypes.
BF16_OUT_ATOL, BF16_OUT_MIN, BF16_LOSS_RTOL = 1e-3, 1e-5, 1e-5


@pytest.mark.filterwarnings("ignore:.*emulated")  # a CPU without native bf16 runs it slowly, but runs it
def test_cpu_bf16_autocast_runs_the_forward_in_bf16_and_agrees_with_fp32():
    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less")
    conv = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    layers = {"encoder conv": conv, "decoder Q1": model.decoder.Q[1], "output": model.decoder.last_layer}
    batch = _batch()
    seen, handles = _record_outputs(layers)
    ref = train.Objective(model)(batch).item()  # fp32
    ref_out = seen["output"][-1]
    assert all(out[-1].dtype == torch.float32 for out in seen.values())
    cfg = train.load_config(None, ["run.amp=bf16", "run.channels_last=on"])
    trainer = train.Trainer(model, cfg, torch.device("cpu"))
    assert trainer.amp_dtype == torch.bfloat16 and trainer.channels_last
    loss = trainer.step(train._to_device(batch, trainer.device, True)).item()
    for handle in handles:
        handle.remove()
    for name, out in seen.items():  # inside the trainer's forward, the activations are bf16
        assert out[-1].dtype == torch.bfloat16, name
    diff = (seen["output"][-1].float() - ref_out).abs().max().item()
    assert BF16_OUT_MIN < diff < BF16_OUT_ATOL
    assert abs(loss - ref) < BF16_LOSS_RTOL * ref


def test_the_machine_line_names_the_cpu_its_isa_and_bf16(monkeypatch):
    """precision.machine: the CPU model lscpu prints (the oracle, where lscpu exists), the ISA and bf16 from the flags,
    the threads; one line for every benchmark and record (DEVELOPERS.md: name the CPU beside every figure)."""
    import platform
    import shutil
    import subprocess

    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}).stdout
        names = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name:")]
        if names and Path("/proc/cpuinfo").is_file():
            assert precision.cpu_model() == names[0]
    for flags, isa, bf16 in (({"avx2", "fma"}, "AVX2", "no native bf16"),
                             ({"avx2", "avx512f", "avx512_bf16"}, "AVX-512", "native bf16"),
                             ({"neon"}, "no AVX2", "no native bf16")):
        monkeypatch.setattr(precision, "cpu_flags", lambda flags=flags: frozenset(flags))
        line = precision.machine("cpu")
        assert line == (f"{precision.cpu_model()} ({platform.machine()}, {isa}, {bf16}), "
                        f"{torch.get_num_threads()} threads, torch {torch.__version__}")
        assert "\n" not in line


def test_amp_auto_on_a_cpu_follows_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    assert isinstance(precision.cpu_flags(), frozenset)  # this machine's flags from /proc/cpuinfo (empty elsewhere)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))  # an AVX2-only CPU
    assert precision.autocast_dtype("auto", cpu) is None and not precision.cpu_has_native_bf16()
    assert "fp32" in precision.describe(None, cpu) and "no native bf16" in precision.describe(None, cpu)
    with pytest.warns(UserWarning, match="emulated"):
        assert precision.autocast_dtype("bf16", cpu) == torch.bfloat16  # asked for explicitly: allowed, with a warning
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert precision.autocast_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert precision.autocast_dtype("auto", cpu) == torch.bfloat16
    assert precision.autocast_dtype("off", cpu) is None
    with pytest.raises(CourseError, match="fp16 needs a CUDA GPU"):
        precision.autocast_dtype("fp16", cpu)
    with pytest.raises(CourseError, match="amp must be one of"):
        precision.autocast_dtype("fp8", cpu)


def test_no_cpu_config_hard_codes_bf16():
    for path in CONFIGS.glob("*.yaml"):
        assert train.load_config(path).run.amp in ("auto", "off"), path.name


@pytest.mark.parametrize("clip", [None, 1e-3, 1e6])
def test_gradient_clipping_scales_the_gradients_before_the_optimiser_step(clip):
    """The gradients the optimiser sees are g * min(1, clip / (|g| + 1e-6)) (torch's clip_grad_norm_ formula),
    with g and |g| from an independent fp32 backward of the same batch."""
    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less")
    batch = _batch()
    train.Objective(model)(batch).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values())).item()
    model.zero_grad(set_to_none=True)
    factor = 1.0 if clip is None else min(1.0, clip / (norm + 1e-6))
    assert clip is None or clip > 1 or factor < 0.2  # 1e-3 really clips (|g| is about 0.009 here)
    overrides = ["run.amp=off"] + ([] if clip is None else [f"optim.grad_clip={clip}"])
    trainer = train.Trainer(model, train.load_config(None, overrides), torch.device("cpu"))
    at_step = {}
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: at_step.update({k: p.grad.clone() for k, p in model.named_parameters()}))
    trainer.step(batch)
    assert at_step.keys() == grads.keys()
    for k, g in grads.items():
        torch.testing.assert_close(at_step[k], g * factor, rtol=1e-4, atol=1e-12 + 1e-5 * g.abs().max() * factor)


# ---------------------------------------------------------------------- runs and resume
@pytest.fixture(scope="module")
def reference_run(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    result = train.train("diinn-edsr", tiny(folders, out))
    return result, weights(out / "last.pt")


def test_uninterrupted_run_writes_checkpoint_and_log(reference_run):
    result, ckpt = reference_run
    assert result.step == 12 and not result.interrupted and result.last.name == "last.pt"
    for key in ("state_dict", "optimizer", "scheduler", "scaler", "rng", "config", "train_config", "step",
                "data_order"):
        assert key in ckpt
    assert set(ckpt["rng"]) == {"torch", "cuda", "python", "numpy"}
    assert ckpt["config"] == {"name": "diinn", "encoder": "edsr-less", "variant": "f", "scale_mode": "area"}
    assert not [p for p in result.out_dir.iterdir() if p.suffix == ".tmp"]  # atomic writes leave no temp file
    log = train.read_metrics(result.out_dir)
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == [2, 4, 6, 8, 10, 12] and all(np.isfinite(r["loss"]) for r in log if "loss" in r)
    assert log[-1]["step"] == 12 and "val_psnr" in log[-1]  # validation at the end of the run
    assert result.best_psnr == log[-1]["val_psnr"] and (result.out_dir / "best.pt").is_file()
    # the checkpoint is also a model file: models.load rebuilds the architecture with these weights
    model = models.load(result.last)
    assert all(torch.equal(v, ckpt["state_dict"][k]) for k, v in model.state_dict().items())


def test_stop_and_resume_is_bit_identical(reference_run, folders, tmp_path):
    first = train.train("diinn-edsr", tiny(folders, tmp_path, **{"run.stop_at": 6}))
    assert first.step == 6 and first.interrupted and weights(tmp_path / "last.pt")["step"] == 6
    second = train.train("diinn-edsr", tiny(folders, tmp_path), resume=True)
    assert second.step == 12 and not second.interrupted
    assert_same_state(weights(tmp_path / "last.pt"), reference_run[1])
    steps = [r["step"] for r in train.read_metrics(tmp_path) if "loss" in r]
    assert steps == [2, 4, 6, 8, 10, 12]


def test_keyboard_interrupt_saves_and_resume_is_bit_identical(reference_run, folders, tmp_path, monkeypatch):
    real_step, calls = train.Trainer.step, []

    def step(self, batch):
        calls.append(1)
        if len(calls) == 8:  # Ctrl-C while fetching or computing step 8: steps 1-7 are complete
            raise KeyboardInterrupt
        return real_step(self, batch)

    monkeypatch.setattr(train.Trainer, "step", step)
    with pytest.raises(KeyboardInterrupt):
        train.train("diinn-edsr", tiny(folders, tmp_path))
    assert weights(tmp_path / "last.pt")["step"] == 7
    monkeypatch.setattr(train.Trainer, "step", real_step)
    train.train("diinn-edsr", tiny(folders, tmp_path), resume=tmp_path / "last.pt")
    assert_same_state(weights(tmp_path / "last.pt"), reference_run[1])


def test_sigint_stops_after_the_step_and_resume_is_bit_identical(reference_run, folders, tmp_path,
                                                                   monkeypatch):
    real_step, calls = train.Trainer.step, []

    def step(self, batch):
        calls.append(1)
        if len(calls) == 5:
            signal.raise_signal(signal.SIGINT)  # a first Ctrl-C: finish this step, save, return
        return real_step(self, batch)

    monkeypatch.setattr(train.Trainer, "step", step)
    result = train.train("diinn-edsr", tiny(folders, tmp_path))
    assert result.interrupted and result.step == 5 and weights(tmp_path / "last.pt")["step"] == 5
    monkeypatch.setattr(train.Trainer, "step", real_step)
    train.train(None, {"run.out_dir": str(tmp_path)}, resume=tmp_path / "last.pt")  # the checkpoint's config
    assert_same_state(weights(tmp_path / "last.pt"), reference_run[1])


def test_a_new_run_refuses_a_used_folder_and_auto_resume_continues(folders, tmp_path):
    train.train("diinn-edsr", tiny(folders, tmp_path, **{"run.stop_at": 2, "val.sets": []}))
    with pytest.raises(CourseError, match="already holds a run"):
        train.train("diinn-edsr", tiny(folders, tmp_path, **{"run.stop_at": 3, "val.sets": []}))
    again = train.train("diinn-edsr", tiny(folders, tmp_path, **{"run.stop_at": 3, "val.sets": []}),
                        resume="auto")
    assert again.step == 3 and again.history[0]["step"] == 3
    fresh = train.train("diinn-edsr", tiny(folders, tmp_path / "new", **{"run.stop_at": 1, "val.sets": []}),
                        resume="auto")
    assert fresh.step == 1


def test_best_checkpoint_follows_validation_psnr(folders, tmp_path):
    result = train.train("diinn-edsr", tiny(folders, tmp_path, **{"val.every": 3, "optim.lr": 1e-3}))
    vals = [r for r in train.read_metrics(tmp_path) if "val_psnr" in r]
    assert [r["step"] for r in vals] == [3, 6, 9, 12]
    best = max(vals, key=lambda r: r["val_psnr"])
    ckpt = weights(tmp_path / "best.pt")
    assert ckpt["step"] == best["step"] and ckpt["best_psnr"] == best["val_psnr"] == result.best_psnr


def test_validator_reproduces_the_papers_bicubic_rows(data_dir):
    """Table 1 of the paper, Set5 Bicubic PSNR: 31.81 (x2), 28.63 (x3), 26.70 (x4), paper protocol."""
    cfg = train.load_config(None, {"val.sets": [str(data_dir / "Set5" / "HR")], "val.scales": [2, 3, 4]})
    res = train.Validator(cfg)(models.build("bicubic"))
    assert [round(res["val"][f"Set5 x{s}"], 2) for s in (2, 3, 4)] == [31.81, 28.63, 26.70]


def test_validator_agrees_with_the_evaluation_runner(folders):
    from course_lib import evaluate

    torch.manual_seed(0)
    model = models.build("diinn", encoder="edsr-less")
    cfg = train.load_config(None, {"val.sets": [str(folders[1])], "val.scales": [2, 3], "val.limit": 1})
    res = train.Validator(cfg)(model)
    rows = evaluate.evaluate(model, [folders[1]], [2, 3], protocol="paper", limit=1, progress=False)
    assert [res["val"][f"val x{s}"] for s in (2, 3)] == pytest.approx([r["psnr"] for r in rows], abs=1e-6)
    assert res["val_psnr"] == pytest.approx(np.mean([r["psnr"] for r in rows]), abs=1e-6)


# ---------------------------------------------------------------------- errors
def test_bad_training_folders(folders, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseError, match="holds no"):
        train.train("diinn-edsr", tiny(folders, tmp_path, **{"data.train_dir": str(tmp_path / "empty")}))
    with pytest.raises(CourseError, match="does not exist"):
        train.train("diinn-edsr", tiny(folders, tmp_path, **{"data.train_dir": str(tmp_path / "nope")}))
    with pytest.raises(CourseError, match=r"crop of 32 px .* larger than every training image .*24x28"):
        train.train("diinn-edsr", tiny(folders, tmp_path, **{"data.patch": 16}))


def test_resume_from_another_architecture_names_both(reference_run, folders, tmp_path):
    with pytest.raises(CourseError) as err:
        train.train("diinn-edsr", tiny(folders, tmp_path, **{"model.encoder": "edsr-baseline"}),
                    resume=reference_run[0].last)
    assert "encoder=edsr-less" in str(err.value) and "encoder=edsr-baseline" in str(err.value)
    with pytest.raises(CourseError, match="does not exist"):
        train.train("diinn-edsr", tiny(folders, tmp_path), resume=tmp_path / "missing.pt")
    models.save(models.build("diinn", encoder="edsr-less"), tmp_path / "model.pt")
    with pytest.raises(CourseError, match="not a training checkpoint"):
        train.train("diinn-edsr", tiny(folders, tmp_path), resume=tmp_path / "model.pt")


def test_out_of_gpu_memory_becomes_a_hint(folders, tmp_path, monkeypatch):
    def step(self, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train.Trainer, "step", step)
    with pytest.raises(CourseError, match="out of GPU memory .*batch_size=2.*patch=8"):
        train.train("diinn-edsr", tiny(folders, tmp_path))


# ---------------------------------------------------------------------- CLI and export
def test_cli_trains_and_reports_errors_in_one_line(folders, tmp_path, capsys):
    args = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in tiny(folders, tmp_path, **{"run.max_steps": 2}).items()]
    assert main(["train", "--config", "diinn-edsr", "--override", *args]) == 0
    assert (tmp_path / "last.pt").is_file() and "step 2" in capsys.readouterr().out
    assert main(["train", "--config", "diinn-edsr", "--override", "run.maxsteps=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'run.maxsteps'") and err.count("\n") == 1
    assert main(["train"]) == 2 and "give --config" in capsys.readouterr().err
    assert main(["train", "--config", "diinn-rdn-b", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["variant"] == "b"


def test_export_pretrained_writes_fp16_file_and_index(reference_run, tmp_path, monkeypatch):
    result, ckpt = reference_run
    rows = [{"dataset": "Set5", "scale": 2.0, "protocol": "paper", "psnr": 30.0, "ssim": 0.9}]
    path = train.export_pretrained(result.last, "tiny-test", rows, trained="12 CPU steps", folder=tmp_path)
    index = json.loads((tmp_path / "index.json").read_text())
    entry = index["tiny-test"]
    assert entry["file"] == path.name and entry["results"] == rows and entry["trained"] == "12 CPU steps"
    assert entry["config"] == ckpt["config"] and entry["sha256"] == models.sha256_file(path)
    stored = torch.load(path, weights_only=True)["state_dict"]
    for k, v in ckpt["state_dict"].items():
        assert stored[k].dtype == torch.float16 and torch.equal(stored[k], v.half())
    assert os.path.getsize(path) < os.path.getsize(result.last) / 4  # fp16 weights vs fp32 weights + Adam
    monkeypatch.setattr(models, "PRETRAINED_DIR", tmp_path)
    model = models.load_pretrained("tiny-test")  # verifies the sha256 written by export_pretrained
    assert all(torch.equal(v, ckpt["state_dict"][k].half().float()) for k, v in model.state_dict().items())


def test_amp_auto_on_cuda_picks_fp16_on_gpus_that_only_emulate_bf16(monkeypatch):
    """A T4 / V100 (compute capability 7.x) emulates bf16 (is_bf16_supported() still says True): auto -> fp16."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    gpu = torch.device("cuda", 0)
    for capability, expected in [((7, 5), torch.float16), ((7, 0), torch.float16), ((8, 0), torch.bfloat16),
                                 ((9, 0), torch.bfloat16)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert precision.autocast_dtype("auto", gpu) == expected, capability
    assert precision.autocast_dtype("bf16", gpu) == torch.bfloat16  # asked for explicitly
