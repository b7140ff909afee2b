"""The one kernel environment makes runs independent of the machine's Hugging Face cache.

On a machine whose cache holds ``openai/clip-vit-base-patch32``, ``load_clip("auto")`` picks it,
and every stored notebook output would change. Everything that starts a kernel here (nbval via
the repository's conftest.py, the notebook tests, scripts/build_notebooks.py, the grader) runs it
in ``kernel_env``, which must turn that cache back into "pocket".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course.models import POCKET_DIR, REAL_CLIP
from course.teach.kernelenv import kernel_env

#: Variables through which a machine points Hugging Face at a cache (or a token).
CACHE_VARIABLES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE",
                   "HF_ASSETS_CACHE", "HF_DATASETS_CACHE", "HF_TOKEN", "HF_TOKEN_PATH")
CODE = "import course; clip = course.load_clip('auto'); print('NAME', clip.name)"


def _hub_cache(hub: Path) -> Path:
    """A hub cache folder (``.../hub``) holding REAL_CLIP, laid out as a download leaves it.

    The pocket model's files stand in for the real weights: what matters is where load_clip
    finds a model, and the name it reports tells which one it loaded.
    """
    repo = hub / f"models--{REAL_CLIP.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(POCKET_DIR, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return hub


def _machine(kind: str, root: Path) -> dict[str, str]:
    """This test process's environment, on a machine whose cache holds REAL_CLIP.

    ``kind`` is how the cache is found: HF_HUB_CACHE, HF_HOME, or the default ~/.cache.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in {*CACHE_VARIABLES, "HF_HOME", "XDG_CACHE_HOME"}}
    env["HF_HUB_OFFLINE"] = "1"  # whatever the cache holds, never try the network
    if kind == "HF_HUB_CACHE":
        env["HF_HUB_CACHE"] = str(_hub_cache(root / "anywhere" / "hub"))
    elif kind == "HF_HOME":
        env["HF_HOME"] = str(root / "hf-home")
        _hub_cache(root / "hf-home" / "hub")
    else:
        env["HOME"] = str(root / "home")
        _hub_cache(root / "home" / ".cache" / "huggingface" / "hub")
    return env


def _loaded(env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", CODE], env=env, cwd=cwd, capture_output=True,
                          text=True, check=False, timeout=600)  # a guard against a hang only
    assert done.returncode == 0, done.stderr[-3000:]
    names = [line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("NAME ")]
    assert len(names) == 1, done.stdout
    return names[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["HF_HUB_CACHE", "HF_HOME", "default ~/.cache"])
def test_kernel_env_gives_pocket_on_a_machine_with_the_real_clip_cached(kind, tmp_path, repo_root):
    machine = _machine(kind, tmp_path)
    # The simulated cache is real: outside the kernel environment, "auto" picks the cached model.
    assert _loaded(machine, repo_root) == REAL_CLIP
    kernel = kernel_env(tmp_path / "scratch", base=machine)
    assert _loaded(kernel, repo_root) == "pocket"


def test_kernel_env_drops_every_cache_variable(tmp_path):
    base = {name: f"/cache/{name}" for name in CACHE_VARIABLES}
    env = kernel_env(tmp_path, base={**base, "HF_HOME": "/machine/hf", "KEEP": "me"})
    assert not set(CACHE_VARIABLES) & set(env)
    assert env["HF_HOME"] == str(tmp_path / "hf-home") and env["HF_HUB_OFFLINE"] == "1"
    assert env["KEEP"] == "me"


def test_this_test_session_runs_in_the_kernel_environment():
    """The repository's conftest.py put pytest (and so every nbval kernel) in kernel_env."""
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert not set(CACHE_VARIABLES) & set(os.environ)
    hf_home = Path(os.environ["HF_HOME"])
    assert hf_home.name == "hf-home" and hf_home.parent.name.startswith("course-tests-")
    assert Path(os.environ["COURSE_PROGRESS_FILE"]).parent == hf_home.parent
