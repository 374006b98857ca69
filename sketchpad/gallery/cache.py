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
import re
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import sketchpad
from sketchpad.gallery import cache_repair, filelock
from sketchpad.gallery import cache_rows as rows
from sketchpad.gallery.cache_rows import COLS as _COLS
from sketchpad.gallery.cache_rows import SCHEMA as _SCHEMA
from sketchpad.gallery.cache_rows import SCHEMA_VERSION
from sketchpad.gallery.cache_rows import VALID as _VALID
from sketchpad.gallery.images import natural_key
from sketchpad.names import display_name
from sketchpad.paths import cache_dir
from sketchpad.vision.letterbox import Letterbox

if TYPE_CHECKING:
    from sketchpad.vision.features import PhotoFeatures

log = logging.getLogger(__name__)

#: Schema versions a writer migrates in place (older or unknown ones are moved aside).
MIGRATABLE = frozenset({1})
#: ``PRAGMA application_id`` of every Sketchpad feature cache ("SkPF").
APPLICATION_ID = 0x536B5046
#: Moved-aside files kept per cache (older ones are deleted: the cache is rebuildable).
KEEP_ASIDE = 2

_MAGIC = b"SQLite format 3\x00"
_PAGE_SIZE = 16384  # rows are ~100-400 kB of blobs: fewer overflow pages than 4 kB
_BUSY_S = 10.0
_CHUNK = 64  # rows per SELECT in items()
_ASIDE_TAGS = ("corrupt", "foreign", "old-schema", "newer-schema", "other-model")


@dataclass(frozen=True)
class ModelKey:
    """What makes features comparable: the model, its exact weights, the preprocessing.

    Attributes:
        backbone_id: registry id of the backbone.
        weights_sha256: SHA-256 of the weights file.
        preprocess: ``spec.preprocess_key(input_size) + "|" + patch path`` ("vv"/"plain").
    """

    backbone_id: str
    weights_sha256: str
    preprocess: str

    def digest(self) -> str:
        """A short stable hex digest of the three fields (part of the cache file name)."""
        text = "\0".join((self.backbone_id, self.weights_sha256, self.preprocess))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


_KEY_FIELDS = tuple(f.name for f in fields(ModelKey))


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


class CacheError(Exception):
    """A feature-cache failure: ``path`` (the cache file) and a readable ``reason``."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"Feature cache {path}: {reason}")
        self.path = path
        self.reason = reason


class CacheLockedError(CacheError):
    """Another process is writing to the cache; ``holder`` is its pid/host when known."""

    def __init__(self, path: Path, holder: str | None) -> None:
        who = f" ({holder})" if holder else ""
        super().__init__(
            path,
            f"another Sketchpad{who} is indexing into it. Close that Sketchpad or wait for its "
            "indexing to finish, then try again.",
        )
        self.holder = holder


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
            self._commits = _int(meta.get("commits")) or 0
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
            return cls(db, key, _open_reader(db, key), None)
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(db.with_name(db.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CacheError(db, f"cannot create it ({e.strerror or e})") from e
        try:
            recorded = _take_lock(db, fd)
            conn, notes = _open_writer(db, key, Path(folder), recorded, verify)
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
        return sum(max(_size(p), 0) for p in files)

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
                if _is_corruption(e):  # the next writer to open it runs quick_check
                    with contextlib.suppress(OSError):
                        _marker(self._path).touch()
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
                _marker(self._path).touch()


# The commit counter: the lock file keeps a copy, so a cache that lost commits (its
# write-ahead log deleted, or an older copy put back) is noticed by the next writer.
_COUNT_COMMIT = "INSERT OR REPLACE INTO meta (key, value) VALUES ('commits', ?)"


def _int(text: object) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def _is_corruption(e: sqlite3.Error) -> bool:
    code = (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF  # SQLITE_CORRUPT 11, SQLITE_NOTADB 26
    return code in (11, 26) or "malformed" in str(e) or "not a database" in str(e)


def _path_order(rel_path: str) -> tuple[object, ...]:
    """The folder scan's order: natural order of each path component in turn."""
    return tuple(natural_key(part) for part in rel_path.split("/"))


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return -1


