"""The README's course map agrees with the notebooks it describes."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_times_are_the_notebooks_own():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d\d) \|.*\| ([\d–-]+ min) \|", readme, re.MULTILINE))
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert notebooks and sorted(rows) == [p.name[:2] for p in notebooks]
    for path in notebooks:
        found = re.search(r"\*\*Time:\*\* ([\d–-]+) minutes", path.read_text(encoding="utf-8"))
        assert found, f"{path.name} states no time estimate"
        assert rows[path.name[:2]] == f"{found.group(1)} min", path.name
