"""Display bundles: figures with a text alternative, widgets with copies that read without a kernel.

:func:`show_figure` is how notebooks show a matplotlib figure. It displays the PNG that the inline
backend would, with ``alt`` text in the output's metadata (the ``image/png`` ``alt`` key that
nbconvert, nbsphinx and IPython's own ``Image(alt=...)`` use) and the same one-line description as
the output's ``text/plain`` (what text-only front ends and the notebook file show instead of
``<Figure size 640x480 with 1 Axes>``). Beside them it records how large the figure's smallest
text is at the size the notebook displays it (:func:`measure_figure`), so that a test can read
every stored figure's legibility from the ``.ipynb`` without running the notebooks again.

A bare ipywidget displays as its live view and a ``text/plain`` repr such as
``VBox(children=(HBox(children=(Dropdown(...``. Wherever the live view cannot render (an
untrusted notebook in JupyterLab, a code host, nbconvert without saved widget state) that repr is
all a reader gets. :func:`widget_bundle` puts readable plain text and a static HTML copy beside
the live view; Jupyter front ends pick the richest one they can show.
"""

from __future__ import annotations

import base64
import html
import io
import struct
from dataclasses import asdict, dataclass
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Grey small print, in JupyterLab's own secondary colour where there is one.
GREY = "color: var(--jp-ui-font-color2, #6b6b6b); font-size: 0.85em"


def widget_bundle(widget: Any, text: str, html_copy: str) -> dict[str, Any]:
    """A display bundle: ``text`` and ``html_copy`` always, ``widget``'s live view when it has one.

    Args:
        widget: an ipywidget, or None (the copies alone are shown).
        text: what a plain-text reader sees.
        html_copy: a static HTML copy of the view (no script: it is shown untrusted).
    """
    bundle: dict[str, Any] = {"text/plain": text, "text/html": html_copy}
    view = (widget._repr_mimebundle_() or {}).get(WIDGET_VIEW) if widget is not None else None
    if view:
        bundle[WIDGET_VIEW] = view
    return bundle


#: The width, in CSS pixels, of a notebook's output area as a learner sees it: JupyterLab on a
#: 1280-pixel-wide laptop screen with the file browser open. A wider PNG is shrunk to fit, its
#: text with it.
DISPLAY_WIDTH_PX = 880
#: The smallest text a figure may show, in points at the displayed size.
MIN_FONT_PT = 9.0
#: The output metadata key under which :func:`show_figure` records :class:`FigureMeasure`.
MEASURE_KEY = "course_figure"


@dataclass(frozen=True)
class FigureMeasure:
    """How a figure's PNG reads in a notebook.

    Attributes:
        width_px, height_px: the PNG's size (``bbox_inches="tight"``, as the inline backend saves).
        dpi: pixels per inch of the PNG.
        shrink: the factor the notebook scales it by to fit :data:`DISPLAY_WIDTH_PX` (1: none).
        smallest_pt: the smallest text drawn, in points at the displayed size (a CSS point is
            4/3 CSS pixels): ``font size * dpi / 96 * shrink``; None when it draws no text.
        smallest_text: that text (empty when the figure draws no text).
    """

    width_px: int
    height_px: int
    dpi: float
    shrink: float
    smallest_pt: float | None
    smallest_text: str

    @property
    def legible(self) -> bool:
        """Whether every text is at least :data:`MIN_FONT_PT` at the displayed size."""
        return self.smallest_pt is None or self.smallest_pt >= MIN_FONT_PT - 1e-6


def render_figure(fig: Any) -> tuple[bytes, FigureMeasure]:
    """``fig`` as the inline backend's PNG, and the size of every text it drew.

    Every text the renderer draws passes through ``matplotlib.text.Text.draw`` (tick labels,
    legends, titles, annotations, table cells); recording there counts exactly what is drawn, not
    tick labels matplotlib keeps outside the axes' limits.
    """
    from matplotlib.text import Text

    sizes: list[tuple[float, str]] = []
    original = Text.draw

    def recording_draw(text: Text, renderer: Any) -> Any:
        if text.get_visible() and text.get_text().strip():
            sizes.append((float(text.get_fontsize()), text.get_text().strip()))
        return original(text, renderer)

    buffer = io.BytesIO()
    Text.draw = recording_draw  # type: ignore[method-assign,assignment]
    try:
        # at the figure's dpi, as IPython's inline backend saves it (whatever savefig.dpi says)
        fig.savefig(buffer, format="png", bbox_inches="tight", dpi=fig.dpi)
    finally:
        Text.draw = original  # type: ignore[method-assign]
    png = buffer.getvalue()
    width, height = png_size(png)
    dpi = float(fig.dpi)
    shrink = min(1.0, DISPLAY_WIDTH_PX / width)
    size, text = min(sizes, default=(0.0, ""))
    smallest = round(size * dpi / 96 * shrink, 2) if sizes else None
    return png, FigureMeasure(width, height, dpi, round(shrink, 4), smallest, text[:80])


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG, read from its header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def measure_figure(fig: Any) -> FigureMeasure:
    """How ``fig``'s smallest text reads at the size a notebook displays it."""
    return render_figure(fig)[1]


def figure_bundle(fig: Any, alt: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Data and metadata of a figure's display output: PNG, alt text, description, measure."""
    alt = " ".join(alt.split())
    if not alt:
        raise ValueError("a figure needs a one-line description of what it shows (alt text)")
    png, measure = render_figure(fig)
    data = {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": alt}
    metadata = {"image/png": {"alt": alt}, MEASURE_KEY: asdict(measure)}
    return data, metadata


def show_figure(fig: Any, alt: str) -> None:
    """Display ``fig`` with ``alt``, a one-line description of what it shows, and close it.

    Closing it keeps the inline backend from showing it a second time at the end of the cell.
    """
    import matplotlib.pyplot as plt
    from IPython.display import publish_display_data

    data, metadata = figure_bundle(fig, alt)
    publish_display_data(data, metadata)
    plt.close(fig)


def figure_html(fig: Any, alt: str) -> str:
    """A matplotlib figure as an inline PNG ``<img>`` with ``alt`` text, its measure beside it.

    The ``data-smallest-pt`` attribute records :attr:`FigureMeasure.smallest_pt` for the tests
    that read stored notebooks (JupyterLab's sanitiser drops it; nothing else needs it).
    """
    png, measure = render_figure(fig)
    data = base64.b64encode(png).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" alt="{html.escape(" ".join(alt.split()))}" '
            f'data-smallest-pt="{measure.smallest_pt}" data-width-px="{measure.width_px}" '
            'style="max-width: 100%">')


def static_copy_html(title: str, rows: list[tuple[str, str]], message: str, body: str,
                     note: str) -> str:
    """A static card: a bold title, ``name: value`` rows, a message, ``body`` (HTML), a grey note.

    Everything but ``body`` is plain text and is escaped here.
    """
    settings = "".join(f"<div><b>{html.escape(name)}</b>: {html.escape(value)}</div>"
                       for name, value in rows)
    said = f"<div>{html.escape(message)}</div>" if message else ""
    return (f'<div class="course-widget-copy"><div><b>{html.escape(title)}</b></div>'
            f"{settings}{said}{body}"
            f'<div style="{GREY}">{html.escape(note)}</div></div>')
