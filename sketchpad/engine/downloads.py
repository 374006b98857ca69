"""Weights downloads and imports off the GUI thread (issue 5, the model manager and banner).

- :func:`weights_status` and :func:`missing_weights` say, without any network, whether a
  backbone's weights are here (imported, or in the Hugging Face cache) and where.
- :class:`DownloadJob` downloads (``start``) or checks and imports (``start_import``) one
  backbone's weights at a time on its own QThread, with ``progress``/``finished``/``failed``/
  ``cancelled`` signals on the GUI thread. ``cancel()`` stops a download at its next chunk:
  the progress callback raises, which :mod:`sketchpad.vision.hub` documents as cancelling, and
  huggingface_hub removes the partial file. An import reports the bytes copied (the file's
  header is checked first, in a second or two) and ``cancel()`` stops it at its next chunk
  the same way: the partial copy is removed and the working weights stay as they were.
- :class:`BackgroundCall` runs one short function (a status scan, a device probe) off the GUI
  thread and hands its value back on the GUI thread.

Every thread is parentless and kept referenced until it has ended, so a running QThread is
never destroyed (:mod:`sketchpad.engine.threads`); ``DownloadJob.shutdown()`` (also hooked to
``aboutToQuit``) cancels and joins, and whatever still runs at exit is joined there.
Exceptions never escape a thread: they become ``failed`` signals with a readable message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from sketchpad.engine import threads
from sketchpad.vision.errors import WeightsError
from sketchpad.vision.registry import BackboneSpec, get_spec

log = logging.getLogger(__name__)

WeightsState = Literal["downloaded", "imported", "missing"]
#: Progress is reported at most this often (the last chunk is always reported).
PROGRESS_INTERVAL_S = 0.05


def display_name(spec: BackboneSpec) -> str:
    """The spec's description up to its first top-level comma: "CLIP ViT-B/16 (OpenAI)"."""
    head, sep, _ = spec.description.partition(", ")
    return head if sep and head.count("(") == head.count(")") else spec.description


def format_size(n_bytes: float) -> str:
    """``n_bytes`` for people: "599 MB", "1.7 GB", "12.5 MB", "840 KB"."""
    if n_bytes >= 1e9:
        return f"{n_bytes / 1e9:.1f} GB"
    for scale, unit in ((1e6, "MB"), (1e3, "KB")):
        if n_bytes >= scale:
            value = n_bytes / scale
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{int(n_bytes)} B"


# --- where the weights are (no network) -----------------------------------------------------


@dataclass(frozen=True)
class WeightsStatus:
    """Whether a backbone's weights are here, looked up without any network.

    Attributes:
        spec_id: the backbone id.
        state: "imported" (in Sketchpad's data folder), "downloaded" (in the Hugging Face
            cache) or "missing".
        path: the weights file found, or None.
        folder: where the files live: the found file's folder, else the folder an import goes to.
        size_bytes: the found file's size, else the registry's approximate download size, or
            None when neither is known.
        looked: "<place>: <path>" for every local place looked at, in resolution order.
    """

    spec_id: str
    state: WeightsState
    path: Path | None
    folder: Path
    size_bytes: int | None
    looked: tuple[str, ...]


def weights_status(spec: BackboneSpec) -> WeightsStatus:
    """Where ``spec``'s weights are. Reads the disk only; the first call imports
    huggingface_hub (~0.2 s), so call it off the GUI thread.
    """
    from sketchpad.vision.weights import PLACE_LABELS, describe_locations, imported_dir

    places = [(src, place, ok) for src, place, ok in describe_locations(spec) if src != "download"]
    looked = tuple(f"{PLACE_LABELS[src]}: {place}" for src, place, _ in places)
    for src, place, ok in places:
        if ok and isinstance(place, Path):
            state: WeightsState = "imported" if src == "imported" else "downloaded"
            try:
                size: int | None = place.stat().st_size
            except OSError:
                size = None
            return WeightsStatus(spec.id, state, place, place.parent, size, looked)
    size = int(spec.download_mb * 1e6) if spec.download_mb else None
    return WeightsStatus(spec.id, "missing", None, imported_dir(spec), size, looked)


