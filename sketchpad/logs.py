"""Logging set-up for the app and the command line (no Qt).

One rotating log file, ``log_dir()/sketchpad.log`` at INFO (private to the user: 0600),
which an error dialog can point the user to, plus WARNING and above on stderr. Modules log through
``logging.getLogger(__name__)``; nothing here is needed for library use.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from sketchpad.paths import PRIVATE_FILE_MODE, log_dir

LOG_FILE_NAME = "sketchpad.log"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"
_MAX_BYTES = 2_000_000  # per file; with 3 backups the logs never exceed ~8 MB
_BACKUPS = 3


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file readable by its user only (0600): logs name photos and files."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
        if os.name == "posix":
            try:
                os.fchmod(fd, PRIVATE_FILE_MODE)  # a log file an earlier version made 0644
            except OSError:
                pass
        return io.TextIOWrapper(
            io.FileIO(fd, "a"), encoding=self.encoding, errors=self.errors, write_through=True
        )


# Handlers we installed, so a second call (tests, `run_app` after the CLI) replaces
# them instead of logging every line twice.
_our_handlers: list[logging.Handler] = []


def setup_logging(level: int = logging.INFO, *, stderr_level: int = logging.WARNING) -> Path:
    """Log to the rotating file in :func:`~sketchpad.paths.log_dir` and to stderr.

    Args:
        level: the file's threshold (and the root logger's).
        stderr_level: the console's threshold.

    Returns:
        The path of the log file. If it cannot be opened (read-only home), only
        stderr is used and the path is still returned for messages.
    """
    _remove_handlers()
    root = logging.getLogger()
    formatter = logging.Formatter(_FORMAT)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(stderr_level)
    console.setFormatter(formatter)
    _our_handlers.append(console)

    path = log_dir() / LOG_FILE_NAME
    open_error: OSError | None = None
    try:
        file_handler = PrivateRotatingFileHandler(
            path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8"
        )
    except OSError as e:
        open_error = e
    else:
        file_handler.setLevel(level)
        file_handler.setFormatter(formatter)
        _our_handlers.append(file_handler)

    for h in _our_handlers:
        root.addHandler(h)
    root.setLevel(min(level, stderr_level))
    logging.captureWarnings(True)
    if open_error is not None:
        logging.getLogger(__name__).warning(
            "cannot open the log file %s (%s); logging to stderr only", path, open_error
        )
    return path


def teardown_logging() -> None:
    """Remove the handlers :func:`setup_logging` installed (tests, embedding)."""
    _remove_handlers()
    logging.captureWarnings(False)


def _remove_handlers() -> None:
    root = logging.getLogger()
    for h in _our_handlers:
        root.removeHandler(h)
        h.close()
    _our_handlers.clear()
