"""The photo-search controls beside the gallery: mode, backbone, threshold, CRF, words, compose.

:class:`QueryControls` only holds the user's choices and says when one changes
(``changed(what)``); :class:`~sketchpad.ui.photos.search.PhotoSearch` turns them into queries.
Typing and dragging the α slider are debounced so that a query runs once the hand rests;
the threshold slider is not (scores do not depend on it: masks are re-cut locally).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QVBoxLayout,
    QWidget,
)

Mode = Literal["category", "fine", "part"]

#: Mode → (label, tooltip).
MODES: dict[str, tuple[str, str]] = {
    "category": ("Category (CLIP)", "Find every object of the drawn category (CLIP backbones)."),
    "fine": (
        "Fine-grained (DINOv2)",
        "Find objects that look like the drawing: pose, shape, details (DINOv2 backbones).",
    ),
    "part": (
        "Part (selection)",
        "Search only for the selected strokes: select them with the lasso, or pick a sector "
        "with the partition tool.",
    ),
}
#: Debounce of the text box and the α slider (ms).
TYPING_DELAY_MS = 400


@dataclass(frozen=True)
class QueryOptions:
    """What the controls say now.

    Attributes:
        mode: "category", "fine" or "part".
        backbone: the backbone id chosen for the mode's family.
        threshold: mask probability threshold in (0, 1).
        crf: refine edges with the dense CRF (large view and exports).
        text: words added to the sketch ("" for none).
        alpha: weight of the sketch against the words, in [0, 1].
        compose: segment each stroke group as well as the whole sketch.
    """

    mode: Mode
    backbone: str
    threshold: float
    crf: bool
    text: str
    alpha: float
    compose: bool


class QueryControls(QWidget):
    """The controls. Signals: ``changed(str)`` with what changed ("mode", "backbone",
    "threshold", "crf", "text", "alpha", "compose").

    Args:
        category_backbones: CLIP backbone ids (first = default).
        fine_backbones: DINOv2 backbone ids (first = default).
    """

    changed = Signal(str)

    def __init__(
        self,
        category_backbones: list[str],
        fine_backbones: list[str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("query_controls")
        self._families = {"category": list(category_backbones), "fine": list(fine_backbones)}
        self._installed: dict[str, bool] = {}
        self._chosen = {k: (v[0] if v else "") for k, v in self._families.items()}

        self.mode_combo = QComboBox()
        for key, (label, tip) in MODES.items():
            self.mode_combo.addItem(label, key)
            self.mode_combo.setItemData(
                self.mode_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        self.backbone_combo = QComboBox()
        self.backbone_combo.setToolTip("The model that compares the sketch with the photos")

        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(5, 95)
        self.threshold_slider.setValue(50)
        self.threshold_slider.setToolTip(
            "Mask threshold: higher keeps only the surest pixels (no model run)"
        )
        self.threshold_label = QLabel("0.50")
        self.crf_box = QCheckBox("Refine edges (CRF)")
        self.crf_box.setToolTip(
            "Dense-CRF refinement of the full-size masks in the large view and in exports "
            "(slower; the thumbnails never use it)"
        )
        self.crf_box.setChecked(True)
        self.text_edit = QLineEdit()
        self.text_edit.setPlaceholderText("e.g. “on the grass”")
        self.text_edit.setToolTip("Words added to the sketch (CLIP models only)")
        self.text_edit.setClearButtonEnabled(True)
        self.alpha_slider = QSlider(Qt.Orientation.Horizontal)
        self.alpha_slider.setRange(0, 100)
        self.alpha_slider.setValue(50)
        self.alpha_slider.setToolTip(
            "Left: the words only; right: the sketch only (α is the sketch's weight)"
        )
        self.alpha_label = QLabel("α 0.50")
        self.compose_box = QCheckBox("Composed (each object)")
        self.compose_box.setToolTip(
            "A sketch of several objects (a dog beside a frisbee): each group of strokes is "
            "searched for as well as the whole, and the masks are united"
        )
        self.searching_label = QLabel()  # part mode: what is searched ("sector 1 of 3")
        self.searching_label.setObjectName("query_searching")
        self.searching_label.setWordWrap(True)
        self.searching_label.hide()
        self.status_label = QLabel()
        self.status_label.setObjectName("query_status")
        self.status_label.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setObjectName("query_error")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()

        form = QFormLayout()
        form.addRow("Mode", self.mode_combo)
        form.addRow("Model", self.backbone_combo)
        row = QHBoxLayout()
        row.addWidget(self.threshold_slider, 1)
        row.addWidget(self.threshold_label)
        form.addRow("Threshold", row)
        form.addRow("Words", self.text_edit)
        row = QHBoxLayout()
        row.addWidget(self.alpha_slider, 1)
        row.addWidget(self.alpha_label)
        form.addRow("Words ↔ sketch", row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.compose_box)
        layout.addWidget(self.crf_box)
        layout.addWidget(self.searching_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.error_label)
        layout.addStretch(1)

        self._typing = QTimer(self, singleShot=True, interval=TYPING_DELAY_MS)
        self._typing.timeout.connect(lambda: self.changed.emit("text"))
        self._alpha = QTimer(self, singleShot=True, interval=TYPING_DELAY_MS // 2)
        self._alpha.timeout.connect(lambda: self.changed.emit("alpha"))
        self._fill_backbones()
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self.backbone_combo.currentIndexChanged.connect(self._on_backbone)
        self.threshold_slider.valueChanged.connect(self._on_threshold)
        self.crf_box.toggled.connect(lambda _: self.changed.emit("crf"))
        self.text_edit.textChanged.connect(lambda _: self._typing.start())
        self.text_edit.returnPressed.connect(self._flush_text)
        self.alpha_slider.valueChanged.connect(self._on_alpha)
        self.compose_box.toggled.connect(self._on_compose)

    # -- state -------------------------------------------------------------------------------
    def options(self) -> QueryOptions:
        mode = self.mode
        return QueryOptions(
            mode=mode,
            backbone=self.backbone,
            threshold=self.threshold_slider.value() / 100.0,
            crf=self.crf_box.isChecked(),
            text=self.text_edit.text().strip() if self.text_edit.isEnabled() else "",
            alpha=self.alpha_slider.value() / 100.0,
            compose=self.compose_box.isChecked() and mode != "part",
        )

    @property
    def mode(self) -> Mode:
        return self.mode_combo.currentData()

    def set_mode(self, mode: Mode) -> None:
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(mode))

    @property
    def family(self) -> str:
        """The backbone family of the mode: a part query uses the category models."""
        return "fine" if self.mode == "fine" else "category"

    @property
    def backbone(self) -> str:
        return self._chosen[self.family]

    def chosen(self, family: str) -> str:
        """The backbone chosen for ``family`` ("category" or "fine"), whatever the mode."""
        return self._chosen[family]

    def backbones(self, family: str) -> list[str]:
        """The backbones offered for ``family``, preferred first."""
        return list(self._families[family])

    def preselect(self, family: str, backbone_id: str) -> None:
        """Choose ``backbone_id`` for ``family`` without a ``changed`` signal (the caller
        loads it): the start-up choice of an installed model."""
        if backbone_id not in self._families[family]:
            raise KeyError(f"{backbone_id!r} is not a {family} backbone")
        self._chosen[family] = backbone_id
        self._fill_backbones()

    def set_backbone(self, backbone_id: str) -> None:
        """Choose a backbone (switching the mode's family when it is of the other one)."""
        for family, ids in self._families.items():
            if backbone_id in ids:
                self._chosen[family] = backbone_id
                if family != self.family:
                    self.set_mode("fine" if family == "fine" else "category")
                self._fill_backbones()
                self.changed.emit("backbone")
                return
        raise KeyError(f"unknown backbone {backbone_id!r}")

    def set_installed(self, installed: dict[str, bool]) -> None:
        """Which backbones have weights here: the model box says "✓" or "(no weights)"."""
        self._installed = dict(installed)
        self._fill_backbones()

    def set_threshold(self, threshold: float) -> None:
        self.threshold_slider.setValue(round(threshold * 100))

    def set_text_enabled(self, enabled: bool, reason: str = "") -> None:
        """Words need a CLIP model: with DINOv2 the box is off, and says why."""
        for w in (self.text_edit, self.alpha_slider):
            w.setEnabled(enabled)
        self.text_edit.setToolTip("" if enabled else reason)

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def set_searching(self, text: str) -> None:
        """Say what is searched ("Searching: 2 strokes"); "" hides the line."""
        self.searching_label.setText(text)
        self.searching_label.setVisible(bool(text))

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def clear_error(self) -> None:
        self.error_label.clear()
        self.error_label.hide()

    # -- slots -------------------------------------------------------------------------------
    def _fill_backbones(self) -> None:
        combo = self.backbone_combo
        combo.blockSignals(True)
        combo.clear()
        for backbone_id in self._families[self.family]:
            state = self._installed.get(backbone_id)
            mark = "" if state is None else "  ✓" if state else "  (no weights)"
            combo.addItem(backbone_id + mark, backbone_id)
            if state is not None:
                tip = "installed" if state else "no weights here: Photos ▸ Model Manager…"
                combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        combo.setCurrentIndex(max(0, combo.findData(self.backbone)))
        combo.blockSignals(False)

    def _on_mode(self, _index: int) -> None:
        before = self.backbone_combo.currentData()
        self._fill_backbones()
        self.compose_box.setEnabled(self.mode != "part")
        self.changed.emit("mode")
        if self.backbone != before:
            self.changed.emit("backbone")

    def _on_backbone(self, _index: int) -> None:
        chosen = self.backbone_combo.currentData()
        if chosen and chosen != self._chosen[self.family]:
            self._chosen[self.family] = chosen
            self.changed.emit("backbone")

    def _on_threshold(self, value: int) -> None:
        self.threshold_label.setText(f"{value / 100:.2f}")
        self.changed.emit("threshold")

    def _on_alpha(self, value: int) -> None:
        self.alpha_label.setText(f"α {value / 100:.2f}")
        self._alpha.start()

    def _on_compose(self, _checked: bool) -> None:
        self.changed.emit("compose")

    def _flush_text(self) -> None:
        self._typing.stop()
        self.changed.emit("text")
