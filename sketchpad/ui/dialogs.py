"""The main window's questions to the user, each a small function returning a plain value.

The window calls these through its ``_ask_*`` methods, which tests replace, so no
test ever waits on a modal dialog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

SaveChoice = Literal["save", "discard", "cancel"]
RestoreChoice = Literal["restore", "discard", "later"]

JSON_FILTER = "Sketchpad drawing (*.json)"


def ask_save_changes(parent: QWidget | None, name: str) -> SaveChoice:
    """Save / Discard / Cancel for a document with unsaved changes."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Unsaved changes — Sketchpad")
    box.setText(f"Do you want to save the changes to “{name}”?")
    box.setInformativeText("Your changes will be lost if you don't save them.")
    Btn = QMessageBox.StandardButton
    box.setStandardButtons(Btn.Save | Btn.Discard | Btn.Cancel)
    box.setDefaultButton(Btn.Save)
    box.setEscapeButton(Btn.Cancel)
    answer = box.exec()
    if answer == Btn.Save:
        return "save"
    if answer == Btn.Discard:
        return "discard"
    return "cancel"


def ask_restore(parent: QWidget | None, file_name: str, saved_at: str) -> RestoreChoice:
    """Offer the autosave of a session that did not close properly."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Restore drawing — Sketchpad")
    box.setText(
        "Sketchpad did not close properly. Restore the unsaved drawing "
        f"“{file_name}” (autosaved {saved_at})?"
    )
    box.setInformativeText("“Ask Later” keeps it for the next start.")
    restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
    later = box.addButton("Ask Later", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(restore)
    box.setEscapeButton(later)
    box.exec()
    clicked = box.clickedButton()
    if clicked is restore:
        return "restore"
    if clicked is discard:
        return "discard"
    return "later"


def ask_drawing_index(parent: QWidget | None, path: Path, count: int) -> int | None:
    """Which drawing (0-based) of a file that holds ``count``; None if cancelled."""
    number, ok = QInputDialog.getInt(
        parent,
        "Choose a drawing — Sketchpad",
        f"“{path.name}” holds {count} drawings. Which one (1–{count})?",
        1,
        1,
        count,
    )
    return number - 1 if ok else None


def ask_open_path(parent: QWidget | None, title: str, name_filter: str, folder: str) -> Path | None:
    """An existing file, or None if cancelled."""
    name, _ = QFileDialog.getOpenFileName(parent, title, folder, name_filter)
    return Path(name) if name else None


def ask_save_path(
    parent: QWidget | None, title: str, suggested: Path, name_filter: str, default_suffix: str
) -> Path | None:
    """A file to write (the dialog confirms overwriting), or None if cancelled."""
    dialog = QFileDialog(parent, title, str(suggested.parent), name_filter)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setFileMode(QFileDialog.FileMode.AnyFile)
    dialog.setDefaultSuffix(default_suffix.lstrip("."))
    dialog.selectFile(suggested.name)
    if not dialog.exec():
        return None
    files = dialog.selectedFiles()
    return Path(files[0]) if files else None
