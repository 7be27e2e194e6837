"""The three install descriptions must agree.

pyproject.toml holds lower bounds, requirements.txt and environment.yml exact pins; README's two commands must be
the ones .ci/run executes.
"""

import re
import subprocess
from pathlib import Path

import yaml

try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package (pyproject.toml dev extra)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _conda_pip() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pips = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1, "environment.yml needs exactly one pip section"
    return [str(x).strip() for x in pips[0]["pip"]]


def test_requirements_and_conda_pip_section_are_identical():
    assert _requirements() == _conda_pip()


def test_pins_satisfy_pyproject_lower_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds = {}
    for dep in project["dependencies"]:
        name, _, low = re.split(r"(>=)", dep.replace(" ", ""))
        bounds[name.lower()] = tuple(int(x) for x in low.split("."))
    for pin in _requirements():
        if "==" not in pin:
            continue
        name, version = pin.split("==")
        assert name.lower() in bounds, f"{name} is pinned but not a dependency in pyproject.toml"
        assert tuple(int(x) for x in version.split(".")[:2]) >= bounds[name.lower()][:2], pin
    # the pinned environment installs the package itself with both extras
    assert "-e .[notebooks,dev]" in _requirements()
    assert set(project["optional-dependencies"]) == {"notebooks", "dev"}


def test_python_versions_agree():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    py = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")][0]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    low = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, py.split("=")[1].split("."))) >= tuple(map(int, low.split(".")))


def test_ci_runs_the_readme_commands():
    script = ROOT / ".ci" / "run"
    out = subprocess.run(["bash", "-c", f"source <(sed -n '/^extract()/,/^}}/p' {script}); cd {ROOT}; "
                          "extract install; extract test"], capture_output=True, text=True, check=True).stdout
    install, test = out.strip().splitlines()
    assert "pip install -r requirements.txt" in install and ".venv" in install
    assert "pytest" in test
    readme = (ROOT / "README.md").read_text()
    assert install in readme and test in readme


def test_every_supported_python_gets_a_toml_reader():
    """tomllib is in the standard library from 3.11; below that the dev extra must install tomli (this file's
    fallback), or this test module cannot even be imported on the oldest Python that pyproject.toml allows."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    low = tuple(map(int, project["requires-python"].removeprefix(">=").split(".")))
    dev = [d.replace(" ", "").replace("'", '"') for d in project["optional-dependencies"]["dev"]]
    if low < (3, 11):
        assert any(d.startswith("tomli") and d.endswith(';python_version<"3.11"') for d in dev), dev


def test_the_installed_package_carries_every_config_and_checkpoint(tmp_path):
    """`pip install git+...` (the Colab path of every lesson's setup cell) must be able to train: configs/ ships in the
    wheel as course_lib/configs, next to the pretrained checkpoints."""
    import importlib.util
    import sys
    import zipfile

    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]  # offline if we can
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(tmp_path),
                          str(ROOT)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    configs = {f"course_lib/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")}
    assert configs and configs <= names, sorted(configs - names)
    assert {f"course_lib/pretrained/{p.name}" for p in (ROOT / "course_lib" / "pretrained").iterdir()} <= names
    modules = {f"course_lib/{p.name}" for p in (ROOT / "course_lib").glob("*.py")}
    assert modules <= names, sorted(modules - names)
