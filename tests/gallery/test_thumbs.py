"""Small decodes for the gallery (``gallery.thumbs.load_thumbnail``): the same pixels, turns
and errors as ``images.load_photo``, at most ``side`` pixels long, JPEG decoded at a reduced
DCT scale. All files are generated under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from sketchpad.gallery import thumbs
from sketchpad.gallery.images import PhotoError, load_photo
from sketchpad.gallery.thumbs import load_thumbnail, thumbnail_size


def quadrants(h: int, w: int) -> np.ndarray:
    """Four solid quadrants (red, green / blue, yellow): any turn or flip moves a colour."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (220, 30, 30)
    a[: h // 2, w // 2 :] = (30, 200, 30)
    a[h // 2 :, : w // 2] = (30, 30, 220)
    a[h // 2 :, w // 2 :] = (230, 220, 30)
    return a


def corner_colours(a: np.ndarray) -> list[tuple[int, ...]]:
    """Mean colour near each corner (tl, tr, bl, br), away from edges and JPEG ringing."""
    h, w = a.shape[:2]
    cy, cx = h // 4, w // 4
    spots = [(cy, cx), (cy, w - 1 - cx), (h - 1 - cy, cx), (h - 1 - cy, w - 1 - cx)]
    return [
        tuple(int(v) for v in a[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(0))
        for y, x in spots
    ]


def close(c1: tuple[int, ...], c2: tuple[int, ...], tol: int = 25) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(c1, c2, strict=True))


def test_thumbnail_size_fits_and_never_enlarges() -> None:
    assert thumbnail_size(400, 300, 160) == (160, 120)
    assert thumbnail_size(300, 400, 160) == (120, 160)
    assert thumbnail_size(100, 50, 160) == (100, 50)
    assert thumbnail_size(10_000, 1, 160) == (160, 1)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16"])
def test_small_photo_is_exactly_load_photo(tmp_path: Path, mode: str) -> None:
    """Below ``side`` nothing is resized: every conversion rule is load_photo's."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    if mode == "I;16":
        im = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)  # mode I;16
    elif mode == "P":
        im = Image.fromarray(rgb).quantize(16)
    else:
        im = Image.fromarray(rgb).convert(mode)
    if mode in ("RGBA", "LA"):
        im.putalpha(Image.fromarray(rng.integers(0, 256, (30, 40), dtype=np.uint8)))
    path = tmp_path / "small.png"
    im.save(path)
    np.testing.assert_array_equal(load_thumbnail(path, 160), load_photo(path))


def test_large_png_shrinks_to_side_keeping_colours(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(quadrants(600, 800)).save(path)
    t = load_thumbnail(path, 160)
    assert t.shape == (120, 160, 3) and t.dtype == np.uint8
    for got, want in zip(corner_colours(t), corner_colours(quadrants(600, 800)), strict=True):
        assert close(got, want, 3)


def test_large_16_bit_photo_is_scaled_then_shrunk(tmp_path: Path) -> None:
    deep = np.full((400, 600), 32768, dtype=np.uint16)
    deep[:, 300:] = 65535
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    t = load_thumbnail(path, 150)
    assert t.shape == (100, 150, 3)
    assert t[50, 20].tolist() == [128, 128, 128]  # 32768 / 65535 · 255, not clipped to 255
    assert t[50, 130].tolist() == [255, 255, 255]


def test_jpeg_is_decoded_in_draft_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.jpg"
    Image.fromarray(quadrants(1200, 1600)).save(path, quality=95)
    asked: list[tuple[object, object]] = []
    real = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: object, size: object) -> object:
        out = real(self, mode, size)
        asked.append((size, self.size))  # the size asked for, and the size it will decode at
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    t = load_thumbnail(path, 160)
    assert t.shape == (120, 160, 3)
    assert len(asked) == 1
    (want_w, want_h), (w, h) = asked[0]
    assert (w, h) == (400, 300)  # DCT scale 1/4: at least twice the thumbnail (320 × 240)
    assert w >= want_w and h >= want_h
    for got, want in zip(corner_colours(t), corner_colours(quadrants(1200, 1600)), strict=True):
        assert close(got, want)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_turns_the_thumbnail(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / f"turned{orientation}.jpg"
    im = Image.fromarray(quadrants(600, 800))
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, quality=95, exif=exif)
    full = load_photo(path)
    t = load_thumbnail(path, 160)
    assert max(t.shape[:2]) == 160
    assert t.shape[:2] == ((160, 120) if orientation in (6, 8) else (120, 160))
    assert (t.shape[0] > t.shape[1]) == (full.shape[0] > full.shape[1])
    for got, want in zip(corner_colours(t), corner_colours(full), strict=True):
        assert close(got, want)


def test_errors_are_photo_errors_with_load_photos_codes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all" * 10)
    cut = tmp_path / "cut.png"
    Image.fromarray(quadrants(200, 200)).save(cut)
    cut.write_bytes(cut.read_bytes()[:300])
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    for path in (empty, junk, cut, folder, tmp_path / "missing.jpg"):
        with pytest.raises(PhotoError) as thumb_err:
            load_thumbnail(path, 64)
        with pytest.raises(PhotoError) as full_err:
            load_photo(path)
        assert thumb_err.value.code == full_err.value.code, path
        assert str(path.name) in str(thumb_err.value)


def test_declared_size_over_the_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.fromarray(quadrants(100, 100)).save(path)
    with pytest.raises(PhotoError) as err:
        load_thumbnail(path, 64, max_pixels=5000)
    assert err.value.code == "bomb"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")
def test_a_fifo_is_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(PhotoError) as err:
        load_thumbnail(fifo, 64)  # would block forever if it were opened
    assert err.value.code == "not-regular"


def test_side_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="side"):
        load_thumbnail(tmp_path / "x.png", 0)


def test_module_has_no_qt() -> None:
    assert "PySide6" not in Path(thumbs.__file__).read_text(encoding="utf-8")
