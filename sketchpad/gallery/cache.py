"""The persistent photo-feature cache (DESIGN §5): one SQLite file per (photo folder, model).

- **Where**: ``cache_dir()/features/<sha1(folder)[:16]>-<model digest>.sqlite`` (see
  :func:`cache_path`), never inside the photo folder, which is read-only to us (DESIGN §7).
- **Key**: the file name and its ``meta`` table carry the backbone id, the weights SHA-256 and the
  preprocessing; each row carries the photo's (rel_path, size, mtime_ns). A row is current only
  for exactly that identity.
- **Rows**: patches as little-endian float16 bytes with their shape (gh, gw, d), the global
  embedding as float32 bytes, the letterbox and the patch size. A row is written whole in one
  transaction, so its features exist before the row does ("served only once flushed"); rows whose
  byte lengths disagree with their shape are dropped on read and logged.
- **Durability**: WAL with ``synchronous=FULL``: :meth:`FeatureCache.put` returns after the WAL is
  fsync'd, so a committed row survives a crash of the process *and* of the machine. The cost, one
  fsync per batch, is negligible next to the forward pass that produced the batch.
- **Recovery**: a writer opening a file checks the SQLite header, ``application_id``, the schema
  version and the stored model key, and runs ``PRAGMA quick_check`` only when the header looks
  suspicious (size ≠ page count, …) or an earlier read hit corruption. A bad file is renamed
  ``<name>.<why>-<timestamp>`` (why: corrupt, foreign, old-schema, newer-schema, other-model;
  the newest :data:`KEEP_ASIDE` are kept) and a fresh cache is created (in a temporary file,
  then renamed into place, so a kill during creation leaves no half-made cache).
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
from sketchpad.gallery import filelock
from sketchpad.gallery.images import natural_key
from sketchpad.paths import cache_dir
from sketchpad.vision.letterbox import Letterbox

if TYPE_CHECKING:
    from sketchpad.vision.features import PhotoFeatures

log = logging.getLogger(__name__)

#: Bump when the tables change; a cache of another version is moved aside and rebuilt.
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of every Sketchpad feature cache ("SkPF").
APPLICATION_ID = 0x536B5046
#: Moved-aside files kept per cache (older ones are deleted: the cache is rebuildable).
KEEP_ASIDE = 2

_MAGIC = b"SQLite format 3\x00"
_PAGE_SIZE = 16384  # rows are ~100-400 kB of blobs: fewer overflow pages than 4 kB
_BUSY_S = 10.0
_CHUNK = 64  # rows per SELECT in items()
_ASIDE_TAGS = ("corrupt", "foreign", "old-schema", "newer-schema", "other-model")
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE features (
    rel_path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    gh INTEGER NOT NULL, gw INTEGER NOT NULL, d INTEGER NOT NULL, patch_size INTEGER NOT NULL,
    photo_h INTEGER NOT NULL, photo_w INTEGER NOT NULL, input_size INTEGER NOT NULL,
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    patches BLOB NOT NULL, global_emb BLOB NOT NULL
);
"""
_COLS = (
    "rel_path, size, mtime_ns, gh, gw, d, patch_size, photo_h, photo_w, input_size, "
    "x0, y0, x1, y1, patches, global_emb"
)
# length() of a blob reads only the record header, so this costs no blob I/O.
_VALID = "length(patches) = gh * gw * d * 2 AND length(global_emb) = d * 4 AND d > 0"


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
    resolved = str(Path(folder).resolve()).encode("utf-8")
    name = hashlib.sha1(resolved, usedforsecurity=False).hexdigest()[:16]
    return cache_dir() / "features" / f"{name}-{key.digest()}.sqlite"