def _marker(db: Path) -> Path:
    return db.with_name(db.name + ".needs-check")


def _sidecars(db: Path) -> list[Path]:
    return [db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal")]


def _take_lock(db: Path, fd: int) -> int | None:
    """Lock; returns the commit count the previous writer left in the lock file (if any)."""
    try:
        filelock.try_lock(fd)
    except OSError as e:
        raise CacheLockedError(db, filelock.read_holder(fd)) from e
    recorded = filelock.read_commits(fd)
    filelock.write_holder(fd, recorded)  # who holds it, for the other process's message
    return recorded


def _connect(db: Path, *, writable: bool) -> sqlite3.Connection:
    target = str(db) if writable else f"{db.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(
        target, uri=not writable, timeout=_BUSY_S, isolation_level=None, check_same_thread=False
    )
    if writable:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    return conn


def _diagnose(
    db: Path, key: ModelKey, *, writable: bool, full: bool = False
) -> tuple[str, str] | None:
    """None if ``db`` is a sound cache for ``key``; else (aside tag, reason). The tag
    ``"migrate"`` is a cache of a schema a writer converts in place (:data:`MIGRATABLE`).
    ``full``: run ``integrity_check`` whatever the header says."""
    try:
        with open(db, "rb") as f:
            head = f.read(100)
        size = db.stat().st_size
    except OSError as e:
        return "corrupt", f"cannot be read ({e.strerror or e})"
    if len(head) < 100 or not head.startswith(_MAGIC):
        return "corrupt", "is not an SQLite database (damaged or truncated header)"
    # Readers test the header only when no log is pending: a writer may be checkpointing.
    quiet = writable or _size(db.with_name(db.name + "-wal")) <= 0
    suspicious = (quiet and _header_suspicious(head, size)) or (writable and _marker(db).exists())
    try:
        # A writer holds the lock: a plain connection may replay a crashed writer's log.
        conn = sqlite3.connect(db, timeout=_BUSY_S) if writable else _connect(db, writable=False)
        with contextlib.closing(conn):
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            if app_id != APPLICATION_ID:
                return "foreign", f"is not a Sketchpad feature cache (application_id {app_id:#x})"
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            versions = {
                int(meta.get("schema_version", -1)),
                conn.execute("PRAGMA user_version").fetchone()[0],
            }
            if versions != {SCHEMA_VERSION}:
                if len(versions) == 1 and versions <= MIGRATABLE:
                    return "migrate", f"has schema version {min(versions)}"
                tag = "old-schema" if min(versions) < SCHEMA_VERSION else "newer-schema"
                return tag, f"has schema version {sorted(versions)}, not {SCHEMA_VERSION}"
            stored = ModelKey(*(meta.get(k, "") for k in _KEY_FIELDS))
            if stored != key:
                return "other-model", f"holds features of another model ({stored})"
            if suspicious or full:
                check = "integrity_check" if full else "quick_check"
                result = [r[0] for r in conn.execute(f"PRAGMA {check}").fetchall()]
                if result != ["ok"]:
                    return "corrupt", f"fails its integrity check ({'; '.join(result[:3])})"
    except (sqlite3.Error, ValueError) as e:
        return "corrupt", f"cannot be read as a cache ({e})"
    return None


def _header_suspicious(head: bytes, size: int) -> bool:
    page = struct.unpack(">H", head[16:18])[0]
    page = 65536 if page == 1 else page
    change, pages = struct.unpack(">II", head[24:32])
    valid_for = struct.unpack(">I", head[92:96])[0]
    bad_page = page < 512 or page & (page - 1)
    return bool(bad_page or head[18:20] != b"\2\2" or change != valid_for or size != pages * page)


