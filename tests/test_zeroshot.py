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
