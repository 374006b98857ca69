"""Start the desktop app: logging, QApplication, exception hook, main window.

Nothing on this path imports torch, open_clip or cv2 (STYLE habit 14): the window
must paint within two seconds. ``--startup-probe`` (used by ``sketchpad bench
startup``, see :mod:`sketchpad.ui.startup_bench`) prints when the window first
painted and quits.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QWidget

from sketchpad.logs import setup_logging

log = logging.getLogger(__name__)

APP_NAME = "Sketchpad"
PROBE_FLAG = "--startup-probe"
PROBE_PAINT_TAG = "SKETCHPAD_FIRST_PAINT"
PROBE_TORCH_TAG = "SKETCHPAD_TORCH_IMPORTED"
ICON_PATH = Path(__file__).resolve().parents[2] / "resources" / "icons" / "sketchpad.svg"


def process_age_ms() -> float | None:
    """Milliseconds since this process started (Linux, 10 ms resolution); None elsewhere."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            stat = f.read()
        # Fields after the parenthesised command name; starttime is field 22 overall.
        start_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        ticks_per_s = os.sysconf("SC_CLK_TCK")
        now_s = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return (now_s - start_ticks / ticks_per_s) * 1000.0


def set_application_names() -> None:
    """Organisation and application name: QSettings (window geometry) keys on them."""
    QCoreApplication.setOrganizationName(APP_NAME)
    QCoreApplication.setApplicationName(APP_NAME)


def app_icon() -> QIcon:
    return QIcon(str(ICON_PATH)) if ICON_PATH.exists() else QIcon()


class _FirstPaintProbe(QObject):
    """Prints the probe lines after the first paint of ``window`` and quits the app."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        self._done = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if (
            not self._done
            and event.type() == QEvent.Type.Paint
            and isinstance(watched, QWidget)
            and watched.window() is self._window
        ):
            self._done = True
            # Report after the whole paint pass has reached the screen.
            QTimer.singleShot(0, self._report)
        return False

    def _report(self) -> None:
        age = process_age_ms()
        print(f"{PROBE_PAINT_TAG} {age:.1f}" if age is not None else f"{PROBE_PAINT_TAG} ?",
              flush=True)
        print(f"{PROBE_TORCH_TAG} {'yes' if 'torch' in sys.modules else 'no'}", flush=True)
        QTimer.singleShot(0, self._window.close)


def run_app(argv: list[str]) -> int:
    """Run the GUI until the last window closes.

    Args:
        argv: arguments after the program name: Qt options, files to open, or
            ``--startup-probe``.

    Returns:
        The process exit status.
    """
    probe = PROBE_FLAG in argv
    args = [a for a in argv if a != PROBE_FLAG]
    log_path = setup_logging()
    set_application_names()
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "sketchpad", *args])
        args = app.arguments()[1:]  # without the options Qt took (-platform, -style, ...)
    assert isinstance(app, QApplication)
    app.setWindowIcon(app_icon())

    # Imported here so the logging and the QApplication exist first.
    from sketchpad.ui.errors import install_exception_hook, show_error
    from sketchpad.ui.main_window import MainWindow

    hook = install_exception_hook(log_path, app)
    try:
        window = MainWindow()
    except Exception as e:  # the window itself failed: say so instead of vanishing
        log.exception("could not create the main window")
        show_error(None, "Sketchpad cannot start", f"{type(e).__name__}: {e}\n\nLog: {log_path}")
        hook.uninstall()
        return 1
    if probe:
        app.installEventFilter(_FirstPaintProbe(window))
    window.show()
    if not probe:
        files = [Path(a) for a in args if not a.startswith("-")]

        def after_show() -> None:
            if not window.offer_restore() and files:
                window.open_path(files[0])

        QTimer.singleShot(0, after_show)
    log.info("Sketchpad started; log file %s", log_path)
    try:
        return app.exec()
    finally:
        hook.uninstall()
