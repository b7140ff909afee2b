"""ZeroShotClassifier against the Hugging Face pipeline, and its recipe, metrics and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import course.zeroshot
from course import ZeroShotClassifier, encode_images, encode_texts
from course.data import shapes

TEMPLATE = "a photo of a {}."


@pytest.fixture(scope="module")
def data():
    return shapes.generate(200, seed=21)


@pytest.fixture(scope="module")
def classifier(pocket):
    return ZeroShotClassifier(pocket, shapes.class_names(), templates=(TEMPLATE,))


@pytest.fixture(scope="module")
def image_embeds(pocket, data):
    return encode_images(pocket, data.images)


def test_same_predictions_and_probabilities_as_the_hf_pipeline(pocket, data, classifier):
    from transformers import pipeline

    pipe = pipeline("zero-shot-image-classification", model=pocket.model,
                    tokenizer=pocket.processor.tokenizer,
                    image_processor=pocket.processor.image_processor, device=pocket.device)
    names = classifier.classnames
    outputs = pipe(data.images, candidate_labels=names, hypothesis_template=TEMPLATE,
                   batch_size=40)
    assert len(outputs) == len(data) >= 200
    theirs = torch.tensor([[{o["label"]: o["score"] for o in out}[n] for n in names]
                           for out in outputs])
    ours = classifier.predict_proba(data.images)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-4)
    # Top-1 must agree wherever the pipeline's own top two are not a float32 tie.
    top2 = theirs.topk(2, dim=1).values
    decided = (top2[:, 0] - top2[:, 1]) > 1e-7
    assert decided.float().mean() >= 0.95
    pipeline_top1 = [out[0]["label"] for out in outputs]
    ours_top1 = classifier.predict(data.images)
    for i in decided.nonzero().flatten().tolist():
        assert ours_top1[i] == pipeline_top1[i], f"image {i}"


def test_class_weights_follow_the_ensembling_recipe(pocket):
    names = ["red circle", "blue square", "green star"]
    templates = ["a photo of a {}.", "a drawing of a {}", "{}"]
    clf = ZeroShotClassifier(pocket, names, templates)
    per_template = torch.stack([encode_texts(pocket, [t.format(n) for n in names])
                                for t in templates])  # (T, C, D), each row normalised
    expected = F.normalize(per_template.mean(dim=0), dim=-1)
    torch.testing.assert_close(clf.class_embeds, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(clf.class_embeds.norm(dim=1), torch.ones(3))


def test_texts_are_encoded_once(pocket, data, monkeypatch):
    clf = ZeroShotClassifier(pocket, ["red circle", "blue square"])

    def fail(*args, **kwargs):
        raise AssertionError("classifying must not re-encode the class prompts")

    monkeypatch.setattr(course.zeroshot, "encode_texts", fail)
    clf.predict(data.images[:3])
    clf.evaluate(data.images[:3], [0, 1, 0])


def test_probabilities_are_softmax_of_scaled_cosines(pocket, classifier, image_embeds):
    probs = classifier.predict_proba(image_embeds[:10])
    expected = (pocket.logit_scale * image_embeds[:10] @ classifier.class_embeds.T).softmax(1)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(1), torch.ones(10))


def test_embeddings_and_images_give_the_same_answers(classifier, data, image_embeds):
    torch.testing.assert_close(classifier.logits(image_embeds[:8]),
                               classifier.logits(data.images[:8]), atol=1e-4, rtol=1e-4)
    # Unnormalised embeddings are normalised first.
    torch.testing.assert_close(classifier.logits(3 * image_embeds[:8]),
                               classifier.logits(image_embeds[:8]), atol=1e-4, rtol=1e-4)


def test_topk_is_consistent_with_predict(classifier, image_embeds):
    top = classifier.topk(image_embeds[:20], k=5)
    assert top.indices.shape == top.probs.shape == (20, 5)
    assert [row[0] for row in top.classnames] == classifier.predict(image_embeds[:20])
    assert (top.probs[:, :-1] >= top.probs[:, 1:]).all()
    assert classifier.topk(image_embeds[:2], k=500).indices.shape == (2, 48)  # clipped


def test_evaluate_on_a_hand_built_case(classifier):
    w = classifier.class_embeds
    # Each "image" is exactly a class embedding, so it is predicted as that class.
    embeds = w[[0, 0, 1, 2]]
    labels = [0, 1, 1, 2]  # image 1 is really class 1 but looks like class 0
    scores = classifier.evaluate(embeds, labels)
    assert scores["top1"] == pytest.approx(3 / 4)
    assert scores["mean_per_class_recall"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert scores["n"] == 4
    in_top5 = 1 in classifier.logits(w[[0]]).topk(5).indices[0].tolist()
    assert scores["top5"] == pytest.approx((3 + in_top5) / 4)
    names = [classifier.classnames[k] for k in labels]
    assert classifier.evaluate(embeds, names) == scores


def test_evaluate_agrees_with_predictions(classifier, data, image_embeds):
    scores = classifier.evaluate(image_embeds, data.targets(classifier.classnames))
    predicted = classifier.predict(image_embeds)
    truth = [label.classname for label in data.labels]
    assert scores["top1"] == pytest.approx(sum(p == t for p, t in zip(predicted, truth)) / len(truth))
    assert scores["top1"] <= scores["top5"]


def test_bad_inputs_give_clear_errors(pocket, classifier, image_embeds):
    with pytest.raises(ValueError, match="empty"):
        ZeroShotClassifier(pocket, [])
    with pytest.raises(ValueError, match=r"duplicate class names: \['red circle'\]"):
        ZeroShotClassifier(pocket, ["red circle", "blue star", "red circle"])
    with pytest.raises(ValueError, match="has no"):
        ZeroShotClassifier(pocket, ["red circle"], templates=["a photo of a cat"])
    with pytest.raises(ValueError, match="templates is empty"):
        ZeroShotClassifier(pocket, ["red circle"], templates=[])
    with pytest.raises(TypeError, match="not one string"):
        ZeroShotClassifier(pocket, "red circle")
    with pytest.raises(ValueError, match="'purple cat' is not one of the classnames"):
        classifier.evaluate(image_embeds[:2], ["red circle", "purple cat"])
    with pytest.raises(ValueError, match="out of range"):
        classifier.evaluate(image_embeds[:2], [0, 48])
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        classifier.evaluate(image_embeds[:2], [0, 1, 2])
    with pytest.raises(ValueError, match=r"shape \(N, 128\)"):
        classifier.predict(image_embeds[:2, :64])


def test_single_template_string_is_accepted(pocket):
    clf = ZeroShotClassifier(pocket, ["red circle", "blue star"], templates="a {}")
    assert clf.templates == ["a {}"]


# bad input ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_classes(pocket):
    return ZeroShotClassifier(pocket, ["red circle", "blue square"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_embeddings_are_refused_not_classified(two_classes, image_embeds, bad):
    embeds = image_embeds[:4].clone()
    embeds[1, 7] = bad
    embeds[3, 0] = bad
    for method in (two_classes.predict, two_classes.predict_proba, two_classes.logits):
        with pytest.raises(ValueError, match=r"image embeddings: row\(s\) \[1, 3\] contain NaN"):
            method(embeds)
    with pytest.raises(ValueError, match=r"row\(s\) \[1, 3\]"):
        two_classes.evaluate(embeds, [0, 1, 0, 1])


def test_all_zero_embeddings_are_refused(two_classes):
    with pytest.raises(ValueError, match=r"row\(s\) \[0, 1\] are all zeros"):
        two_classes.predict(torch.zeros(2, 128))


def test_embedding_shape_and_type_errors(two_classes, image_embeds):
    with pytest.raises(ValueError, match=r"shape \(N, 128\), got shape \(128,\).*x\[None\]"):
        two_classes.predict(image_embeds[0])
    with pytest.raises(ValueError, match=r"shape \(N, 128\), got shape \(2, 64\).*same model"):
        two_classes.predict(image_embeds[:2, :64])
    with pytest.raises(TypeError, match="floating point, got torch.int64"):
        two_classes.predict(torch.ones(2, 128, dtype=torch.int64))
    with pytest.raises(ValueError, match="no image embeddings"):
        two_classes.predict(torch.empty(0, 128))


def test_numpy_and_float64_embeddings_give_the_same_answers(two_classes, image_embeds):
    expected = two_classes.predict_proba(image_embeds[:6])
    for variant in (image_embeds[:6].numpy(), image_embeds[:6].double(),
                    image_embeds[:6].numpy().astype("float64")):
        torch.testing.assert_close(two_classes.predict_proba(variant), expected)


@pytest.mark.parametrize(("names", "error", "message"), [
    (["red circle", 3], TypeError, r"classnames\[1\] is int 3, not a string"),
    (["red circle", None], TypeError, r"classnames\[1\] is NoneType None"),
    (None, TypeError, "classnames must be a list of strings, got NoneType"),
    (torch.arange(3), TypeError, r"classnames\[0\] is Tensor"),
    (["red circle", "  "], ValueError, "not a non-empty string"),
    (["red circle", "caf\udce9"], ValueError, r"classnames\[1\] = 'caf\\\\udce9' is not valid"),
    # the tokenizer lower-cases and collapses spaces: these pairs would tie on every image
    (["Red Circle", "red circle"], ValueError,
     "'Red Circle' and 'red circle' give the model exactly the same prompts"),
    (["red  circle", "red circle "], ValueError, "exactly the same prompts"),
])
def test_bad_classnames(pocket, names, error, message):
    with pytest.raises(error, match=message):
        ZeroShotClassifier(pocket, names)


def test_classnames_that_only_differ_after_the_context_length_are_refused(pocket):
    long = "a red circle " * 10  # far beyond pocket's 24 tokens
    with pytest.raises(ValueError, match=f"keeps only the first {pocket.context_length} tokens"):
        ZeroShotClassifier(pocket, [long + "one", long + "two"])


@pytest.mark.parametrize(("template", "error", "message"), [
    ("a {} next to a {}", ValueError, "has 2 placeholders; it needs exactly one"),
    ("a photo of a {{}}", ValueError, "has no '{}'"),
    ("a photo", ValueError, "has no '{}'"),
    ("a photo of a {name}", ValueError, r"names its placeholder \{name\}"),
    ("a photo of a {", ValueError, "not a valid format string"),
    ("a photo of a {:d}", ValueError, "cannot take a class name"),
    (3, TypeError, r"templates\[0\] is int 3"),
])
def test_bad_templates(pocket, template, error, message):
    with pytest.raises(error, match=message):
        ZeroShotClassifier(pocket, ["red circle"], templates=[template])


def test_template_with_literal_braces_and_numbered_placeholder(pocket):
    clf = ZeroShotClassifier(pocket, ["red circle"], templates=["{{a}} {}", "a {0}."])
    assert clf.templates == ["{{a}} {}", "a {0}."]


@pytest.mark.parametrize(("k", "error"), [(True, TypeError), (2.9, TypeError), (0, ValueError)])
def test_topk_k_must_be_a_positive_whole_number(two_classes, image_embeds, k, error):
    with pytest.raises(error, match="k must be"):
        two_classes.topk(image_embeds[:1], k=k)


def test_batch_size_must_be_a_positive_whole_number(pocket):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        ZeroShotClassifier(pocket, ["red circle"], batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be a whole number"):
        ZeroShotClassifier(pocket, ["red circle"], batch_size=2.5)


def test_nan_embeddings_from_a_broken_model_are_refused(two_classes, data, monkeypatch):
    monkeypatch.setattr(course.zeroshot, "encode_images",
                        lambda *args, **kwargs: torch.full((2, 128), float("nan")))
    with pytest.raises(ValueError, match=r"'pocket' made of the images: row\(s\) \[0, 1\]"):
        two_classes.predict(data.images[:2])


def test_nan_class_embeddings_from_a_broken_model_are_refused(pocket, monkeypatch):
    def nan_rows(clip, texts, **kwargs):
        out = torch.ones(len(texts), 128)
        out[1] = float("nan")
        return out

    monkeypatch.setattr(course.zeroshot, "encode_texts", nan_rows)
    with pytest.raises(ValueError, match=r"class embeddings 'pocket' made .*row\(s\) \[1\]"):
        ZeroShotClassifier(pocket, ["red circle", "blue square"])
