"""Training configs for every model family: ``model.options`` and the LIIF / Meta-SR configs (issue 12, lesson 09)."""

import dataclasses

import pytest
import yaml
from test_train import tiny

from course_lib import models, train
from course_lib.errors import CourseError

# Seed paper 003's Table 2 (parameter counts) and the LIIF / Meta-SR counts with EDSR-baseline
PUBLISHED = {"liif-edsr": 1_567_299, "liif-siren-edsr": 1_567_299, "liif-siren15-edsr": 1_567_299,
             "liif-siren-edsr-less": 579_235, "liif-edsr-less": 579_235}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_liif_configs_build_seed_003s_models(name):
    model = train.build_model(train.load_config(name).model)
    assert models.count_parameters(model) == PUBLISHED[name]
    dec = model.decoder
    siren = "siren" in name
    assert dec.mlp_kind == ("siren" if siren else "relu")
    assert dec.w0 == ({"liif-siren15-edsr": 15.0}.get(name, 30.0) if siren else None)


@pytest.mark.parametrize("name, family", [("liif-edsr", "liif"), ("metasr-edsr", "metasr")])
def test_family_configs_are_one_flag_from_the_diinn_checkpoint(name, family):
    """Same data, recipe and budget as the course's DIINN checkpoint: only model.name differs."""
    base = dataclasses.asdict(train.load_config("diinn-edsr-291"))
    other = dataclasses.asdict(train.load_config(name))
    assert other["model"]["name"] == family
    for d in (base, other):
        d.pop("name"), d["model"].pop("name")
    assert other == base


def test_siren_configs_differ_from_liif_by_their_options():
    relu = dataclasses.asdict(train.load_config("liif-edsr"))
    siren = dataclasses.asdict(train.load_config("liif-siren-edsr"))
    assert siren["model"].pop("options") == {"mlp": "siren", "w0": 30.0}
    assert relu["model"].pop("options") == {}
    relu.pop("name"), siren.pop("name")
    assert siren == relu


def test_options_override_merges_into_the_configs_options():
    cfg = train.load_config("liif-siren-edsr", overrides=["model.options.w0=15"])
    assert cfg.model.options == {"mlp": "siren", "w0": 15}
    assert train.build_model(cfg.model).decoder.w0 == 15.0
    cfg = train.load_config("liif-edsr", overrides={"model.options": {"local_ensemble": False}})
    assert train.build_model(cfg.model).decoder.local_ensemble is False


@pytest.mark.parametrize("override, words", [
    ({"model.variant": "b"}, "model.variant=b does not apply to model 'liif'"),
    ({"model.scale_mode": "inverse"}, "model.scale_mode=inverse does not apply"),
    ({"model.options": {"encoder": "rdn"}}, "set model.encoder instead"),
    ({"model.options": {"colour": 3}}, "has no option colour"),
    ({"model.options": {"mlp": "relu", "w0": 30}}, "use them with mlp='siren'"),
])
def test_options_a_family_lacks_are_refused_in_one_line(override, words):
    cfg = train.load_config("liif-edsr", overrides=override)
    with pytest.raises(CourseError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
        train.build_model(cfg.model)
    assert "\n" not in str(err.value)


def test_options_must_be_a_mapping():
    with pytest.raises(CourseError, match="model.options must be a mapping"):
        train.load_config("liif-edsr", overrides=["model.options=siren"])
    assert train.load_config("liif-edsr", overrides=["model.options=null"]).model.options == {}


def test_diinn_keys_still_reach_diinn():
    cfg = train.load_config("diinn-edsr", overrides={"model.variant": "c", "model.scale_mode": "inverse"})
    m = train.build_model(cfg.model)
    assert (m.config["variant"], m.config["scale_mode"]) == ("c", "inverse")


def test_resume_sees_a_changed_added_or_dropped_option():
    saved = dataclasses.asdict(train.load_config("liif-siren-edsr"))
    same = train.load_config("liif-siren-edsr")
    assert train.resume_changes(same, saved) == []
    changed = train.load_config("liif-siren-edsr", overrides=["model.options.w0=15"])
    assert train.resume_changes(changed, saved) == [("model.options.w0", 30.0, 15)]
    dropped = train.load_config("liif-edsr")
    assert sorted(k for k, _, _ in train.resume_changes(dropped, saved)) == ["model.options.mlp", "model.options.w0"]
    added = train.load_config("liif-siren-edsr", overrides=["model.options.w0_hidden=1.0"])
    assert train.resume_changes(added, saved) == [("model.options.w0_hidden", None, 1.0)]


def test_a_siren_run_trains_records_its_options_and_refuses_another_on_resume(folders, tmp_path):
    out = tmp_path / "run"
    over = tiny(folders, out, **{"model.name": "liif", "model.options": {"mlp": "siren", "w0": 15.0},
                                 "run.max_steps": 2, "data.patch": 6})
    res = train.train(None, overrides=over)
    assert res.step == 2
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["options"] == {"mlp": "siren", "w0": 15.0}
    model = models.load(out / "last.pt")
    assert model.config["mlp"] == "siren" and model.decoder.w0 == 15.0
    over["model.options"] = {"mlp": "siren", "w0": 30.0}
    over["run.max_steps"] = 3
    with pytest.raises(CourseError, match="holds liif.*w0=15.0.*builds liif.*w0=30.0"):
        train.train(None, overrides=over, resume="auto")
