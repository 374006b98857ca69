"""Bitmap sketches (PNG, JPEG) ↔ raster-only :class:`Sketch` (DESIGN §3).

Reading keeps the picture as ink coverage, ``ink = 255 − grey`` (0 = paper,
255 = full ink), in a sketch with no strokes. Images are decoded defensively, as in
the gallery (DESIGN §5): formats restricted to PNG and JPEG, the decompression-bomb
warning turned into an error, EXIF orientation applied, first frame only, alpha
composited on white paper, 16-bit grey scaled (not clipped) to 8 bits.

Writing renders a vector sketch with :func:`sketchpad.sketch.raster.rasterize` at
canvas size (one image pixel per canvas pixel, each stroke at its own width), black
on white; a raster-only sketch is written back as ``255 − raster``.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..model import Sketch
from ._common import (
    SketchFileError,
    check_coordinates,
    check_index,
    make_sketch,
    read_file_bytes,
)

EXTENSIONS = (".png", ".jpg", ".jpeg")

#: Pillow's documented failures while identifying or decoding an image, plus the few
#: its decoders let escape on malformed data (bad EXIF, truncated chunks).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    EOFError,
    MemoryError,
    NotImplementedError,
    OverflowError,
    IndexError,
    KeyError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

#: Largest PNG export (pixels) when Pillow's own limit is switched off (its default).
_MAX_EXPORT_PIXELS = 89_478_485

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def read_bitmap(path: Path, index: int = 0) -> Sketch:
    """A raster-only sketch of the image at ``path``; canvas = image size in pixels."""
    check_index(path, index, 1)
    grey = _decode(read_file_bytes(path), path, ("PNG", "JPEG"))
    h, w = grey.shape
    metadata = {"source_format": "bitmap", "source_file": path.name}
    return make_sketch(path, raster=255 - grey, width=w, height=h, metadata=metadata)


def encode_png(sketch: Sketch, path: Path) -> bytes:
    """PNG bytes (8-bit grey, black ink on white) of ``sketch`` at its canvas size."""
    if sketch.raster is not None:
        grey = 255 - sketch.raster
    else:
        from ..raster import canvas_frame, rasterize

        hw = (max(1, round(sketch.height)), max(1, round(sketch.width)))
        # Pillow's limit, or ours where it is switched off: never an absurd allocation.
        limit = Image.MAX_IMAGE_PIXELS or _MAX_EXPORT_PIXELS
        if hw[0] * hw[1] > limit:
            raise SketchFileError(
                path, f"the canvas ({hw[1]}×{hw[0]} pixels) is too large to save as PNG"
            )
        check_coordinates(sketch, path, "PNG")
        try:
            grey = rasterize(sketch, hw, frame=canvas_frame(sketch, hw), line_width=None)
        except ValueError as e:
            raise SketchFileError(path, f"the sketch cannot be drawn as PNG: {e}") from e
    return encode_gray_png(grey)


def encode_gray_png(a: np.ndarray) -> bytes:
    """(H, W) uint8 → 8-bit greyscale PNG bytes (lossless)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def decode_gray_png(data: bytes, path: Path) -> np.ndarray:
    """8-bit greyscale PNG bytes → (H, W) uint8, exactly as stored (no inversion)."""
    return _decode(data, path, ("PNG",), what="the embedded raster")


def _decode(
    data: bytes, path: Path, formats: tuple[str, ...], what: str = "the image"
) -> np.ndarray:
    """Decode ``data`` to (H, W) uint8 grey, 255 = white; any failure → SketchFileError."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1× and 2× MAX_IMAGE_PIXELS; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(formats)) as im:
                im.seek(0)
                im.load()
                return _to_grey(ImageOps.exif_transpose(im))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise SketchFileError(
            path, f"{what} is too large to open safely (decompression bomb protection): {e}"
        ) from e
    except UnidentifiedImageError as e:
        names = " or ".join(formats)
        raise SketchFileError(path, f"{what} is not a {names} image, or it is damaged") from e
    except _DECODE_ERRORS as e:
        raise SketchFileError(
            path, f"{what} could not be decoded (damaged or truncated?): {e}"
        ) from e


def _to_grey(im: Image.Image) -> np.ndarray:
    if im.mode in _SIXTEEN_BIT_MODES:
        # 16-bit grey: scale the full range to 0–255 rather than clipping at 255.
        a = np.asarray(im, dtype=np.float64)
        return np.clip(np.round(a * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(paper, rgba)
    return np.array(im.convert("L"), dtype=np.uint8)
