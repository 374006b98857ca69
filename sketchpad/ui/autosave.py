"""Autosave and restore after a crash (DESIGN §7: never lose the user's work).

While a window runs, its :class:`Autosaver` holds ``session-<id>.lock`` (a
``QLockFile``) in :func:`~sketchpad.paths.autosave_dir` and, a few seconds after the
last edit, writes the drawing atomically to ``session-<id>.json``: our sketch JSON
wrapped with the original file path, the file name and a timestamp. The autosave is
removed only when there is nothing unsaved left: after a successful save, when the
user discards the changes, or on a clean close.

A crashed session leaves its JSON behind and a lock whose owner is dead, which
``QLockFile`` recognises. :func:`claim_orphaned_sessions` takes those locks, so two
windows starting at once never offer the same drawing, and returns them to be
offered for restore.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QTimer, Signal

from sketchpad.atomic import SaveError, atomic_write_bytes
from sketchpad.paths import autosave_dir
from sketchpad.sketch.io import SketchFileError, sketch_from_json_bytes, sketch_to_json_bytes
from sketchpad.sketch.model import Sketch
from sketchpad.ui.document import Document

log = logging.getLogger(__name__)

AUTOSAVE_FORMAT = "sketchpad-autosave"
AUTOSAVE_VERSION = 1
DEFAULT_DELAY_MS = 3000
UNTITLED = "Untitled"


def new_session_id() -> str:
    """Sortable by start time, unique across processes: ``20250101-120000-1a2b3c4d``."""
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def encode_autosave(sketch: Sketch, original_path: Path | None, saved_at: datetime) -> bytes:
    """The autosave file's bytes: a small JSON header around our sketch JSON."""
    header = {
        "format": AUTOSAVE_FORMAT,
        "version": AUTOSAVE_VERSION,
        "saved_at": saved_at.isoformat(timespec="seconds"),
        "original_path": str(original_path) if original_path is not None else None,
        "file_name": original_path.name if original_path is not None else UNTITLED,
    }
    # Splice the sketch JSON in as the last member instead of parsing and re-encoding it.
    head = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return head[:-1] + b', "sketch": ' + sketch_to_json_bytes(sketch) + b"}"


@dataclass(frozen=True)
class AutosaveContents:
    """What an autosave file holds.

    Attributes:
        sketch: the drawing as it was at ``saved_at``.
        original_path: the file the drawing was opened from or saved to, or None.
        file_name: its name, or "Untitled".
        saved_at: when the autosave was written (local time, with offset).
    """

    sketch: Sketch
    original_path: Path | None
    file_name: str
    saved_at: datetime


def read_autosave(path: Path) -> AutosaveContents:
    """Read an autosave file.

    Raises:
        SketchFileError: the file is unreadable, not an autosave, or from a newer version.
    """
    try:
        obj = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise SketchFileError(path, f"cannot read the autosave: {e}") from e
    if not isinstance(obj, dict) or obj.get("format") != AUTOSAVE_FORMAT:
        raise SketchFileError(path, "not a Sketchpad autosave file")
    if obj.get("version") != AUTOSAVE_VERSION:
        raise SketchFileError(path, f"unsupported autosave version {obj.get('version')!r}")
    sketch = sketch_from_json_bytes(json.dumps(obj.get("sketch")).encode("utf-8"), path=path)
    original = obj.get("original_path")
    try:
        saved_at = datetime.fromisoformat(str(obj.get("saved_at")))
    except ValueError:
        saved_at = datetime.fromtimestamp(Path(path).stat().st_mtime, tz=timezone.utc)
    return AutosaveContents(
        sketch=sketch,
        original_path=Path(original) if isinstance(original, str) else None,
        file_name=str(obj.get("file_name") or UNTITLED),
        saved_at=saved_at,
    )


def _new_lock(path: Path) -> QLockFile:
    lock = QLockFile(str(path))
    # Never treat a lock as stale by age: a window may stay open for days. A lock
    # whose owning process is gone is still recognised as stale by QLockFile.
    lock.setStaleLockTime(0)
    return lock


class OrphanedSession:
    """The autosave of a session that ended without cleaning up; we hold its lock.

    Call exactly one of :meth:`discard` (the drawing is no longer wanted or has been
    adopted) or :meth:`release` (keep it to be offered again at the next start).
    """

    def __init__(self, file: Path, lock: QLockFile, contents: AutosaveContents) -> None:
        self.file = file
        self.contents = contents
        self._lock = lock

    def discard(self) -> None:
        """Delete the autosave file and the lock."""
        try:
            self.file.unlink(missing_ok=True)
        except OSError as e:
            log.warning("could not delete the old autosave %s: %s", self.file, e)
        self._lock.unlock()

    def release(self) -> None:
        """Leave the autosave where it is (unlocking deletes the lock file)."""
        self._lock.unlock()


