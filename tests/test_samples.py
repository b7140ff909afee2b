"""course.data.samples: real photos shipped by installed packages, loaded without downloads."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from course.data import samples


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("sample loading tried to use the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_at_least_15_samples_with_unique_names_and_captions():
    available = samples.list_samples()
    assert len(available) >= 15
    names = [s.name for s in samples.SAMPLES]
    assert len(names) == len(set(names))
    for sample in samples.SAMPLES:
        assert sample.caption.strip() and "\n" not in sample.caption
        assert sample.category and sample.source in {"scikit-image", "matplotlib", "scikit-learn"}


def test_every_listed_sample_loads_as_rgb(no_network):
    for sample in samples.list_samples():
        image = samples.load_sample(sample.name)
        assert image.mode == "RGB", sample.name
        assert min(image.size) >= 64, sample.name
        pixels = np.asarray(image)
        assert pixels.std() > 5, f"{sample.name} is blank"


def test_medical_samples_are_there():
    medical = {s.name for s in samples.list_samples(category="medical")}
    assert {"retina", "immunohistochemistry", "ct_phantom", "mri_head"} <= medical


def test_mri_head_is_decoded_as_an_image_not_noise():
    # A wrong dtype or shape turns the raw slice into noise: neighbouring pixels stop resembling
    # each other.
    image = samples.load_sample("mri_head")
    assert image.size == (256, 256)
    pixels = np.asarray(image)[:, :, 0].astype(float)
    neighbour_diff = np.abs(np.diff(pixels, axis=1)).mean()
    assert neighbour_diff < 0.1 * pixels.std()
    assert pixels.max() == 255 and pixels.min() == 0


def test_load_samples_by_category_and_names():
    images, chosen = samples.load_samples(category="space")
    assert len(images) == len(chosen) >= 2
    assert {s.category for s in chosen} == {"space"}
    images, chosen = samples.load_samples(["cat", "coffee"])
    assert [s.name for s in chosen] == ["cat", "coffee"]
    assert all(im.mode == "RGB" for im in images)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown sample 'dog'") as info:
        samples.load_sample("dog")
    assert "astronaut" in str(info.value) and "retina" in str(info.value)


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(samples, "_data_dir", lambda source: None)
    assert samples.list_samples() == []
    with pytest.raises(FileNotFoundError, match="scikit-image, which is not installed"):
        samples.load_sample("cat")
