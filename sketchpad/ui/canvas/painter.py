"""Painting a sketch with QPainter, fast enough for thousands of strokes. No widget here.

Frames: strokes are painted in canvas coordinates through :func:`view_qtransform`;
the layer image and the selection's dashed box are in view coordinates.

:class:`SketchPainter` keeps

* each stroke's QPainterPath and padded bounding box, cached by id and rebuilt only when
  that (immutable) Stroke object changed;
* the *layer*: a widget-sized image of the grey surround, the page, a raster sketch and
  every stroke. After an edit only the rectangles of the strokes that changed are
  repainted (strokes outside them are culled with one numpy test); after a pan the old
  image is shifted and only the uncovered strips are painted; during a zoom gesture the
  old image may be shown scaled until the zoom settles.

Scene labels (:meth:`SketchPainter.set_label_style`): with a label → colour table, a labelled
stroke is painted in its label's colour instead of its own ``Stroke.color`` (which is never
rewritten); with an isolated label, every stroke of another label (or none) is painted faint.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
    QRegion,
    QTransform,
)

from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.workspace.view_transform import ViewTransform

SURROUND = QColor(128, 128, 132)  # around the page
SELECTION_COLOR = QColor(0, 120, 215)
SELECTION_HALO_VIEW = 6.0  # extra pen width of the selection highlight, view pixels
AA_PAD_VIEW = 2.0  # view pixels added around a dirty stroke for antialiasing
MAX_DIRTY_RECTS = 64  # more changed strokes than this: repaint the whole layer
DIM_ALPHA = 40  # opacity (of 255) of the strokes outside an isolated label


def view_qtransform(view: ViewTransform) -> QTransform:
    """The QTransform mapping canvas coordinates to view coordinates like ``view``."""
    return QTransform(view.scale, 0.0, 0.0, view.scale, view.offset_x, view.offset_y)


def raster_image(raster: np.ndarray) -> QImage:
    """(H, W) uint8 ink (255 = full ink) → a grayscale QImage, black ink on white paper."""
    paper = np.ascontiguousarray(255 - np.asarray(raster, dtype=np.uint8))
    h, w = paper.shape
    return QImage(paper.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def stroke_path(stroke: Stroke) -> QPainterPath:
    """The polyline of ``stroke`` in canvas coordinates; a one-point stroke is a disc of
    the pen's width (a dot)."""
    path = QPainterPath()
    pts = stroke.points
    if len(pts) == 1:
        r = stroke.width / 2.0
        path.addEllipse(QPointF(pts[0, 0], pts[0, 1]), r, r)
        return path
    path.moveTo(pts[0, 0], pts[0, 1])
    for x, y in pts[1:].tolist():
        path.lineTo(x, y)
    return path


