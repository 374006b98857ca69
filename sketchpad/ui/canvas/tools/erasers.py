"""Erasers: the stroke eraser removes whole strokes it touches, the partial eraser cuts
away only what lies under it. Either way one drag is one undo step."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPen

from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.geometry import erase_along, strokes_hit
from sketchpad.ui.canvas.document import new_merge_key
from sketchpad.ui.canvas.tools.base import PointerInput, Tool, ToolHost, rect_around
from sketchpad.workspace.view_transform import ViewTransform


class _EraserBase(Tool):
    """Tracks the cursor for the eraser circle and feeds each dragged segment to
    :meth:`_erase` with a merge key shared by the whole drag."""

    cursor = Qt.CursorShape.BlankCursor

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._cursor: tuple[float, float] | None = None  # canvas coordinates
        self._last: tuple[float, float] | None = None  # drag in progress
        self._merge_key = 0

    @property
    def radius(self) -> float:
        """Eraser radius in canvas pixels: constant on screen, so it shrinks as one zooms in."""
        return self.host.view.length_to_canvas(self.host.settings.eraser_radius)

    def press(self, p: PointerInput) -> None:
        self._merge_key = new_merge_key()
        self._last = (p.x, p.y)
        self._track(p)
        self._erase(np.array([[p.x, p.y]]))

    def move(self, p: PointerInput) -> None:
        self._track(p)
        if self._last is None:
            return
        path = np.array([self._last, (p.x, p.y)])
        self._last = (p.x, p.y)
        self._erase(path)

    def release(self, p: PointerInput) -> None:
        self.move(p)
        self._last = None

    def hover(self, p: PointerInput) -> None:
        self._track(p)

    def leave(self) -> None:
        self._track(None)

    def cancel(self) -> None:
        self._last = None
        self._track(None)

    def _track(self, p: PointerInput | None) -> None:
        pad = self.radius + self.host.view.length_to_canvas(2.0)
        old = self._cursor
        self._cursor = None if p is None else (p.x, p.y)
        for c in (old, self._cursor):
            if c is not None:
                self.host.request_update(rect_around([c], pad))

    def _erase(self, path: np.ndarray) -> None:
        raise NotImplementedError

    def paint_overlay(self, painter: QPainter, view: ViewTransform) -> None:
        if self._cursor is None:
            return
        r = self.host.settings.eraser_radius
        center = QPointF(*view.to_view(*self._cursor))
        painter.save()
        painter.setBrush(QColor(255, 255, 255, 90))
        painter.setPen(QPen(QColor(255, 255, 255), 3.0))
        painter.drawEllipse(center, r, r)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(60, 60, 60), 1.0))
        painter.drawEllipse(center, r, r)
        painter.restore()


class StrokeEraserTool(_EraserBase):
    """Removes every stroke the eraser touches ("Erase strokes")."""

    name = "eraser"

    def _erase(self, path: np.ndarray) -> None:
        sketch = self.document.sketch
        ids = strokes_hit(sketch, path, self.radius)
        if ids:
            self.document.apply(SketchEdit.remove(sketch, ids), "Erase strokes", self._merge_key)


class PartialEraserTool(_EraserBase):
    """Cuts away the parts of strokes under the eraser ("Erase")."""

    name = "partial_eraser"

    def _erase(self, path: np.ndarray) -> None:
        sketch = self.document.sketch
        replacements = erase_along(sketch, path, self.radius)
        if replacements:
            self.document.apply(SketchEdit.replace(sketch, replacements), "Erase", self._merge_key)
