"""Figures the notebooks show instead of tensor dumps. Every function returns its Figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from course.metrics import accuracy

ImageLike = Any  # PIL image, HxW(xC) array or a path



def cell_text(value: float, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals for a matrix cell, never "-0.00" (a tiny negative)."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text

def similarity_heatmap(
    similarity: torch.Tensor | np.ndarray,
    images: Sequence[ImageLike] | None = None,
    texts: Sequence[str] | None = None,
    *,
    title: str = "cosine similarity",
    annotate: bool | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """Image-text similarity matrix (rows: images, columns: texts) with thumbnails and captions.

    Args:
        similarity: ``(N_images, N_texts)`` scores, e.g. ``image_embeds @ text_embeds.T``.
        images: one thumbnail per row, drawn left of the matrix.
        texts: one caption per column, written under it.
        title: figure title.
        annotate: print each value in its cell (default: when the matrix is at most 12 x 12).
        vmin, vmax: the colour scale's ends (default: the matrix's own minimum and maximum,
            which makes small differences look large; ``-1, 1`` shows cosines on their full
            range).
    """
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    sim = _numpy(similarity)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be 2-D, got shape {sim.shape}")
    rows, cols = sim.shape
    _check_length(images, rows, "images", "rows")
    _check_length(texts, cols, "texts", "columns")
    cell = 0.6
    fig, ax = plt.subplots(figsize=(max(4.0, cols * cell + 2.5), max(3.0, rows * cell + 2.5)))
    im = ax.imshow(sim, cmap="viridis", aspect="equal", vmin=vmin, vmax=vmax)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if annotate if annotate is not None else max(rows, cols) <= 12:
        low, high = im.get_clim()
        mid = (low + high) / 2
        for (i, j), value in np.ndenumerate(sim):
            ax.text(j, i, cell_text(value), ha="center", va="center", fontsize=9,
                    color="black" if value > mid else "white")
    ax.set_xticks(range(cols))
    ax.set_xticklabels([str(t) for t in texts] if texts is not None else
                       [str(j) for j in range(cols)], rotation=45, ha="right")
    ax.set_yticks(range(rows))
    if images is not None:
        ax.set_yticklabels([])
        side = 32
        for i, image in enumerate(images):
            thumb = _pil(image)
            thumb.thumbnail((side, side))
            box = OffsetImage(np.asarray(thumb), zoom=cell * 72 / side * 0.9)
            ax.add_artist(AnnotationBbox(box, (-0.6, i), xybox=(-0.6, i), frameon=False,
                                         box_alignment=(1.0, 0.5), annotation_clip=False))
    ax.set_xlabel("texts")
    ax.set_ylabel("images", labelpad=40 if images is not None else 4)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def row_maxima_on_diagonal(matrix: torch.Tensor | np.ndarray) -> str:
    """"in k of n rows the largest value is on the diagonal": a heatmap's gist, for its alt text."""
    m = _numpy(matrix)
    n = min(m.shape)
    hits = int((m[:n].argmax(axis=1) == np.arange(n)).sum())
    return f"in {hits} of {n} rows the largest value is on the diagonal"