def intersecting(boxes: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """(N,) bool: which of the (N, 4) boxes meet any of the (R, 4) rects (all x0, y0, x1, y1)."""
    if len(boxes) == 0 or len(rects) == 0:
        return np.zeros(len(boxes), dtype=bool)
    b, r = boxes[:, None, :], rects[None, :, :]
    hit = (b[..., 0] <= r[..., 2]) & (b[..., 2] >= r[..., 0])
    hit &= (b[..., 1] <= r[..., 3]) & (b[..., 3] >= r[..., 1])
    return np.any(hit, axis=1)


@dataclass(frozen=True)
class _Entry:
    stroke: Stroke
    path: QPainterPath
    box: tuple[float, float, float, float]  # canvas bbox grown by half the pen width


@dataclass(frozen=True)
class _LayerState:
    sketch: Sketch
    view: ViewTransform
    size: QSize
    dpr: float


class SketchPainter:
    """See the module docstring."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._boxes: tuple[Sketch, np.ndarray] | None = None
        self._raster: tuple[np.ndarray, QImage] | None = None
        self._layer: QImage | None = None
        self._state: _LayerState | None = None
        self._label_colors: dict[str, str] | None = None
        self._isolated: str | None = None

    # -- per-stroke cache ----------------------------------------------------------------
    def _entry(self, stroke: Stroke) -> _Entry:
        e = self._entries.get(stroke.id)
        if e is None or e.stroke is not stroke:
            x0, y0, x1, y1 = stroke.bbox()
            h = stroke.width / 2.0
            e = _Entry(stroke, stroke_path(stroke), (x0 - h, y0 - h, x1 + h, y1 + h))
            self._entries[stroke.id] = e
        return e

    def path(self, stroke: Stroke) -> QPainterPath:
        """The cached path of ``stroke`` (canvas coordinates)."""
        return self._entry(stroke).path

    def boxes(self, sketch: Sketch) -> np.ndarray:
        """(N, 4) float64 padded canvas bounding boxes of ``sketch.strokes``, in order."""
        if self._boxes is None or self._boxes[0] is not sketch:
            arr = np.array([self._entry(s).box for s in sketch.strokes], dtype=np.float64)
            self._boxes = (sketch, arr.reshape(-1, 4))
        return self._boxes[1]

    def prune(self, sketch: Sketch) -> None:
        """Forget the paths of strokes no longer in ``sketch``."""
        live = {s.id for s in sketch.strokes}
        for sid in [k for k in self._entries if k not in live]:
            del self._entries[sid]

    def invalidate(self) -> None:
        """Drop the layer: the next :meth:`layer` paints everything."""
        self._layer = None
        self._state = None

    def draw_stroke(
        self, painter: QPainter, stroke: Stroke, color: QColor, extra_width: float = 0.0
    ) -> None:
        """Draw ``stroke`` with round caps and joins; ``painter`` maps canvas coordinates."""
        path = self.path(stroke)
        if len(stroke) == 1:  # a dot: fill the disc (a stroked zero-length line may vanish)
            painter.setPen(QPen(color, extra_width) if extra_width else Qt.PenStyle.NoPen)
            painter.setBrush(color)
        else:
            pen = QPen(color, stroke.width + extra_width)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)

    # -- label colours -------------------------------------------------------------------
    def set_label_style(self, colors: Mapping[str, str] | None, isolated: str | None) -> bool:
        """Paint labelled strokes in ``colors[label]`` (``#rrggbb``; None: their own colour)
        and, when ``isolated`` is a label, every other stroke faint. True when this changed
        anything (the whole layer is then repainted)."""
        new = dict(colors) if colors is not None else None
        if new == self._label_colors and isolated == self._isolated:
            return False
        self._label_colors, self._isolated = new, isolated
        self.invalidate()
        return True

    def stroke_color(self, stroke: Stroke) -> QColor:
        """The colour ``stroke`` is painted in under the current label style."""
        name = stroke.color
        if self._label_colors is not None and stroke.label is not None:
            name = self._label_colors.get(stroke.label, name)
        color = QColor(name)
        if self._isolated is not None and stroke.label != self._isolated:
            color.setAlpha(DIM_ALPHA)
        return color

    # -- the layer -----------------------------------------------------------------------
    def layer(
        self,
        sketch: Sketch,
        view: ViewTransform,
        size: QSize,
        dpr: float,
        *,
        stale_ok: bool = False,
    ) -> tuple[QImage, QTransform]:
        """The layer image for this sketch and view, and the transform to draw it with
        (identity, except a scaled stale image while ``stale_ok`` and the zoom changed)."""
        st = self._state
        if (
            self._layer is None
            or st is None
            or st.size != size
            or st.dpr != dpr
            or (st.sketch.width, st.sketch.height) != (sketch.width, sketch.height)
            or st.sketch.raster is not sketch.raster
        ):
            return self._repaint_all(sketch, view, size, dpr), QTransform()
        if view != st.view:
            if view.scale != st.view.scale:
                if stale_ok:  # old view → canvas → new view
                    old = view_qtransform(st.view).inverted()[0]
                    return self._layer, old * view_qtransform(view)
                return self._repaint_all(sketch, view, size, dpr), QTransform()
            if not self._scroll(st.sketch, view):
                return self._repaint_all(sketch, view, size, dpr), QTransform()
        if sketch is not st.sketch:  # _scroll kept st.sketch
            self._update_changed(sketch)
        return self._layer, QTransform()

    def _repaint_all(self, sketch: Sketch, view: ViewTransform, size: QSize, dpr: float) -> QImage:
        img = QImage(size * dpr, QImage.Format.Format_ARGB32_Premultiplied)
        img.setDevicePixelRatio(dpr)
        self._layer = img
        self._state = _LayerState(sketch, view, QSize(size), dpr)
        self._paint(sketch, [QRectF(0, 0, size.width(), size.height())])
        return img

    def _scroll(self, sketch: Sketch, view: ViewTransform) -> bool:
        """Shift the layer to a panned view and paint the uncovered strips; False when the
        shift is not a whole number of device pixels."""
        assert self._layer is not None and self._state is not None
        st = self._state
        dx, dy = view.offset_x - st.view.offset_x, view.offset_y - st.view.offset_y
        if any(abs(d * st.dpr - round(d * st.dpr)) > 1e-6 for d in (dx, dy)):
            return False
        w, h = st.size.width(), st.size.height()
        old = self._layer.copy()
        p = QPainter(self._layer)
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        p.drawImage(QPointF(round(dx * st.dpr) / st.dpr, round(dy * st.dpr) / st.dpr), old)
        p.end()
        self._state = _LayerState(sketch, view, st.size, st.dpr)
        strips = []
        if dx:
            strips.append(QRectF(0, 0, dx, h) if dx > 0 else QRectF(w + dx, 0, -dx, h))
        if dy:
            strips.append(QRectF(0, 0, w, dy) if dy > 0 else QRectF(0, h + dy, w, -dy))
        if strips:
            self._paint(sketch, strips)
        return True

    def _update_changed(self, sketch: Sketch) -> None:
        """Repaint only around strokes that differ between the layer's sketch and ``sketch``."""
        assert self._state is not None
        st = self._state
        old = {s.id: s for s in st.sketch.strokes}
        new = {s.id: s for s in sketch.strokes}
        changed = [s for i, s in old.items() if new.get(i) is not s]
        changed += [s for i, s in new.items() if old.get(i) is not s]
        self._state = _LayerState(sketch, st.view, st.size, st.dpr)
        if len(changed) > MAX_DIRTY_RECTS:
            self._paint(sketch, [QRectF(0, 0, st.size.width(), st.size.height())])
            return
        pad = st.view.length_to_canvas(AA_PAD_VIEW)
        rects = []
        for s in changed:
            x0, y0, x1, y1 = st.view.rect_to_view(self._entry(s).box)
            rects.append(QRectF(x0, y0, x1 - x0, y1 - y0).adjusted(-pad, -pad, pad, pad))
        if rects:
            self._paint(sketch, rects)

    def _paint(self, sketch: Sketch, view_rects: list[QRectF]) -> None:
        """Repaint ``view_rects`` of the layer from scratch."""
        assert self._layer is not None and self._state is not None
        view = self._state.view
        clip = QRegion()
        for r in view_rects:
            clip += r.toAlignedRect().adjusted(-1, -1, 1, 1)
        p = QPainter(self._layer)
        p.setClipRegion(clip)
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        p.fillRect(clip.boundingRect(), SURROUND)
        p.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setTransform(view_qtransform(view))
        page = QRectF(0.0, 0.0, sketch.width, sketch.height)
        p.fillRect(page, Qt.GlobalColor.white)
        if sketch.raster is not None:
            if self._raster is None or self._raster[0] is not sketch.raster:
                self._raster = (sketch.raster, raster_image(sketch.raster))
            p.drawImage(page, self._raster[1])
        canvas_rects = np.array(
            [view.rect_to_canvas(r) for r in _rect_tuples(view_rects)], dtype=np.float64
        )
        for i in np.flatnonzero(intersecting(self.boxes(sketch), canvas_rects)):
            stroke = sketch.strokes[i]
            self.draw_stroke(p, stroke, self.stroke_color(stroke))
        p.end()

    # -- selection -----------------------------------------------------------------------
    def paint_selection(
        self,
        painter: QPainter,
        sketch: Sketch,
        selection: Set[str],
        view: ViewTransform,
        exposed: QRect,
    ) -> None:
        """Highlight the selected strokes that meet ``exposed`` (view coordinates) and draw
        the dashed bounding box of the whole selection."""
        if not selection:
            return
        boxes = self.boxes(sketch)
        chosen = np.array([s.id in selection for s in sketch.strokes], dtype=bool)
        if not chosen.any():
            return
        sel = boxes[chosen]
        box = (sel[:, 0].min(), sel[:, 1].min(), sel[:, 2].max(), sel[:, 3].max())
        (ex,) = _rect_tuples([QRectF(exposed)])
        visible = chosen & intersecting(boxes, np.array([view.rect_to_canvas(ex)]))
        painter.save()
        painter.setTransform(view_qtransform(view), True)
        halo = QColor(SELECTION_COLOR)
        halo.setAlpha(90)
        extra = view.length_to_canvas(SELECTION_HALO_VIEW)
        for i in np.flatnonzero(visible):
            self.draw_stroke(painter, sketch.strokes[i], halo, extra)
        painter.restore()
        x0, y0, x1, y1 = view.rect_to_view(box)
        painter.save()
        painter.setPen(QPen(SELECTION_COLOR, 1.0, Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(x0 - 2.0, y0 - 2.0, x1 - x0 + 4.0, y1 - y0 + 4.0))
        painter.restore()


def _rect_tuples(rects: list[QRectF]) -> list[tuple[float, float, float, float]]:
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
