"""The partition tool (DESIGN §3, seed 000 §4.5): n sectors around the sketch's centroid.

Drag to rotate the sector lines; click inside a sector to pick it: the strokes with a piece
in it are selected and the sector is the part searched (:class:`SectorPart`); the drawing is
never edited by picking (strokes crossing a boundary are cut only in the query). Rotating
the lines or changing their number ends the pick.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF

from sketchpad.search.spec import SectorPart
from sketchpad.sketch.geometry import partition_sketch, sector_boundary_angles, sector_of_point
from sketchpad.sketch.model import Sketch
from sketchpad.ui.canvas.tools.base import PointerInput, Tool, ToolHost, is_click
from sketchpad.workspace.view_transform import ViewTransform

TAU = 2.0 * math.pi


def partition_center(sketch: Sketch) -> tuple[float, float]:
    """The partition centre: the centroid of all points, or the page centre when empty."""
    return sketch.centroid() or (sketch.width / 2.0, sketch.height / 2.0)


def sector_polygon(
    center: tuple[float, float], n: int, theta1: float, k: int, reach: float, samples: int = 32
) -> np.ndarray:
    """(samples + 2, 2) canvas polygon covering sector k out to distance ``reach``."""
    a0 = theta1 + k * TAU / n
    ang = np.linspace(a0, a0 + TAU / n, samples + 1)
    rim = np.stack([np.cos(ang), np.sin(ang)], axis=1) * reach + np.asarray(center)
    return np.vstack([np.asarray(center, dtype=np.float64)[None], rim])


class PartitionTool(Tool):
    """See the module docstring. ``n`` and θ₁ live in the host's settings."""

    name = "partition"

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._center_for: tuple[Sketch, tuple[float, float]] | None = None
        self._press: PointerInput | None = None
        self._drag: tuple[float, float] | None = None  # (press angle, θ₁ at the press)

    @property
    def center(self) -> tuple[float, float]:
        """The centre for the current sketch (the one :class:`SectorPart` uses)."""
        sketch = self.document.sketch
        if self._center_for is None or self._center_for[0] is not sketch:
            self._center_for = (sketch, partition_center(sketch))
        return self._center_for[1]

    @property
    def picked_sector(self) -> int | None:
        """The sector picked by the last click, while it is still the selection's part."""
        s = self.host.settings
        part = self.document.selection_part
        if not isinstance(part, SectorPart) or (part.n, part.theta) != (
            s.partition_n,
            s.partition_theta1,
        ):
            return None
        return part.k

    def _angle(self, p: PointerInput) -> float:
        cx, cy = self.center
        return math.atan2(p.y - cy, p.x - cx)

    def press(self, p: PointerInput) -> None:
        self._press = p
        self._drag = None

    def move(self, p: PointerInput) -> None:
        if self._press is None:
            return
        s = self.host.settings
        if self._drag is None:
            if is_click(self._press, p, self.host.view):
                return
            self._drag = (self._angle(self._press), s.partition_theta1)
        a0, theta0 = self._drag
        s.partition_theta1 = (theta0 + self._angle(p) - a0) % TAU
        self.host.partition_changed()
        self.host.request_update()

    def release(self, p: PointerInput) -> None:
        self.move(p)
        if self._press is not None and self._drag is None:
            self.pick(sector_of_point(p.x, p.y, self.center, *self._n_theta()))
        self._press = None
        self._drag = None

    def cancel(self) -> None:
        self._press = None
        self._drag = None

    def _n_theta(self) -> tuple[int, float]:
        s = self.host.settings
        return s.partition_n, s.partition_theta1

    def pick(self, k: int) -> None:
        """Select the strokes with a piece in sector ``k`` and make the sector the part
        searched; the strokes are not edited."""
        doc = self.document
        n, theta1 = self._n_theta()
        partition = partition_sketch(doc.sketch, n, theta1, center=self.center)
        ids = {p.source_id for p in partition.pieces if p.sector == k}
        doc.set_selection(ids, SectorPart(n, k, theta1))
        self.host.request_update()

    def paint_overlay(self, painter: QPainter, view: ViewTransform) -> None:
        sketch = self.document.sketch
        n, theta1 = self._n_theta()
        center = self.center
        reach = 2.0 * math.hypot(sketch.width, sketch.height)
        page = QRectF(
            QPointF(*view.to_view(0.0, 0.0)), QPointF(*view.to_view(sketch.width, sketch.height))
        )
        c = QPointF(*view.to_view(*center))
        painter.save()
        painter.setClipRect(page)
        k = self.picked_sector
        if k is not None:
            poly = view.to_view_array(sector_polygon(center, n, theta1, k, reach))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 120, 215, 40))
            painter.drawPolygon(QPolygonF([QPointF(x, y) for x, y in poly]))
        painter.setPen(QPen(QColor(0, 90, 180, 200), 1.5, Qt.PenStyle.DashLine))
        for i, a in enumerate(sector_boundary_angles(n, theta1)):
            tip = (center[0] + reach * math.cos(a), center[1] + reach * math.sin(a))
            end = QPointF(*view.to_view(*tip))
            if i == 0:  # the first boundary (θ₁) is solid: it is the one being dragged
                painter.setPen(QPen(QColor(0, 90, 180, 220), 2.0))
            painter.drawLine(c, end)
            if i == 0:
                painter.setPen(QPen(QColor(0, 90, 180, 200), 1.5, Qt.PenStyle.DashLine))
        painter.setPen(QPen(QColor(255, 255, 255), 1.5))
        painter.setBrush(QColor(0, 90, 180))
        painter.drawEllipse(c, 4.0, 4.0)
        painter.restore()
