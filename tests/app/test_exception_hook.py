"""The exception hook logs with the traceback and shows a dialog instead of exiting."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from qtevents import deliver_posted_events

from sketchpad.logs import setup_logging, teardown_logging
from sketchpad.ui.errors import ExceptionHook

# pytest-qt would otherwise put its own sys.excepthook in place during each test.
pytestmark = pytest.mark.qt_no_exception_capture


@pytest.fixture
def hook(qapp: Any, sketchpad_home: Path) -> Iterator[tuple[ExceptionHook, list[Any], Path]]:
    log_path = setup_logging()
    shown: list[tuple[str, str, threading.Thread]] = []
    h = ExceptionHook(log_path)
    h.show_dialog = lambda summary, details: shown.append(  # type: ignore[method-assign]
        (summary, details, threading.current_thread())
    )
    h.install()
    yield h, shown, log_path
    h.uninstall()
    teardown_logging()


def _raise_and_hook(exc: BaseException) -> None:
    try:
        raise exc
    except BaseException:
        sys.excepthook(*sys.exc_info())


def test_logs_traceback_and_shows_dialog(hook: Any, qtbot: Any) -> None:
    h, shown, log_path = hook
    assert sys.excepthook == h.handle
    _raise_and_hook(ValueError("the widget fell over"))
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=2000)
    summary, details, thread = shown[0]
    assert summary == "ValueError: the widget fell over"
    assert "Traceback" in details and "_raise_and_hook" in details
    assert thread is threading.main_thread()
    text = log_path.read_text()
    assert "Unhandled exception" in text and "ValueError: the widget fell over" in text
    assert str(log_path) in h.message(summary)


def test_exception_in_a_thread_is_shown_on_the_gui_thread(hook: Any, qtbot: Any) -> None:
    h, shown, log_path = hook

    def work() -> None:
        raise RuntimeError("worker broke")

    t = threading.Thread(target=work, name="worker-1")
    t.start()
    t.join()
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=2000)
    summary, _, thread = shown[0]
    assert summary == "RuntimeError: worker broke"
    assert thread is threading.main_thread()
    assert "in thread 'worker-1'" in log_path.read_text()


def test_exception_in_a_slot_does_not_stop_the_event_loop(hook: Any, qtbot: Any) -> None:
    h, shown, _ = hook
    alive: list[bool] = []

    def boom() -> None:
        raise KeyError("missing")

    QTimer.singleShot(0, boom)
    QTimer.singleShot(50, lambda: alive.append(True))
    qtbot.waitUntil(lambda: bool(alive) and len(shown) == 1, timeout=2000)
    assert shown[0][0] == "KeyError: 'missing'"


def test_a_second_error_while_the_dialog_is_open_is_only_logged(hook: Any, qtbot: Any) -> None:
    h, shown, log_path = hook
    nested: list[str] = []

    def dialog(summary: str, details: str) -> None:
        nested.append(summary)
        if len(nested) == 1:
            _raise_and_hook(TypeError("while showing"))
            deliver_posted_events()  # the queued report arrives while this "dialog" is open

    h.show_dialog = dialog  # type: ignore[method-assign]
    _raise_and_hook(ValueError("first"))
    qtbot.waitUntil(lambda: len(nested) >= 1, timeout=2000)
    deliver_posted_events()
    assert nested == ["ValueError: first"]
    assert "TypeError: while showing" in log_path.read_text()


def test_uninstall_restores_previous_hooks(qapp: Any) -> None:
    before_sys, before_thr = sys.excepthook, threading.excepthook
    h = ExceptionHook(None)
    h.install()
    assert sys.excepthook != before_sys
    h.uninstall()
    assert sys.excepthook == before_sys and threading.excepthook == before_thr