def embedding_map(
    embeds: torch.Tensor | np.ndarray,
    labels: Sequence[Any],
    *,
    groups: Sequence[str] | None = None,
    palette: Mapping[str, Any] | None = None,
    title: str = "embeddings (PCA)",
) -> Figure:
    """2-D PCA projection of embeddings, coloured by label.

    Args:
        embeds: ``(N, D)`` embeddings.
        labels: one label per row (colour).
        groups: optional second grouping per row (marker), e.g. ``"image"``/``"text"`` to show
            both modalities in one map.
        palette: optional colour per label (any matplotlib colour), e.g. so the "pink" points
            are drawn pink; labels it does not list take colours from the default cycle.
        title: figure title.
    """
    import matplotlib.pyplot as plt

    x = _numpy(embeds).astype(np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embeds must be (N, D) with N >= 2, got shape {x.shape}")
    _check_length(labels, len(x), "labels", "embeddings")
    _check_length(groups, len(x), "groups", "embeddings")
    points, explained = pca_2d(x)
    labels = [str(v) for v in labels]
    names = list(dict.fromkeys(labels))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20" if len(names) <= 20 else "turbo")
    colours = {n: cmap(k / max(1, len(names) - 1)) if len(names) > 20 else cmap(k)
               for k, n in enumerate(names)}
    colours.update({n: c for n, c in (palette or {}).items() if n in colours})
    group_names = list(dict.fromkeys(groups)) if groups is not None else [None]
    markers = dict(zip(group_names, "o^sDvP*Xh"))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for g in group_names:
        for n in names:
            sel = [i for i, lab in enumerate(labels)
                   if lab == n and (groups is None or groups[i] == g)]
            if sel:
                labelled = len(names) <= 20 and g == group_names[0]
                ax.scatter(points[sel, 0], points[sel, 1], s=18, alpha=0.8, color=colours[n],
                           marker=markers[g], label=n if labelled else None)
    if groups is not None:  # one grey legend entry per marker
        for g in group_names:
            ax.scatter([], [], marker=markers[g], color="gray", label=f"[{g}]")
    if len(names) <= 20 or groups is not None:
        # Beside the axes, not on them: inside, a legend of many labels covers points.
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
                  ncol=1 + min(len(names), 20) // 11)
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of ``x`` on their first two principal components; also the variance shares."""
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s**2
    explained = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    points = centred @ vt[:2].T
    if points.shape[1] < 2:  # 1-D data: put everything on a line
        points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
        explained = np.pad(explained, (0, 2 - len(explained)))
    return points, explained


#: Panels per row of :func:`retrieval_gallery` (the query counts as one), and each one's width
#: in inches: a row fits a notebook's width (course.display.DISPLAY_WIDTH_PX) unshrunk.
GALLERY_COLUMNS = 7
GALLERY_PANEL_IN = 1.25


def retrieval_gallery(
    query: str | ImageLike,
    images: Sequence[ImageLike],
    scores: Sequence[float] | torch.Tensor | np.ndarray,
    *,
    captions: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """The query (text or image) followed by the retrieved images with their scores, best first."""
    import matplotlib.pyplot as plt

    score_list = [float(s) for s in _numpy(scores).reshape(-1)]
    if not images:
        raise ValueError("no retrieved images to show")
    _check_length(score_list, len(images), "scores", "images")
    _check_length(captions, len(images), "captions", "images")
    n = len(images) + 1
    # At most GALLERY_COLUMNS panels a row: a wider figure is shrunk to the notebook's width,
    # and its captions with it (at k = 10 in one row they were about 5 px high).
    cols = min(n, GALLERY_COLUMNS)
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(GALLERY_PANEL_IN * cols, 2.3 * rows),
                             squeeze=False)
    for ax in grid.flat[n:]:
        fig.delaxes(ax)  # the last row's empty places
    axes = grid.flat[:n]
    first = axes[0]
    if isinstance(query, str):
        first.text(0.5, 0.5, _wrap(query, 13), ha="center", va="center", fontsize=9.5)
        first.set_facecolor("#f2f2f2")
        first.set_box_aspect(1)  # square, like the images beside it
    else:
        first.imshow(_pil(query))
    first.set_title("query", fontweight="bold")
    for k, (ax, image, score) in enumerate(zip(axes[1:], images, score_list)):
        ax.imshow(_pil(image))
        label = f"#{k + 1}  {score:.3f}"
        if captions is not None:
            label += "\n" + _wrap(captions[k], 15)
        ax.set_title(label, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def describe_gallery(query: str | ImageLike, scores: Sequence[float] | torch.Tensor | np.ndarray,
                     captions: Sequence[str] | None = None) -> str:
    """A :func:`retrieval_gallery` in words, for its alt text: query, hits, scores, captions."""
    score_list = [float(s) for s in _numpy(scores).reshape(-1)]
    asked = f"the query '{query}'" if isinstance(query, str) else "a query image"
    text = (f"Gallery: {asked} and its {len(score_list)} best images, scores from "
            f"{score_list[0]:.3f} down to {score_list[-1]:.3f}")
    if captions is not None:
        shown = list(dict.fromkeys(captions))
        text += "; captions: " + "; ".join(shown[:5]) + ("; ..." if len(shown) > 5 else "")
    return text + "."


def confusion_matrix_plot(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    classnames: Sequence[str],
    *,
    normalize: bool = True,
    title: str = "confusion matrix",
) -> Figure:
    """Confusion matrix (rows: true class, columns: predicted), as counts or row shares."""
    import matplotlib.pyplot as plt

    names = list(classnames)
    index = {n: k for k, n in enumerate(names)}
    true = [_class_index(v, index, len(names), "y_true") for v in _as_list(y_true)]
    pred = [_class_index(v, index, len(names), "y_pred") for v in _as_list(y_pred)]
    _check_length(pred, len(true), "y_pred", "y_true entries")
    matrix = np.zeros((len(names), len(names)))
    np.add.at(matrix, (true, pred), 1)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(7.5, max(4.0, 0.5 * len(names) + 2))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if len(names) <= 15:
        for (i, j), value in np.ndenumerate(matrix):
            if value:
                ax.text(j, i, cell_text(value) if normalize else f"{int(value)}", ha="center",
                        va="center", fontsize=9, color="white" if value > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {accuracy(pred, true)}", fontsize=10)
    fig.tight_layout()
    return fig


def loss_curve(
    losses: Sequence[float] | Mapping[str, Sequence[float]],
    *,
    smooth: int = 0,
    title: str = "training loss",
    xlabel: str = "step",
) -> Figure:
    """Loss per step for one run or several (a dict name -> losses), optionally smoothed."""
    import matplotlib.pyplot as plt

    runs = dict(losses) if isinstance(losses, Mapping) else {"loss": losses}
    if not runs or any(len(v) == 0 for v in runs.values()):
        raise ValueError("loss_curve needs at least one non-empty list of losses")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    single, any_smoothed = len(runs) == 1, False
    for name, values in runs.items():
        y = np.asarray([float(v) for v in values])
        smoothed = smooth > 1 and len(y) >= smooth
        # Every line drawn is explained: one run names its faint per-step line and its running
        # mean; several runs name their means, and the legend's title says which line is which.
        raw_label = ("each step" if single else None) if smoothed else name
        line, = ax.plot(y, alpha=0.35 if smoothed else 1.0, label=raw_label)
        if smoothed:
            avg = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            ax.plot(np.arange(smooth - 1, len(y)), avg, color=line.get_color(),
                    label=f"mean of {smooth} steps" if single else name)
            any_smoothed = True
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.set_title(title)
    if len(ax.lines) > 1:
        ax.legend(title=None if single or not any_smoothed
                  else f"faint: each step; solid: mean of {smooth} steps")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def _pil(image: ImageLike) -> Image.Image:
    from course.embeddings import to_pil

    return to_pil(image)


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, (torch.Tensor, np.ndarray)):
        return values.tolist()
    return list(values)


def _class_index(value: Any, index: dict[str, int], n: int, name: str) -> int:
    if isinstance(value, str):
        if value not in index:
            raise ValueError(f"{name} holds {value!r}, which is not among the classnames")
        return index[value]
    if not 0 <= int(value) < n:
        raise ValueError(f"{name} holds class index {value}, outside 0..{n - 1}")
    return int(value)


def _check_length(values: Sequence[Any] | None, n: int, name: str, what: str) -> None:
    if values is not None and len(values) != n:
        raise ValueError(f"got {len(values)} {name} for {n} {what}")


def _wrap(text: str, width: int = 18) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text
