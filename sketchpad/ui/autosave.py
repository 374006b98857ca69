"""Autosave and restore after a crash (DESIGN §7: never lose the user's work).

While a window runs, its :class:`Autosaver` holds ``session-<id>.lock`` (a
``QLockFile``) in :func:`~sketchpad.paths.autosave_dir` and, a few seconds after the
last edit, writes the drawing atomically to ``session-<id>.json``: our sketch JSON
wrapped with the original file path, the file name and a timestamp. The autosave is
removed only when there is nothing unsaved left: after a successful save, when the
user discards the changes, or on a clean close.

When autosave cannot run — the lock cannot be created at start (a full or read-only data
folder), or a write fails — :attr:`Autosaver.problem` says why and ``unavailable(str)`` is
emitted; the saver retries every :data:`RETRY_MS` (and at the next edit) and emits
``available()`` once it works again, so the window can show a warning that stays until then.
Autosaves are private to the user: 0600 files (and lock) in a 0700 folder.

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

from PySide6.QtCore import QLockFile, QObject, QThreadPool, QTimer, Signal

from sketchpad.atomic import SaveError, atomic_write_bytes
from sketchpad.paths import PRIVATE_FILE_MODE, autosave_dir, autosave_location, private_dir
from sketchpad.sketch.io import SketchFileError, sketch_from_json_bytes, sketch_to_json_bytes
from sketchpad.sketch.model import Sketch
from sketchpad.ui.canvas.document import Document
from sketchpad.workspace.preferences import DEFAULT_AUTOSAVE_SECONDS

log = logging.getLogger(__name__)

AUTOSAVE_FORMAT = "sketchpad-autosave"
AUTOSAVE_VERSION = 1
DEFAULT_DELAY_MS = int(DEFAULT_AUTOSAVE_SECONDS * 1000)  # the preferences' default
#: How often an autosave that cannot run is tried again.
RETRY_MS = 30_000
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


def _lock_problem(lock: QLockFile, path: Path) -> str:
    """Why ``lock`` could not be taken, for the user."""
    error = lock.error()
    if error == QLockFile.LockError.PermissionError:
        why = "the autosave folder is read-only or not writable"
    elif error == QLockFile.LockError.LockFailedError:
        why = "another process holds it"
    else:
        why = "it could not be written (is the disk full?)"
    return f"cannot create the lock {path}: {why}"


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


def _default_dir() -> Path:
    """:func:`~sketchpad.paths.autosave_dir`, or where it would be when it cannot be made
    (the saver then reports the problem and retries)."""
    try:
        return autosave_dir()
    except OSError:
        return autosave_location()


class Autosaver(QObject):
    """Keeps ``session-<id>.json`` up to date with ``document`` while it has unsaved edits.

    Args:
        document: the window's document.
        delay_ms: quiet time after the last change before writing.
        max_wait_ms: longest time a change waits while edits keep coming (default
            10 × ``delay_ms``), so a long drawing session is still autosaved.
        directory: where autosaves live (default :func:`~sketchpad.paths.autosave_dir`).

    Signals: ``saved(Path)`` after each write, ``failed(str)`` with a readable reason
    when a write fails; ``unavailable(str)`` when autosave stops working (the lock cannot be
    taken, or a write failed), with the reason, and ``available()`` when it works again.
    While it does not work it is retried every :data:`RETRY_MS` and at the next edit.

    The timer's writes run off the GUI thread (an atomic write ends in fsync: tens to hundreds
    of milliseconds on a busy disk, sampled on the GUI thread during ``bench ui`` stalls): the
    bytes are made on the GUI thread (the document as it is then), one writer thread writes
    them in order, and ``saved`` / ``failed`` come back on the GUI thread. :meth:`save_now`
    and :meth:`discard` first wait for a write in flight, so the newest state always wins.
    """

    saved = Signal(Path)
    failed = Signal(str)
    unavailable = Signal(str)
    available = Signal()
    _written = Signal(object)  # from the writer thread: None, or the write's SaveError

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
        folder = directory if directory is not None else _default_dir()
        self.file = folder / f"session-{self.session_id}.json"
        self.lock_file = folder / f"session-{self.session_id}.lock"
        self._lock = _new_lock(self.lock_file)
        self.active = False
        #: Why autosave cannot run now (None while it works).
        self.problem: str | None = None
        self._retry_timer = QTimer(self)
        self._retry_timer.setInterval(RETRY_MS)
        self._retry_timer.timeout.connect(self.retry)
        self._take_lock()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._on_timeout)
        self._max_wait_s = (max_wait_ms if max_wait_ms is not None else 10 * delay_ms) / 1000
        self._waiting_since = 0.0  # time.monotonic() of the first change not yet written
        self._writer = QThreadPool(self)  # the timer's writes, in order, off the GUI thread
        self._writer.setMaxThreadCount(1)
        self._written.connect(self._on_written)  # queued: emitted on the writer thread
        stack = document.undo_stack
        stack.indexChanged.connect(self._schedule)
        stack.cleanChanged.connect(self._schedule)
        document.pathChanged.connect(self._schedule)

    @property
    def delay_ms(self) -> int:
        return self._timer.interval()

    def set_delay_ms(self, delay_ms: int) -> None:
        """The quiet time after an edit before the autosave is written (Preferences)."""
        if delay_ms < 1:
            raise ValueError(f"the autosave delay must be positive, got {delay_ms} ms")
        self._max_wait_s = self._max_wait_s / max(1, self._timer.interval()) * delay_ms
        self._timer.setInterval(int(delay_ms))

    @property
    def pending(self) -> bool:
        """A write is scheduled."""
        return self._timer.isActive()

    @property
    def retrying(self) -> bool:
        """Autosave does not work now and a retry is scheduled."""
        return self._retry_timer.isActive()

    def _take_lock(self) -> bool:
        """Make the folder (private) and take the session lock; report a problem if not."""
        try:
            private_dir(self.lock_file.parent)
        except OSError as e:
            self._set_problem(f"cannot create the autosave folder {self.lock_file.parent}: {e}")
            return False
        if not self._lock.tryLock(0):
            self._set_problem(_lock_problem(self._lock, self.lock_file))
            return False
        try:
            os.chmod(self.lock_file, PRIVATE_FILE_MODE)
        except OSError:
            pass
        self.active = True
        return True

    def _set_problem(self, reason: str) -> None:
        new = self.problem != reason
        self.problem = reason
        if not self._retry_timer.isActive():
            self._retry_timer.start()
        if new:
            log.warning("autosave is off: %s (retrying every %d s)", reason, RETRY_MS // 1000)
            self.unavailable.emit(reason)

    def _clear_problem(self) -> None:
        self._retry_timer.stop()
        if self.problem is not None:
            log.info("autosave works again")
            self.problem = None
            self.available.emit()

    def retry(self) -> bool:
        """Try again to take the lock and, with unsaved changes, to write; True when autosave
        works now. Called every :data:`RETRY_MS` while it does not."""
        if not self.active and not self._take_lock():
            return False
        if self._document.is_modified:
            return self.save_now()
        self._clear_problem()
        return True

    def _schedule(self, *_: object) -> None:
        if not self.active:
            if self.problem is not None:
                self.retry()  # an edit is a good moment to try again
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
            self._save_in_background()
        else:
            self._remove_file()

    def _encode(self) -> bytes:
        return encode_autosave(
            self._document.sketch, self._document.path, datetime.now().astimezone()
        )

    def _save_in_background(self) -> None:
        """Write the document as it is now, on the writer thread (see the class docstring)."""
        if not self.active:
            return
        data, file, written = self._encode(), self.file, self._written

        def write() -> None:
            try:
                atomic_write_bytes(file, data, mode=PRIVATE_FILE_MODE)
            except SaveError as e:
                written.emit(e)
                return
            written.emit(None)

        self._writer.start(write)

    def wait_for_writes(self, timeout_ms: int = -1) -> bool:
        """Wait until no background write is in flight (its result is still queued for the
        GUI thread); True unless the timeout passed first."""
        return self._writer.waitForDone(timeout_ms)

    def _on_written(self, error: SaveError | None) -> None:
        if not self.active:  # closed meanwhile
            return
        if error is None:
            self._wrote()
        else:
            self._write_failed(error)

    def _wrote(self) -> None:
        log.debug("autosaved to %s", self.file)
        self._clear_problem()
        self.saved.emit(self.file)

    def _write_failed(self, e: SaveError) -> None:
        log.warning("autosave failed: %s", e)
        self.failed.emit(e.reason)
        self._set_problem(f"could not write {self.file}: {e.reason}")

    def save_now(self) -> bool:
        """Write the autosave now, on this thread, after any background write in flight
        (also when the document is clean); True on success."""
        self._timer.stop()
        if not self.active:
            return False
        self.wait_for_writes()
        try:
            atomic_write_bytes(self.file, self._encode(), mode=PRIVATE_FILE_MODE)
        except SaveError as e:
            self._write_failed(e)
            return False
        self._wrote()
        return True

    def discard(self) -> None:
        """Nothing unsaved is left (saved, or changes thrown away): delete the autosave."""
        self._timer.stop()
        self._remove_file()

    def close(self) -> None:
        """End of session: delete the autosave and the lock. The caller has made sure
        nothing unsaved is lost (saved or discarded)."""
        self.discard()
        self._retry_timer.stop()
        if self.active:
            self._lock.unlock()
            self.active = False

    def _remove_file(self) -> None:
        self.wait_for_writes()  # a write in flight would bring the file back
        try:
            os.remove(self.file)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not delete the autosave %s: %s", self.file, e)
