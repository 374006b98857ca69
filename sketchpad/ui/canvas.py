"""The drawing canvas: shows a Document's sketch and routes pointer input to the tools.

Frames: the sketch lives in canvas coordinates; the widget paints in view coordinates;
:class:`~sketchpad.ui.view_transform.ViewTransform` maps between them. Tools
(:mod:`sketchpad.ui.tools`) get pointer samples already in canvas coordinates.

Painting is layered for speed with thousands of strokes: the page and the committed
strokes live in an image that :class:`~sketchpad.ui.sketch_painter.SketchPainter` updates
only where strokes changed (or shifts, after a pan); on top, each paint draws the
selection highlight and the current tool's overlay. While the pen draws, only the new
segment's rectangle is repainted.

Scene labels: :meth:`Canvas.set_label_style` paints strokes in their label's colour (and dims
all but an isolated label); :meth:`Canvas.set_overlay` lays an image over the page (a bitmap
sketch's label map).
"""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, QTimer, Signal, SignalInstance
from PySide6.QtGui import (
    QAction,
    QColor,
    QFocusEvent,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QTabletEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QGestureEvent, QPinchGesture, QWidget

from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.geometry import LassoMode
from sketchpad.ui.canvas_actions import (
    ZOOM_STEP,
    build_edit_actions,
    build_tool_actions,
    update_edit_actions,
)
from sketchpad.ui.clipboard import PASTE_OFFSET, copy_selection, paste_strokes
from sketchpad.ui.document import Document
from sketchpad.ui.sketch_painter import SURROUND, SketchPainter, view_qtransform
from sketchpad.ui.tools import (
    TOOL_NAMES,
    PanTool,
    PenTool,
    PointerInput,
    Tool,
    ToolName,
    ToolSettings,
    create_tool,
)
from sketchpad.ui.view_transform import ViewTransform, wheel_scroll, wheel_zoom_factor

ZOOM_SETTLE_MS = 150  # while zooming, show the old image scaled; repaint after this pause


class Canvas(QWidget):
    """The drawing widget. See the module docstring; tools are listed in ``ToolName``."""

    tool_changed = Signal(str)
    cursor_moved = Signal(float, float)  # canvas coordinates
    zoom_changed = Signal(float)  # scale, 1.0 = 100 %
    pen_width_changed = Signal(float)
    pen_color_changed = Signal(str)
    lasso_mode_changed = Signal(str)
    partition_n_changed = Signal(int)
    partition_theta1_changed = Signal(float)
    message = Signal(str)  # a short note for the status bar

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAttribute(Qt.WidgetAttribute.WA_AcceptTouchEvents)
        if sys.platform != "darwin":  # macOS pinches arrive as native gestures (see event())
            self.grabGesture(Qt.GestureType.PinchGesture)
        self.setMinimumSize(QSize(120, 90))
        self._document = document
        self._settings = ToolSettings()
        self._view = ViewTransform()
        self._auto_fit = True  # refit on resize until the user pans or zooms
        self._tools: dict[ToolName, Tool] = {n: create_tool(n, self) for n in TOOL_NAMES}
        self._tool = self._tools["pen"]
        self._hand = PanTool(self)  # Space + drag and middle-button drags, with any tool
        self._drag: tuple[Tool, Qt.MouseButton] | None = None
        self._space_held = False
        self._painter = SketchPainter()  # stroke paths and the page + strokes layer
        self._zoom_settle = QTimer(self, singleShot=True, interval=ZOOM_SETTLE_MS)
        self._zoom_settle.timeout.connect(self.update)
        self._paste_count = 0
        self._overlay: tuple[QImage, QRectF] | None = None  # image, canvas rectangle
        self._edit_actions: dict[str, QAction] | None = None
        self._tool_actions: dict[str, QAction] | None = None
        document.sketch_changed.connect(self._on_sketch_changed)
        document.selection_changed.connect(self._on_selection_changed)
        document.document_reset.connect(self._on_document_reset)
        QGuiApplication.clipboard().dataChanged.connect(self._on_clipboard_changed)
        self.setCursor(self._tool.cursor)

    # -- ToolHost ------------------------------------------------------------------------
    @property
    def document(self) -> Document:
        return self._document

    @property
    def view(self) -> ViewTransform:
        """The current canvas → view mapping."""
        return self._view

    @property
    def settings(self) -> ToolSettings:
        return self._settings

    def set_view(self, view: ViewTransform) -> None:
        """Show the canvas through ``view`` (pans and zooms end the automatic fit)."""
        self._auto_fit = False
        self._set_view(view)

    def request_update(self, canvas_rect: tuple[float, float, float, float] | None = None) -> None:
        if canvas_rect is None:
            self.update()
            return
        x0, y0, x1, y1 = self._view.rect_to_view(canvas_rect)
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0).toAlignedRect().adjusted(-1, -1, 1, 1))

    def show_message(self, text: str) -> None:
        self.message.emit(text)

    def partition_changed(self) -> None:
        self.partition_theta1_changed.emit(self._settings.partition_theta1)
        self.update()

    # -- tools and options ---------------------------------------------------------------
    @property
    def tool(self) -> ToolName:
        return self._tool.name

    def tool_object(self, name: ToolName | None = None) -> Tool:
        """The tool instance for ``name`` (default: the current one)."""
        return self._tool if name is None else self._tools[name]

    def set_tool(self, name: ToolName) -> None:
        if name not in self._tools:
            raise ValueError(f"unknown tool {name!r}; choose one of {', '.join(TOOL_NAMES)}")
        if name == self.tool:
            return
        self._end_drag(finish=True)
        self._tool.leave()
        self._tool = self._tools[name]
        if self._tool_actions is not None:
            self._tool_actions[name].setChecked(True)
        self._update_cursor(None)
        self.update()
        self.tool_changed.emit(name)

    def _set_option(self, name: str, value: object, changed: SignalInstance | None) -> None:
        value = ToolSettings.checked(name, value)
        if getattr(self._settings, name) != value:
            setattr(self._settings, name, value)
            self.update()
            if changed is not None:
                changed.emit(value)

    @property
    def pen_width(self) -> float:
        """New strokes' width, canvas pixels."""
        return self._settings.pen_width

    @pen_width.setter
    def pen_width(self, width: float) -> None:
        self._set_option("pen_width", width, self.pen_width_changed)

    @property
    def pen_color(self) -> str:
        """New strokes' colour as ``#rrggbb`` (the setter also takes a QColor)."""
        return self._settings.pen_color

    @pen_color.setter
    def pen_color(self, color: QColor | str) -> None:
        c = QColor(color)
        if not c.isValid():
            raise ValueError(f"pen_color must be a colour, got {color!r}")
        self._set_option("pen_color", c.name(), self.pen_color_changed)

    @property
    def eraser_radius(self) -> float:
        """Eraser radius in view (screen) pixels."""
        return self._settings.eraser_radius

    @eraser_radius.setter
    def eraser_radius(self, radius: float) -> None:
        self._set_option("eraser_radius", radius, None)

    @property
    def lasso_mode(self) -> LassoMode:
        return self._settings.lasso_mode

    @lasso_mode.setter
    def lasso_mode(self, mode: LassoMode) -> None:
        self._set_option("lasso_mode", mode, self.lasso_mode_changed)

    @property
    def partition_n(self) -> int:
        """Number of partition sectors, 2..12."""
        return self._settings.partition_n

    @partition_n.setter
    def partition_n(self, n: int) -> None:
        self._set_option("partition_n", n, self.partition_n_changed)

    @property
    def partition_theta1(self) -> float:
        """Angle of the first sector line, radians in [0, 2π) (canvas frame, y down)."""
        return self._settings.partition_theta1

    @partition_theta1.setter
    def partition_theta1(self, theta1: float) -> None:
        self._set_option("partition_theta1", theta1, self.partition_theta1_changed)

    # -- scene labels --------------------------------------------------------------------
    @property
    def painter(self) -> SketchPainter:
        """The stroke painter (its label style decides stroke colours)."""
        return self._painter

    def set_label_style(self, colors: dict[str, str] | None, isolated: str | None) -> None:
        """Paint labelled strokes in ``colors[label]`` (None: their own colour); with an
        ``isolated`` label, every other stroke faint."""
        if self._painter.set_label_style(colors, isolated):
            self.update()

    def set_overlay(self, image: QImage | None, canvas_rect: QRectF | None = None) -> None:
        """Show ``image`` over the page, stretched over ``canvas_rect`` (canvas coordinates),
        under the selection and the tools' feedback; None removes it."""
        self._overlay = None if image is None or canvas_rect is None else (image, canvas_rect)
        self.update()

    # -- view ----------------------------------------------------------------------------
    @property
    def zoom(self) -> float:
        return self._view.scale

    def fit_to_view(self) -> None:
        """Show the whole page, centred; keep fitting on resizes until the user zooms."""
        sketch = self._document.sketch
        self._set_view(ViewTransform.fit(sketch.width, sketch.height, self.width(), self.height()))
        self._auto_fit = True

    def zoom_by(self, factor: float, about: QPointF | None = None) -> None:
        """Multiply the zoom by ``factor`` (clamped) keeping view point ``about`` (default:
        the widget's centre) fixed."""
        c = about if about is not None else QRectF(self.rect()).center()
        self.set_view(self._view.zoomed_about(factor, c.x(), c.y()))

    def _set_view(self, view: ViewTransform) -> None:
        if view == self._view:
            return
        old_scale, self._view = self._view.scale, view
        self.update()
        if view.scale != old_scale:
            self._zoom_settle.start()  # repaint sharply once the zoom has settled
            self.zoom_changed.emit(view.scale)

    # -- edits on the selection ------------------------------------------------------------
    def select_all(self) -> None:
        self._document.set_selection(s.id for s in self._document.sketch.strokes)

    def deselect(self) -> None:
        self._document.set_selection(())

    def delete_selection(self, text: str = "Delete") -> None:
        doc = self._document
        doc.apply(SketchEdit.remove(doc.sketch, doc.selection), text)

    def copy_selection(self) -> None:
        if copy_selection(self._document, QGuiApplication.clipboard()):
            self._paste_count = 0

    def cut_selection(self) -> None:
        self.copy_selection()
        self.delete_selection("Cut")

    def paste(self) -> None:
        """Paste the clipboard's strokes with new ids, each paste PASTE_OFFSET further
        right and down, and select them."""
        if self._document.sketch.is_raster:
            self.show_message("This sketch is a bitmap: strokes cannot be pasted into it.")
            return
        offset = PASTE_OFFSET * (self._paste_count + 1)
        if paste_strokes(self._document, QGuiApplication.clipboard(), offset):
            self._paste_count += 1

    # -- actions -------------------------------------------------------------------------
    def edit_actions(self) -> dict[str, QAction]:
        """Edit and view actions (parent: this canvas, window-wide shortcuts), keyed
        undo, redo, cut, copy, paste, delete, select_all, deselect, zoom_in, zoom_out, fit."""
        if self._edit_actions is None:
            self._edit_actions = build_edit_actions(self)
        return dict(self._edit_actions)

    def tool_actions(self) -> dict[str, QAction]:
        """One checkable action per tool (exclusive group), keyed by ToolName."""
        if self._tool_actions is None:
            self._tool_actions = build_tool_actions(self)
        return dict(self._tool_actions)

    def _update_action_state(self) -> None:
        if self._edit_actions is not None:
            update_edit_actions(self._edit_actions, self)

    # -- document signals ----------------------------------------------------------------
    def _on_sketch_changed(self) -> None:
        self._painter.prune(self._document.sketch)
        self._update_action_state()
        self.update()

    def _on_selection_changed(self) -> None:
        self._update_action_state()
        self.update()

    def _on_document_reset(self) -> None:
        self._end_drag(finish=False)
        tool = self._tools["pen"]
        assert isinstance(tool, PenTool)
        tool.reset_clock()
        self.fit_to_view()

    def _on_clipboard_changed(self) -> None:
        self._paste_count = 0
        self._update_action_state()

    # -- painting ------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        doc = self._document
        layer, transform = self._painter.layer(
            doc.sketch,
            self._view,
            self.size(),
            self.devicePixelRatioF(),
            stale_ok=self._zoom_settle.isActive(),
        )
        p = QPainter(self)
        p.setClipRect(event.rect())
        if not transform.isIdentity():  # a zoom in progress: the old image, scaled
            p.fillRect(self.rect(), SURROUND)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setTransform(transform)
        p.drawImage(0, 0, layer)
        p.resetTransform()
        if self._overlay is not None:
            p.save()
            p.setTransform(view_qtransform(self._view))
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(self._overlay[1], self._overlay[0])
            p.restore()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._painter.paint_selection(p, doc.sketch, doc.selection, self._view, event.rect())
        self._tool.paint_overlay(p, self._view)
        p.end()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        if self._auto_fit:
            self.fit_to_view()
        super().resizeEvent(event)

    # -- pointer input -------------------------------------------------------------------
    def _input(
        self, pos: QPointF, mods: Qt.KeyboardModifier, pressure: float | None = None
    ) -> PointerInput:
        """A pointer sample at view position ``pos``, in canvas coordinates."""
        x, y = self._view.to_canvas(pos.x(), pos.y())
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        return PointerInput(x, y, time.monotonic() * 1000.0, pressure, shift)

    def _press(self, button: Qt.MouseButton, p: PointerInput) -> bool:
        if self._drag is not None:
            return False
        if button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and self._space_held
        ):
            tool: Tool = self._hand
        elif button == Qt.MouseButton.LeftButton:
            tool = self._tool
        else:
            return False
        self._drag = (tool, button)
        tool.press(p)
        self._update_cursor(p)
        return True

    def _move(self, p: PointerInput) -> None:
        self.cursor_moved.emit(p.x, p.y)
        if self._drag is not None:
            self._drag[0].move(p)
        else:
            self._tool.hover(p)
        self._update_cursor(p)

    def _release(self, button: Qt.MouseButton, p: PointerInput) -> bool:
        if self._drag is None or button != self._drag[1]:
            return False
        tool, self._drag = self._drag[0], None
        tool.release(p)
        self._update_cursor(p)
        return True

    def _end_drag(self, finish: bool) -> None:
        """End the drag in progress: ``finish`` it (tool switch) or abandon it."""
        if self._drag is not None:
            tool, self._drag = self._drag[0], None
            if finish:
                tool.finish()
            else:
                tool.cancel()

    def _update_cursor(self, p: PointerInput | None) -> None:
        if self._space_held or self._drag is not None and self._drag[0] is self._hand:
            shape = self._hand.cursor_at(0, 0)
        else:
            shape = self._tool.cursor if p is None else self._tool.cursor_at(p.x, p.y)
        if self.cursor().shape() != shape:
            self.setCursor(shape)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if not self._press(event.button(), self._input(event.position(), event.modifiers())):
            event.ignore()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._move(self._input(event.position(), event.modifiers()))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if not self._release(event.button(), self._input(event.position(), event.modifiers())):
            event.ignore()

    def tabletEvent(self, event: QTabletEvent) -> None:  # noqa: N802
        """A stylus: the same as the mouse, plus pressure (accepted, so no mouse events follow)."""
        p = self._input(event.position(), event.modifiers(), min(1.0, max(0.0, event.pressure())))
        kind = event.type()
        if kind == QEvent.Type.TabletPress:
            self._press(event.button(), p)
        elif kind == QEvent.Type.TabletMove:
            self._move(p)
        elif kind == QEvent.Type.TabletRelease:
            self._release(event.button(), p)
        event.accept()

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802
        self._tool.leave()
        super().leaveEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        """Ctrl+wheel zooms about the cursor; the plain wheel (or two fingers) scrolls."""
        angle, pixels = event.angleDelta(), event.pixelDelta()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if angle.y():
                self.zoom_by(wheel_zoom_factor(angle.y(), ZOOM_STEP), event.position())
            return
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        dx, dy = wheel_scroll(angle.x(), angle.y(), pixels.x(), pixels.y(), shift)
        self.set_view(self._view.panned(dx, dy))

    def event(self, event: QEvent) -> bool:
        """Pinch zoom: native gestures (macOS, Wayland/X11 touchpads) and QPinchGesture
        (touch screens)."""
        if isinstance(event, QNativeGestureEvent):
            if event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                self.zoom_by(1.0 + event.value(), event.position())
                return True
        elif isinstance(event, QGestureEvent):
            pinch = event.gesture(Qt.GestureType.PinchGesture)
            if isinstance(pinch, QPinchGesture):
                if pinch.changeFlags() & QPinchGesture.ChangeFlag.ScaleFactorChanged:
                    center = self.mapFromGlobal(pinch.centerPoint())
                    self.zoom_by(pinch.scaleFactor(), QPointF(center))
                event.accept(pinch)
                return True
        return super().event(event)

    def _space(self, event: QKeyEvent, held: bool) -> bool:
        """Space held turns any drag into a pan."""
        if event.key() != Qt.Key.Key_Space:
            return False
        if not event.isAutoRepeat():
            self._space_held = held
            self._update_cursor(None)
        return True

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if not self._space(event, True):
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if not self._space(event, False):
            super().keyReleaseEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802
        self._space_held = False
        super().focusOutEvent(event)


__all__ = ["Canvas"]
