"""The compressed patch store: a large library's patch features in ≤ 64 KiB per photo.

A store is a folder of three files:

- ``codes.bin`` (``codes.<n>.bin`` after a compaction; ``meta.codes_file`` names it): every
  photo's patch codes (:mod:`sketchpad.vision.quant`, q5r by default:
  5 d / 8 bytes per patch), of its *valid* patches only (letterbox padding is never scored; it
  reads as zero vectors), one photo after another, appended, never rewritten in place. A query
  reads only the codes of the photos it scores (the shortlist), with ``pread`` into a buffer
  of its own, or through a memory map of the file (:mod:`sketchpad.gallery.store_bank`).
- ``meta.sqlite``: a row per photo (the same identity and layout columns as the feature cache,
  :mod:`sketchpad.gallery.cache_rows`), where its codes start in ``codes.bin`` and how many
  there are, its per-patch float16 scales, its compact summary (k float16 unit vectors, the
  shortlist's first stage), its global embedding (float16) and two XXH3 checksums:
  ``check_meta`` over every column but the codes, ``check_codes`` over its codes as stored in
  ``codes.bin``.
- ``lock``: the writer's advisory lock (:mod:`sketchpad.gallery.filelock`): one writer; readers
  take no lock.

The feature cache's rules hold here. **Crash safety**: :meth:`PatchStore.put` appends the codes,
flushes and fsyncs ``codes.bin``, then commits the rows in one SQLite transaction (WAL,
``synchronous=FULL``): a row exists only once the codes it points at are on disk; codes written
by a transaction that never committed lie past ``meta.next_row`` and are cut off by the next
writer. **Integrity**: every row's metadata is checked when the store is opened, every photo's
codes the first time a query reads them; a row that fails is never served (its patches score −1,
it is listed in the bank's ``damaged``), and a writer removes it so it is encoded again.
A replaced or removed row leaves its old codes behind as dead space (``meta.dead_rows``); once
it is a quarter of the file, the indexing run rewrites the live codes into a new file
(:meth:`PatchStore.compact`, crash-safe: the rows move to it in one transaction).

``sketchpad index`` keeps a store beside every folder's feature cache (:func:`store_path`),
filled and pruned in step with it (:mod:`sketchpad.gallery.index`); a query opens it for large
folders (:func:`sketchpad.gallery.query.load_bank`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sqlite3
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchpad.gallery import filelock
from sketchpad.gallery.cache_file import CacheError, CacheLockedError
from sketchpad.gallery.cache_rows import db_name, py_name
from sketchpad.gallery.store_bank import (
    CHECK_MARK,
    CodesFile,
    StoreBank,
    StoreBlock,
    digest,
    mark_for_check,
)
from sketchpad.vision.bank import PhotoLayout
from sketchpad.vision.letterbox import Letterbox
from sketchpad.vision.quant import (
    CODECS,
    DEFAULT_CODEC,
    RESIDUAL,
    Codec,
    check_codec,
    quantize,
    row_bytes,
    summarize,
)

#: 2: codes of valid patches only (``n_codes``), the global embedding as float16.
SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE photos (
    rel_path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    gh INTEGER NOT NULL, gw INTEGER NOT NULL, d INTEGER NOT NULL, patch_size INTEGER NOT NULL,
    photo_h INTEGER NOT NULL, photo_w INTEGER NOT NULL, input_size INTEGER NOT NULL,
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    row0 INTEGER NOT NULL, n_codes INTEGER NOT NULL, scales BLOB NOT NULL,
    summary BLOB NOT NULL, global_emb BLOB NOT NULL, assign BLOB NOT NULL,
    check_meta INTEGER NOT NULL, check_codes INTEGER NOT NULL
);
"""
_COLS = (
    "rel_path, size, mtime_ns, gh, gw, d, patch_size, photo_h, photo_w, input_size, "
    "x0, y0, x1, y1, row0, n_codes, scales, summary, global_emb, assign, check_meta, check_codes"
)
_INTS = struct.Struct("<15q")
# Column positions in a row selected with _COLS.
_ROW0, _NCODES, _SCALES, _SUMM, _GLOB, _ASSIGN, _CMETA, _CCODES = range(14, 22)


