"""Finding and reading submissions: every file found is graded once or skipped with a reason.

Layouts: ``<folder>/<student>/<...>/<notebook>.ipynb`` (the student is the first folder) or flat
``<folder>/<student>__<notebook>.ipynb``. One submission per (student, notebook): a second copy
(``wes/backup/01_x.ipynb`` beside ``wes/01_x.ipynb``) is reported and not graded, so no student
gets a notebook's points twice. Links are never followed (a link could name another student's
file or the answer keys): a linked file is reported, not graded. Names that differ only in case
(``Alice``, ``alice``) or only in look-alike letters (a Cyrillic ``а`` for a Latin ``a``) are
warned about and kept apart in every output.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Submissions larger than this are not run (a notebook of code is far smaller).
MAX_SUBMISSION_BYTES = 32 * 2**20


class GradingError(Exception):
    """Grading cannot start (no such folder, no notebooks, no sandbox): one line for the user."""


@dataclass
class Submission:
    """One submitted notebook file, read once, before any student code runs."""

    student: str
    notebook: str
    path: Path
    content: bytes = b""
    nb: Any = None  # the parsed notebook, or the exception that parsing raised
    root: Path = Path(".")  # the submissions folder it was found in

    @property
    def digest(self) -> str:
        """SHA-256 of the file's bytes (what the journal keys verdicts by)."""
        return hashlib.sha256(self.content).hexdigest()

    @property
    def where(self) -> str:
        """The file relative to the submissions folder, for messages."""
        try:
            return str(self.path.relative_to(self.root))
        except ValueError:
            return str(self.path)


@dataclass(frozen=True)
class Skipped:
    """A file found but not graded, and why (reported in the summary and the CSV)."""

    path: Path
    student: str
    notebook: str
    reason: str


@dataclass
class Scan:
    """What a submissions folder holds: the submissions to grade, the files left out (each
    with a reason) and warnings about student names."""

    found: list[Submission] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _names(root: Path, path: Path) -> tuple[str, str]:
    relative = path.relative_to(root)
    stem = relative.name.removesuffix(".ipynb")
    if len(relative.parts) >= 2:
        return relative.parts[0], stem
    student, _, notebook = stem.partition("__")
    return student, notebook or "submission"


def scan(folder: str | Path) -> Scan:
    """Every ``*.ipynb`` below ``folder``: the submissions, and the files skipped with a reason.

    Raises:
        GradingError: the folder does not exist or holds no notebooks.
    """
    root = Path(folder)
    if not root.is_dir():
        raise GradingError(f"{root}: no such folder of submissions")
    result = Scan()
    candidates: list[Path] = []
    for here, dirs, files in os.walk(root, followlinks=False):
        base = Path(here)
        for name in sorted(dirs):
            path = base / name
            if path.is_symlink():
                student, notebook = _names(root, path / "x.ipynb")
                result.skipped.append(Skipped(path, student, "", "a link to a folder: not "
                                              "followed, so nothing in it is graded"))
            elif name.endswith(".ipynb"):
                student, notebook = _names(root, path)
                result.skipped.append(Skipped(path, student, notebook,
                                              "a folder named like a notebook"))
        dirs[:] = sorted(d for d in dirs if not (base / d).is_symlink())
        for name in sorted(files):
            if name.endswith(".ipynb"):
                candidates.append(base / name)
    for path in sorted(candidates):
        student, notebook = _names(root, path)
        reason = None
        if ".ipynb_checkpoints" in path.relative_to(root).parts:
            reason = "a Jupyter checkpoint (autosave) copy, not the submission"
        elif path.is_symlink():
            reason = (f"a link (to {os.readlink(path)}): links are not followed; copy the "
                      "file in to grade it")
        elif not path.is_file():
            reason = "not a regular file"
        if reason:
            result.skipped.append(Skipped(path, student, notebook, reason))
        else:
            result.found.append(Submission(student, notebook, path, root=root))
    if not result.found and not result.skipped:
        raise GradingError(f"{root}: no notebooks found (expected <student>/<notebook>.ipynb)")
    result.found = _one_per_student_and_notebook(result.found, result.skipped)
    result.warnings = name_warnings(sorted({s.student for s in result.found}))
    return result


def find_submissions(folder: str | Path) -> list[Submission]:
    """The submissions to grade in ``folder`` (see :func:`scan` for what is left out)."""
    return scan(folder).found


