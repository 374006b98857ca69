"""Atomic file writes (DESIGN §7): the target is always the old or the new file.

Write to a temporary file in the same folder, flush, fsync, ``os.replace`` over the
target, then fsync the folder so the rename itself survives a power cut. On any
failure the temporary file is removed, the target is untouched, and a
:class:`SaveError` names the path and the reason.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

#: The names of our temporary files: ``.<target name>.<8 random characters>.tmp``, as
#: ``tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp")`` makes them (here and for imported
#: weights).
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
#: A temporary file modified this recently may belong to a write still going on in another
#: process (a large one is rewritten continuously); older ones are leftovers of killed writes.
STALE_AFTER_S = 600.0


class SaveError(OSError):
    """Writing ``path`` failed; ``reason`` is a readable explanation."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"Could not save {path}: {reason}")
        self.path = path
        self.reason = reason


def _reason(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    if e.errno == errno.EDQUOT:
        return "the disk quota is exceeded"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (the file or its folder is read-only)"
    if e.errno == errno.EROFS:
        return "the file system is read-only"
    if e.errno == errno.ENOENT:
        return "the folder does not exist"
    return e.strerror or str(e)


def _is_private(folder: Path) -> bool:
    """A folder only its owner can enter (POSIX): Sketchpad's own folders are made so."""
    try:
        return os.name == "posix" and folder.stat().st_mode & 0o077 == 0
    except OSError:
        return False


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the data itself is synced
    finally:
        os.close(fd)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mode: int | None = None
) -> None:
    """Replace ``path`` with ``data`` atomically.

    Args:
        path: the file to replace.
        data: its new contents.
        mode: permission bits of the new file (e.g. 0o600 for the user's private data);
            default: those of the file replaced; for a new one 0600 in a private (0700)
            folder such as Sketchpad's own (preferences, caches), else 0666 less the umask.
            The temporary file is private while it is written either way.

    Raises:
        SaveError: the write failed; the previous file (if any) is intact.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise SaveError(target, _reason(e)) from e
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif target.exists():
            # Keep the permission bits of the file we replace.
            try:
                os.chmod(tmp, target.stat().st_mode & 0o7777)
            except OSError:
                pass
        elif _is_private(folder):  # our data folders (0700): what is in them is private too
            os.chmod(tmp, 0o600)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SaveError(target, _reason(e)) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, mode: int | None = None) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is one of our temporary files' names (see :data:`TEMP_NAME`)."""
    return TEMP_NAME.match(name) is not None


def remove_stale_temporaries(
    folders: Iterable[Path], *, before: float | None = None, max_depth: int = 4
) -> list[Path]:
    """Delete the temporary files that killed atomic writes left in ``folders``.

    Only regular files (never links) named as ours (:func:`is_temporary_name`) whose last
    change is older than ``before`` (default: now less :data:`STALE_AFTER_S`, so a write in
    progress in another window or command is never touched) are removed. Folders are walked
    ``max_depth`` levels deep without following links. Failures are skipped.

    Returns:
        The files removed.
    """
    limit = time.time() - STALE_AFTER_S if before is None else before
    removed: list[Path] = []
    for top in folders:
        for folder, dirs, files in os.walk(top):
            depth = Path(folder).relative_to(top).parts
            if len(depth) >= max_depth:
                dirs.clear()
            for name in files:
                if not is_temporary_name(name):
                    continue
                path = Path(folder) / name
                try:
                    st = os.lstat(path)
                    if stat.S_ISREG(st.st_mode) and st.st_mtime < limit:
                        os.unlink(path)
                        removed.append(path)
                except OSError:
                    continue
    return removed