def store_path(cache_file: Path) -> Path:
    """The patch store folder kept beside a feature cache file: ``<name>.store``."""
    cache_file = Path(cache_file)
    return cache_file.with_name(cache_file.stem + ".store")


def _metadigest(r: Sequence[Any]) -> int:
    """The checksum over a selected row's metadata (every column but the codes')."""
    ints = _INTS.pack(*r[1 : _NCODES + 1])
    return digest(r[0], ints, r[_SCALES], r[_SUMM], r[_GLOB], r[_ASSIGN])


@dataclass(frozen=True)
class StoreRow:
    """One photo to store: what the feature cache stores, as arrays."""

    rel_path: str
    size: int
    mtime_ns: int
    patches: np.ndarray  # (T, d) any float dtype
    grid_hw: tuple[int, int]
    global_embedding: np.ndarray  # (d,)
    letterbox: Letterbox
    patch_size: int


class PatchStore:
    """A compressed patch store (see the module docstring). Open with :meth:`open`."""

    def __init__(
        self, folder: Path, conn: sqlite3.Connection, lock_fd: int | None, meta: dict[str, str]
    ) -> None:
        self.folder = folder
        self._conn: sqlite3.Connection | None = conn
        self._lock_fd = lock_fd
        self.codec: Codec = meta["codec"]  # type: ignore[assignment]
        self.dim = int(meta["dim"])
        self.summary_k = int(meta["summary_k"])
        self.row_bytes = row_bytes(self.codec, self.dim)
        #: The codes file the metadata points into (a compaction writes a new one).
        self.codes_name = meta.get("codes_file", "codes.bin")

    @property
    def codes_path(self) -> Path:
        """The codes file of this store (``codes.bin``, or ``codes.<n>.bin`` once compacted)."""
        return self.folder / self.codes_name

    @classmethod
    def open(
        cls,
        folder: Path,
        *,
        writer: bool = True,
        codec: Codec = DEFAULT_CODEC,
        dim: int | None = None,
        summary_k: int = 8,
    ) -> PatchStore:
        """Open (a writer creates) the store in ``folder``.

        Raises:
            CacheLockedError: another writer holds the store.
            CacheError: not a store of this version, or cannot be created or read.
        """
        folder = Path(folder)
        db = folder / "meta.sqlite"
        fd: int | None = None
        try:
            if writer:
                folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    filelock.try_lock(fd)
                except OSError as e:
                    raise CacheLockedError(db, filelock.read_holder(fd)) from e
                conn = sqlite3.connect(str(db), isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            else:
                if not db.exists():
                    raise CacheError(db, "no patch store here")
                uri = f"{db.resolve().as_uri()}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "meta" not in tables:
                if not writer:
                    raise CacheError(db, "an empty patch store")
                if dim is None:
                    raise CacheError(db, "a new patch store needs the feature dimension")
                check_codec(codec, dim)
                conn.executescript(_SCHEMA)
                values = {
                    "schema_version": SCHEMA_VERSION,
                    "codec": codec,
                    "dim": dim,
                    "summary_k": summary_k,
                    "next_row": 0,
                    "dead_rows": 0,
                }
                conn.executemany(
                    "INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()]
                )
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("schema_version") != str(SCHEMA_VERSION):
                raise CacheError(db, f"a patch store of schema {meta.get('schema_version')!r}")
            if meta.get("codec") not in CODECS:
                raise CacheError(
                    db,
                    f"patch codes of a kind this version cannot read ({meta.get('codec')!r}); "
                    "index the folder again to rebuild the store",
                )
            store = cls(folder, conn, fd, meta)
            if writer:  # cut codes an uncommitted transaction left behind
                end = int(meta["next_row"]) * store.row_bytes
                with open(store.codes_path, "ab") as f:
                    if f.tell() > end:
                        f.truncate(end)
                        os.fsync(f.fileno())
                for other in folder.glob("codes*.bin"):  # a compaction cut short, either side
                    if other.name != store.codes_name:
                        other.unlink(missing_ok=True)
            return store
        except sqlite3.Error as e:
            if fd is not None:
                os.close(fd)
            raise CacheError(db, f"cannot open the patch store ({e})") from e
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise

    def _meta(self) -> dict[str, str]:
        assert self._conn is not None
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def put(self, rows: Sequence[StoreRow]) -> None:
        """Store photos (replacing rows of the same names), durable on return.

        Raises:
            ValueError: features of the wrong dimension or not finite (nothing stored).
            CacheError: a read-only store, or the write failed (nothing stored).
        """
        if self._lock_fd is None or self._conn is None:
            raise CacheError(self.folder / "meta.sqlite", "cannot store: opened read-only")
        if not rows:
            return
        next_row = int(self._meta()["next_row"])
        xs = [np.asarray(r.patches, dtype=np.float32) for r in rows]
        for r, x in zip(rows, xs, strict=True):
            gh, gw = (int(v) for v in r.grid_hw)
            if x.shape != (gh * gw, self.dim):
                raise ValueError(f"{r.rel_path}: patches {x.shape} for {gh}×{gw}×{self.dim}")
        # summaries, photos of one layout at a time (one batched k-means each)
        summ_all = np.empty((len(rows), self.summary_k, self.dim), dtype="<f2")
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, r in enumerate(rows):
            lb = r.letterbox
            key = (*r.grid_hw, r.patch_size, lb.input_size, *lb.photo_hw, *lb.content_xyxy)
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            r0 = rows[idx[0]]
            valid = r0.letterbox.valid_patches(r0.patch_size).ravel()
            stack = np.stack([xs[i] for i in idx])
            summ_all[idx] = summarize(stack, valid, self.summary_k).astype("<f2")
        assigns: list[np.ndarray] = []
        # codes of valid patches only: letterbox padding is never scored
        xs = [
            x[r.letterbox.valid_patches(r.patch_size).ravel()]
            for r, x in zip(rows, xs, strict=True)
        ]
        if self.codec in RESIDUAL:  # the residual from each patch's nearest summary vector
            for i, x in enumerate(xs):
                c = summ_all[i].astype(np.float32)
                a = np.argmax(x @ c.T, axis=1).astype(np.uint8)
                assigns.append(a)
                xs[i] = x - c[a]
        else:
            assigns = [np.zeros(len(x), np.uint8) for x in xs]
        codes_all, scales_all = quantize(np.concatenate(xs), self.codec)
        blobs: list[bytes] = []
        records: list[tuple[Any, ...]] = []
        row = next_row
        for i, r in enumerate(rows):
            gh, gw = (int(v) for v in r.grid_hw)
            t = len(xs[i])
            first = row - next_row
            cb = codes_all[first : first + t].tobytes()
            sb = scales_all[first : first + t].astype("<f2").tobytes()
            mb = summ_all[i].tobytes()
            ab = assigns[i].tobytes()
            eb = np.ascontiguousarray(r.global_embedding, dtype="<f2").tobytes()
            lb = r.letterbox
            ints: tuple[int, ...] = (r.size, r.mtime_ns, gh, gw, self.dim, r.patch_size)
            ints += (*lb.photo_hw, lb.input_size, *lb.content_xyxy, row, t)
            name = db_name(r.rel_path)
            meta_check = digest(name, _INTS.pack(*(int(v) for v in ints)), sb, mb, eb, ab)
            records.append((name, *ints, sb, mb, eb, ab, meta_check, digest(cb)))
            blobs.append(cb)
            row += t
        path = self.codes_path
        try:
            with open(path, "r+b" if path.exists() else "wb") as f:
                f.seek(next_row * self.row_bytes)
                for b in blobs:
                    f.write(b)
                f.flush()
                os.fsync(f.fileno())  # the codes are on disk before any row points at them
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                old = 0
                for rec in records:
                    got = conn.execute(
                        "SELECT n_codes FROM photos WHERE rel_path = ?", (rec[0],)
                    ).fetchone()
                    old += int(got[0]) if got else 0
                marks = ", ".join("?" * len(records[0]))
                conn.executemany(
                    f"INSERT OR REPLACE INTO photos ({_COLS}) VALUES ({marks})", records
                )
                dead_rows = int(self._meta()["dead_rows"]) + old
                conn.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("next_row", str(row)), ("dead_rows", str(dead_rows))],
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (OSError, sqlite3.Error) as e:
            raise CacheError(self.folder / "meta.sqlite", f"cannot store rows ({e})") from e

    def remove(self, rel_paths: Sequence[str]) -> None:
        """Delete these photos' rows (their codes become dead space)."""
        if self._lock_fd is None or self._conn is None:
            raise CacheError(self.folder / "meta.sqlite", "cannot remove: opened read-only")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = 0
            for p in rel_paths:
                got = conn.execute(
                    "SELECT n_codes FROM photos WHERE rel_path = ?", (db_name(p),)
                ).fetchone()
                if got:
                    n += int(got[0])
                    conn.execute("DELETE FROM photos WHERE rel_path = ?", (db_name(p),))
            dead = int(self._meta()["dead_rows"]) + n
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('dead_rows', ?)", (str(dead),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        assert self._conn is not None
        return int(self._conn.execute("SELECT count(*) FROM photos").fetchone()[0])

    def paths(self) -> dict[str, tuple[int, int]]:
        """rel_path → (size, mtime_ns) of every row (the identity the feature cache keeps)."""
        assert self._conn is not None
        got = self._conn.execute("SELECT rel_path, size, mtime_ns FROM photos").fetchall()
        return {py_name(r[0]): (int(r[1]), int(r[2])) for r in got}

    def verify(self) -> dict[str, str]:
        """Check every row's metadata and codes against their checksums now; a writer removes
        the rows that fail (name → what failed) so they are stored again."""
        assert self._conn is not None
        rows = self._conn.execute(f"SELECT {_COLS} FROM photos ORDER BY row0").fetchall()
        bad: dict[str, str] = {}
        total = int(self._meta()["next_row"]) * self.row_bytes
        path = self.codes_path
        size = path.stat().st_size if path.exists() else 0
        f = open(path, "rb") if size else None  # noqa: SIM115 (closed below)
        try:
            for r in rows:
                name = py_name(r[0])
                if _metadigest(r) != r[_CMETA]:
                    bad[name] = "checksum mismatch in its metadata"
                    continue
                start, n = int(r[_ROW0]) * self.row_bytes, int(r[_NCODES]) * self.row_bytes
                if f is None or start + n > min(size, total):
                    bad[name] = "its patch codes are missing"
                    continue
                f.seek(start)
                if digest(f.read(n)) != r[_CCODES]:
                    bad[name] = "checksum mismatch in its patch codes"
        finally:
            if f is not None:
                f.close()
        if self._lock_fd is not None:
            if bad:
                self.remove(list(bad))
            with contextlib.suppress(OSError):
                (self.folder / CHECK_MARK).unlink(missing_ok=True)
        return bad

    def nbytes(self) -> int:
        """Bytes on disk: codes, metadata and its write-ahead log."""
        names = (self.codes_name, "meta.sqlite", "meta.sqlite-wal")
        return sum((self.folder / n).stat().st_size for n in names if (self.folder / n).exists())

    def dead_fraction(self) -> float:
        """The share of the codes file that replaced or removed rows left behind."""
        meta = self._meta()
        total = int(meta["next_row"])
        return int(meta["dead_rows"]) / total if total else 0.0

    def compact(self) -> int:
        """Rewrite the codes without the dead space of replaced and removed rows; returns the
        bytes given back.

        Crash-safe like every write here: the live codes are copied, row after row, into a
        new file (``codes.<n>.bin``), fsync'd, and only then one SQLite transaction moves
        every row to it (new ``row0`` and metadata checksum; the codes and their checksum are
        the same bytes) and names it in ``meta.codes_file``; the old file is deleted after.
        Killed before the commit, the store still reads the old file and the next writer
        deletes the half-written one; after it, the next writer deletes the old one. A reader
        that opened the store before keeps reading the old file (its map holds it). Rows
        whose metadata fail their checksum are not copied but removed (stored again from the
        feature cache by the next indexing run), never given a new checksum.

        Raises:
            CacheError: opened read-only, or the copy or the commit failed (nothing changed).
        """
        if self._lock_fd is None or self._conn is None:
            raise CacheError(self.folder / "meta.sqlite", "cannot compact: opened read-only")
        conn = self._conn
        meta = self._meta()
        dead = int(meta["dead_rows"])
        if not dead:
            return 0
        gen = int(meta.get("codes_generation", "0")) + 1
        new_name = f"codes.{gen}.bin"
        new_path, old_path = self.folder / new_name, self.codes_path
        before = old_path.stat().st_size if old_path.exists() else 0
        moves: list[tuple[int, int, bytes]] = []
        damaged: list[str] = []
        at = 0
        rb = self.row_bytes
        try:
            with open(old_path, "rb") as src, open(new_path, "wb") as dst:
                for r in conn.execute(f"SELECT {_COLS} FROM photos ORDER BY row0"):
                    if _metadigest(r) != r[_CMETA]:
                        damaged.append(py_name(r[0]))
                        continue
                    n = int(r[_NCODES]) * rb
                    src.seek(int(r[_ROW0]) * rb)
                    data = src.read(n)
                    if len(data) != n:
                        damaged.append(py_name(r[0]))
                        continue
                    dst.write(data)
                    moved = list(r)
                    moved[_ROW0] = at
                    moves.append((at, _metadigest(moved), r[0]))
                    at += int(r[_NCODES])
                dst.flush()
                os.fsync(dst.fileno())
            _fsync_dir(self.folder)
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "UPDATE photos SET row0 = ?, check_meta = ? WHERE rel_path = ?", moves
                )
                for name in damaged:
                    conn.execute("DELETE FROM photos WHERE rel_path = ?", (db_name(name),))
                conn.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [
                        ("next_row", str(at)),
                        ("dead_rows", "0"),
                        ("codes_file", new_name),
                        ("codes_generation", str(gen)),
                    ],
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (OSError, sqlite3.Error) as e:
            new_path.unlink(missing_ok=True)
            raise CacheError(self.folder / "meta.sqlite", f"cannot compact the codes ({e})") from e
        self.codes_name = new_name
        old_path.unlink(missing_ok=True)
        return max(0, before - at * rb)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                filelock.unlock(self._lock_fd)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> PatchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------
    def load_bank(
        self,
        bank: StoreBank | None = None,
        *,
        only: Mapping[str, tuple[int, int]] | None = None,
    ) -> StoreBank:
        """Every sound row as a bank whose patches stay in ``codes.bin`` (memory-mapped).

        Args:
            bank: an empty bank to fill (e.g. a folder's :class:`~sketchpad.gallery.query.
                CachedBank`); default a new :class:`StoreBank`.
            only: rel_path → (size, mtime_ns): keep just the rows of exactly these identities
                (the feature cache's current rows); rows of other identities are left out.
        """
        assert self._conn is not None
        conn = self._conn
        bank = StoreBank(self.folder) if bank is None else bank
        k, d = self.summary_k, self.dim
        # Rows are read one at a time from the cursor into arrays sized for the whole store
        # (and trimmed to the rows kept): holding every row's blobs at once would double the
        # memory the bank needs (≈ 10 KiB per photo) while loading.
        # one read transaction: the rows, the end of the codes and the file they are in are
        # read as of one commit (a compaction between them would move the rows)
        conn.execute("BEGIN")
        try:
            got = conn.execute("SELECT count(*), total(n_codes) FROM photos").fetchone()
            n_all, codes_all = got
            n_all, codes_all = int(n_all), int(codes_all)
            summ = np.empty((n_all, k, d), dtype="<f2")
            globs = np.empty((n_all, d), dtype="<f2")
            scales = np.empty(codes_all, dtype="<f2")
            assign = np.empty(codes_all, dtype=np.uint8)
            starts = np.empty(n_all, np.int64)  # in codes.bin
            n_codes = np.empty(n_all, np.int64)
            layouts: list[PhotoLayout] = []
            names: list[str] = []
            checks: list[int] = []
            shared: dict[tuple[int, ...], PhotoLayout] = {}  # one object per distinct layout
            j = c = 0
            for r in conn.execute(f"SELECT {_COLS} FROM photos ORDER BY row0"):
                name = r[0]
                if only is not None and only.get(py_name(name)) != (r[1], r[2]):
                    continue
                if _metadigest(r) != r[_CMETA] or r[5] != self.dim:
                    bank.damaged[py_name(name)] = "checksum mismatch in its metadata"
                    mark_for_check(self.folder)
                    continue
                key = tuple(r[3:14])
                lay = shared.get(key)
                if lay is None:
                    box = Letterbox((r[7], r[8]), r[9], (r[10], r[11], r[12], r[13]))
                    lay = PhotoLayout((r[3], r[4]), box, r[6])
                    shared[key] = lay
                t = int(r[_NCODES])
                if int(np.count_nonzero(lay.valid_patches())) != t:
                    why = "rows whose codes do not fit their layout"
                    raise CacheError(self.folder / "meta.sqlite", why)
                layouts.append(lay)
                names.append(py_name(name))
                checks.append(int(r[_CCODES]))
                summ[j] = np.frombuffer(r[_SUMM], "<f2").reshape(k, d)
                globs[j] = np.frombuffer(r[_GLOB], "<f2")
                scales[c : c + t] = np.frombuffer(r[_SCALES], "<f2")
                assign[c : c + t] = np.frombuffer(r[_ASSIGN], np.uint8)
                starts[j], n_codes[j] = int(r[_ROW0]), t
                j, c = j + 1, c + t
            if not j:
                return bank
            if j < n_all:  # rows left out: keep only what was read
                summ, globs = summ[:j].copy(), globs[:j].copy()
                starts, n_codes = starts[:j], n_codes[:j]
                scales, assign = scales[:c].copy(), assign[:c].copy()
            meta = self._meta()
            total = int(meta["next_row"])
            path = self.folder / meta.get("codes_file", "codes.bin")
            with open(path, "rb") as f:
                mm = mmap.mmap(f.fileno(), total * self.row_bytes, access=mmap.ACCESS_READ)
                reader = CodesFile(os.dup(f.fileno()), path)  # the file of the map, for pread
            codes = np.frombuffer(mm, dtype=np.uint8).reshape(total, self.row_bytes)
        finally:
            conn.execute("COMMIT")
        valid_of = {id(lay): lay.valid_patches().ravel() for lay in shared.values()}
        sizes = np.asarray([lay.grid_hw[0] * lay.grid_hw[1] for lay in layouts], np.int64)
        at = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # first bank row
        cat = np.concatenate([[0], np.cumsum(n_codes)]).astype(np.int64)  # first code row
        base_index: np.ndarray | None = None
        if self.codec in RESIDUAL:  # the summary vector each code is the residual from
            photo = np.repeat(np.arange(j, dtype=np.int32), n_codes)
            base_index = photo * np.int32(k) + assign.astype(np.int32)
            del photo
        # One block per run of photos stored one after another: each a view of the memory
        # map (dead space of replaced rows, and rows left out, lie between runs).
        cuts = np.flatnonzero(starts[1:] != starts[:-1] + n_codes[:-1]) + 1
        bounds = [0, *cuts.tolist(), j]
        blocks: list[StoreBlock] = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            lo, hi = int(starts[a]), int(starts[b - 1] + n_codes[b - 1])
            v = np.concatenate([valid_of[id(lay)] for lay in layouts[a:b]])
            row_map = np.full(len(v), -1, np.int32)  # bank row → code row (−1: padding)
            row_map[v] = np.arange(hi - lo, dtype=np.int32)
            del v
            block = StoreBlock(
                codes[lo:hi],
                scales[cat[a] : cat[b]],
                self.codec,
                d,
                photo_starts=at[a : b + 1] - at[a],
                code_starts=cat[a : b + 1] - cat[a],
                checks=checks[a:b],
                names=names[a:b],
                damaged=bank.damaged,
                mm=mm,
                folder=self.folder,
                row_map=row_map,
                reader=reader,
            )
            if base_index is not None:
                block.base_index = base_index[cat[a] : cat[b]]
                block.base_products = bank.summary_products
                block.base_vectors = summ.reshape(-1, d)
            blocks.append(block)
        bank.add_block_rows(layouts, globs, blocks, names=names, summaries=summ)
        return bank


def _fsync_dir(folder: Path) -> None:
    """Make a file created in ``folder`` durable (its directory entry), where the OS can."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
