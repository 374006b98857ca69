"""Keep the window's long-lived objects out of the cyclic garbage collector's full passes.

CPython's cyclic collector walks every object it tracks in a full (generation 2) pass, holding
the GIL the whole time, and the pass can start in whichever thread allocates at that moment (a
folder scan, a thumbnail decoder, the engine). Once the engine has imported torch and open_clip
and loaded a model, the window's process tracks about 430,000 objects, nearly all of them
modules, classes and functions that live as long as the process: a full pass took 150–220 ms
here, and the GUI thread waited for the GIL throughout (``sketchpad bench ui``: stalls of
180–245 ms right after opening a 10,000-photo folder and again mid-indexing, the GUI thread
using 2–3 ms of CPU in them; a ``gc.callbacks`` timer showed a generation-2 pass of the same
length in a scan or decode thread at the same moment).

The window therefore (:func:`keep_long_lived`, called by ``sketchpad.ui.app.tune_interpreter``):

- runs code whose objects live on — the engine's import, a model load — inside
  :func:`long_lived`: the collector is paused meanwhile (importing open_clip alone ran six
  full passes of 10–150 ms as the heap grew), and what exists when the last such block ends is
  frozen (``gc.freeze``): later full passes walk only what was made after it (3–12 ms);
- freezes what is imported when it is turned on (Qt, the window's modules).

Frozen objects are still freed when their last reference goes (a replaced model, a closed
folder: no reference cycles there; checked on the tiny CLIP model), only reference cycles among
them are never collected. Off by default, so that tests and the command line keep the
interpreter's own collector; ``long_lived`` is then a plain block.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

_lock = threading.Lock()
_on = False
_depth = 0  # long_lived blocks running now (any thread)
_collector_was_on = True  # gc.isenabled() when the first of them began


def keep_long_lived(on: bool = True) -> None:
    """Turn the policy on (the window) or off (tests restore it); on: freeze what exists now."""
    global _on
    with _lock:
        _on = on
        if on:
            gc.freeze()


def keeping_long_lived() -> bool:
    """Whether the policy is on."""
    return _on


@contextmanager
def long_lived(what: str) -> Iterator[None]:
    """Run a block whose objects live on (``what``: for the log). With the policy on, the
    cyclic collector is paused until the last such block (in any thread) ends, and then
    everything alive is frozen and the collector resumes. Blocks may nest and overlap."""
    global _depth, _collector_was_on
    if not _on:
        yield
        return
    with _lock:
        if _depth == 0:
            _collector_was_on = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.freeze()
                if _collector_was_on:
                    gc.enable()
                log.debug("%s: %d objects frozen in all", what, gc.get_freeze_count())
