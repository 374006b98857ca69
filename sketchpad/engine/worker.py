"""The inference worker: one long-lived object on its own QThread that owns the model.

The worker's :meth:`InferenceWorker.run` loop takes requests from an
:class:`~sketchpad.engine.inbox.Inbox` (newest query wins, the rest in order) and answers with
signals. It never touches a widget; results are frozen dataclasses of numpy arrays
(:mod:`sketchpad.engine.requests`), delivered to the GUI thread by Qt's queued connections.

- **Indexing** (OpenFolder) runs ``sketchpad.gallery.index.index_folder`` batch by batch. Its
  progress callback runs between batches: the bank grows with the photos just cached, any
  pending query or mask request is answered (a query overtakes indexing), and cancellation,
  a newer folder or model, or a stop ends the run (the batch in flight is committed first, so
  the cache is always consistent).
- **Newest wins**: a result is emitted only if no newer query was asked for meanwhile; mask
  loops check between photos and give up early.
- **Errors**: every exception while handling a request becomes ``failed(generation, message)``
  with a readable message naming the model, folder or file; the loop then takes the next
  request. (An exception escaping a QThread would vanish and leave the GUI waiting.)
- **Out of memory** on the accelerator: the indexing batch is halved down to 1, then the model
  moves to the CPU (:mod:`sketchpad.engine.oom`); a query retries on the CPU. ``notice`` says so.
- **Stop**: ``Inbox.stop()`` ends the loop after the request (or indexing batch) in flight; the
  worker then releases the model and the cache, moves itself back to the main thread and quits
  its thread, which the :class:`~sketchpad.engine.client.Engine` joins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from sketchpad.engine.inbox import Inbox
from sketchpad.engine.oom import AdaptiveEmbedder, retry_on_cpu
from sketchpad.engine.requests import (
    FolderSummary,
    LoadModel,
    MaskRequest,
    MaskResult,
    ModelInfo,
    OpenFolder,
    QueryRequest,
    QueryResult,
    Request,
)
from sketchpad.engine.session import FolderSession
from sketchpad.gallery.cache import CacheError
from sketchpad.gallery.images import PhotoError, load_photo
from sketchpad.gallery.index import IndexSummary, index_folder, model_key
from sketchpad.gallery.query import memory_budget
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.errors import WeightsError
from sketchpad.vision.features import PhotoFeatures, normalize
from sketchpad.vision.segmenter import GalleryScores, PhotoMask, Segmenter
from sketchpad.vision.segmenter import Query as QueryVector

log = logging.getLogger(__name__)

#: (bytes done, bytes total or None) while weights download.
DownloadFn = Callable[[int, int | None], None]
#: Builds the segmenter a LoadModel asks for (tests pass stand-ins).
Loader = Callable[[LoadModel, DownloadFn], Segmenter]


class EngineError(Exception):
    """A request that cannot be answered in the worker's state (no model, no folder)."""


class _Cancelled(Exception):
    """Raised by the indexing progress callback: stop after the batch just committed."""


def default_loader(request: LoadModel, progress: DownloadFn) -> Segmenter:
    """Build the backbone a LoadModel names (``create_backbone``) and a segmenter on it.

    Weights that are one of our segmenter checkpoints (imported with their JSON) bring their
    calibration, tau, patch path and input size (:mod:`sketchpad.vision.checkpoints`); the
    request's calibration and input size, when given, win."""
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.checkpoints import segmenter_options

    backbone = create_backbone(
        request.backbone_id,
        weights=request.weights,
        device=request.device,
        pretrained=request.pretrained,
        offline=request.offline,
        progress=progress,
        fp16=request.fp16,
    )
    options = {"patch_path": request.patch_path, **segmenter_options(backbone.weights.path)}
    if request.calibration is not None:
        options["calibration"] = request.calibration
    if request.input_size is not None:
        options["input_size"] = request.input_size
    return Segmenter(backbone, **options)


def mask_hw(photo_hw: tuple[int, int], side: int | None) -> tuple[int, int]:
    """The (h, w) of a photo's mask whose long side is ``side`` (None: the photo's size)."""
    h, w = photo_hw
    if side is None:
        return (h, w)
    s = side / max(h, w)
    return (max(1, round(h * s)), max(1, round(w * s)))


@dataclass(frozen=True)
class _Answered:
    """The last query delivered: what later mask requests use."""

    generation: int
    folder: Path
    scores: tuple[GalleryScores, ...]
    bank: FeatureBank
    index_of: dict[str, int]
    threshold: float


