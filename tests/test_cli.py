"""The ``course`` command line: sub-commands are registered and wired to their modules."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from course import cli


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("doctor", "lab", "train-pocket"):
        assert command in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "commands" in capsys.readouterr().out


def test_lab_arguments_reach_run_lab(monkeypatch):
    calls = []

    def fake_run_lab(root_dir, **kwargs):
        calls.append((root_dir, kwargs))
        return 0

    monkeypatch.setattr("course.lab.run_lab", fake_run_lab)
    assert cli.main(["lab", "--dir", "somewhere", "--port", "9999", "--token", "t",
                     "--no-browser"]) == 0
    assert calls == [("somewhere", {"port": 9999, "token": "t", "no_browser": True})]


def test_lab_reset_reaches_run_reset(monkeypatch):
    calls = []
    monkeypatch.setattr("course.lab.run_reset", lambda *a, **k: calls.append((a, k)) or 0)
    monkeypatch.setattr("course.lab.run_lab", lambda *a, **k: pytest.fail("must not start"))
    assert cli.main(["lab", "--reset", "04", "--dir", "somewhere", "--yes"]) == 0
    assert calls == [(("04", "somewhere"), {"yes": True})]


def test_lab_on_a_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    assert cli.main(["lab", "--dir", str(tmp_path / "a-file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("course lab: ") and "a-file is not a folder" in err


def test_doctor_exit_code_is_the_command_exit_code(monkeypatch):
    monkeypatch.setattr("course.doctor.run_checks", lambda: 1)
    assert cli.main(["doctor"]) == 1


def test_python_dash_m_course_runs_the_cli(repo_root):
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    result = subprocess.run([sys.executable, "-m", "course", "lab", "--help"], cwd=repo_root,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0
    assert "--no-browser" in result.stdout and "--token" in result.stdout


def test_cli_import_does_not_import_torch(repo_root):
    # `course lab` and `course --help` must stay instant: torch is only imported when needed.
    code = "import sys, course.cli, course.lab; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.stdout.strip() == "False", result.stderr
