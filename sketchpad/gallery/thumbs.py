"""Thumbnails without Qt: a photo decoded small, as ``images.load_photo`` decodes it in full.

``load_thumbnail`` follows ``load_photo``'s rules (DESIGN §5, "Load") — the file is looked at
before it is opened (never a FIFO), formats are restricted, the declared size is checked before
decoding, EXIF orientation is applied, deep images are scaled, alpha is composited on white,
first frame only — and raises the same ``PhotoError`` with the same reason codes. It is faster
for thumbnails in two ways: a JPEG is decoded at a reduced scale by the DCT itself
(``Image.draft``, 1/2 … 1/8, never smaller than asked), and the shrink to ``side`` reduces by
whole factors before resampling (``reducing_gap``), as ``Image.thumbnail`` does.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from sketchpad.gallery import decode
from sketchpad.gallery.decode import (
    BOMB,
    CORRUPT,
    EMPTY,
    MAX_PIXELS,
    MEMORY,
    NOT_REGULAR,
    UNSUPPORTED,
    kind,
)
from sketchpad.gallery.images import _O_FLAGS, PhotoError, _os_problem

__all__ = ["load_thumbnail", "thumbnail_size"]

#: Formats whose decoder can scale while decoding (``Image.draft``).
_DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
#: ``reducing_gap`` of the final resize (Pillow's thumbnail default): reduce by whole factors
#: while the image stays at least twice the target, then resample bicubically.
_REDUCING_GAP = 2.0


def thumbnail_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) of a ``width`` × ``height`` image fitted in ``side`` × ``side``, aspect
    ratio kept, each at least 1 pixel; unchanged when it already fits (never enlarged)."""
    if width <= side and height <= side:
        return width, height
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_thumbnail(path: Path | str, side: int, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode a photo small: a new (h, w, 3) uint8 RGB array, upright, long side ≤ ``side``.

    Args:
        path: The file (JPEG, PNG, BMP, GIF, TIFF or WebP, whatever the extension says).
        side: Longest side of the result in pixels (≥ 1); smaller photos keep their size.
        max_pixels: Refuse images declaring more pixels (default ``MAX_PIXELS``).

    Raises:
        PhotoError: as ``images.load_photo`` (missing, not a regular file, empty, not an
            allowed format, truncated, corrupt, too many pixels, out of memory …).
        ValueError: ``side`` < 1.
    """
    if side < 1:
        raise ValueError(f"thumbnail side must be ≥ 1, got {side}")
    path = Path(path)
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    try:
        st = os.stat(path)  # look before opening: never open a FIFO or a device
        if not stat.S_ISREG(st.st_mode):
            raise PhotoError(path, f"{kind(st.st_mode)}, not a photo file", NOT_REGULAR)
        fd = os.open(path, _O_FLAGS)
    except OSError as e:
        raise _os_problem(path, e) from e
    with open(fd, "rb", closefd=True) as fp:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # replaced between stat and open
                raise PhotoError(path, f"{kind(st.st_mode)}, not a photo file", NOT_REGULAR)
            if st.st_size == 0:
                raise PhotoError(path, "an empty file (0 bytes)", EMPTY)
            header = fp.read(32)
            fp.seek(0)
        except OSError as e:
            raise _os_problem(path, e) from e
        try:
            return _decode_small(fp, limit, side)
        except Image.UnidentifiedImageError as e:
            raise PhotoError(path, *decode.unidentified_reason(header)) from e
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise PhotoError(path, f"refused as a possible decompression bomb ({e})", BOMB) from e
        except MemoryError as e:
            raise PhotoError(path, "not enough memory to decode it", MEMORY) from e
        except OSError as e:
            raise PhotoError(path, *decode.decoder_error_reason(e, header, st.st_size)) from e
        except (SyntaxError, ValueError, OverflowError) as e:
            raise PhotoError(path, f"damaged or not a valid image ({e})", CORRUPT) from e
        except NotImplementedError as e:
            raise PhotoError(path, f"a variant Pillow cannot decode ({e})", UNSUPPORTED) from e


def _decode_small(fp: IO[bytes], limit: int, side: int) -> np.ndarray:
    """``decode.decode_rgb`` with a draft-mode decode and a shrink before turning upright."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    bomb_warning = "error" if pillow_limit is None or limit <= pillow_limit else "ignore"
    # The same process-wide warnings dance as decode.decode_rgb, under the same lock.
    with decode._OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter(bomb_warning, Image.DecompressionBombWarning)
        opened = Image.open(fp, formats=decode.allowed_formats())
    with opened as im:
        w, h = im.size
        if w * h > limit:
            raise Image.DecompressionBombError(f"{w}×{h} pixels, over the limit of {limit:,}")
        if w < 1 or h < 1:
            raise ValueError(f"an image of {w}×{h} pixels")
        upright = decode.orientation(im)
        tw, th = thumbnail_size(w, h, side)
        if im.format in _DRAFT_FORMATS and (tw, th) != (w, h):
            # The DCT scale keeps the image at least (tw, th) × the reducing gap, so the final
            # resample still has pixels to average (as Image.thumbnail asks for).
            im.draft(im.mode, (math.ceil(tw * _REDUCING_GAP), math.ceil(th * _REDUCING_GAP)))
        im.load()  # the first frame only: no seek
        try:
            rgb = decode.to_rgb_array(im)
        except ValueError as e:
            raise NotImplementedError(f"cannot convert mode {im.mode} to RGB ({e})") from e
    if rgb.shape[:2] != (th, tw):
        small = Image.fromarray(rgb).resize(
            (tw, th), Image.Resampling.BICUBIC, reducing_gap=_REDUCING_GAP
        )
        rgb = np.array(small, dtype=np.uint8)
    return np.ascontiguousarray(decode.apply_orientation(rgb, upright))
