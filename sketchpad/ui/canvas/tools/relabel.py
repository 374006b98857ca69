"""The relabel tool: click a stroke to give it a label by hand (scene labelling).

The tool only finds the stroke: the nearest one under the pointer
(:func:`sketchpad.sketch.geometry.stroke_at`, within a few screen pixels) is highlighted while
hovering and, on a click, handed to ``on_click``, which the labelling panel sets (it chooses
the label and pushes one undoable step). A drag does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPen

from sketchpad.sketch.geometry import stroke_at
from sketchpad.ui.canvas.painter import stroke_path, view_qtransform
from sketchpad.ui.canvas.tools.base import PointerInput, Tool, ToolHost, is_click
from sketchpad.workspace.view_transform import ViewTransform

PICK_TOLERANCE_VIEW = 6.0  # a stroke this close to the pointer (screen pixels) is picked
HOVER_COLOR = QColor(0, 120, 215, 110)
HOVER_HALO_VIEW = 5.0  # extra pen width of the hover highlight, view pixels

RASTER_NOTE = (
    "This drawing is a bitmap: its labels are per ink component and shown as an overlay. "
    "Relabelling by clicking works on drawings made of strokes."
)


class RelabelTool(Tool):
    """Click a stroke: ``on_click(stroke_id, x, y)`` (canvas coordinates) chooses its label."""

    name = "relabel"
    cursor = Qt.CursorShape.PointingHandCursor

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self.on_click: Callable[[str, float, float], None] | None = None
        self._press: PointerInput | None = None
        self._hover: str | None = None

    def stroke_at(self, x: float, y: float) -> str | None:
        """Id of the stroke the pointer at canvas (x, y) picks, or None."""
        tolerance = self.host.view.length_to_canvas(PICK_TOLERANCE_VIEW)
        return stroke_at(self.document.sketch, x, y, tolerance)

    def press(self, p: PointerInput) -> None:
        self._press = p

    def release(self, p: PointerInput) -> None:
        press, self._press = self._press, None
        if press is None or not is_click(press, p, self.host.view):
            return
        if self.document.sketch.is_raster:
            self.host.show_message(RASTER_NOTE)
            return
        sid = self.stroke_at(p.x, p.y)
        if sid is None:
            self.host.show_message("No stroke here: click on a stroke to relabel it.")
        elif self.on_click is None:
            self.host.show_message("Open the Scene Labels panel to relabel strokes.")
        else:
            self.on_click(sid, p.x, p.y)

    def hover(self, p: PointerInput) -> None:
        self._set_hover(None if self.document.sketch.is_raster else self.stroke_at(p.x, p.y))

    def leave(self) -> None:
        self._set_hover(None)

    def cancel(self) -> None:
        self._press = None
        self._set_hover(None)

    def _set_hover(self, sid: str | None) -> None:
        if sid != self._hover:
            self._hover = sid
            self.host.request_update()

    def paint_overlay(self, painter: QPainter, view: ViewTransform) -> None:
        sketch = self.document.sketch
        if self._hover is None:
            return
        try:
            stroke = sketch.strokes[sketch.index_of(self._hover)]
        except KeyError:  # erased meanwhile (undo)
            return
        painter.save()
        painter.setTransform(view_qtransform(view), True)
        pen = QPen(HOVER_COLOR, stroke.width + view.length_to_canvas(HOVER_HALO_VIEW))
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(stroke_path(stroke))
        painter.restore()


__all__ = ["RASTER_NOTE", "RelabelTool"]
