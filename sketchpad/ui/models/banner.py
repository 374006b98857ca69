"""A slim bar at the top of the window that says which weights are missing and how to get them.

Without weights the app still starts and drawing works; only photo search needs a model. The
banner says so, and offers Download, Import… and Model Manager… (the window connects them to
the model manager and its download job). It names the active model and the models of its
family that are installed, with a "Use …" button for the first of them. × hides it until the
next :meth:`show_missing` / :meth:`show_failed`. What is missing is found by
:func:`missing_weights` (from :mod:`sketchpad.engine.downloads`, re-exported here): local
places only, no network. :func:`for_window` turns a message meant for the command line (one
that says to run ``sketchpad models …``) into one that names the window's buttons.
"""

from __future__ import annotations

from collections.abc import Sequence

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
#: What replaces a line telling the user to type ``sketchpad models …``.
WINDOW_FIX = (
    "To fix: Download (when online) or Import… a file you have, from the banner above the "
    "gallery or from Photos ▸ Model Manager…."
)


def for_window(message: str) -> str:
    """``message`` with every line that tells the user to type a ``sketchpad`` command
    replaced by :data:`WINDOW_FIX`, which names the window's buttons."""
    lines = [WINDOW_FIX if "sketchpad models" in line else line for line in message.splitlines()]
    return "\n".join(lines)


def _name(backbone_id: str) -> str:
    try:
        return display_name(get_spec(backbone_id))
    except KeyError:
        return backbone_id


class WeightsBanner(QFrame):
    """The missing-weights bar. Hidden until :meth:`show_missing`.

    Signals:
        downloadRequested(str backbone_id), importRequested(str backbone_id),
        useRequested(str backbone_id) (an installed model of the family),
        managerRequested(), dismissed() (the × button).
    """

    downloadRequested = Signal(str)
    useRequested = Signal(str)
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
        self._installed: list[str] = []

        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.setSpacing(6)
        self.message_label = QLabel(self)
        self.message_label.setTextFormat(Qt.TextFormat.PlainText)
        self.message_label.setWordWrap(True)
        layout.addWidget(self.message_label, 1)
        self.use_button = QPushButton(self)
        self.use_button.clicked.connect(self._use)
        layout.addWidget(self.use_button)
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

    @property
    def installed(self) -> list[str]:
        """The installed models of the family offered instead (first: the Use button's)."""
        return list(self._installed)

    def show_missing(self, backbone_id: str, detail: str, installed: Sequence[str] = ()) -> None:
        """Say that ``backbone_id``, the active model, has no weights and show the banner.

        Args:
            backbone_id: a registry id; an unknown one is named as it is.
            detail: the full explanation (e.g. :func:`~sketchpad.engine.downloads.missing_weights`
                or a loading error), shown as the message's tooltip (:func:`for_window`).
            installed: the models of its family that have weights here, best first.
        """
        name = _name(backbone_id)
        self._show(backbone_id, detail, installed, f"The active model, {name}, has no weights")

    def show_failed(self, backbone_id: str, detail: str, installed: Sequence[str] = ()) -> None:
        """Say that ``backbone_id``, the active model, could not be loaded (``detail``: why;
        its first line is shown) and show the banner."""
        first = for_window(detail).splitlines()[0] if detail.strip() else "unknown error"
        text = f"The active model, {_name(backbone_id)}, could not be loaded ({first})"
        self._show(backbone_id, detail, installed, text)

    def _show(self, backbone_id: str, detail: str, installed: Sequence[str], head: str) -> None:
        try:
            size_mb = get_spec(backbone_id).download_mb
        except KeyError:
            size_mb = 0
        name = _name(backbone_id)
        self._backbone_id, self._detail = backbone_id, for_window(detail)
        self._installed = [i for i in installed if i != backbone_id]
        if self._installed:
            names = ", ".join(_name(i) for i in self._installed)
            tail = f" Installed: {names}."
            self.use_button.setText(f"Use {_name(self._installed[0])}")
            self.use_button.setToolTip(f"Make {self._installed[0]} the active model")
        else:
            tail = " No other model of its kind is installed."
        self.use_button.setVisible(bool(self._installed))
        self.message_label.setText(f"{head}: drawing works, but photos cannot be searched.{tail}")
        self.message_label.setToolTip(self._detail)
        size = f" (≈ {format_size(size_mb * 1e6)})" if size_mb else ""
        self.download_button.setText(f"Download{size}")
        self.download_button.setToolTip(f"Download the weights of {name} (needs the internet)")
        self.show()

    def hide_message(self) -> None:
        """Hide the banner (e.g. once the weights are here)."""
        self.hide()

    def _use(self) -> None:
        if self._installed:
            self.useRequested.emit(self._installed[0])

    def _dismiss(self) -> None:
        self.hide_message()
        self.dismissed.emit()
