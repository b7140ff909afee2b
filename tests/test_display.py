"""course.display: figures reach the notebook with a text alternative and a true legibility measure."""

from __future__ import annotations

import base64

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course import display, plots
from course.data import shapes


@pytest.fixture(autouse=True)
def agg_backend_and_cleanup():
    plt.switch_backend("Agg")
    yield
    plt.close("all")


def _line(width: float = 5.0, tick_size: float = 10.0, dpi: float = 100):
    fig, ax = plt.subplots(figsize=(width, 3), dpi=dpi)
    ax.plot([0, 1, 2], [3, 1, 2], label="loss")
    ax.tick_params(labelsize=tick_size)
    ax.set_title("a title", fontsize=12)
    ax.legend(fontsize=11)
    return fig


def test_the_smallest_drawn_text_is_measured_at_the_displayed_size():
    measure = display.measure_figure(_line(tick_size=10))
    assert measure.shrink == 1.0 and measure.dpi == 100
    assert measure.smallest_pt == pytest.approx(10 * 100 / 96, abs=0.01)  # the tick labels
    assert measure.smallest_text.replace("\u2212", "-").lstrip("-")[0].isdigit()
    assert measure.legible
    small = display.measure_figure(_line(tick_size=6))
    assert small.smallest_pt == pytest.approx(6 * 100 / 96, abs=0.01) and not small.legible


def test_a_figure_wider_than_the_notebook_is_shrunk_and_its_text_with_it():
    wide = display.measure_figure(_line(width=15, tick_size=10))
    assert wide.width_px > display.DISPLAY_WIDTH_PX
    assert wide.shrink == pytest.approx(display.DISPLAY_WIDTH_PX / wide.width_px, abs=1e-3)
    assert wide.smallest_pt == pytest.approx(10 * 100 / 96 * wide.shrink, abs=0.02)
    assert not wide.legible  # 10 pt ticks in a 15-inch figure read as about 6 pt


def test_dpi_counts():
    # the same 9 pt text at 72 dpi is drawn 9 px high: 6.75 pt on screen
    measure = display.measure_figure(_line(tick_size=9, dpi=72))
    assert measure.smallest_pt == pytest.approx(9 * 72 / 96, abs=0.01) and not measure.legible


def test_only_drawn_text_counts():
    fig = _line(tick_size=10)
    fig.axes[0].text(0.5, 0.5, "hidden", fontsize=4, visible=False)
    fig.axes[0].text(0.5, 0.5, "", fontsize=4)
    assert display.measure_figure(fig).legible
    fig.axes[0].annotate("tiny", (1, 1), fontsize=5)
    measure = display.measure_figure(fig)
    assert measure.smallest_text == "tiny" and not measure.legible


def test_figure_bundle_carries_alt_text_description_and_measure():
    data, metadata = display.figure_bundle(_line(), "A line chart:\n loss per step.")
    assert data["text/plain"] == "A line chart: loss per step."
    assert metadata["image/png"]["alt"] == "A line chart: loss per step."
    png = base64.b64decode(data["image/png"])
    assert metadata[display.MEASURE_KEY]["width_px"] == display.png_size(png)[0]
    with pytest.raises(ValueError, match="one-line description"):
        display.figure_bundle(_line(), "  ")


def test_show_figure_publishes_once_and_closes_the_figure(monkeypatch):
    published = []
    monkeypatch.setattr("IPython.display.publish_display_data",
                        lambda data, metadata: published.append((data, metadata)))
    fig = _line()
    display.show_figure(fig, "a line")
    assert len(published) == 1 and published[0][1]["image/png"]["alt"] == "a line"
    assert not plt.fignum_exists(fig.number)  # the inline backend will not show it again


def test_figure_html_has_alt_text_and_measure():
    html = display.figure_html(_line(), 'a "quoted" line')
    assert 'alt="a &quot;quoted&quot; line"' in html and 'data-smallest-pt="10.42"' in html


@pytest.fixture(scope="module")
def data():
    return shapes.generate(12, seed=3)


def test_the_course_plots_are_legible(data):
    """Each plot of course.plots, at the sizes the notebooks use, reads at 9 pt or more."""
    rng = np.random.default_rng(0)
    labels = [f"class {k % 10}" for k in range(40)]
    figures = {
        "heatmap": plots.similarity_heatmap(rng.random((4, 4)), images=data.images[:4],
                                            texts=["a red circle"] * 4),
        "map": plots.embedding_map(rng.normal(size=(40, 8)), labels,
                                   groups=["image", "text"] * 20),
        "gallery k=10": plots.retrieval_gallery("a red circle", data.images[:10],
                                                np.linspace(1, 0, 10),
                                                captions=["a long caption of a shape"] * 10),
        "confusion": plots.confusion_matrix_plot(rng.integers(0, 10, 50),
                                                 rng.integers(0, 10, 50),
                                                 [f"class {k}" for k in range(10)]),
        "loss": plots.loss_curve({"train": rng.random(50), "validation": rng.random(50)},
                                 smooth=5),
    }
    small = {name: (m.smallest_pt, m.smallest_text)
             for name, m in ((n, display.measure_figure(f)) for n, f in figures.items())
             if not m.legible}
    assert small == {}


def test_embedding_map_legend_covers_no_point():
    rng = np.random.default_rng(1)
    embeds = np.concatenate([rng.normal(size=(20, 6)) + 3 * k for k in range(5)])
    labels = [f"label {k}" for k in range(5) for _ in range(20)]
    fig = plots.embedding_map(embeds, labels, groups=["image", "text"] * 50)
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_legend().get_window_extent()
    points = np.concatenate([ax.transData.transform(c.get_offsets()) for c in ax.collections
                             if len(c.get_offsets())])
    inside = ((points[:, 0] >= box.x0) & (points[:, 0] <= box.x1)
              & (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1))
    assert not inside.any()
