"""Scene labelling off the GUI thread: :class:`LabellingService` and its worker.

The GUI builds an immutable :class:`LabelRequest` (a sketch and its labels) with a generation
number; one worker object on its own QThread owns the model and answers with signals. The model
(``clip-vit-b16`` by default) is loaded lazily by the worker on its first request, so the window
opens without torch; the backbone factory is injectable (tests pass a stand-in).

- **Newest wins**: a request superseded while it waited is skipped by the worker, and a result
  or failure that is not of the newest request is dropped on the GUI side (it may have been
  emitted just before the newer request was made).
- **Errors**: every exception becomes ``failed(generation, kind, message)`` with a readable
  message: kind ``"weights"`` when the weights are missing or unusable (the message says how to
  get them), ``"input"`` for a sketch or labels the labeller refuses, ``"error"`` otherwise
  (logged with its traceback). A failed model load is retried on the next request, so weights
  imported meanwhile are picked up. (An exception escaping a QThread slot would vanish and leave
  the window waiting.)
- **Shutdown**: :meth:`LabellingService.shutdown` quits and joins the thread; it is connected to
  ``QCoreApplication.aboutToQuit`` and called when the main window closes. A thread that does not
  finish in time (a model still loading) is kept referenced and joined at exit, so a running
  QThread is never destroyed.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from sketchpad.sketch.model import Sketch
from sketchpad.vision.errors import WeightsError

if TYPE_CHECKING:
    from sketchpad.vision.backbone import Backbone
    from sketchpad.vision.scene import SceneLabeller
    from sketchpad.vision.scene_labels import SceneLabels

log = logging.getLogger(__name__)

#: The scene labeller's backbone (DESIGN §4.1: category-level and scene labelling).
DEFAULT_BACKBONE = "clip-vit-b16"
#: How long :meth:`LabellingService.shutdown` waits by default, and the exit hook per thread.
JOIN_TIMEOUT_S = 30.0

Progress = Callable[[int, "int | None"], None]
#: Builds the backbone; gets a download-progress callback ``(bytes_done, bytes_total | None)``.
BackboneFactory = Callable[[Progress], "Backbone"]
FailureKind = Literal["weights", "input", "error"]

#: Threads not joined yet: kept referenced so that Python never destroys a running QThread.
_LIVE: dict[int, QThread] = {}


@atexit.register
def _join_leftover_threads() -> None:
    for thread in list(_LIVE.values()):
        thread.quit()
        if not thread.wait(int(JOIN_TIMEOUT_S * 1000)):
            log.error("the labelling thread did not stop within %.0f s at exit", JOIN_TIMEOUT_S)
    _LIVE.clear()


def default_backbone_factory(progress: Progress) -> Backbone:
    """``clip-vit-b16`` with its resolved weights (imported, cached, or downloaded when online).

    Raises:
        sketchpad.vision.errors.WeightsError: no usable weights.
    """
    from sketchpad.vision.backbone import create_backbone

    return create_backbone(DEFAULT_BACKBONE, progress=progress)


@dataclass(frozen=True)
class LabelRequest:
    """Label ``sketch`` with ``labels``; ``generation`` increases with every request."""

    generation: int
    sketch: Sketch
    labels: tuple[str, ...]


@dataclass(frozen=True)
class LabelResult:
    """The answer to one request.

    Attributes:
        request: what was asked.
        labels: the labelling (:class:`sketchpad.vision.scene_labels.SceneLabels`).
        backbone_id, weights_sha256: the model that answered.
        seconds: wall time of the labelling, model loading excluded.
    """

    request: LabelRequest
    labels: SceneLabels
    backbone_id: str
    weights_sha256: str
    seconds: float


class _Generations:
    """The newest generation asked for, shared by the GUI and the worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._latest = 0

    def next(self) -> int:
        with self._lock:
            self._latest = next(self._counter)
            return self._latest

    @property
    def latest(self) -> int:
        with self._lock:
            return self._latest


class LabellingWorker(QObject):
    """Lives on the labelling thread and owns the model. Use it through
    :class:`LabellingService`."""

    finished = Signal(object)  # LabelResult
    failed = Signal(int, str, str)  # generation, FailureKind, message
    status = Signal(int, str)  # generation, what the worker is doing

    def __init__(self, factory: BackboneFactory, generations: _Generations) -> None:
        super().__init__()
        self._factory = factory
        self._generations = generations
        self._labeller: SceneLabeller | None = None

    def _load(self, generation: int) -> SceneLabeller:
        if self._labeller is None:
            from sketchpad.vision.scene import SceneLabeller

            self.status.emit(generation, "Loading the labelling model…")

            def progress(done: int, total: int | None) -> None:
                size = f" of {total / 2**20:.0f}" if total else ""
                self.status.emit(generation, f"Downloading weights: {done / 2**20:.0f}{size} MB")

            self._labeller = SceneLabeller(self._factory(progress))
            log.info("labelling model %s loaded", self._labeller.backbone.spec.id)
        return self._labeller

    @Slot(object)
    def run(self, request: LabelRequest) -> None:
        """Label ``request`` unless a newer one was asked for meanwhile; never raises."""
        gen = request.generation
        if gen != self._generations.latest:
            return  # superseded while it waited
        try:
            labeller = self._load(gen)
            if gen != self._generations.latest:
                return
            self.status.emit(gen, f"Labelling with {len(request.labels)} labels…")
            t0 = time.perf_counter()
            result = labeller.label(request.sketch, request.labels)
            seconds = time.perf_counter() - t0
        except WeightsError as e:
            log.warning("labelling model unavailable: %s", e)
            self.failed.emit(gen, "weights", str(e))
        except ValueError as e:
            self.failed.emit(gen, "input", str(e))
        except Exception as e:  # every failure must reach the window
            log.exception("labelling failed")
            self.failed.emit(gen, "error", f"{type(e).__name__}: {e}")
        else:
            backbone = labeller.backbone
            self.finished.emit(
                LabelResult(request, result, backbone.spec.id, backbone.weights.sha256, seconds)
            )


