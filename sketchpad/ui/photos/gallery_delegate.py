"""Paints one gallery cell: thumbnail, translucent mask, instance boxes, score badge, name.

Every cell has the same size (``sizeHint`` is constant, so the view can lay out 10,000 cells
without asking). The thumbnail is fitted and centred in a ``side`` × ``side`` square; the mask
and the thumbnail both cover the whole photo with the same aspect ratio, so the mask overlay is
scaled to exactly the thumbnail's drawn rectangle and the instance boxes (XYXY, mask pixels,
x1/y1 exclusive) are scaled with it.

Painting never decodes: ``ThumbnailCache.get`` queues a decode and a placeholder is drawn until
``ready`` arrives. A mask overlay is a small ARGB image built once per mask version
(``MaskKeyRole``) and kept in an LRU, not per paint. When a query is shown, photos that do not
match are drawn faded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import (
    QEvent,
    QLineF,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QHelpEvent,
    QImage,
    QPainter,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolTip,
)

from sketchpad.names import display_name
from sketchpad.ui.photos.gallery_model import Cell, CellRole, NameRole, PathRole
from sketchpad.ui.photos.thumbnails import ThumbnailCache

if TYPE_CHECKING:
    from sketchpad.vision.maps import Instance

ModelIndex = QModelIndex | QPersistentModelIndex

#: Space around the thumbnail square and the name (logical pixels).
PADDING = 6
#: Opacity of the mask tint (0–255).
MASK_ALPHA = 110
#: Colour of instance boxes.
BOX_COLOUR = QColor(255, 230, 0)
#: Most boxes drawn on one thumbnail (the best instances).
MAX_BOXES = 8
#: Opacity of photos that do not match the query shown.
NON_MATCH_OPACITY = 0.4
#: Mask overlays kept (each is a thumbnail-sized ARGB image).
OVERLAY_CACHE = 512

_PLACEHOLDER = QColor(128, 128, 128, 60)
_ERROR_FILL = QColor(200, 60, 60, 50)
_ERROR_MARK = QColor(200, 40, 40)
_BADGE_FILL = QColor(0, 0, 0, 170)
_BADGE_MATCH_FILL = QColor(20, 120, 50, 220)


_REVIEW_FILL = {"accepted": QColor(46, 125, 50, 230), "rejected": QColor(198, 40, 40, 230)}
_CORRECTED_FILL = QColor(94, 53, 177, 230)


def fit_rect(width: int, height: int, area: QRect | QRectF) -> QRectF:
    """The rectangle of a ``width`` × ``height`` image scaled to fit ``area``, centred."""
    a = QRectF(area)
    if width <= 0 or height <= 0:
        return QRectF(a.center(), a.center())
    scale = min(a.width() / width, a.height() / height)
    w, h = width * scale, height * scale
    return QRectF(a.x() + (a.width() - w) / 2, a.y() + (a.height() - h) / 2, w, h)


def mask_argb(
    mask: np.ndarray, group_map: np.ndarray | None = None, alpha: int = MASK_ALPHA
) -> np.ndarray:
    """(H, W) uint32 premultiplied ARGB (QImage Format_ARGB32_Premultiplied) of a mask tint:
    ``alpha`` where ``mask`` is set, transparent elsewhere; the colour of each pixel's group
    (``vision.overlay.GROUP_COLOURS``; group 1 without ``group_map``).

    Args:
        mask: (H, W) bool.
        group_map: (H, W) int, 0 = none, k = group k; None: one group.
        alpha: tint opacity, 0–255.
    """
    from sketchpad.vision.overlay import mask_tint_argb32  # cv2: imported on first use

    return np.ascontiguousarray(mask_tint_argb32(mask, group_map=group_map, alpha=alpha / 255))


def overlay_image(mask: np.ndarray, group_map: np.ndarray | None = None) -> QImage:
    """A QImage (owning its pixels) of ``mask_argb``."""
    argb = mask_argb(mask, group_map)
    h, w = argb.shape
    image = QImage(argb.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied)
    return image.copy()


def box_rects(
    instances: Sequence[Instance], mask_hw: tuple[int, int], target: QRectF
) -> list[QRectF]:
    """Instance boxes (XYXY in mask pixels, x1/y1 exclusive) scaled onto ``target``, the
    rectangle where the whole mask (= the whole photo) is drawn."""
    h, w = mask_hw
    sx, sy = target.width() / w, target.height() / h
    return [
        QRectF(target.x() + x0 * sx, target.y() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
        for x0, y0, x1, y1 in (inst.box_xyxy for inst in instances)
    ]


class GalleryDelegate(QStyledItemDelegate):
    """See the module docstring.

    Args:
        thumbnails: where thumbnails come from (``get`` queues decodes).
        parent: Qt parent (the view).
        font: font of the names (default: the application's), fixes the cell height.
    """

    def __init__(
        self, thumbnails: ThumbnailCache, parent: QObject | None = None, font: QFont | None = None
    ) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self._font = QFont(font) if font is not None else QApplication.font()
        self._metrics = QFontMetrics(self._font)
        self._side = thumbnails.side
        self._text_h = self._metrics.height() + 2
        self._size = QSize(self._side + 2 * PADDING, self._side + 2 * PADDING + self._text_h)
        self._overlays: OrderedDict[Hashable, QImage] = OrderedDict()
        self._badge_font = QFont(self._font)
        self._badge_font.setBold(True)
        self._badge_font.setPointSizeF(max(6.0, self._font.pointSizeF() * 0.85))

    # -- geometry ----------------------------------------------------------------------------
    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:  # noqa: N802
        return QSize(self._size)

    @property
    def cell_size(self) -> QSize:
        """The size of every cell."""
        return QSize(self._size)

    @property
    def side(self) -> int:
        """The thumbnails' square, in pixels."""
        return self._side

    def set_side(self, side: int) -> None:
        """Show thumbnails in a ``side`` square (the cell grows or shrinks with it)."""
        self._side = int(side)
        self._size = QSize(self._side + 2 * PADDING, self._side + 2 * PADDING + self._text_h)

    def thumb_area(self, cell: QRect) -> QRect:
        """The square where the thumbnail is fitted, in a cell at ``cell``."""
        side = self._side
        return QRect(cell.x() + (cell.width() - side) // 2, cell.y() + PADDING, side, side)

    def overlay_for(self, key: Hashable, mask: np.ndarray, group_map: np.ndarray | None) -> QImage:
        """The overlay image of a mask version ``key`` (built once, then from the LRU)."""
        image = self._overlays.get(key)
        if image is None:
            image = overlay_image(mask, group_map)
            self._overlays[key] = image
            while len(self._overlays) > OVERLAY_CACHE:
                self._overlays.popitem(last=False)
        else:
            self._overlays.move_to_end(key)
        return image

    def clear_overlays(self) -> None:
        """Forget the cached overlay images."""
        self._overlays.clear()

    # -- painting ----------------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        cell = QRect(option.rect)
        painter.save()
        try:
            self._paint(painter, option, index, cell)
        finally:
            painter.restore()

    def _paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex, cell: QRect
    ) -> None:
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        palette = option.palette
        if selected:
            fill = QColor(palette.highlight().color())
            fill.setAlpha(90)
            painter.fillRect(cell, fill)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(cell, QColor(128, 128, 128, 30))

        area = self.thumb_area(cell)
        c: Cell | None = index.data(CellRole)
        if c is None:
            return
        path, score, mask = c.path, c.score, c.mask
        faded = score is not None and not c.match
        image = self.thumbnails.get(path) if path is not None else None

        if faded:
            painter.setOpacity(NON_MATCH_OPACITY)
        if image is not None:
            target = fit_rect(image.width(), image.height(), area)
            painter.drawImage(target, image)
        else:
            shape = mask.mask.shape if mask is not None else (area.height(), area.width())
            target = fit_rect(shape[1], shape[0], area)
            failure = self.thumbnails.failure(path) if path is not None else None
            if failure is not None:
                self._paint_failure(painter, target)
            else:
                painter.fillRect(target, _PLACEHOLDER)
        if mask is not None and mask.mask.any():
            painter.drawImage(target, self.overlay_for(c.mask_key, mask.mask, mask.group_map))
            pen = QPen(BOX_COLOUR)
            pen.setWidthF(1.5)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            for r in box_rects(mask.instances[:MAX_BOXES], mask.mask.shape, target):
                painter.drawRect(r)
        painter.setOpacity(1.0)
        if score is not None:
            self._paint_badge(painter, target, score, c.match)
        if c.review is not None or c.corrected:
            self._paint_review(painter, target, c.review, c.corrected)

        name = display_name(c.name)
        text_rect = QRect(
            cell.x() + PADDING // 2,
            area.bottom() + 1 + PADDING // 2,
            cell.width() - PADDING,
            self._text_h,
        )
        painter.setFont(self._font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        shown = self._metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, text_rect.width())
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, shown
        )

    def _paint_failure(self, painter: QPainter, target: QRectF) -> None:
        painter.fillRect(target, _ERROR_FILL)
        pen = QPen(_ERROR_MARK)
        pen.setWidthF(3.0)
        painter.setPen(pen)
        c = target.center()
        r = min(target.width(), target.height()) * 0.18
        painter.drawLine(QLineF(c.x() - r, c.y() - r, c.x() + r, c.y() + r))
        painter.drawLine(QLineF(c.x() - r, c.y() + r, c.x() + r, c.y() - r))

    def _paint_badge(self, painter: QPainter, target: QRectF, score: float, match: bool) -> None:
        text = f"{score:.2f}"
        painter.setFont(self._badge_font)
        fm = painter.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 8, fm.height() + 2
        badge = QRectF(target.right() - w - 2, target.top() + 2, w, h)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(_BADGE_MATCH_FILL if match else _BADGE_FILL)
        painter.drawRoundedRect(badge, 4.0, 4.0)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_review(
        self, painter: QPainter, target: QRectF, state: str | None, corrected: bool
    ) -> None:
        """Top left: ✓ on green (accepted) or ✗ on red (rejected); ✎ when the mask was
        corrected by hand. Symbols and colours both, so neither alone carries the meaning."""
        marks = []
        if state is not None:
            marks.append(("✓" if state == "accepted" else "✗", _REVIEW_FILL[state]))
        if corrected:
            marks.append(("✎", _CORRECTED_FILL))
        painter.setFont(self._badge_font)
        fm = painter.fontMetrics()
        x = target.left() + 2
        for text, fill in marks:
            w, h = fm.horizontalAdvance(text) + 8, fm.height() + 2
            badge = QRectF(x, target.top() + 2, w, h)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            painter.drawRoundedRect(badge, 4.0, 4.0)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
            x += w + 2

    # -- tooltips ----------------------------------------------------------------------------
    def helpEvent(  # noqa: N802 (Qt API)
        self,
        event: QHelpEvent,
        view: QAbstractItemView,
        option: QStyleOptionViewItem,
        index: ModelIndex,
    ) -> bool:
        if event.type() == QEvent.Type.ToolTip and index.isValid():
            path = index.data(PathRole)
            failure = self.thumbnails.failure(path) if path is not None else None
            if failure is not None:
                QToolTip.showText(
                    event.globalPos(), f"{index.data(NameRole)}\ncannot be shown: {failure}", view
                )
                return True
        return super().helpEvent(event, view, option, index)
