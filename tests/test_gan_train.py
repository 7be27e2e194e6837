"""GAN training inside the course's trainer (course_lib.gan): the run, its log and checkpoint, exact resume, the
pre-training phase, the adversarial step against a hand computation, the content loss's refusal, config checks.

Every run is tiny: SRResNet with one residual block, x4, 4x4 LR patches (16x16 HR: the smallest discriminator
input), 2 images per step, on the CPU in fp32 (where a resume is bit-identical). The VGG19 of the content loss is the
randomly initialised one (``loss.vgg_weights=random``, NOT ImageNet: these tests check the plumbing, not the loss).
"""

import math

import pytest
import torch
from conftest import load_state as load
from torch import nn

from course_lib import gan, imagenet, models, srgan, train
from course_lib.errors import CourseError


def gan_run(folders, out_dir, **extra) -> dict:
    """Overrides for a tiny GAN run: srresnet(blocks=1) at x4, HR 16, content (random VGG) + 004's adversarial form,
    one pre-training step, 3 steps, a log line per step."""
    train_dir, val_dir = folders
    o = {"model.name": "srresnet", "model.options": {"blocks": 1}, "data.train_dir": str(train_dir),
         "data.scales": [4], "data.patch": 4, "data.batch_size": 2, "data.num_workers": 0,
         "loss.pixel": "mse", "loss.content_weight": 0.006, "loss.vgg_weights": "random",
         "loss.gan": {"pretrain_steps": 1}, "run.device": "cpu", "run.amp": "off", "run.max_steps": 3,
         "run.seed": 5, "run.log_every": 1, "run.save_every": 2, "run.progress": False, "run.out_dir": str(out_dir),
         "val.sets": [str(val_dir)], "val.scales": [4], "val.every": 0}
    o.update(extra)
    return o


