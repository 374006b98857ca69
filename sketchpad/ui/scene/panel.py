"""The Scene Labels panel: a dock with the label list (legend), the caption box, the Label
action and the display options, over a :class:`~sketchpad.ui.scene.labelling.SceneLabelling`.

- The list: a colour swatch, the name and its stroke count per label. Click an entry to isolate
  it (the other labels fade; click it again, or Show All, to see everything); double-click or
  F2 renames it; +, − and Colour… add, remove and recolour (each an undoable step).
- Caption: "Propose" adds the vocabulary names the caption mentions; "Suggest" adds the best
  name of each stroke group (zero-shot, or by the recognition head loaded in Labels ▸
  Recognition Head…).
- Label (Ctrl+L) labels the drawing in the background; a busy bar shows while it runs.
  "Re-label after edits" runs it again after each pen-up, erase or undo.
- The Relabel tool (R) relabels a clicked stroke: with the isolated label, or a menu of labels.
- Isolation threshold: for a bitmap's label overlay and the exported masks (Auto: 0.71 for a
  fine-tuned model, else where each label scores above the labels' weighted mean).

Questions (colour, label menu, export folder) go through ``_ask_*`` methods so tests can
answer them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QModelIndex, QPoint, QPointF, QSignalBlocker, Qt
from PySide6.QtGui import QAction, QColor, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QColorDialog,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QProgressBar,
    QPushButton,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sketchpad.ui.icons import set_icon
from sketchpad.ui.scene.edits import UNPIN
from sketchpad.ui.scene.labelling import SceneLabelling
from sketchpad.ui.scene.labels_model import NAME_ROLE, LabelListModel, swatch
from sketchpad.ui.shortcuts import describe

THRESHOLD_STEPS = 100  # slider resolution
CANCEL = object()  # the label menu was dismissed


class ScenePanel(QDockWidget):
    """See the module docstring. ``actions`` holds the window-wide actions keyed ``label``,
    ``auto``, ``show_all``, ``export``."""

    def __init__(self, controller: SceneLabelling, parent: QWidget | None = None) -> None:
        super().__init__("Scene Labels", parent)
        self.setObjectName("scene_labels_dock")
        self.controller = controller
        self.model = LabelListModel(controller)
        self._last_folder = str(Path.home())
        self.actions_by_name = self._build_actions()
        self.setWidget(self._build_body())
        controller.ask_label = self._choose_label
        controller.isolationChanged.connect(self._show_isolation)
        controller.entriesChanged.connect(self._after_reset)
        controller.busyChanged.connect(self._show_busy)
        controller.status.connect(self.status_label.setText)
        controller.autoChanged.connect(self._show_auto)
        controller.resultChanged.connect(self._show_kind)
        controller.document.sketchChanged.connect(self._show_kind)
        self._show_kind()
        self._show_busy(False)
        self._show_isolation(controller.isolated)

    # -- building ----------------------------------------------------------------------------
    def _build_actions(self) -> dict[str, QAction]:
        c = self.controller
        label = QAction("&Label Strokes", self)
        label.setShortcut(QKeySequence("Ctrl+L"))
        describe(label, "label every stroke with the list's labels", "label")
        label.triggered.connect(lambda: c.label_now())
        auto = QAction("Re-label After &Edits", self)
        auto.setCheckable(True)
        auto.setToolTip("Label again shortly after each pen-up, erase or undo")
        auto.toggled.connect(c.set_auto_relabel)
        show_all = QAction("Show &All Labels", self)
        show_all.triggered.connect(lambda: c.isolate(None))
        describe(show_all, "show every label's strokes, none isolated", "show_all")
        export = QAction("Export &Labels…", self)
        export.setShortcut(QKeySequence("Ctrl+Shift+E"))
        export.triggered.connect(self.export_dialog)
        suggest = QAction("&Suggest Labels", self)
        suggest.setToolTip(
            "Suggest Labels — add the best name of each stroke group (zero-shot, or by the "
            "loaded recognition head)"
        )
        suggest.triggered.connect(lambda: c.suggest())
        actions = {
            "label": label,
            "auto": auto,
            "show_all": show_all,
            "export": export,
            "suggest": suggest,
        }
        for a in actions.values():
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        return actions

    def _build_body(self) -> QWidget:
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)

        self.caption_edit = QLineEdit(body)
        self.caption_edit.setPlaceholderText("Caption, e.g. “a dog under a tree”")
        self.caption_edit.setClearButtonEnabled(True)
        self.caption_edit.returnPressed.connect(self.propose)
        self.propose_button = QPushButton("Propose", body)
        self.propose_button.setToolTip("Add the categories the caption mentions as labels")
        self.propose_button.clicked.connect(self.propose)
        self.suggest_button = QPushButton("Suggest", body)
        self.suggest_button.setToolTip(
            "Add the best name of each stroke group as labels (zero-shot, or by the trained "
            "recognition head of Labels ▸ Recognition Head…)"
        )
        self.suggest_button.clicked.connect(self.actions_by_name["suggest"].trigger)
        row = QHBoxLayout()
        row.addWidget(self.caption_edit, 1)
        row.addWidget(self.propose_button)
        row.addWidget(self.suggest_button)
        layout.addLayout(row)

        self.list_view = QListView(body)
        self.list_view.setModel(self.model)
        self.list_view.setObjectName("scene_label_list")
        self.list_view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.list_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list_view.clicked.connect(self._on_clicked)
        self.list_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list_view.customContextMenuRequested.connect(self._context_menu)
        layout.addWidget(self.list_view, 1)

        buttons = QHBoxLayout()
        self.add_button = self._tool_button("+", "Add a label", self.add_label)
        self.remove_button = self._tool_button("−", "Remove the selected label", self.remove_label)
        self.color_button = self._tool_button(
            "Colour…", "Change the selected label's colour", self.choose_color
        )
        for b, name in ((self.add_button, "add"), (self.remove_button, "remove")):
            set_icon(b, name)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        set_icon(self.color_button, "colour")
        self.color_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.show_all_button = QToolButton(body)
        self.show_all_button.setDefaultAction(self.actions_by_name["show_all"])
        self.show_all_button.setText("Show All")
        self.show_all_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for b in (self.add_button, self.remove_button, self.color_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.show_all_button)
        layout.addLayout(buttons)

        run = QHBoxLayout()
        self.label_button = QToolButton(body)
        self.label_button.setDefaultAction(self.actions_by_name["label"])
        self.label_button.setText("Label")
        self.label_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.busy_bar = QProgressBar(body)
        self.busy_bar.setRange(0, 0)  # indeterminate
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setMaximumHeight(10)
        run.addWidget(self.label_button)
        run.addWidget(self.busy_bar, 1)
        layout.addLayout(run)

        self.auto_check = QCheckBox("Re-label after edits", body)
        self.auto_check.toggled.connect(self.actions_by_name["auto"].setChecked)
        self.color_check = QCheckBox("Colour strokes by label", body)
        self.color_check.setChecked(self.controller.color_by_label)
        self.color_check.toggled.connect(self.controller.set_color_by_label)
        layout.addWidget(self.auto_check)
        layout.addWidget(self.color_check)

        self.threshold_auto = QCheckBox("Auto", body)
        self.threshold_auto.setChecked(True)
        self.threshold_auto.setToolTip(
            "Auto: 0.71 for a fine-tuned model, else where each label scores above the labels' "
            "weighted mean"
        )
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal, body)
        self.threshold_slider.setRange(0, THRESHOLD_STEPS)
        self.threshold_slider.setValue(THRESHOLD_STEPS // 2)
        self.threshold_slider.setEnabled(False)
        self.threshold_value = QLabel("", body)
        self.threshold_value.setMinimumWidth(
            self.threshold_value.fontMetrics().horizontalAdvance("0.00")
        )
        self.threshold_auto.toggled.connect(self._set_threshold)
        self.threshold_slider.valueChanged.connect(self._set_threshold)
        thr = QHBoxLayout()
        thr.addWidget(QLabel("Isolation threshold", body))
        thr.addStretch(1)
        thr.addWidget(self.threshold_auto)
        thr.addWidget(self.threshold_value)
        tip = "Isolating a label of a bitmap sketch, and the exported isolation masks"
        for w in (self.threshold_slider, self.threshold_value):
            w.setToolTip(tip)
        layout.addLayout(thr)
        layout.addWidget(self.threshold_slider)

        self.hint_label = QLabel(body)
        self.hint_label.setWordWrap(True)
        self.status_label = QLabel(body)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.hint_label)
        layout.addWidget(self.status_label)
        return body

    def _tool_button(self, text: str, tip: str, slot: Callable[[], None]) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    # -- questions (replaced in tests) -------------------------------------------------------
    def _ask_color(self, initial: str, name: str) -> str | None:
        color = QColorDialog.getColor(QColor(initial), self, f"Colour of “{name}”")
        return color.name() if color.isValid() else None

    def _ask_label(self, stroke_id: str, global_pos: QPoint) -> object:
        """A menu of labels at the pointer: a name, "" (unlabelled), UNPIN or CANCEL."""
        menu = QMenu(self)
        for e in self.controller.entries:
            menu.addAction(swatch(e.color), e.name).setData(e.name)
        if self.controller.entries:
            menu.addSeparator()
        menu.addAction("No Label").setData("")
        menu.addAction("Let the Labeller Decide").setData(UNPIN)
        chosen = menu.exec(global_pos)
        return CANCEL if chosen is None else chosen.data()

    def _ask_export_folder(self, start: str) -> Path | None:
        """A folder for the export: an existing one, or a new name (the export makes it)."""
        doc_path = self.controller.document.path
        stem = doc_path.stem if doc_path is not None else "drawing"
        name, _ = QFileDialog.getSaveFileName(
            self,
            "Export Labels to Folder (a new name makes a new folder)",
            str(Path(start) / f"{stem}-labels"),
            "Folder (*)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        return Path(name) if name else None

    # -- slots -------------------------------------------------------------------------------
    def _choose_label(self, stroke_id: str, x: float, y: float) -> str | None:
        canvas = self.controller.canvas
        pos = canvas.mapToGlobal(QPointF(*canvas.view.to_view(x, y)).toPoint())
        choice = self._ask_label(stroke_id, pos)
        return None if choice is CANCEL else str(choice)

    def selected_name(self) -> str | None:
        index = self.list_view.currentIndex()
        return index.data(NAME_ROLE) if index.isValid() else None

    def _on_clicked(self, index: QModelIndex) -> None:
        name = index.data(NAME_ROLE)
        if name is not None:
            self.controller.toggle_isolation(name)

    def _show_isolation(self, name: str | None) -> None:
        row = self.model.row_of(name)
        sel = self.list_view.selectionModel()
        if row is None:
            sel.clearSelection()
        else:
            self.list_view.setCurrentIndex(self.model.index(row))
        self.actions_by_name["show_all"].setEnabled(name is not None)

    def _after_reset(self) -> None:
        self._show_isolation(self.controller.isolated)

    def _context_menu(self, pos: QPoint) -> None:
        index = self.list_view.indexAt(pos)
        menu = QMenu(self)
        menu.addAction("Add Label", self.add_label)
        if index.isValid():
            self.list_view.setCurrentIndex(index)
            menu.addAction("Rename", lambda: self.list_view.edit(index))
            menu.addAction("Colour…", self.choose_color)
            menu.addAction("Remove", self.remove_label)
        menu.exec(self.list_view.viewport().mapToGlobal(pos))

    def add_label(self) -> None:
        """Add "label N" and start renaming it in place."""
        name = self.controller.add_label()
        row = self.model.row_of(name)
        if row is not None:
            index = self.model.index(row)
            self.list_view.setCurrentIndex(index)
            self.list_view.edit(index)

    def remove_label(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.controller.remove_label(name)

    def choose_color(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        entry = next(e for e in self.controller.entries if e.name == name)
        color = self._ask_color(entry.color, name)
        if color is not None:
            self.controller.set_label_color(name, color)

    def propose(self) -> None:
        added = self.controller.propose_from_caption(self.caption_edit.text())
        if added:
            self.status_label.setText(f"Proposed: {', '.join(added)}")

    def export_dialog(self) -> bool:
        folder = self._ask_export_folder(self._last_folder)
        if folder is None:
            return False
        self._last_folder = str(folder.parent)
        return self.controller.export_labels(folder)

    def _set_threshold(self, *_: object) -> None:
        auto = self.threshold_auto.isChecked()
        self.threshold_slider.setEnabled(not auto)
        value = self.threshold_slider.value() / THRESHOLD_STEPS
        self.threshold_value.setText("" if auto else f"{value:.2f}")
        self.controller.set_threshold(None if auto else value)

    def _show_busy(self, busy: bool) -> None:
        self.busy_bar.setVisible(busy)

    def _show_auto(self, on: bool) -> None:
        for w in (self.auto_check, self.actions_by_name["auto"]):
            with QSignalBlocker(w):
                w.setChecked(on)

    def _show_kind(self) -> None:
        raster = self.controller.document.sketch.is_raster
        self.hint_label.setText(
            "Bitmap sketch: labels are per ink component, shown as an overlay; relabelling by "
            "clicking works on drawings made of strokes."
            if raster
            else "Relabel tool (R): click a stroke to relabel it with the isolated label, or "
            "choose one from a menu."
        )
