"""Autosave while editing, and the offer to restore after a crash (DESIGN §7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
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
from sketchpad.ui.canvas.document import Document

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


def test_the_timers_write_runs_off_the_gui_thread(
    window: Any, draw: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An atomic write ends in fsync (bench ui sampled the GUI thread there in its stalls)."""
    from sketchpad.ui import autosave

    real = autosave.atomic_write_bytes
    threads: list[bool] = []

    def recording(*args: Any, **kwargs: Any) -> None:
        threads.append(threading.current_thread() is threading.main_thread())
        real(*args, **kwargs)

    monkeypatch.setattr(autosave, "atomic_write_bytes", recording)
    with qtbot.waitSignal(window.autosaver.saved, timeout=5000) as blocker:
        draw(window.document, 2)
    assert threads == [False] and blocker.args == [window.autosaver.file]
    assert read_autosave(window.autosaver.file).sketch == window.document.sketch


def test_discarding_waits_for_a_write_in_flight(
    window: Any, draw: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A background write that ended after the discard would bring the autosave back."""
    from sketchpad.ui import autosave

    saver = window.autosaver
    real = autosave.atomic_write_bytes
    started, gate = threading.Event(), threading.Event()
    order: list[str] = []

    def held(*args: Any, **kwargs: Any) -> None:
        started.set()
        assert gate.wait(30)
        real(*args, **kwargs)
        order.append("written")

    def open_gate_once_the_gui_thread_waits() -> None:
        main = threading.main_thread().ident
        while not gate.is_set():  # until the GUI thread waits for the write (or removes)
            frame = sys._current_frames().get(main or 0)
            if frame is not None and frame.f_code.co_name == "wait_for_writes":
                gate.set()
            time.sleep(0.001)

    real_remove = autosave.os.remove

    def remove(path: Any) -> None:
        order.append("removed")
        gate.set()
        real_remove(path)

    monkeypatch.setattr(autosave, "atomic_write_bytes", held)
    monkeypatch.setattr(autosave.os, "remove", remove)
    draw(window.document, 1)
    qtbot.waitUntil(started.is_set, timeout=5000)
    opener = threading.Thread(target=open_gate_once_the_gui_thread_waits)
    opener.start()
    saver.discard()
    opener.join(30)
    assert saver.wait_for_writes(30_000)
    assert order == ["written", "removed"] and not saver.file.exists()


def test_a_write_that_ends_after_close_reports_nothing(window: Any, draw: Any) -> None:
    """close() waits for the write in flight; its result, queued for the GUI thread, arrives
    after the session ended and is dropped (no "Autosaved" for a closed session)."""
    from PySide6.QtCore import QCoreApplication

    saver = window.autosaver
    saved: list[object] = []
    saver.saved.connect(saved.append)
    draw(window.document, 1)
    saver._timer.stop()
    saver._save_in_background()
    saver.close()  # waits for the write, then removes the file
    QCoreApplication.processEvents()  # the write's result was queued before close returned
    assert saved == [] and not saver.file.exists() and saver.problem is None


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
    from sketchpad.ui.canvas.document import Document

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
        assert saver.wait_for_writes(10_000)  # the write runs off the GUI thread
        assert saver.file.exists()
    finally:
        saver.close()


# --- autosave that cannot run says so, persistently, and retries --------------------------------


def _warning_shown(window: Any) -> bool:
    return not window.autosave_warning.isHidden() and "Autosave is off" in (
        window.autosave_warning.text()
    )


def test_no_lock_at_start_is_shown_until_a_retry_works(
    make_window: Any, draw: Any, qtbot: Any, sketchpad_home: Path
) -> None:
    from sketchpad.ui.autosave import RETRY_MS

    blocker = sketchpad_home / "data" / "autosave"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the autosave folder should be")  # as good as read-only
    window = make_window()
    saver = window.autosaver
    assert not saver.active and saver.problem is not None
    assert "cannot create the autosave folder" in saver.problem
    assert _warning_shown(window)
    assert str(blocker) in window.autosave_warning.toolTip()
    assert saver.retrying and saver._retry_timer.interval() == RETRY_MS

    draw(window.document, 1)  # an edit retries; still impossible: still shown
    assert not saver.retry()
    assert _warning_shown(window) and saver.retrying

    blocker.unlink()
    with qtbot.waitSignal(saver.available, timeout=2000):
        assert saver.retry()  # what the retry timer calls
    assert saver.active and saver.problem is None and not saver.retrying
    assert not _warning_shown(window)
    assert read_autosave(saver.file).sketch == window.document.sketch  # the edit is kept


class _RefusingLock:
    """A QLockFile stand-in that cannot lock (as on a read-only or full folder)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def setStaleLockTime(self, ms: int) -> None:
        pass

    def tryLock(self, timeout: int = 0) -> bool:
        return False

    def error(self) -> Any:
        from PySide6.QtCore import QLockFile

        return QLockFile.LockError.PermissionError

    def unlock(self) -> None:
        pass


def test_a_lock_that_cannot_be_created_is_reported(
    make_window: Any, monkeypatch: pytest.MonkeyPatch, qtbot: Any
) -> None:
    from sketchpad.ui import autosave

    monkeypatch.setattr(autosave, "_new_lock", lambda path: _RefusingLock(str(path)))
    window = make_window()
    saver = window.autosaver
    assert saver.problem is not None and "read-only" in saver.problem
    assert str(saver.lock_file) in saver.problem
    assert _warning_shown(window) and "read-only" in window.autosave_warning.text()
    assert not saver.save_now()

    saver._lock = autosave.QLockFile(str(saver.lock_file))  # the folder is writable again
    with qtbot.waitSignal(saver.available, timeout=2000):
        assert saver.retry()
    assert saver.lock_file.exists() and not _warning_shown(window)


def test_a_failing_write_stays_shown_until_a_retry_works(
    window: Any, draw: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sketchpad import atomic

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    saver = window.autosaver
    with monkeypatch.context() as m:
        m.setattr(atomic.os, "replace", full)
        with qtbot.waitSignal(saver.unavailable, timeout=2000) as blocker:
            draw(window.document, 1)
        assert "disk is full" in blocker.args[0]
        assert _warning_shown(window) and "disk is full" in window.autosave_warning.text()
        assert saver.retrying
        window.statusBar().clearMessage()  # the transient message goes; the warning stays
        assert not saver.retry()
        assert _warning_shown(window)
    with qtbot.waitSignal(saver.available, timeout=2000):
        assert saver.retry()
    assert not _warning_shown(window) and not saver.retrying
    assert read_autosave(saver.file).sketch == window.document.sketch


def test_autosaves_are_private(window: Any, draw: Any, sketchpad_home: Path) -> None:
    saver = window.autosaver
    draw(window.document, 1)
    assert saver.save_now()
    assert saver.file.stat().st_mode & 0o777 == 0o600
    assert saver.lock_file.stat().st_mode & 0o777 == 0o600
    for folder in (sketchpad_home / "data", sketchpad_home / "data" / "autosave"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder


# --- leftovers and modes, tidied at start ------------------------------------------------------


def test_leftover_temporary_files_are_removed_at_start(
    make_window: Any, sketchpad_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sketchpad.ui import main_window

    autosaves = sketchpad_home / "data" / "autosave"
    weights = sketchpad_home / "data" / "weights" / "clip-vit-b16"
    cache = sketchpad_home / "cache" / "features"
    for folder in (autosaves, weights, cache):
        folder.mkdir(parents=True)
    old = time.time() - 3600
    stale = [
        autosaves / ".session-20250101-120000-1a2b3c4d.json.k3j_x9a2.tmp",
        weights / ".model.safetensors.abcdefgh.tmp",
        cache / ".x.sqlite.0123abcd.tmp",
    ]
    fresh = autosaves / ".session-20250101-120000-ffffffff.json.zzzzzzzz.tmp"  # being written
    theirs = [autosaves / "notes.tmp", autosaves / ".other.tmp", autosaves / "x.json.abcdefgh.tmp"]
    user_file = autosaves / "session-20250101-120000-1a2b3c4d.json"
    for p in [*stale, fresh, *theirs, user_file]:
        p.write_text("x")
    target = sketchpad_home / "outside.txt"
    target.write_text("keep")
    link = autosaves / ".link.json.abcdefgh.tmp"
    link.symlink_to(target)
    for p in [*stale, *theirs, user_file, target]:
        os.utime(p, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)

    monkeypatch.setattr(main_window, "_tidy_thread", None)
    make_window()
    main_window._tidy_thread.join(10)  # type: ignore[union-attr]
    assert not any(p.exists() for p in stale)
    assert fresh.exists() and all(p.exists() for p in theirs) and user_file.exists()
    assert link.is_symlink() and target.read_text() == "keep"


def test_earlier_files_are_made_private_at_start(sketchpad_home: Path) -> None:
    from sketchpad import paths

    prefs = sketchpad_home / "config" / "preferences.json"
    cache = sketchpad_home / "cache" / "features" / "x.sqlite"
    log_file = sketchpad_home / "data" / "logs" / "sketchpad.log"
    for p in (prefs, cache, log_file):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.parent.chmod(0o755)
        p.write_text("{}")
        p.chmod(0o644)
    outside = sketchpad_home / "elsewhere.txt"
    outside.write_text("not ours to change")
    outside.chmod(0o644)
    (sketchpad_home / "config" / "link").symlink_to(outside)
    _, changed = paths.tidy_user_folders()
    assert changed >= 6
    for p in (prefs, cache, log_file):
        assert p.stat().st_mode & 0o777 == 0o600, p
        assert p.parent.stat().st_mode & 0o777 == 0o700, p.parent
    assert outside.stat().st_mode & 0o777 == 0o644


def test_log_files_are_private(sketchpad_home: Path) -> None:
    import logging

    from sketchpad.logs import setup_logging, teardown_logging

    folder = sketchpad_home / "logs"  # SKETCHPAD_HOME/logs (else the data folder's logs/)
    folder.mkdir(parents=True)
    (folder / "sketchpad.log").write_text("old\n")
    (folder / "sketchpad.log").chmod(0o644)
    path = setup_logging()
    assert path == folder / "sketchpad.log"
    try:
        logging.getLogger("sketchpad.test").info("a photo name")
        assert path.stat().st_mode & 0o777 == 0o600
        assert "a photo name" in path.read_text()
    finally:
        teardown_logging()
    (folder / "sketchpad.log").unlink()
    path = setup_logging()
    try:
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        teardown_logging()
