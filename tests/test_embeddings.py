"""encode_images / encode_texts: shapes, normalisation, input kinds, truncation, clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from course import encode_images, encode_texts
from course.data import ImageLoadError, load_image, shapes


@pytest.fixture(scope="module")
def data():
    return shapes.generate(12, seed=3)


def test_images_are_normalised_float32_cpu(pocket, data):
    embeds = encode_images(pocket, data.images)
    dim = pocket.model.config.projection_dim
    assert embeds.shape == (12, dim)
    assert embeds.dtype == torch.float32 and embeds.device.type == "cpu"
    torch.testing.assert_close(embeds.norm(dim=1), torch.ones(12))
    assert not embeds.requires_grad


def test_matches_the_models_own_forward(pocket, data):
    """The embeddings are exactly the normalised image_embeds/text_embeds of CLIPModel.forward."""
    inputs = pocket.processor(text=data.captions, images=data.images, padding=True, truncation=True,
                              return_tensors="pt").to(pocket.device)
    with torch.no_grad():
        out = pocket.model(**inputs)
    # encode_* return CPU tensors whatever the model's device
    torch.testing.assert_close(encode_images(pocket, data.images), out.image_embeds.cpu(),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(encode_texts(pocket, data.captions), out.text_embeds.cpu(),
                               atol=1e-5, rtol=1e-4)


def test_batch_size_does_not_change_results(pocket, data):
    torch.testing.assert_close(encode_images(pocket, data.images, batch_size=5),
                               encode_images(pocket, data.images, batch_size=64),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(encode_texts(pocket, data.captions, batch_size=3),
                               encode_texts(pocket, data.captions), atol=1e-5, rtol=1e-4)


def test_arrays_paths_and_pil_agree(pocket, data, tmp_path):
    images = data.images[:3]
    reference = encode_images(pocket, images)
    uint8 = [np.asarray(im) for im in images]
    floats = [a.astype(np.float32) / 255 for a in uint8]
    paths = []
    for i, im in enumerate(images):
        im.save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    for variant in (uint8, floats, np.stack(uint8), paths, [str(p) for p in paths]):
        torch.testing.assert_close(encode_images(pocket, variant), reference, atol=1e-5, rtol=1e-4)


def test_grayscale_and_rgba_arrays(pocket):
    gray = np.linspace(0, 255, 64 * 64).reshape(64, 64).astype(np.uint8)
    as_pil = Image.fromarray(gray).convert("RGB")
    torch.testing.assert_close(encode_images(pocket, [gray]), encode_images(pocket, [as_pil]))
    torch.testing.assert_close(encode_images(pocket, [gray[..., None]]),
                               encode_images(pocket, [as_pil]))
    rgba = np.dstack([np.asarray(as_pil), np.full((64, 64), 255, np.uint8)])
    torch.testing.assert_close(encode_images(pocket, [rgba]), encode_images(pocket, [as_pil]))


def test_single_items_are_a_list_of_one(pocket, data):
    one_image = encode_images(pocket, data.images[0])
    assert one_image.shape[0] == 1
    torch.testing.assert_close(one_image, encode_images(pocket, data.images[:1]))
    one_text = encode_texts(pocket, "a red circle")
    assert one_text.shape[0] == 1
    torch.testing.assert_close(one_text, encode_texts(pocket, ["a red circle"]))


def test_long_texts_truncated_with_one_warning(pocket):
    short = ["a red circle", "a blue square"]
    long = ["a big red circle " * 12, "a small green star in the top left " * 8]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embeds = encode_texts(pocket, [short[0], long[0], short[1], long[1]], batch_size=2)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "2 text(s)" in messages[0] and "truncated" in messages[0]
    assert str(pocket.context_length) in messages[0]
    # Texts that fit are encoded as if alone, and the cut ones are still valid unit vectors.
    torch.testing.assert_close(embeds[[0, 2]], encode_texts(pocket, short), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(embeds.norm(dim=1), torch.ones(4))


def test_no_warning_when_texts_fit(pocket):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode_texts(pocket, ["a red circle"] * 3)


def test_truncation_keeps_the_first_tokens(pocket):
    """A cut text equals one whose tokens are exactly the first ones that fit."""
    tok = pocket.processor.tokenizer
    text = "a red circle " * 20
    ids = tok(text)["input_ids"]
    fitting = tok.decode(ids[1:pocket.context_length - 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cut = encode_texts(pocket, [text])
    torch.testing.assert_close(cut, encode_texts(pocket, [fitting]), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bad", [[], (), np.zeros((0, 8, 8, 3), np.uint8)])
def test_empty_images_rejected(pocket, bad):
    with pytest.raises(ValueError, match="no images|empty"):
        encode_images(pocket, bad)


def test_empty_texts_rejected(pocket):
    with pytest.raises(ValueError, match="no texts"):
        encode_texts(pocket, [])


def test_bad_arrays_name_their_index(pocket, data):
    good = np.asarray(data.images[0])
    with pytest.raises(ValueError, match=r"images\[1\].*shape \(8, 8, 5\)"):
        encode_images(pocket, [good, np.zeros((8, 8, 5), np.uint8)])
    with pytest.raises(ValueError, match=r"images\[2\].*\[0, 1\]"):
        encode_images(pocket, [good, good, np.full((8, 8, 3), 2.0)])
    with pytest.raises(ValueError, match=r"images\[0\].*NaN"):
        encode_images(pocket, [np.full((8, 8), np.nan)])
    with pytest.raises(ValueError, match=r"images\[0\].*0\.\.255"):
        encode_images(pocket, [np.full((8, 8), 300, np.int64)])
    with pytest.raises(ValueError, match="4-D"):
        encode_images(pocket, good)  # one bare HxWxC array is ambiguous: wrap it in a list


def test_wrong_types_rejected(pocket, data):
    with pytest.raises(TypeError, match=r"images\[1\] is a int"):
        encode_images(pocket, [data.images[0], 3])
    with pytest.raises(TypeError, match=r"images\[0\].*torch.Tensor"):
        encode_images(pocket, [torch.zeros(3, 8, 8)])
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        encode_texts(pocket, ["ok", None])


def test_missing_file_named(pocket, tmp_path):
    with pytest.raises(Exception) as err:
        encode_images(pocket, [tmp_path / "missing.png"])
    assert "missing.png" in str(err.value)


# PIL images passed directly are checked and converted like files -----------------------------


@pytest.mark.parametrize("size", [(0, 0), (0, 8), (8, 0)])
def test_pil_image_with_no_pixels_is_named(pocket, data, size):
    with pytest.raises(ImageLoadError, match=r"images\[1\]: it has no pixels"):
        encode_images(pocket, [data.images[0], Image.new("RGB", size)])


def test_truncated_or_closed_pil_image_is_named(pocket, data, tmp_path):
    path = tmp_path / "cut.png"
    full = tmp_path / "full.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(full)
    path.write_bytes(full.read_bytes()[:400])
    lazy = Image.open(path)  # reads the header only; the pixels are missing
    with pytest.raises(ImageLoadError, match=r"images\[0\] \(.*cut\.png\): its pixels cannot"):
        encode_images(pocket, [lazy])
    lazy.close()
    closed = Image.open(full)
    closed.close()
    with pytest.raises(ImageLoadError, match=r"images\[0\] \(.*full\.png\).*closed"):
        encode_images(pocket, [closed])


def test_thin_images_encode(pocket):
    for size in [(1, 1), (1, 300), (300, 1)]:
        assert encode_images(pocket, [Image.new("RGB", size, (200, 30, 30))]).shape == (1, 128)


@pytest.mark.parametrize("kind", ["exif", "cmyk", "16bit", "palette_alpha", "la", "gif"])
def test_pil_images_encode_like_their_files(pocket, tmp_path, kind):
    """An image opened with Image.open gives the embedding load_image would (upright, RGB)."""
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 20, 3), dtype=np.uint8))
    path = tmp_path / "x.png"
    if kind == "exif":
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees to display
        path = tmp_path / "x.jpg"
        rgb.save(path, exif=exif, quality=95)
    elif kind == "cmyk":
        path = tmp_path / "x.jpg"
        rgb.convert("CMYK").save(path, quality=95)
    elif kind == "16bit":
        Image.fromarray(np.asarray(rgb)[..., 0].astype(np.uint16) * 257).save(path)
    elif kind == "palette_alpha":
        rgb.convert("P").save(path, transparency=0)
    elif kind == "la":
        rgb.convert("LA").save(path)
    else:
        path = tmp_path / "x.gif"
        rgb.save(path, save_all=True, append_images=[Image.new("RGB", rgb.size)])
    with Image.open(path) as opened:
        from_pil = encode_images(pocket, [opened])
    torch.testing.assert_close(from_pil, encode_images(pocket, [path]))
    assert load_image(path).size == ((40, 20) if kind == "exif" else (20, 40))


def test_texts_with_undecodable_bytes_are_named(pocket):
    with pytest.raises(ValueError, match=r"texts\[1\] = 'caf\\\\udce9' is not valid text"):
        encode_texts(pocket, ["a red circle", "caf\udce9"])


@pytest.mark.parametrize(("batch_size", "error"), [(0, ValueError), (2.5, TypeError),
                                                   (True, TypeError)])
def test_batch_size_must_be_a_positive_whole_number(pocket, data, batch_size, error):
    with pytest.raises(error, match="batch_size must be"):
        encode_images(pocket, data.images[:2], batch_size=batch_size)
    with pytest.raises(error, match="batch_size must be"):
        encode_texts(pocket, ["a red circle"], batch_size=batch_size)


def test_progress_bars_follow_tqdm_disable(pocket, monkeypatch, capsys):
    """Stored notebook runs set TQDM_DISABLE: a bar the course asks for must not appear."""
    from course.bars import progress_bar

    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress_bar(range(3), show=True).disable
    monkeypatch.delenv("TQDM_DISABLE")
    assert not progress_bar(range(3), show=True).disable
    assert progress_bar(range(3), show=False).disable
