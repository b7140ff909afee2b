"""The page ``course lab`` opens first: the course map, what to do first, where work is kept.

JupyterLab would otherwise open on its Launcher, which offers a blank notebook and says nothing
about the course. The page is a Markdown file in the learner's workspace (listed first, opened as
a rendered preview), rewritten on every start from the notebooks themselves (title, time and
prerequisites from each one's first cell), so it never disagrees with them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

#: The page's file name: sorts before the notebooks in the file browser.
START_PAGE = "00_start_here.md"


@dataclass(frozen=True)
class NotebookInfo:
    """What the course map says about one notebook."""

    file: str
    title: str
    time: str
    prerequisites: str


def notebook_info(path: str | os.PathLike[str]) -> NotebookInfo:
    """Title, time estimate and prerequisites from a notebook's first markdown cell.

    A notebook without them still gets a row: its file name as the title, the rest empty.
    """
    path = Path(path)
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        cells = []
    first = next((c for c in cells if isinstance(c, dict) and c.get("cell_type") == "markdown"),
                 {})
    source = first.get("source", "")
    text = "".join(source) if isinstance(source, list) else str(source)
    title = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
    time = re.search(r"\*\*Time:\*\*\s*([^·\n]+)", text)
    needs = re.search(r"\*\*Prerequisites:\*\*\s*([^\n]+)", text)
    return NotebookInfo(path.name, title.group(1).strip() if title else path.stem,
                        time.group(1).strip() if time else "",
                        needs.group(1).strip() if needs else "")


def start_page_text(notebooks: list[Path], workspace: Path, progress_file: Path) -> str:
    """The start page's Markdown for these notebooks (in course order)."""
    rows = "\n".join(
        f"| [{info.file}]({info.file}) | {_cell(info.title)} | {_cell(info.time)} | "
        f"{_cell(info.prerequisites)} |" for info in map(notebook_info, notebooks))
    first = notebooks[0].name if notebooks else "the first notebook"
    return f"""# Start here: the CLIP course

Welcome. This page is the course's: `course lab` writes it again each time it starts, so keep
your notes in your notebooks, not here.

## What to do first

1. Open **[{first}]({first})**: click its name here or in the course map, or double-click it in
   the file browser on the left.
2. Run its cells from the top, in order: **Shift+Enter** runs a cell and moves to the next;
   **Run > Run All Cells** runs them all. Everything works offline, on the course's small
   *pocket* model.
3. Each exercise has a cell for your answer and a check under it: `ex.q1.check(...)` says what
   is right or off, `ex.q1.hint()` gives a hint, `ex.q1.solution()` shows the course's answer.
4. At the end of each notebook, tick what you can now do in its **Progress tracker**.

## Course map

Take the notebooks in order; each builds on the ones named as its prerequisites. Times are for
reading, running and doing the exercises.

| notebook | what it is about | time | prerequisites |
|---|---|---|---|
{rows}

## Where your work is kept

- **Your notebooks** are the files in this folder, `{workspace}`. They are yours: save with
  **Ctrl+S** (JupyterLab also saves every two minutes). `course lab --reset 04` puts the course's
  version of notebook 04 back, keeping yours in the `backups` folder.
- **Your progress** (the tracker's ticks and passed exercises) is kept in
  `{progress_file}`, not in the notebooks, so resetting a notebook keeps it.
  In a terminal, `course progress` shows it and `course progress --export mine.csv` writes a copy.
- **Widgets** (the playgrounds, the search box, the tracker) work once their cell has run. A
  notebook you reopen shows a saved copy of each, which cannot be clicked: run the cell again to
  use it.
"""


def write_start_page(workspace: str | os.PathLike[str], notebooks: list[Path]) -> Path:
    """Write :data:`START_PAGE` into ``workspace`` for ``notebooks``; returns its path."""
    from course.teach.progress.store import progress_path

    root = Path(workspace)
    page = root / START_PAGE
    text = start_page_text(notebooks, root, progress_path())
    if not page.is_file() or page.read_text(encoding="utf-8") != text:  # unchanged: untouched
        page.write_text(text, encoding="utf-8")
    return page


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
