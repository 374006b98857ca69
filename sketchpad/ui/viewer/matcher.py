"""Sketch–photo correspondence in the large view (issue 20 item 4, seed 003 §6.3).

**Match Points** (K) shows the sketch being drawn in a small pane beside the photo. Click a
point on the sketch: the matching point is marked on the photo, with a confidence heat map
over it; click on the photo: the matching point is marked on the sketch, the heat map over
the sketch. Esc clears the marks (and a second Esc leaves the tool).

The matching is the engine's (:class:`~sketchpad.engine.requests.MatchRequest`), off the GUI
thread, with the photo-search model's dense features — the computation of ``sketchpad
correspond`` (:mod:`sketchpad.vision.fusion.correspond`); the worker keeps both images'
features, so more clicks on the same photo and sketch run no forward. Sketch points travel as
fractions of the sketch image's side (the pane's square shows the image the model matches,
:func:`~sketchpad.vision.fusion.correspond.sketch_image`); photo points in photo pixels (the
view's scene coordinates).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QBrush,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
)
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem, QSizePolicy, QWidget

from sketchpad.ui.shortcuts import describe
from sketchpad.ui.viewer.photo_view import ImageItem, photo_qimage

if TYPE_CHECKING:
    from sketchpad.engine.client import Engine
    from sketchpad.engine.requests import MatchResult
    from sketchpad.sketch.model import Sketch
    from sketchpad.ui.viewer.large_view import PhotoViewer

log = logging.getLogger(__name__)

PANE_SIDE = 240  # the sketch pane's square (screen pixels)
RENDER_SIDE = 480  # the sketch image drawn in it (any side: points are fractions)
QUERY_COLOUR = QColor(0, 200, 255)  # the point clicked
MATCH_COLOUR = QColor(255, 230, 0)  # its match
MARK_RADIUS = 7.0  # screen pixels


def heat_qimage(heat: np.ndarray) -> QImage:
    """A heat map ((h, w) in [0, 1]) as the premultiplied ARGB tint
    :func:`sketchpad.vision.overlay.heat_tint_argb32` makes (``sketchpad correspond``'s)."""
    from sketchpad.vision.overlay import heat_tint_argb32

    argb = heat_tint_argb32(heat)
    h, w = argb.shape
    return QImage(argb.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied).copy()


def _mark(colour: QColor, ring: bool) -> QGraphicsEllipseItem:
    """A dot (the query) or a ring (the match) of constant screen size."""
    r = MARK_RADIUS
    item = QGraphicsEllipseItem(-r, -r, 2 * r, 2 * r)
    pen = QPen(colour if ring else QColor(0, 0, 0), 3.0 if ring else 1.5)
    pen.setCosmetic(True)
    item.setPen(pen)
    item.setBrush(QBrush(Qt.BrushStyle.NoBrush) if ring else QBrush(colour))
    item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
    item.setZValue(20)
    item.setVisible(False)
    return item


class SketchPane(QWidget):
    """The sketch in a square, with the marks and, for a photo point, the heat map.

    Signals:
        clicked(float, float): a left click on the sketch, as fractions (u, v) of its side.
    """

    clicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(QSize(PANE_SIDE, PANE_SIDE))
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.setFixedWidth(PANE_SIDE)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("The sketch: click a point to find it on the photo")
        self._image: QImage | None = None
        self._heat: QImage | None = None
        self.query: tuple[float, float] | None = None  # fractions
        self.match: tuple[float, float] | None = None

    def square(self) -> QRectF:
        """Where the sketch is drawn (widget pixels): the largest centred square."""
        side = float(min(self.width(), self.height()))
        return QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)

    def to_widget(self, u: float, v: float) -> QPointF:
        """Fractions of the sketch's side → widget pixels."""
        sq = self.square()
        return QPointF(sq.x() + u * sq.width(), sq.y() + v * sq.height())

    def set_image(self, image: QImage | None) -> None:
        self._image = image
        self.update()

    @property
    def image(self) -> QImage | None:
        return self._image

    def set_heat(self, heat: QImage | None) -> None:
        self._heat = heat
        self.update()

    @property
    def heat(self) -> QImage | None:
        return self._heat

    def set_marks(
        self, query: tuple[float, float] | None, match: tuple[float, float] | None
    ) -> None:
        self.query, self.match = query, match
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.fillRect(self.rect(), QColor(38, 38, 40))
        sq = self.square()
        painter.fillRect(sq, QColor(255, 255, 255))
        if self._image is not None:
            painter.drawImage(sq, self._image)
        else:
            painter.setPen(QColor(120, 120, 120))
            painter.drawText(sq, Qt.AlignmentFlag.AlignCenter, "No sketch yet")
        if self._heat is not None:
            painter.drawImage(sq, self._heat)
        for point, colour, ring in ((self.query, QUERY_COLOUR, False),
                                    (self.match, MATCH_COLOUR, True)):  # fmt: skip
            if point is None:
                continue
            c = self.to_widget(*point)
            if ring:
                painter.setPen(QPen(QColor(0, 0, 0), 5.0))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawEllipse(c, MARK_RADIUS, MARK_RADIUS)
                painter.setPen(QPen(colour, 3.0))
            else:
                painter.setPen(QPen(QColor(0, 0, 0), 1.5))
                painter.setBrush(colour)
            painter.drawEllipse(c, MARK_RADIUS, MARK_RADIUS)
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        sq = self.square()
        p = event.position()
        if event.button() != Qt.MouseButton.LeftButton or not sq.contains(p):
            super().mousePressEvent(event)
            return
        u = (p.x() - sq.x()) / sq.width()
        v = (p.y() - sq.y()) / sq.height()
        self.clicked.emit(min(max(u, 0.0), 1.0), min(max(v, 0.0), 1.0))
        event.accept()


