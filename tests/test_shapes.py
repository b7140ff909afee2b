"""Shapes: determinism, label/caption consistency, domains, and the compositional split."""

from __future__ import annotations

import re

import numpy as np
import pytest

from course.data import shapes
from course.pocket.train import POCKET_TEMPLATES


def test_vocabulary_sizes():
    assert len(shapes.COLORS) >= 8 and len(shapes.SHAPES) >= 6
    assert len(set(shapes.COLORS)) == len(shapes.COLORS)
    assert len(shapes.class_names()) == len(shapes.COLORS) * len(shapes.SHAPES)


def test_same_seed_same_images_and_prefix_property():
    a = shapes.generate(20, seed=7)
    b = shapes.generate(20, seed=7)
    c = shapes.generate(5, seed=7)
    assert a.labels == b.labels and a.captions == b.captions
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.images, b.images))
    assert a.labels[:5] == c.labels
    assert np.array_equal(np.asarray(a.images[3]), np.asarray(c.images[3]))


def test_different_seeds_differ():
    a = shapes.generate(20, seed=1)
    b = shapes.generate(20, seed=2)
    assert a.labels != b.labels


def test_images_are_rgb_at_requested_size():
    data = shapes.generate(6, seed=0, image_size=96)
    assert all(im.mode == "RGB" and im.size == (96, 96) for im in data.images)


def test_captions_name_the_labels():
    data = shapes.generate(200, seed=3)
    for label, caption in zip(data.labels, data.captions):
        words = caption.split()
        assert label.color in words and label.shape in words, caption
        # a caption never names another colour or shape
        assert not (set(words) & (set(shapes.COLORS) - {label.color}))
        assert not (set(words) & (set(shapes.SHAPES) - {label.shape}))
        if label.size in words:
            assert set(words) & set(shapes.SIZES) == {label.size}


def test_captions_use_an_before_a_vowel():
    # every caption pre-training can draw, orange (the one colour with a vowel) included
    captions = [shapes.ShapeLabel(c, s, z, p).caption(t)
                for c, s in shapes.ALL_PAIRS for z in shapes.SIZES for p in shapes.POSITIONS
                for t in POCKET_TEMPLATES]
    assert not [c for c in captions if re.search(r"\ba [aeiou]", c)]
    assert not [c for c in captions if re.search(r"\ban [^aeiou]", c)]
    label = shapes.ShapeLabel("orange", "square", "large", "center")
    assert label.caption() == "an orange square"
    assert label.caption("a photo of a {color} {shape}.") == "a photo of an orange square."
    assert label.caption("a {size} {color} {shape}") == "a large orange square"
    assert shapes.ShapeLabel("red", "square", "small", "center").caption() == "a red square"
    data = shapes.generate(300, seed=3)
    assert any(c.startswith("an orange") for c in data.captions)
    assert not any("a orange" in c for c in data.captions)
    assert shapes.with_articles("A orange star and a hexagon") == "An orange star and a hexagon"


def test_pixels_show_the_labelled_colour_and_position():
    data = shapes.generate(60, seed=4)
    for img, label in zip(data.images, data.labels):
        a = np.asarray(img).astype(int)
        bg = a[0, 0]
        mask = np.abs(a - bg).sum(-1) > 60
        assert mask.sum() > 20, label
        mean = a[mask].mean(0)
        target = np.array(shapes.PALETTE[label.color])
        nearest = min(shapes.PALETTE, key=lambda c: np.abs(np.array(shapes.PALETTE[c]) - mean).sum())
        assert nearest == label.color, (label, mean, target)
        ys, xs = np.nonzero(mask)
        cy, cx = ys.mean() / a.shape[0], xs.mean() / a.shape[1]
        if label.position == "center":
            assert abs(cx - 0.5) < 0.12 and abs(cy - 0.5) < 0.12
        else:
            vertical, horizontal = label.position.split()
            assert (cx < 0.5) == (horizontal == "left") and (cy < 0.5) == (vertical == "top")


def test_sizes_are_ordered_by_area():
    data = shapes.generate(300, seed=5)
    areas: dict[str, list[int]] = {s: [] for s in shapes.SIZES}
    for img, label in zip(data.images, data.labels):
        a = np.asarray(img).astype(int)
        areas[label.size].append(int((np.abs(a - a[0, 0]).sum(-1) > 60).sum()))
    small, medium, large = (np.median(areas[s]) for s in shapes.SIZES)
    assert small < medium < large


def test_domains_share_scenes_but_differ_measurably():
    clean = shapes.generate(50, seed=9, domain="clean")
    sketch = shapes.generate(50, seed=9, domain="sketch")
    scan = shapes.generate(50, seed=9, domain="scan")
    assert [lab.classname for lab in clean.labels] == [lab.classname for lab in scan.labels]
    assert {lab.domain for lab in scan.labels} == {"scan"}

    def stats(data):
        a = np.stack([np.asarray(im, dtype=float) for im in data.images])
        return a.mean(), a.std(axis=-1).mean()  # brightness, colourfulness

    (b_clean, _c_clean), (_b_sketch, _c_sketch), (b_scan, c_scan) = map(stats, (clean, sketch, scan))
    assert c_scan < 1e-6  # grayscale: no colour left
    assert b_scan < b_clean - 40  # vignetting darkens the whole picture
    corners = np.stack([np.asarray(im)[[0, 0, -1, -1], [0, -1, 0, -1]] for im in scan.images])
    assert corners.max() == 0  # outside the circular field of view the sensor sees nothing
    # sketches keep colour only in thin outlines: far fewer coloured pixels than filled shapes
    def coloured_share(data):
        return np.mean([(np.asarray(im).astype(int).std(-1) > 25).mean() for im in data.images])

    assert coloured_share(sketch) < 0.6 * coloured_share(clean)


def test_heldout_pairs_never_in_pretraining_captions():
    heldout = set(shapes.HELDOUT_PAIRS)
    assert len(heldout) == len(shapes.HELDOUT_PAIRS) >= 6
    assert {c for c, _ in heldout} == set(shapes.COLORS)  # every colour loses one shape
    assert {s for _, s in heldout} == set(shapes.SHAPES)  # every shape loses one colour
    data = shapes.generate(3000, seed=11, split="seen", templates=POCKET_TEMPLATES)
    pattern = re.compile("|".join(rf"\b{c}\b.*\b{s}\b|\b{s}\b.*\b{c}\b" for c, s in heldout))
    assert not any(pattern.search(c) for c in data.captions)
    assert not any((lab.color, lab.shape) in heldout for lab in data.labels)


def test_heldout_split_has_only_heldout_pairs():
    data = shapes.generate(200, seed=12, split="heldout")
    assert {(lab.color, lab.shape) for lab in data.labels} <= set(shapes.HELDOUT_PAIRS)


def test_targets_match_classnames():
    data = shapes.generate(30, seed=13)
    names = shapes.class_names()
    assert [names[t] for t in data.targets()] == [lab.classname for lab in data.labels]
    with pytest.raises(ValueError, match="lacks the classes"):
        data.targets(["red circle"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"domain": "xray"}, "unknown domain"),
        ({"split": "train"}, "unknown split"),
        ({"image_size": 4}, "at least 16"),
        ({"templates": []}, "must not be empty"),
    ],
)
def test_bad_arguments_are_clear(kwargs, message):
    with pytest.raises(ValueError, match=message):
        shapes.generate(3, **kwargs)
