"""``course doctor``: one [OK]/[FAIL] line per requirement, non-zero exit on a failure."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from course import doctor

LABELS = ["Python", "torch", "transformers", "pocket model", "ipywidgets", "jupyterlab", "device"]


def _run_doctor(repo_root, shim=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # a shim folder goes first so that its modules shadow the installed ones
    paths = ([str(shim)] if shim else []) + [str(repo_root), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return subprocess.run([sys.executable, "-m", "course", "doctor"], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_real_doctor_passes_on_this_machine(repo_root):
    result = _run_doctor(repo_root)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0].replace("[OK]", "").strip() for line in lines] == LABELS
    assert all(line.startswith("[OK]") for line in lines)
    import torch
    import transformers

    assert f"torch: {torch.__version__}" in result.stdout
    assert f"transformers: {transformers.__version__}" in result.stdout
    assert "embedding dimension" in result.stdout


@pytest.mark.slow
def test_real_doctor_fails_when_a_requirement_is_missing(repo_root, tmp_path):
    # A broken torch (cheap to fake, and the requirement most often missing) fails every check
    # that needs it, and only those.
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "torch.py").write_text("raise ImportError('torch is broken here')\n")
    result = _run_doctor(repo_root, shim=shim)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[FAIL] torch: cannot be imported (torch is broken here)" in result.stdout
    assert "[FAIL] pocket model: cannot be imported (torch is broken here)" in result.stdout
    for label in ("Python", "ipywidgets", "jupyterlab"):
        assert f"[OK]   {label}:" in result.stdout  # one failure does not stop the others


def test_injected_failure_gives_exit_1_and_a_reason():
    def broken() -> str:
        raise doctor.CheckFailed("the flux capacitor is missing")

    out = io.StringIO()
    code = doctor.run_checks([("fine", lambda: "all good"), ("flux", broken)], out=out)
    lines = out.getvalue().splitlines()
    assert code == 1
    assert lines[0] == "[OK]   fine: all good"
    assert lines[1] == "[FAIL] flux: the flux capacitor is missing"


def test_unexpected_exception_is_a_fail_line_not_a_crash():
    def crashes() -> str:
        raise RuntimeError("boom")

    out = io.StringIO()
    assert doctor.run_checks([("x", crashes)], out=out) == 1
    assert "[FAIL] x: RuntimeError: boom" in out.getvalue()


def test_all_ok_gives_exit_0():
    out = io.StringIO()
    assert doctor.run_checks([("a", lambda: "1"), ("b", lambda: "2")], out=out) == 0
    assert "[FAIL]" not in out.getvalue()


def test_python_version_range(monkeypatch):
    assert doctor.check_python().startswith(f"{sys.version_info[0]}.{sys.version_info[1]}")
    monkeypatch.setattr(sys, "version_info", (3, 9, 18, "final", 0))
    with pytest.raises(doctor.CheckFailed, match="3.9.18 is not supported"):
        doctor.check_python()
    monkeypatch.setattr(sys, "version_info", (3, 14, 0, "final", 0))
    with pytest.raises(doctor.CheckFailed, match="3.14.0 is not supported"):
        doctor.check_python()


def test_transformers_major_version(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers, "__version__", "6.0.0")
    with pytest.raises(doctor.CheckFailed, match="v4 or v5"):
        doctor.check_transformers()
    monkeypatch.setattr(transformers, "__version__", "4.57.1")
    assert doctor.check_transformers() == "4.57.1 (v4)"
