"""Start the inference engine without freezing the window.

Importing the engine imports torch, open_clip and timm (seconds on a cold disk). The window
must paint at once (STYLE habit 14), so :class:`EngineHost` imports the engine's modules on
a plain background thread and creates the :class:`~sketchpad.engine.client.Engine` on the
GUI thread once they are in ``sys.modules``. Callers queue work with :meth:`when_ready`.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

if TYPE_CHECKING:
    from sketchpad.engine.client import Engine
    from sketchpad.engine.worker import Loader

log = logging.getLogger(__name__)

ENGINE_MODULE = "sketchpad.engine.client"


class EngineHost(QObject):
    """Creates the engine lazily and hands it to whoever waits for it.

    Args:
        loader: the engine's model loader (tests pass a stand-in; None: the registry).
        factory: builds the engine (tests); default ``Engine(loader=loader)``.

    Signals:
        ready(Engine): the engine exists (once).
        failed(str): the engine could not be started (the app goes on without photo search).
    """

    ready = Signal(object)
    failed = Signal(str)
    _imported = Signal(str)  # "" or an error message; from the import thread

    def __init__(
        self,
        *,
        loader: Loader | None = None,
        factory: Callable[[], Engine] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._loader = loader
        self._factory = factory
        self._engine: Engine | None = None
        self._waiting: list[Callable[[Engine], object]] = []
        self._started = False
        self._error: str | None = None
        self._closed = False
        self._imported.connect(self._on_imported)

    @property
    def engine(self) -> Engine | None:
        return self._engine

    @property
    def error(self) -> str | None:
        return self._error

    def start(self) -> None:
        """Begin importing the engine in the background (idempotent)."""
        if self._started or self._closed:
            return
        self._started = True
        threading.Thread(target=self._import, name="sketchpad-engine-import", daemon=True).start()

    def when_ready(self, fn: Callable[[Engine], object]) -> None:
        """Call ``fn(engine)`` now if the engine exists, else once it does (starting it)."""
        if self._closed:
            return
        if self._engine is not None:
            fn(self._engine)
            return
        self._waiting.append(fn)
        self.start()

    def _import(self) -> None:
        from sketchpad.engine.heap import long_lived  # no torch: this module imports gc only

        try:
            with long_lived("importing the engine"):
                importlib.import_module(ENGINE_MODULE)
        except Exception as e:  # a broken install: say so, keep drawing
            log.exception("cannot import the inference engine")
            self._imported.emit(f"{type(e).__name__}: {e}")
            return
        self._imported.emit("")

    @Slot(str)
    def _on_imported(self, error: str) -> None:
        if self._closed:
            return
        if error:
            self._error = (
                f"Photo search is unavailable: the model libraries failed to load ({error})."
            )
            self._waiting.clear()
            self.failed.emit(self._error)
            return
        from sketchpad.engine.client import Engine

        try:
            engine = self._factory() if self._factory else Engine(loader=self._loader)
        except Exception as e:
            log.exception("cannot start the inference engine")
            self._error = f"Photo search is unavailable: {type(e).__name__}: {e}"
            self._waiting.clear()
            self.failed.emit(self._error)
            return
        self._engine = engine
        self.ready.emit(engine)
        waiting, self._waiting = self._waiting, []
        for fn in waiting:
            fn(engine)

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop and join the engine's worker (if it was started); True if it ended."""
        self._closed = True
        self._waiting.clear()
        if self._engine is None:
            return True
        return self._engine.shutdown(timeout_s)