def _content(request: QueryRequest) -> tuple[object, ...]:
    """What a query's vectors depend on (not the threshold, nor the masks asked for)."""
    return (
        request.sketch,
        request.part,
        request.text,
        request.alpha,
        request.compose,
        request.groups,
    )


@dataclass(frozen=True, eq=False)
class _Encoded:
    """The last query scored: a query that differs only in its threshold or the masks it asks
    for reuses its vectors (no model run) and, while the bank is unchanged, its product."""

    segmenter: Segmenter
    content: tuple[object, ...]
    bank: FeatureBank
    patches: int
    scores: tuple[GalleryScores, ...]


class _Eta:
    def __init__(self) -> None:
        self.t0: float | None = None

    def __call__(self, done: int, total: int) -> float:
        now = time.perf_counter()
        if self.t0 is None or done <= 0:
            self.t0 = now if self.t0 is None else self.t0
            return -1.0
        rate = done / max(now - self.t0, 1e-9)
        return (total - done) / rate


class InferenceWorker(QObject):
    """Owns the segmenter and the open folder's bank; lives on its own QThread.

    Args:
        inbox: where requests arrive.
        loader: builds segmenters for LoadModel requests (default: :func:`default_loader`).

    Signals:
        modelLoaded(ModelInfo): a LoadModel finished.
        downloadProgress(int, int | None): weights download bytes (done, total).
        bankChanged(int, int): (OpenFolder generation, photos now queryable).
        indexProgress(int, int, int, float): (OpenFolder generation, done, to do, ETA in
            seconds or −1).
        indexFinished(FolderSummary): an OpenFolder finished (also when cancelled or failed).
        queryFinished(QueryResult): a query's answer (never a stale one).
        masksFinished(MaskResult): a MaskRequest's masks.
        failed(int, str): (generation, readable message) of a request that failed.
        notice(str): something the user should know (fell back to a smaller batch, the CPU).
        busyChanged(bool): working / waiting for requests.
        stopped(): the loop has ended (the thread is about to quit).
    """

    modelLoaded = Signal(object)
    downloadProgress = Signal(object, object)
    bankChanged = Signal(int, int)
    indexProgress = Signal(int, int, int, float)
    indexFinished = Signal(object)
    queryFinished = Signal(object)
    masksFinished = Signal(object)
    failed = Signal(int, str)
    notice = Signal(str)
    busyChanged = Signal(bool)
    stopped = Signal()

    def __init__(self, inbox: Inbox, loader: Loader | None = None) -> None:
        super().__init__()
        self.inbox = inbox
        self._loader: Loader = loader or default_loader
        self._segmenter: Segmenter | None = None
        self._session: FolderSession | None = None
        self._indexing = False
        self._batch_cap: int | None = None  # learned from out-of-memory, per model
        self._last: _Answered | None = None
        self._encoded: _Encoded | None = None
        self._busy = False

    # -- the loop ----------------------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        """Answer requests until the inbox is stopped (connected to ``QThread.started``)."""
        log.debug("inference worker started")
        try:
            while (request := self.inbox.take()) is not None:
                self._set_busy(True)
                try:
                    self._handle(request)
                finally:
                    if not self.inbox.pending():  # said before idle: wait_until_idle sees it
                        self._set_busy(False)
                    self.inbox.done()
        finally:
            self._release()
            self._set_busy(False)
            log.debug("inference worker stopped")
            self.stopped.emit()
            app = QCoreApplication.instance()
            if app is not None:  # so that it can be deleted from the main thread
                self.moveToThread(app.thread())
            QThread.currentThread().quit()

    def _handle(self, request: Request) -> None:
        try:
            if isinstance(request, LoadModel):
                self._load_model(request)
            elif isinstance(request, OpenFolder):
                self._open_folder(request)
            elif isinstance(request, QueryRequest):
                self._run_query(request)
            elif isinstance(request, MaskRequest):
                self._make_masks(request)
            else:
                raise TypeError(f"unknown request {request!r}")
        except Exception as e:
            self._fail(request, e)

    def _fail(self, request: Request, e: Exception) -> None:
        if isinstance(request, QueryRequest) and self.inbox.is_stale_query(request.generation):
            log.debug("stale query %d failed (%s); not reported", request.generation, e)
            return
        if isinstance(request, MaskRequest) and self.inbox.is_stale_mask(request):
            log.debug("stale mask request %d failed (%s)", request.generation, e)
            return
        message = self.describe(request, e)
        self.failed.emit(request.generation, message)

    def describe(self, request: Request, e: Exception) -> str:
        """A readable message for ``e`` raised while handling ``request``."""
        model = self._segmenter.backbone.spec.id if self._segmenter is not None else "no model"
        if isinstance(request, LoadModel):
            context = f"Could not load the model {request.backbone_id}"
        elif isinstance(request, OpenFolder):
            context = f"Could not open the folder {request.folder}"
        elif isinstance(request, QueryRequest):
            context = f"The query failed (model {model})"
        else:
            context = f"Could not make the masks (model {model})"
        if isinstance(e, EngineError):
            return str(e)
        if isinstance(e, KeyError) and e.args:
            detail = str(e.args[0])
        elif isinstance(e, (WeightsError, CacheError, PhotoError, ValueError, OSError)):
            detail = str(e)
        else:  # our bug, or the library's: keep the traceback in the log
            log.error("%s", context, exc_info=e)
            return f"{context}: {type(e).__name__}: {e}"
        log.warning("%s: %s", context, detail)
        return f"{context}: {detail}"

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    def _release(self) -> None:
        self._close_folder()
        self._segmenter = None
        self._last = None

    def _close_folder(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None
        self._last = None
        self._encoded = None

    def _require_model(self) -> Segmenter:
        if self._segmenter is None:
            raise EngineError("No model is loaded: choose a model first.")
        return self._segmenter

    def _require_folder(self) -> FolderSession:
        if self._session is None:
            raise EngineError("No photo folder is open: open a folder first.")
        return self._session

    # -- models ------------------------------------------------------------------------------
    def _load_model(self, request: LoadModel) -> None:
        t0 = time.perf_counter()

        def progress(done: int, total: int | None) -> None:
            self.downloadProgress.emit(done, total)

        segmenter = self._loader(request, progress)  # the old model stays if this fails
        self._close_folder()  # its features belong to the old model
        self._segmenter = segmenter
        self._batch_cap = None
        bb = segmenter.backbone
        self.modelLoaded.emit(
            ModelInfo(
                generation=request.generation,
                backbone_id=bb.spec.id,
                device=str(bb.device),
                weights_source=bb.weights.source,
                weights_sha256=bb.weights.sha256,
                embed_dim=bb.embed_dim,
                has_text=bb.has_text,
                seconds=time.perf_counter() - t0,
            )
        )

    # -- folders -----------------------------------------------------------------------------
    def _open_folder(self, request: OpenFolder) -> None:
        segmenter = self._require_model()
        budget = memory_budget(request.budget)
        folder = Path(request.folder)
        self._close_folder()
        session = FolderSession(folder, model_key(segmenter), budget)
        self._session = session
        batch = min(request.batch_size, self._batch_cap or request.batch_size)
        embedder = AdaptiveEmbedder(segmenter, batch, self.notice.emit)
        eta = _Eta()

        committed: list[tuple[str, PhotoFeatures]] = []

        def on_batch(done: int, total: int) -> None:
            batch = committed.copy()
            committed.clear()
            self._between_batches(request, session, batch, done, total, eta(done, total))

        summary: IndexSummary | None = None
        cancelled, error = False, None
        self._indexing = True
        try:
            summary = index_folder(
                folder,
                embedder,
                recursive=request.recursive,
                rebuild=request.rebuild,
                batch_size=request.batch_size,
                progress=on_batch,
                on_batch=committed.extend,  # the features of each batch, once committed
            )
        except _Cancelled as e:
            cancelled = True
            log.info("indexing %s stopped: %s", folder, e)
        except Exception as e:  # the gallery stays usable with what is cached
            error = self.describe(request, e)
            self.failed.emit(request.generation, error)
        finally:
            self._indexing = False
            if embedder.batch_size < batch:
                self._batch_cap = embedder.batch_size
        if self.inbox.stopped:
            return
        if not session.loaded or session.needs_reload:
            session.load()
        self.bankChanged.emit(request.generation, len(session))
        self.indexFinished.emit(
            FolderSummary(request.generation, folder, len(session), summary, cancelled, error)
        )

    def _between_batches(
        self,
        request: OpenFolder,
        session: FolderSession,
        batch: list[tuple[str, PhotoFeatures]],
        done: int,
        total: int,
        eta_s: float,
    ) -> None:
        """index_folder's progress callback: runs after each committed batch."""
        if not session.loaded:  # first call: stale rows are gone, the new ones not yet there
            session.load()
            self.bankChanged.emit(request.generation, len(session))
        elif session.grow(batch):
            self.bankChanged.emit(request.generation, len(session))
        self.indexProgress.emit(request.generation, done, total, eta_s)
        while (urgent := self.inbox.take_urgent()) is not None:  # queries overtake indexing
            try:
                self._handle(urgent)
            finally:
                self.inbox.done()
        if self.inbox.indexing_cancelled(request.generation):
            raise _Cancelled("stopped" if self.inbox.stopped else "cancelled")
        if self.inbox.has_queued_job():
            raise _Cancelled("superseded by a newer folder or model")

    # -- queries -----------------------------------------------------------------------------
    def _query_vectors(self, segmenter: Segmenter, request: QueryRequest) -> list[QueryVector]:
        if request.sketch is None:
            return [segmenter.text_query(request.text or "")]
        if not request.compose:
            q = segmenter.sketch_query(
                request.sketch, part=request.part, text=request.text, alpha=request.alpha
            )
            return [q]
        queries = segmenter.group_queries(request.sketch, request.groups)
        if request.text and request.text.strip():
            t, a = segmenter.text_query(request.text).embedding, request.alpha
            queries = [
                QueryVector(
                    normalize(a * q.embedding + (1 - a) * t), f"{q.label} + text", q.stroke_ids
                )
                for q in queries
            ]
        return queries

    def _run_query(self, request: QueryRequest) -> None:
        t0 = time.perf_counter()
        segmenter = self._require_model()
        session = self._require_folder()
        threshold = request.threshold or segmenter.threshold
        content = _content(request)
        reuse = self._encoded
        bank = session.bank
        if reuse is not None and reuse.segmenter is segmenter and reuse.content == content:
            if reuse.bank is bank and reuse.patches == bank.rows:
                # only the threshold (or the masks asked for) changed: no model, no product
                scores = tuple(
                    segmenter.rescore(s, bank, threshold=threshold) for s in reuse.scores
                )
            else:  # the bank grew while indexing: the same query vectors, a new product
                scores = tuple(
                    segmenter.score(s.query, bank, threshold=threshold) for s in reuse.scores
                )
        else:
            vectors = retry_on_cpu(
                segmenter,
                "a query",
                lambda: self._query_vectors(segmenter, request),
                self.notice.emit,
            )
            if self.inbox.is_stale_query(request.generation):
                log.debug("query %d superseded before scoring", request.generation)
                return
            scores = tuple(segmenter.score(q, bank, threshold=threshold) for q in vectors)
        self._encoded = _Encoded(segmenter, content, bank, bank.rows, scores)
        photo_scores = scores[0].photo_scores
        if len(scores) > 1:
            photo_scores = np.max(np.stack([s.photo_scores for s in scores]), axis=0)
        ranking = np.argsort(-photo_scores, kind="stable")
        names, index_of = session.names(), session.index_of()
        wanted = [names[i] for i in ranking[: request.top_k]]
        wanted += [n for n in request.mask_names if n in index_of]
        masks: dict[str, PhotoMask] = {}
        for name in dict.fromkeys(wanted):
            if self.inbox.is_stale_query(request.generation):
                log.debug("query %d superseded while making masks", request.generation)
                return
            i = index_of[name]
            hw = mask_hw(session.bank.layouts[i].photo_hw, request.mask_side)
            masks[name] = segmenter.composed_mask(
                list(scores), session.bank, i, out_hw=hw, threshold=threshold
            )
        if self.inbox.is_stale_query(request.generation):
            log.debug("query %d superseded; result dropped", request.generation)
            return
        self._last = _Answered(
            request.generation, session.folder, scores, session.bank, index_of, threshold
        )
        self.queryFinished.emit(
            QueryResult(
                generation=request.generation,
                folder=session.folder,
                names=names,
                photo_scores=photo_scores,
                ranking=ranking,
                masks=masks,
                scores=scores,
                threshold=threshold,
                indexing=self._indexing,
                seconds=time.perf_counter() - t0,
            )
        )

    def _make_masks(self, request: MaskRequest) -> None:
        segmenter = self._require_model()
        last = self._last
        if last is None or last.generation != request.query_generation:
            log.debug(
                "mask request %d: query %d is not the one answered last",
                request.generation,
                request.query_generation,
            )
            return
        bank = last.bank  # grown in place since, or replaced by a reload: indices still hold
        masks: dict[str, PhotoMask] = {}
        for name in request.names:
            if self.inbox.is_stale_mask(request):
                return
            i = last.index_of.get(name)
            if i is None:
                continue
            hw = mask_hw(bank.layouts[i].photo_hw, request.side)
            photo = load_photo(last.folder / name) if request.crf else None
            masks[name] = segmenter.composed_mask(
                list(last.scores),
                bank,
                i,
                photo=photo,
                crf=request.crf,
                out_hw=hw,
                threshold=last.threshold,
            )
        if self.inbox.is_stale_mask(request):
            return
        self.masksFinished.emit(
            MaskResult(request.generation, request.query_generation, request.channel, masks)
        )
