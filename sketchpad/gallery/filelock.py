"""An advisory, non-blocking, cross-platform lock on an open file (``flock`` on POSIX,
``msvcrt`` on Windows). The OS drops it when the process dies, even by ``kill -9``. The file
also holds a line naming the holder, for the message another process shows."""

from __future__ import annotations

import contextlib
import os
import socket
import sys

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    _WIN_LOCK_AT = 1 << 20  # lock a byte past the holder text, which stays readable

    def try_lock(fd: int) -> None:
        """Take the lock now or raise OSError (another process holds it)."""
        os.lseek(fd, _WIN_LOCK_AT, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def unlock(fd: int) -> None:
        os.lseek(fd, _WIN_LOCK_AT, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def try_lock(fd: int) -> None:
        """Take the lock now or raise OSError (another process holds it)."""
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def read_holder(fd: int) -> str | None:
    """The holder line written by :func:`write_holder`, if readable."""
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode("utf-8", "replace").strip() or None
    return None


def write_holder(fd: int) -> None:
    """Say who holds the lock (best effort)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
