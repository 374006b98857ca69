"""Which pixels belong to which stroke: the raster on which scene labels are given and scored.

Scene labelling (DESIGN §4.4) labels every *ink pixel* and every *stroke*. Both need one shared
raster: the labeller writes its predictions on it, the evaluation writes the ground truth on it,
and the exports save it. :func:`stroke_pixels` builds it once per sketch:

- a vector sketch is drawn at ``raster_hw`` through ``frame`` (default: the whole canvas, one
  pixel per canvas pixel, at most :data:`MAX_SIDE` on the long side), each stroke at its own pen
  width, exactly as :func:`sketchpad.sketch.raster.rasterize` draws it. A pixel belongs to a
  stroke when that stroke covers at least half of it; the pixel's *owner* is the stroke that
  covers it most (the later stroke on a tie: it is drawn on top).
- a raster-only sketch has no strokes: its connected ink components (8-connectivity, ink
  coverage ≥ 1/2) stand in for them, with ids ``c1``, ``c2``, … in raster-scan order of their
  first pixel.

Frames: pixel ``(x, y)`` covers ``[x, x + 1) × [y, y + 1)`` of the raster, its centre at
``(x + 0.5, y + 0.5)``; ``frame`` maps canvas coordinates to raster coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.sketch.raster import Frame, canvas_frame, rasterize

#: Default longest side of the label raster (larger canvases are scaled down to it).
MAX_SIDE = 1024
#: A pixel is ink where the coverage reaches this fraction.
INK_LEVEL = 0.5


@dataclass(frozen=True, eq=False)
class StrokePixels:
    """The label raster of one sketch.

    Attributes:
        raster_hw: (H, W) of the raster.
        frame: canvas → raster mapping.
        stroke_ids: the strokes (or ink components ``c1``… of a raster-only sketch), in order.
        pixels: per stroke, the flat indices (``y · W + x``, int64, ascending) of the pixels it
            covers at least half; every stroke has at least one unless it lies outside the
            raster.
        owner: (H, W) int32, the index of the stroke that covers each pixel most, −1 off ink.
        from_components: True when the strokes are the ink components of a raster-only sketch.
    """

    raster_hw: tuple[int, int]
    frame: Frame
    stroke_ids: tuple[str, ...]
    pixels: tuple[np.ndarray, ...]
    owner: np.ndarray
    from_components: bool = False

    def __post_init__(self) -> None:
        h, w = self.raster_hw
        if self.owner.shape != (h, w):
            raise ValueError(f"owner must have shape {(h, w)}, got {self.owner.shape}")
        if len(self.pixels) != len(self.stroke_ids):
            raise ValueError(f"{len(self.pixels)} pixel lists for {len(self.stroke_ids)} strokes")

    @property
    def ink(self) -> np.ndarray:
        """(H, W) bool: the ink pixels."""
        return self.owner >= 0

    @property
    def num_strokes(self) -> int:
        return len(self.stroke_ids)

    def stroke_majority(self, pixel_labels: np.ndarray) -> np.ndarray:
        """Per stroke, the most frequent label among its pixels (seed 001 §4.2: "a stroke label
        is determined by its most frequent pixel label"); ties go to the smaller label.

        Args:
            pixel_labels: (H, W) int, ≥ 0 on the pixels that count, negative elsewhere.

        Returns:
            (n_strokes,) int64; −1 for a stroke none of whose pixels carries a label.
        """
        lab = np.asarray(pixel_labels).reshape(-1)
        if lab.size != self.owner.size:
            raise ValueError(f"pixel_labels must have shape {self.raster_hw}")
        out = np.full(len(self.pixels), -1, dtype=np.int64)
        for i, idx in enumerate(self.pixels):
            vals = lab[idx]
            vals = vals[vals >= 0]
            if vals.size:
                out[i] = int(np.argmax(np.bincount(vals)))
        return out

    def owner_labels(self, stroke_labels: np.ndarray) -> np.ndarray:
        """(H, W) int64: each ink pixel gets its owner stroke's label, −1 off ink (and where the
        owner's label is negative). The ground truth of a labelled sketch."""
        lab = np.asarray(stroke_labels, dtype=np.int64)
        if lab.shape != (self.num_strokes,):
            raise ValueError(f"stroke_labels must have shape ({self.num_strokes},)")
        out = np.full(self.owner.shape, -1, dtype=np.int64)
        ink = self.owner >= 0
        out[ink] = lab[self.owner[ink]]
        return out


def label_raster_frame(
    sketch: Sketch, raster_hw: tuple[int, int] | None = None, max_side: int = MAX_SIDE
) -> tuple[tuple[int, int], Frame]:
    """The default label raster: the whole canvas, scaled down to ``max_side`` if larger.

    Returns:
        ((H, W), frame) with the canvas centred in the raster.
    """
    if raster_hw is None:
        h, w = max(1, round(sketch.height)), max(1, round(sketch.width))
        if max(h, w) > max_side:
            s = max_side / max(h, w)
            h, w = max(1, round(h * s)), max(1, round(w * s))
        raster_hw = (h, w)
    h, w = int(raster_hw[0]), int(raster_hw[1])
    if h < 1 or w < 1:
        raise ValueError(f"raster_hw must be positive, got {raster_hw}")
    return (h, w), canvas_frame(sketch, (h, w))


def stroke_pixels(
    sketch: Sketch,
    raster_hw: tuple[int, int] | None = None,
    *,
    frame: Frame | None = None,
    line_width: float | None = None,
    max_side: int = MAX_SIDE,
) -> StrokePixels:
    """Draw ``sketch`` on its label raster and record which pixels each stroke covers.

    Args:
        sketch: a vector or raster-only sketch.
        raster_hw: (H, W); default the canvas size, scaled down to ``max_side``.
        frame: canvas → raster mapping; default the whole canvas fitted and centred.
        line_width: line width in raster pixels for every stroke, or None for each stroke's
            own pen width scaled by the frame (what the person drew).
        max_side: cap of the default raster's long side.
    """
    hw, default_frame = label_raster_frame(sketch, raster_hw, max_side)
    frame = frame or default_frame
    if sketch.is_raster:
        return _components(sketch, hw, frame)
    h, w = hw
    best = np.zeros(h * w, dtype=np.float64)
    owner = np.full(h * w, -1, dtype=np.int32)
    pixels: list[np.ndarray] = []
    for i, stroke in enumerate(sketch.strokes):
        r = (line_width if line_width is not None else stroke.width * frame.scale) / 2.0
        x0, y0, x1, y1 = stroke.bbox()
        pad = r + 2.0
        wx0 = max(0, int(np.floor(x0 * frame.scale + frame.tx - pad)))
        wy0 = max(0, int(np.floor(y0 * frame.scale + frame.ty - pad)))
        wx1 = min(w, int(np.ceil(x1 * frame.scale + frame.tx + pad)))
        wy1 = min(h, int(np.ceil(y1 * frame.scale + frame.ty + pad)))
        if wx1 <= wx0 or wy1 <= wy0:
            pixels.append(np.zeros(0, dtype=np.int64))
            continue
        # The stroke alone, drawn in its own window: the same pixels as in the whole raster.
        window = Frame(frame.scale, frame.tx - wx0, frame.ty - wy0)
        grey = rasterize(
            sketch.with_strokes([stroke]),
            (wy1 - wy0, wx1 - wx0),
            frame=window,
            line_width=2.0 * r,
        )
        cover = 1.0 - grey.astype(np.float64) / 255.0
        ys, xs = np.nonzero(cover >= INK_LEVEL)
        flat = (ys + wy0).astype(np.int64) * w + (xs + wx0)
        c = cover[ys, xs]
        take = c >= best[flat]  # later strokes win ties: they are drawn on top
        best[flat[take]] = c[take]
        owner[flat[take]] = i
        pixels.append(np.sort(flat))
    return StrokePixels(
        raster_hw=hw,
        frame=frame,
        stroke_ids=tuple(s.id for s in sketch.strokes),
        pixels=tuple(pixels),
        owner=owner.reshape(h, w),
    )


def _components(sketch: Sketch, hw: tuple[int, int], frame: Frame) -> StrokePixels:
    """Connected ink components of a raster-only sketch, on the label raster."""
    grey = rasterize(sketch, hw, frame=frame)
    ink = (255 - grey.astype(np.int32)) >= round(255 * INK_LEVEL)
    n, cc = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    # cv2 numbers components in raster-scan order of their first pixel; 0 is the paper.
    flat = cc.reshape(-1)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=n)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    pixels = tuple(order[bounds[k] : bounds[k + 1]].astype(np.int64) for k in range(1, n))
    return StrokePixels(
        raster_hw=hw,
        frame=frame,
        stroke_ids=tuple(f"c{k}" for k in range(1, n)),
        pixels=pixels,
        owner=(cc - 1).astype(np.int32),
        from_components=True,
    )
