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

from pathlib import Path

import numpy as np

from sketchpad.gallery.decode import thumbnail_size
from sketchpad.gallery.images import load_photo

__all__ = ["load_thumbnail", "thumbnail_size"]


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
    return load_photo(path, max_pixels=max_pixels, side=side)
