"""Label-map overlays: a labelling's per-pixel labels as an image over the canvas.

A bitmap (raster-only) sketch has no strokes to paint in colour, so its labelling is shown as
an image laid over the page: every ink pixel of the label raster in its label's colour, or,
while one label is isolated, the pixels that pass the isolation threshold in that colour and
the rest of the ink faint grey. Frames: the image covers the label raster, whose frame maps
canvas → raster pixels (``raster = canvas · scale + t``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage

if TYPE_CHECKING:
    from sketchpad.vision.scene_labels import SceneLabels

#: Ink outside an isolated label (RGBA): paper-like, so the isolated label stands out.
DIMMED_INK = (215, 215, 218, 255)


def _rgba(color: str) -> tuple[int, int, int, int]:
    c = QColor(color)
    return (c.red(), c.green(), c.blue(), 255)


def label_map_rgba(
    pixel_labels: np.ndarray,
    colors: Sequence[str],
    isolated: np.ndarray | None = None,
    isolated_color: str | None = None,
) -> np.ndarray:
    """(H, W, 4) uint8 RGBA of a label map.

    Args:
        pixel_labels: (H, W) int label index per pixel, −1 off ink.
        colors: ``#rrggbb`` per label index.
        isolated: (H, W) bool, the pixels of an isolated label (None: no isolation).
        isolated_color: their colour.

    Returns:
        Transparent off ink; ink in its label's colour, or with isolation: the isolated pixels
        in ``isolated_color`` and the rest of the ink :data:`DIMMED_INK`.
    """
    lab = np.asarray(pixel_labels)
    out = np.zeros((*lab.shape, 4), dtype=np.uint8)
    ink = lab >= 0
    if isolated is not None:
        out[ink] = DIMMED_INK
        out[isolated & ink] = _rgba(isolated_color or "#000000")
        return out
    table = np.array([_rgba(c) for c in colors] or [(0, 0, 0, 0)], dtype=np.uint8)
    known = ink & (lab < len(colors))
    out[known] = table[lab[known]]
    return out


def rgba_image(rgba: np.ndarray) -> QImage:
    """(H, W, 4) uint8 RGBA → a QImage that owns its pixels."""
    a = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def raster_canvas_rect(result: SceneLabels) -> QRectF:
    """The canvas rectangle the label raster of ``result`` covers."""
    f = result.pixels.frame
    h, w = result.raster_hw
    return QRectF(-f.tx / f.scale, -f.ty / f.scale, w / f.scale, h / f.scale)


def label_overlay(
    result: SceneLabels,
    colors: Sequence[str],
    isolated_label: str | None = None,
    threshold: float | None = None,
) -> tuple[QImage, QRectF]:
    """The overlay of ``result``: (image, canvas rectangle).

    Args:
        result: a labelling.
        colors: ``#rrggbb`` per label of ``result.labels``.
        isolated_label: one of ``result.labels`` to isolate (at ``threshold``, see
            :meth:`SceneLabels.isolate`), or None.
    """
    if isolated_label is not None and isolated_label in result.labels:
        k = result.labels.index(isolated_label)
        mask = result.isolate(isolated_label, threshold)
        rgba = label_map_rgba(result.pixel_labels, colors, mask, colors[k])
    else:
        rgba = label_map_rgba(result.pixel_labels, colors)
    return rgba_image(rgba), raster_canvas_rect(result)
