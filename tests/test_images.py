"""course.data.images: every Pillow mode comes out RGB, and every bad file gets a clear error."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from course.data import ImageLoadError, load_image, load_image_folder, load_labelled_folder

WHITE, BLACK, RED = (255, 255, 255), (0, 0, 0), (255, 0, 0)


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def _png_bytes(size=(8, 6), color=RED) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


# --- modes -----------------------------------------------------------------------------------


def test_rgb_roundtrip(tmp_path):
    path = _save(Image.new("RGB", (8, 6), RED), tmp_path / "red.png")
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (8, 6)
    assert image.getpixel((3, 3)) == RED


def test_rgba_is_composited_on_white_not_black(tmp_path):
    rgba = Image.new("RGBA", (3, 1), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((1, 0), (255, 0, 0, 255))  # opaque red
    rgba.putpixel((2, 0), (0, 0, 0, 128))  # half-transparent black
    image = load_image(_save(rgba, tmp_path / "a.png"))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == WHITE
    assert image.getpixel((1, 0)) == RED
    assert all(abs(v - 127) <= 1 for v in image.getpixel((2, 0)))


def test_la_is_composited_on_white(tmp_path):
    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (40, 255))
    image = load_image(_save(la, tmp_path / "la.png"))
    assert image.getpixel((0, 0)) == WHITE
    assert image.getpixel((1, 0)) == (40, 40, 40)


@pytest.mark.parametrize("fmt", ["png", "gif"])
def test_palette_with_transparency(tmp_path, fmt):
    p = Image.new("P", (2, 1), 0)
    p.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))  # index 0 black, index 1 blue
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 0
    path = _save(p, tmp_path / f"p.{fmt}", transparency=0)
    assert Image.open(path).mode == "P"
    image = load_image(path)
    assert image.getpixel((0, 0)) == WHITE  # transparent index, not black
    assert image.getpixel((1, 0)) == (0, 0, 255)


def test_palette_without_transparency(tmp_path):
    p = Image.new("RGB", (4, 4), (0, 128, 0)).convert("P", palette=Image.Palette.ADAPTIVE)
    path = _save(p, tmp_path / "p.png")
    assert Image.open(path).mode == "P"
    image = load_image(path)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (0, 128, 0)


def test_grayscale_and_bilevel(tmp_path):
    gray = load_image(_save(Image.new("L", (2, 2), 77), tmp_path / "l.png"))
    assert gray.mode == "RGB" and gray.getpixel((0, 0)) == (77, 77, 77)
    bilevel = Image.new("1", (2, 1), 0)
    bilevel.putpixel((1, 0), 1)
    image = load_image(_save(bilevel, tmp_path / "one.png"))
    assert Image.open(tmp_path / "one.png").mode == "1"
    assert image.getpixel((0, 0)) == BLACK and image.getpixel((1, 0)) == WHITE


def test_16_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)  # 32896 = 128 * 257
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    image = load_image(path)
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_32_bit_integer_image(tmp_path):
    in_16_bit_range = np.array([[0, 1028, 65535]], dtype=np.int32)
    image = load_image(_save(Image.fromarray(in_16_bit_range), tmp_path / "i.tif"))
    assert Image.open(tmp_path / "i.tif").mode == "I"
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 4, 255]
    wide = np.array([[-1000, 0, 1000]], dtype=np.int32)  # no natural range: stretched
    image = load_image(_save(Image.fromarray(wide), tmp_path / "wide.tif"))
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_float_image(tmp_path):
    unit = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    path = _save(Image.fromarray(unit), tmp_path / "f.tif")
    assert Image.open(path).mode == "F"
    assert [load_image(path).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    hounsfield = np.array([[-1000.0, 0.0, 1000.0]], dtype=np.float32)
    image = load_image(_save(Image.fromarray(hounsfield), tmp_path / "hu.tif"))
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


@pytest.mark.parametrize("fmt", ["jpeg", "tiff"])
def test_cmyk(tmp_path, fmt):
    cmyk = Image.new("CMYK", (8, 8), (255, 0, 0, 0))  # pure cyan ink
    path = _save(cmyk, tmp_path / f"c.{fmt}", format=fmt.upper())
    assert Image.open(path).mode == "CMYK"
    r, g, b = load_image(path).getpixel((4, 4))
    assert r < 20 and g > 235 and b > 235


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), RED)
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(image, tmp_path / "phone.jpg", exif=exif, quality=95)
    assert Image.open(path).size == (40, 20)
    loaded = load_image(path)
    assert loaded.size == (20, 40)
    r, _, b = loaded.getpixel((10, 3))  # the left edge is now the top
    assert b > 200 and r < 60


# --- sources ---------------------------------------------------------------------------------


def test_accepts_str_path_bytes_and_file(tmp_path):
    data = _png_bytes()
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with path.open("rb") as file:
        loaded = [load_image(str(path)), load_image(path), load_image(data),
                  load_image(bytearray(data)), load_image(file), load_image(io.BytesIO(data))]
    assert all(im.mode == "RGB" and im.getpixel((0, 0)) == RED for im in loaded)


def test_image_is_fully_loaded_and_file_released(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(_png_bytes())
    image = load_image(path)
    path.unlink()  # fails on Windows while a handle is open; afterwards the pixels must remain
    assert image.getpixel((0, 0)) == RED
    assert image.copy().tobytes()[:3] == bytes(RED)


def test_wrong_source_types():
    with pytest.raises(TypeError, match="path, bytes or a binary file"):
        load_image(42)
    with pytest.raises(ImageLoadError, match="not binary"):
        load_image(io.StringIO("text"))


# --- bad files -------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match=r"nope\.png.*no such file") as info:
        load_image(tmp_path / "nope.png")
    assert isinstance(info.value, ValueError)


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"empty\.jpg.*empty"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(b"")


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_truncated_file(tmp_path, fmt):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, fmt.upper())
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match=rf"cut\.{fmt}.*(damaged|truncated)"):
        load_image(path)


def test_directory(tmp_path):
    (tmp_path / "photos.png").mkdir()
    with pytest.raises(ImageLoadError, match=r"photos\.png.*folder"):
        load_image(tmp_path / "photos.png")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("these are my notes, not a picture")
    with pytest.raises(ImageLoadError, match=r"notes\.png.*not an image"):
        load_image(tmp_path / "notes.png")


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = _save(Image.new("L", (100, 100)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels is > 2x the limit
    with pytest.raises(ImageLoadError, match=r"bomb\.png.*too large"):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)  # Pillow would only warn here
    with pytest.raises(ImageLoadError, match=r"bomb\.png.*too large"):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    assert load_image(path).size == (100, 100)


def test_limit_is_not_disabled():
    import course.data.images  # noqa: F401 - importing must not change Pillow's limit

    assert Image.MAX_IMAGE_PIXELS is not None


# --- folders ---------------------------------------------------------------------------------


@pytest.fixture
def messy_folder(tmp_path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    # created out of order on purpose: the result must be sorted
    _save(Image.new("RGB", (5, 5), RED), folder / "b.png")
    _save(Image.new("L", (5, 5), 9), folder / "A.JPG")
    (folder / "empty.png").write_bytes(b"")
    (folder / "fake.jpg").write_text("not really")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    _save(Image.new("RGB", (5, 5)), folder / ".hidden.png")
    (folder / "sub").mkdir()
    _save(Image.new("RGB", (5, 5), WHITE), folder / "sub" / "c.png")
    return folder


def test_folder_loads_good_files_sorted_and_warns_once(messy_folder):
    with pytest.warns(UserWarning) as record:
        result = load_image_folder(messy_folder)
    assert [p.name for p in result.paths] == ["A.JPG", "b.png"]
    assert len(result) == 2 and all(im.mode == "RGB" for im in result.images)
    assert result.images[1].getpixel((0, 0)) == RED
    assert [(p.name, "empty" in reason or "not an image" in reason)
            for p, reason in result.skipped] == [("empty.png", True), ("fake.jpg", True)]
    assert [p.name for p in result.ignored] == ["notes.txt"]
    assert len(record) == 1
    message = str(record[0].message)
    assert "2 of 4" in message and "empty.png" in message and "fake.jpg" in message


def test_folder_recursive(messy_folder):
    with pytest.warns(UserWarning):
        result = load_image_folder(messy_folder, recursive=True)
    assert [p.relative_to(messy_folder).as_posix() for p in result.paths] == [
        "A.JPG", "b.png", "sub/c.png"]


def test_clean_folder_does_not_warn(tmp_path):
    for i in range(3):
        _save(Image.new("RGB", (4, 4)), tmp_path / f"{i}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = load_image_folder(tmp_path)
    assert len(result) == 3 and result.skipped == []


def test_folder_errors(tmp_path):
    with pytest.raises(ImageLoadError, match="no such folder"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(_png_bytes())
    with pytest.raises(ImageLoadError, match="not a folder"):
        load_image_folder(tmp_path / "file.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("hi")
    with pytest.raises(ImageLoadError, match="no image files.*readme.md"):
        load_image_folder(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"none of its 1 image files.*x\.png"):
        load_image_folder(broken)


def test_labelled_folder(tmp_path):
    for label, color in [("dogs", RED), ("cats", WHITE)]:
        (tmp_path / label / "deeper").mkdir(parents=True)
        _save(Image.new("RGB", (4, 4), color), tmp_path / label / "1.png")
        _save(Image.new("RGB", (4, 4), color), tmp_path / label / "deeper" / "2.png")
    (tmp_path / "cats" / "bad.png").write_bytes(b"")
    _save(Image.new("RGB", (4, 4)), tmp_path / "loose.png")
    with pytest.warns(UserWarning, match="bad.png"):
        result = load_labelled_folder(tmp_path)
    assert result.labels == ["cats", "cats", "dogs", "dogs"]
    assert result.classes == ["cats", "dogs"]
    assert [im.getpixel((0, 0)) for im in result.images] == [WHITE, WHITE, RED, RED]
    assert [p.name for p, _ in result.skipped] == ["bad.png"]
    assert [p.name for p in result.ignored] == ["loose.png"]


def test_labelled_folder_needs_subfolders(tmp_path):
    _save(Image.new("RGB", (4, 4)), tmp_path / "x.png")
    with pytest.raises(ImageLoadError, match="no subfolders"):
        load_labelled_folder(tmp_path)


# --- images with no pixels, odd shapes, animation ---------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (Pillow cannot write 0-sized ones)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("size", [(0, 0), (0, 5), (5, 0)])
def test_image_with_no_pixels_is_refused_and_named(tmp_path, size):
    path = tmp_path / "nothing.png"
    path.write_bytes(_png_header_only(*size))
    with pytest.raises(ImageLoadError, match=r"nothing\.png.*PNG file but its header is invalid"):
        load_image(path)


@pytest.mark.parametrize("size", [(1, 9), (9, 1), (1, 1)])
def test_one_pixel_wide_images_load(tmp_path, size):
    image = load_image(_save(Image.new("RGB", size, RED), tmp_path / "thin.png"))
    assert image.size == size and image.getpixel((0, 0)) == RED


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), color) for color in (RED, (0, 0, 255), WHITE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    image = load_image(path)
    assert image.mode == "RGB" and image.getpixel((4, 4)) == RED


# --- folders: every readable suffix, odd names -------------------------------------------------


def test_folder_loaders_accept_every_suffix_pillow_decodes_here(tmp_path):
    from course.data.images import image_extensions

    written = []
    for suffix, fmt in sorted(Image.registered_extensions().items()):
        if suffix not in image_extensions() or fmt not in Image.SAVE:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # e.g. Pillow's IM format
                Image.new("RGB", (16, 16), RED).save(tmp_path / f"red{suffix}", format=fmt)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # this format cannot store an RGB image (e.g. XBM is bilevel)
        written.append(f"red{suffix}")
    assert {".png", ".jpg", ".webp", ".tif", ".bmp", ".gif"} <= {Path(n).suffix for n in written}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("error", UserWarning)  # every file the suffix admits must load
        result = load_image_folder(tmp_path)
    assert sorted(p.name for p in result.paths) == sorted(written) and result.ignored == []
    for name, image in zip((p.name for p in result.paths), result.images):
        r, g, b = image.getpixel((8, 8))
        assert r > 200 and g < 60 and b < 60, name


@pytest.mark.skipif(not __import__("PIL.features").features.check("avif"), reason="no AVIF here")
def test_avif_loads_alone_and_in_folders(tmp_path):
    (tmp_path / "cls").mkdir()
    _save(Image.new("RGB", (8, 8), RED), tmp_path / "cls" / "x.avif")
    assert load_image(tmp_path / "cls" / "x.avif").size == (8, 8)
    assert [p.name for p in load_image_folder(tmp_path / "cls").paths] == ["x.avif"]
    assert load_labelled_folder(tmp_path).labels == ["cls"]


def test_formats_pillow_only_recognises_are_ignored_not_skipped(tmp_path):
    from course.data.images import image_extensions

    assert not {".mpg", ".mpeg", ".pdf", ".h5", ".bufr", ".grib"} & image_extensions()
    _save(Image.new("RGB", (4, 4)), tmp_path / "a.png")
    (tmp_path / "clip.mpg").write_bytes(b"\x00\x00\x01\xb3" + bytes(20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = load_image_folder(tmp_path)
    assert [p.name for p in result.ignored] == ["clip.mpg"]


def test_folder_skips_bad_files_of_every_kind_and_names_them(tmp_path, monkeypatch):
    _save(Image.new("RGB", (4, 4), RED), tmp_path / "good.png")
    (tmp_path / "nothing.png").write_bytes(_png_header_only(0, 0))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes(_png_bytes((64, 64))[:40])
    _save(Image.new("L", (100, 100)), tmp_path / "bomb.png")
    (tmp_path / "dir.png").mkdir()  # a folder with an image suffix is not a file to load
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.warns(UserWarning, match="Skipped 4 of 5"):
        result = load_image_folder(tmp_path)
    assert [p.name for p in result.paths] == ["good.png"]
    reasons = {p.name: reason for p, reason in result.skipped}
    assert "too large" in reasons["bomb.png"] and "empty" in reasons["empty.jpg"]
    assert "header is invalid" in reasons["nothing.png"]
    assert "damaged" in reasons["cut.png"] or "header is invalid" in reasons["cut.png"]


def _mkdir_bytes(root: Path, name: bytes) -> Path:
    try:
        os.mkdir(os.path.join(os.fsencode(root), name))
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    return Path(os.fsdecode(os.path.join(os.fsencode(root), name)))


def test_non_utf8_class_folder_gives_a_text_label_with_a_warning(tmp_path):
    cafe = _mkdir_bytes(tmp_path, b"caf\xe9")  # "café" written by a Latin-1 system
    _save(Image.new("RGB", (4, 4), RED), cafe / "1.png")
    (tmp_path / "tea").mkdir()
    _save(Image.new("RGB", (4, 4), WHITE), tmp_path / "tea" / "1.png")
    with pytest.warns(UserWarning, match=r"caf\\xe9' has a name that is not valid UTF-8.*'café'"):
        result = load_labelled_folder(tmp_path)
    assert result.labels == ["café", "tea"]
    assert all(label.encode("utf-8") for label in result.labels)  # valid text, tokenizable


def test_class_folders_that_give_the_same_label_are_refused(tmp_path):
    _mkdir_bytes(tmp_path, b"caf\xe9")
    (tmp_path / "café").mkdir()
    for folder in tmp_path.iterdir():
        _save(Image.new("RGB", (4, 4)), folder / "1.png")
    with pytest.warns(UserWarning), pytest.raises(ImageLoadError, match="both give the label"):
        load_labelled_folder(tmp_path)


def test_decomposed_unicode_folder_names_become_composed_labels(tmp_path):
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "café")  # how macOS stores names
    (tmp_path / decomposed).mkdir()
    _save(Image.new("RGB", (4, 4)), tmp_path / decomposed / "1.png")
    assert load_labelled_folder(tmp_path).labels == ["café"]  # NFC, as typed on a keyboard


def test_suffixes_registered_later_count_too(tmp_path, monkeypatch):
    Image.init()
    monkeypatch.setitem(Image.EXTENSION, ".mypng", "PNG")  # as a plugin such as pillow-heif does
    _save(Image.new("RGB", (4, 4), RED), tmp_path / "a.mypng", format="PNG")
    assert [p.name for p in load_image_folder(tmp_path).paths] == ["a.mypng"]


# --- round 3 of bad input (issue 19 §4) ---------------------------------------------------------


def test_premultiplied_la_image_is_composited_on_white():
    image = Image.new("La", (4, 4), (200, 0))  # fully transparent
    from course.data.images import from_pil

    out = from_pil(image, "la")
    assert out.mode == "RGB" and out.getpixel((1, 1)) == WHITE


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageLoadError, match="FIFO"):
        load_image(fifo)  # the old code blocked here forever
    (tmp_path / "good.png").write_bytes(_png_bytes())
    assert len(load_image_folder(tmp_path)) == 1


def _two_classes(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        _save(Image.new("RGB", (8, 6), RED), tmp_path / name / f"{name}.png")


def test_an_empty_class_folder_is_kept_and_reported(tmp_path):
    _two_classes(tmp_path)
    (tmp_path / "bird").mkdir()
    with pytest.warns(UserWarning, match="'bird'"):
        result = load_labelled_folder(tmp_path)
    assert result.classes == ["bird", "cat", "dog"] and result.empty_classes == ["bird"]
    assert sorted(result.labels) == ["cat", "dog"]


def test_a_class_folder_linked_to_the_root_is_not_loaded_twice(tmp_path):
    _two_classes(tmp_path)
    (tmp_path / "zz").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "kitten").symlink_to(tmp_path / "cat", target_is_directory=True)
    with pytest.warns(UserWarning, match="loaded twice"):
        result = load_labelled_folder(tmp_path)
    assert sorted(result.labels) == ["cat", "dog"] and result.classes == ["cat", "dog"]


def test_a_file_linked_into_another_class_is_loaded_once_and_named(tmp_path):
    _two_classes(tmp_path)
    (tmp_path / "dog" / "also.png").symlink_to(tmp_path / "cat" / "cat.png")
    with pytest.warns(UserWarning, match="same file"):
        result = load_labelled_folder(tmp_path)
    assert sorted(result.labels) == ["cat", "dog"]
    assert [reason for _, reason in result.skipped] == ["the same file as cat/cat.png"]


def test_dangling_symlinks_are_skipped_with_a_reason(tmp_path):
    _two_classes(tmp_path)
    (tmp_path / "cat" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.warns(UserWarning, match="broken symbolic link"):
        result = load_labelled_folder(tmp_path)
    assert [p.name for p, _ in result.skipped] == ["gone.png"]
    with pytest.warns(UserWarning, match="broken symbolic link"):
        flat = load_image_folder(tmp_path / "cat")
    assert [p.name for p, _ in flat.skipped] == ["gone.png"]
