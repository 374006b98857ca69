"""Formats phones and cameras write (DESIGN §5, "Load"): HEIC/HEIF (pillow-heif), AVIF
(Pillow's own plugin), camera RAW through its embedded preview (rawpy), each turned upright
exactly as a JPEG with the same EXIF orientation; clear skip reasons where they cannot be read."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketchpad.gallery import decode
from sketchpad.gallery.images import PhotoError, is_photo_name, load_photo, load_photo_at
from sketchpad.gallery.samples import dng_bytes, exif_with_orientation, save_avif, save_heic
from sketchpad.gallery.thumbs import load_thumbnail


def marked(h: int = 48, w: int = 64) -> np.ndarray:
    """Green with a red block in the top-left corner: where it lands shows the turn."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 1] = 160
    a[: h // 4, : w // 4] = (255, 0, 0)
    return a


def red_corner(a: np.ndarray) -> tuple[int, int]:
    """(row, col) of the red block's centre, each 0 (top/left) or 1 (bottom/right)."""
    ys, xs = np.nonzero((a[..., 0] > 180) & (a[..., 1] < 90))
    return int(ys.mean() > a.shape[0] / 2), int(xs.mean() > a.shape[1] / 2)


def as_jpeg(tmp_path: Path, rgb: np.ndarray, orientation: int) -> np.ndarray:
    p = tmp_path / f"ref{orientation}.jpg"
    Image.fromarray(rgb).save(p, quality=95, exif=exif_with_orientation(orientation))
    return load_photo(p)


def test_the_extensions_are_photo_names() -> None:
    for name in ("a.heic", "b.HEIF", "c.hif", "d.avif", "e.dng", "f.CR2", "g.cr3", "h.nef"):
        assert is_photo_name(name), name
    assert {"AVIF", "HEIF"} <= set(decode.allowed_formats())


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["heic", "avif"])
def test_heic_and_avif_are_turned_upright_like_jpeg(
    tmp_path: Path, fmt: str, orientation: int
) -> None:
    src = marked()
    save = save_heic if fmt == "heic" else save_avif
    p = save(tmp_path / f"photo.{fmt}", src, orientation)
    got = load_photo(p)
    ref = as_jpeg(tmp_path, src, orientation)
    assert got.shape == ref.shape and got.dtype == np.uint8
    assert red_corner(got) == red_corner(ref)
    assert np.abs(got.astype(int) - ref.astype(int)).mean() < 8  # lossy codecs, same picture
    small, full = load_photo_at(p, 16)
    assert full == ref.shape[:2] and max(small.shape[:2]) == 16
    assert red_corner(small) == red_corner(ref)


def test_heic_and_avif_thumbnails(tmp_path: Path) -> None:
    for p in (save_heic(tmp_path / "a.heic", marked()), save_avif(tmp_path / "b.avif", marked())):
        assert load_thumbnail(p, 32).shape == (24, 32, 3)


@pytest.mark.parametrize("jpeg", [True, False], ids=["jpeg-preview", "rgb-preview"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_a_dng_is_read_through_its_preview(tmp_path: Path, jpeg: bool, orientation: int) -> None:
    """The preview, turned as the RAW's orientation says (previews are stored unrotated)."""
    src = marked()
    p = tmp_path / "IMG_0001.DNG"
    p.write_bytes(dng_bytes(src, orientation=orientation, jpeg=jpeg))
    got = load_photo(p)
    ref = as_jpeg(tmp_path, src, orientation)
    assert got.shape == ref.shape and red_corner(got) == red_corner(ref)
    assert np.abs(got.astype(int) - ref.astype(int)).mean() < 8
    small, full = load_photo_at(p, 32)
    assert full == ref.shape[:2] and max(small.shape[:2]) == 32


@pytest.mark.parametrize("name", ["IMG_0002.CR2", "DSC_0003.NEF", "DSC00004.ARW"])
def test_tiff_based_raws_are_not_misread_as_tiff(tmp_path: Path, name: str) -> None:
    """Pillow would read such a file's first IFD as a TIFF (a small thumbnail, or the raw
    sensor data); the extension sends it to the RAW reader instead."""
    src = marked()
    p = tmp_path / name
    p.write_bytes(dng_bytes(src))
    assert load_photo(p).shape == src.shape


def test_raw_without_a_preview_is_skipped_with_its_reason(tmp_path: Path) -> None:
    p = tmp_path / "no_preview.dng"
    p.write_bytes(dng_bytes(None))
    with pytest.raises(PhotoError) as info:
        load_photo(p)
    assert info.value.code == "unsupported"
    assert "without an embedded preview" in info.value.reason


def test_a_damaged_or_fake_raw_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "fake.nef"
    fake.write_bytes(b"II*\0" + bytes(200))
    cut = tmp_path / "cut.dng"
    cut.write_bytes(dng_bytes(marked())[:300])
    for p in (fake, cut):
        with pytest.raises(PhotoError) as info:
            load_photo(p)
        assert info.value.code in {"corrupt", "truncated", "unsupported"}, info.value
        assert p.name in str(info.value)


def test_without_rawpy_a_raw_is_skipped_with_a_clear_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "x.dng"
    p.write_bytes(dng_bytes(marked()))
    monkeypatch.setitem(sys.modules, "rawpy", None)  # import rawpy raises ImportError
    with pytest.raises(PhotoError) as info:
        load_photo(p)
    assert info.value.code == "unsupported" and "rawpy" in info.value.reason


def test_heif_without_its_plugin_is_named_in_the_skip_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = save_heic(tmp_path / "a.heic", marked())
    no_heif = tuple(f for f in decode.allowed_formats() if f != "HEIF")
    monkeypatch.setattr(decode, "allowed_formats", lambda: no_heif)
    with pytest.raises(PhotoError) as info:
        load_photo(p)
    assert info.value.code == "unsupported" and "HEIF" in info.value.reason
