"""The lasso: select strokes with a free-hand polygon, or drag the selection to move it."""

from __future__ import annotations

from typing import Literal

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF

from sketchpad.search.spec import LassoPart
from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.geometry import lasso_select, selection_bbox, translate
from sketchpad.sketch.model import Sketch
from sketchpad.ui.canvas.document import new_merge_key
from sketchpad.ui.canvas.tools.base import PointerInput, Rect, Tool, ToolHost, is_click, rect_around
from sketchpad.workspace.view_transform import ViewTransform

GRAB_MARGIN_VIEW = 4.0  # the selection box is grabbable this far outside it (view px)


class LassoTool(Tool):
    """Press inside the selection's bounding box and drag: move the selection ("Move",
    one undo step per drag). Press elsewhere and drag: draw a lasso; on release select
    with the settings' ``lasso_mode``: the strokes it touches are selected, and ``cut``
    records the lasso as the part searched (its pieces are highlighted); the drawing is
    never edited by selecting. Shift adds to the selection (whole strokes). A click outside
    the selection clears it."""

    name = "lasso"

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._mode: Literal["idle", "lasso", "move"] = "idle"
        self._polygon: list[tuple[float, float]] = []  # canvas coordinates
        self._press: PointerInput | None = None
        self._dragged = False  # the pointer left the click slop since the press
        self._last: tuple[float, float] = (0.0, 0.0)
        self._merge_key = 0
        self._box_for: tuple[tuple[Sketch, frozenset[str]], Rect | None] | None = None

    @property
    def polygon(self) -> np.ndarray:
        """(K, 2) canvas coordinates of the lasso being drawn (empty when idle)."""
        return np.array(self._polygon, dtype=np.float64).reshape(-1, 2)

    def _selection_box(self) -> Rect | None:
        # Hover asks on every move: compute once per (immutable) sketch and selection.
        doc = self.document
        cached = self._box_for
        if cached is None or cached[0][0] is not doc.sketch or cached[0][1] is not doc.selection:
            box = selection_bbox(doc.sketch, doc.selection) if doc.selection else None
            cached = self._box_for = ((doc.sketch, doc.selection), box)
        return cached[1]

    def over_selection(self, x: float, y: float) -> bool:
        """True when canvas point (x, y) grabs the selection (inside its bounding box)."""
        box = self._selection_box()
        if box is None:
            return False
        m = self.host.view.length_to_canvas(GRAB_MARGIN_VIEW)
        return box[0] - m <= x <= box[2] + m and box[1] - m <= y <= box[3] + m

    def cursor_at(self, x: float, y: float) -> Qt.CursorShape:
        if self._mode == "move" or (self._mode == "idle" and self.over_selection(x, y)):
            return Qt.CursorShape.SizeAllCursor
        return self.cursor

    def press(self, p: PointerInput) -> None:
        self._press = p
        self._dragged = False
        self._last = (p.x, p.y)
        if self.over_selection(p.x, p.y) and not p.shift:
            self._mode = "move"
            self._merge_key = new_merge_key()
        else:
            self._mode = "lasso"
            self._polygon = [(p.x, p.y)]

    def move(self, p: PointerInput) -> None:
        if self._press is not None and not self._dragged:
            self._dragged = not is_click(self._press, p, self.host.view)
        if self._mode == "move":
            dx, dy = p.x - self._last[0], p.y - self._last[1]
            if dx or dy:
                doc = self.document
                moved = translate(doc.sketch, doc.selection, dx, dy)
                doc.apply(SketchEdit.replace(doc.sketch, moved), "Move", self._merge_key)
                self._last = (p.x, p.y)
        elif self._mode == "lasso":
            if (p.x, p.y) != self._polygon[-1]:
                self._polygon.append((p.x, p.y))
                self.host.request_update(self._bounds())

    def release(self, p: PointerInput) -> None:
        mode, press = self._mode, self._press
        self.move(p)
        if mode == "lasso" and press is not None:
            bounds = self._bounds()
            if not self._dragged or len(self._polygon) < 3:
                if not p.shift:
                    self.document.set_selection(())
            else:
                self._select(np.array(self._polygon), add=p.shift)
            self._polygon = []
            self.host.request_update(bounds)
        self._mode = "idle"
        self._press = None

    def cancel(self) -> None:
        if self._polygon:
            self.host.request_update(self._bounds())
        self._mode = "idle"
        self._polygon = []
        self._press = None

    def _select(self, polygon: np.ndarray, add: bool) -> None:
        doc = self.document
        mode = self.host.settings.lasso_mode
        result = lasso_select(doc.sketch, polygon, mode)
        chosen = set(result.selected_ids)
        # A cut stroke is selected whole (Move, Delete act on it); its pieces inside the
        # lasso are what is searched and highlighted.
        ids = (chosen - {p.id for v in result.replacements.values() for p in v}) | {
            sid
            for sid, pieces in result.replacements.items()
            if any(p.id in chosen for p in pieces)
        }
        part = LassoPart(polygon, "cut") if result.replacements and ids else None
        if add:
            ids |= doc.selection
            part = None  # a union of selections: whole strokes
        doc.set_selection(ids, part)

    def _bounds(self) -> tuple[float, float, float, float]:
        return rect_around(self._polygon, self.host.view.length_to_canvas(3.0))

    def paint_overlay(self, painter: QPainter, view: ViewTransform) -> None:
        points: np.ndarray | list[tuple[float, float]] = self._polygon
        part = self.document.selection_part
        if len(points) < 2 and isinstance(part, LassoPart):
            points = part.polygon  # the lasso that cut the searched part stays shown
        if len(points) < 2:
            return
        poly = QPolygonF([QPointF(*view.to_view(x, y)) for x, y in points])
        painter.save()
        painter.setBrush(QColor(0, 120, 215, 30))
        painter.setPen(QPen(QColor(255, 255, 255), 1.0))
        painter.drawPolygon(poly)
        dashed = QPen(QColor(0, 90, 180), 1.0, Qt.PenStyle.DashLine)
        painter.setPen(dashed)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPolygon(poly)
        painter.restore()
