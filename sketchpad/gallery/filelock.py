"""An advisory, non-blocking, cross-platform lock on an open file (``flock`` on POSIX,
``msvcrt`` on Windows). The OS drops it when the process dies, even by ``kill -9``. The file
also holds a line naming the holder, for the message another process shows, and the feature
cache's count of committed writes (see ``cache.FeatureCache``: a cache that has fewer than its
lock file recorded lost some)."""

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


def _lines(fd: int) -> list[str]:
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 400).decode("utf-8", "replace").splitlines()
    return []


def read_holder(fd: int) -> str | None:
    """The holder line written by :func:`write_holder`, if readable."""
    lines = _lines(fd)
    return lines[0].strip() or None if lines else None


def read_commits(fd: int) -> int | None:
    """The commit count written by :func:`write_holder`, or None when absent or unreadable."""
    for line in _lines(fd)[1:]:
        key, _, value = line.partition(" ")
        if key == "commits" and value.strip().isdigit():
            return int(value)
    return None


def write_holder(fd: int, commits: int | None = None) -> None:
    """Say who holds the lock, and the commit count when given (best effort)."""
    text = f"pid {os.getpid()} on {socket.gethostname()}\n"
    if commits is not None:
        text += f"commits {int(commits)}\n"
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, text.encode())
