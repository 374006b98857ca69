"""The persistent photo-feature cache (DESIGN §5): one SQLite file per (photo folder, model).

- **Where**: ``cache_dir()/features/<sha1(folder)[:16]>-<model digest>.sqlite`` (see
  :func:`cache_path`), never inside the photo folder, which is read-only to us (DESIGN §7).
- **Key**: the file name and its ``meta`` table carry the backbone id, the weights SHA-256 and the
  preprocessing; each row carries the photo's (rel_path, size, mtime_ns). A row is current only
  for exactly that identity.
- **Rows** (format in :mod:`~sketchpad.gallery.cache_rows`, schema 2): the name as the OS's
  bytes (any name, losslessly), patches as little-endian float16 bytes with their shape
  (gh, gw, d), the global embedding as float32 bytes, the letterbox, the patch size, and two
  checksums verified by every read. A row is written whole in one transaction, so its features
  exist before the row does ("served only once flushed"). A row that fails a check is never
  returned: it is logged and listed in :attr:`FeatureCache.damaged`; a writer deletes it (the
  next index run re-encodes it), a reader marks the file so the next writer checks every row.
- **Durability**: WAL with ``synchronous=FULL``: :meth:`FeatureCache.put` returns after the WAL is
  fsync'd, so a committed row survives a crash of the process *and* of the machine. The cost, one
  fsync per batch, is negligible next to the forward pass that produced the batch. Each commit
  also counts up ``meta.commits``, copied into the lock file after the commit: a file with fewer
  commits than its lock file says lost its write-ahead log (or was replaced by an older copy).
- **Recovery**: a writer opening a file checks the SQLite header, ``application_id``, the schema
  version and the stored model key, and runs ``PRAGMA quick_check`` only when the header looks
  suspicious (size ≠ page count, …), an earlier read hit corruption or commits were lost; then,
  when marked or asked (``verify``: ``integrity_check`` too), every row's checksums. A schema-1
  cache is converted in place. A bad file is renamed ``<name>.<why>-<timestamp>`` (why:
  corrupt, foreign, old-schema, newer-schema, other-model; the newest :data:`KEEP_ASIDE` are
  kept), a fresh cache is created (in a temporary file, then renamed into place, so a kill
  during creation leaves no half-made cache) and a corrupt file's sound rows are salvaged into
  it. :attr:`FeatureCache.notes` says in words what was found and done.
- **Locking**: one writer, by an advisory lock on ``<name>.lock`` (``flock`` on POSIX, ``msvcrt``
  on Windows); the OS releases it when the process dies, even by ``kill -9``. A second writer gets
  :class:`CacheLockedError`. Readers (``writer=False``) take no lock, never block, see committed
  rows only, never move or rebuild a file (a missing or bad cache reads as empty until a writer
  rebuilds it; SQLite may create the empty ``-wal``/``-shm`` files it reads through).
- **Import weight**: torch is not imported here; :class:`PhotoFeatures` (whose module loads
  torch) is imported the first time a row is decoded, so listing a cache stays light.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sketchpad.gallery import cache_rows as rows
from sketchpad.gallery import filelock
from sketchpad.gallery.cache_file import (
    APPLICATION_ID,
    KEEP_ASIDE,
    MIGRATABLE,
    CacheError,
    CacheLockedError,
    ModelKey,
    as_int,
    file_size,
    is_corruption,
    marker,
    open_reader,
    open_writer,
    take_lock,
)
from sketchpad.gallery.cache_rows import COLS as _COLS
from sketchpad.gallery.cache_rows import SCHEMA_VERSION
from sketchpad.gallery.cache_rows import VALID as _VALID
from sketchpad.gallery.images import natural_key
from sketchpad.names import display_name
from sketchpad.paths import cache_dir
from sketchpad.vision.letterbox import Letterbox

if TYPE_CHECKING:
    from sketchpad.vision.features import PhotoFeatures

log = logging.getLogger(__name__)

__all__ = [
    "APPLICATION_ID",
    "KEEP_ASIDE",
    "MIGRATABLE",
    "SCHEMA_VERSION",
    "CacheError",
    "CacheLockedError",
    "FeatureCache",
    "ModelKey",
    "RowLayout",
    "cache_path",
]

#: Rows per SELECT in items().
_CHUNK = 64


@dataclass(frozen=True)
class RowLayout:
    """A cached photo's layout without its patches (see :meth:`FeatureCache.layouts`).

    Attributes:
        rel_path: the photo's path relative to the folder ("/"-separated).
        grid_hw: (gh, gw).
        dim: feature dimension d.
        patch_size: patch side in model-input pixels.
        letterbox: where the photo sat in the model input.
        global_embedding: (d,) float32 (read-only view).
    """

    rel_path: str
    grid_hw: tuple[int, int]
    dim: int
    patch_size: int
    letterbox: Letterbox
    global_embedding: np.ndarray


def cache_path(folder: Path, key: ModelKey) -> Path:
    """The cache file of ``folder``'s photos under ``key``, in the user cache directory."""
    resolved = os.fsencode(Path(folder).resolve())  # bytes: any folder name hashes
    name = hashlib.sha1(resolved, usedforsecurity=False).hexdigest()[:16]
    return cache_dir() / "features" / f"{name}-{key.digest()}.sqlite"


