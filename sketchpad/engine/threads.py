"""The one registry of the app's live QThreads: none is ever destroyed while it runs.

A ``QThread`` destroyed while its thread is still running aborts the process ("QThread:
Destroyed while thread is still running"). Every thread the engine layer starts (the
inference worker, weights downloads and imports, short background calls) is therefore
parentless and :func:`keep`-ed here until it has ended; :func:`release` drops one once it has
been joined. At interpreter exit every thread still kept is asked to stop (its ``on_exit``
callable) and joined.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QThread

log = logging.getLogger(__name__)

#: Longest wait for each leftover thread at exit (a model still loading, a large import).
EXIT_JOIN_S = 60.0

_lock = threading.Lock()
_LIVE: dict[int, tuple[QThread, Callable[[], None] | None]] = {}


def keep(thread: QThread, on_exit: Callable[[], None] | None = None) -> None:
    """Reference ``thread`` until :func:`release` (or exit). ``on_exit`` asks it to stop
    (e.g. stop the worker's inbox) before the exit hook joins it. Threads that have finished
    are dropped on the way."""
    with _lock:
        for key, (t, _) in list(_LIVE.items()):
            if t.isFinished() and t is not thread:
                del _LIVE[key]
        _LIVE[id(thread)] = (thread, on_exit)


def release(thread: QThread) -> None:
    """Forget ``thread`` (it has been joined)."""
    with _lock:
        _LIVE.pop(id(thread), None)


def live_count() -> int:
    """Threads kept and not finished (tests: no thread leaks)."""
    with _lock:
        return sum(1 for t, _ in _LIVE.values() if not t.isFinished())


@atexit.register
def join_all(timeout_s: float = EXIT_JOIN_S) -> None:
    """Stop and join every kept thread (the exit hook)."""
    with _lock:
        items = list(_LIVE.values())
        _LIVE.clear()
    for thread, on_exit in items:
        if on_exit is not None:
            on_exit()
        thread.quit()
        if not thread.wait(int(timeout_s * 1000)):
            log.error(
                "a thread (%s) did not stop within %.0f s at exit", thread.objectName(), timeout_s
            )