def _open_reader(db: Path, key: ModelKey) -> sqlite3.Connection:
    problem = _diagnose(db, key, writable=False) if db.exists() else None
    if problem is None and db.exists():
        try:
            return _connect(db, writable=False)
        except sqlite3.Error as e:
            problem = ("corrupt", f"cannot be opened ({e})")
    if problem is not None:
        log.warning("Feature cache %s %s; reading it as empty until it is rebuilt", db, problem[1])
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.executescript(_SCHEMA)
    return conn


def _open_writer(
    db: Path, key: ModelKey, folder: Path, recorded: int | None, verify: bool
) -> tuple[sqlite3.Connection, list[str]]:
    """The writer's connection, after checking (and if needed repairing) the file; and notes
    saying what was found and done."""
    for p in db.parent.glob(f"{db.name}.tmp-*"):  # a creation killed half-way
        with contextlib.suppress(OSError):
            p.unlink()
    notes: list[str] = []
    if not db.exists():
        for p in _sidecars(db):  # a stale log must not be replayed into a new database
            p.unlink(missing_ok=True)
        return _created(db, key, folder), notes
    marked = _marker(db).exists()
    problem = _diagnose(db, key, writable=True, full=verify)
    if problem is not None and problem[0] == "migrate":
        problem = _migrate(db, problem[1], notes)
    if problem is None:
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(db, writable=True)
            problem = _check_rows(conn, db, recorded, marked or verify, notes)
        except sqlite3.Error as e:
            problem = ("corrupt", f"cannot be opened ({e})")
        if problem is None and conn is not None:
            _marker(db).unlink(missing_ok=True)
            if verify and not notes:
                n = conn.execute("SELECT count(*) FROM features").fetchone()[0]
                notes.append(f"verified: the file and all {n} rows' checksums are sound")
            return conn, notes
        if conn is not None:
            conn.close()
    assert problem is not None
    tag, reason = problem
    aside = _move_aside(db, tag, reason)
    notes.append(f"the cache {reason}: moved it aside to {aside.name} and started a new one")
    conn = _created(db, key, folder)
    if tag == "corrupt":
        _salvage(conn, aside, key, notes)
    return conn, notes


def _check_rows(
    conn: sqlite3.Connection, db: Path, recorded: int | None, check: bool, notes: list[str]
) -> tuple[str, str] | None:
    """Commits lost since the lock file's count, then (when asked, or when commits were lost)
    every row's checksums; damaged rows are deleted. A file-level problem is returned."""
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    commits = _int(meta.get("commits")) or 0
    if recorded is not None and commits < recorded:
        notes.append(
            f"{recorded - commits} of its {recorded} writes are missing (its write-ahead log "
            "was lost, or an older copy of the file was put back): the photos written since "
            "will be re-encoded"
        )
        log.warning("Feature cache %s: %s", db, notes[-1])
        result = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        if result != ["ok"]:
            return "corrupt", f"fails its integrity check ({'; '.join(result[:3])})"
        check = True
    if not check:
        return None
    bad = cache_repair.damaged_rows(conn)
    if bad:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("DELETE FROM features WHERE rowid = ?", [(rowid,) for rowid, _, _ in bad])
        conn.execute("COMMIT")
        for _, name, why in bad:
            log.warning("Feature cache %s: removed the damaged row of %s (%s)", db, name, why)
        shown = ", ".join(name for _, name, _ in bad[:5]) + (", …" if len(bad) > 5 else "")
        rows_word = "row" if len(bad) == 1 else "rows"
        notes.append(f"{len(bad)} damaged {rows_word} removed, to be re-encoded: {shown}")
    return None