class PointMatcher(QObject):
    """The large view's Match Points tool (see the module docstring).

    Args:
        viewer: the large view (its photo view gets the marks and heat map; its engine
            matches).

    Attributes:
        pane: the sketch pane (shown while the tool is on).
        action: Match Points (checkable; K).
        result: the match shown, or None.

    Signals:
        message(str): a line for the status (matching, the confidence, or why not).
        matchShown(object): a MatchResult was drawn.
    """

    message = Signal(str)
    matchShown = Signal(object)

    def __init__(self, viewer: PhotoViewer, engine: Engine | None) -> None:
        super().__init__(viewer)
        self._viewer = viewer
        self._engine = engine
        self._sketch: Sketch | None = None
        self._rendered: Sketch | None = None  # the sketch the pane's image shows
        self._active = False
        self._gen = -1  # the pending match request
        self.result: MatchResult | None = None
        self.pane = SketchPane(viewer)
        self.pane.hide()
        self.pane.clicked.connect(self.match_sketch_point)
        scene = viewer.view.scene()
        self._heat_item = ImageItem(smooth=True)
        self._heat_item.setZValue(15)
        self._query_item = _mark(QUERY_COLOUR, ring=False)
        self._match_item = _mark(MATCH_COLOUR, ring=True)
        for item in (self._heat_item, self._query_item, self._match_item):
            scene.addItem(item)
        self.action = QAction("Match Points", viewer)
        describe(
            self.action,
            "show the sketch beside the photo; click a point on either to see where it is on "
            "the other, with a confidence heat map (Esc clears)",
            "match",
            "K",
        )
        self.action.setCheckable(True)
        self.action.setEnabled(engine is not None)
        self.action.toggled.connect(self.set_active)
        viewer.view.viewport().installEventFilter(self)
        viewer.currentChanged.connect(lambda _name: self.clear())
        if engine is not None:
            engine.matchFinished.connect(self._on_match_finished)
            engine.failed.connect(self._on_failed)

    # -- state -----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active

    @property
    def pending(self) -> bool:
        """Whether a match was asked for and has not come back."""
        return self._gen >= 0

    def set_active(self, on: bool) -> None:
        """Turn the tool on (the sketch pane shows; clicks match) or off."""
        on = bool(on) and self._engine is not None
        if on == self._active:
            self._check(on)
            return
        self._active = on
        self._check(on)
        if on:
            editor = self._viewer.editor
            if editor.tool != "view":
                editor.set_tool("view")
            self._render_sketch()
            self.pane.show()
            self._viewer.view.viewport().setCursor(Qt.CursorShape.CrossCursor)
            self.message.emit("click a point on the sketch or on the photo to match it")
        else:
            self.clear()
            self.pane.hide()
            self._viewer.view.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            self.message.emit("")

    def _check(self, on: bool) -> None:
        blocked = self.action.blockSignals(True)
        self.action.setChecked(on)
        self.action.blockSignals(blocked)

    def set_sketch(self, sketch: Sketch | None) -> None:
        """The sketch being drawn (the canvas document's); its marks go when it changes."""
        if sketch is self._sketch:
            return
        self._sketch = sketch
        self.clear()
        if self._active:
            self._render_sketch()

    def _render_sketch(self) -> None:
        sketch = self._sketch
        if sketch is self._rendered and self.pane.image is not None:
            return
        self._rendered = sketch
        if sketch is None or sketch.bbox() is None:
            self.pane.set_image(None)
            return
        from sketchpad.vision.fusion.correspond import sketch_image

        self.pane.set_image(photo_qimage(sketch_image(sketch, RENDER_SIDE)))

    def clear(self) -> None:
        """Remove the marks and the heat maps; a pending match is no longer wanted."""
        self._gen = -1
        self.result = None
        self._heat_item.set_image(QImage(), QRectF())
        self._query_item.setVisible(False)
        self._match_item.setVisible(False)
        self.pane.set_heat(None)
        self.pane.set_marks(None, None)

    # -- what is shown (tests and the status) ----------------------------------------------
    def photo_marks(self) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        """(query, match) shown on the photo, in photo pixels (None: not shown)."""

        def at(item: QGraphicsEllipseItem) -> tuple[float, float] | None:
            return (item.pos().x(), item.pos().y()) if item.isVisible() else None

        return at(self._query_item), at(self._match_item)

    def sketch_marks(self) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        """(query, match) shown on the sketch, as fractions of its side."""
        return self.pane.query, self.pane.match

    def photo_heat(self) -> QImage | None:
        """The heat map's image over the photo, or None."""
        image = self._heat_item.image
        return None if image.isNull() else image

    # -- matching ------------------------------------------------------------------------------
    def _photo_path(self) -> Path | None:
        folder, name = self._viewer.folder, self._viewer.name
        return None if folder is None or name is None else folder / name

    def _can_match(self) -> str:
        """Why a click cannot be matched now ('' when it can)."""
        if self._engine is None:
            return "matching needs the engine"
        if self._photo_path() is None or self._viewer.photo_size is None:
            return "no photo to match on"
        if self._sketch is None or self._sketch.bbox() is None:
            return "draw a sketch first: there is nothing to match"
        return ""

    def match_sketch_point(self, u: float, v: float) -> int:
        """Find sketch point (u, v) (fractions of its side) on the photo; the request's
        generation, or −1 when it cannot be asked (the status says why)."""
        return self._ask((u, v), reverse=False)

    def match_photo_point(self, x: float, y: float) -> int:
        """Find photo point (x, y) (photo pixels) on the sketch."""
        return self._ask((x, y), reverse=True)

    def _ask(self, point: tuple[float, float], *, reverse: bool) -> int:
        why = self._can_match()
        if why:
            self.message.emit(why)
            return -1
        engine, path, sketch = self._engine, self._photo_path(), self._sketch
        assert engine is not None and path is not None and sketch is not None
        self.clear()
        if reverse:
            self._show_photo_mark(self._query_item, point)
        else:
            self.pane.set_marks(point, None)
        try:
            self._gen = engine.match(path, sketch, (point,), reverse=reverse)
        except (RuntimeError, ValueError) as e:  # shut down, or a bad point
            self.message.emit(f"match failed: {e}")
            return -1
        self.message.emit("matching…")
        return self._gen

    def _show_photo_mark(self, item: QGraphicsEllipseItem, xy: tuple[float, float]) -> None:
        item.setPos(QPointF(*xy))
        item.setVisible(True)

    def _on_match_finished(self, result: MatchResult) -> None:
        if result.request.generation != self._gen:
            return  # cleared, or a newer click
        self._gen = -1
        self.result = result
        target, conf = result.targets[0], result.confidences[0]
        heat = heat_qimage(result.heat)
        if result.request.reverse:
            self.pane.set_marks(None, target)
            self.pane.set_heat(heat)
        else:
            self._show_photo_mark(self._match_item, target)
            self._heat_item.set_image(heat, self._viewer.view.photo_rect())
        where = "sketch" if result.request.reverse else "photo"
        cached = ", features cached" if result.forwards == 0 else ""
        self.message.emit(
            f"match on the {where}: confidence {conf:.2f} ({result.backbone_id}{cached})"
        )
        self.matchShown.emit(result)

    def _on_failed(self, generation: int, message: str) -> None:
        if generation == self._gen:
            self._gen = -1
            self.message.emit(f"match failed: {message}")

    # -- input -------------------------------------------------------------------------------
    def handle_key(self, event: QKeyEvent) -> bool:
        """K toggles the tool; Esc clears the marks, or leaves the tool when there are none.
        True when used."""
        mods = event.modifiers() & ~(
            Qt.KeyboardModifier.KeypadModifier | Qt.KeyboardModifier.ShiftModifier
        )
        if mods:
            return False
        if event.key() == Qt.Key.Key_K.value and self._engine is not None:
            self.set_active(not self._active)
            return True
        if event.key() == Qt.Key.Key_Escape.value and self._active:
            shown = self.result is not None or self.pending or any(self.photo_marks())
            if shown or any(self.sketch_marks()):
                self.clear()
                self.message.emit("marks cleared")
            else:
                self.set_active(False)
            return True
        return False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if not self._active or not isinstance(event, QMouseEvent):
            return False
        if event.type() != QEvent.Type.MouseButtonPress:
            return False
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        p = self._viewer.view.mapToScene(event.position().toPoint())
        rect = self._viewer.view.photo_rect()
        if rect.contains(p):
            self.match_photo_point(p.x(), p.y())
        return True
