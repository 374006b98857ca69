"""The worker's thread-safe inbox: newest-wins slots for queries and masks, a queue for the rest.

- A :class:`~sketchpad.engine.requests.QueryRequest` goes into one slot: a newer query replaces a
  pending one, which is never run (the newest query wins).
- A :class:`~sketchpad.engine.requests.MaskRequest` goes into its channel's slot, likewise; so
  does a :class:`~sketchpad.engine.requests.LabelRequest` (scene labelling), in a slot of its own,
  a :class:`~sketchpad.engine.requests.MatchRequest` (sketch–photo correspondence) and a
  :class:`~sketchpad.engine.requests.SuggestRequest` (label suggestions).
- :class:`LoadModel` and :class:`OpenFolder` requests queue in order (each one matters).
- :meth:`Inbox.take` hands out the pending request of lowest generation, so the worker answers
  in the order things were asked; :meth:`Inbox.take_urgent` hands out only queries and masks
  and labelling (what an indexing run serves between its batches).
- ``stop()`` ends the worker's loop; ``cancel_indexing(upto)`` cancels the indexing of every
  OpenFolder whose generation is ≤ ``upto`` (also one not started yet).
- ``is_stale_query(g)``: a newer query has been asked for since g; its result must not be
  delivered.

Pure Python (no Qt), so it is tested on its own.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from sketchpad.engine.requests import (
    LabelRequest,
    LoadModel,
    MaskRequest,
    MatchRequest,
    OpenFolder,
    QueryRequest,
    Request,
    SuggestRequest,
)

#: What can overtake an indexing run: answered between its batches.
Urgent = QueryRequest | MaskRequest | LabelRequest | MatchRequest | SuggestRequest


class Inbox:
    """Requests waiting for the worker. Every method is thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[LoadModel | OpenFolder] = deque()
        self._query: QueryRequest | None = None
        self._masks: dict[str, MaskRequest] = {}
        self._label: LabelRequest | None = None
        self._latest_label = -1
        self._match: MatchRequest | None = None
        self._latest_match = -1
        self._suggest: SuggestRequest | None = None
        self._latest_suggest = -1
        self._latest_query = -1
        self._latest_mask: dict[str, int] = {}
        self._cancel_upto = -1
        self._stopped = False
        self._active = 0  # requests taken and not yet marked done

    # -- the GUI side ------------------------------------------------------------------------
    def put(self, request: Request) -> None:
        """Add a request (a query or mask request replaces its pending predecessor)."""
        with self._cond:
            if isinstance(request, QueryRequest):
                self._latest_query = max(self._latest_query, request.generation)
                self._query = request
            elif isinstance(request, MaskRequest):
                ch = request.channel
                self._latest_mask[ch] = max(self._latest_mask.get(ch, -1), request.generation)
                self._masks[ch] = request
            elif isinstance(request, LabelRequest):
                self._latest_label = max(self._latest_label, request.generation)
                self._label = request
            elif isinstance(request, MatchRequest):
                self._latest_match = max(self._latest_match, request.generation)
                self._match = request
            elif isinstance(request, SuggestRequest):
                self._latest_suggest = max(self._latest_suggest, request.generation)
                self._suggest = request
            elif isinstance(request, (LoadModel, OpenFolder)):
                self._queue.append(request)
            else:
                raise TypeError(f"not a request: {request!r}")
            self._cond.notify_all()

    def stop(self) -> None:
        """Ask the worker to finish: ``take`` returns None from now on, indexing stops after
        the batch in flight."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def cancel_indexing(self, upto: int) -> None:
        """Cancel the indexing of OpenFolder requests of generation ≤ ``upto``."""
        with self._cond:
            self._cancel_upto = max(self._cancel_upto, upto)
            self._cond.notify_all()

    # -- the worker side ---------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        with self._cond:
            return self._stopped

    def take(self, timeout_s: float | None = None) -> Request | None:
        """The pending request of lowest generation; blocks until there is one. None once
        stopped (or after ``timeout_s``). Call :meth:`done` when it is handled."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._stopped:
                req = self._pop(urgent_only=False)
                if req is not None:
                    self._active += 1
                    return req
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            return None

    def take_urgent(self) -> Urgent | None:
        """A pending query, mask or label request (lowest generation first), without
        waiting."""
        with self._cond:
            if self._stopped:
                return None
            req = self._pop(urgent_only=True)
            if req is not None:
                self._active += 1
            return req  # type: ignore[return-value]  # urgent_only pops queries and masks only

    def done(self) -> None:
        """Mark a taken request as handled."""
        with self._cond:
            self._active = max(0, self._active - 1)
            self._cond.notify_all()

    def _pop(self, *, urgent_only: bool) -> Request | None:
        cands: list[Request] = []
        if self._query is not None:
            cands.append(self._query)
        cands += self._masks.values()
        if self._label is not None:
            cands.append(self._label)
        if self._match is not None:
            cands.append(self._match)
        if self._suggest is not None:
            cands.append(self._suggest)
        if self._queue and not urgent_only:
            cands.append(self._queue[0])
        if not cands:
            return None
        req = min(cands, key=lambda r: r.generation)
        if isinstance(req, QueryRequest):
            self._query = None
        elif isinstance(req, MaskRequest):
            del self._masks[req.channel]
        elif isinstance(req, LabelRequest):
            self._label = None
        elif isinstance(req, MatchRequest):
            self._match = None
        elif isinstance(req, SuggestRequest):
            self._suggest = None
        else:
            self._queue.popleft()
        return req

    def has_queued_job(self) -> bool:
        """Whether a LoadModel or OpenFolder is waiting (it supersedes a running indexing)."""
        with self._cond:
            return bool(self._queue)

    def indexing_cancelled(self, generation: int) -> bool:
        """Whether the OpenFolder of ``generation`` should stop indexing (cancelled, or the
        worker is stopping)."""
        with self._cond:
            return self._stopped or generation <= self._cancel_upto

    def is_stale_query(self, generation: int) -> bool:
        """Whether a newer query than ``generation`` has been asked for."""
        with self._cond:
            return generation < self._latest_query

    def is_stale_mask(self, request: MaskRequest) -> bool:
        """Whether a newer request on the channel, or a newer query, has been asked for."""
        with self._cond:
            newer = request.generation < self._latest_mask.get(request.channel, -1)
            return newer or request.query_generation < self._latest_query

    def is_stale_label(self, generation: int) -> bool:
        """Whether a newer label request than ``generation`` has been asked for."""
        with self._cond:
            return generation < self._latest_label

    def is_stale_match(self, generation: int) -> bool:
        """Whether a newer match request than ``generation`` has been asked for."""
        with self._cond:
            return generation < self._latest_match

    def is_stale_suggest(self, generation: int) -> bool:
        """Whether a newer suggest request than ``generation`` has been asked for."""
        with self._cond:
            return generation < self._latest_suggest

    @property
    def latest_query_generation(self) -> int:
        """The newest query's generation (−1: none yet)."""
        with self._cond:
            return self._latest_query

    def pending(self) -> bool:
        """Whether requests are waiting (not counting those being handled)."""
        with self._cond:
            return bool(
                self._queue or self._query or self._masks or self._label or self._match
                or self._suggest
            )

    def idle(self) -> bool:
        """Nothing pending and nothing being handled."""
        with self._cond:
            return self._is_idle()

    def _is_idle(self) -> bool:
        return not (
            self._queue or self._query or self._masks or self._label or self._match
            or self._suggest or self._active
        )

    def wait_idle(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` until :meth:`idle`; returns whether it is."""
        with self._cond:
            return self._cond.wait_for(self._is_idle, timeout_s)
