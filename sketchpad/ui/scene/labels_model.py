"""The label list (legend) of the scene-labelling panel: a list model over the label table.

Rows are the drawing's effective label table (:func:`scene_label_table.effective_entries`), in
order. Display: ``name (n)`` with n the strokes (or ink components of a bitmap) carrying it;
edit: the bare name (renaming goes through the controller, an undoable step); decoration: a
colour swatch. While a label is isolated its row is bold and the others grey.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap

if TYPE_CHECKING:
    from sketchpad.ui.scene.labelling import SceneLabelling

ModelIndex = QModelIndex | QPersistentModelIndex
NAME_ROLE = Qt.ItemDataRole.UserRole + 1
COLOR_ROLE = Qt.ItemDataRole.UserRole + 2
COUNT_ROLE = Qt.ItemDataRole.UserRole + 3
SWATCH_SIZE = 14


def swatch(color: str, size: int = SWATCH_SIZE) -> QIcon:
    """A rounded colour square with a thin dark border."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QColor(0, 0, 0, 90))
    p.setBrush(QColor(color))
    p.drawRoundedRect(QRectF(0.5, 0.5, size - 1.0, size - 1.0), 3.0, 3.0)  # on whole pixels
    p.end()
    return QIcon(pix)


class LabelListModel(QAbstractListModel):
    """See the module docstring. Follows ``controller.entriesChanged`` (reset) and
    ``countsChanged`` / ``isolationChanged`` (repaint)."""

    def __init__(self, controller: SceneLabelling) -> None:
        super().__init__(controller)
        self._controller = controller
        self._icons: dict[str, QIcon] = {}
        controller.entriesChanged.connect(self._reset)
        controller.countsChanged.connect(self._repaint)
        controller.isolationChanged.connect(self._repaint)

    def _reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def _repaint(self) -> None:
        if self.rowCount():
            self.dataChanged.emit(self.index(0), self.index(self.rowCount() - 1))

    def _icon(self, color: str) -> QIcon:
        if color not in self._icons:
            self._icons[color] = swatch(color)
        return self._icons[color]

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008, N802 (Qt API)
        return 0 if parent.isValid() else len(self._controller.entries)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        entries = self._controller.entries
        if not index.isValid() or not 0 <= index.row() < len(entries):
            return None
        e = entries[index.row()]
        n = self._controller.count(e.name)
        isolated = self._controller.isolated
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{e.name} ({n})"
        if role in (Qt.ItemDataRole.EditRole, NAME_ROLE):
            return e.name
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(e.color)
        if role == COLOR_ROLE:
            return e.color
        if role == COUNT_ROLE:
            return n
        if role == Qt.ItemDataRole.ToolTipRole:
            what = self._controller.unit(n)
            return (
                f"{e.name}: {n} {what}, colour {e.color}\n"
                "Click to isolate (click again to show all) · double-click or F2 to rename"
            )
        if role == Qt.ItemDataRole.FontRole and isolated == e.name:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole and isolated not in (None, e.name):
            return QColor(150, 150, 150)
        return None

    def setData(self, index: ModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        entries = self._controller.entries
        if not 0 <= index.row() < len(entries):
            return False
        return self._controller.rename_label(entries[index.row()].name, str(value))

    def flags(self, index: ModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsEditable if index.isValid() else base

    def row_of(self, name: str | None) -> int | None:
        """The row of label ``name``, or None."""
        for i, e in enumerate(self._controller.entries):
            if e.name == name:
                return i
        return None
