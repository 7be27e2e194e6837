"""Fixed-scale and pre-upsampling models in the course's trainer (seed paper 004, lesson 11): MemNet and SRResNet
train through ``python -m course_lib train`` like DIINN, resume bit-identically, use their own losses, refuse what
they cannot train, and the shipped configs are the published nets.

Runs are tiny (MemNet M1R2, SRResNet with one block, 6-8 pixel LR patches, 2 images per step) on the CPU in fp32.
"""

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import assert_same_state
from conftest import load_state as load

from course_lib import memnet, models, train
from course_lib.__main__ import main
from course_lib.config import parse_overrides
from course_lib.errors import CourseError


def run(folders, out_dir, name: str, **extra) -> dict:
    """Overrides for a tiny run of ``name`` (memnet: M1R2 with MemNet's loss and the original's SGD + clipping, x2 x3
    x4 mixed as 004; srresnet: one block, MSE, Adam, x4)."""
    train_dir, val_dir = folders
    o = {"data.train_dir": str(train_dir), "data.batch_size": 2, "data.num_workers": 0, "run.device": "cpu",
         "run.amp": "off", "run.max_steps": 6, "run.seed": 2, "run.log_every": 2, "run.save_every": 2,
         "run.progress": False, "run.out_dir": str(out_dir), "val.sets": [str(val_dir)], "val.every": 0}
    if name == "memnet":
        o.update({"model.name": "memnet", "model.options": {"blocks": 1, "recursions": 2}, "data.patch": 6,
                  "data.scales": [2, 3, 4], "val.scales": [2, 4], "loss.pixel": "memnet", "optim.name": "sgd",
                  "optim.lr": 0.1, "optim.momentum": 0.9, "optim.weight_decay": 1e-4, "optim.grad_clip": 0.4})
    else:
        o.update({"model.name": "srresnet", "model.options": {"blocks": 1}, "data.patch": 4, "data.scales": [4],
                  "val.scales": [4], "loss.pixel": "mse"})
    o.update(extra)
    return o


@pytest.mark.parametrize("name", ["memnet", "srresnet"])
def test_stop_and_resume_auto_from_the_command_line_is_bit_identical(name, folders, tmp_path, capsys):
    ref = train.train(None, run(folders, tmp_path / "ref", name))
    assert ref.step == 6 and not ref.interrupted
    log = [r for r in train.read_metrics(ref.out_dir) if "loss" in r]
    assert [r["step"] for r in log] == [2, 4, 6] and log[-1]["loss"] < log[0]["loss"]
    out, config = tmp_path / "cut", tmp_path / f"{name}-tiny.yaml"
    config.write_text(yaml.safe_dump(parse_overrides(run(folders, out, name))))
    assert main(["train", "--config", str(config), "--override", "run.stop_at=3"]) == 0  # stops as if interrupted
    assert load(out / "last.pt")["step"] == 3
    assert main(["train", "--config", str(config), "--resume", "auto"]) == 0
    assert "step 6" in capsys.readouterr().out
    assert_same_state(load(out / "last.pt"), load(ref.last))
    model = models.load(ref.last)  # the checkpoint is a model file: upscale and evaluate take it
    assert model.config["name"] == name


