"""A slim bar at the top of the window that says which weights are missing and how to get them.

Without weights the app still starts and drawing works; only photo search needs a model. The
banner says so, and offers Download, Import… and Model Manager… (the window connects them to
the model manager and its download job). × hides it until the next :meth:`show_missing`.
What is missing is found by :func:`missing_weights` (from :mod:`sketchpad.engine.downloads`,
re-exported here): local places only, no network.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from sketchpad.engine.downloads import display_name, format_size
from sketchpad.engine.downloads import missing_weights as missing_weights
from sketchpad.vision.registry import get_spec

STYLE = """
QFrame#weights_banner { background: #fff3cd; border-bottom: 1px solid #e0c36a; }
QFrame#weights_banner QLabel { color: #4d3b00; }
QFrame#weights_banner QToolButton { border: none; color: #4d3b00; font-size: 14px; }
"""


class WeightsBanner(QFrame):
    """The missing-weights bar. Hidden until :meth:`show_missing`.

    Signals:
        downloadRequested(str backbone_id), importRequested(str backbone_id),
        managerRequested(), dismissed() (the × button).
    """

    downloadRequested = Signal(str)
    importRequested = Signal(str)
    managerRequested = Signal()
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("weights_banner")
        self.setStyleSheet(STYLE)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._backbone_id = ""
        self._detail = ""

        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.setSpacing(6)
        self.message_label = QLabel(self)
        self.message_label.setTextFormat(Qt.TextFormat.PlainText)
        self.message_label.setWordWrap(True)
        layout.addWidget(self.message_label, 1)
        self.download_button = QPushButton("Download", self)
        self.download_button.clicked.connect(lambda: self.downloadRequested.emit(self._backbone_id))
        self.import_button = QPushButton("Import…", self)
        self.import_button.setToolTip("Use a weights file or folder you already have")
        self.import_button.clicked.connect(lambda: self.importRequested.emit(self._backbone_id))
        self.manager_button = QPushButton("Model Manager…", self)
        self.manager_button.setToolTip("Every model, where its files live, device and precision")
        self.manager_button.clicked.connect(self.managerRequested)
        for button in (self.download_button, self.import_button, self.manager_button):
            layout.addWidget(button)
        self.close_button = QToolButton(self)
        self.close_button.setText("×")
        self.close_button.setToolTip("Hide this message")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self._dismiss)
        layout.addWidget(self.close_button)
        self.hide()

    @property
    def backbone_id(self) -> str:
        """The backbone the message is about ("" before :meth:`show_missing`)."""
        return self._backbone_id

    @property
    def detail(self) -> str:
        """The full explanation given to :meth:`show_missing` (also the message's tooltip)."""
        return self._detail

    @property
    def message(self) -> str:
        return self.message_label.text()

    def show_missing(self, backbone_id: str, detail: str) -> None:
        """Say that ``backbone_id`` has no weights and show the banner.

        Args:
            backbone_id: a registry id; an unknown one is named as it is.
            detail: the full explanation (e.g. :func:`~sketchpad.engine.downloads.missing_weights`
                or a loading error), shown as the message's tooltip.
        """
        try:
            spec = get_spec(backbone_id)
        except KeyError:
            name, size_mb = backbone_id, 0
        else:
            name, size_mb = display_name(spec), spec.download_mb
        self._backbone_id, self._detail = backbone_id, detail
        self.message_label.setText(
            f"No weights for {name} yet: drawing works, but photos cannot be searched."
        )
        self.message_label.setToolTip(detail)
        size = f" (≈ {format_size(size_mb * 1e6)})" if size_mb else ""
        self.download_button.setText(f"Download{size}")
        self.download_button.setToolTip(f"Download the weights of {name} (needs the internet)")
        self.show()

    def hide_message(self) -> None:
        """Hide the banner (e.g. once the weights are here)."""
        self.hide()

    def _dismiss(self) -> None:
        self.hide_message()
        self.dismissed.emit()
