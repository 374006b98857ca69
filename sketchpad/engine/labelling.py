"""Scene labelling as requests on the one inference engine: :class:`LabellingService`.

There is one model host in the app, the :class:`~sketchpad.engine.client.Engine` (one worker
thread). Scene labelling does not load a model of its own: it sends
:class:`~sketchpad.engine.requests.LabelRequest` s to that engine, naming the CLIP backbone the
user has chosen (and has weights for) with the device and fp16 preferences; when photo search
runs on the same backbone, the worker labels with that very model.

This class is the scene panel's handle on it (GUI thread): it numbers requests itself (the
engine may still be starting when the first one is made), hands them to the engine once it
exists (``when_ready``), and re-emits the engine's answers for the newest request only:

- ``resultReady(LabelResult)`` — the labelling, its ``request.generation`` being this
  service's number;
- ``failed(int generation, str kind, str message)`` — kind "weights" (no usable weights: the
  message says how to get them), "input" (a sketch or labels the labeller refuses) or "error";
- ``status(str)`` — what the worker is doing (loading, downloading);
- ``busyChanged(bool)``;
- ``suggestionsReady(SuggestResult)`` and ``suggestFailed(str kind, str message)`` — label
  suggestions (:meth:`LabellingService.suggest`: zero-shot, or by a recognition head), the
  newest request only.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot

from sketchpad.sketch.model import Sketch

if TYPE_CHECKING:  # the window imports this at start: no torch, no OpenCV here
    from sketchpad.engine.client import Engine
    from sketchpad.engine.requests import LabelResult, SuggestResult
    from sketchpad.search.model import ModelChoice

log = logging.getLogger(__name__)

FailureKind = Literal["weights", "input", "error"]


class EngineHostLike(Protocol):
    """What the service needs of the window's engine host (``ui.engine_host.EngineHost``)."""

    @property
    def engine(self) -> Engine | None: ...

    def when_ready(self, fn: Callable[[Engine], None]) -> None: ...


class LabellingService(QObject):
    """Scene labelling through the engine (see the module docstring). GUI thread only.

    Args:
        host: gives the engine once it exists.
        model: the CLIP backbone to label with, asked at each request (the user's choice).
    """

    resultReady = Signal(object)  # noqa: N815 (Qt signal naming)
    failed = Signal(int, str, str)
    status = Signal(str)
    busyChanged = Signal(bool)  # noqa: N815
    suggestionsReady = Signal(object)  # noqa: N815
    suggestFailed = Signal(str, str)  # noqa: N815

    def __init__(
        self,
        host: EngineHostLike,
        model: Callable[[], ModelChoice],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._host = host
        self._model = model
        self._latest = 0
        self._engine_gen: dict[int, int] = {}  # the engine's generation → ours
        self._latest_suggest = 0
        self._suggest_gen: dict[int, int] = {}  # the engine's generation → our suggest number
        self._connected: Engine | None = None
        self._busy = False
        self._closed = False
        self.dropped = 0  # stale answers dropped (tests and logs)

    # -- state -------------------------------------------------------------------------------
    @property
    def is_busy(self) -> bool:
        """True from a request until its answer (or a newer request's) arrives."""
        return self._busy

    @property
    def is_running(self) -> bool:
        """Whether the engine that labels is running."""
        engine = self._host.engine
        return engine is not None and engine.is_running

    @property
    def latest_generation(self) -> int:
        return self._latest

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    # -- requests ----------------------------------------------------------------------------
    def request(self, sketch: Sketch, labels: Sequence[str]) -> int:
        """Ask for ``sketch`` to be labelled with ``labels``; returns at once with the
        request's generation. Any earlier request still waiting is superseded."""
        if self._closed:
            raise RuntimeError("the labelling service has been shut down")
        self._latest += 1
        ours = self._latest
        self._set_busy(True)

        def send(engine: Engine) -> None:
            if ours != self._latest or self._closed:
                return  # superseded while the engine was starting
            self._connect(engine)
            try:
                gen = engine.label(sketch, tuple(labels), self._model())
            except (RuntimeError, ValueError) as e:  # shut down, or a bad model choice
                self._on_failed_ours(ours, "error", str(e))
                return
            self._engine_gen = {gen: ours}

        self._host.when_ready(send)
        return ours

    def suggest(self, sketch: Sketch, recognition_head: Path | None = None) -> int:
        """Ask for label suggestions for ``sketch`` (zero-shot with the labelling model, or by
        ``recognition_head``); returns at once with the request's number. The answer comes
        on ``suggestionsReady`` (or ``suggestFailed``); an earlier request is superseded."""
        if self._closed:
            raise RuntimeError("the labelling service has been shut down")
        self._latest_suggest += 1
        ours = self._latest_suggest

        def send(engine: Engine) -> None:
            if ours != self._latest_suggest or self._closed:
                return
            self._connect(engine)
            try:
                gen = engine.suggest(sketch, self._model(), recognition_head=recognition_head)
            except (RuntimeError, ValueError) as e:
                self.suggestFailed.emit("error", str(e))
                return
            self._suggest_gen = {gen: ours}

        self._host.when_ready(send)
        return ours

    @Slot(object)
    def _on_suggestions(self, result: SuggestResult) -> None:
        ours = self._suggest_gen.get(result.request.generation)
        if ours is None or ours != self._latest_suggest:
            self.dropped += 1
            return
        self.suggestionsReady.emit(result)

    def _connect(self, engine: Engine) -> None:
        if self._connected is engine:
            return
        engine.suggestFinished.connect(self._on_suggestions)
        engine.labelFinished.connect(self._on_finished)
        engine.labelFailed.connect(self._on_failed)
        engine.labelStatus.connect(self._on_status)
        self._connected = engine

    @Slot(object)
    def _on_finished(self, result: LabelResult) -> None:
        ours = self._engine_gen.get(result.request.generation)
        if ours is None or ours != self._latest:
            self.dropped += 1
            log.debug("dropped a stale labelling (engine request %d)", result.request.generation)
            return
        self._set_busy(False)
        request = dataclasses.replace(result.request, generation=ours)
        self.resultReady.emit(dataclasses.replace(result, request=request))

    @Slot(int, str, str)
    def _on_failed(self, generation: int, kind: str, message: str) -> None:
        suggest = self._suggest_gen.get(generation)
        if suggest is not None:
            if suggest == self._latest_suggest:
                self.suggestFailed.emit(kind, message)
            return
        ours = self._engine_gen.get(generation)
        if ours is None:
            self.dropped += 1
            return
        self._on_failed_ours(ours, kind, message)

    def _on_failed_ours(self, ours: int, kind: str, message: str) -> None:
        if ours != self._latest:
            self.dropped += 1
            return
        self._set_busy(False)
        self.failed.emit(ours, kind, message)

    @Slot(int, str)
    def _on_status(self, generation: int, text: str) -> None:
        if (
            self._engine_gen.get(generation) == self._latest
            or self._suggest_gen.get(generation, -1) == self._latest_suggest
        ):
            self.status.emit(text)

    def engine_failed(self, message: str) -> None:
        """The engine could not be started: the request waiting for it fails."""
        if self._busy:
            self._on_failed_ours(self._latest, "error", message)

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

    def shutdown(self) -> bool:
        """Drop what is outstanding (the window is closing; the engine is joined by its
        owner). Always True: this service owns no thread."""
        self._closed = True
        self._latest += 1  # anything still on its way is now stale
        self._latest_suggest += 1
        self._set_busy(False)
        return True


__all__ = ["FailureKind", "LabellingService"]
