"""environment.yml (for conda users) must name the same dependencies as pyproject.toml.

Someone who adds a dependency to one file only gets a failing test that names it.
Runtime dependencies and the ``test`` extra count; names are compared after PEP 503
normalisation (``PyYAML`` and ``pyyaml``, ``vl_convert_python`` and
``vl-convert-python`` are the same package).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = ROOT / "tools" / "jupyterlab_overrides.json"
# Conda-only entries that are the environment itself, not a dependency of eda_lab.
CONDA_TOOLING = {"python", "pip"}


def normalise(requirement: str) -> str:
    """The PEP 503 name of a requirement string such as ``"Vl_Convert-Python>=1.6"``."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def split_environment(environment: dict) -> tuple[list[str], list[str]]:
    """(conda requirement strings, pip requirement strings) of an environment file."""
    conda, pip = [], []
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            pip.extend(entry["pip"])
        else:
            conda.append(entry)
    return conda, pip


def test_normalise_names() -> None:
    assert normalise("PyYAML>=6") == "pyyaml"
    assert normalise("vl_convert.python >= 1.6") == "vl-convert-python"
    assert normalise("python=3.11") == "python"


def test_environment_uses_conda_forge_and_python_311(environment: dict) -> None:
    assert environment["channels"] == ["conda-forge"]
    conda, _ = split_environment(environment)
    assert "python=3.11" in conda


def test_environment_installs_the_package_editable_with_tests(environment: dict) -> None:
    _, pip = split_environment(environment)
    assert "-e .[test]" in pip


def test_environment_names_the_same_dependencies_as_pyproject(
        environment: dict, project: dict) -> None:
    conda, pip = split_environment(environment)
    in_environment = [normalise(r) for r in conda + pip if not r.startswith("-e ")]
    in_environment = [name for name in in_environment if name not in CONDA_TOOLING]
    in_pyproject = [normalise(r) for r in
                    project["dependencies"] + project["optional-dependencies"]["test"]]
    assert len(in_environment) == len(set(in_environment)), "a package is listed twice"
    missing = sorted(set(in_pyproject) - set(in_environment))
    extra = sorted(set(in_environment) - set(in_pyproject))
    assert not missing, f"add to environment.yml (they are in pyproject.toml): {missing}"
    assert not extra, f"add to pyproject.toml or remove from environment.yml: {extra}"


def test_jupyterlab_overrides_match_the_schemas() -> None:
    """Every setting in tools/jupyterlab_overrides.json exists, with a valid value."""
    import jsonschema
    from jupyterlab.commands import get_app_dir

    schemas = Path(get_app_dir()) / "schemas"
    overrides = json.loads(OVERRIDES.read_text())
    assert overrides["@jupyterlab/notebook-extension:tracker"]["autoStartDefaultKernel"] is True
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    for plugin_id, settings in overrides.items():
        package, plugin = plugin_id.split(":")
        schema = json.loads((schemas / package / f"{plugin}.json").read_text())
        for key, value in settings.items():
            assert key in schema["properties"], f"{plugin_id} has no setting {key!r}"
            jsonschema.validate(value, {**schema["properties"][key],
                                        "definitions": schema.get("definitions", {})})


def test_make_installed_the_overrides_where_jupyterlab_reads_them() -> None:
    """``make`` copies the overrides into the venv's JupyterLab app settings folder."""
    from jupyterlab.commands import get_app_dir

    if not (Path(sys.prefix) / ".eda_lab-installed").exists():
        pytest.skip("this Python is not a .venv set up by make")
    installed = Path(get_app_dir()) / "settings" / "overrides.json"
    assert installed.exists(), f"{installed} is missing: run make lab"
    assert json.loads(installed.read_text()) == json.loads(OVERRIDES.read_text())


def test_make_lab_master_opens_the_masters_with_autosave_off(tmp_path: Path) -> None:
    """``make lab-master`` starts JupyterLab on the tracked masters with the settings
    tools/master_settings.py writes (autosave off: a run never rewrites a master);
    ``make lab`` opens the learner's workspace with autosave on."""
    import subprocess

    def dry_run(target: str) -> str:
        return subprocess.run(["make", "-n", target], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout

    master = [line for line in dry_run("lab-master").splitlines() if " lab " in line]
    assert len(master) == 1 and master[0].rstrip().endswith("notebooks/"), master
    folder = re.search(r"--LabApp\.app_settings_dir=(\S+)", master[0])
    assert folder, master[0]
    assert "app_settings_dir" not in dry_run("lab")
    subprocess.run([sys.executable, str(ROOT / "tools" / "master_settings.py"),
                    str(tmp_path)], check=True)
    written = json.loads((tmp_path / "overrides.json").read_text())
    assert written.pop("@jupyterlab/docmanager-extension:plugin") == {
        **json.loads(OVERRIDES.read_text())["@jupyterlab/docmanager-extension:plugin"],
        "autosave": False}
    assert written == {key: value for key, value in json.loads(OVERRIDES.read_text()).items()
                       if key != "@jupyterlab/docmanager-extension:plugin"}
