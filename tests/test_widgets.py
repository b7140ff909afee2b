"""The zero-shot playground: bad uploads and empty label boxes become messages, not tracebacks."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image

pytest.importorskip("ipywidgets")

from course.data import shapes
from course.retrieval import EmbeddingIndex
from course.widgets import SearchBox, ZeroShotPlayground, image_from_upload, parse_labels
from course.zeroshot import ZeroShotClassifier


def _upload(name: str, content: bytes) -> tuple[dict, ...]:
    return ({"name": name, "type": "", "size": len(content), "content": memoryview(content),
             "last_modified": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)},)


def _png() -> bytes:
    buffer = io.BytesIO()
    shapes.generate(1, seed=5).images[0].save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def playground(pocket):
    data = shapes.generate(2, seed=1)
    images = {label.classname: image for image, label, _ in data}
    return ZeroShotPlayground(pocket, images, labels="red circle, blue square")


def test_parse_labels():
    assert parse_labels(" a cat, a dog ,, a cat\nred circle") == ["a cat", "a dog", "red circle"]
    for empty in ["", " , ,", "\n"]:
        with pytest.raises(ValueError, match="at least one label"):
            parse_labels(empty)


def test_image_from_upload_reads_images_and_names_problems():
    name, image = image_from_upload(_upload("shape.png", _png()))
    assert name == "shape.png" and isinstance(image, Image.Image) and image.mode == "RGB"
    with pytest.raises(ValueError, match="not an image"):
        image_from_upload(_upload("notes.txt", b"just some text"))
    with pytest.raises(ValueError, match="No file"):
        image_from_upload(())


def test_run_gives_probabilities(playground):
    probs = playground.run()
    assert set(probs) == {"red circle", "blue square"}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert "pocket" in playground.message.value


def test_empty_label_box_shows_a_message(playground):
    playground.labels.value = "  ,  "
    assert playground.run() is None
    assert "at least one label" in playground.message.value


def test_non_image_upload_shows_a_message(playground):
    options = list(playground.picker.options)
    playground.upload.value = _upload("notes.txt", b"just some text")
    assert "not an image" in playground.message.value
    assert list(playground.picker.options) == options  # nothing added


def test_image_upload_is_classified(playground):
    playground.upload.value = _upload("mine.png", _png())
    assert playground.picker.value == f"{ZeroShotPlayground.UPLOADED} mine.png"
    assert "2 label(s)" in playground.message.value


@pytest.fixture()
def search_box(pocket):
    from course import encode_images

    data = shapes.generate(12, seed=3)
    index = EmbeddingIndex(encode_images(pocket, data.images),
                           items=[label.classname for label in data.labels])
    return SearchBox(pocket, index, data.images, query="a red circle", k=3), data


def test_search_box_finds_the_top_hits(search_box):
    box, _ = search_box
    hits = box.run()
    assert len(hits) == 3 and [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    expected = box.index.search_text(box.clip, "a red circle", k=3).indices[0].tolist()
    assert [row for row, _ in hits] == expected
    assert "3 best of 12" in box.message.value


def test_search_box_empty_query_shows_a_message(search_box):
    box, _ = search_box
    for empty in ("", "   "):
        box.query.value = empty  # observed: runs the search, which must not raise
        assert box.run() is None
        assert "Type a query" in box.message.value


def test_search_box_needs_one_image_per_row(pocket, search_box):
    box, data = search_box
    with pytest.raises(ValueError, match="11 images for an index of 12"):
        SearchBox(pocket, box.index, data.images[:11])


@pytest.fixture(scope="module")
def explorer(pocket):
    from course import transfer
    from course.adaptation import shape_templates
    from course.widgets import WiseFTExplorer

    scans = shapes.generate(24, seed=21, domain="scan")
    tuned = transfer.finetune_contrastive(pocket, scans.images, [lab.shape for lab in scans.labels],
                                          steps=5, batch_size=8, lr=1e-3, progress=False).clip
    domains = {d: (data.images, [lab.shape for lab in data.labels]) for d, data in
               (("clean", shapes.generate(12, seed=22)),
                ("scan", shapes.generate(12, seed=22, domain="scan")))}
    return WiseFTExplorer(pocket, tuned, shapes.SHAPES, domains, templates=shape_templates(),
                          examples=4, alpha=0.0)


def test_wise_ft_explorer_ends_match_the_two_models(pocket, explorer):
    from course.adaptation import accuracy

    for alpha, clip in ((0.0, pocket), (1.0, explorer.finetuned)):
        explorer.slider.value = alpha  # observed: evaluates and redraws
        classifier = ZeroShotClassifier(clip, shapes.SHAPES, explorer.templates)
        expected = {d: accuracy(classifier.predict(images), labels)
                    for d, (images, labels) in explorer.domains.items()}
        assert explorer.run() == expected
        assert f"clean: {expected['clean']:.1%}" in explorer.message.value
    assert set(explorer._cache) == {0.0, 1.0}  # each alpha evaluated once
    fig = explorer.figure(1.0, explorer.evaluate(1.0))
    assert len(fig.axes) == 2 * 4 and "alpha = 1.0" in fig._suptitle.get_text()


def test_wise_ft_explorer_reports_problems_instead_of_raising(pocket, explorer, monkeypatch):
    from course.widgets import WiseFTExplorer

    def broken(alpha):
        raise RuntimeError("weights of another architecture")

    monkeypatch.setattr(explorer, "evaluate", broken)
    explorer.slider.value = 0.5
    assert explorer.run() is None and "another architecture" in explorer.message.value
    with pytest.raises(ValueError, match="at least one domain"):
        WiseFTExplorer(pocket, pocket, shapes.SHAPES, {})
    with pytest.raises(ValueError, match="2 images and 1 labels"):
        WiseFTExplorer(pocket, pocket, shapes.SHAPES, {"clean": ([1, 2], ["circle"])})


# -- what a learner sees: the first result at once, no stale chart, readable copies ----------------

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _assert_readable_bundle(panel, title, *words):
    bundle = panel._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == panel.widget.model_id  # the live widget
    text, html = bundle["text/plain"], bundle["text/html"]
    assert text.startswith(title) and "run the notebook" in text
    assert "VBox(" not in text and "children=" not in text  # not the raw widget repr
    assert title in html and "<script" not in html
    for word in words:  # "name: value" rows are "<b>name</b>: value" in the HTML copy
        assert word in text and word.split(": ")[-1] in html
    return bundle


def test_playground_shows_its_first_result_at_once(playground):
    assert playground.view is not None  # built with labels: classified without a click
    assert "pocket: 2 label(s)" in playground.message.value
    html = _assert_readable_bundle(playground, "Zero-shot playground", "red circle, blue square",
                                   "pocket: 2 label(s)")["text/html"]
    assert html.count('<img src="data:image/png;base64,') == 1  # the chart, as a static copy


def test_playground_without_labels_starts_with_a_hint_not_an_error(pocket):
    panel = ZeroShotPlayground(pocket, {"shape": shapes.generate(1, seed=2).images[0]})
    assert panel.view is None and "press Enter or classify" in panel.message.value
    assert "#a50e0e" not in panel.message.value  # grey, not red
    assert "<img" not in panel._repr_mimebundle_()["text/html"]


def test_playground_error_clears_the_previous_chart(playground, monkeypatch):
    cleared = []
    monkeypatch.setattr(playground.output, "clear_output", lambda *a, **k: cleared.append(k))
    assert playground.view is not None
    playground.labels.value = " , "
    assert playground.run() is None
    assert cleared and playground.view is None
    bundle = _assert_readable_bundle(playground, "Zero-shot playground", "at least one label")
    assert "<img" not in bundle["text/html"]
    assert "Traceback" not in bundle["text/plain"]


def test_search_box_shows_its_first_result_at_once(search_box):
    box, _ = search_box
    assert box.view is not None and "3 best of 12" in box.message.value
    _assert_readable_bundle(box, "Search box", "a red circle", "3 best of 12")
    box.query.value = " "
    assert box.view is None and "Type a query" in box.message.value  # and the gallery is gone


def test_search_box_without_a_query_starts_with_a_hint(pocket, search_box):
    box, data = search_box
    empty = SearchBox(pocket, box.index, data.images)
    assert empty.view is None and "Type a query and press Enter" in empty.message.value
    assert "#a50e0e" not in empty.message.value


def test_wise_ft_explorer_shows_its_first_alpha_and_clears_on_problems(pocket, explorer,
                                                                       monkeypatch):
    explorer.slider.value = 0.0
    assert explorer.view is not None
    _assert_readable_bundle(explorer, "WiSE-FT explorer", "alpha: 0.0", "clean:")
    said = []
    monkeypatch.setattr(explorer, "say", lambda text, error=True: said.append(text))
    explorer.slider.value = 0.6  # not evaluated yet: the learner is told it is working
    assert said[0].startswith("Evaluating alpha = 0.6") and said[-1].startswith("clean:")
    said.clear()
    explorer.slider.value = 0.0  # remembered: no message in between
    assert len(said) == 1 and said[0].startswith("clean:")
    monkeypatch.undo()
    monkeypatch.setattr(explorer, "evaluate", lambda alpha: 1 / 0)
    explorer.slider.value = 0.3
    assert explorer.view is None and "ZeroDivisionError" in explorer.message.value


def test_static_copy_escapes_what_was_typed(pocket):
    panel = ZeroShotPlayground(pocket, {"shape": shapes.generate(1, seed=2).images[0]},
                               labels="<b>x</b>, <script>")
    html = panel._repr_mimebundle_()["text/html"]
    assert "<script>" not in html and "&lt;script&gt;" in html


# -- one run per request, Enter where there is a text box, marks beyond colour ----------------------

def _count_runs(panel, monkeypatch) -> list[int]:
    runs: list[int] = []
    real = type(panel).run

    def counted(self):
        runs.append(1)
        return real(self)

    monkeypatch.setattr(type(panel), "run", counted)
    return runs


def test_typing_then_clicking_search_runs_once(search_box, monkeypatch):
    box, _ = search_box
    runs = _count_runs(box, monkeypatch)
    box.query.value = "a blue square"  # leaving the box commits the value: one search
    box.button.click()                 # the click asks for what is on screen: nothing more
    assert len(runs) == 1 and "a blue square" in box.message.value
    box.button.click()  # still the same: no run
    box.query.value = "a red circle"
    assert len(runs) == 2
    box.k.value = 2     # a new k is a new search
    assert len(runs) == 3 and "2 best of 12" in box.message.value


def test_enter_in_the_label_box_classifies_and_a_click_after_it_does_not_repeat(playground,
                                                                                monkeypatch):
    runs = _count_runs(playground, monkeypatch)
    assert playground.labels.continuous_update is False  # the value changes on Enter, not per key
    playground.labels.value = "a red circle, a cat, a dog"  # what Enter commits
    assert len(runs) == 1 and "3 label(s)" in playground.message.value
    playground.button.click()
    assert len(runs) == 1
    playground.labels.value = ""  # a problem: the next click tries again
    playground.button.click()
    assert len(runs) == 3 and "Type at least one label" in playground.message.value


def test_explorer_marks_right_and_wrong_with_a_symbol(explorer):
    fig = explorer.figure(0.0, explorer.evaluate(0.0))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles and all(t[0] in "✓✗" for t in titles)
    for ax in fig.axes:
        if ax.get_title():
            right = ax.get_title().startswith("✓")
            assert ax.title.get_color() == ("tab:green" if right else "tab:red")


def test_figure_slider_offers_exact_values_with_a_whole_label():
    import matplotlib.pyplot as plt

    from course.display import WIDGET_VIEW
    from course.widgets import FigureSlider

    drawn = []

    def draw(t):
        drawn.append(t)
        fig, ax = plt.subplots()
        ax.set_title(f"t = {t}")
        return fig

    panel = FigureSlider(draw, [0.01, 0.07, 1.0], value=0.07, label="temperature τ")
    assert drawn == [0.07] and panel.view is not None  # drawn at once
    assert panel.slider.label == "0.07" and panel.slider.description == "temperature τ"
    assert panel.slider.style.description_width == "initial"  # the label is not cut
    panel.slider.value = 1.0
    assert drawn == [0.07, 1.0] and "temperature τ = 1" in panel.message.value
    bundle = panel._repr_mimebundle_()
    assert WIDGET_VIEW in bundle and "temperature τ: 1" in bundle["text/plain"]
    assert "interactive(" not in bundle["text/plain"] and "<img" in bundle["text/html"]
    with pytest.raises(ValueError, match="not one of the values"):
        FigureSlider(draw, [0.01, 0.07], value=0.5)


def test_figure_slider_shows_a_failing_draw_as_a_message():
    from course.widgets import FigureSlider

    def draw(t):
        raise RuntimeError("bad value")

    panel = FigureSlider(draw, [1, 2])
    assert panel.view is None and "bad value" in panel.message.value


def test_static_copy_figure_has_a_text_alternative(playground):
    page = playground._repr_mimebundle_()["text/html"]
    assert 'alt="Zero-shot playground; image: ' in page and "labels: red circle, blue square" in page
    assert "2 label(s)" in page.split('alt="', 1)[1].split('"', 1)[0]


def test_a_panel_shows_its_figure_as_output_state_with_alt_text(search_box):
    """The gallery is the output widget's state (no display message that could miss the widget
    and land in JupyterLab's Log Console), with alt text and a legibility record."""
    from course.display import MEASURE_KEY

    box, _ = search_box
    box.query.value = "a green star"
    (output,) = box.output.outputs
    assert output["output_type"] == "display_data" and "image/png" in output["data"]
    alt = output["metadata"]["image/png"]["alt"]
    assert "Search box" in alt and "a green star" in alt and output["data"]["text/plain"] == alt
    assert output["metadata"][MEASURE_KEY]["smallest_pt"] >= 9
    box.query.value = " "
    assert box.output.outputs == ()  # a problem leaves no stale gallery
