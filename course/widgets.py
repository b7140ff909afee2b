"""ipywidgets playgrounds for the notebooks.

:class:`ZeroShotPlayground`: pick a picture (or upload one), type labels separated by commas and
see CLIP's probability for each. Anything a learner can type or upload ends in a short message
inside the widget, never in a traceback.

:class:`SearchBox`: type a query and see the best images of an :class:`EmbeddingIndex`.

:class:`WiseFTExplorer`: slide WiSE-FT's alpha between a zero-shot and a fine-tuned model and
watch accuracy and example predictions move on every domain.

Each one shows its first result as soon as it is built, clears its figure when it shows a problem
(no stale chart under an error), and displays with a plain-text and a static HTML copy of its
current view beside the live widget, for every place the widget itself cannot render.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from PIL import Image

from course.data.images import load_image
from course.models import CLIP
from course.retrieval import EmbeddingIndex
from course.zeroshot import DEFAULT_TEMPLATES, ZeroShotClassifier


def parse_labels(text: str) -> list[str]:
    """Labels from a comma- or newline-separated string: stripped, empty ones and repeats dropped.

    Raises:
        ValueError: no label at all.
    """
    parts = [part.strip() for line in str(text).splitlines() for part in line.split(",")]
    labels = list(dict.fromkeys(part for part in parts if part))
    if not labels:
        raise ValueError("Type at least one label, e.g. 'a cat, a dog, a red circle'.")
    return labels


def image_from_upload(value: Any) -> tuple[str, Image.Image]:
    """The name and image of a ``FileUpload`` value (ipywidgets 8 tuple or 7 dict).

    Raises:
        ValueError: nothing uploaded, or the file is not an image (``ImageLoadError`` names it).
    """
    if isinstance(value, Mapping):  # ipywidgets 7: {name: {"content": ..., "metadata": ...}}
        files = [{"name": name, **entry} for name, entry in value.items()]
    else:
        files = list(value or ())
    if not files:
        raise ValueError("No file uploaded yet.")
    upload = files[-1]
    name = str(upload.get("name") or upload.get("metadata", {}).get("name") or "upload")
    content = bytes(upload.get("content") or b"")
    image = load_image(content)  # raises ImageLoadError (a ValueError) for non-images
    return name, image


def probability_figure(labels: Sequence[str], probs: Sequence[float] | torch.Tensor,
                       image: Image.Image | None = None, title: str = "") -> Figure:
    """Horizontal probability bars, most probable on top, with the image beside them."""
    values = [float(p) for p in (probs.tolist() if isinstance(probs, torch.Tensor) else probs)]
    order = sorted(range(len(labels)), key=lambda k: values[k])
    import matplotlib.pyplot as plt

    height = max(2.2, 0.35 * len(labels) + 1.0)
    if image is not None:
        fig, (ax_img, ax) = plt.subplots(1, 2, figsize=(8.5, height),
                                         gridspec_kw={"width_ratios": [1, 2.2]})
        ax_img.imshow(image)
        ax_img.set_axis_off()
    else:
        fig, ax = plt.subplots(figsize=(6.0, height))
    bars = ax.barh([labels[k] for k in order], [values[k] for k in order], color="#4c72b0")
    bars[-1].set_color("#dd8452")  # the prediction
    for bar, k in zip(bars, order):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{values[k]:.1%}",
                va="center", fontsize=9)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("probability")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    # Closed so that pyplot never shows it a second time (or, from a widget callback, in some
    # later cell); displaying the returned figure still works.
    plt.close(fig)
    return fig


def describe_probabilities(labels: Sequence[str], probs: Sequence[float] | torch.Tensor,
                           top: int = 3) -> str:
    """A probability chart in words, for its alt text: the ``top`` labels, most probable first."""
    values = [float(p) for p in (probs.tolist() if isinstance(probs, torch.Tensor) else probs)]
    order = sorted(range(len(labels)), key=lambda k: -values[k])[:top]
    return (f"bar chart of the probabilities of {len(labels)} labels; highest: "
            + ", ".join(f"'{labels[k]}' {values[k]:.1%}" for k in order))


class _Panel:
    """What every playground shares: a message line, an output showing one figure, and a display
    that carries readable copies (plain text, static HTML with the last figure) beside the widget.
    """

    #: What the static copies call this panel.
    title = "Playground"
    message: Any
    output: Any
    widget: Any
    #: The figure the output shows now (None when it is empty).
    view: Figure | None = None
    _said: tuple[str, bool] = ("", False)
    _view_html: tuple[Figure | None, str] = (None, "")
    #: The settings whose result is shown now (None after a problem): a button click that asks
    #: again for what is on screen does nothing. Typing and then clicking the button would
    #: otherwise run twice: leaving the text box commits its value (one run), then the click.
    _shown: tuple[tuple[str, str], ...] | None = None

    def _run_if_new(self) -> None:
        """Run unless the result for the current settings is already shown."""
        if tuple(self.settings()) != self._shown:
            self.run()  # type: ignore[attr-defined]  # every panel has one

    def _shown_now(self) -> None:
        """Record that the current settings' result is on screen."""
        self._shown = tuple(self.settings())

    def settings(self) -> list[tuple[str, str]]:
        """``(name, value)`` of each input as it is now, for the static copies."""
        return []

    def say(self, text: str, error: bool = True) -> None:
        """Show a short message above the output (red for problems)."""
        import html

        colour = "#a50e0e" if error else "#5f6368"
        self.message.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"
        self._said = (text, error)

    def show(self, fig: Figure) -> None:
        """Replace what the output shows with ``fig`` (before the message that describes it:
        updates reach the page in order, so a new message means its figure is there)."""
        from course.display import figure_bundle

        self.view = fig
        data, metadata = figure_bundle(fig, self._alt(said=False))
        # Set as the output widget's state, not displayed inside ``with self.output``: from a
        # callback, a display reaches the page as a message that the front end routes to the
        # output widget only once it has learnt the widget's new msg_id; one that arrives first
        # lands in JupyterLab's Log Console instead of the widget. State updates have no race.
        self.output.outputs = ({"output_type": "display_data", "data": data,
                                "metadata": metadata},)

    def fail(self, text: str) -> None:
        """Show a problem and clear the output, so that no stale figure reads as the answer."""
        self.say(text)
        self.output.clear_output()
        self.output.outputs = ()
        self.view = None
        self._shown = None

    def _text(self) -> str:
        lines = [f"{self.title} (a live widget: run the notebook to use it)"]
        lines += [f"  {name}: {value}" for name, value in self.settings()]
        text, error = self._said
        if text:
            lines.append(f"  {'! ' if error else ''}{text}")
        return "\n".join(lines)

    def _alt(self, said: bool = True) -> str:
        """The text alternative of the figure shown: which panel, for which inputs (and what the
        panel says about it, once it has said it)."""
        return "; ".join([self.title, *(f"{n}: {v}" for n, v in self.settings()),
                          *([self._said[0]] if said and self._said[0] else [])])

    def _html(self) -> str:
        from course.display import figure_html, static_copy_html

        fig, cached = self._view_html
        if fig is not self.view:  # encode each figure once, however often it is displayed
            cached = figure_html(self.view, alt=self._alt()) if self.view is not None else ""
            self._view_html = (self.view, cached)
        text, error = self._said
        return static_copy_html(self.title, self.settings(), f"{'! ' if error else ''}{text}",
                                cached, "A saved copy of this widget as it was when the cell ran: "
                                "run the notebook to use it.")

    def __repr__(self) -> str:
        return self._text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live widget with plain-text and static HTML copies (see :mod:`course.display`)."""
        from course.display import widget_bundle

        return widget_bundle(self.widget, self._text(), self._html())


class ZeroShotPlayground(_Panel):
    """Pick or upload an image, type labels, see zero-shot probabilities.

    Args:
        clip: a model from :func:`course.load_clip`, or several by name (e.g. ``{"pocket": ...,
            "pocket-lm": ...}``): then a drop-down lets the learner pick the model, and the
            same image and labels are classified again by the one picked.
        images: the pictures offered in the drop-down, by name.
        labels: the labels typed in at the start (classified at once).
        templates: prompt templates (``{}`` is replaced by each label).
    """

    UPLOADED = "(your upload)"
    title = "Zero-shot playground"

    def __init__(self, clip: CLIP | Mapping[str, CLIP], images: Mapping[str, Image.Image],
                 labels: str = "", templates: str | Sequence[str] = DEFAULT_TEMPLATES) -> None:
        import ipywidgets as w

        self.models = {clip.name: clip} if isinstance(clip, CLIP) else dict(clip)
        if not self.models:
            raise ValueError("clip must be a model or a non-empty {name: model} mapping")
        self.clip = next(iter(self.models.values()))
        self.model_picker = w.Dropdown(options=list(self.models), description="model")
        self.model_picker.observe(self._on_model, names="value")
        self.images = dict(images)
        self.templates = templates
        self.picker = w.Dropdown(options=list(self.images), description="image")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="upload")
        # continuous_update=False: the value changes on Enter (or leaving the box), not per key
        self.labels = w.Text(value=labels, description="labels", continuous_update=False,
                             placeholder="comma-separated, e.g. a cat, a dog",
                             layout=w.Layout(width="60%"))
        self.button = w.Button(description="classify", button_style="primary")
        self.message = w.HTML()
        self.output = w.Output()
        self.picker.observe(lambda change: self.run(), names="value")
        self.upload.observe(self._on_upload, names="value")
        self.labels.observe(lambda change: self._run_if_new(), names="value")  # Enter
        self.button.on_click(lambda button: self._run_if_new())
        pickers = [self.model_picker] if len(self.models) > 1 else []
        self.widget = w.VBox([w.HBox([*pickers, self.picker, self.upload]),
                              w.HBox([self.labels, self.button]), self.message, self.output])
        if labels.strip():
            self.run()  # the first result shows at once
        else:
            self.say("Type labels separated by commas and press Enter or classify.", error=False)

    def settings(self) -> list[tuple[str, str]]:
        """The chosen image and the typed labels (and the model, when there is a choice)."""
        model = [("model", self.clip.name)] if len(self.models) > 1 else []
        return [*model, ("image", str(self.picker.value)), ("labels", str(self.labels.value))]

    def _on_model(self, change: Mapping[str, Any]) -> None:
        self.clip = self.models[change["new"]]
        self.run()

    def _on_upload(self, change: Mapping[str, Any]) -> None:
        try:
            name, image = image_from_upload(change["new"])
        except ValueError as error:
            self.fail(str(error))
            return
        self.images[f"{self.UPLOADED} {name}"] = image
        self.picker.options = list(self.images)
        self.picker.value = f"{self.UPLOADED} {name}"  # triggers run()

    def run(self) -> dict[str, float] | None:
        """Classify the chosen image with the typed labels; returns label -> probability."""
        try:
            labels = parse_labels(self.labels.value)
            name = self.picker.value
            if name is None:
                raise ValueError("Pick or upload an image first.")
            image = self.images[name]
            classifier = ZeroShotClassifier(self.clip, labels, self.templates)
            probs = classifier.predict_proba([image])[0]
        except ValueError as error:
            self.fail(str(error))
            return None
        except Exception as error:  # noqa: BLE001 - a playground shows problems, it never crashes
            self.fail(f"Could not classify: {type(error).__name__}: {error}")
            return None
        self.show(probability_figure(labels, probs, image, title=name))
        self.say(f"{self.clip.name}: {len(labels)} label(s)", error=False)
        self._shown_now()
        return dict(zip(labels, probs.tolist()))


class SearchBox(_Panel):
    """Type a text query, see the ``k`` best images of an index (text->image retrieval).

    Args:
        clip: the model that built ``index``.
        index: an :class:`EmbeddingIndex` of image embeddings.
        images: the indexed images, one per row of ``index``, in the same order.
        query: the query typed in at the start (its results show at once).
        k: the number of results shown at the start.
    """

    title = "Search box"

    def __init__(self, clip: CLIP, index: EmbeddingIndex, images: Sequence[Image.Image],
                 query: str = "", k: int = 5) -> None:
        import ipywidgets as w

        if len(images) != len(index):
            raise ValueError(f"got {len(images)} images for an index of {len(index)} embeddings; "
                             "pass the indexed images, in index order")
        self.clip, self.index, self.images = clip, index, list(images)
        self.query = w.Text(value=query, description="query", continuous_update=False,
                            placeholder="e.g. a red circle", layout=w.Layout(width="60%"))
        self.k = w.IntSlider(value=min(k, len(index), 10), min=1, max=min(10, len(index)),
                             description="k")
        self.button = w.Button(description="search", button_style="primary")
        self.message = w.HTML()
        self.output = w.Output()
        self.query.observe(lambda change: self._run_if_new(), names="value")  # Enter, leaving
        self.k.observe(lambda change: self._run_if_new(), names="value")
        self.button.on_click(lambda button: self._run_if_new())
        self.widget = w.VBox([w.HBox([self.query, self.button]), self.k, self.message, self.output])
        if query.strip():
            self.run()
        else:
            self.say("Type a query and press Enter or search.", error=False)

    def settings(self) -> list[tuple[str, str]]:
        """The typed query and k."""
        return [("query", str(self.query.value)), ("k", str(self.k.value))]

    def run(self) -> list[tuple[int, float]] | None:
        """Search for the typed query; returns ``(row, cosine)`` of each hit, best first."""
        query = str(self.query.value).strip()
        if not query:
            self.fail("Type a query first, e.g. 'a red circle'.")
            return None
        try:
            result = self.index.search_text(self.clip, query, k=int(self.k.value))
        except Exception as error:  # noqa: BLE001 - a search box shows problems, it never crashes
            self.fail(f"Could not search: {type(error).__name__}: {error}")
            return None
        rows, scores = result.indices[0].tolist(), result.scores[0].tolist()
        captions = None
        if result.items is not None and all(isinstance(item, str) for item in result.items[0]):
            captions = result.items[0]
        import matplotlib.pyplot as plt

        from course.plots import retrieval_gallery

        fig = retrieval_gallery(query, [self.images[r] for r in rows], scores, captions=captions)
        plt.close(fig)  # displayed below, never again by pyplot
        self.show(fig)
        self.say(f"{self.clip.name}: {len(rows)} best of {len(self.index)} images for {query!r}",
                 error=False)
        self._shown_now()
        return list(zip(rows, scores))


class WiseFTExplorer(_Panel):
    """Slide WiSE-FT's ``alpha`` and see each domain's accuracy and example predictions.

    Args:
        zeroshot: the model before fine-tuning (``alpha = 0``).
        finetuned: the fine-tuned model (``alpha = 1``), same architecture.
        classnames: the classes of the zero-shot classifier.
        domains: ``{name: (images, labels)}`` to evaluate on, e.g. clean and scan test images.
        templates: prompt templates for the class embeddings.
        examples: how many images of each domain are shown with their prediction.
        alpha: the starting position of the slider (evaluated at once).

    Each alpha is evaluated once and remembered, so sliding back is instant.
    """

    title = "WiSE-FT explorer"

    def __init__(self, zeroshot: CLIP, finetuned: CLIP, classnames: Sequence[str],
                 domains: Mapping[str, tuple[Sequence[Image.Image], Sequence[str]]],
                 templates: str | Sequence[str] = DEFAULT_TEMPLATES, examples: int = 6,
                 alpha: float = 0.5) -> None:
        import ipywidgets as w

        if not domains:
            raise ValueError("give at least one domain: {name: (images, labels)}")
        for name, (images, labels) in domains.items():
            if len(images) != len(labels) or not len(images):
                raise ValueError(f"domain {name!r} needs as many labels as images (and at least "
                                 f"one); got {len(images)} images and {len(labels)} labels")
        self.zeroshot, self.finetuned = zeroshot, finetuned
        self.classnames, self.templates = list(classnames), templates
        self.domains = {name: (list(images), list(labels)) for name, (images, labels) in domains.items()}
        self.examples = examples
        self._cache: dict[float, dict[str, tuple[float, list[str]]]] = {}
        self.slider = w.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.1, readout_format=".1f",
                                    description="alpha", continuous_update=False)
        self.message = w.HTML()
        self.output = w.Output()
        self.slider.observe(lambda change: self.run(), names="value")
        self.widget = w.VBox([self.slider, self.message, self.output])
        self.run()

    def settings(self) -> list[tuple[str, str]]:
        """The slider's alpha."""
        return [("alpha", f"{float(self.slider.value):.1f}")]

    def evaluate(self, alpha: float) -> dict[str, tuple[float, list[str]]]:
        """``{domain: (accuracy, predictions)}`` of the WiSE-FT model at ``alpha`` (cached)."""
        from course.adaptation import wise_ft
        from course.metrics import zero_shot_accuracy

        key = round(float(alpha), 6)
        if key not in self._cache:
            model = wise_ft(self.zeroshot, self.finetuned, key)
            classifier = ZeroShotClassifier(model, self.classnames, self.templates)
            out: dict[str, tuple[float, list[str]]] = {}
            for name, (images, labels) in self.domains.items():
                embeds = classifier.embed(images)  # encoded once, both scored and shown
                out[name] = (zero_shot_accuracy(classifier, embeds, labels), classifier.predict(embeds))
            self._cache[key] = out
        return self._cache[key]

    def run(self) -> dict[str, float] | None:
        """Evaluate at the slider's alpha and redraw; returns ``{domain: accuracy}``."""
        alpha = float(self.slider.value)
        if round(alpha, 6) not in self._cache:  # seconds of work: say so, not a stale figure
            self.say(f"Evaluating alpha = {alpha:.1f} on every domain...", error=False)
        try:
            results = self.evaluate(alpha)
        except Exception as error:  # noqa: BLE001 - an explorer shows problems, it never crashes
            self.fail(f"Could not evaluate alpha={alpha:g}: {type(error).__name__}: {error}")
            return None
        self.show(self.figure(alpha, results))
        self.say("  |  ".join(f"{name}: {acc:.1%}" for name, (acc, _) in results.items()), error=False)
        return {name: acc for name, (acc, _) in results.items()}

    def figure(self, alpha: float, results: Mapping[str, tuple[float, list[str]]]) -> Figure:
        """Example images of each domain, titled with the prediction (✓ green right, ✗ red wrong)."""
        import matplotlib.pyplot as plt

        rows, cols = len(self.domains), max(1, self.examples)
        fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.6 * rows + 0.4), squeeze=False)
        for row, (name, (images, labels)) in enumerate(self.domains.items()):
            accuracy, predictions = results[name]
            for col in range(cols):
                ax = axes[row, col]
                ax.set_axis_off()
                if col >= len(images):
                    continue
                ax.imshow(images[col])
                right = predictions[col] == labels[col]
                # a mark as well as a colour: red and green alone fail colour-blind readers
                ax.set_title(f"{'✓' if right else '✗'} {predictions[col]}", fontsize=9,
                             color="tab:green" if right else "tab:red")
            axes[row, 0].text(-0.08, 0.5, f"{name}\n{accuracy:.0%}", transform=axes[row, 0].transAxes,
                              ha="right", va="center", fontsize=9)
        fig.suptitle(f"WiSE-FT alpha = {alpha:.1f} (0 = zero-shot, 1 = fine-tuned)", fontsize=10)
        fig.tight_layout()
        plt.close(fig)  # displayed by run(), never again by pyplot
        return fig


