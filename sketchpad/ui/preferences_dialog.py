"""Edit ▸ Preferences…: the default model, device, fp16, autosave, thumbnail size and theme.

The dialog edits a copy; OK writes the preferences file (atomically) and the window applies
what changed at once: the theme through Qt's colour scheme, the thumbnail size in the gallery,
the autosave's quiet time, and the model (loaded again when the model, device or fp16 changed).
"""

from __future__ import annotations

import dataclasses
import logging

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sketchpad.workspace.preferences import (
    AUTOSAVE_SECONDS,
    DEVICES,
    THEMES,
    THUMBNAIL_SIZES,
    Preferences,
)

log = logging.getLogger(__name__)

_DEVICE_TEXT = {"auto": "Automatic (a GPU when there is one)", "cpu": "CPU", "cuda": "GPU (CUDA)"}
_THEME_TEXT = {"system": "Follow the system", "light": "Light", "dark": "Dark"}


_SYSTEM_PALETTE: QPalette | None = None  # the application's palette before any theme


def dark_palette() -> QPalette:
    """A dark palette (Fusion's roles), for platforms whose theme cannot switch scheme."""
    p = QPalette()
    base, window, text = QColor(30, 30, 30), QColor(45, 45, 45), QColor(230, 230, 230)
    for role, colour in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.ToolTipBase, window),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, window),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.BrightText, QColor(255, 80, 80)),
        (QPalette.ColorRole.Link, QColor(110, 170, 255)),
        (QPalette.ColorRole.Highlight, QColor(60, 120, 200)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.PlaceholderText, QColor(150, 150, 150)),
    ):
        p.setColor(role, colour)
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 120))
    return p


def apply_theme(theme: str) -> None:
    """Use the light or dark palette, or the system's: Qt's colour scheme where the platform
    theme supports it (Windows, macOS, GNOME/KDE), else an explicit palette."""
    global _SYSTEM_PALETTE
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    if _SYSTEM_PALETTE is None:
        _SYSTEM_PALETTE = QPalette(app.palette())
    scheme = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(
        theme,
        Qt.ColorScheme.Unknown,  # Unknown: the system decides again
    )
    hints = app.styleHints()
    hints.setColorScheme(scheme)
    if theme == "system" or hints.colorScheme() == scheme:
        app.setPalette(_SYSTEM_PALETTE)
    elif theme == "dark":
        app.setPalette(dark_palette())
    else:
        app.setPalette(app.style().standardPalette())


def is_dark(palette: QPalette) -> bool:
    """Whether text is lighter than the window behind it."""
    return (
        palette.color(QPalette.ColorRole.WindowText).lightness()
        > palette.color(QPalette.ColorRole.Window).lightness()
    )


class PreferencesDialog(QDialog):
    """See the module docstring.

    Args:
        preferences: the user's preferences (changed only by :meth:`chosen` + the caller).
        backbones: (id, name) of the models to offer as the default.
        parent: the window.
    """

    def __init__(
        self,
        preferences: Preferences,
        backbones: list[tuple[str, str]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences — Sketchpad")
        self._prefs = preferences
        self.model_combo = QComboBox()
        for bid, name in backbones:
            self.model_combo.addItem(name, bid)
        if self.model_combo.findData(preferences.backbone) < 0:
            self.model_combo.addItem(preferences.backbone, preferences.backbone)
        self.model_combo.setCurrentIndex(self.model_combo.findData(preferences.backbone))
        self.model_combo.setToolTip("The model photo search starts with")
        self.device_combo = QComboBox()
        for d in DEVICES:
            self.device_combo.addItem(_DEVICE_TEXT[d], d)
        self.device_combo.setCurrentIndex(self.device_combo.findData(preferences.device))
        self.fp16_box = QCheckBox("Half precision on a GPU (fp16: half the memory, ~2× faster)")
        self.fp16_box.setChecked(preferences.fp16)
        self.autosave_spin = QDoubleSpinBox()
        self.autosave_spin.setRange(*map(float, AUTOSAVE_SECONDS))
        self.autosave_spin.setDecimals(0)
        self.autosave_spin.setSuffix(" s after the last edit")
        self.autosave_spin.setValue(preferences.autosave_seconds)
        self.thumb_spin = QSpinBox()
        self.thumb_spin.setRange(*THUMBNAIL_SIZES)
        self.thumb_spin.setSingleStep(16)
        self.thumb_spin.setSuffix(" px")
        self.thumb_spin.setValue(preferences.thumbnail_size)
        self.theme_combo = QComboBox()
        for t in THEMES:
            self.theme_combo.addItem(_THEME_TEXT[t], t)
        self.theme_combo.setCurrentIndex(self.theme_combo.findData(preferences.theme))

        form = QFormLayout()
        form.addRow("Default &model:", self.model_combo)
        form.addRow("&Run models on:", self.device_combo)
        form.addRow("", self.fp16_box)
        form.addRow("&Autosave:", self.autosave_spin)
        form.addRow("&Thumbnails:", self.thumb_spin)
        form.addRow("T&heme:", self.theme_combo)
        note = QLabel(f"Saved in {preferences.path or Preferences.default_path()}")
        note.setWordWrap(True)
        note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def chosen(self) -> Preferences:
        """A copy of the preferences with the dialog's choices (the original is untouched)."""
        return dataclasses.replace(
            self._prefs,
            backbone=str(self.model_combo.currentData()),
            device=self.device_combo.currentData(),
            fp16=self.fp16_box.isChecked(),
            autosave_seconds=float(self.autosave_spin.value()),
            thumbnail_size=int(self.thumb_spin.value()),
            theme=self.theme_combo.currentData(),
        )