class FeatureCache:
    """Photo features of one folder under one model, kept across runs. Open with :meth:`open`.

    Thread-safe (one connection behind a lock). Arrays returned are read-only views of the
    stored bytes: patches float16, global embedding float32. Every read checks what it returns
    against the row's checksums; a damaged row is never returned (see :attr:`damaged`).

    Attributes:
        notes: what opening found and repaired, in words (moved aside, salvaged, migrated,
            damaged rows removed, commits lost, "verified: sound"); empty when nothing happened.
    """

    def __init__(
        self,
        path: Path,
        key: ModelKey,
        conn: sqlite3.Connection,
        lock_fd: int | None,
        notes: Sequence[str] = (),
    ) -> None:
        self._path = path
        self._key = key
        self._conn: sqlite3.Connection | None = conn
        self._lock_fd = lock_fd
        self._writable = lock_fd is not None
        self._mutex = threading.RLock()
        self._damaged: dict[str, str] = {}
        self.notes: list[str] = list(notes)
        self._commits = 0
        if lock_fd is not None:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            self._commits = as_int(meta.get("commits")) or 0
            filelock.write_holder(lock_fd, self._commits)  # the lock file knows the count

    @classmethod
    def open(
        cls,
        folder: Path,
        key: ModelKey,
        *,
        writer: bool = True,
        path: Path | None = None,
        verify: bool = False,
    ) -> FeatureCache:
        """Open (a writer creates, checks and if needed repairs or rebuilds) the cache of
        ``folder``.

        Args:
            folder: the photo folder (only its resolved path is used; it is never written).
            key: the model the features come from.
            writer: take the writer lock; ``False`` opens read-only without locking.
            path: the cache file instead of :func:`cache_path` (not inside ``folder``).
            verify: (writer) check the whole cache now: SQLite's ``integrity_check`` and every
                row's checksums; damaged rows are removed (to be re-encoded), a damaged file is
                moved aside and its sound rows salvaged. The outcome is in :attr:`notes`.

        Raises:
            CacheLockedError: ``writer`` and another process holds the lock.
            CacheError: the path is inside the photo folder, or the file cannot be created.
        """
        db = Path(path) if path is not None else cache_path(folder, key)
        if db.resolve().is_relative_to(Path(folder).resolve()):
            raise CacheError(db, "is inside the photo folder, which Sketchpad never writes to")
        if not writer:
            return cls(db, key, open_reader(db, key), None)
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(db.with_name(db.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CacheError(db, f"cannot create it ({e.strerror or e})") from e
        try:
            recorded = take_lock(db, fd)
            conn, notes = open_writer(db, key, Path(folder), recorded, verify)
            return cls(db, key, conn, fd, notes)
        except BaseException:
            os.close(fd)  # also releases the lock
            raise

    @property
    def path(self) -> Path:
        return self._path

    @property
    def key(self) -> ModelKey:
        return self._key

    @property
    def writable(self) -> bool:
        return self._writable

    @property
    def damaged(self) -> dict[str, str]:
        """Rows this cache met damaged while reading, name → what failed. They were not
        served; a writer removed them at once (so indexing re-encodes them), a reader left a
        mark that makes the next writer check the whole cache."""
        with self._mutex:
            return dict(self._damaged)

    def is_current(self, rel_path: str, size: int, mtime_ns: int) -> bool:
        """Whether a valid row with exactly this (rel_path, size, mtime_ns) exists."""
        sql = (
            f"SELECT 1 FROM features WHERE rel_path = ? AND size = ? AND mtime_ns = ? AND {_VALID}"
        )
        args = (rows.db_name(rel_path), int(size), int(mtime_ns))
        return bool(self._query("check a row", sql, args))

    def put(self, items: Sequence[tuple[str, int, int, PhotoFeatures]]) -> None:
        """Store (rel_path, size, mtime_ns, features) rows in one transaction, durable on return;
        a row replaces any older row of the same rel_path. Patches are stored as float16.

        Raises:
            ValueError: a row's features are malformed or not finite (nothing is stored).
            CacheError: read-only cache, or SQLite failed (disk full …; nothing is stored).
        """
        encoded = [rows.encode(*row) for row in items]
        if encoded:
            marks = ", ".join("?" * len(encoded[0]))
            sql = f"INSERT OR REPLACE INTO features ({_COLS}) VALUES ({marks})"
            self._write("store features", lambda c: c.executemany(sql, encoded).rowcount)

    def get(self, rel_path: str) -> PhotoFeatures | None:
        """The features stored for ``rel_path`` (any identity), or None (absent or damaged)."""
        found = self._query(
            "read a row",
            f"SELECT {_COLS} FROM features WHERE rel_path = ?",
            (rows.db_name(rel_path),),
        )
        return self._decode_or_drop(found[0]) if found else None

    def items(self) -> Iterator[tuple[str, PhotoFeatures]]:
        """(rel_path, features) in the folder scan's natural order ("/"-separated rel_paths,
        component by component), read in chunks (rows removed meanwhile are skipped; no
        transaction is held between chunks)."""
        names = sorted(
            (rows.py_name(r[0]) for r in self._query("list rows", "SELECT rel_path FROM features")),
            key=_path_order,
        )
        for i in range(0, len(names), _CHUNK):
            chunk = names[i : i + _CHUNK]
            sql = f"SELECT {_COLS} FROM features WHERE rel_path IN ({', '.join('?' * len(chunk))})"
            found = self._query("read rows", sql, [rows.db_name(n) for n in chunk])
            by_name = {rows.py_name(r[0]): r for r in found}
            for name in chunk:
                if name in by_name and (f := self._decode_or_drop(by_name[name])) is not None:
                    yield name, f

    def layouts(self) -> list[RowLayout]:
        """Every sound row's layout and global embedding, in natural order, without reading
        the patch blobs (what a query keeps in memory for each photo). Rows failing their
        layout checksum are left out and reported (:attr:`damaged`)."""
        sql = f"SELECT {rows.META_COLS} FROM features WHERE {_VALID}"
        out = []
        for r in self._query("list layouts", sql):
            rel = rows.py_name(r[0]) if isinstance(r[0], (bytes, str)) else repr(r[0])
            try:
                rows.verify_meta(r)
            except rows.RowDamage as e:
                self._report(rel, str(e))
                continue
            gh, gw, d, ps = r[3:7]
            out.append(
                RowLayout(
                    rel, (gh, gw), d, ps, rows.letterbox_of(r), np.frombuffer(r[14], dtype="<f4")
                )
            )
        out.sort(key=lambda row: _path_order(row.rel_path))
        return out

    def patch_rows(self, rel_paths: Sequence[str]) -> Iterator[tuple[str, np.ndarray | None]]:
        """(rel_path, (T, d) float16 patches) for these rows in this order, read in chunks;
        None for a row that is gone, malformed or fails its checksum (the last two are
        reported: :attr:`damaged`)."""
        for i in range(0, len(rel_paths), _CHUNK):
            chunk = list(rel_paths[i : i + _CHUNK])
            marks = ", ".join("?" * len(chunk))
            sql = (
                "SELECT rel_path, gh, gw, d, patches, check_patches FROM features "
                f"WHERE rel_path IN ({marks})"
            )
            found = self._query("read patches", sql, [rows.db_name(n) for n in chunk])
            by_name = {rows.py_name(r[0]): r for r in found}
            for name in chunk:
                row = by_name.get(name)
                if row is None:
                    yield name, None
                    continue
                try:
                    pb = rows.verify_patches(row[4], row[1], row[2], row[3], row[5])
                except rows.RowDamage as e:
                    self._report(name, str(e))
                    yield name, None
                    continue
                yield name, np.frombuffer(pb, dtype="<f2").reshape(-1, row[3])

    def paths(self) -> dict[str, tuple[int, int]]:
        """rel_path → (size, mtime_ns) of every valid row."""
        sql = f"SELECT rel_path, size, mtime_ns FROM features WHERE {_VALID}"
        return {rows.py_name(r[0]): (r[1], r[2]) for r in self._query("list rows", sql)}

    def remove(self, rel_paths: Iterable[str]) -> int:
        """Delete these rows (one transaction); returns how many existed."""
        names = [(rows.db_name(p),) for p in dict.fromkeys(rel_paths)]
        if not names:
            return 0
        sql = "DELETE FROM features WHERE rel_path = ?"
        return self._write("remove rows", lambda c: c.executemany(sql, names).rowcount)

    def __len__(self) -> int:
        return int(self._query("count rows", f"SELECT count(*) FROM features WHERE {_VALID}")[0][0])

    def nbytes(self) -> int:
        """Bytes on disk: the database file plus its write-ahead log."""
        files = (self._path, self._path.with_name(self._path.name + "-wal"))
        return sum(max(file_size(p), 0) for p in files)

    def close(self) -> None:
        """Close the connection and release the writer lock (idempotent)."""
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    filelock.unlock(self._lock_fd)
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _sql(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            if self._conn is None:
                raise CacheError(self._path, f"cannot {what}: the cache is closed")
            try:
                yield self._conn
            except sqlite3.Error as e:
                if is_corruption(e):  # the next writer to open it runs quick_check
                    with contextlib.suppress(OSError):
                        marker(self._path).touch()
                raise CacheError(self._path, f"cannot {what} ({e})") from e

    def _query(self, what: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._sql(what) as conn:
            return conn.execute(sql, args).fetchall()

    def _write(self, what: str, action: Callable[[sqlite3.Connection], int]) -> int:
        if not self.writable:
            raise CacheError(self._path, f"cannot {what}: opened read-only")
        with self._sql(what) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                n = int(action(conn))
                conn.execute(_COUNT_COMMIT, (str(self._commits + 1),))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._commits += 1
            if self._lock_fd is not None:  # after the commit: the file never runs ahead
                filelock.write_holder(self._lock_fd, self._commits)
            return n

    def _decode_or_drop(self, row: tuple[Any, ...]) -> PhotoFeatures | None:
        try:
            return rows.decode(row)
        except rows.RowDamage as e:
            name = rows.py_name(row[0]) if isinstance(row[0], (bytes, str)) else repr(row[0])
            self._report(name, str(e))
            return None

    def _report(self, name: str, why: str) -> None:
        """A damaged row met while reading: log it (once), never serve it; a writer removes it
        (so indexing re-encodes it), a reader marks the file for a whole check."""
        with self._mutex:
            first = name not in self._damaged
            self._damaged[name] = why
        if first:
            then = "removed; it will be re-encoded" if self.writable else "not used"
            log.warning(
                "Feature cache %s: the row of %s is damaged (%s): %s",
                self._path,
                display_name(name),
                why,
                then,
            )
        if self.writable:
            self.remove([name])
        else:
            with contextlib.suppress(OSError):
                marker(self._path).touch()


# The commit counter: the lock file keeps a copy, so a cache that lost commits (its
# write-ahead log deleted, or an older copy put back) is noticed by the next writer.
_COUNT_COMMIT = "INSERT OR REPLACE INTO meta (key, value) VALUES ('commits', ?)"


def _path_order(rel_path: str) -> tuple[object, ...]:
    """The folder scan's order: natural order of each path component in turn."""
    return tuple(natural_key(part) for part in rel_path.split("/"))