def claim_orphaned_sessions(directory: Path | None = None) -> list[OrphanedSession]:
    """Autosaves whose session is not running any more, newest first, their locks held.

    Unreadable autosaves are logged and left alone; locks without an autosave are
    removed.
    """
    folder = directory if directory is not None else autosave_dir()
    found: list[OrphanedSession] = []
    for lock_path in sorted(folder.glob("session-*.lock")):
        if not lock_path.with_suffix(".json").exists():
            lock = _new_lock(lock_path)
            if lock.tryLock(0):  # a crash before the first autosave: tidy up
                lock.unlock()
    for file in folder.glob("session-*.json"):
        lock = _new_lock(file.with_suffix(".lock"))
        if not lock.tryLock(0):
            continue  # a running session (maybe this one) owns it
        try:
            contents = read_autosave(file)
        except (SketchFileError, ValueError) as e:
            log.warning("ignoring an unreadable autosave %s: %s", file, e)
            lock.unlock()
            continue
        found.append(OrphanedSession(file, lock, contents))
    found.sort(key=lambda o: o.contents.saved_at.timestamp(), reverse=True)
    return found


class Autosaver(QObject):
    """Keeps ``session-<id>.json`` up to date with ``document`` while it has unsaved edits.

    Args:
        document: the window's document.
        delay_ms: quiet time after the last change before writing.
        max_wait_ms: longest time a change waits while edits keep coming (default
            10 × ``delay_ms``), so a long drawing session is still autosaved.
        directory: where autosaves live (default :func:`~sketchpad.paths.autosave_dir`).

    Signals: ``saved(Path)`` after each write, ``failed(str)`` with a readable reason
    when a write fails (the next change tries again).
    """

    saved = Signal(Path)
    failed = Signal(str)

    def __init__(
        self,
        document: Document,
        *,
        delay_ms: int = DEFAULT_DELAY_MS,
        max_wait_ms: int | None = None,
        directory: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._document = document
        self.session_id = new_session_id()
        folder = directory if directory is not None else autosave_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.file = folder / f"session-{self.session_id}.json"
        self.lock_file = folder / f"session-{self.session_id}.lock"
        self._lock = _new_lock(self.lock_file)
        self.active = self._lock.tryLock(0)
        if not self.active:
            log.warning(
                "autosave is off: cannot create the lock %s (%s)",
                self.lock_file,
                self._lock.error(),
            )
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._on_timeout)
        self._max_wait_s = (max_wait_ms if max_wait_ms is not None else 10 * delay_ms) / 1000
        self._waiting_since = 0.0  # time.monotonic() of the first change not yet written
        stack = document.undo_stack
        stack.indexChanged.connect(self._schedule)
        stack.cleanChanged.connect(self._schedule)
        document.path_changed.connect(self._schedule)

    @property
    def delay_ms(self) -> int:
        return self._timer.interval()

    @property
    def pending(self) -> bool:
        """A write is scheduled."""
        return self._timer.isActive()

    def _schedule(self, *_: object) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if not self._timer.isActive():
            self._waiting_since = now
            self._timer.start()
        elif now - self._waiting_since < self._max_wait_s:
            self._timer.start()  # restart: one write once the edits settle
        # else: edits never settle; let the running timer fire

    def _on_timeout(self) -> None:
        if self._document.is_modified:
            self.save_now()
        else:
            self._remove_file()

    def save_now(self) -> bool:
        """Write the autosave now (also when the document is clean); True on success."""
        self._timer.stop()
        if not self.active:
            return False
        data = encode_autosave(
            self._document.sketch, self._document.path, datetime.now().astimezone()
        )
        try:
            atomic_write_bytes(self.file, data)
        except SaveError as e:
            log.warning("autosave failed: %s", e)
            self.failed.emit(e.reason)
            return False
        log.debug("autosaved to %s", self.file)
        self.saved.emit(self.file)
        return True

    def discard(self) -> None:
        """Nothing unsaved is left (saved, or changes thrown away): delete the autosave."""
        self._timer.stop()
        self._remove_file()

    def close(self) -> None:
        """End of session: delete the autosave and the lock. The caller has made sure
        nothing unsaved is lost (saved or discarded)."""
        self.discard()
        if self.active:
            self._lock.unlock()
            self.active = False

    def _remove_file(self) -> None:
        try:
            os.remove(self.file)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not delete the autosave %s: %s", self.file, e)