class FigureSlider(_Panel):
    """A slider over chosen values and the figure ``draw(value)`` makes, e.g. a temperature.

    The slider offers exactly ``values`` (so 0.07 reads "0.07", not the 0.0707946 of a log
    slider), its label is shown whole, and the display carries static copies like every panel.

    Args:
        draw: makes the figure for one value (closed with ``plt.close`` or not, either works).
        values: the values offered, in order.
        value: the starting value (drawn at once); default the first.
        label: what the slider sets, e.g. ``"temperature τ"``.
        title: what the static copies call the panel.
    """

    def __init__(self, draw: Callable[[Any], Figure], values: Sequence[Any], value: Any = None,
                 label: str = "value", title: str = "Figure slider") -> None:
        import ipywidgets as w

        options = list(values)
        if not options:
            raise ValueError("a FigureSlider needs at least one value to offer")
        start = options[0] if value is None else value
        if start not in options:
            raise ValueError(f"the starting value {start!r} is not one of the values {options}")
        self.draw, self.title = draw, title
        self.slider = w.SelectionSlider(options=[(f"{v:g}" if isinstance(v, float) else str(v), v)
                                                 for v in options],
                                        value=start, description=label, continuous_update=False,
                                        style={"description_width": "initial"},
                                        layout=w.Layout(width="420px"))
        self.message = w.HTML()
        self.output = w.Output()
        self.slider.observe(lambda change: self.run(), names="value")
        self.widget = w.VBox([self.slider, self.message, self.output])
        self.run()

    def settings(self) -> list[tuple[str, str]]:
        """The slider's label and value, as the slider shows it."""
        return [(str(self.slider.description), str(self.slider.label))]

    def run(self) -> Figure | None:
        """Draw the figure for the slider's value; returns it (None on a problem)."""
        import matplotlib.pyplot as plt

        try:
            fig = self.draw(self.slider.value)
        except Exception as error:  # noqa: BLE001 - a slider shows problems, it never crashes
            self.fail(f"Could not draw {self.slider.label}: {type(error).__name__}: {error}")
            return None
        plt.close(fig)  # shown in the output below, never again by pyplot
        self.show(fig)
        self.say(f"{self.slider.description} = {self.slider.label}", error=False)
        return fig
