"""Start the desktop app: logging, QApplication, exception hook, main window.

Nothing on this path imports torch, open_clip or cv2 (STYLE habit 14): the window
must paint within two seconds. In probe mode (``sketchpad --startup-probe``, used by
``sketchpad bench startup``, see :mod:`sketchpad.workspace.startup_bench`) the start is the
real one, background engine import included; callbacks report the first paint and the moment
the engine is ready (or has failed), and then the window closes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QWidget

from sketchpad.logs import setup_logging

if TYPE_CHECKING:
    from sketchpad.ui.main_window import MainWindow

log = logging.getLogger(__name__)

APP_NAME = "Sketchpad"
ICON_PATH = Path(__file__).resolve().parents[2] / "resources" / "icons" / "sketchpad.svg"


def set_application_names() -> None:
    """Organisation and application name: QSettings (window geometry) keys on them."""
    QCoreApplication.setOrganizationName(APP_NAME)
    QCoreApplication.setApplicationName(APP_NAME)


#: The interpreter's thread switch interval in the window (Python's default: 5 ms). Background
#: threads that run Python (folder scans, decoding, indexing) hand the GIL back to the GUI
#: thread this soon once it asks: on a busy machine the default let a scan of 10,000 names hold
#: the event loop for 0.7–0.8 s (``sketchpad bench ui``: GUI thread 1–2 ms of CPU in them).
GUI_SWITCH_INTERVAL_S = 0.001


def tune_interpreter() -> None:
    """Settings for a responsive GUI thread: the switch interval (see
    :data:`GUI_SWITCH_INTERVAL_S`), and the cyclic garbage collector's full passes kept off
    the long-lived objects (imports, models; :mod:`sketchpad.engine.heap`): with them a full
    pass held the GIL for 150–220 ms in whichever thread allocated, the GUI thread waiting."""
    from sketchpad.engine.heap import keep_long_lived

    sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)
    keep_long_lived()


def keep_every_pointer_event() -> None:
    """Deliver every pointer move to the canvas. By default Qt merges the mouse moves queued
    while the GUI thread is busy into the last one (``AA_CompressHighFrequencyEvents``, on
    X11 and Wayland): a stroke drawn during a short busy spell then arrives as a few chords of
    what the hand drew (``make walkthrough``, a busy machine: a 10-point zig-zag arrived with 7,
    10 canvas px off the path). A drawing program keeps them all, as Krita does; repaints are
    still merged. Call it once the QApplication exists: the xcb plugin turns the merging on
    while the application is built, whatever was set before."""
    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_CompressHighFrequencyEvents, False)


def app_icon() -> QIcon:
    return QIcon(str(ICON_PATH)) if ICON_PATH.exists() else QIcon()


class _FirstPaintProbe(QObject):
    """Calls ``on_first_paint`` after the first paint of ``window``."""

    def __init__(self, window: QWidget, on_first_paint: Callable[[], None]) -> None:
        super().__init__(window)
        self._window = window
        self._on_first_paint = on_first_paint
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
            QTimer.singleShot(0, self._on_first_paint)
        return False


def _probe(
    window: MainWindow,
    on_first_paint: Callable[[], None] | None,
    on_engine: Callable[[str], None] | None,
) -> None:
    """Report the first paint and the engine's readiness, then close the window."""
    left = {"paint", "engine"}

    def done(what: str) -> None:
        left.discard(what)
        if not left:
            QTimer.singleShot(0, window.close)

    def painted() -> None:
        if on_first_paint is not None:
            on_first_paint()
        done("paint")

    def engine(error: str) -> None:
        if "engine" in left and on_engine is not None:
            on_engine(error)
        done("engine")

    app = QApplication.instance()
    assert app is not None
    app.installEventFilter(_FirstPaintProbe(window, painted))  # child widgets paint too
    host = window.photos.host
    host.ready.connect(lambda _engine: engine(""))
    host.failed.connect(engine)


def run_app(
    argv: list[str],
    on_first_paint: Callable[[], None] | None = None,
    on_engine: Callable[[str], None] | None = None,
) -> int:
    """Run the GUI until the last window closes.

    Args:
        argv: arguments after the program name: Qt options and files to open.
        on_first_paint: start-up probe mode (``sketchpad bench startup``): called once the
            window has first painted.
        on_engine: probe mode too: called with "" once the background engine is ready, or
            with the error when it failed. The window closes once both have been called.

    Returns:
        The process exit status.
    """
    args = list(argv)
    log_path = setup_logging()
    set_application_names()
    tune_interpreter()
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "sketchpad", *args])
        args = app.arguments()[1:]  # without the options Qt took (-platform, -style, ...)
    assert isinstance(app, QApplication)
    keep_every_pointer_event()
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
    probing = on_first_paint is not None or on_engine is not None
    if probing:
        _probe(window, on_first_paint, on_engine)
    window.show()
    files = [] if probing else [Path(a) for a in args if not a.startswith("-")]

    def after_show() -> None:
        folders = [f for f in files if f.is_dir()]
        drawings = [f for f in files if not f.is_dir()]
        if not probing and not window.offer_restore() and drawings:
            window.open_path(drawings[0])
        window.photos.start()  # the engine and the model load in the background
        if folders:
            window.photos.open_folder(folders[0])
        elif not probing:
            window.restore_last_folder()  # the folder open when the window last closed

    QTimer.singleShot(0, after_show)
    log.info("Sketchpad started; log file %s", log_path)
    try:
        return app.exec()
    finally:
        hook.uninstall()