class LabellingService(QObject):
    """The GUI's handle on scene labelling. Create and use it on the GUI thread.

    Args:
        backbone_factory: builds the CLIP backbone on the worker thread, on first use
            (default: :func:`default_backbone_factory`).

    Signals (GUI thread, newest request only):
        resultReady(LabelResult), failed(int generation, str kind, str message),
        status(str) what the worker is doing, busyChanged(bool).
    """

    resultReady = Signal(object)  # noqa: N815 (Qt signal naming)
    failed = Signal(int, str, str)
    status = Signal(str)
    busyChanged = Signal(bool)  # noqa: N815
    _submit = Signal(object)

    def __init__(
        self, backbone_factory: BackboneFactory | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._factory = backbone_factory or default_backbone_factory
        self._generations = _Generations()
        self._thread: QThread | None = None
        self._worker: LabellingWorker | None = None
        self._busy = False
        self.dropped = 0  # stale answers dropped on the GUI side (for tests and logs)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # -- state -------------------------------------------------------------------------------
    @property
    def is_busy(self) -> bool:
        """True from a request until its answer (or a newer request's) arrives."""
        return self._busy

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    @property
    def latest_generation(self) -> int:
        return self._generations.latest

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    # -- requests ----------------------------------------------------------------------------
    def request(self, sketch: Sketch, labels: Sequence[str]) -> int:
        """Ask for ``sketch`` to be labelled with ``labels``; returns at once with the request's
        generation. Any earlier request still waiting is superseded."""
        self._ensure_thread()
        req = LabelRequest(self._generations.next(), sketch, tuple(labels))
        self._set_busy(True)
        self._submit.emit(req)
        return req.generation

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        thread = QThread()
        thread.setObjectName("sketchpad-labelling")
        worker = LabellingWorker(self._factory, self._generations)
        worker.moveToThread(thread)
        self._submit.connect(worker.run)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.status.connect(self._on_status)
        self._thread, self._worker = thread, worker
        _LIVE[id(thread)] = thread
        thread.start()

    @Slot(object)
    def _on_finished(self, result: LabelResult) -> None:
        if result.request.generation != self._generations.latest:
            self.dropped += 1
            log.debug("dropped the stale labelling of request %d", result.request.generation)
            return
        self._set_busy(False)
        self.resultReady.emit(result)

    @Slot(int, str, str)
    def _on_failed(self, generation: int, kind: str, message: str) -> None:
        if generation != self._generations.latest:
            self.dropped += 1
            return
        self._set_busy(False)
        self.failed.emit(generation, kind, message)

    @Slot(int, str)
    def _on_status(self, generation: int, text: str) -> None:
        if generation == self._generations.latest:
            self.status.emit(text)

    # -- tests and shutdown ------------------------------------------------------------------
    def wait_until_idle(self, timeout_s: float = 10.0) -> bool:
        """Process events until no request is outstanding; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._busy:
            if time.monotonic() > deadline:
                return False
            QCoreApplication.processEvents()
            time.sleep(0.002)
        return True

    def shutdown(self, timeout_s: float = JOIN_TIMEOUT_S) -> bool:
        """Stop the worker thread and join it; True when it has stopped (or never ran).

        Answers still on their way are dropped. A thread still busy after ``timeout_s`` is
        left to finish and joined at exit.
        """
        thread, worker = self._thread, self._worker
        if thread is None or worker is None:
            return True
        self._generations.next()  # anything still queued is now stale
        self._submit.disconnect(worker.run)
        thread.quit()
        stopped = thread.wait(int(timeout_s * 1000))
        if not stopped:
            log.error("the labelling thread did not stop within %.0f s", timeout_s)
            return False
        _LIVE.pop(id(thread), None)
        self._thread = self._worker = None
        self._set_busy(False)
        return True


__all__ = [
    "DEFAULT_BACKBONE",
    "BackboneFactory",
    "FailureKind",
    "LabelRequest",
    "LabelResult",
    "LabellingService",
    "LabellingWorker",
    "default_backbone_factory",
]
