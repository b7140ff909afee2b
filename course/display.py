"""Display bundles for widgets: the live view plus copies that read well without a kernel.

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


def figure_html(fig: Any, alt: str = "") -> str:
    """A matplotlib figure as an inline PNG ``<img>`` (as the notebook's inline backend draws it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" '
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
