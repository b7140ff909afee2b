"""Every figure the shipped notebooks show has a text alternative and text a learner can read.

Figures reach a notebook through ``course.display.show_figure`` (or a widget's static copy,
``course.display.figure_html``), which records beside each PNG the size of its smallest text at
the size the notebook displays it (``course_figure`` in the output's metadata, ``data-smallest-pt``
on a static copy's ``<img>``). These tests read those records from the stored ``.ipynb`` files,
so they cost no notebook run; the records themselves are tested on real figures in
tests/test_display.py, and each is tied to its PNG (the recorded width is the PNG's own), so a
picture redrawn without them, or by the inline backend instead of ``show_figure``, fails here.
"""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import nbformat
import pytest

from course import manifest
from course.display import MEASURE_KEY, MIN_FONT_PT, png_size

NOTEBOOKS = [n.path() for n in manifest.NOTEBOOKS]


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))


def _figures(path):
    """(where, problem or None) for every figure stored in the notebook at ``path``."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            data, metadata = output.get("data", {}), output.get("metadata", {})
            where = f"{path.name} cell {index}"
            if "image/png" in data:
                yield where, _png_problem(data, metadata)
            html = data.get("text/html", "")
            if "<img" in html:
                parser = _Images()
                parser.feed(html)
                for image in parser.images:
                    yield where + " (static copy)", _img_problem(image)


def _png_problem(data, metadata) -> str | None:
    alt = (metadata.get("image/png") or {}).get("alt", "")
    if not alt.strip():
        return "no alt text (shown without course.display.show_figure?)"
    if data.get("text/plain") != alt:
        return f"its text/plain is not its description: {data.get('text/plain')!r}"
    measure = metadata.get(MEASURE_KEY)
    if not measure:
        return "no legibility record"
    if measure["width_px"] != png_size(base64.b64decode(data["image/png"]))[0]:
        return "its legibility record belongs to another picture"
    return _size_problem(measure["smallest_pt"], measure["smallest_text"])


def _img_problem(image) -> str | None:
    if not (image.get("alt") or "").strip():
        return "an <img> without alt text"
    if image.get("data-smallest-pt") is None:
        return "an <img> without a legibility record (not drawn by course.display.figure_html)"
    smallest = image["data-smallest-pt"]
    return _size_problem(None if smallest == "None" else float(smallest), "")


def _size_problem(smallest: float | None, text: str) -> str | None:
    if smallest is not None and smallest < MIN_FONT_PT - 1e-6:
        return f"text {text!r} reads at {smallest:.1f} pt, below {MIN_FONT_PT:g} pt"
    return None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_has_alt_text_and_legible_text(path):
    figures = list(_figures(path))
    assert figures, f"{path.name} shows no figure: has it been executed?"
    assert [f"{where}: {problem}" for where, problem in figures if problem] == []


def test_the_check_fails_a_figure_the_inline_backend_drew(tmp_path):
    """A figure displayed as matplotlib's inline backend displays it is caught, as is tiny text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course.display import figure_bundle

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2])
    bundle, metadata = figure_bundle(fig, "a line")
    inline = {"image/png": bundle["image/png"], "text/plain": "<Figure size 400x300 with 1 Axes>"}
    ax.tick_params(labelsize=5)
    small, small_metadata = figure_bundle(fig, "a line, tiny ticks")
    plt.close(fig)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("display_data", data=inline),
        nbformat.v4.new_output("display_data", data=bundle, metadata=metadata),
        nbformat.v4.new_output("display_data", data=small, metadata=small_metadata),
        nbformat.v4.new_output("display_data", data={
            "text/html": '<img src="data:image/png;base64,xx">', "text/plain": "copy"}),
    ])]
    path = tmp_path / "figures.ipynb"
    nbformat.write(nb, path)
    problems = [problem for _, problem in _figures(path)]
    assert problems[1] is None
    assert "no alt text" in problems[0] and "below 9 pt" in problems[2]
    assert "without alt text" in problems[3]
