"""The one environment every notebook kernel the course starts runs in.

nbval's kernels (via the repository's ``conftest.py``), ``scripts/build_notebooks.py``, the tests
that execute notebooks and the grader's kernels all get their environment from here, so a stored
output, a test run and a graded run see the same world:

* offline, with an empty Hugging Face cache: ``load_clip("auto")`` is pocket whatever this
  machine has cached (a cached real CLIP would change every printed number);
* this checkout's ``course`` first on ``PYTHONPATH`` (or the grader's stripped copy);
* a private progress file, so no learner's progress is touched;
* no progress bars (a stored "0%" bar reads as broken in any static view).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

#: The folder holding the ``course`` package this process imported.
COURSE_ROOT = Path(__file__).resolve().parents[2]

#: Variables that point Hugging Face at a cache; a kernel must not see the machine's.
_HF_CACHE_VARIABLES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE",
                       "HF_ASSETS_CACHE", "HF_DATASETS_CACHE", "HF_TOKEN", "HF_TOKEN_PATH")
#: What a scrubbed (grading) environment keeps from the grader's own.
_SAFE_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")


def kernel_env(scratch: str | os.PathLike[str], *, base: Mapping[str, str] | None = None,
               course_root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The environment for notebook kernels, with private state kept under ``scratch``.

    Args:
        scratch: a folder for the empty model cache and the progress file.
        base: the environment to start from (default: this process's).
        course_root: the folder whose ``course`` package kernels import (default: this one).
    """
    scratch = Path(scratch)
    env = {key: value for key, value in (os.environ if base is None else base).items()
           if key not in _HF_CACHE_VARIABLES}
    root = str(course_root or COURSE_ROOT)
    paths = [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env.update({
        "PYTHONPATH": os.pathsep.join(paths),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(scratch / "hf-home"),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TQDM_DISABLE": "1",
        "COURSE_PROGRESS_FILE": str(scratch / "progress.json"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # debugpy's frozen-modules warning in every kernel
    })
    return env


#: The variables that cap a process's compute threads (OpenMP, the BLAS libraries, torch's
#: intra-op pool reads OMP_NUM_THREADS at start).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def scrubbed_env(scratch: str | os.PathLike[str], *, course_root: str | os.PathLike[str],
                 threads: int | None = None) -> dict[str, str]:
    """A grading kernel's environment: nothing of the grader's but the locale and a PATH.

    HOME, TMPDIR and every Jupyter, IPython and matplotlib folder are fresh, empty folders under
    ``scratch``; widgets are off and figures render off screen. ``threads`` (when given) is
    the run's thread budget, set in every variable of :data:`THREAD_VARIABLES`: without it,
    ``--jobs N`` on C cores would run N x C threads, each run slowing the others.
    """
    scratch = Path(scratch)
    home, tmp = scratch / "home", scratch / "tmp"
    python_bin = str(Path(sys.executable).parent)
    base = {key: os.environ[key] for key in _SAFE_VARIABLES if key in os.environ}
    base.update({
        "PATH": os.pathsep.join([python_bin, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(home / ".local" / "share" / "jupyter" / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(home / ".ipython"),
        "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    })
    if threads is not None:
        base.update({name: str(max(1, int(threads))) for name in THREAD_VARIABLES})
    env = kernel_env(scratch, base=base, course_root=course_root)
    env.update({"COURSE_NO_WIDGETS": "1", "MPLBACKEND": "Agg"})
    return env


def thread_budget(lanes: int, cores: int | None = None) -> int:
    """Threads per run when ``lanes`` runs share this machine: its cores divided among them
    (at least 1)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    return max(1, cores // max(1, lanes))
