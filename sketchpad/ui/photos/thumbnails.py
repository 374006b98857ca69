"""Thumbnails decoded in a thread pool into an LRU cache (DESIGN §6): the gallery's images.

``ThumbnailCache.get(path)`` never decodes on the GUI thread: it returns the cached image, or
None after queueing a decode. Two pool threads take the *most recently requested* path first
(the thumbnails on screen now, not the ones scrolled past a second ago); a path is queued or
decoded at most once at a time, and only the newest ``max_pending`` requests are kept waiting.
A decoded thumbnail lands on the GUI thread (``ready``); a file that cannot be decoded is
reported once (``failed``) and remembered, so painting it again does not retry it.

Workers build ``QImage``s (allowed off the GUI thread), never ``QPixmap``s. ``clear()`` starts
a new generation: decodes still running for the old one are dropped when they land.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QCoreApplication,
    QObject,
    QRunnable,
    QThread,
    QThreadPool,
    Signal,
    Slot,
)
from PySide6.QtGui import QImage

from sketchpad.gallery.images import PhotoError
from sketchpad.gallery.thumbs import load_thumbnail

log = logging.getLogger(__name__)

#: Decoder threads of a cache: two, but leave one core to the GUI thread on a 2-core machine
#: (measured there: two decoders of large JPEGs doubled the longest scroll repaint).
DECODE_THREADS = min(2, max(1, (os.cpu_count() or 2) - 1))


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An (H, W, 3) uint8 RGB array → a QImage that owns its pixels (Format_RGB32, the
    fastest to paint). Safe off the GUI thread."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    data = np.ascontiguousarray(rgb)
    image = QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return image.convertToFormat(QImage.Format.Format_RGB32)  # a deep copy: data may go


class _Bridge(QObject):
    """Carries results from pool threads to the GUI thread. One for the process, created on the
    GUI thread by the first cache and never deleted: a drain that outlives its cache has
    something alive to emit on, and no Qt object is ever destroyed on a pool thread."""

    landed = Signal(object, int, object, object, str)  # queue, generation, path, image, reason


_BRIDGE: _Bridge | None = None


def _bridge() -> _Bridge:
    global _BRIDGE
    if _BRIDGE is None:
        _BRIDGE = _Bridge()
    return _BRIDGE


class _Queue:
    """The decode queue a cache shares with its drains. Plain Python on purpose: the drains
    hold this, never the cache, so the cache's last reference always drops on the GUI thread
    (a QObject deleted on a pool thread, with its own pool as a child waiting for that very
    thread, is how a test run ended in a segmentation fault)."""

    def __init__(self, side: int, threads: int) -> None:
        self.side = side
        self.threads = threads
        self.lock = threading.Lock()  # guards every field below
        self.pending: OrderedDict[str, int] = OrderedDict()  # path → generation, newest last
        self.decoding: set[str] = set()
        self.drains = 0
        self.generation = 0
        self.closed = False  # the cache is gone: drains stop after the decode in hand

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.generation += 1
            self.pending.clear()

    def take(self) -> tuple[int, str] | None:
        """The newest queued path (called by pool threads), or None: the drain ends."""
        with self.lock:
            if self.closed or not self.pending:
                self.drains -= 1
                return None
            key, generation = self.pending.popitem(last=True)
            if generation == self.generation:
                self.decoding.add(key)
            return generation, key


class _Drain(QRunnable):
    """Decodes queued paths, newest first, until the queue is empty or closed."""

    def __init__(self, queue: _Queue, bridge: _Bridge) -> None:
        super().__init__()
        self._queue = queue
        self._bridge = bridge

    def run(self) -> None:
        queue = self._queue
        while True:
            job = queue.take()
            if job is None:
                return
            generation, key = job
            image, reason = None, ""
            try:
                image = rgb_to_qimage(load_thumbnail(Path(key), queue.side))
            except PhotoError as e:
                reason = e.reason
            except Exception as e:  # a bug of ours: log it, but never leave the cell waiting
                log.exception("decoding the thumbnail of %s failed", key)
                reason = f"internal error while decoding: {type(e).__name__}: {e}"
            try:
                self._bridge.landed.emit(queue, generation, key, image, reason)
            except RuntimeError:  # the application is being torn down: nobody to tell
                return


class ThumbnailCache(QObject):
    """Decoded thumbnails by path, least recently used evicted first. Use from the GUI thread.

    Args:
        side: Longest side of a thumbnail in pixels.
        capacity: Thumbnails kept (by count).
        parent: Qt parent.
        max_pending: Requests kept waiting for a decoder; older ones are forgotten (a cell
            still on screen asks again when it is painted).
        threads: Decoder threads.

    Signals:
        ready(object): the path's thumbnail is now in the cache (the path as a str, passed as
            an object: Qt would drop the bytes of a name that are not valid UTF-8).
        failed(object, str): the path cannot be decoded, and why (reported once per path).
    """

    ready = Signal(object)
    failed = Signal(object, str)

    def __init__(
        self,
        side: int = 160,
        capacity: int = 2000,
        parent: QObject | None = None,
        *,
        max_pending: int = 512,
        threads: int = DECODE_THREADS,
    ) -> None:
        super().__init__(parent)
        if side < 1:
            raise ValueError(f"thumbnail side must be ≥ 1, got {side}")
        if capacity < 1:
            raise ValueError(f"thumbnail cache capacity must be ≥ 1, got {capacity}")
        self.side = int(side)
        self.capacity = int(capacity)
        self.max_pending = max(1, int(max_pending))
        self._images: OrderedDict[str, QImage] = OrderedDict()
        self._failures: dict[str, str] = {}
        self._threads = max(1, int(threads))
        self._queue = _Queue(self.side, self._threads)
        self._bridge = _bridge()
        self._bridge.landed.connect(self._on_landed)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(self._threads)
        self._pool.setThreadPriority(QThread.Priority.LowPriority)  # the GUI thread first
        self._pool.setObjectName("sketchpad-thumbnails")
        # Emitted before the children (the pool, which waits for its drains) are deleted:
        # drains then stop after the decode in hand instead of working through the queue.
        self.destroyed.connect(self._queue.close)
        app = QCoreApplication.instance()
        if app is not None:  # decodes in flight must not outlive the application
            app.aboutToQuit.connect(self.shutdown)

    # -- lookups -----------------------------------------------------------------------------
    def get(self, path: Path | str) -> QImage | None:
        """The thumbnail of ``path``, or None: then a decode is queued (unless one is queued or
        running already, or the file failed before). Never blocks."""
        key = str(path)
        image = self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
            return image
        if key in self._failures:
            return None
        start = False
        queue = self._queue
        with queue.lock:
            if key in queue.pending:
                queue.pending.move_to_end(key)  # asked again: decode it sooner
            elif key not in queue.decoding:
                queue.pending[key] = queue.generation
                while len(queue.pending) > self.max_pending:
                    queue.pending.popitem(last=False)
                if queue.drains < self._threads:
                    queue.drains += 1
                    start = True
        if start:
            self._pool.start(_Drain(queue, self._bridge))
        return None

    def failure(self, path: Path | str) -> str | None:
        """Why ``path`` could not be decoded, or None."""
        return self._failures.get(str(path))

    def __len__(self) -> int:
        return len(self._images)

    def __contains__(self, path: object) -> bool:
        return str(path) in self._images

    def pending(self) -> int:
        """Decodes queued or running."""
        queue = self._queue
        with queue.lock:
            return len(queue.pending) + len(queue.decoding)

    # -- state -------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every thumbnail, failure and queued request; decodes still running are
        dropped when they land."""
        queue = self._queue
        with queue.lock:
            queue.generation += 1
            queue.pending.clear()
            queue.decoding.clear()
        self._images.clear()
        self._failures.clear()

    def wait_for_done(self, timeout_ms: int = 10_000) -> bool:
        """Wait until nothing is queued or decoding and deliver what landed (for tests and
        benchmarks; processes events). Returns False on timeout."""
        deadline = time.monotonic() + timeout_ms / 1000.0
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            finished = self._pool.waitForDone(left_ms)
            QCoreApplication.processEvents()
            QCoreApplication.processEvents()
            queue = self._queue
            with queue.lock:
                idle = not queue.pending and not queue.decoding and queue.drains == 0
            if finished and idle:
                return True
            if time.monotonic() >= deadline:
                return False

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Drop the queue and wait for the decodes in flight; returns whether they ended."""
        queue = self._queue
        with queue.lock:
            queue.generation += 1
            queue.pending.clear()
        return self._pool.waitForDone(timeout_ms)

    # -- pool side ---------------------------------------------------------------------------
    @Slot(object, int, object, object, str)
    def _on_landed(
        self, queue: _Queue, generation: int, key: str, image: QImage | None, reason: str
    ) -> None:
        if queue is not self._queue:
            return  # another cache's decode (they share the process's bridge)
        with queue.lock:
            if generation != queue.generation:
                return  # cleared since: obsolete
            queue.decoding.discard(key)
        if image is None:
            log.info("no thumbnail for %s: %s", key, reason)
            self._failures[key] = reason
            self.failed.emit(key, reason)
            return
        self._images[key] = image
        self._images.move_to_end(key)
        while len(self._images) > self.capacity:
            self._images.popitem(last=False)
        self.ready.emit(key)
