"""Each plot returns a Figure that shows the data it was given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox

from course import plots
from course.data import shapes


@pytest.fixture(autouse=True)
def agg_backend_and_cleanup():
    plt.switch_backend("Agg")  # no display needed; figures are only inspected
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    return shapes.generate(4, seed=2)


def test_similarity_heatmap_shows_thumbnails_and_captions(data):
    sim = torch.rand(4, 3)
    texts = ["a red circle", "a blue star", "a green cross"]
    fig = plots.similarity_heatmap(sim, images=data.images, texts=texts)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), sim.numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == texts
    assert sum(isinstance(a, AnnotationBbox) for a in ax.artists) == 4
    assert len(ax.texts) == 12  # one value per cell
    fig.canvas.draw()  # renders without error


def test_similarity_heatmap_colour_scale():
    sim = np.array([[0.9, 0.95], [0.97, 1.0]])
    assert plots.similarity_heatmap(sim).axes[0].images[0].get_clim() == (0.9, 1.0)  # its own range
    fig = plots.similarity_heatmap(sim, vmin=-1, vmax=1)
    assert fig.axes[0].images[0].get_clim() == (-1, 1)
    assert fig.axes[1].get_ylim() == (-1, 1)  # the colour bar shows the full range
    # on the full range every value is above the middle: all annotations in black
    assert {t.get_color() for t in fig.axes[0].texts} == {"black"}


def test_similarity_heatmap_length_mismatch(data):
    with pytest.raises(ValueError, match="3 images for 4 rows"):
        plots.similarity_heatmap(np.zeros((4, 2)), images=data.images[:3])
    with pytest.raises(ValueError, match="1 texts for 2 columns"):
        plots.similarity_heatmap(np.zeros((4, 2)), texts=["x"])


def test_embedding_map_is_a_pca_coloured_by_label():
    rng = np.random.default_rng(0)
    embeds = rng.normal(size=(30, 8)) * np.array([5, 2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    labels = ["a"] * 10 + ["b"] * 10 + ["c"] * 10
    fig = plots.embedding_map(embeds, labels)
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    from sklearn.decomposition import PCA

    expected = PCA(2).fit_transform(embeds)
    # Principal axes are defined up to sign.
    for dim in range(2):
        col = points[:, dim]
        assert np.allclose(col, expected[:, dim], atol=1e-6) or np.allclose(
            col, -expected[:, dim], atol=1e-6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]


def test_embedding_map_groups_use_markers():
    embeds = torch.randn(12, 6)
    labels = ["x", "y"] * 6
    groups = ["image"] * 6 + ["text"] * 6
    fig = plots.embedding_map(embeds, labels, groups=groups)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "[image]" in legend and "[text]" in legend
    with pytest.raises(ValueError, match="labels"):
        plots.embedding_map(embeds, labels[:3])


def test_embedding_map_palette_colours_named_labels():
    from matplotlib.colors import to_rgba

    embeds = torch.randn(12, 6)
    labels = ["pink", "brown", "other"] * 4
    fig = plots.embedding_map(embeds, labels, palette={"pink": "hotpink", "brown": (0.5, 0.3, 0.1)})
    faces = {c.get_label(): tuple(c.get_facecolor()[0]) for c in fig.axes[0].collections}
    assert faces["pink"] == pytest.approx(to_rgba("hotpink", 0.8))
    assert faces["brown"] == pytest.approx(to_rgba((0.5, 0.3, 0.1), 0.8))
    assert faces["other"] not in (faces["pink"], faces["brown"])


def test_retrieval_gallery_text_and_image_queries(data):
    fig = plots.retrieval_gallery("a red circle", data.images[:3], torch.tensor([0.9, 0.5, 0.1]))
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "query" and "0.900" in titles[1] and "0.100" in titles[3]
    assert "a red circle" in fig.axes[0].texts[0].get_text()
    fig = plots.retrieval_gallery(data.images[3], data.images[:2], [0.3, 0.2],
                                  captions=["c1", "c2"])
    assert len(fig.axes[0].images) == 1 and "c2" in fig.axes[2].get_title()
    with pytest.raises(ValueError, match="2 scores for 3 images"):
        plots.retrieval_gallery("q", data.images[:3], [0.1, 0.2])


def test_a_long_gallery_wraps_into_rows_instead_of_shrinking(data):
    fig = plots.retrieval_gallery("q", (data.images * 3)[:10], list(range(10, 0, -1)))
    assert len(fig.axes) == 11 and fig.get_size_inches()[0] <= plots.GALLERY_PANEL_IN * plots.GALLERY_COLUMNS
    assert "#10" in fig.axes[10].get_title()  # best first, row by row
    plt.close(fig)


def test_confusion_matrix_counts():
    names = ["cat", "dog", "bird"]
    fig = plots.confusion_matrix_plot(["cat", "cat", "dog", "bird"], [0, 1, 1, 2], names,
                                      normalize=False)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(),
                                  [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert "75.0%" in ax.get_title()
    fig = plots.confusion_matrix_plot([0, 0, 1], [0, 1, 1], names)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array()[0], [0.5, 0.5, 0])
    with pytest.raises(ValueError, match="'fish'"):
        plots.confusion_matrix_plot(["fish"], ["cat"], names)


def test_loss_curve_plots_every_run():
    fig = plots.loss_curve([3.0, 2.0, 1.5, 1.0])
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [3.0, 2.0, 1.5, 1.0])
    fig = plots.loss_curve({"symmetric": [2, 1, 0.5], "one-way": [2, 1.5, 1.2]}, smooth=2)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["symmetric", "one-way"]
    assert "faint: each step" in fig.axes[0].get_legend().get_title().get_text()
    fig = plots.loss_curve([3.0, 2.0, 1.5, 1.0, 0.9], smooth=2)  # one run: both lines named
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["each step", "mean of 2 steps"]
    with pytest.raises(ValueError):
        plots.loss_curve([])


def test_matrix_cells_never_show_minus_zero():
    assert [plots.cell_text(v) for v in (-0.001, -0.0, 0.004, -0.006, -1.25)] == [
        "0.00", "0.00", "0.00", "-0.01", "-1.25"]
    fig = plots.similarity_heatmap(np.array([[1.0, -0.001], [-0.0042, 0.3]]))
    texts = [t.get_text() for t in fig.axes[0].texts]
    plt.close(fig)
    assert texts == ["1.00", "0.00", "0.00", "0.30"]
