"""Bitmaps: PNG/JPEG ↔ raster-only sketches, decoded defensively."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketchpad.sketch.io import SketchFileError, read_sketch, sketch_to_json_bytes, write_sketch
from sketchpad.sketch.model import Sketch, Stroke


def test_raster_sketch_png_round_trip_is_exact(tmp_path: Path) -> None:
    ink = np.random.default_rng(0).integers(0, 256, size=(33, 47), dtype=np.uint8)
    sketch = Sketch(raster=ink, width=47, height=33)
    path = tmp_path / "scan.PNG"  # extensions are case-insensitive
    write_sketch(sketch, path)
    with Image.open(path) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), 255 - ink)
    back = read_sketch(path)
    assert back.is_raster and not back.strokes and np.array_equal(back.raster, ink)
    assert (back.width, back.height) == (47, 33)


def test_vector_sketch_is_rendered_at_canvas_size(tmp_path: Path) -> None:
    sketch = Sketch(strokes=(Stroke(points=[[10, 20], [90, 20]], width=4),), width=100, height=50)
    path = tmp_path / "drawing.png"
    write_sketch(sketch, path)
    grey = np.asarray(Image.open(path))
    assert grey.shape == (50, 100) and grey.dtype == np.uint8
    assert grey[20, 50] < 64 and grey[5, 50] == 255 and grey[20, 97] == 255  # ink on the line only


def png_bytes(im: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def read_bytes(tmp_path: Path, data: bytes, name: str = "in.png") -> Sketch:
    path = tmp_path / name
    path.write_bytes(data)
    return read_sketch(path)


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)  # black, fully transparent...
    rgba[0, 0] = (0, 0, 0, 255)  # ...except one opaque black pixel
    rgba[1, 1] = (0, 0, 0, 128)  # and a half-transparent one
    s = read_bytes(tmp_path, png_bytes(Image.fromarray(rgba)))
    assert s.raster[0, 0] == 255 and s.raster[2, 2] == 0 and 120 < s.raster[1, 1] < 135
    pal = Image.new("P", (3, 1))
    pal.putpalette([0, 0, 0, 255, 255, 255])
    pal.putdata([0, 1, 0])
    s = read_bytes(tmp_path, png_bytes(pal, transparency=0))  # palette entry 0 is transparent
    assert s.raster.tolist() == [[0, 0, 0]]


def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    a = np.array([[0, 32896, 65535]], dtype=np.uint16)
    s = read_bytes(tmp_path, png_bytes(Image.fromarray(a)))
    assert s.raster.tolist() == [[255, 127, 0]]


def test_jpeg_with_exif_rotation(tmp_path: Path) -> None:
    grey = np.full((10, 20), 255, np.uint8)
    grey[:, :5] = 0  # ink on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JPEG", exif=exif, quality=95)
    s = read_bytes(tmp_path, buf.getvalue(), "photo.jpeg")
    assert s.raster.shape == (20, 10) and (s.width, s.height) == (10, 20)
    assert s.raster[:5].mean() > 200 and s.raster[-5:].mean() < 30  # the left edge is now the top


def test_first_frame_only(tmp_path: Path) -> None:
    frames = [Image.new("L", (4, 4), 0), Image.new("L", (4, 4), 255)]
    buf = io.BytesIO()
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:])
    assert read_bytes(tmp_path, buf.getvalue()).raster.min() == 255


def test_decompression_bombs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for side in (40, 100):  # 1,600 pixels: Pillow only warns; 10,000: Pillow raises
        with pytest.raises(SketchFileError, match="bomb.png: the image is too large"):
            read_bytes(tmp_path, png_bytes(Image.new("L", (side, side))), "bomb.png")


def test_png_saves_with_pillows_size_limit_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Image.MAX_IMAGE_PIXELS = None`` is Pillow's documented "no limit" (was a TypeError)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    sketch = Sketch(strokes=(Stroke(points=[[1, 1], [9, 1]], width=2),), width=12, height=5)
    write_sketch(sketch, tmp_path / "free.png")
    with Image.open(tmp_path / "free.png") as im:
        assert im.size == (12, 5)


@pytest.mark.parametrize("name", ["junk.png", "junk.jpg"])
def test_damaged_images(tmp_path: Path, name: str) -> None:
    with pytest.raises(SketchFileError, match=f"{name}: the image is not a PNG or JPEG"):
        read_bytes(tmp_path, b"definitely not an image", name)
    gif = io.BytesIO()
    Image.new("L", (4, 4)).save(gif, format="GIF")
    with pytest.raises(SketchFileError, match="not a PNG or JPEG"):
        read_bytes(tmp_path, gif.getvalue(), name)
    data = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)))
    with pytest.raises(SketchFileError, match=f"{name}: the image could not be decoded"):
        read_bytes(tmp_path, data[: len(data) // 2], name)


def test_raster_sketch_to_vector_formats_is_refused(tmp_path: Path) -> None:
    s = Sketch(raster=np.zeros((3, 3), np.uint8), width=3, height=3)
    sketch_to_json_bytes(s)  # JSON and PNG hold raster sketches
    write_sketch(s, tmp_path / "ok.png")
    for ext in (".svg", ".ndjson", ".npz", ".npy"):
        with pytest.raises(SketchFileError, match="no strokes"):
            write_sketch(s, tmp_path / f"r{ext}")
