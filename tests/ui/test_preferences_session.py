"""Preferences dialog, the session restored on start, the thumbnail-size slider, the α label."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from planted import photo
from PySide6.QtCore import QSize

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "engine"))

from standins import StandInLoader  # noqa: E402

from sketchpad.ui.main_window import MainWindow  # noqa: E402
from sketchpad.ui.preferences_dialog import PreferencesDialog  # noqa: E402
from sketchpad.workspace.preferences import Preferences  # noqa: E402

WAIT_MS = 15_000


class Window(MainWindow):
    def __init__(self, **kw: Any) -> None:
        self.errors: list[tuple[str, str]] = []
        self.answer: Preferences | None = None
        super().__init__(**kw)

    def _show_error(self, title: str, text: str) -> None:
        self.errors.append((title, text))

    def _ask_save_changes(self) -> Any:
        return "discard"

    def _run_dialog(self, dialog: Any) -> bool:  # the user's choices, without a modal loop
        if isinstance(dialog, PreferencesDialog) and self.answer is not None:
            dialog.model_combo.setCurrentIndex(dialog.model_combo.findData(self.answer.backbone))
            dialog.device_combo.setCurrentIndex(dialog.device_combo.findData(self.answer.device))
            dialog.fp16_box.setChecked(self.answer.fp16)
            dialog.autosave_spin.setValue(self.answer.autosave_seconds)
            dialog.thumb_spin.setValue(self.answer.thumbnail_size)
            dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData(self.answer.theme))
            return True
        return False


def make(qtbot: Any, tmp_path: Path, loader: StandInLoader) -> Window:
    prefs = Preferences.load(tmp_path / "prefs.json")
    if not (tmp_path / "prefs.json").exists():
        prefs.backbone = "planted"
    w = Window(
        autosave_dir=tmp_path / "autosave",
        photo_loader=loader,
        photo_backbones=(["planted", "planted-b"], []),
        preferences=prefs,
    )
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    f = tmp_path / "photos"
    f.mkdir()
    for i in range(3):
        Image.fromarray(photo((64, 64), [(4, 4, 30, 30)] if i else [])).save(f / f"p{i}.png")
    return f


def test_preferences_are_saved_and_applied_at_once(qtbot: Any, tmp_path: Path) -> None:
    from PySide6.QtWidgets import QApplication

    from sketchpad.ui.preferences_dialog import apply_theme, is_dark

    loader = StandInLoader()
    w = make(qtbot, tmp_path, loader)
    assert not is_dark(QApplication.instance().palette())
    try:
        w.photos.start()
        qtbot.waitUntil(lambda: w.photos.model is not None, timeout=WAIT_MS)
        loads = len(loader.requests)
        w.answer = Preferences(
            backbone="planted", device="cpu", fp16=False, autosave_seconds=20.0,
            thumbnail_size=96, theme="dark",
        )  # fmt: skip
        assert w.show_preferences()
        saved = json.loads((tmp_path / "prefs.json").read_text(encoding="utf-8"))
        assert (saved["device"], saved["fp16"], saved["thumbnail_size"]) == ("cpu", False, 96)
        assert saved["autosave_seconds"] == 20.0 and saved["theme"] == "dark"
        assert w.autosaver.delay_ms == 20_000
        pane = w.photos.pane
        assert pane.thumbnail_size == 96 and pane.size_slider.value() == 96
        assert pane.view.gridSize() == pane.delegate.cell_size + QSize(4, 4)
        assert is_dark(QApplication.instance().palette())  # scheme, else an explicit palette
        qtbot.waitUntil(lambda: len(loader.requests) > loads, timeout=WAIT_MS)  # device changed
        assert loader.requests[-1].device == "cpu"
        # Cancel changes nothing.
        w.answer = None
        assert not w.show_preferences()
        assert Preferences.load(tmp_path / "prefs.json").thumbnail_size == 96
    finally:
        apply_theme("system")
        assert not is_dark(QApplication.instance().palette())
        assert w.photos.shutdown()


def test_the_session_comes_back_on_start(qtbot: Any, tmp_path: Path, folder: Path) -> None:
    loader = StandInLoader()
    w = make(qtbot, tmp_path, loader)
    w.photos.start()
    qtbot.waitUntil(lambda: w.photos.model is not None, timeout=WAIT_MS)
    with qtbot.waitSignal(w.photos.engine.indexFinished, timeout=WAIT_MS):
        assert w.photos.open_folder(folder)
    w.photos.controls.set_threshold(0.3)
    w.photos.controls.set_mode("part")
    w.splitter.setSizes([700, 300])
    sizes = w.splitter.sizes()
    w.close()
    saved = Preferences.load(tmp_path / "prefs.json")
    assert saved.last_folder == folder.resolve()
    assert (saved.threshold, saved.mode) == (0.3, "part")
    # A new start: the threshold and mode at once, the folder when the app opens it.
    again = make(qtbot, tmp_path, StandInLoader())
    try:
        options = again.photos.controls.options()
        assert (options.threshold, options.mode) == (0.3, "part")
        assert again.splitter.sizes() == sizes
        again.photos.start()
        assert again.restore_last_folder()
        assert again.photos.folder == folder.resolve()
    finally:
        assert again.photos.shutdown()
    # A folder that is gone is not reopened (and says nothing).
    prefs = Preferences.load(tmp_path / "prefs.json")
    prefs.last_folder = tmp_path / "gone"
    prefs.save()
    third = make(qtbot, tmp_path, StandInLoader())
    try:
        assert not third.restore_last_folder() and third.errors == []
    finally:
        assert third.photos.shutdown()


def test_the_thumbnail_slider_resizes_the_grid(qtbot: Any, tmp_path: Path) -> None:
    from sketchpad.ui.photos.gallery_pane import GalleryPane

    pane = GalleryPane()
    qtbot.addWidget(pane)
    pane.resize(600, 500)
    pane.show()
    before = pane.delegate.cell_size
    with qtbot.waitSignal(pane.thumbnailSizeChanged, timeout=1000) as blocker:
        pane.size_slider.setValue(240)
    assert blocker.args == [240] and pane.thumbnail_size == 240
    assert pane.delegate.cell_size.width() == before.width() + 240 - 160
    assert pane.thumbnails.side == 240  # larger thumbnails are decoded again
    pane.size_slider.setValue(80)
    assert pane.thumbnails.side == 240 and pane.delegate.side == 80  # smaller: scaled down
    pane.set_thumbnail_size(10_000)
    assert pane.thumbnail_size == 320  # clamped to the slider's range


def test_bad_preference_values_fall_back_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "prefs.json"
    path.write_text(
        json.dumps({"theme": "purple", "thumbnail_size": 5, "autosave_seconds": True,
                    "threshold": 1.5, "last_folder": 3, "mode": 7}),
        encoding="utf-8",
    )  # fmt: skip
    p = Preferences.load(path)
    assert (p.theme, p.thumbnail_size, p.autosave_seconds) == ("system", 160, 3.0)
    assert (p.threshold, p.last_folder, p.mode) == (0.5, None, None)


def test_the_alpha_slider_reads_left_words_right_sketch(qtbot: Any) -> None:
    from sketchpad.ui.photos.query_controls import QueryControls

    controls = QueryControls(["planted"], [])
    qtbot.addWidget(controls)
    controls.alpha_slider.setValue(0)  # left
    assert controls.options().alpha == 0.0  # α is the sketch's weight: the words only
    assert "Left: the words only" in controls.alpha_slider.toolTip()