def missing_weights(backbone_id: str) -> str | None:
    """What is missing for ``backbone_id``, or None when its weights resolve locally.

    Only local places are looked at (imported weights, the Hugging Face cache), never the
    network. An unknown id is reported as missing, with the known ids.

    Returns:
        None, or one paragraph naming the model, the places looked at and how to get weights.
    """
    try:
        spec = get_spec(backbone_id)
    except KeyError as e:
        return str(e.args[0])
    status = weights_status(spec)
    if status.state != "missing":
        return None
    size = f" (about {format_size(status.size_bytes)})" if status.size_bytes else ""
    return (
        f"No weights for {display_name(spec)} ({spec.id}). Looked at "
        + "; ".join(status.looked)
        + f". Download{size} from {spec.hf_repo} when online, or import a file you have "
        f"({' or '.join(spec.hf_files)})."
    )


def probe_cuda() -> tuple[bool, str]:
    """Whether models can run on a CUDA GPU: ``(True, its name)`` or ``(False, why not)``.

    Imports torch (seconds on a cold start): call it off the GUI thread.
    """
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False, "PyTorch is not installed"
    import torch

    if not torch.cuda.is_available():
        build = torch.version.cuda or "none"
        return False, f"PyTorch {torch.__version__} finds no CUDA GPU (its CUDA build: {build})"
    return True, torch.cuda.get_device_name(0)


# --- threads -----------------------------------------------------------------------------------


class _Cancelled(Exception):
    """Raised from the progress callback to stop a download."""


class _Task(QThread):
    """Runs ``fn`` once; its value or exception is emitted from the thread (never raised)."""

    succeeded = Signal(object)
    errored = Signal(object)

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        super().__init__()  # no parent: a parent's destructor would destroy it running
        self.setObjectName(name)
        self._fn = fn

    def run(self) -> None:
        try:
            value = self._fn()
        except BaseException as e:  # noqa: BLE001 - an exception in run() would vanish
            self.errored.emit(e)
        else:
            self.succeeded.emit(value)


def _readable(e: BaseException) -> str:
    if isinstance(e, WeightsError):
        return str(e)
    log.error("unexpected error in a background job", exc_info=e)
    return f"unexpected error: {type(e).__name__}: {e}"


