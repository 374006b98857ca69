"""The main window's file handling: title, open/save/import/export, unsaved changes, errors."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QSplitter

from sketchpad import atomic
from sketchpad.sketch.io import read_sketch, write_sketch
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.ui.canvas.canvas import Canvas


def _sketch(n: int = 3, seed: int = 1) -> Sketch:
    rng = np.random.default_rng(seed)
    strokes = [Stroke(points=rng.uniform(10, 300, size=(8, 2))) for _ in range(n)]
    return Sketch(strokes=tuple(strokes), width=400, height=300)


def _save_as(window: Any, path: Path) -> bool:
    window.dialogs.script("save_path", path)
    return window.save()


def test_layout_title_and_modified_mark(window: Any, draw: Any) -> None:
    assert isinstance(window.splitter, QSplitter)
    assert window.splitter.parent() is window.centralWidget()
    assert window.splitter.count() == 2 and isinstance(window.splitter.widget(0), Canvas)
    assert window.splitter.widget(1) is window.photos.pane  # the gallery beside the canvas
    assert window.photos.banner.isHidden()  # nothing missing is known yet
    assert window.windowTitle() == "Untitled[*] — Sketchpad"
    assert not window.isWindowModified()
    draw(window.document, 2)
    assert window.isWindowModified()
    assert window.count_label.text() == "2 strokes · 24 points"
    window.document.undo_stack.undo()
    window.document.undo_stack.undo()
    assert not window.isWindowModified()
    assert window.count_label.text() == "0 strokes · 0 points"


def test_menus_hold_the_commands(window: Any) -> None:
    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    assert list(menus) == ["File", "Edit", "Tools", "View", "Photos", "Labels", "Help"]
    photo_texts = [a.text().replace("&", "") for a in menus["Photos"].actions() if a.text()]
    assert photo_texts == [
        "Open Folder…",
        "Open Recent Folder",
        "Cancel Indexing",
        "Large View",
        "Export Masks…",
        "Model",
        "Model Manager…",
        "Photo Search Panel",
    ]
    file_texts = [a.text().replace("&", "") for a in menus["File"].actions() if a.text()]
    assert file_texts == [
        "New",
        "Open…",
        "Open Recent",
        "Import…",
        "Save",
        "Save As…",
        "Export…",
        "Export Labels…",
        "Quit",
    ]
    shortcuts = {k: a.shortcut().toString() for k, a in window.file_actions.items()}
    assert shortcuts["import"] == "Ctrl+I" and shortcuts["export"] == "Ctrl+E"
    assert shortcuts["save_as"] == "Ctrl+Shift+S" and shortcuts["quit"] == "Ctrl+Q"
    assert len(menus["Tools"].actions()) == len(window.canvas.tool_actions())


def test_save_then_open_round_trip(make_window: Any, draw: Any, tmp_path: Path) -> None:
    window = make_window()
    draw(window.document, 3)
    target = tmp_path / "cat.json"
    assert _save_as(window, target)
    assert window.dialogs.asked == ["save_path"]  # no path yet: Save became Save As
    assert window.document.path == target and not window.document.is_modified
    assert window.windowTitle() == "cat.json[*] — Sketchpad"
    assert read_sketch(target) == window.document.sketch

    other = make_window()
    assert other.open_path(target)
    assert other.document.sketch == window.document.sketch
    assert other.document.path == target and not other.document.is_modified
    assert other.recent_files.paths[0] == target

    # A second Save goes straight to the file.
    draw(other.document, 1, seed=5)
    assert other.save() and read_sketch(target) == other.document.sketch
    assert other.dialogs.asked == []


def test_save_as_appends_json_and_cancel_keeps_modified(
    window: Any, draw: Any, tmp_path: Path
) -> None:
    draw(window.document)
    window.dialogs.script("save_path", None)
    assert not window.save()
    assert window.document.is_modified
    assert _save_as(window, tmp_path / "plain")
    assert window.document.path == tmp_path / "plain.json"


@pytest.mark.parametrize("choice", ["cancel", "discard", "save"])
def test_new_asks_about_unsaved_changes(
    window: Any, draw: Any, tmp_path: Path, choice: str
) -> None:
    draw(window.document, 2)
    before = window.document.sketch
    window.dialogs.script("save_changes", choice)
    if choice == "save":
        window.dialogs.script("save_path", tmp_path / "kept.json")
    done = window.new_document()
    assert done == (choice != "cancel")
    if choice == "cancel":
        assert window.document.sketch == before and window.document.is_modified
    else:
        assert len(window.document.sketch.strokes) == 0 and not window.document.is_modified
        assert window.document.path is None
    if choice == "save":
        assert read_sketch(tmp_path / "kept.json") == before


def test_close_with_unsaved_changes(window: Any, draw: Any, qtbot: Any) -> None:
    window.show()
    draw(window.document)
    qtbot.waitUntil(lambda: window.autosaver.file.exists(), timeout=2000)
    window.dialogs.script("save_changes", "cancel")
    assert not window.close()
    assert window.isVisible() and window.document.is_modified
    assert window.autosaver.file.exists()

    window.dialogs.script("save_changes", "discard")
    assert window.close()
    assert not window.autosaver.file.exists() and not window.autosaver.lock_file.exists()


def test_close_when_save_fails_keeps_the_window(window: Any, draw: Any, tmp_path: Path) -> None:
    window.show()
    draw(window.document)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    window.dialogs.script("save_changes", "save")
    window.dialogs.script("save_path", blocker / "x.json")
    assert not window.close()
    assert window.isVisible() and window.document.is_modified
    assert len(window.dialogs.errors) == 1


def test_open_bad_file_shows_error_and_keeps_document(
    window: Any, draw: Any, tmp_path: Path
) -> None:
    draw(window.document, 2)
    before, path_before = window.document.sketch, window.document.path
    bad = tmp_path / "broken.json"
    bad.write_text('{"format": "sketchpad", "strokes": [[[')
    assert not window.open_path(bad)
    ((title, text),) = window.dialogs.errors
    assert "broken.json" in text and str(bad) in text
    assert window.document.sketch == before and window.document.path == path_before
    assert window.document.is_modified
    assert window.dialogs.asked == []  # nothing asked about saving: nothing was replaced


def test_open_missing_recent_file_drops_it(window: Any, tmp_path: Path) -> None:
    gone = tmp_path / "gone.json"
    window.recent_files.add(gone)
    assert not window.open_path(gone)
    assert "file not found" in window.dialogs.errors[0][1]
    assert gone not in window.recent_files.paths


@pytest.mark.parametrize(
    "err, reason", [(errno.ENOSPC, "disk is full"), (errno.EACCES, "permission denied")]
)
def test_save_failure_keeps_document_modified_and_old_file(
    window: Any, draw: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, reason: str
) -> None:
    target = tmp_path / "drawing.json"
    draw(window.document, 1)
    assert _save_as(window, target)
    old_bytes = target.read_bytes()
    draw(window.document, 1, seed=3)

    def refuse(*args: object) -> None:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(atomic.os, "replace", refuse)
    assert not window.save()
    monkeypatch.undo()
    ((title, text),) = window.dialogs.errors
    assert str(target) in text and reason in text
    assert window.document.is_modified and window.isWindowModified()
    assert target.read_bytes() == old_bytes
    assert not list(tmp_path.glob(".drawing.json.*"))  # no temp file left behind


def test_save_into_a_file_instead_of_a_folder(window: Any, draw: Any, tmp_path: Path) -> None:
    draw(window.document)
    blocker = tmp_path / "report.txt"
    blocker.write_text("not a folder")
    assert not _save_as(window, blocker / "drawing.json")
    assert str(blocker / "drawing.json") in window.dialogs.errors[0][1]
    assert window.document.is_modified and window.document.path is None


def test_import_foreign_format_makes_untitled_modified_copy(window: Any, tmp_path: Path) -> None:
    source = tmp_path / "cow.ndjson"
    write_sketch(_sketch(), source)
    assert window.open_path(source)
    assert window.document.path is None and window.document.is_modified
    assert len(window.document.sketch.strokes) == 3
    assert window.windowTitle() == "Untitled[*] — Sketchpad"
    window.dialogs.script("save_path", lambda title, suggested, flt, suffix: suggested)
    assert window.save()
    assert window.document.path == tmp_path / "cow.json"


def test_import_of_our_json_is_a_copy(window: Any, tmp_path: Path) -> None:
    source = tmp_path / "mine.json"
    write_sketch(_sketch(), source)
    window.dialogs.script("open_path", source)
    assert window.import_dialog()
    assert window.document.path is None and window.document.is_modified


def test_multi_drawing_file_asks_which_drawing(window: Any, tmp_path: Path) -> None:
    source = tmp_path / "many.ndjson"
    sketches = [_sketch(n, seed=n) for n in (1, 2, 3)]
    lines = []
    for i, s in enumerate(sketches):
        one = tmp_path / f"one{i}.ndjson"
        write_sketch(s, one)
        lines.append(one.read_text().strip())
    source.write_text("\n".join(lines) + "\n")

    window.dialogs.script("drawing_index", None)
    assert not window.open_path(source)
    assert len(window.document.sketch.strokes) == 0

    window.dialogs.script("drawing_index", lambda path, count: count - 1)
    assert window.open_path(source)
    assert len(window.document.sketch.strokes) == 3
    assert window.document.path is None and window.document.is_modified


def test_export_leaves_the_document_file_and_state(window: Any, draw: Any, tmp_path: Path) -> None:
    draw(window.document, 2)
    assert _save_as(window, tmp_path / "d.json")
    draw(window.document, 1, seed=9)
    for name in ("d.svg", "d.png", "d.ndjson"):
        assert window.export_to(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 0
    assert window.document.path == tmp_path / "d.json" and window.document.is_modified
    assert not window.export_to(tmp_path / "d.docx")
    assert "d.docx" in window.dialogs.errors[-1][1]


def test_drop_a_sketch_file_opens_it(window: Any, tmp_path: Path) -> None:
    source = tmp_path / "dropped.json"
    write_sketch(_sketch(2), source)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(source))])
    event = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    assert event.isAccepted()
    assert window.document.path == source and len(window.document.sketch.strokes) == 2


def test_recent_files_are_a_json_list_in_the_config_dir(
    window: Any, tmp_path: Path, sketchpad_home: Path
) -> None:
    for name in ("a.json", "b.json", "a.json"):
        write_sketch(_sketch(1), tmp_path / name)
        assert window.open_path(tmp_path / name)
    stored = json.loads((sketchpad_home / "config" / "recent_files.json").read_text())
    assert stored["recent_files"] == [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    window._fill_recent_menu()
    texts = [a.text() for a in window.recent_menu.actions() if a.text()]
    assert texts[:2] == ["&1  a.json", "&2  b.json"]


def test_geometry_goes_to_the_isolated_settings(make_window: Any, isolated_qsettings: Path) -> None:
    window = make_window()
    window.show()
    window.resize(700, 500)  # the offscreen screen is 800×600
    assert window.close()
    ini = list(isolated_qsettings.rglob("*.ini"))
    assert ini and "geometry" in ini[0].read_text()
    again = make_window()
    assert (again.width(), again.height()) == (700, 500)
