"""Checking and repairing a feature cache: whole-cache row verification, the schema-1 → 2
migration, and salvaging the sound rows of a damaged file.

All functions work on an open ``sqlite3`` connection (or a file) and touch no
:class:`~sketchpad.gallery.cache.FeatureCache` state; the cache decides when to call them:

- :func:`damaged_rows`: every row's shape and both checksums (``cache_rows``); run by a writer
  that opens a cache marked for a check (a reader met damage, or commits went missing) and by
  ``sketchpad index --verify``.
- :func:`migrate_v1`: a cache of schema 1 (names as TEXT, no checksums) rewritten in place as
  schema 2 in one transaction, so the features already computed are kept. Schema 1 had no
  checksum to trust, so rows that do not fit their shape or hold non-finite numbers (a flipped
  float16 exponent gives inf or NaN) are dropped to be re-encoded; other damage of a schema-1
  row cannot be told apart from data and is carried over.
- :func:`salvage`: rows copied from a damaged file (moved aside, opened ``immutable``: its log
  is ignored; a truncated one is first extended with zeros to its declared size, which SQLite
  insists on) into a new cache, each only if it passes both checksums, as far as SQLite can
  still walk the table.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sketchpad.gallery import cache_rows as rows
from sketchpad.names import display_name

log = logging.getLogger(__name__)

_CHUNK = 64
#: Consecutive unreadable rowids after which salvaging a damaged table gives up.
_SALVAGE_MISSES = 64


def damaged_rows(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    """(rowid, shown name, why) of every row that fails a check, reading all rows once."""
    bad: list[tuple[int, str, str]] = []
    last = 0
    sql = f"SELECT rowid, {rows.COLS} FROM features WHERE rowid > ? ORDER BY rowid LIMIT {_CHUNK}"
    while chunk := conn.execute(sql, (last,)).fetchall():
        for r in chunk:
            last = r[0]
            try:
                rows.decode(r[1:])
            except rows.RowDamage as e:
                bad.append((r[0], _shown(r[1]), str(e)))
    return bad


def migrate_v1(conn: sqlite3.Connection, schema_version: int) -> tuple[int, int]:
    """Rewrite a schema-1 cache as schema 2 inside one transaction the caller commits.

    Returns:
        (rows kept, rows dropped).
    """
    conn.execute("ALTER TABLE features RENAME TO features_v1")  # its autoindex moves with it
    table = rows.SCHEMA.split(";")[1]  # the CREATE TABLE features statement
    conn.execute(table)
    kept = dropped = 0
    last = 0
    old_cols = rows.COLS.rsplit(", check_meta", 1)[0]
    sql = f"SELECT rowid, {old_cols} FROM features_v1 WHERE rowid > ? ORDER BY rowid LIMIT {_CHUNK}"
    insert = f"INSERT OR REPLACE INTO features ({rows.COLS}) VALUES ({', '.join('?' * 18)})"
    while chunk := conn.execute(sql, (last,)).fetchall():
        out = []
        for r in chunk:
            last = r[0]
            new = _v1_row(r[1:])
            if new is None:
                dropped += 1
                log.warning("Feature cache migration: dropping the unsound row of %s", _shown(r[1]))
            else:
                out.append(new)
        conn.executemany(insert, out)
        kept += len(out)
    conn.execute("DROP TABLE features_v1")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(schema_version),))
    conn.execute(f"PRAGMA user_version = {int(schema_version)}")
    return kept, dropped


def _v1_row(r: tuple[Any, ...]) -> tuple[Any, ...] | None:
    name = r[0].encode("utf-8") if isinstance(r[0], str) else r[0]
    ints, pb, eb = tuple(r[1:14]), r[14], r[15]
    if not (isinstance(name, bytes) and isinstance(pb, bytes) and isinstance(eb, bytes)):
        return None
    if not all(isinstance(v, int) for v in ints):
        return None
    gh, gw, d = ints[2:5]
    if min(ints[2:9]) <= 0 or len(pb) != gh * gw * d * 2 or len(eb) != d * 4:
        return None
    finite = np.isfinite(np.frombuffer(pb, "<f2")).all() and np.isfinite(np.frombuffer(eb, "<f4"))
    if not np.all(finite):
        return None
    try:
        meta = rows.check_meta(name, ints, eb)
    except Exception:  # noqa: BLE001 - struct.error: an integer beyond int64
        return None
    return (name, *ints, pb, eb, meta, rows.check_patches(pb))


def salvage(
    aside: Path,
    accept: Callable[[dict[str, str]], bool],
    store: Callable[[list[tuple[Any, ...]]], None],
) -> tuple[int, int]:
    """Copy the sound rows of a damaged cache file.

    Args:
        aside: the damaged file (already moved aside; opened read-only, ``immutable``).
        accept: given its ``meta`` table, whether the file holds rows this cache may take
            (same schema and model).
        store: called with lists of full rows (:data:`cache_rows.COLS` order) to insert.

    Returns:
        (rows copied, rows found damaged). (0, 0) when nothing can be read at all.
    """
    copied = damaged = 0
    _pad_truncated(aside)
    try:
        # mode=ro: never create the file; immutable: no locks, no log, nothing written.
        conn = sqlite3.connect(f"{aside.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return 0, 0
    with contextlib.closing(conn):
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error:
            return 0, 0
        if not accept(meta):
            return 0, 0
        sql = f"SELECT rowid, {rows.COLS} FROM features WHERE rowid > ? ORDER BY rowid LIMIT ?"
        last, misses, limit = 0, 0, _CHUNK
        while misses < _SALVAGE_MISSES:
            try:
                chunk = conn.execute(sql, (last, limit)).fetchall()
            except (sqlite3.Error, OverflowError):
                if limit > 1:  # a damaged page somewhere in this chunk: one row at a time
                    limit = 1
                else:  # this rowid cannot be read: step over it
                    misses += 1
                    last += 1
                continue
            if not chunk:
                break
            misses, limit = 0, _CHUNK
            good = []
            for r in chunk:
                last = r[0]
                try:
                    rows.decode(r[1:])
                except rows.RowDamage:
                    damaged += 1
                    continue
                good.append(r[1:])
            if good:
                store(good)
                copied += len(good)
    return copied, damaged


def _pad_truncated(db: Path) -> None:
    """Extend a truncated file with zeros (sparse) to the size its header declares: SQLite
    refuses a file shorter than its header says, while the pages still there hold rows."""
    try:
        with open(db, "rb") as f:
            head = f.read(100)
        size = db.stat().st_size
        if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
            return
        page = struct.unpack(">H", head[16:18])[0]
        page = 65536 if page == 1 else page
        declared = struct.unpack(">I", head[28:32])[0] * page
        if size < declared <= max(4 * size, size + 2**30) and page >= 512:
            os.truncate(db, declared)
    except OSError:
        pass


def _shown(raw: object) -> str:
    return display_name(raw) if isinstance(raw, (bytes, str)) else repr(raw)
