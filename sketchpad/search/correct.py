"""Correcting a photo's mask by hand: brush, eraser, and scribble refinement (no Qt).

- :func:`paint` adds (brush) or removes (eraser) a round-tipped stroke of pixels.
- :func:`refine_with_scribbles` re-segments the photo with OpenCV's GrabCut, started from the
  query's probability map (likely object where it passes the threshold, likely background
  elsewhere) and fixed where the user scribbled: positive strokes are object, negative ones
  background. GrabCut models the object's and the background's colours (Gaussian mixtures) and
  cuts along colour edges, so a few strokes pull a mask onto the object's real outline — what
  labelme-style tools do with SAM clicks, here without a second model. It runs at a working size
  (long side :data:`WORK_SIDE`), which keeps it well under a second on a 1 MP photo.

Masks are (H, W) bool at the photo's size; points are (x, y) photo pixels (pixel (x, y) covers
[x, x + 1) × [y, y + 1)).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: GrabCut runs on the photo scaled to this long side (pixels), at most.
WORK_SIDE = 512
#: GrabCut iterations.
ITERATIONS = 4


def _check(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2 or m.dtype != np.bool_:
        raise ValueError(f"a mask must be (H, W) bool, got {m.shape} {m.dtype}")
    return m


def _stroke_pixels(
    hw: tuple[int, int], points_xy: np.ndarray, radius: float, scale: float = 1.0
) -> np.ndarray:
    """(H, W) uint8: 1 under a round-tipped stroke of ``radius`` through ``points_xy``."""
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    if pts.size == 0 or not np.isfinite(pts).all():
        raise ValueError("a stroke needs at least one finite point")
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"the brush radius must be positive, got {radius!r}")
    out = np.zeros(hw, np.uint8)
    shift = 4  # sub-pixel positions: 1/16 pixel
    # pixel (x, y) has its centre at (x + 0.5, y + 0.5); OpenCV draws at integer centres
    p = np.round(((pts * scale) - 0.5) * (1 << shift)).astype(np.int32)
    r = max(1, int(round(radius * scale)))
    for a, b in zip(p[:-1], p[1:], strict=True):
        cv2.line(out, tuple(map(int, a)), tuple(map(int, b)), 1, 2 * r, cv2.LINE_8, shift)
    for c in p:
        cv2.circle(out, tuple(map(int, c)), r << shift, 1, -1, cv2.LINE_8, shift)
    return out


def paint(mask: np.ndarray, points_xy: np.ndarray, radius: float, value: bool) -> np.ndarray:
    """A copy of ``mask`` with a round-tipped stroke of ``radius`` pixels through
    ``points_xy`` ((N, 2) photo pixels) set to ``value`` (True: brush, False: eraser)."""
    m = _check(mask)
    under = _stroke_pixels(m.shape, points_xy, radius).astype(bool)
    out = m.copy()
    out[under] = value
    return out


def refine_with_scribbles(
    photo: np.ndarray,
    prob: np.ndarray,
    threshold: float,
    *,
    positive: Sequence[np.ndarray] = (),
    negative: Sequence[np.ndarray] = (),
    radius: float = 6.0,
    work_side: int = WORK_SIDE,
    iterations: int = ITERATIONS,
) -> np.ndarray:
    """The photo re-segmented by GrabCut from the query's map and the user's scribbles.

    Args:
        photo: (H, W, 3) uint8 RGB.
        prob: (H, W) float foreground probability (the query's, or the current mask as 0/1).
        threshold: where ``prob`` counts as likely object.
        positive: strokes ((N, 2) photo pixels) over the object.
        negative: strokes over the background.
        radius: the scribbles' radius in photo pixels.

    Returns:
        (H, W) bool. Scribbled pixels always end up as scribbled.

    Raises:
        ValueError: mismatched shapes, or nothing to start from (no likely object and no
            positive scribble).
    """
    img = np.asarray(photo)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"the photo must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    p = np.asarray(prob, dtype=np.float32)
    h, w = img.shape[:2]
    if p.shape != (h, w):
        raise ValueError(f"the map is {p.shape}, the photo {(h, w)}")
    scale = min(1.0, work_side / max(h, w))
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else img
    p_small = cv2.resize(p, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else p
    gc = np.where(p_small >= threshold, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    pos = np.zeros((h, w), bool)
    neg = np.zeros((h, w), bool)
    for stroke in positive:
        gc[_stroke_pixels((sh, sw), stroke, radius, scale).astype(bool)] = cv2.GC_FGD
        pos |= _stroke_pixels((h, w), stroke, radius).astype(bool)
    for stroke in negative:
        gc[_stroke_pixels((sh, sw), stroke, radius, scale).astype(bool)] = cv2.GC_BGD
        neg |= _stroke_pixels((h, w), stroke, radius).astype(bool)
    fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    if not fg.any():
        raise ValueError("nothing to refine: scribble over the object first")
    if fg.all() or not ((gc == cv2.GC_BGD) | (gc == cv2.GC_PR_BGD)).any():
        out = np.ones((h, w), bool)  # GrabCut needs both kinds: everything is object
    else:
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        bgr = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2BGR)
        cv2.grabCut(bgr, gc, (0, 0, 0, 0), bgd, fgd, int(iterations), cv2.GC_INIT_WITH_MASK)
        obj = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.float32)
        if scale < 1:
            obj = cv2.resize(obj, (w, h), interpolation=cv2.INTER_LINEAR)
        out = obj >= 0.5
    out[pos] = True
    out[neg] = False
    return out
