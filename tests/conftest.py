"""Shared test fixtures.

``data_dir``: the folder of real HR images (``<Set>/HR/*.png`` and ``MANIFEST.tsv``), found exactly where the library
looks (``course_lib.data.data_dir()``): ``$COURSE_DATA_DIR`` when set, else ``data/`` in the repository. A test that
uses it fails when ``$COURSE_DATA_DIR`` is set but holds no Set5 (a wrong path must not pass as "no data"), and is
skipped, with the reason in pytest's summary, only when the variable is unset and ``data/`` holds no Set5.
``course_data``: the same folder, also exported as ``$COURSE_DATA_DIR`` for the test (so library
lookups such as ``course_lib.data.get_dataset("Set5")`` find it).
``lively``: a function that gives a model's decoder weights under which its output depends on every input
(:func:`lively_decoder`).
``notebook_code`` / ``notebook_constant``: a lesson notebook's code cells, and the literal value a cell assigns to a
name (the lesson tests check the numbers a lesson quotes against numbers typed from the papers).
"""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

import pytest
import torch

from course_lib import data as course_data_module


def find_data_dir() -> Path | None:
    """The library's data root (``$COURSE_DATA_DIR``, else ``<repo>/data``) when it holds Set5/HR, else None."""
    root = course_data_module.data_dir()
    return root.resolve() if (root / "Set5" / "HR").is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = find_data_dir()
    if path is None:
        env = os.environ.get("COURSE_DATA_DIR")
        if env:
            pytest.fail(f"COURSE_DATA_DIR={env} holds no Set5/HR: point it at the course data folder "
                        "(<Set>/HR/*.png) or unset it", pytrace=False)
        pytest.skip(f"course data not found: set COURSE_DATA_DIR (or put the sets in {course_data_module.data_dir()})")
    return path


@pytest.fixture
def course_data(data_dir, monkeypatch) -> Path:
    monkeypatch.setenv("COURSE_DATA_DIR", str(data_dir))
    return data_dir


def lively_decoder(model, gain: float = 2.0, seed: int = 0):
    """Redraw every linear weight of ``model.decoder`` as N(0, gain^2 / fan_in) (biases kept); returns ``model``.

    With PyTorch's default init the DIINN decoder barely depends on its position input: each 256-wide layer shrinks
    the signal, and at the output a change of the scale channel from 1/9 to 1/3 moved the prediction by 3e-7. A test
    at 1e-5 then cannot see a wrong position, scale or modulation input. With these weights the pre-activations are
    of unit size and the same change moves the output by 1.8 to 4.7, so a comparison with an oracle tests the
    whole function."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.decoder.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * gain / math.sqrt(layer.in_features))
    return model


@pytest.fixture
def lively():
    return lively_decoder


def notebook_code(path) -> list[str]:
    """The source of each code cell of the notebook at ``path``, in order (markdown cells left out)."""
    cells = json.loads(Path(path).read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def notebook_constant(path, name: str):
    """The value of a top-level ``NAME = <literal>`` assignment in one of the notebook's code cells (the first one),
    read with ``ast.literal_eval`` (nothing is executed); an AssertionError when no cell assigns ``name``."""
    for source in notebook_code(path):
        if f"{name} = " not in source:
            continue
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                return ast.literal_eval(node.value)
    raise AssertionError(f"{Path(path).name} assigns no {name}")


def write_images(folder: Path, n: int, size=(24, 28), seed=0) -> Path:
    """Smooth random colour images (a coarse noise field upsampled), so that SR has something to learn."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, (size[0] // 4, size[1] // 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size[1], size[0]), Image.BICUBIC).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(train folder of 6 images, validation folder of 2) for tiny training runs (test_train, test_reliability)."""
    root = tmp_path_factory.mktemp("train_data")
    return write_images(root / "train", 6), write_images(root / "val", 2, size=(16, 20), seed=1)


def load_state(path) -> dict:
    """A trainer checkpoint (``last.pt``) as saved: weights, optimiser, scheduler, step."""
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_state(a: dict, b: dict) -> None:
    """Bit-identical weights (BN statistics included), optimiser state (every entry: Adam moments and step, or SGD
    momentum), step and scheduler of two trainer checkpoints: what an exact resume must reproduce."""
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and sa
    for i in sa:
        assert sa[i].keys() == sb[i].keys(), i
        for k in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (i, k)
    assert a["step"] == b["step"] and a["scheduler"] == b["scheduler"]
