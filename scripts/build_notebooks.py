"""Sync the jupytext pairs in notebooks/ and execute every notebook in place, as a learner would.

    python scripts/build_notebooks.py                # all notebooks
    python scripts/build_notebooks.py 03 04          # only those whose name starts with 03 or 04
    python scripts/build_notebooks.py --no-execute   # only write .ipynb from the .py sources

The percent-format ``.py`` file is the source: its cells replace the ``.ipynb``'s. Execution is
in the course's one kernel environment (``course.teach.kernelenv``: offline, pocket, a throw-away
progress file, no progress bars) with cwd ``notebooks/``, so the stored outputs are what a learner
sees on the pocket model, and nobody's progress is touched.

The stored ``kernelspec`` is the installed kernel's (``course.labsettings.kernel_metadata``) and
``language_info`` is what the kernel reported: JupyterLab rewrites both when it opens a notebook,
and any difference marks a notebook modified before the learner touched it. Widget state is not
stored, for the same reason: JupyterLab's widget manager, set to save widget state, marks a
notebook modified for every widget it restores from the file. Widgets display with static copies
(plain text, HTML) that every viewer shows until the notebook runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's course, whatever is installed

from course import manifest
from course.labsettings import shipped_kernelspec
from course.teach.kernelenv import kernel_env


def is_jupytext_source(path: Path) -> bool:
    """A ``.py`` file written in jupytext's percent format (it has a ``# %%`` cell marker)."""
    return path.suffix == ".py" and any(
        line.startswith("# %%") for line in path.read_text(encoding="utf-8").splitlines())


def sync(py: Path) -> Path:
    """Write the ``.ipynb`` paired with ``py`` from its cells (outputs are dropped)."""
    import jupytext

    nb = jupytext.read(py)
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    nb.metadata["kernelspec"] = shipped_kernelspec()
    nb.metadata["jupytext"].pop("text_representation", None)
    target = py.with_suffix(".ipynb")
    jupytext.write(nb, target, fmt="ipynb")
    return target


def execute(path: Path, timeout: int = 600) -> float:
    """Execute ``path`` in place; returns the seconds it took. Raises on a cell error."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    if errors:
        raise RuntimeError(f"{path.name}: {errors[0].ename}: {errors[0].evalue}")
    nb.metadata["kernelspec"] = shipped_kernelspec()  # language_info: the kernel's
    # Without widget state (nbclient's store_widget_state=False fails on Output widgets): with it,
    # JupyterLab's widget manager, set to save widget state as `course lab` sets it up, marks the
    # notebook modified as it opens; and static viewers then show the bundles' HTML copies.
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Sync and execute the selected notebooks; print how long each took."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="*", help="only notebooks whose name starts with these")
    parser.add_argument("--no-execute", action="store_true", help="sync the pairs only")
    args = parser.parse_args(argv)

    def wanted(path: Path) -> bool:
        return not args.prefixes or path.name.startswith(tuple(args.prefixes))

    notebooks = [manifest.NOTEBOOKS_DIR / n.source for n in manifest.NOTEBOOKS]  # in order
    for py in (p for p in notebooks if wanted(p) and is_jupytext_source(p)):
        print(f"synced  {sync(py).relative_to(ROOT)}")
    if args.no_execute:
        return 0
    with tempfile.TemporaryDirectory(prefix="course-build-") as scratch:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(kernel_env(scratch, course_root=ROOT))
        try:
            for path in (p.with_suffix(".ipynb") for p in notebooks if wanted(p)):
                print(f"executed {path.relative_to(ROOT)} in {execute(path):.0f} s", flush=True)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
