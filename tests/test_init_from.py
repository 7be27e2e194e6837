"""``run.init_from``: a new run starts from trained weights (lesson 11: SRGAN from SRResNet, as Ledig et al.).

Oracle: the weights the training loop receives at step 0 equal the checkpoint's, tensor for tensor; without the
option they are the seeded random init. Tiny CPU runs as in tests/test_train.py."""

import sys
from pathlib import Path

import pytest
import torch

from course_lib import models, train
from course_lib.errors import CourseError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import load_state  # noqa: E402
from test_train import tiny  # noqa: E402


class _Stop(Exception):
    pass


@pytest.fixture
def weights_at_start(monkeypatch):
    """Run ``train.train`` up to the loop and return the model's weights there (the loop is not run)."""
    def run(*args, **kwargs):
        seen = {}

        def loop(cfg, trainer, *rest, **kw):
            seen.update({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
            raise _Stop

        monkeypatch.setattr(train, "_loop", loop)
        with pytest.raises(_Stop):
            train.train(*args, **kwargs)
        monkeypatch.undo()
        return seen
    return run


@pytest.fixture(scope="module")
def trained(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("init_from") / "a"
    train.train("diinn-edsr", tiny(folders, out))
    return out / "last.pt"


def test_a_new_run_starts_from_the_checkpoints_weights(folders, trained, tmp_path, weights_at_start):
    saved = load_state(trained)["state_dict"]
    got = weights_at_start("diinn-edsr", tiny(folders, tmp_path / "b", **{"run.init_from": str(trained)}))
    assert got.keys() == saved.keys()
    for k in saved:
        assert torch.equal(got[k], saved[k]), k
    fresh = weights_at_start("diinn-edsr", tiny(folders, tmp_path / "c"))  # the seeded random init differs
    assert any(not torch.equal(fresh[k], saved[k]) for k in saved)


def test_the_run_then_trains_and_a_resume_keeps_its_own_weights(folders, trained, tmp_path):
    out = tmp_path / "b"
    o = tiny(folders, out, **{"run.init_from": str(trained), "run.max_steps": 6})
    train.train("diinn-edsr", {**o, "run.stop_at": 4})
    stopped = load_state(out / "last.pt")
    assert stopped["step"] == 4 and stopped["train_config"]["run"]["init_from"] == str(trained)
    train.train("diinn-edsr", o, resume="last")  # weights come from last.pt, not from init_from again
    once = tmp_path / "once"
    train.train("diinn-edsr", tiny(folders, once, **{"run.init_from": str(trained), "run.max_steps": 6}))
    a, b = load_state(out / "last.pt"), load_state(once / "last.pt")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert any(not torch.equal(a["state_dict"][k], load_state(trained)["state_dict"][k]) for k in a["state_dict"])


def test_another_architecture_or_a_missing_file_is_one_line(folders, trained, tmp_path):
    with pytest.raises(CourseError) as err:
        train.train("diinn-edsr", tiny(folders, tmp_path / "b", **{"run.init_from": str(trained),
                                                                   "model.encoder": "edsr-baseline"}))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("run.init_from=") and "edsr-less" in msg and "edsr-baseline" in msg
    with pytest.raises(CourseError, match=r"run\.init_from=.*does not exist") as err:
        train.train("diinn-edsr", tiny(folders, tmp_path / "c", **{"run.init_from": str(tmp_path / "nope.pt")}))
    assert "\n" not in str(err.value)


def test_a_shipped_model_by_name():
    name = "memnet-m3r3-cpu"
    entry = models.list_pretrained()[name]
    config = dict(entry["config"])
    model = models.build(config.pop("name"), **config)
    train.init_weights(model, name)
    want = models.load_pretrained(name).state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, want[k]), k
