"""Opening a feature-cache file (see :mod:`sketchpad.gallery.cache`): the model key, errors,
the checks a reader and a writer run on the file, and what a writer does about a bad one —
convert an older schema in place, delete damaged rows, notice lost commits, move a damaged or
foreign file aside and salvage its sound rows into a new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
import struct
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import sketchpad
from sketchpad.gallery import cache_repair, filelock
from sketchpad.gallery.cache_rows import COLS as _COLS
from sketchpad.gallery.cache_rows import SCHEMA as _SCHEMA
from sketchpad.gallery.cache_rows import SCHEMA_VERSION
from sketchpad.gallery.images import natural_key
from sketchpad.names import display_name

log = logging.getLogger("sketchpad.gallery.cache")  # one logger for the cache's messages

#: Schema versions a writer migrates in place (older or unknown ones are moved aside).
MIGRATABLE = frozenset({1})
#: ``PRAGMA application_id`` of every Sketchpad feature cache ("SkPF").
APPLICATION_ID = 0x536B5046
#: Moved-aside files kept per cache (older ones are deleted: the cache is rebuildable).
KEEP_ASIDE = 2

_MAGIC = b"SQLite format 3\x00"
_PAGE_SIZE = 16384  # rows are ~100-400 kB of blobs: fewer overflow pages than 4 kB
_BUSY_S = 10.0
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


def as_int(text: object) -> int | None:
    """``text`` as an int, or None when it is not one."""
    try:
        return int(str(text))
    except ValueError:
        return None


def is_corruption(e: sqlite3.Error) -> bool:
    """Whether SQLite reported a damaged or foreign file."""
    code = (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF  # SQLITE_CORRUPT 11, SQLITE_NOTADB 26
    return code in (11, 26) or "malformed" in str(e) or "not a database" in str(e)


def file_size(p: Path) -> int:
    """Bytes of ``p``; -1 when it cannot be looked at."""
    try:
        return p.stat().st_size
    except OSError:
        return -1


def marker(db: Path) -> Path:
    """The file whose presence asks the next writer to check the whole cache."""
    return db.with_name(db.name + ".needs-check")


def _sidecars(db: Path) -> list[Path]:
    return [db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal")]


def take_lock(db: Path, fd: int) -> int | None:
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
    quiet = writable or file_size(db.with_name(db.name + "-wal")) <= 0
    suspicious = (quiet and _header_suspicious(head, size)) or (writable and marker(db).exists())
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


def open_reader(db: Path, key: ModelKey) -> sqlite3.Connection:
    """A read-only connection to a sound cache; an empty in-memory one when it is missing or
    bad (a reader never moves or rebuilds a file)."""
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


def open_writer(
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
    marked = marker(db).exists()
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
            marker(db).unlink(missing_ok=True)
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
    commits = as_int(meta.get("commits")) or 0
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
        marker(db).unlink(missing_ok=True)
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