class FeatureCache:
    """Photo features of one folder under one model, kept across runs. Open with :meth:`open`.

    Thread-safe (one connection behind a lock). Arrays returned are read-only views of the
    stored bytes: patches float16, global embedding float32.
    """

    def __init__(
        self, path: Path, key: ModelKey, conn: sqlite3.Connection, lock_fd: int | None
    ) -> None:
        self._path = path
        self._key = key
        self._conn: sqlite3.Connection | None = conn
        self._lock_fd = lock_fd
        self._writable = lock_fd is not None
        self._mutex = threading.RLock()

    @classmethod
    def open(
        cls, folder: Path, key: ModelKey, *, writer: bool = True, path: Path | None = None
    ) -> FeatureCache:
        """Open (a writer creates, checks and if needed rebuilds) the cache of ``folder``.

        Args:
            folder: the photo folder (only its resolved path is used; it is never written).
            key: the model the features come from.
            writer: take the writer lock; ``False`` opens read-only without locking.
            path: the cache file instead of :func:`cache_path` (not inside ``folder``).

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
            _take_lock(db, fd)
            return cls(db, key, _open_writer(db, key, Path(folder)), fd)
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

    def is_current(self, rel_path: str, size: int, mtime_ns: int) -> bool:
        """Whether a valid row with exactly this (rel_path, size, mtime_ns) exists."""
        sql = (
            f"SELECT 1 FROM features WHERE rel_path = ? AND size = ? AND mtime_ns = ? AND {_VALID}"
        )
        return bool(self._query("check a row", sql, (rel_path, int(size), int(mtime_ns))))

    def put(self, rows: Sequence[tuple[str, int, int, PhotoFeatures]]) -> None:
        """Store (rel_path, size, mtime_ns, features) rows in one transaction, durable on return;
        a row replaces any older row of the same rel_path. Patches are stored as float16.

        Raises:
            ValueError: a row's features are malformed or not finite (nothing is stored).
            CacheError: read-only cache, or SQLite failed (disk full …; nothing is stored).
        """
        encoded = [_encode(*row) for row in rows]
        if encoded:
            marks = ", ".join("?" * len(encoded[0]))
            sql = f"INSERT OR REPLACE INTO features ({_COLS}) VALUES ({marks})"
            self._write("store features", lambda c: c.executemany(sql, encoded).rowcount)

    def get(self, rel_path: str) -> PhotoFeatures | None:
        """The features stored for ``rel_path`` (any identity), or None (absent or corrupt)."""
        rows = self._query(
            "read a row", f"SELECT {_COLS} FROM features WHERE rel_path = ?", (rel_path,)
        )
        return self._decode_or_drop(rows[0]) if rows else None

    def items(self) -> Iterator[tuple[str, PhotoFeatures]]:
        """(rel_path, features) in the folder scan's natural order ("/"-separated rel_paths,
        component by component), read in chunks (rows removed meanwhile are skipped; no
        transaction is held between chunks)."""
        names = sorted(
            (r[0] for r in self._query("list rows", "SELECT rel_path FROM features")),
            key=_path_order,
        )
        for i in range(0, len(names), _CHUNK):
            chunk = names[i : i + _CHUNK]
            sql = f"SELECT {_COLS} FROM features WHERE rel_path IN ({', '.join('?' * len(chunk))})"
            by_name = {r[0]: r for r in self._query("read rows", sql, chunk)}
            for name in chunk:
                if name in by_name and (f := self._decode_or_drop(by_name[name])) is not None:
                    yield name, f

    def layouts(self) -> list[RowLayout]:
        """Every valid row's layout and global embedding, in natural order, without reading
        the patch blobs (what a query keeps in memory for each photo)."""
        sql = (
            "SELECT rel_path, gh, gw, d, patch_size, photo_h, photo_w, input_size, "
            f"x0, y0, x1, y1, global_emb FROM features WHERE {_VALID}"
        )
        out = []
        for r in self._query("list layouts", sql):
            rel, gh, gw, d, ps, h, w, size, x0, y0, x1, y1, eb = r
            if min(gh, gw, d, ps, h, w, size) <= 0:
                log.warning("Feature cache %s: skipping the bad row of %r", self._path, rel)
                continue
            box = Letterbox((h, w), size, (x0, y0, x1, y1))
            out.append(RowLayout(rel, (gh, gw), d, ps, box, np.frombuffer(eb, dtype="<f4")))
        out.sort(key=lambda row: _path_order(row.rel_path))
        return out

    def patch_rows(self, rel_paths: Sequence[str]) -> Iterator[tuple[str, np.ndarray | None]]:
        """(rel_path, (T, d) float16 patches) for these rows in this order, read in chunks;
        None for a row that is gone or malformed."""
        for i in range(0, len(rel_paths), _CHUNK):
            chunk = list(rel_paths[i : i + _CHUNK])
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT rel_path, gh, gw, d, patches FROM features WHERE rel_path IN ({marks})"
            by_name = {r[0]: r for r in self._query("read patches", sql, chunk)}
            for name in chunk:
                row = by_name.get(name)
                if row is None or len(row[4]) != row[1] * row[2] * row[3] * 2:
                    yield name, None
                else:
                    yield name, np.frombuffer(row[4], dtype="<f2").reshape(-1, row[3])

    def paths(self) -> dict[str, tuple[int, int]]:
        """rel_path → (size, mtime_ns) of every valid row."""
        sql = f"SELECT rel_path, size, mtime_ns FROM features WHERE {_VALID}"
        return {r[0]: (r[1], r[2]) for r in self._query("list rows", sql)}

    def remove(self, rel_paths: Iterable[str]) -> int:
        """Delete these rows (one transaction); returns how many existed."""
        names = [(p,) for p in dict.fromkeys(rel_paths)]
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
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return n

    def _decode_or_drop(self, row: tuple[Any, ...]) -> PhotoFeatures | None:
        try:
            return _decode(row)
        except (ValueError, TypeError) as e:
            log.warning(
                "Feature cache %s: dropping the corrupt row of %r (%s)", self._path, row[0], e
            )
            if self.writable:
                self.remove([row[0]])
            return None


def _encode(rel_path: str, size: int, mtime_ns: int, f: PhotoFeatures) -> tuple[Any, ...]:
    gh, gw = (int(v) for v in f.grid_hw)
    patches = np.ascontiguousarray(f.patches, dtype="<f2")
    emb = np.ascontiguousarray(f.global_embedding, dtype="<f4")
    if patches.ndim != 2 or patches.shape[0] != gh * gw or emb.shape != (patches.shape[1],):
        raise ValueError(
            f"{rel_path}: features of shape {patches.shape} / {emb.shape} "
            f"do not match the grid {gh}×{gw}"
        )
    if not (np.isfinite(patches).all() and np.isfinite(emb).all()):
        raise ValueError(f"{rel_path}: features are not finite (as float16)")
    lb = f.letterbox
    ints = (size, mtime_ns, gh, gw, emb.shape[0], f.patch_size, *lb.photo_hw, lb.input_size,
            *lb.content_xyxy)
    return (str(rel_path), *map(int, ints), patches.tobytes(), emb.tobytes())


def _decode(row: tuple[Any, ...]) -> PhotoFeatures:
    from sketchpad.vision.features import PhotoFeatures  # loads torch: only when needed

    _, _, _, gh, gw, d, ps, h, w, size, x0, y0, x1, y1, pb, eb = row
    if min(gh, gw, d, ps, h, w, size) <= 0:
        raise ValueError(f"bad shape fields {(gh, gw, d, ps, h, w, size)}")
    if len(pb) != gh * gw * d * 2 or len(eb) != d * 4:
        raise ValueError(f"{len(pb)} + {len(eb)} bytes do not fit ({gh}×{gw}, {d})")
    return PhotoFeatures(
        patches=np.frombuffer(pb, dtype="<f2").reshape(gh * gw, d),
        grid_hw=(gh, gw),
        global_embedding=np.frombuffer(eb, dtype="<f4"),
        letterbox=Letterbox((h, w), size, (x0, y0, x1, y1)),
        patch_size=ps,
    )


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


def _take_lock(db: Path, fd: int) -> None:
    try:
        filelock.try_lock(fd)
    except OSError as e:
        raise CacheLockedError(db, filelock.read_holder(fd)) from e
    filelock.write_holder(fd)  # who holds it, for the other process's message


def _connect(db: Path, *, writable: bool) -> sqlite3.Connection:
    target = str(db) if writable else f"{db.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(
        target, uri=not writable, timeout=_BUSY_S, isolation_level=None, check_same_thread=False
    )
    if writable:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    return conn


def _diagnose(db: Path, key: ModelKey, *, writable: bool) -> tuple[str, str] | None:
    """None if ``db`` is a sound cache for ``key``; else (aside tag, reason)."""
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
                tag = "old-schema" if min(versions) < SCHEMA_VERSION else "newer-schema"
                return tag, f"has schema version {sorted(versions)}, not {SCHEMA_VERSION}"
            stored = ModelKey(*(meta.get(k, "") for k in _KEY_FIELDS))
            if stored != key:
                return "other-model", f"holds features of another model ({stored})"
            if suspicious:
                result = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
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


def _open_writer(db: Path, key: ModelKey, folder: Path) -> sqlite3.Connection:
    for p in db.parent.glob(f"{db.name}.tmp-*"):  # a creation killed half-way
        with contextlib.suppress(OSError):
            p.unlink()
    if db.exists():
        problem = _diagnose(db, key, writable=True)
        if problem is None:
            try:
                conn = _connect(db, writable=True)
                _marker(db).unlink(missing_ok=True)
                return conn
            except sqlite3.Error as e:
                problem = ("corrupt", f"cannot be opened ({e})")
        _move_aside(db, *problem)
    else:
        for p in _sidecars(db):  # a stale log must not be replayed into a new database
            p.unlink(missing_ok=True)
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
        "folder": str(folder.resolve()),
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


def _move_aside(db: Path, tag: str, reason: str) -> None:
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
    found = [(m.group(1), p) for p in db.parent.iterdir() if (m := pattern.match(p.name))]
    found.sort(key=lambda sp: natural_key(sp[0]), reverse=True)  # newest first
    for _, old in found[KEEP_ASIDE:]:
        for p in (old, old.with_name(old.name + "-wal")):
            with contextlib.suppress(OSError):
                p.unlink()
