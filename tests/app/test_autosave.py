"""Autosave while editing, and the offer to restore after a crash (DESIGN §7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSysInfo

from sketchpad.ui.autosave import AUTOSAVE_FORMAT, claim_orphaned_sessions, read_autosave

# A session that autosaves a drawing, holds its lock, and is then killed.
_CRASHING_SESSION = """
import sys, time
from pathlib import Path
from PySide6.QtCore import QCoreApplication
from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.model import Stroke
from sketchpad.ui.autosave import Autosaver
from sketchpad.ui.document import Document

app = QCoreApplication([])
doc = Document(path=Path(sys.argv[1]) if sys.argv[1] else None)
for k in range(3):
    stroke = Stroke(points=[[10 + k, 10], [50, 60 + k], [90, 20]])
    doc.apply(SketchEdit.add(doc.sketch, [stroke]), "Draw")
saver = Autosaver(doc)
assert saver.save_now()
print(saver.file, flush=True)
time.sleep(60)
"""


def _crashed_session(original: Path | None) -> Path:
    """Run a session that autosaves and SIGKILL it; returns its autosave file."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_SESSION, str(original) if original else ""],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert child.stdout is not None
    file = Path(child.stdout.readline().strip())
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert file.exists() and file.with_suffix(".lock").exists()
    return file


def test_autosave_follows_edits_and_goes_after_save(
    window: Any, draw: Any, qtbot: Any, tmp_path: Path, sketchpad_home: Path
) -> None:
    saver = window.autosaver
    assert saver.file.parent == sketchpad_home / "data" / "autosave"
    assert saver.lock_file.exists() and not saver.file.exists()
    draw(window.document, 2)
    assert saver.pending
    qtbot.waitUntil(saver.file.exists, timeout=2000)
    contents = read_autosave(saver.file)
    assert contents.sketch == window.document.sketch
    assert contents.original_path is None and contents.file_name == "Untitled"

    window.dialogs.script("save_path", tmp_path / "kept.json")
    assert window.save()
    assert not saver.file.exists()
    draw(window.document, 1, seed=7)
    qtbot.waitUntil(saver.file.exists, timeout=2000)
    contents = read_autosave(saver.file)
    assert contents.original_path == tmp_path / "kept.json" and contents.file_name == "kept.json"
    # Undo back to the saved state: nothing unsaved, so no autosave.
    window.document.undo_stack.undo()
    qtbot.waitUntil(lambda: not saver.file.exists(), timeout=2000)


def test_autosave_failure_is_reported_and_retried(
    window: Any, draw: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sketchpad import atomic

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    with qtbot.waitSignal(window.autosaver.failed, timeout=2000) as blocker:
        draw(window.document, 1)
    assert "disk is full" in blocker.args[0]
    assert "Autosave failed" in window.statusBar().currentMessage()
    monkeypatch.undo()
    draw(window.document, 1, seed=2)
    qtbot.waitUntil(window.autosaver.file.exists, timeout=2000)


def test_a_running_session_is_not_offered(make_window: Any, draw: Any, qtbot: Any) -> None:
    first = make_window()
    draw(first.document)
    qtbot.waitUntil(first.autosaver.file.exists, timeout=2000)
    second = make_window()
    assert not second.offer_restore()
    assert second.dialogs.asked == []


def test_restore_after_crash(make_window: Any, qtbot: Any, tmp_path: Path) -> None:
    original = tmp_path / "house.json"
    old_file = _crashed_session(original)
    window = make_window()
    window.dialogs.script(
        "restore",
        lambda orphan: "restore" if orphan.contents.file_name == "house.json" else "wrong",
    )
    assert window.offer_restore()
    doc = window.document
    assert len(doc.sketch.strokes) == 3 and doc.path == original and doc.is_modified
    assert window.windowTitle() == "house.json[*] — Sketchpad" and window.isWindowModified()
    # Adopted: this session's autosave holds the drawing, the old one is gone.
    assert read_autosave(window.autosaver.file).sketch == doc.sketch
    assert not old_file.exists() and not old_file.with_suffix(".lock").exists()
    # Offered once only.
    other = make_window()
    assert not other.offer_restore() and other.dialogs.asked == []


def test_restore_later_keeps_it_and_discard_removes_it(make_window: Any) -> None:
    old_file = _crashed_session(None)
    window = make_window()
    window.dialogs.script("restore", "later")
    assert not window.offer_restore()
    assert old_file.exists() and not window.document.is_modified

    again = make_window()
    again.dialogs.script("restore", "discard")
    assert not again.offer_restore()
    assert not old_file.exists() and not old_file.with_suffix(".lock").exists()


def test_stale_lock_without_autosave_is_tidied(sketchpad_home: Path) -> None:
    from sketchpad.paths import autosave_dir

    folder = autosave_dir()
    lock = folder / "session-20000101-000000-deadbeef.lock"
    # A pid above any pid_max: the owner cannot be running on this host.
    lock.write_text(f"999999999\npython3\n{QSysInfo.machineHostName()}\n")
    assert claim_orphaned_sessions(folder) == []
    assert not lock.exists()


def test_unreadable_autosave_is_skipped(sketchpad_home: Path) -> None:
    from sketchpad.paths import autosave_dir

    folder = autosave_dir()
    junk = folder / "session-20000101-000000-00000000.json"
    junk.write_text("{ not json")
    assert claim_orphaned_sessions(folder) == []
    assert junk.exists()


def test_autosave_file_is_readable_json(window: Any, draw: Any) -> None:
    import json

    draw(window.document, 1)
    assert window.autosaver.save_now()
    obj = json.loads(window.autosaver.file.read_bytes())
    assert obj["format"] == AUTOSAVE_FORMAT and obj["original_path"] is None
    assert isinstance(obj["sketch"], dict)


def test_continuous_edits_are_still_autosaved(
    qtbot: Any, draw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edits every 50 ms never leave 200 ms of quiet: once a change has waited max_wait_ms, a
    new edit no longer postpones the write. Time is a fake clock and the timer a recorder."""
    from sketchpad.ui import autosave
    from sketchpad.ui.autosave import Autosaver
    from sketchpad.ui.document import Document

    now = [1000.0]
    monkeypatch.setattr(autosave.time, "monotonic", lambda: now[0])

    class Timer:
        def __init__(self) -> None:
            self.active, self.starts = False, []

        def isActive(self) -> bool:  # noqa: N802 - QTimer's name
            return self.active

        def start(self) -> None:
            self.active = True
            self.starts.append(round((now[0] - 1000.0) * 1000))  # ms since the first edit

        def stop(self) -> None:
            self.active = False

    doc = Document()
    saver = Autosaver(doc, delay_ms=200, max_wait_ms=300)
    timer = Timer()
    saver._timer.stop()
    saver._timer = timer  # type: ignore[assignment]
    try:
        for seed in range(10):  # t = 0, 62.5, …, 562.5 ms
            draw(doc, 1, seed=seed)
            now[0] += 0.0625  # exact in binary: no rounding at the 300 ms edge
        # Restarted while the first change had waited < 300 ms (t = 0…250), then left to run.
        assert sorted(set(timer.starts)) == [0, 62, 125, 188, 250]
        assert timer.active and not saver.file.exists()
        timer.active = False
        saver._on_timeout()  # the timer fires
        assert saver.file.exists()
    finally:
        saver.close()
