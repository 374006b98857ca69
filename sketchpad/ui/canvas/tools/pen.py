"""The pen: one pen-down → pen-up trace becomes one stroke and one undo step."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen

from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.ui.canvas.tools.base import PointerInput, Tool, ToolHost, rect_around
from sketchpad.workspace.view_transform import ViewTransform


def latest_time_ms(sketch: Sketch) -> float:
    """The largest per-point time in ``sketch`` (ms), 0 when no stroke has times."""
    times = [float(s.times.max()) for s in sketch.strokes if s.times is not None]
    return max(times, default=0.0)


class PenTool(Tool):
    """Draws strokes in the settings' width and colour.

    Times: ``Stroke.times`` are milliseconds since the drawing started — the first pen-down
    on this canvas after the document was loaded (:meth:`reset_clock`). When the loaded
    sketch already has timed strokes, the clock continues from its latest time, so times
    grow across the whole sketch. Pressure is recorded only for a stylus; a stroke with
    any sample lacking pressure stores none. A click without moving makes a one-point
    stroke (a dot).
    """

    name = "pen"

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._origin_ms: float | None = None
        self._points: list[tuple[float, float]] = []
        self._times: list[float] = []
        self._pressure: list[float | None] = []
        self._path = QPainterPath()  # the live stroke, canvas coordinates, grown per sample

    @property
    def drawing(self) -> bool:
        return bool(self._points)

    def reset_clock(self) -> None:
        """A new document: the next pen-down starts the drawing clock again."""
        self._origin_ms = None

    def press(self, p: PointerInput) -> None:
        if self.document.sketch.is_raster:
            self.host.show_message("This sketch is a bitmap: strokes cannot be added to it.")
            return
        if self._origin_ms is None:
            self._origin_ms = p.t_ms - latest_time_ms(self.document.sketch)
        self._points, self._times, self._pressure = [], [], []
        self._path = QPainterPath(QPointF(p.x, p.y))
        self._add(p)

    def move(self, p: PointerInput) -> None:
        if not self._points or (p.x, p.y) == self._points[-1]:
            return
        prev = self._points[-1]
        self._add(p)
        self._path.lineTo(p.x, p.y)
        # Only the new segment needs repainting: the rest of the canvas is unchanged.
        self.host.request_update(rect_around([prev, (p.x, p.y)], self._pad()))

    def release(self, p: PointerInput) -> None:
        if not self._points:
            return
        self.move(p)
        self._commit()

    def finish(self) -> None:
        """Switching tools mid-stroke keeps what was drawn so far."""
        if self._points:
            self._commit()

    def cancel(self) -> None:
        self._points, self._times, self._pressure = [], [], []
        self._path = QPainterPath()

    def _add(self, p: PointerInput) -> None:
        assert self._origin_ms is not None
        self._points.append((p.x, p.y))
        self._times.append(max(0.0, p.t_ms - self._origin_ms))
        self._pressure.append(None if p.pressure is None else min(1.0, max(0.0, p.pressure)))

    def _pad(self) -> float:
        return self.host.settings.pen_width / 2.0 + self.host.view.length_to_canvas(2.0)

    def _commit(self) -> None:
        settings = self.host.settings
        pressure = (
            None if any(v is None for v in self._pressure)
            else np.array(self._pressure, dtype=np.float64)
        )  # fmt: skip
        stroke = Stroke(
            points=np.array(self._points),
            times=np.maximum.accumulate(np.array(self._times)),  # a clock never runs back
            pressure=pressure,
            width=settings.pen_width,
            color=settings.pen_color,
        )
        rect = rect_around(self._points, self._pad())
        self._points, self._times, self._pressure = [], [], []
        self._path = QPainterPath()
        sketch = self.document.sketch
        self.document.apply(SketchEdit.add(sketch, [stroke]), "Draw stroke")
        self.host.request_update(rect)

    def paint_overlay(self, painter: QPainter, view: ViewTransform) -> None:
        if not self._points:
            return
        settings = self.host.settings
        painter.save()
        painter.translate(view.offset_x, view.offset_y)
        painter.scale(view.scale, view.scale)
        if len(self._points) == 1:
            r = settings.pen_width / 2.0
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(settings.pen_color))
            painter.drawEllipse(QPointF(*self._points[0]), r, r)
        else:
            pen = QPen(QColor(settings.pen_color), settings.pen_width)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(self._path)
        painter.restore()
