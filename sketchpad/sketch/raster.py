"""Deterministic, Qt-free rasteriser: the model's view of a sketch (DESIGN §3).

White paper, black anti-aliased round-capped lines. Pixel (i, j) has its centre at image
coordinates (x, y) = (j + 0.5, i + 0.5); a pixel's ink is ``clip(r + 0.5 − dist, 0, 1)``
for a line of half-width r, the maximum over all segments. Pure numpy, so the same input
gives the same bytes on every machine.

Framing: :func:`fit_frame` scales the bounding box of the *whole* sketch uniformly to fit
with a margin, centred. A part query passes the whole sketch's frame so the part stays
where it was (seed 000's part query is a spatial subset of the full sketch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import Sketch

#: Segments longer than this (image pixels) are drawn as several pieces.
_PIECE = 8.0
#: Window pixels evaluated at once; bounds the work arrays (~100 MB at most).
_WINDOW_BUDGET = 1 << 20
#: Largest image coordinate drawn: beyond it float64 no longer places a clipped line to
#: within a thousandth of a pixel, so :func:`rasterize` refuses rather than draw it wrong.
MAX_IMAGE_COORDINATE = 1e12


@dataclass(frozen=True)
class Frame:
    """Canvas → image mapping: ``image_xy = canvas_xy · scale + (tx, ty)``."""

    scale: float
    tx: float
    ty: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) canvas coordinates → (N, 2) image coordinates."""
        return points * self.scale + np.array([self.tx, self.ty])


def fit_frame(
    bbox: tuple[float, float, float, float] | None, out_hw: tuple[int, int], margin: float = 0.1
) -> Frame:
    """Frame that fits ``bbox`` (x0, y0, x1, y1) into an image of ``out_hw`` (H, W), uniformly
    scaled, centred, leaving ``margin`` (a fraction of each side) free. A degenerate box (a dot
    or a straight line) is scaled by its other side, or 1 when both are zero."""
    h, w = out_hw
    if bbox is None:
        return Frame(1.0, 0.0, 0.0)
    x0, y0, x1, y1 = bbox
    avail_w, avail_h = w * (1 - 2 * margin), h * (1 - 2 * margin)
    bw, bh = x1 - x0, y1 - y0
    scales = [s for s in (avail_w / bw if bw > 0 else None, avail_h / bh if bh > 0 else None) if s]
    scale = min(scales) if scales else 1.0
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return Frame(scale, w / 2.0 - scale * cx, h / 2.0 - scale * cy)


def canvas_frame(sketch: Sketch, out_hw: tuple[int, int]) -> Frame:
    """Frame that maps the whole canvas (0, 0, width, height) onto ``out_hw``, centred."""
    h, w = out_hw
    scale = min(w / sketch.width, h / sketch.height)
    return Frame(scale, (w - scale * sketch.width) / 2.0, (h - scale * sketch.height) / 2.0)


def rasterize(
    sketch: Sketch,
    out_hw: tuple[int, int],
    *,
    frame: Frame | None = None,
    line_width: float | None = 3.0,
    margin: float = 0.1,
) -> np.ndarray:
    """Render ``sketch`` as a grey image.

    Args:
        sketch: vector or raster-only sketch.
        out_hw: (H, W) of the image.
        frame: canvas → image mapping; default ``fit_frame(sketch.bbox(), out_hw, margin)``.
        line_width: line width in *image* pixels for every stroke (the model's view), or None
            to use each stroke's own width scaled by the frame (an export of the drawing).
        margin: used only when ``frame`` is None.

    Returns:
        (H, W) uint8, 255 = paper, 0 = full ink.
    """
    h, w = int(out_hw[0]), int(out_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"out_hw must be positive, got {out_hw}")
    if frame is None:
        frame = fit_frame(sketch.bbox(), (h, w), margin)
    if sketch.raster is not None:
        return 255 - _resample_ink(sketch.raster, frame, (h, w))
    ink = np.zeros((h, w), dtype=np.float64)
    for stroke in sketch.strokes:
        r = (line_width if line_width is not None else stroke.width * frame.scale) / 2.0
        pts = frame.apply(stroke.points)
        big = float(np.abs(pts).max())
        if not big <= MAX_IMAGE_COORDINATE or not r <= MAX_IMAGE_COORDINATE:
            raise ValueError(
                f"stroke {stroke.id!r} lies {big:.3g} pixels from the image (width "
                f"{2 * r:.3g}): too far to draw exactly"
            )
        pts = _drop_subpixel_steps(pts)
        if len(pts) == 1:
            a = b = pts
        else:
            a, b = pts[:-1], pts[1:]
        _draw_segments(ink, a, b, r)
    # round(255 · (1 − ink)) in place: a canvas-size export (up to Pillow's 89 MP) holds one
    # float64 image, not four
    np.subtract(1.0, ink, out=ink)
    ink *= 255.0
    return np.round(ink, out=ink).astype(np.uint8)


