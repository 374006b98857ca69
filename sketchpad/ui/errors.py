"""Unexpected errors: log them with the traceback, tell the user, keep running.

:class:`ExceptionHook` replaces ``sys.excepthook`` and ``threading.excepthook``.
An exception on the GUI thread (a slot, a Qt virtual) or on any other thread is
logged, then reported in a dialog on the GUI thread: other threads hand the report
over through a queued signal, because widgets may only be touched there. The
application is never terminated by the hook.

:func:`show_error` is the one message box for expected failures (a file that cannot
be read or written): title, a short text naming the file and the reason, optional
details.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

log = logging.getLogger(__name__)


def show_error(parent: QWidget | None, title: str, text: str, details: str | None = None) -> None:
    """A modal error box: ``text`` says what failed and why, ``details`` is folded away."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.exec()


class ExceptionHook(QObject):
    """Logs unhandled exceptions and shows them in a dialog instead of exiting.

    Args:
        log_path: the log file, named in the dialog so a bug report can include it.

    ``show_dialog(summary, details)`` is the only method that opens a widget; tests
    replace it.
    """

    # (summary, details) from any thread; delivered queued to the GUI thread.
    _report = Signal(str, str)

    def __init__(self, log_path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log_path = log_path
        self._showing = False  # a second error while the dialog is open is only logged
        self._previous_sys = sys.excepthook
        self._previous_threading = threading.excepthook
        self._installed = False
        self._report.connect(self._on_report, Qt.ConnectionType.QueuedConnection)

    # -- installation ----------------------------------------------------------------------
    def install(self) -> None:
        """Make this the process's ``sys.excepthook`` and ``threading.excepthook``."""
        self._previous_sys = sys.excepthook
        self._previous_threading = threading.excepthook
        sys.excepthook = self.handle
        threading.excepthook = self._handle_thread
        self._installed = True

    def uninstall(self) -> None:
        """Put back the hooks that were there before :meth:`install`."""
        if not self._installed:
            return
        if sys.excepthook == self.handle:
            sys.excepthook = self._previous_sys
        if threading.excepthook == self._handle_thread:
            threading.excepthook = self._previous_threading
        self._installed = False

    # -- hooks -----------------------------------------------------------------------------
    def handle(
        self,
        exc_type: type[BaseException],
        exc_value: BaseException,
        exc_tb: TracebackType | None,
        thread_name: str | None = None,
    ) -> None:
        """The ``sys.excepthook``: log, then queue the dialog on the GUI thread."""
        if issubclass(exc_type, KeyboardInterrupt):
            # Ctrl+C in the terminal: close the windows, which still ask about unsaved work.
            app = QApplication.instance()
            if isinstance(app, QApplication):
                app.closeAllWindows()
            return
        where = f" in thread {thread_name!r}" if thread_name else ""
        log.error("Unhandled exception%s", where, exc_info=(exc_type, exc_value, exc_tb))
        details = "".join(traceback.format_exception(exc_type, exc_value, exc_tb))
        summary = f"{exc_type.__name__}: {exc_value}" if str(exc_value) else exc_type.__name__
        self._report.emit(summary, details)

    def _handle_thread(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return  # the thread ended itself on purpose
        name = args.thread.name if args.thread is not None else None
        value = args.exc_value if args.exc_value is not None else args.exc_type()
        self.handle(args.exc_type, value, args.exc_traceback, thread_name=name)

    @Slot(str, str)
    def _on_report(self, summary: str, details: str) -> None:
        if self._showing:
            return
        self._showing = True
        try:
            self.show_dialog(summary, details)
        except Exception:  # a failing dialog must not loop back into the hook
            log.exception("could not show the error dialog")
        finally:
            self._showing = False

    def message(self, summary: str) -> str:
        """The dialog's text: what happened, that the app goes on, where the log is."""
        text = (
            "Sketchpad ran into an unexpected problem and carries on, but the last action "
            f"may not have finished.\n\n{summary}"
        )
        if self.log_path is not None:
            text += f"\n\nThe full report is in the log file:\n{self.log_path}"
        return text

    def show_dialog(self, summary: str, details: str) -> None:
        """Show the report (replaced in tests)."""
        parent = QApplication.activeWindow()
        show_error(parent, "Unexpected error — Sketchpad", self.message(summary), details)


def install_exception_hook(log_path: Path | None, parent: QObject | None = None) -> ExceptionHook:
    """Create and install the hook; keep the returned object alive (``parent`` does)."""
    hook = ExceptionHook(log_path, parent)
    hook.install()
    return hook
