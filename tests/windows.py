"""The main window as the window tests drive it: its questions answered (unsaved drawings are
discarded), its error dialogs recorded instead of shown, and a shown window whose photo model
is the engine tests' planted stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sketchpad.ui.main_window import MainWindow
from sketchpad.workspace.preferences import Preferences


class RecordingWindow(MainWindow):
    """The main window with its questions answered and errors recorded in ``errors``."""

    def __init__(self, **kw: Any) -> None:
        self.errors: list[tuple[str, str]] = []
        super().__init__(**kw)

    def _show_error(self, title: str, text: str) -> None:
        self.errors.append((title, text))

    def _ask_save_changes(self) -> Any:
        return "discard"


def planted_window(
    qtbot: Any, tmp_path: Path, loader: Any, cls: type[RecordingWindow] = RecordingWindow
) -> Any:
    """A shown 1400×900 ``cls`` whose photo model is ``loader``'s "planted" stand-in, with its
    autosave and preferences in ``tmp_path``."""
    prefs = Preferences.load(tmp_path / "prefs.json")
    prefs.backbone = "planted"
    w = cls(
        autosave_dir=tmp_path / "autosave",
        photo_loader=loader,
        photo_backbones=(["planted"], []),
        preferences=prefs,
    )
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    return w
