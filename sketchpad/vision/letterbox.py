"""Photo → model input geometry: the whole photo, letterboxed, and the way back to its pixels.

A centre crop (what CLIP's own preprocessing does) would cut masks off at the photo's sides, so
the photo is scaled to fit the square input whole and centred on a neutral background (the
normalisation mean, i.e. zero after normalising). ``Letterbox`` records where it landed so a
patch map comes back aligned to photo pixels for any aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Letterbox:
    """Where a photo sits in the square model input.

    Attributes:
        photo_hw: (H, W) of the photo in pixels.
        input_size: side of the square model input (pixels).
        content_xyxy: the photo's rectangle in input pixels (x0, y0, x1, y1), x1/y1 exclusive.
    """

    photo_hw: tuple[int, int]
    input_size: int
    content_xyxy: tuple[int, int, int, int]

    def content_grid_xyxy(self, patch_size: int) -> tuple[float, float, float, float]:
        """The photo's rectangle in grid units (patch i covers [i, i+1))."""
        x0, y0, x1, y1 = self.content_xyxy
        p = float(patch_size)
        return (x0 / p, y0 / p, x1 / p, y1 / p)

    def valid_patches(self, patch_size: int) -> np.ndarray:
        """(g, g) bool: patches that overlap the photo (the rest is padding)."""
        g = self.input_size // patch_size
        x0, y0, x1, y1 = self.content_grid_xyxy(patch_size)
        cols = (np.arange(g) + 1 > x0) & (np.arange(g) < x1)
        rows = (np.arange(g) + 1 > y0) & (np.arange(g) < y1)
        return rows[:, None] & cols[None, :]


def fit_letterbox(photo_hw: tuple[int, int], input_size: int) -> Letterbox:
    """Uniform scale so the long side fills ``input_size``; the short side is centred."""
    h, w = int(photo_hw[0]), int(photo_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"photo_hw must be positive, got {photo_hw}")
    scale = input_size / max(h, w)
    cw = min(input_size, max(1, round(w * scale)))
    ch = min(input_size, max(1, round(h * scale)))
    x0, y0 = (input_size - cw) // 2, (input_size - ch) // 2
    return Letterbox((h, w), int(input_size), (x0, y0, x0 + cw, y0 + ch))


def letterbox_image(
    image: np.ndarray, input_size: int, fill_rgb: tuple[int, int, int]
) -> tuple[np.ndarray, Letterbox]:
    """Resize an (H, W, 3) uint8 RGB photo into an (S, S, 3) uint8 input, whole and centred.

    Resampling is bicubic with Pillow's antialiasing when shrinking (as CLIP's training
    preprocessing); ``fill_rgb`` is the background (use the normalisation mean).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    box = fit_letterbox(image.shape[:2], input_size)
    x0, y0, x1, y1 = box.content_xyxy
    resized = np.asarray(
        Image.fromarray(image).resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC)
    )
    out = np.empty((input_size, input_size, 3), dtype=np.uint8)
    out[:] = np.asarray(fill_rgb, dtype=np.uint8)
    out[y0:y1, x0:x1] = resized
    return out, box