def _migrate(db: Path, reason: str, notes: list[str]) -> tuple[str, str] | None:
    """Convert an older schema in place; a problem (then moved aside) if that fails."""
    try:
        with contextlib.closing(_connect(db, writable=True)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                kept, dropped = cache_repair.migrate_v1(conn, SCHEMA_VERSION)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
    except sqlite3.Error as e:
        return "old-schema", f"{reason} and cannot be converted ({e})"
    notes.append(
        f"converted from an older format ({reason}) to version {SCHEMA_VERSION}: "
        f"{kept} rows kept"
        + (f", {dropped} unsound rows dropped (to be re-encoded)" if dropped else "")
    )
    log.info("Feature cache %s: %s", db, notes[-1])
    return None


def _salvage(conn: sqlite3.Connection, aside: Path, key: ModelKey, notes: list[str]) -> None:
    """Copy the sound rows of a moved-aside damaged file into the new cache."""

    def accept(meta: dict[str, str]) -> bool:
        same = ModelKey(*(meta.get(k, "") for k in _KEY_FIELDS)) == key
        return same and meta.get("schema_version") == str(SCHEMA_VERSION)

    def store(found: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(found[0]))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT OR REPLACE INTO features ({_COLS}) VALUES ({marks})", found)
        conn.execute("COMMIT")

    try:
        copied, damaged = cache_repair.salvage(aside, accept, store)
    except sqlite3.Error as e:  # the new cache itself failed: keep what is there
        log.warning("Feature cache %s: salvaging %s stopped (%s)", aside.parent, aside.name, e)
        return
    if copied or damaged:
        notes.append(
            f"{copied} sound rows salvaged from it"
            + (
                f" ({damaged} damaged {'row' if damaged == 1 else 'rows'} left behind)"
                if damaged
                else ""
            )
        )
        log.warning("Feature cache %s: %s", aside.with_name(aside.name), notes[-1])


def _created(db: Path, key: ModelKey, folder: Path) -> sqlite3.Connection:
    try:
        _create(db, key, folder)
        return _connect(db, writable=True)
    except (OSError, sqlite3.Error) as e:
        raise CacheError(db, f"cannot create it ({e})") from e


def _create(db: Path, key: ModelKey, folder: Path) -> None:
    tmp = db.with_name(f"{db.name}.tmp-{os.getpid()}")
    meta = {
        "schema_version": str(SCHEMA_VERSION),
        **{k: getattr(key, k) for k in _KEY_FIELDS},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "app_version": sketchpad.__version__,
        "folder": display_name(folder.resolve()),  # for people reading the file: any name
        "commits": "0",
    }
    try:
        with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as conn:
            conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.executescript(_SCHEMA)
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            conn.execute("PRAGMA journal_mode = WAL")  # closing checkpoints: one file remains
        os.replace(tmp, db)
    except BaseException:
        for p in (tmp, *_sidecars(tmp)):
            with contextlib.suppress(OSError):
                p.unlink()
        raise


def _move_aside(db: Path, tag: str, reason: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = db.with_name(f"{db.name}.{tag}-{stamp}")
    n = 1
    while aside.exists():
        aside, n = db.with_name(f"{db.name}.{tag}-{stamp}-{n}"), n + 1
    try:
        os.replace(db, aside)
        wal, shm, journal = _sidecars(db)
        if wal.exists():
            os.replace(wal, aside.with_name(aside.name + "-wal"))
        shm.unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
        _marker(db).unlink(missing_ok=True)
    except OSError as e:
        raise CacheError(db, f"{reason}, and cannot be moved aside ({e.strerror or e})") from e
    log.warning(
        "Feature cache %s %s; moved it aside to %s and starting a new one", db, reason, aside.name
    )
    pattern = re.compile(re.escape(db.name) + rf"\.(?:{'|'.join(_ASIDE_TAGS)})-([\d-]+)$")
    found = [
        (m.group(1), p)
        for p in db.parent.iterdir()
        if p != aside and (m := pattern.match(p.name))  # never the one just made
    ]
    found.sort(key=lambda sp: natural_key(sp[0]), reverse=True)  # newest first
    for _, old in found[KEEP_ASIDE - 1 :]:
        for p in (old, old.with_name(old.name + "-wal")):
            with contextlib.suppress(OSError):
                p.unlink()
    return aside
