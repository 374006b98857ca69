"""The canvas toolbar: tool buttons and the tool options, kept in sync with the canvas."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QSpinBox,
    QToolBar,
    QToolButton,
    QWidget,
)

from sketchpad.ui.canvas.canvas import Canvas
from sketchpad.ui.canvas.tools import LASSO_MODES, PARTITION_N_RANGE

LASSO_MODE_TEXT = {"whole": "Whole strokes", "cut": "Cut strokes"}
PEN_WIDTH_RANGE = (0.5, 64.0)  # canvas pixels


def color_swatch(color: str, size: int = 16) -> QIcon:
    """A square icon filled with ``color`` (``#rrggbb``)."""
    pix = QPixmap(size, size)
    pix.fill(QColor(color))
    return QIcon(pix)


ICON_ONLY = ("undo", "redo", "zoom_out", "zoom_in", "fit")  # edit actions shown as icons


class CanvasToolBar(QToolBar):
    """Tool actions (from ``canvas.tool_actions()``, icon and name), undo, redo and zoom
    (icons), then pen width, pen colour, lasso mode and number of partition sectors.
    Widgets: ``width_spin``, ``color_button``, ``lasso_mode_combo``, ``partition_n_spin``."""

    def __init__(self, canvas: Canvas, parent: QWidget | None = None) -> None:
        super().__init__("Tools", parent)
        self.canvas = canvas
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addActions(list(canvas.tool_actions().values()))
        self.addSeparator()
        edit = canvas.edit_actions()
        for name in ICON_ONLY:
            self.addAction(edit[name])
            button = self.widgetForAction(edit[name])
            if isinstance(button, QToolButton):
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.addSeparator()

        self.width_spin = QDoubleSpinBox(self)
        self.width_spin.setRange(*PEN_WIDTH_RANGE)
        self.width_spin.setSingleStep(0.5)
        self.width_spin.setDecimals(1)
        self.width_spin.setSuffix(" px")
        self.width_spin.setToolTip("Pen width (canvas pixels)")
        self.width_spin.setValue(canvas.pen_width)
        self.width_spin.valueChanged.connect(self._set_width)
        canvas.penWidthChanged.connect(self._show_width)
        self.addWidget(QLabel(" Width ", self))
        self.addWidget(self.width_spin)

        self.color_button = QToolButton(self)
        self.color_button.setToolTip("Pen colour")
        self.color_button.clicked.connect(self.choose_color)
        canvas.penColorChanged.connect(self._show_color)
        self._show_color(canvas.pen_color)
        self.addWidget(self.color_button)
        self.addSeparator()

        self.lasso_mode_combo = QComboBox(self)
        self.lasso_mode_combo.setToolTip("Lasso: select whole strokes, or cut them at the lasso")
        for mode in LASSO_MODES:
            self.lasso_mode_combo.addItem(LASSO_MODE_TEXT[mode], mode)
        self._show_lasso_mode(canvas.lasso_mode)
        self.lasso_mode_combo.currentIndexChanged.connect(self._set_lasso_mode)
        canvas.lassoModeChanged.connect(self._show_lasso_mode)
        self.addWidget(QLabel(" Lasso ", self))
        self.addWidget(self.lasso_mode_combo)

        self.partition_n_spin = QSpinBox(self)
        self.partition_n_spin.setRange(*PARTITION_N_RANGE)
        self.partition_n_spin.setToolTip("Number of partition sectors")
        self.partition_n_spin.setValue(canvas.partition_n)
        self.partition_n_spin.valueChanged.connect(self._set_partition_n)
        canvas.partitionNChanged.connect(self._show_partition_n)
        self.addWidget(QLabel(" Sectors ", self))
        self.addWidget(self.partition_n_spin)

    def choose_color(self) -> None:
        """Ask for the pen colour with a colour dialog."""
        color = QColorDialog.getColor(QColor(self.canvas.pen_color), self, "Pen Colour")
        if color.isValid():
            self.canvas.pen_color = color

    # canvas → widgets (blocked, so a change does not echo back)
    def _show_width(self, width: float) -> None:
        with QSignalBlocker(self.width_spin):
            self.width_spin.setValue(width)

    def _show_color(self, color: str) -> None:
        self.color_button.setIcon(color_swatch(color))
        self.color_button.setText(color)

    def _show_lasso_mode(self, mode: str) -> None:
        with QSignalBlocker(self.lasso_mode_combo):
            self.lasso_mode_combo.setCurrentIndex(self.lasso_mode_combo.findData(mode))

    def _show_partition_n(self, n: int) -> None:
        with QSignalBlocker(self.partition_n_spin):
            self.partition_n_spin.setValue(n)

    # widgets → canvas
    def _set_width(self, width: float) -> None:
        self.canvas.pen_width = width

    def _set_lasso_mode(self, index: int) -> None:
        self.canvas.lasso_mode = self.lasso_mode_combo.itemData(index)

    def _set_partition_n(self, n: int) -> None:
        self.canvas.partition_n = n
