"""The GUI's handle on the inference worker: :class:`Engine`.

An ``Engine`` (created and used on the GUI thread) owns a QThread with one
:class:`~sketchpad.engine.worker.InferenceWorker` on it, numbers every request (its
*generation*, increasing), and re-emits the worker's signals on the GUI thread, dropping any
result that is no longer the newest of its kind (the worker drops stale results too; this is
the second check, for a result that was emitted just before a newer request was made):

- a query result whose generation is not the latest query's;
- masks not of the latest query, or not the latest request on their channel;
- index progress, bank changes and index summaries of a folder that is no longer the open one.

Loading a model while a folder is open opens that folder again under the new model. Scene
labelling (:meth:`Engine.label`) is answered by the same worker, so one model serves both.

``shutdown()`` stops the worker (indexing ends after the batch in flight, which is committed),
quits and joins the thread; it is connected to ``QCoreApplication.aboutToQuit`` so that a
running QThread is never destroyed ("QThread: Destroyed while thread is still running" aborts
the process). A thread that does not finish in time stays in :mod:`sketchpad.engine.threads`
and is joined at exit.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from sketchpad.engine import threads
from sketchpad.engine.inbox import Inbox
from sketchpad.engine.requests import (
    DEFAULT_HEAT_SIDE,
    DEFAULT_MASK_SIDE,
    FolderSummary,
    LabelRequest,
    LabelResult,
    LoadModel,
    MaskRequest,
    MaskResult,
    MatchRequest,
    MatchResult,
    ModelInfo,
    OpenFolder,
    QueryRequest,
    QueryResult,
    Request,
    SuggestRequest,
    SuggestResult,
)
from sketchpad.engine.worker import InferenceWorker, Loader
from sketchpad.search.model import ModelChoice
from sketchpad.search.shortlist import MIN_PHOTOS
from sketchpad.search.spec import Part, QuerySpec
from sketchpad.sketch.model import Sketch

log = logging.getLogger(__name__)


class Engine(QObject):
    """Runs models, indexing and queries off the GUI thread. Use it from the GUI thread.

    Args:
        loader: builds the segmenter of a LoadModel (default: the backbone registry).
        shortlist_from: folders of this many photos or more are read from their patch store
            and searched in two stages (default :data:`~sketchpad.search.shortlist.MIN_PHOTOS`;
            ``segment --shortlist-from``).
        parent: Qt parent (the thread is never a child: see :meth:`shutdown`).

    Signals (on the GUI thread; argument types as in :class:`InferenceWorker`):
        modelLoaded(ModelInfo), downloadProgress(int, int | None), bankChanged(int, int),
        indexProgress(int, int, int, float), indexFinished(FolderSummary),
        queryFinished(QueryResult), masksFinished(MaskResult), labelFinished(LabelResult),
        labelFailed(int, str, str), labelStatus(int, str), matchFinished(MatchResult),
        suggestFinished(SuggestResult),
        failed(int, str), notice(str), busyChanged(bool).
    """

    modelLoaded = Signal(object)
    downloadProgress = Signal(object, object)
    bankChanged = Signal(int, int)
    indexProgress = Signal(int, int, int, float)
    indexFinished = Signal(object)
    queryFinished = Signal(object)
    masksFinished = Signal(object)
    labelFinished = Signal(object)
    labelFailed = Signal(int, str, str)
    labelStatus = Signal(int, str)
    matchFinished = Signal(object)
    suggestFinished = Signal(object)
    failed = Signal(int, str)
    notice = Signal(str)
    busyChanged = Signal(bool)

    def __init__(
        self,
        *,
        loader: Loader | None = None,
        shortlist_from: int = MIN_PHOTOS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.inbox = Inbox()
        self._lock = threading.Lock()
        self._next_generation = 0
        self._latest_query = -1
        self._latest_folder = -1
        self._latest_masks: dict[str, int] = {}
        self._latest_label = -1
        self._latest_match = -1
        self._latest_suggest = -1
        self._recent_queries: deque[int] = deque(maxlen=1024)
        self._folder_request: OpenFolder | None = None
        self._shut_down = False
        self._joined = False

        self._thread = QThread()  # no parent: a parent's destructor would destroy it running
        self._thread.setObjectName("sketchpad-inference")
        self.worker = InferenceWorker(self.inbox, loader, shortlist_from=shortlist_from)
        self.worker.moveToThread(self._thread)
        self._thread.started.connect(self.worker.run)
        w = self.worker
        w.modelLoaded.connect(self._on_model_loaded)
        w.downloadProgress.connect(self.downloadProgress)
        w.bankChanged.connect(self._on_bank_changed)
        w.indexProgress.connect(self._on_index_progress)
        w.indexFinished.connect(self._on_index_finished)
        w.queryFinished.connect(self._on_query_finished)
        w.masksFinished.connect(self._on_masks_finished)
        w.labelFinished.connect(self._on_label_finished)
        w.labelFailed.connect(self._on_label_failed)
        w.labelStatus.connect(self._on_label_status)
        w.matchFinished.connect(self._on_match_finished)
        w.suggestFinished.connect(self._on_suggest_finished)
        w.failed.connect(self._on_failed)
        w.notice.connect(self.notice)
        w.busyChanged.connect(self.busyChanged)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_about_to_quit)
        threads.keep(self._thread, on_exit=self.inbox.stop)
        self._thread.start()

    # -- requests ----------------------------------------------------------------------------
    def submit(self, request: Request) -> int:
        """Send a request (its generation is replaced by a new one); returns the generation."""
        if self._shut_down:
            raise RuntimeError("the engine has been shut down")
        with self._lock:
            gen = self._next_generation
            self._next_generation += 1
        request = dataclasses.replace(request, generation=gen)
        if isinstance(request, QueryRequest):
            self._latest_query = gen
            self._recent_queries.append(gen)
        elif isinstance(request, MaskRequest):
            self._latest_masks[request.channel] = gen
        elif isinstance(request, LabelRequest):
            self._latest_label = gen
        elif isinstance(request, MatchRequest):
            self._latest_match = gen
        elif isinstance(request, SuggestRequest):
            self._latest_suggest = gen
        elif isinstance(request, OpenFolder):
            self._latest_folder = gen
            self._folder_request = request
        self.inbox.put(request)
        if isinstance(request, LoadModel) and self._folder_request is not None:
            self.submit(self._folder_request)  # the open folder, under the new model
        return gen

    def load_model(
        self,
        model: ModelChoice | str,
        *,
        weights: Path | None = None,
        device: str | None = None,
        pretrained: bool = True,
        offline: bool | None = None,
        input_size: int | None = None,
        fp16: bool = True,
    ) -> int:
        """Load a model for photo search: a :class:`ModelChoice`, or a backbone id with the
        options given here; returns the request's generation."""
        if isinstance(model, str):
            model = ModelChoice(
                backbone_id=model,
                weights=weights,
                device=device,
                pretrained=pretrained,
                offline=offline,
                input_size=input_size,
                fp16=fp16,
            )
        return self.submit(LoadModel(generation=0, model=model))

    def open_folder(
        self,
        folder: Path,
        *,
        recursive: bool = False,
        budget: int | str | None = None,
        batch_size: int = 8,
        rebuild: bool = False,
    ) -> int:
        """Open a photo folder and index it (see :class:`OpenFolder`)."""
        return self.submit(
            OpenFolder(
                generation=0,
                folder=Path(folder),
                recursive=recursive,
                budget=budget,
                batch_size=batch_size,
                rebuild=rebuild,
            )
        )

    def search(
        self,
        spec: QuerySpec,
        *,
        threshold: float | None = None,
        top_k: int = 0,
        mask_names: tuple[str, ...] = (),
        mask_side: int = DEFAULT_MASK_SIDE,
    ) -> int:
        """Query the open folder (see :class:`QueryRequest`); the newest query wins."""
        return self.submit(
            QueryRequest(
                generation=0,
                spec=spec,
                threshold=threshold,
                top_k=top_k,
                mask_names=tuple(mask_names),
                mask_side=mask_side,
            )
        )

    def query(
        self,
        sketch: Sketch | None,
        *,
        part: Part | None = None,
        text: str | None = None,
        alpha: float = 0.5,
        compose: bool = False,
        groups: tuple[tuple[str, ...], ...] | None = None,
        threshold: float | None = None,
        top_k: int = 0,
        mask_names: tuple[str, ...] = (),
        mask_side: int = DEFAULT_MASK_SIDE,
    ) -> int:
        """:meth:`search` with the spec's fields given by name."""
        spec = QuerySpec(
            sketch=sketch, part=part, text=text, alpha=alpha, compose=compose, groups=groups
        )
        return self.search(
            spec, threshold=threshold, top_k=top_k, mask_names=mask_names, mask_side=mask_side
        )

    def request_masks(
        self,
        names: tuple[str, ...],
        *,
        side: int | None = DEFAULT_MASK_SIDE,
        crf: bool = False,
        channel: str = "gallery",
        threshold: float | None = None,
    ) -> int:
        """Masks of more photos under the latest query (see :class:`MaskRequest`)."""
        return self.submit(
            MaskRequest(
                generation=0,
                query_generation=self._latest_query,
                names=tuple(names),
                side=side,
                crf=crf,
                channel=channel,
                threshold=threshold,
            )
        )

    def label(self, sketch: Sketch, labels: tuple[str, ...], model: ModelChoice) -> int:
        """Label a scene sketch with the CLIP backbone ``model`` (see :class:`LabelRequest`);
        the newest label request wins."""
        return self.submit(LabelRequest(generation=0, sketch=sketch, labels=labels, model=model))

    @property
    def latest_label_generation(self) -> int:
        return self._latest_label

    def match(
        self,
        photo: Path,
        sketch: Sketch,
        points: tuple[tuple[float, float], ...],
        *,
        reverse: bool = False,
        heat_side: int = DEFAULT_HEAT_SIDE,
    ) -> int:
        """Match points of the sketch on ``photo`` (``reverse``: of the photo on the sketch)
        with the photo-search model (see :class:`MatchRequest`); the newest match wins."""
        return self.submit(
            MatchRequest(
                generation=0,
                photo=Path(photo),
                sketch=sketch,
                sketch_key=QuerySpec(sketch=sketch).key(),
                points=tuple(points),
                reverse=reverse,
                heat_side=heat_side,
            )
        )

    @property
    def latest_match_generation(self) -> int:
        return self._latest_match

    def suggest(
        self,
        sketch: Sketch,
        model: ModelChoice,
        *,
        recognition_head: Path | None = None,
        top_k: int = 5,
    ) -> int:
        """Label suggestions for a scene sketch: zero-shot with ``model``, or by the
        recognition head named (see :class:`SuggestRequest`); the newest wins. Failures
        arrive on ``labelFailed`` and statuses on ``labelStatus`` with its generation."""
        return self.submit(
            SuggestRequest(
                generation=0,
                sketch=sketch,
                model=model,
                recognition_head=None if recognition_head is None else Path(recognition_head),
                top_k=top_k,
            )
        )

    def cancel_indexing(self) -> None:
        """Stop indexing the open folder after the batch in flight (what is cached stays)."""
        self.inbox.cancel_indexing(self._latest_folder)

    @property
    def latest_query_generation(self) -> int:
        return self._latest_query

    @property
    def is_running(self) -> bool:
        """Whether the worker thread is running."""
        return self._thread.isRunning()

    # -- test hooks and shutdown -------------------------------------------------------------
    def wait_until_idle(self, timeout_s: float = 10.0) -> bool:
        """Process events until the worker has nothing to do and its signals are delivered;
        returns False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            QCoreApplication.processEvents()
            if self.inbox.idle() or not self.is_running:
                QCoreApplication.processEvents()  # what the worker emitted before going idle
                QCoreApplication.processEvents()
                return True
            if time.monotonic() >= deadline:
                return False
            self.inbox.wait_idle(0.01)

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop the worker and join its thread; returns whether it ended within ``timeout_s``
        (if not, it is joined at exit). Idempotent."""
        if not self._shut_down:
            self._shut_down = True
            self.inbox.stop()
            self._thread.quit()
        if not self._joined:
            self._joined = bool(self._thread.wait(max(0, int(timeout_s * 1000))))
            if self._joined:
                threads.release(self._thread)
                log.debug("inference thread joined")
            else:
                log.error("the inference thread did not stop within %.1f s", timeout_s)
        return self._joined

    @Slot()
    def _on_about_to_quit(self) -> None:
        self.shutdown()

    # -- the worker's signals, filtered ------------------------------------------------------
    @Slot(object)
    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.modelLoaded.emit(info)

    @Slot(int, int)
    def _on_bank_changed(self, generation: int, photos: int) -> None:
        if generation == self._latest_folder:
            self.bankChanged.emit(generation, photos)

    @Slot(int, int, int, float)
    def _on_index_progress(self, generation: int, done: int, total: int, eta_s: float) -> None:
        if generation == self._latest_folder:
            self.indexProgress.emit(generation, done, total, eta_s)

    @Slot(object)
    def _on_index_finished(self, summary: FolderSummary) -> None:
        if summary.generation == self._latest_folder:
            self.indexFinished.emit(summary)

    @Slot(object)
    def _on_query_finished(self, result: QueryResult) -> None:
        if result.generation != self._latest_query:
            log.debug("dropping stale query result %d", result.generation)
            return
        self.queryFinished.emit(result)

    @Slot(object)
    def _on_masks_finished(self, result: MaskResult) -> None:
        if (
            result.query_generation != self._latest_query
            or result.generation != self._latest_masks.get(result.channel)
        ):
            log.debug("dropping stale masks %d", result.generation)
            return
        self.masksFinished.emit(result)

    @Slot(object)
    def _on_label_finished(self, result: LabelResult) -> None:
        if result.request.generation == self._latest_label:
            self.labelFinished.emit(result)

    @Slot(int, str, str)
    def _on_label_failed(self, generation: int, kind: str, message: str) -> None:
        if generation in (self._latest_label, self._latest_suggest):
            self.labelFailed.emit(generation, kind, message)

    @Slot(object)
    def _on_suggest_finished(self, result: SuggestResult) -> None:
        if result.request.generation == self._latest_suggest:
            self.suggestFinished.emit(result)

    @Slot(object)
    def _on_match_finished(self, result: MatchResult) -> None:
        if result.request.generation == self._latest_match:
            self.matchFinished.emit(result)

    @Slot(int, str)
    def _on_label_status(self, generation: int, text: str) -> None:
        if generation in (self._latest_label, self._latest_suggest):
            self.labelStatus.emit(generation, text)

    @Slot(int, str)
    def _on_failed(self, generation: int, message: str) -> None:
        if generation in self._recent_queries and generation != self._latest_query:
            log.debug("dropping the failure of superseded query %d: %s", generation, message)
            return
        self.failed.emit(generation, message)
