"""Seed paper 000's rows of course_lib.compare (``SEED000_ROWS``, ``ROW_SETS["seed000"]``; lesson 10).

Oracle: the configs themselves. Each row applied to configs/seed000-a.yaml must give exactly the model section of
configs/seed000-<letter>.yaml (the configs the lead trains and the GPU campaign reads), and must build the model
letter and encoder of the reference note's table (seed-variations.md sec. 1.2; course_lib.diinn_var.MODELS, with
EDSR-baseline where the paper has RDN).
"""

import dataclasses

import pytest
from test_train import tiny

from course_lib import compare, train
from course_lib.diinn_var import VariantSRModel
from course_lib.errors import CourseError

LETTERS = "ABCDEFGH"


def test_rows_are_a_to_h_and_registered():
    assert list(compare.SEED000_ROWS) == list(LETTERS)
    assert compare.ROW_SETS["seed000"] is compare.SEED000_ROWS
    assert compare.SEED000_ROWS["A"] == {}  # the base config's own model: A


@pytest.mark.parametrize("letter", LETTERS)
def test_each_row_is_the_letters_config(letter):
    mine = train.load_config("seed000-a", overrides=compare.SEED000_ROWS[letter])
    theirs = train.load_config(f"seed000-{letter.lower()}")
    assert dataclasses.asdict(mine.model) == dataclasses.asdict(theirs.model)
    assert mine.model.options == {"model": letter}
    assert mine.model.encoder == ("vgg-se" if letter in "GH" else "edsr-baseline")
    # everything but the model is the shared recipe: budget, data, optimiser
    for section in ("data", "optim", "run", "val"):
        assert dataclasses.asdict(getattr(mine, section)) == dataclasses.asdict(getattr(theirs, section)), section
    assert mine.run.max_steps == 400


@pytest.mark.parametrize("letter", LETTERS)
def test_each_row_builds_its_model(letter):
    cfg = train.load_config("seed000-a", overrides={**compare.SEED000_ROWS[letter], "model.encoder": "edsr-less"}
                            if letter not in "GH" else compare.SEED000_ROWS[letter])
    model = train.build_model(cfg.model)
    assert model.config["model"] == letter and model.config["name"] == "diinn-var"
    assert isinstance(model, VariantSRModel) == (letter != "G")  # G is DIINN's decoder (f)
    assert type(model.encoder).__name__ == ("VGGSE" if letter in "GH" else "EDSR")
    assert model.skip == "bicubic"  # the course's equal-budget recipe (compare-cpu.yaml)


def test_run_folders_are_distinct():
    names = [compare.run_dir("r", row, 0).name for row in compare.SEED000_ROWS]
    assert names == [f"{letter.lower()}-seed0" for letter in LETTERS]


def test_rows_never_change_the_budget_or_the_folder():
    for over in compare.SEED000_ROWS.values():
        assert not any(key.startswith("run.") for key in over)


def test_the_cli_uses_seed000_a_for_these_rows(folders, tmp_path, capsys):
    # `--rows seed000` without --config must not train compare-cpu's DIINN (f) under the name "A"
    from course_lib.__main__ import main

    base = tiny(folders, tmp_path / "unused", **{"run.max_steps": 1})
    base.pop("run.out_dir"), base.pop("run.seed")
    over = [f"{k}={v}" for k, v in base.items()]
    code = main(["compare", "--rows", "seed000", "--seeds", "0", "--root", str(tmp_path / "runs"), "--override",
                 *over, "--train-only"])
    assert code == 0
    for letter in LETTERS:
        saved = train.load_checkpoint(compare.run_dir(tmp_path / "runs", letter, 0) / "last.pt")
        model = saved["train_config"]["model"]
        assert model["name"] == "diinn-var" and model["options"] == {"model": letter}
        assert model["encoder"] == ("vgg-se" if letter in "GH" else "edsr-less")
    capsys.readouterr()


def test_a_row_unknown_to_the_model_is_refused_in_one_line(tmp_path):
    with pytest.raises(CourseError) as err:
        train.build_model(train.load_config("seed000-a", overrides={"model.options": {"model": "Z"}}).model)
    assert "unknown seed-000 model 'Z'" in str(err.value) and "\n" not in str(err.value)
