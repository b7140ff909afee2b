"""Packaging: pyproject.toml and environment.yml agree, and the two set-up commands are real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent

#: conda-forge names that differ from the PyPI names
CONDA_TO_PIP = {"pytorch": "torch"}
#: conda entries that are tools of the environment, not dependencies of the package
CONDA_ONLY = {"python", "pip"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pip_requirements() -> list[Requirement]:
    project = _pyproject()["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def _conda_specs() -> dict[str, str]:
    """conda package (pip name) -> version spec, e.g. {'torch': '>=2.2'}."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):  # the pip: section
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", entry.strip())
        assert match, f"cannot parse conda spec {entry!r}"
        name, spec = match.groups()
        specs[CONDA_TO_PIP.get(name, _norm(name))] = spec.replace(" ", "")
    return specs


def _minimum(spec: str) -> str | None:
    found = re.findall(r">=\s*([0-9][0-9A-Za-z.]*)", spec)
    return found[0] if found else None


def test_same_dependency_names_in_both_files():
    pip_names = {_norm(r.name) for r in _pip_requirements()}
    conda_names = set(_conda_specs()) - CONDA_ONLY
    assert pip_names == conda_names, (
        f"only in pyproject: {sorted(pip_names - conda_names)}; "
        f"only in environment.yml: {sorted(conda_names - pip_names)}"
    )


def test_same_minimum_versions_in_both_files():
    conda = _conda_specs()
    for requirement in _pip_requirements():
        pip_min = _minimum(str(requirement.specifier))
        assert pip_min, f"{requirement} needs a minimum version (>=)"
        assert _minimum(conda[_norm(requirement.name)]) == pip_min, requirement.name


def test_same_python_range():
    requires = _pyproject()["project"]["requires-python"].replace(" ", "")
    assert requires == ">=3.10,<3.14"
    assert _conda_specs()["python"] == requires


def test_no_torchvision_anywhere():
    names = {_norm(r.name) for r in _pip_requirements()} | set(_conda_specs())
    assert "torchvision" not in names


def test_environment_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    pip_sections = [e["pip"] for e in env["dependencies"] if isinstance(e, dict)]
    assert pip_sections == [["-e ."]]


def test_installed_versions_satisfy_pyproject():
    for requirement in _pip_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = metadata.version(requirement.name)
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{requirement.name} {version} does not satisfy {requirement}"
        )


def test_pytest_also_runs_nbval_over_notebooks():
    options = _pyproject()["tool"]["pytest"]["ini_options"]
    assert "notebooks" in options["testpaths"]
    for flag in ("--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout="):
        assert flag in options["addopts"]


def test_ci_runs_make_test_and_nothing_else():
    """Besides installing system packages for tests (as root, where apt exists), only make test."""
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    lines = [line.strip() for line in script.read_text().splitlines()]
    assert lines[0] == "#!/usr/bin/env bash"
    commands = [line for line in lines[1:] if line and not line.startswith("#")]
    assert commands[0] == "set -euo pipefail"
    assert commands[1].startswith("cd ")
    assert commands[-1] == "make test"
    installs = "\n".join(commands[2:-1])
    assert "make" not in installs and "pytest" not in installs
    assert "bubblewrap" in installs and 'if [ "$(id -u)" = 0 ]' in installs


def _setup_section() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Set-up\s*$(.*?)(?=^## )", readme, flags=re.MULTILINE | re.DOTALL)
    assert match, "README.md needs a '## Set-up' section"
    return match.group(1)


def test_readme_setup_shows_exactly_two_commands():
    blocks = re.findall(r"```[a-z]*\n(.*?)```", _setup_section(), flags=re.DOTALL)
    commands = [line.strip() for block in blocks for line in block.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert commands == ["make lab", "make test"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_targets_do_what_the_readme_says():
    # Under `make test` this runs inside make: drop the parent's flags so the output is plain.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}

    def dry_run(*args: str) -> list[str]:
        result = subprocess.run(["make", "--no-print-directory", "-n", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, check=True)
        return result.stdout.splitlines()

    install = [
        'py -c "import torch" 2>/dev/null || py -m pip install "torch==2.13.0"',
        'py -m pip install -e ".[test]"',
    ]
    assert dry_run("install", "PYTHON=py") == install
    assert dry_run("lab", "PYTHON=py") == install + ["py -m course lab"]
    assert dry_run("test", "PYTHON=py") == install + ["py -m pytest"]
    assert 'pip install "torch"' in dry_run("install", "TORCH=torch")[0]


def test_every_name_in_the_readme_package_table_exists():
    import importlib

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## The package", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| `course")]
    assert len(rows) >= 9
    checked = 0
    for module_cell, names_cell in rows:
        module = re.findall(r"`([\w.]+)`", module_cell)[0]
        for dotted in re.findall(r"`([\w.]+)`", names_cell):
            head, *rest = dotted.split(".")
            try:
                obj = getattr(importlib.import_module(module), head)
            except AttributeError:  # a submodule not imported by its package
                obj = importlib.import_module(f"{module}.{head}")
            for part in rest:
                obj = getattr(obj, part)
            checked += 1
    assert checked >= 30