def assert_same_tensors(a, b, where="") -> None:
    """Bit-identical nested dicts / lists of tensors (state dicts, optimiser states)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def reference(folders, tmp_path_factory):
    """An uninterrupted 3-step GAN run (step 1 pre-training, steps 2 and 3 adversarial)."""
    out = tmp_path_factory.mktemp("gan_ref")
    result = train.train(None, gan_run(folders, out))
    return result, load(out / "last.pt")


def test_a_gan_run_logs_g_and_d_and_checkpoints_the_discriminator(reference):
    result, ckpt = reference
    assert result.step == 3 and not result.interrupted
    lines = [r for r in train.read_metrics(result.out_dir) if "loss" in r]
    assert [r["step"] for r in lines] == [1, 2, 3]
    assert set(lines[0]) >= {"g_pixel"} and "d_loss" not in lines[0]  # pre-training: the pixel loss alone
    assert lines[0]["loss"] == lines[0]["g_pixel"]
    for r in lines[1:]:
        assert {"g_pixel", "g_content", "g_adv", "d_loss", "d_real", "d_fake"} <= set(r)
        assert all(math.isfinite(r[k]) for k in ("g_pixel", "g_content", "g_adv", "d_loss", "d_real", "d_fake"))
        assert r["loss"] == pytest.approx(r["g_pixel"] + 0.006 * r["g_content"] + 1e-3 * r["g_adv"], rel=1e-6)
        assert r["d_loss"] == pytest.approx(1 - r["d_real"] + r["d_fake"], rel=1e-6)  # 004's form
        assert r["g_adv"] == pytest.approx(1 - r["d_fake"], abs=0.2)  # D moved a little in between
    # one checkpoint: G as a model file, D and its Adam beside it
    assert {"state_dict", "optimizer", "gan", "rng", "train_config"} <= set(ckpt)
    d_state, d_opt = ckpt["gan"]["discriminator"], ckpt["gan"]["optimizer"]
    fresh = srgan.Discriminator(16).state_dict()
    assert d_state.keys() == fresh.keys()
    # D ran 3 times per adversarial step (HR and SR for its own update, SR for G's), never in pre-training
    assert int(d_state["features.4.num_batches_tracked"]) == 2 * 3
    assert len(d_opt["state"]) == len(list(srgan.Discriminator(16).parameters()))
    assert all(int(s["step"]) == 2 for s in d_opt["state"].values())  # two D updates
    assert ckpt["gan"]["options"]["pretrain_steps"] == 1
    assert not [p for p in result.out_dir.iterdir() if p.suffix == ".tmp"]  # atomic writes
    g = models.load(result.last)  # the checkpoint is still a model file of the generator
    assert g.config == {"name": "srresnet", "blocks": 1}


def test_interrupted_and_resumed_gan_run_equals_the_uninterrupted_one(reference, folders, tmp_path):
    first = train.train(None, gan_run(folders, tmp_path, **{"run.stop_at": 2}))
    assert first.step == 2 and first.interrupted
    second = train.train(None, gan_run(folders, tmp_path), resume="auto")
    assert second.step == 3 and not second.interrupted
    a, b = load(tmp_path / "last.pt"), reference[1]
    assert_same_tensors(a["state_dict"], b["state_dict"], "G")
    assert_same_tensors(a["optimizer"]["state"], b["optimizer"]["state"], "G's Adam")
    assert_same_tensors(a["gan"]["discriminator"], b["gan"]["discriminator"], "D")
    assert_same_tensors(a["gan"]["optimizer"]["state"], b["gan"]["optimizer"]["state"], "D's Adam")
    assert [r["step"] for r in train.read_metrics(tmp_path) if "loss" in r] == [1, 2, 3]


def test_pretraining_updates_no_discriminator_weight_and_is_the_plain_pixel_run(folders, tmp_path):
    o = gan_run(folders, tmp_path / "gan", **{"loss.gan": {"pretrain_steps": 3}, "val.sets": []})
    result = train.train(None, o)
    ckpt = load(result.last)
    cfg = train.load_config(None, o)
    torch.manual_seed(123)  # D's initial weights come from their own seed, whatever the global RNG holds
    fresh = gan.Adversary(cfg, torch.device("cpu"))
    assert_same_tensors(ckpt["gan"]["discriminator"], fresh.d.state_dict(), "D")  # weights and BN statistics
    assert ckpt["gan"]["optimizer"]["state"] == {}  # D's Adam never stepped
    # the generator's pre-training is the run without loss.gan (and without the content term), step for step
    plain = dict(o, **{"loss.gan": {}, "loss.content_weight": 0.0, "run.out_dir": str(tmp_path / "plain")})
    ref = load(train.train(None, plain).last)
    assert_same_tensors(ckpt["state_dict"], ref["state_dict"], "G")
    assert_same_tensors(ckpt["optimizer"]["state"], ref["optimizer"]["state"], "G's Adam")


class TinyD(nn.Module):
    """A one-weight discriminator, D(x) = sigmoid(w * mean(x)) per image, for a step computed by hand."""

    def __init__(self, w: float = 0.5):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return torch.sigmoid(self.w * x.mean(dim=(1, 2, 3)))


@pytest.mark.parametrize("form", ["004", "ledig"])
def test_one_adversarial_step_by_hand(form):
    cfg = train.load_config(None, {"model.name": "srresnet", "model.options": {"blocks": 1}, "data.scales": [4],
                                   "val.scales": [4], "data.patch": 4, "loss.pixel": "mse", "run.amp": "off",
                                   "optim.lr": 1e-3,
                                   "loss.gan": {"form": form, "adversarial_weight": 0.5, "lr": 0.01}})
    torch.manual_seed(0)
    model = train.build_model(cfg.model)
    trainer = train.Trainer(model, cfg, torch.device("cpu"))
    d = TinyD()
    trainer.adversary.d, trainer.adversary.optimizer = d, torch.optim.Adam(d.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(1)
    lr, hr = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    with torch.no_grad():
        sr = model.predict(lr, (16, 16))  # train mode: batch statistics, as in the step
    m_sr, m_hr = sr.double().mean(dim=(1, 2, 3)), ((hr.double() - 0.5) / 0.5).mean(dim=(1, 2, 3))

    def sig(t):
        return 1 / (1 + torch.exp(-t))

    p_real, p_fake = sig(0.5 * m_hr), sig(0.5 * m_sr)
    if form == "004":  # 1 - D(HR) + D(SR), and its derivative in w
        d_loss = (1 - p_real).mean() + p_fake.mean()
        grad = (-p_real * (1 - p_real) * m_hr).mean() + (p_fake * (1 - p_fake) * m_sr).mean()
    else:  # -log D(HR) - log(1 - D(SR))
        d_loss = -(torch.log(p_real).mean() + torch.log(1 - p_fake).mean())
        grad = (-(1 - p_real) * m_hr).mean() + (p_fake * m_sr).mean()
    w_new = 0.5 - 0.01 * grad / (grad.abs() + 1e-8)  # Adam's first step: lr * sign(gradient)
    p_sr = sig(w_new * m_sr)  # G's term sees the updated D
    g_adv = (1 - p_sr).mean() if form == "004" else -torch.log(p_sr).mean()
    pixel = ((sr.double() * 0.5 + 0.5 - hr.double()) ** 2).mean()

    loss = trainer.step([(lr, hr)])
    t = trainer.terms
    assert d.w.item() == pytest.approx(w_new.item(), abs=1e-7)
    assert t["d_real"].item() == pytest.approx(p_real.mean().item(), rel=1e-6)
    assert t["d_fake"].item() == pytest.approx(p_fake.mean().item(), rel=1e-6)
    assert t["d_loss"].item() == pytest.approx(d_loss.item(), rel=1e-6)
    assert t["g_adv"].item() == pytest.approx(g_adv.item(), rel=1e-6)
    assert loss.item() == pytest.approx((pixel + 0.5 * g_adv).item(), rel=1e-6)
    assert t["g_content"].item() == 0  # no content term in this config
    assert d.w.grad.item() == pytest.approx(grad.item(), rel=1e-5)  # D's own gradient: G's backward left it alone


class PooledMSE(nn.Module):
    """A stand-in content network of known size: 3 x the MSE of 4x4-average-pooled SR and HR. (The random VGG19's
    conv5_4 features are nearly 0 on small patches, so a wrong weight on them would not show.)"""

    def forward(self, sr, hr):
        return 3 * ((nn.functional.avg_pool2d(sr, 4) - nn.functional.avg_pool2d(hr, 4)) ** 2).mean()


def test_content_term_without_a_gan_is_pixel_plus_weighted_content_and_is_logged():
    cfg = train.load_config(None, {"model.name": "srresnet", "model.options": {"blocks": 1}, "data.scales": [4],
                                   "val.scales": [4], "loss.pixel": "mse", "loss.content_weight": 0.5,
                                   "loss.vgg_weights": "random", "run.amp": "off"})
    torch.manual_seed(0)
    trainer = train.Trainer(train.build_model(cfg.model), cfg, torch.device("cpu"))
    assert trainer.adversary is None and "NOT ImageNet" in trainer.loss_fn.vgg.weights_source  # labelled as such
    trainer.loss_fn.vgg = PooledMSE()
    g = torch.Generator().manual_seed(2)
    lr, hr = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        sr = trainer.model.predict(lr, (32, 32)) * 0.5 + 0.5
        pixel, content = ((sr - hr) ** 2).mean(), PooledMSE()(sr, hr)
    assert content > 0.1 * pixel  # a weight of 1 instead of 0.5 would show
    loss = trainer.step([(lr, hr)])
    assert loss.item() == pytest.approx((pixel + 0.5 * content).item(), rel=1e-5)
    assert trainer.terms["pixel"].item() == pytest.approx(pixel.item(), rel=1e-5)
    assert trainer.terms["content"].item() == pytest.approx(content.item(), rel=1e-5)


def test_content_loss_without_weights_refuses_at_start_in_one_line(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(name):
        raise OSError("no network")

    monkeypatch.setattr(imagenet, "_download", offline)  # never download 548 MB from a test
    out = tmp_path / "run"
    with pytest.raises(CourseError) as err:
        train.train(None, gan_run(folders, out, **{"loss.vgg_weights": "imagenet"}))
    msg = str(err.value)
    assert "\n" not in msg and "loss.content_weight=0.006 needs VGG19 weights" in msg
    assert "vgg19-dcbb9e9d.pth" in msg and "loss.vgg_weights=random" in msg
    assert not (out / "last.pt").exists() and not (out / "metrics.jsonl").exists()


def test_gan_config_errors_are_one_line():
    base = {"model.name": "srresnet", "data.scales": [4], "data.patch": 4, "loss.gan": {"pretrain_steps": 2}}
    cfg = train.load_config(None, dict(base, **{"loss.gan": {"form": 4}}))  # YAML reads `form: 004` as 4
    assert gan.gan_options(cfg.loss.gan)["form"] == "004"
    for change, pattern in [({"loss.gan": {"pretrian_steps": 2}}, "unknown key loss.gan.pretrian_steps"),
                            ({"loss.gan": {"pretrain_steps": -1}}, "pretrain_steps must be an integer >= 0"),
                            ({"loss.gan": {"form": "wgan"}}, "form must be '004' or 'ledig'"),
                            ({"loss.gan": {"dropout": 1.0}}, r"dropout must be a number in \[0, 1\)"),
                            ({"loss.gan": {"lr": 0}}, "lr must be a number > 0"),
                            ({"data.scales": [2, 4]}, "a GAN trains at one scale"),
                            ({"data.patch": 5}, "multiple of 16 .*got data.patch x scale = 20"),
                            ({"loss.pixel": "huber"}, "loss.pixel must be one of l1, mse, memnet"),
                            ({"loss.content_weight": -1}, "loss.content_weight must be >= 0"),
                            ({"data.recipe": "liif", "data.sample_q": 16},
                             "data.recipe=liif trains with the L1 loss only")]:
        with pytest.raises(CourseError, match=pattern) as err:
            train.load_config(None, dict(base, **change))
        assert "\n" not in str(err.value)


def test_a_gan_needs_one_process(folders):
    cfg = train.load_config(None, gan_run(folders, "unused"))
    with pytest.raises(CourseError, match="runs in one process"):
        train.check_fits(cfg, train.build_model(cfg.model), world=2)


def test_shipped_srresnet_and_srgan_configs():
    res, gan_cfg = train.load_config("srresnet-x4"), train.load_config("srgan-x4")
    assert (res.model.name, res.model.options) == ("srresnet", {"blocks": 16})
    assert res.data.scales == res.val.scales == [4]
    assert round(res.data.patch * 4) == 96 and res.loss.pixel == "mse" and not res.loss.gan
    assert models.count_parameters(train.build_model(res.model)) == 1_549_462  # Ledig's generator
    o = gan.gan_options(gan_cfg.loss.gan)
    assert (gan_cfg.loss.content_weight, o["adversarial_weight"], o["form"]) == (0.006, 1e-3, "004")  # 004's
    assert gan_cfg.loss.vgg_weights == "imagenet" and o["pretrain_steps"] > 0
    assert (gan_cfg.model, gan_cfg.data, gan_cfg.val.sets, gan_cfg.val.scales) == (res.model, res.data, res.val.sets,
                                                                                   res.val.scales)  # the same G
    assert gan_cfg.run.max_minutes is None and gan_cfg.run.max_steps > o["pretrain_steps"]