def _one_per_student_and_notebook(found: list[Submission], skipped: list[Skipped]
                                  ) -> list[Submission]:
    """Keep the copy nearest the top of the student's folder (a flat ``student__nb`` file comes
    after any in the folder; then the first by path); skip the others."""
    groups: dict[tuple[str, str], list[Submission]] = {}
    for sub in found:
        groups.setdefault((sub.student, sub.notebook), []).append(sub)
    kept = []
    for (student, notebook), subs in groups.items():
        subs.sort(key=lambda s: (_depth(s), str(s.path)))
        kept.append(subs[0])
        for other in subs[1:]:
            skipped.append(Skipped(other.path, student, notebook,
                                   f"a second {notebook} from {student}: only "
                                   f"{subs[0].where} is graded"))
    return sorted(kept, key=lambda s: str(s.path))


def _depth(sub: Submission) -> int:
    parts = len(sub.path.relative_to(sub.root).parts)
    return parts if parts >= 2 else 2**30  # flat files last


def read(sub: Submission) -> None:
    """Read the file into memory (the run gets a copy; the original is checked against it)."""
    import nbformat

    try:
        size = sub.path.stat().st_size
        with sub.path.open("rb") as handle:
            sub.content = handle.read(MAX_SUBMISSION_BYTES + 1)
        if len(sub.content) > MAX_SUBMISSION_BYTES:
            raise TooLarge(f"the file is {_size(max(size, len(sub.content)))}, over the "
                           f"{_size(MAX_SUBMISSION_BYTES)} limit for a submission: not run")
        sub.nb = nbformat.reads(sub.content.decode("utf-8"), as_version=4)
        if not isinstance(sub.nb.get("cells"), list):
            raise TypeError("no cells")
    except Exception as error:  # noqa: BLE001 - malformed JSON etc.: graded as "invalid"
        sub.nb = error


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


class TooLarge(ValueError):
    """A submission over :data:`MAX_SUBMISSION_BYTES` (its message states the limit)."""


def expected_exercises(notebook: str, subs: Sequence[Submission], catalogue: Any = None
                       ) -> list[str]:
    """The exercises every submission of ``notebook`` is graded on.

    The course's own notebook of that name says (the course manifest), when there is one;
    otherwise an exercise counts when at least half the submissions carry its markup, so no
    single submission can change what the others are graded on.
    """
    from course.teach.catalogue import Catalogue
    from course.teach.markup import exercise_ids

    catalogue = catalogue or Catalogue()
    shipped = catalogue.of_notebook(notebook)
    if shipped is not None:
        return shipped
    counts: dict[str, int] = {}
    parsed = [s for s in subs if not isinstance(s.nb, Exception)]
    for sub in parsed:
        for exercise_id in set(exercise_ids(sub.nb)):
            counts[exercise_id] = counts.get(exercise_id, 0) + 1
    return sorted(i for i, count in counts.items()
                  if 2 * count >= len(parsed) and catalogue.known(i))


# -- names that look alike ---------------------------------------------------------------------------

#: Letters of other scripts that print like a Latin letter (the common Cyrillic and Greek ones).
_LOOK_ALIKE = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d", "ɡ": "g", "ո": "n",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ϲ": "c",
})


def skeleton(name: str) -> str:
    """What a name looks like: NFKC-normalised, case-folded, look-alike letters made Latin."""
    return unicodedata.normalize("NFKC", name).casefold().translate(_LOOK_ALIKE)


def _scripts(name: str) -> set[str]:
    scripts = set()
    for ch in name:
        if ch.isalpha():
            try:
                scripts.add(unicodedata.name(ch).split()[0])
            except ValueError:
                continue
    return scripts


def name_warnings(students: Sequence[str]) -> list[str]:
    """Warnings for names that differ only in case, width or look-alike letters, and for names
    that mix scripts (a Cyrillic letter in a Latin name). The names stay distinct."""
    warnings = []
    groups: dict[str, list[str]] = {}
    for student in students:
        groups.setdefault(skeleton(student), []).append(student)
    for names in groups.values():
        if len(names) > 1:
            shown = ", ".join(shown_name(n) for n in names)
            warnings.append(f"student names that look the same: {shown}; they are graded as "
                            "different students (check the folders)")
    for student in students:
        if len(_scripts(student)) > 1:
            warnings.append(f"student name {shown_name(student)} mixes scripts "
                            f"({', '.join(sorted(_scripts(student)))})")
    return warnings


def shown_name(name: str) -> str:
    """A name as printed: ASCII as is, anything else escaped (``\\u0430lice``), so that two
    names that look the same never print the same."""
    plain = "".join(ch if ch.isprintable() else " " for ch in name)
    if plain.isascii():
        return plain
    return plain.encode("ascii", "backslashreplace").decode("ascii")
