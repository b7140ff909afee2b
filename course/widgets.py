"""ipywidgets playgrounds for the notebooks.

:class:`ZeroShotPlayground`: pick a picture (or upload one), type labels separated by commas and
see CLIP's probability for each. Anything a learner can type or upload ends in a short message
inside the widget, never in a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from PIL import Image

from course.data.images import load_image
from course.models import CLIP
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
                va="center", fontsize=8)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("probability")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    # Closed so that pyplot never shows it a second time (or, from a widget callback, in some
    # later cell); displaying the returned figure still works.
    plt.close(fig)
    return fig


class ZeroShotPlayground:
    """Pick or upload an image, type labels, see zero-shot probabilities.

    Args:
        clip: a model from :func:`course.load_clip`.
        images: the pictures offered in the drop-down, by name.
        labels: the labels typed in at the start.
        templates: prompt templates (``{}`` is replaced by each label).
    """

    UPLOADED = "(your upload)"

    def __init__(self, clip: CLIP, images: Mapping[str, Image.Image], labels: str = "",
                 templates: str | Sequence[str] = DEFAULT_TEMPLATES) -> None:
        import ipywidgets as w

        self.clip = clip
        self.images = dict(images)
        self.templates = templates
        self.picker = w.Dropdown(options=list(self.images), description="image")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="upload")
        self.labels = w.Text(value=labels, description="labels",
                             placeholder="comma-separated, e.g. a cat, a dog",
                             layout=w.Layout(width="60%"))
        self.button = w.Button(description="classify", button_style="primary")
        self.message = w.HTML()
        self.output = w.Output()
        self.picker.observe(lambda change: self.run(), names="value")
        self.upload.observe(self._on_upload, names="value")
        self.button.on_click(lambda button: self.run())
        self.widget = w.VBox([w.HBox([self.picker, self.upload]),
                              w.HBox([self.labels, self.button]), self.message, self.output])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _on_upload(self, change: Mapping[str, Any]) -> None:
        try:
            name, image = image_from_upload(change["new"])
        except ValueError as error:
            self.say(str(error))
            return
        self.images[f"{self.UPLOADED} {name}"] = image
        self.picker.options = list(self.images)
        self.picker.value = f"{self.UPLOADED} {name}"  # triggers run()

    def say(self, text: str, error: bool = True) -> None:
        """Show a short message above the plot (red for problems)."""
        import html

        colour = "#a50e0e" if error else "#5f6368"
        self.message.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

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
            self.say(str(error))
            return None
        except Exception as error:  # noqa: BLE001 - a playground shows problems, it never crashes
            self.say(f"Could not classify: {type(error).__name__}: {error}")
            return None
        self.say(f"{self.clip.name}: {len(labels)} label(s)", error=False)
        fig = probability_figure(labels, probs, image, title=name)
        from IPython.display import display

        with self.output:
            self.output.clear_output(wait=True)
            display(fig)
        return dict(zip(labels, probs.tolist()))
