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
- **Queries** go through the search core (:class:`sketchpad.search.core.SearchCore`): the query
  vectors are kept by the query's key and the scores by the bank, so a query that only differs
  in what the model does not see costs no forward, and on an unchanged bank no product either.
- **Scene labelling** (LabelRequest) runs here too, on the same thread: it labels with the CLIP
  backbone the request names, which is the photo-search model itself when that is the same
  backbone (one model in memory, not two).
- **Sketch–photo correspondence** (MatchRequest) runs on the photo-search model's backbone
  (no other model is loaded), with :mod:`sketchpad.vision.fusion.correspond` as
  ``sketchpad correspond`` does; the features of the photo and of the sketch are kept by
  photo file, sketch key and model, so a second click costs no forward.
- **Label suggestions** (SuggestRequest) use the labelling model (zero-shot), or a trained
  recognition head whose fused backbone the loader builds (kept while the file is unchanged);
  a head that cannot be used leaves a note and the suggestions are zero-shot.
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
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from sketchpad.engine.heap import long_lived
from sketchpad.engine.inbox import Inbox
from sketchpad.engine.oom import AdaptiveEmbedder, retry_on_cpu
from sketchpad.engine.requests import (
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
from sketchpad.engine.session import FolderSession
from sketchpad.gallery.cache import CacheError
from sketchpad.gallery.images import PhotoError, load_photo
from sketchpad.gallery.index import IndexSummary, index_folder, model_key
from sketchpad.gallery.query import memory_budget
from sketchpad.search.core import SearchCore, SearchResult
from sketchpad.search.masks import PhotoMask, mask_hw
from sketchpad.search.model import ModelChoice, build_segmenter
from sketchpad.search.shortlist import MIN_PHOTOS
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.errors import WeightsError
from sketchpad.vision.features import PhotoFeatures
from sketchpad.vision.segmenter import Segmenter

if TYPE_CHECKING:
    from sketchpad.vision.backbone import Backbone
    from sketchpad.vision.fusion.correspond import FeatureCache
    from sketchpad.vision.fusion.recognise import Recogniser
    from sketchpad.vision.scene import SceneLabeller

log = logging.getLogger(__name__)

#: (bytes done, bytes total or None) while weights download.
DownloadFn = Callable[[int, "int | None"], None]
#: Builds the segmenter a model choice asks for (tests pass stand-ins).
Loader = Callable[[ModelChoice, DownloadFn], Segmenter]


class EngineError(Exception):
    """A request that cannot be answered in the worker's state (no model, no folder)."""


class _Cancelled(Exception):
    """Raised by the indexing progress callback: stop after the batch just committed."""


def default_loader(choice: ModelChoice, progress: DownloadFn) -> Segmenter:
    """:func:`sketchpad.search.model.build_segmenter` (the registry, the checkpoint's
    settings, the weights resolved as DESIGN §4.1 says)."""
    return build_segmenter(choice, progress)


def _same_backbone(choice: ModelChoice, loaded: ModelChoice) -> bool:
    """Whether a model loaded for ``loaded`` has the backbone ``choice`` asks for (same
    weights, device and precision); calibration and input size do not matter to labelling."""
    return (
        choice.backbone_id == loaded.backbone_id
        and choice.weights == loaded.weights
        and choice.checkpoint == loaded.checkpoint
        and choice.device == loaded.device
        and choice.fp16 == loaded.fp16
        and choice.pretrained == loaded.pretrained
    )


@dataclass(frozen=True)
class _Answered:
    """The last query delivered: what later mask requests use."""

    generation: int
    folder: Path
    result: SearchResult
    bank: FeatureBank
    index_of: dict[str, int]
    threshold: float


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
        shortlist_from: the search core's ``min_photos`` (large folders: the patch store and
            the two-stage query).

    Signals:
        modelLoaded(ModelInfo): a LoadModel finished.
        downloadProgress(int, int | None): weights download bytes (done, total).
        bankChanged(int, int): (OpenFolder generation, photos now queryable).
        indexProgress(int, int, int, float): (OpenFolder generation, done, to do, ETA in
            seconds or −1).
        indexFinished(FolderSummary): an OpenFolder finished (also when cancelled or failed).
        queryFinished(QueryResult): a query's answer (never a stale one).
        masksFinished(MaskResult): a MaskRequest's masks.
        labelFinished(LabelResult): a LabelRequest's labelling (never a stale one).
        labelFailed(int, str, str): (generation, kind, message) of a LabelRequest that failed;
            kind "weights" (no usable weights: the message says how to get them), "input" (a
            sketch or labels the labeller refuses) or "error".
        labelStatus(int, str): (generation, what labelling is doing: loading, downloading).
        suggestFinished(SuggestResult): a SuggestRequest's suggestions (failures go to
            ``labelFailed``, statuses to ``labelStatus``, with its generation).
        matchFinished(MatchResult): a MatchRequest's matches (never a stale one; failures go
            to ``failed``).
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
    labelFinished = Signal(object)
    labelFailed = Signal(int, str, str)
    labelStatus = Signal(int, str)
    matchFinished = Signal(object)
    suggestFinished = Signal(object)
    failed = Signal(int, str)
    notice = Signal(str)
    busyChanged = Signal(bool)
    stopped = Signal()

    def __init__(
        self, inbox: Inbox, loader: Loader | None = None, *, shortlist_from: int = MIN_PHOTOS
    ) -> None:
        super().__init__()
        self._shortlist_from = int(shortlist_from)
        self.inbox = inbox
        self._loader: Loader = loader or default_loader
        self._segmenter: Segmenter | None = None
        self._model: ModelChoice | None = None  # what the segmenter was loaded for
        self._core: SearchCore | None = None
        self._session: FolderSession | None = None
        self._indexing = False
        self._batch_cap: int | None = None  # learned from out-of-memory, per model
        self._last: _Answered | None = None
        self._labeller: tuple[ModelChoice, SceneLabeller] | None = None
        self._matching: FeatureCache | None = None  # correspondence features, this model's
        self._recogniser: tuple[tuple[object, ...], Recogniser] | None = None  # (file key, …)
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
            elif isinstance(request, LabelRequest):
                self._label(request)
            elif isinstance(request, MatchRequest):
                self._match(request)
            elif isinstance(request, SuggestRequest):
                self._suggest(request)
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
        if isinstance(request, MatchRequest) and self.inbox.is_stale_match(request.generation):
            log.debug("stale match request %d failed (%s)", request.generation, e)
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
        elif isinstance(request, MatchRequest):
            context = f"Could not match points on {request.photo.name} (model {model})"
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
        self._segmenter = self._core = self._model = None
        self._labeller = None
        self._matching = None
        self._recogniser = None
        self._last = None

    def _close_folder(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None
        self._last = None
        if self._core is not None:
            self._core.forget()

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

        choice = request.model
        shared = self._labeller
        if shared is not None and _same_backbone(choice, shared[0]):  # one model, not two
            segmenter = self._segmenter_on(shared[1].backbone, choice)
        else:
            with long_lived(f"loading {choice.backbone_id}"):  # see sketchpad.engine.heap
                segmenter = self._loader(choice, progress)  # the old model stays if this fails
        self._close_folder()  # its features belong to the old model
        self._segmenter, self._model = segmenter, choice
        self._core = SearchCore(segmenter, min_photos=self._shortlist_from)
        self._matching = None  # the old model's features
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

    @staticmethod
    def _segmenter_on(backbone: Backbone, choice: ModelChoice) -> Segmenter:
        """A segmenter for ``choice`` on a backbone that is already loaded."""
        from sketchpad.search.model import resolve_choice, segmenter_settings

        options = resolve_choice(choice)[2]
        return Segmenter(backbone, **segmenter_settings(choice, backbone.weights.path, options))

    # -- folders -----------------------------------------------------------------------------
    def _open_folder(self, request: OpenFolder) -> None:
        segmenter = self._require_model()
        budget = memory_budget(request.budget)
        folder = Path(request.folder)
        self._close_folder()
        core = self._core
        assert core is not None  # set with the segmenter
        session = FolderSession(
            folder, model_key(segmenter), budget, exact=core.exact, min_photos=core.min_photos
        )
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
        if not session.loaded or session.needs_reload or session.wants_store:
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
    def _run_query(self, request: QueryRequest) -> None:
        t0 = time.perf_counter()
        segmenter = self._require_model()
        session = self._require_folder()
        core = self._core
        assert core is not None  # set with the segmenter
        threshold = request.threshold or segmenter.threshold
        spec = request.spec
        if not core.is_encoded(spec):
            retry_on_cpu(segmenter, "a query", lambda: core.encode(spec), self.notice.emit)
            if self.inbox.is_stale_query(request.generation):
                log.debug("query %d superseded before scoring", request.generation)
                return
        bank = session.bank
        result = core.search(spec, bank)
        names, index_of = session.names(), session.index_of()
        wanted = [names[i] for i in result.ranking[: request.top_k]]
        wanted += [n for n in request.mask_names if n in index_of]
        masks: dict[str, PhotoMask] = {}
        for name in dict.fromkeys(wanted):
            if self.inbox.is_stale_query(request.generation):
                log.debug("query %d superseded while making masks", request.generation)
                return
            i = index_of[name]
            hw = mask_hw(bank.layouts[i].photo_hw, request.mask_side)
            masks[name] = core.mask(result, bank, i, threshold=threshold, out_hw=hw)
        if self.inbox.is_stale_query(request.generation):
            log.debug("query %d superseded; result dropped", request.generation)
            return
        self._last = _Answered(
            request.generation, session.folder, result, bank, index_of, threshold
        )
        self.queryFinished.emit(
            QueryResult(
                generation=request.generation,
                folder=session.folder,
                names=names,
                photo_scores=result.photo_scores,
                ranking=result.ranking,
                masks=masks,
                scores=result.scores,
                threshold=threshold,
                indexing=self._indexing,
                seconds=time.perf_counter() - t0,
                key=result.key,
            )
        )

    def _make_masks(self, request: MaskRequest) -> None:
        self._require_model()
        core, last = self._core, self._last
        if core is None or last is None or last.generation != request.query_generation:
            log.debug(
                "mask request %d: query %d is not the one answered last",
                request.generation,
                request.query_generation,
            )
            return
        bank = last.bank  # grown in place since, or replaced by a reload: indices still hold
        threshold = request.threshold or last.threshold
        masks: dict[str, PhotoMask] = {}
        for name in request.names:
            if self.inbox.is_stale_mask(request):
                return
            i = last.index_of.get(name)
            if i is None:
                continue
            hw = mask_hw(bank.layouts[i].photo_hw, request.side)
            photo = load_photo(last.folder / name) if request.crf else None
            masks[name] = core.mask(
                last.result, bank, i, threshold=threshold, out_hw=hw, photo=photo, crf=request.crf
            )
        if self.inbox.is_stale_mask(request):
            return
        self.masksFinished.emit(
            MaskResult(
                generation=request.generation,
                query_generation=request.query_generation,
                channel=request.channel,
                masks=masks,
            )
        )

    # -- sketch–photo correspondence ---------------------------------------------------------
    def _match(self, request: MatchRequest) -> None:
        """Match the request's points (see :class:`MatchRequest`) with the photo-search model."""
        import numpy as np

        from sketchpad.search.masks import mask_hw
        from sketchpad.vision.fusion.correspond import FeatureCache, match_features, sketch_image

        t0 = time.perf_counter()
        segmenter = self._require_model()
        if request.sketch.bbox() is None:
            raise ValueError("the sketch is empty: draw something to match")
        side = segmenter.input_size
        if self._matching is None or self._matching.backbone is not segmenter.backbone:
            self._matching = FeatureCache(segmenter.backbone, input_size=side)
        cache = self._matching
        path = Path(request.photo)
        try:
            st = path.stat()
        except OSError:
            load_photo(path)  # raises PhotoError with the reason (missing, permission, …)
            raise
        photo_key = ("photo", str(path.resolve()), st.st_mtime_ns, st.st_size)
        sketch_key = ("sketch", request.sketch_key, side)
        before = cache.forwards
        sketch_f, photo_f = cache.features(
            [
                (sketch_key, lambda: sketch_image(request.sketch, side)),
                (photo_key, lambda: load_photo(path)),
            ]
        )
        if self.inbox.is_stale_match(request.generation):
            return
        pts = np.asarray(request.points, dtype=np.float64)
        if request.reverse:
            source, target = photo_f, sketch_f
        else:
            source, target = sketch_f, photo_f
            pts = pts * side
        corr = match_features(source, target, pts)
        targets = np.array([m.target for m in corr.matches], dtype=np.float64)
        if request.reverse:
            targets = targets / side
        heat = corr.heatmap(0, out_hw=mask_hw(target.photo_hw, request.heat_side))
        self.matchFinished.emit(
            MatchResult(
                request=request,
                targets=tuple((float(x), float(y)) for x, y in targets),
                confidences=tuple(m.confidence for m in corr.matches),
                heat=heat,
                photo_hw=photo_f.photo_hw,
                backbone_id=segmenter.backbone.spec.id,
                forwards=cache.forwards - before,
                seconds=time.perf_counter() - t0,
            )
        )

    # -- scene labelling ---------------------------------------------------------------------
    def _label(self, request: LabelRequest) -> None:
        """Label a scene sketch; failures go to ``labelFailed`` with their kind."""
        gen = request.generation
        try:
            labeller = self._labeller_for(request)
            if self.inbox.is_stale_label(gen):
                return
            t0 = time.perf_counter()
            result = labeller.label(request.sketch, request.labels)
            seconds = time.perf_counter() - t0
        except WeightsError as e:
            log.warning("labelling model unavailable: %s", e)
            self.labelFailed.emit(gen, "weights", str(e))
            return
        except (ValueError, KeyError) as e:
            self.labelFailed.emit(gen, "input", str(e).strip("'\""))
            return
        except Exception as e:  # every failure must reach the window
            log.exception("labelling failed")
            self.labelFailed.emit(gen, "error", f"{type(e).__name__}: {e}")
            return
        if self.inbox.is_stale_label(gen):
            return
        bb = labeller.backbone
        self.labelFinished.emit(
            LabelResult(
                request=request,
                labels=result,
                backbone_id=bb.spec.id,
                weights_sha256=bb.weights.sha256,
                seconds=seconds,
            )
        )

    def _suggest(self, request: SuggestRequest) -> None:
        """Label suggestions; failures go to ``labelFailed`` with their kind, as labelling's."""
        from sketchpad.vision.scene_suggest import suggest_labels

        gen = request.generation
        try:
            t0 = time.perf_counter()
            labeller = self._labeller_for(request)
            recogniser, note = None, None
            if request.recognition_head is not None:
                recogniser, note = self._recogniser_for(request)
            if self.inbox.is_stale_suggest(gen):
                return
            result = suggest_labels(
                labeller, request.sketch, top_k=request.top_k, recogniser=recogniser
            )
        except WeightsError as e:
            log.warning("suggestion model unavailable: %s", e)
            self.labelFailed.emit(gen, "weights", str(e))
            return
        except (ValueError, KeyError) as e:
            self.labelFailed.emit(gen, "input", str(e).strip("'\""))
            return
        except Exception as e:  # every failure must reach the window
            log.exception("suggesting labels failed")
            self.labelFailed.emit(gen, "error", f"{type(e).__name__}: {e}")
            return
        if not self.inbox.is_stale_suggest(gen):
            self.suggestFinished.emit(
                SuggestResult(request, result, note, time.perf_counter() - t0)
            )

    def _recogniser_for(self, request: SuggestRequest) -> tuple[Recogniser | None, str | None]:
        """The recognition head ``request`` names with its fused backbone, built by the
        engine's loader (kept while the file and the device are the same), or (None, why)."""
        from sketchpad.search.model import ModelChoice
        from sketchpad.vision.fusion.backbone import FusionBackbone
        from sketchpad.vision.fusion.recognise import (
            Recogniser,
            not_used_note,
            read_recognition_head,
        )

        path = Path(request.recognition_head or "")
        choice = request.model
        try:
            st = path.stat()
            key = (str(path.resolve()), st.st_mtime_ns, st.st_size, choice.device, choice.fp16,
                   choice.pretrained)  # fmt: skip
            if self._recogniser is not None and self._recogniser[0] == key:
                return self._recogniser[1], None
            self._recogniser = None
            head = read_recognition_head(path)
            self.labelStatus.emit(request.generation, f"Loading the recognition head {path.name}…")
            fused = ModelChoice(
                backbone_id=head.backbone_id,
                weights=path,
                device=choice.device,
                fp16=choice.fp16,
                pretrained=choice.pretrained,
                offline=choice.offline,
            )
            backbone = self._loader(fused, lambda done, total: None).backbone
            if not isinstance(backbone, FusionBackbone):
                raise WeightsError(path, f"loads as {backbone.spec.id}, not a fused backbone")
            recogniser = Recogniser(backbone, head)
        except FileNotFoundError:
            return None, not_used_note(path, WeightsError(path, "does not exist"))
        except (WeightsError, ValueError, KeyError, OSError) as e:
            log.warning("recognition head %s not used: %s", path, e)
            return None, not_used_note(path, e)
        self._recogniser = (key, recogniser)
        log.info("recognition head %s loaded (%s)", path, head.backbone_id)
        return recogniser, None

    def _labeller_for(self, request: LabelRequest | SuggestRequest) -> SceneLabeller:
        """The labeller on the backbone ``request.model`` names: the photo-search model's when
        it is the same backbone, the last labeller's when it is, else a new one (loaded with
        progress; the previous labelling backbone is released)."""
        from sketchpad.vision.scene import SceneLabeller

        choice = request.model
        if self._labeller is not None and _same_backbone(choice, self._labeller[0]):
            return self._labeller[1]
        if self._segmenter is not None and self._model is not None:
            if _same_backbone(choice, self._model):
                labeller = SceneLabeller(self._segmenter.backbone)
                self._labeller = (choice, labeller)
                return labeller
        gen = request.generation
        self._labeller = None  # release the old one before loading another
        self.labelStatus.emit(gen, f"Loading {choice.backbone_id} for labelling…")

        def progress(done: int, total: int | None) -> None:
            size = f" of {total / 2**20:.0f}" if total else ""
            self.labelStatus.emit(gen, f"Downloading weights: {done / 2**20:.0f}{size} MB")

        with long_lived(f"loading {choice.backbone_id} for labelling"):
            backbone = self._loader(choice, progress).backbone
        labeller = SceneLabeller(backbone)
        self._labeller = (choice, labeller)
        log.info("labelling model %s loaded", backbone.spec.id)
        return labeller