def test_memnet_objective_is_tais_euclidean_loss_on_y_over_every_output():
    torch.manual_seed(0)
    model = models.build("memnet", blocks=2, recursions=1)
    g = torch.Generator().manual_seed(0)
    batch = [(torch.rand(2, 3, 5, 5, generator=g), torch.rand(2, 3, 10, 10, generator=g)),
             (torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 12, 12, generator=g))]
    by_hand = []
    for lr, hr in batch:
        up = F.interpolate(lr, size=hr.shape[-2:], mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        y_in = (16 + 65.481 * up[:, :1] + 128.553 * up[:, 1:2] + 24.966 * up[:, 2:]) / 255  # MATLAB's rgb2ycbcr
        target = (16 + 65.481 * hr[:, :1] + 128.553 * hr[:, 1:2] + 24.966 * hr[:, 2:]) / 255
        y, ys = model.net.outputs(y_in)
        assert len(ys) == 2
        by_hand.append(sum(((p - target) ** 2).sum() / (2 * 2) for p in [y, *ys]))  # Caffe: sum / (2 N), N = 2
    loss = train.Objective(model, pixel="memnet")(batch)
    assert loss.item() == pytest.approx(torch.stack(by_hand).mean().item(), rel=1e-5)
    o004 = train.Objective(model, pixel="memnet-004")(batch)
    lr, hr = batch[0]
    _, p0 = train.Objective(model, pixel="memnet-004").generate(lr, hr)
    y, ys = model.net.outputs(model.split(lr, hr.shape[-2:])[0])
    t = torch.einsum("ij,bjhw->bihw", torch.tensor([[65.481, 128.553, 24.966]]), hr) / 255 + 16 / 255
    alpha = 1 / 3  # 004: alpha / (2 M N) |y - t|^2 + sum_m (1 - alpha) / (2 M N) |y_m - t|^2, M = 2, N = 2
    hand = alpha * ((y - t) ** 2).sum() / 8 + (1 - alpha) * sum(((p - t) ** 2).sum() for p in ys) / 8
    assert p0.item() == pytest.approx(hand.item(), rel=1e-5) and torch.isfinite(o004)


def test_mse_objective_is_on_images_in_0_1():
    torch.manual_seed(0)
    model = models.build("srresnet", blocks=1)
    g = torch.Generator().manual_seed(3)
    lr, hr = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    loss = train.Objective(model, pixel="mse")([(lr, hr)])
    assert loss.item() == pytest.approx(((model.predict(lr, (16, 16)) * 0.5 + 0.5 - hr) ** 2).mean().item(), rel=1e-6)


def test_sgd_with_momentum_weight_decay_and_clipping_by_hand():
    cfg = train.load_config(None, {"model.name": "srresnet", "model.options": {"blocks": 1}, "data.scales": [4],
                                   "val.scales": [4], "run.amp": "off", "loss.pixel": "mse", "optim.name": "sgd",
                                   "optim.lr": 0.1, "optim.momentum": 0.9, "optim.weight_decay": 1e-2,
                                   "optim.grad_clip": 1e-3})
    torch.manual_seed(0)
    model = train.build_model(cfg.model)
    g = torch.Generator().manual_seed(4)
    batch = [(torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 16, 16, generator=g))]
    train.Objective(model, pixel="mse")(batch).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    model.zero_grad()
    norm = torch.sqrt(sum((v ** 2).sum() for v in grads.values()))
    assert norm > 1e-3  # so the clipping acts
    trainer = train.Trainer(model, cfg, torch.device("cpu"))
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    trainer.step(batch)
    for k, p in model.named_parameters():  # step 1 of SGD: buffer = clipped g + wd * w; w -= lr * buffer
        clipped = grads[k] * 1e-3 / (norm + 1e-6)
        torch.testing.assert_close(p.detach(), before[k] - 0.1 * (clipped + 1e-2 * before[k]), rtol=1e-5, atol=1e-8)


def test_what_a_model_cannot_train_is_refused_at_the_start(folders, tmp_path):
    cases = [(run(folders, tmp_path, "srresnet", **{"data.scales": [2, 4]}),
              r"srresnet is a fixed x4 model but data.scales=\[2.0, 4.0\]; set data.scales=\[4\]"),
             (run(folders, tmp_path, "srresnet", **{"val.scales": [2, 3, 4]}), "fixed x4 model but val.scales"),
             (run(folders, tmp_path, "memnet", **{"data.recipe": "liif", "data.sample_q": 16, "loss.pixel": "l1"}),
              "data.recipe=liif queries coordinates of an implicit model"),
             (run(folders, tmp_path, "srresnet", **{"loss.pixel": "memnet"}), "needs model.name=memnet"),
             ({"optim.name": "rmsprop"}, "optim.name must be adam or sgd")]
    for overrides, pattern in cases:
        with pytest.raises(CourseError, match=pattern) as err:
            train.train(None, overrides)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "metrics.jsonl").exists()


def test_compile_takes_each_models_networks(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    mem, res = models.build("memnet", blocks=1, recursions=1), models.build("srresnet", blocks=1)
    diinn = models.build("diinn", encoder="edsr-less")
    for model, parts in [(mem, [mem.net]), (res, [res.head, res.body, res.body_end, res.upsample, res.tail]),
                         (diinn, [diinn.encoder, diinn.decoder])]:
        compiled.clear()
        train.compile_parts(model)
        assert [id(m) for m in compiled] == [id(m) for m in parts]
    # every parameter of a convolutional model sits in a compiled part
    compiled.clear()
    train.compile_parts(res)
    inside = {id(p) for part in compiled for p in part.parameters()}
    assert inside == {id(p) for p in res.parameters()}


def test_shipped_memnet_configs_are_004s_nets():
    def conv_params(model):
        return sum(m.weight.numel() + m.bias.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d))

    cpu, gpu = train.load_config("memnet-m3r3-cpu"), train.load_config("memnet-m6r6")
    assert conv_params(train.build_model(cpu.model)) == 284_417  # 004's M3R3 (23 layers)
    assert conv_params(train.build_model(gpu.model)) == 678_209  # Tai's M6R6 (80 layers)
    assert cpu.loss.pixel == gpu.loss.pixel == "memnet"
    assert cpu.data.train_dir == gpu.data.train_dir == ["T91", "BSD200"]
    assert cpu.data.scales == [4] and gpu.data.scales == [2, 3, 4]  # x4, and 004's mixed scales
    assert isinstance(train.build_model(cpu.model), memnet.MemNetSR)
