"""The course manifest agrees with notebooks/: every source listed, each notebook's exercise
module and progress id as its cells say, and the grader's exercise list as the notebook's markup."""

from __future__ import annotations

import re

import nbformat

from course import manifest
from course.teach.catalogue import Catalogue
from course.teach.markup import exercise_ids


def test_every_notebook_source_is_in_the_manifest_and_nothing_else():
    sources = sorted(p.name for p in manifest.NOTEBOOKS_DIR.glob("[0-9]*.py"))
    assert sources == [n.source for n in manifest.NOTEBOOKS]
    assert len({n.id for n in manifest.NOTEBOOKS}) == len(manifest.NOTEBOOKS)


def test_each_notebook_imports_its_exercise_module_and_saves_progress_under_its_id():
    for notebook in manifest.NOTEBOOKS:
        text = (manifest.NOTEBOOKS_DIR / notebook.source).read_text(encoding="utf-8")
        assert f"from course.exercises import {notebook.exercises} as ex" in text
        assert re.search(rf'ProgressTracker\("{notebook.progress_id}"', text), notebook.file


def test_the_graders_exercise_list_is_the_notebooks_markup():
    catalogue = Catalogue()
    for notebook in manifest.NOTEBOOKS:
        marked = exercise_ids(nbformat.read(notebook.path(), as_version=4))
        assert catalogue.of_notebook(notebook.stem) == marked, notebook.file
    assert catalogue.of_notebook("homework") is None


def test_find_by_any_name():
    assert manifest.find("04") is manifest.find("04_zero_shot") is manifest.find("nb04")
    assert manifest.find("nope") is None