def _drop_subpixel_steps(pts: np.ndarray) -> np.ndarray:
    """Keep one point per half pixel of arc length (plus both ends): very dense strokes
    (millions of points) render in bounded time, and the line moves by < 0.5 px."""
    if len(pts) <= 2:
        return pts
    step = np.sqrt(np.einsum("sd,sd->s", np.diff(pts, axis=0), np.diff(pts, axis=0)))
    bucket = np.floor(np.concatenate([[0.0], np.cumsum(step)]) / 0.5)
    keep = np.concatenate([[True], bucket[1:] != bucket[:-1]])
    keep[-1] = True
    return pts[keep]


def _draw_segments(ink: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> None:
    """Max-accumulate the coverage of capsules a→b (S, 2) of radius r into ``ink`` in place.

    Long segments are subdivided so that every piece fits a small fixed window; all windows
    are then evaluated at once and scattered with a maximum, which keeps the cost
    proportional to the inked area rather than to bounding boxes.
    """
    h, w = ink.shape
    a, b = _clip_segments(a, b, (-r - 2.0, -r - 2.0, w + r + 2.0, h + r + 2.0))
    if not len(a):
        return
    size = int(np.ceil(_PIECE + 2 * r + 3))
    if size * size >= h * w:  # a line wider than the image: every pixel of it, per segment
        _draw_segments_dense(ink, a, b, r)
        return
    e = b - a
    lengths = np.sqrt(np.einsum("sd,sd->s", e, e))
    counts = np.maximum(1, np.ceil(lengths / _PIECE)).astype(np.int64)
    if counts.max() > 1:
        seg = np.repeat(np.arange(len(a)), counts)
        k = np.arange(len(seg)) - np.repeat(np.cumsum(counts) - counts, counts)
        n = np.repeat(counts, counts)
        a, b = a[seg] + e[seg] * (k / n)[:, None], a[seg] + e[seg] * ((k + 1) / n)[:, None]
        e = b - a
    oy, ox = np.mgrid[0:size, 0:size]
    offsets = np.stack([ox.ravel(), oy.ravel()], axis=1)  # (K², 2) window pixel offsets
    per_chunk = max(1, _WINDOW_BUDGET // (size * size))
    for i in range(0, len(a), per_chunk):
        ca, ce = a[i : i + per_chunk], e[i : i + per_chunk]
        corner = np.floor(np.minimum(ca, ca + ce) - r - 1).astype(np.int64)  # (S,2) window origin
        pix = corner[:, None, :] + offsets[None, :, :]  # (S,K²,2) integer pixel coords
        ap = (pix + 0.5) - ca[:, None, :]
        ee = np.einsum("sd,sd->s", ce, ce)
        u = np.einsum("spd,sd->sp", ap, ce) / np.where(ee > 0, ee, 1.0)[:, None]
        u = np.clip(u, 0.0, 1.0)
        d = ap - u[..., None] * ce[:, None, :]
        cover = np.clip(r + 0.5 - np.sqrt(np.einsum("spd,spd->sp", d, d)), 0.0, 1.0)
        inside = (
            (cover > 0)
            & (pix[..., 0] >= 0)
            & (pix[..., 0] < w)
            & (pix[..., 1] >= 0)
            & (pix[..., 1] < h)
        )
        flat = pix[..., 1][inside] * w + pix[..., 0][inside]
        np.maximum.at(ink.reshape(-1), flat, cover[inside])


def _clip_segments(
    a: np.ndarray, b: np.ndarray, box: tuple[float, float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The parts of segments a→b (S, 2) inside ``box`` (x0, y0, x1, y1) (Liang–Barsky);
    segments entirely outside are dropped. Pixels more than r + 1 from the image are never
    inked, so clipping to the image grown by that changes no pixel, and a segment millions
    of pixels long costs what its visible part costs."""
    lo, hi = np.array(box[:2]), np.array(box[2:])
    inside = np.all((a >= lo) & (a <= hi) & (b >= lo) & (b <= hi), axis=1)
    if inside.all():
        return a, b
    e = b - a
    t0, t1 = np.zeros(len(a)), np.ones(len(a))
    with np.errstate(divide="ignore", invalid="ignore"):
        for d in range(2):
            p, q_lo, q_hi = e[:, d], a[:, d] - lo[d], hi[d] - a[:, d]
            flat = p == 0
            t_lo, t_hi = -q_lo / p, q_hi / p  # where the line crosses each side
            enter = np.where(p > 0, t_lo, t_hi)
            leave = np.where(p > 0, t_hi, t_lo)
            t0 = np.where(flat, t0, np.maximum(t0, enter))
            t1 = np.where(flat, t1, np.minimum(t1, leave))
            outside_flat = flat & ((q_lo < 0) | (q_hi < 0))
            t1 = np.where(outside_flat, -1.0, t1)
    keep = (t0 <= t1) | inside
    t0, t1 = np.where(inside, 0.0, t0), np.where(inside, 1.0, t1)
    a2 = a + t0[:, None] * e
    b2 = a + t1[:, None] * e
    return a2[keep], b2[keep]


def _draw_segments_dense(ink: np.ndarray, a: np.ndarray, b: np.ndarray, r: float) -> None:
    """As :func:`_draw_segments`, each segment against every pixel (for lines so wide that
    a window around a piece would be larger than the image)."""
    h, w = ink.shape
    ys, xs = np.mgrid[0:h, 0:w]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)  # (P, 2)
    flat = ink.reshape(-1)
    rows = _WINDOW_BUDGET
    for i in range(0, len(centres), rows):
        c = centres[i : i + rows]
        for k in range(len(a)):
            ak, ek = a[k], b[k] - a[k]
            ap = c - ak
            ee = float(ek @ ek)
            u = np.clip(ap @ ek / ee, 0.0, 1.0) if ee > 0 else np.zeros(len(c))
            d = ap - u[:, None] * ek
            cover = np.clip(r + 0.5 - np.sqrt(np.einsum("pd,pd->p", d, d)), 0.0, 1.0)
            np.maximum(flat[i : i + rows], cover, out=flat[i : i + rows])


def _resample_ink(raster: np.ndarray, frame: Frame, out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of a raster sketch's ink (H₀, W₀) uint8 through ``frame``."""
    h, w = out_hw
    src = raster.astype(np.float64)
    sh, sw = src.shape
    xs = (np.arange(w) + 0.5 - frame.tx) / frame.scale - 0.5  # source pixel-centre coordinates
    ys = (np.arange(h) + 0.5 - frame.ty) / frame.scale - 0.5
    x0 = np.floor(xs).astype(np.int64)
    y0 = np.floor(ys).astype(np.int64)
    fx, fy = xs - x0, ys - y0

    def take(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        valid = (yi[:, None] >= 0) & (yi[:, None] < sh) & (xi[None, :] >= 0) & (xi[None, :] < sw)
        vals = src[np.clip(yi, 0, sh - 1)[:, None], np.clip(xi, 0, sw - 1)[None, :]]
        return np.where(valid, vals, 0.0)

    top = take(y0, x0) * (1 - fx)[None, :] + take(y0, x0 + 1) * fx[None, :]
    bot = take(y0 + 1, x0) * (1 - fx)[None, :] + take(y0 + 1, x0 + 1) * fx[None, :]
    out = top * (1 - fy)[:, None] + bot * fy[:, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def render_query(
    part: Sketch,
    whole: Sketch | None = None,
    size: int = 224,
    *,
    line_width: float = 3.0,
    margin: float = 0.1,
) -> np.ndarray:
    """The model's input view of a (part of a) sketch: (size, size) uint8.

    ``whole`` gives the framing (default: ``part`` itself), so a lasso or sector selection is
    drawn where it sits in the full sketch.
    """
    frame = fit_frame((whole if whole is not None else part).bbox(), (size, size), margin)
    return rasterize(part, (size, size), frame=frame, line_width=line_width)
