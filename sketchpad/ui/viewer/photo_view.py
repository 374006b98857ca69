"""A zoomable view of one photo with a mask overlay and instance boxes: the drawing side of the
large view (:mod:`sketchpad.ui.viewer.large_view` adds the engine, loading and navigation).

Frames: the scene is in pixels of the upright photo (EXIF orientation applied, as ``load_photo``
returns it and as the engine's masks are), x right, y down, the photo covering ``(0, 0, W, H)``.
A mask of another size (a thumbnail-size *quick* mask) is stretched over that rectangle, its
boxes with it. The view transform is a uniform scale (view pixels per photo pixel, as the
canvas's :class:`~sketchpad.workspace.view_transform.ViewTransform`); scrolling is the pan.

The overlay is one premultiplied ARGB QImage per mask, built once (:func:`overlay_qimage`, safe
in any thread), never per paint; :func:`mask_overlay_argb32` makes its pixels (pure numpy).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QKeyEvent,
    QPainter,
    QPen,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from sketchpad.search.masks import PhotoMask
from sketchpad.ui.canvas.actions import ZOOM_STEP
from sketchpad.vision.overlay import mask_tint_argb32 as mask_overlay_argb32
from sketchpad.workspace.view_transform import MAX_SCALE, MIN_SCALE, wheel_zoom_factor

OVERLAY_ALPHA = 0.45  # tint opacity, as in the headless previews (vision.overlay)
BOX_COLOUR = (255, 230, 0)  # instance boxes (RGB), as in the headless previews
BOX_WIDTH = 2  # box outline, screen pixels at any zoom
SMOOTH_BELOW_SCALE = 2.0  # zoomed in further, the photo's pixels are drawn sharp
BACKGROUND = QColor(38, 38, 40)


def photo_qimage(rgb: np.ndarray) -> QImage:
    """(H, W, 3) uint8 RGB → a QImage (RGB32, the fastest to paint) that owns its pixels."""
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = a.shape[:2]
    image = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return image.convertToFormat(QImage.Format.Format_RGB32)


def overlay_qimage(mask: PhotoMask) -> QImage:
    """The mask's tint as a premultiplied ARGB QImage of the mask's size (24 MP: ~0.1 s)."""
    argb = mask_overlay_argb32(mask.mask, group_map=mask.group_map)
    h, w = argb.shape
    fmt = QImage.Format.Format_ARGB32_Premultiplied  # native-endian 0xAARRGGBB words
    return QImage(argb.data, w, h, 4 * w, fmt).copy()


class ImageItem(QGraphicsItem):
    """A QImage drawn over a scene rectangle (no QPixmap conversion on the GUI thread).

    Args:
        smooth: filter when scaled (photos); False: nearest pixels (masks).
    """

    def __init__(self, *, smooth: bool) -> None:
        super().__init__()
        self._image, self._rect, self._smooth = QImage(), QRectF(), smooth

    def set_image(self, image: QImage, rect: QRectF) -> None:
        """Draw ``image`` stretched over scene rectangle ``rect`` (a null image: nothing)."""
        self.prepareGeometryChange()
        self._image, self._rect = image, QRectF(rect)
        self.update()

    @property
    def image(self) -> QImage:
        return self._image

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._rect

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        if not self._image.isNull() and not self._rect.isEmpty():
            smooth = self._smooth and painter.worldTransform().m11() < SMOOTH_BELOW_SCALE
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
            painter.drawImage(self._rect, self._image)


class PhotoView(QGraphicsView):
    """A photo, its mask's overlay and instance boxes; wheel zoom about the cursor, drag to pan.

    Args:
        parent: Qt parent.

    Attributes:
        key_filter: called with every key press first; True means it was used.

    Signals:
        zoomChanged(float): the scale (1.0 = 100 %).
    """

    zoomChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.key_filter: Callable[[QKeyEvent], bool] | None = None
        self._fit = True  # fitted: stays fitted on resizes, until the user zooms
        self._photo_item = ImageItem(smooth=True)
        self._overlay_item = ImageItem(smooth=False)
        self._boxes_item = QGraphicsRectItem()  # an invisible parent: toggles all boxes
        self._boxes_item.setPen(QPen(Qt.PenStyle.NoPen))
        for z, item in enumerate((self._photo_item, self._overlay_item, self._boxes_item)):
            item.setZValue(z)
            self.scene().addItem(item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setBackgroundBrush(QBrush(BACKGROUND))
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    # -- content ---------------------------------------------------------------------------
    def photo_rect(self) -> QRectF:
        """The photo's rectangle in the scene, (0, 0, W, H); empty when there is none."""
        return self._photo_item.boundingRect()

    def photo_image(self) -> QImage | None:
        """The photo shown, or None."""
        image = self._photo_item.image
        return None if image.isNull() else image

    def set_photo(self, image: QImage | None) -> None:
        """Show ``image`` (None: nothing), fitted; the overlay and boxes are cleared."""
        self.set_mask(None, None)
        rect = QRectF() if image is None else QRectF(0, 0, image.width(), image.height())
        self._photo_item.set_image(image if image is not None else QImage(), rect)
        self.scene().setSceneRect(rect)
        self.zoom_fit()

    def set_mask(self, mask: PhotoMask | None, overlay: QImage | None) -> None:
        """Lay ``overlay`` (the mask's tint, :func:`overlay_qimage`) and the mask's instance
        boxes over the photo, stretched to it; None clears them."""
        for child in self._boxes_item.childItems():
            self.scene().removeItem(child)
        rect = self.photo_rect()
        if mask is None or overlay is None or rect.isEmpty():
            self._overlay_item.set_image(QImage(), QRectF())
            return
        self._overlay_item.set_image(overlay, rect)
        mh, mw = mask.mask.shape
        sx, sy = rect.width() / mw, rect.height() / mh
        pen = QPen(QColor(*BOX_COLOUR), BOX_WIDTH)
        pen.setCosmetic(True)  # the same width on screen at any zoom
        for inst in mask.instances:
            x0, y0, x1, y1 = inst.box_xyxy
            box = QGraphicsRectItem(QRectF(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy))
            box.setPen(pen)
            box.setParentItem(self._boxes_item)
            label = QGraphicsSimpleTextItem(f"{inst.score:.2f}", box)
            label.setBrush(QBrush(QColor(*BOX_COLOUR)))
            label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            label.setPos(x0 * sx, y0 * sy)

    def set_overlay_visible(self, visible: bool) -> None:
        self._overlay_item.setVisible(visible)

    def set_boxes_visible(self, visible: bool) -> None:
        self._boxes_item.setVisible(visible)

    @property
    def overlay_visible(self) -> bool:
        return self._overlay_item.isVisible()

    @property
    def boxes_visible(self) -> bool:
        return self._boxes_item.isVisible()

    def box_rects(self) -> list[QRectF]:
        """The instance boxes shown, in photo pixels (x1, y1 exclusive as in the masks)."""
        items = self._boxes_item.childItems()
        return [c.rect() for c in items if isinstance(c, QGraphicsRectItem)]

    # -- zoom ------------------------------------------------------------------------------
    def zoom(self) -> float:
        """View pixels per photo pixel (1.0 = 100 %)."""
        return self.transform().m11()

    def zoom_by(self, factor: float, about: QPointF | None = None) -> None:
        """Multiply the zoom by ``factor`` keeping the photo point under viewport point
        ``about`` (default: the centre) where it is."""
        self.set_zoom(self.zoom() * factor, about)

    def set_zoom(self, scale: float, about: QPointF | None = None) -> None:
        """Set the zoom (clamped to [min(MIN_SCALE, fit), MAX_SCALE]) about viewport point
        ``about`` (default: the centre); the photo no longer follows resizes."""
        self._fit = False
        scale = min(MAX_SCALE, max(min(MIN_SCALE, self._fit_scale()), scale))
        anchor = about.toPoint() if about is not None else self.viewport().rect().center()
        fixed = self.mapToScene(anchor)
        self.setTransform(QTransform.fromScale(scale, scale))
        # Scroll so that the photo point that was under the anchor is there again.
        drift = self.mapFromScene(fixed) - anchor
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + drift.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + drift.y())
        self.zoomChanged.emit(self.zoom())

    def zoom_fit(self) -> None:
        """The whole photo, centred; it stays fitted on resizes until the user zooms."""
        self._fit = True
        rect = self.photo_rect()
        if not rect.isEmpty():
            scale = self._fit_scale()
            self.setTransform(QTransform.fromScale(scale, scale))  # centred by alignment
            self.zoomChanged.emit(self.zoom())

    def _fit_scale(self) -> float:
        rect = self.photo_rect()
        if rect.isEmpty():
            return MIN_SCALE
        avail = self.maximumViewportSize()  # without scroll bars (fitted, they go)
        return min(avail.width() / rect.width(), avail.height() / rect.height())

    # -- events ----------------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if angle := event.angleDelta().y():
            self.zoom_by(wheel_zoom_factor(angle, ZOOM_STEP), event.position())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if self.key_filter is None or not self.key_filter(event):
            super().keyPressEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fit:
            self.zoom_fit()