class BackgroundCall(QObject):
    """Runs ``fn`` once on its own QThread; ``done(value)`` or ``failed(message)`` follows on
    the GUI thread. Create and use it on the GUI thread.

    Args:
        fn: the function, called without arguments on the worker thread.
        name: the thread's name (logs, debuggers).
        parent: Qt parent (the thread is never a child).
    """

    done = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        fn: Callable[[], Any],
        name: str = "sketchpad-background",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._task = _Task(fn, name)
        queued = Qt.ConnectionType.QueuedConnection
        self._task.succeeded.connect(self._on_succeeded, queued)
        self._task.errored.connect(self._on_errored, queued)

    def start(self) -> None:
        threads.keep(self._task)
        self._task.start()

    @property
    def is_running(self) -> bool:
        return self._task.isRunning()

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Join the thread (its signals are still to be delivered); False on timeout."""
        return bool(self._task.wait(max(0, int(timeout_s * 1000))))

    @Slot(object)
    def _on_succeeded(self, value: object) -> None:
        self.done.emit(value)

    @Slot(object)
    def _on_errored(self, error: BaseException) -> None:
        self.failed.emit(_readable(error))


class DownloadJob(QObject):
    """Downloads or imports one backbone's weights at a time, off the GUI thread.

    Create and use it on the GUI thread. Signals (on the GUI thread):
        progress(str id, int bytes_done, object bytes_total_or_None): while downloading or
            copying an import, at most every :data:`PROGRESS_INTERVAL_S`; ``bytes_done``
            never decreases.
        finished(str id, str path): the weights file is here (downloaded, imported, or found
            already present).
        failed(str id, str message): a readable reason (offline, unreachable Hub, a corrupt or
            wrong file: the message names the file).
        cancelled(str id): the download or import stopped after :meth:`cancel`; no partial
            file is left.
        busyChanged(bool): a job started or ended.

    Args:
        offline: passed to ``resolve_weights`` (None: the environment decides).
        parent: Qt parent (the thread is never a child).
    """

    progress = Signal(str, int, object)
    finished = Signal(str, str)
    failed = Signal(str, str)
    cancelled = Signal(str)
    busyChanged = Signal(bool)
    _progressed = Signal(str, int, object)  # emitted on the worker thread

    def __init__(self, *, offline: bool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.offline = offline
        self._task: _Task | None = None
        self._spec_id = ""
        self._kind: Literal["download", "import"] = "download"
        self._cancel = threading.Event()
        self._last_report = 0.0
        self._progressed.connect(self._on_progressed, Qt.ConnectionType.QueuedConnection)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_about_to_quit)

    # -- requests ------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether a download or import is under way (until its last signal is delivered)."""
        return self._task is not None

    @property
    def current(self) -> str | None:
        """The backbone id being downloaded or imported, or None."""
        return self._spec_id if self._task is not None else None

    @property
    def kind(self) -> Literal["download", "import"]:
        """What the current (or last) job does."""
        return self._kind

    def start(self, spec_id: str) -> None:
        """Download ``spec_id``'s weights into the Hugging Face cache (already-present weights
        finish at once).

        Raises:
            KeyError: unknown id. RuntimeError: a job is already running.
        """
        spec = get_spec(spec_id)

        def download() -> Path:
            from sketchpad.vision.weights import resolve_weights

            return resolve_weights(spec, offline=self.offline, progress=self._report).path

        self._launch(spec.id, "download", download)

    def start_import(self, spec_id: str, source: str | Path) -> None:
        """Check ``source`` (a file, or a folder holding one of the spec's file names) from its
        header, then copy it into Sketchpad's data folder, reporting the bytes copied.

        Raises:
            KeyError: unknown id. RuntimeError: a job is already running.
        """
        spec = get_spec(spec_id)

        def import_() -> Path:
            from sketchpad.vision.weights import import_weights

            return import_weights(spec, Path(source), progress=self._report).path

        self._launch(spec.id, "import", import_)

    def cancel(self) -> None:
        """Stop the download or the import's copy at its next chunk."""
        if self._task is not None:
            self._cancel.set()

    # -- test hooks and shutdown ---------------------------------------------------------------
    def wait_until_idle(self, timeout_s: float = 10.0) -> bool:
        """Process events until no job runs and its signals are delivered; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._task is not None:
            if time.monotonic() >= deadline:
                return False
            self._task.wait(10)
            QCoreApplication.processEvents()
        return True

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Cancel and join the running job; returns whether it ended within ``timeout_s`` (if
        not, it is joined at exit). Idempotent."""
        task = self._task
        if task is None:
            return True
        self._cancel.set()
        joined = bool(task.wait(max(0, int(timeout_s * 1000))))
        if not joined:
            log.error("the weights job for %s did not stop within %.1f s", self._spec_id, timeout_s)
        return joined

    @Slot()
    def _on_about_to_quit(self) -> None:
        self.shutdown()

    # -- the thread ----------------------------------------------------------------------------
    def _launch(
        self, spec_id: str, kind: Literal["download", "import"], fn: Callable[[], Path]
    ) -> None:
        if self._task is not None:
            raise RuntimeError(f"a weights job is already running (for {self._spec_id})")
        self._spec_id, self._kind = spec_id, kind
        self._cancel.clear()
        self._last_report = 0.0
        task = _Task(fn, f"sketchpad-weights-{kind}")
        queued = Qt.ConnectionType.QueuedConnection
        task.succeeded.connect(self._on_succeeded, queued)
        task.errored.connect(self._on_errored, queued)
        self._task = task
        threads.keep(task)
        log.info("%s of %s weights started", kind, spec_id)
        task.start()
        self.busyChanged.emit(True)

    def _report(self, done: int, total: int | None) -> None:
        """The progress callback, on the worker thread: raising cancels the download."""
        if self._cancel.is_set():
            raise _Cancelled
        now = time.monotonic()
        if done == total or now - self._last_report >= PROGRESS_INTERVAL_S:
            self._last_report = now
            self._progressed.emit(self._spec_id, done, total)

    @Slot(str, int, object)
    def _on_progressed(self, spec_id: str, done: int, total: object) -> None:
        if self._task is not None and spec_id == self._spec_id:
            self.progress.emit(spec_id, done, total)

    def _end(self) -> str:
        spec_id = self._spec_id
        if self._task is not None:
            self._task.wait()  # it has emitted its outcome: run() is returning
        self._task = None
        self.busyChanged.emit(False)
        return spec_id

    @Slot(object)
    def _on_succeeded(self, path: Path) -> None:
        spec_id = self._end()
        log.info("%s of %s weights finished: %s", self._kind, spec_id, path)
        self.finished.emit(spec_id, str(path))

    @Slot(object)
    def _on_errored(self, error: BaseException) -> None:
        spec_id = self._end()
        if isinstance(error, _Cancelled):
            log.info("%s of %s weights cancelled", self._kind, spec_id)
            self.cancelled.emit(spec_id)
        else:
            self.failed.emit(spec_id, _readable(error))
