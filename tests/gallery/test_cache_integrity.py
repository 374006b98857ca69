"""Feature-cache integrity (issue 18): file names stored as the bytes the OS gives, a checksum
per row verified on every read (a damaged row is reported and never served), whole-cache
verification, lost writes noticed, damaged files salvaged, the schema-1 cache converted."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from test_cache import KEY, assert_same, synthetic

from sketchpad.gallery import cache_rows
from sketchpad.gallery.cache import SCHEMA_VERSION, FeatureCache

NFC = unicodedata.normalize("NFC", "café.jpg")
NFD = unicodedata.normalize("NFD", "café.jpg")
LATIN1 = os.fsdecode(b"caf\xe9 photo.jpg")  # a name copied from a Latin-1 system
NAMES = [LATIN1, os.fsdecode(b"\xff\xfe.png"), NFC, NFD, "🐄 cow.jpg", "a\nb.jpg", "sub/x.jpg"]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    return photos


def raw_rows(path: Path) -> dict[bytes, tuple]:
    with sqlite3.connect(path) as raw:
        found = raw.execute(f"SELECT {cache_rows.COLS} FROM features").fetchall()
    raw.close()
    return {r[0]: r for r in found}


def flip(path: Path, needle: bytes, at: int, mask: int = 0x40) -> None:
    """Flip bits of the byte ``at`` bytes into the first copy of ``needle`` in the file."""
    data = bytearray(path.read_bytes())
    i = data.find(needle)
    assert i >= 0 and data.find(needle, i + 1) < 0, "the bytes to damage must be unique"
    data[i + at] ^= mask
    path.write_bytes(bytes(data))


# -- names ---------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="needs byte file names")
def test_any_file_name_is_stored_losslessly(folder: Path) -> None:
    assert NFC != NFD
    rows = [(name, i, i, synthetic(i)) for i, name in enumerate(NAMES)]
    with FeatureCache.open(folder, KEY) as cache:
        cache.put(rows)
        path = cache.path
    with FeatureCache.open(folder, KEY, writer=False) as cache:
        assert set(cache.paths()) == set(NAMES)  # the NFC and NFD spellings: two rows
        assert sorted(n for n, _ in cache.items()) == sorted(NAMES)
        assert sorted(r.rel_path for r in cache.layouts()) == sorted(NAMES)
        for i, name in enumerate(NAMES):
            assert cache.is_current(name, i, i)
            assert_same(cache.get(name), synthetic(i))
        assert [n for n, p in cache.patch_rows(NAMES) if p is not None] == NAMES
    assert set(raw_rows(path)) == {os.fsencode(n) for n in NAMES}  # the OS's bytes, exactly
    with FeatureCache.open(folder, KEY) as cache:
        assert cache.remove([LATIN1, NFD]) == 2
        assert set(cache.paths()) == set(NAMES) - {LATIN1, NFD}


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="needs byte file names")
def test_a_folder_with_an_undecodable_name_has_a_cache(tmp_path: Path) -> None:
    folder = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"Fotos \xe9t\xe9")))
    folder.mkdir()
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, synthetic(1))])
    with FeatureCache.open(folder, KEY, writer=False) as cache:
        assert list(cache.paths()) == ["a.jpg"]


# -- a checksum per row ----------------------------------------------------------------------


def test_a_damaged_row_is_reported_and_never_served(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([(n, 1, 1, synthetic(i)) for i, n in enumerate(["a.jpg", "b.jpg", "c.jpg"])])
        path = cache.path
    stored = raw_rows(path)
    flip(path, stored[b"b.jpg"][14], 21)  # one bit in b's patches (SQLite sees nothing)
    flip(path, stored[b"c.jpg"][15], 5)  # one bit in c's global embedding
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    raw.close()
    with caplog.at_level(logging.WARNING), FeatureCache.open(folder, KEY, writer=False) as r:
        assert r.get("b.jpg") is None and r.get("c.jpg") is None
        assert_same(r.get("a.jpg"), synthetic(0))
        assert [n for n, _ in r.items()] == ["a.jpg"]
        assert [row.rel_path for row in r.layouts()] == ["a.jpg", "b.jpg"]  # c's layout: bad
        assert [p is None for _, p in r.patch_rows(["a.jpg", "b.jpg"])] == [False, True]
        assert set(r.damaged) == {"b.jpg", "c.jpg"}
        assert "checksum" in r.damaged["b.jpg"]
        assert r.paths().keys() == {"a.jpg", "b.jpg", "c.jpg"}  # a reader removes nothing
    assert "b.jpg" in caplog.text and "c.jpg" in caplog.text
    assert path.with_name(path.name + ".needs-check").exists()  # the next writer checks all
    with FeatureCache.open(folder, KEY) as cache:
        assert cache.paths().keys() == {"a.jpg"}  # so indexing re-encodes b and c
        assert any("2 damaged rows removed" in n for n in cache.notes), cache.notes
    assert not path.with_name(path.name + ".needs-check").exists()


def test_a_writer_removes_a_damaged_row_as_soon_as_it_meets_it(folder: Path) -> None:
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, synthetic(1)), ("b.jpg", 1, 1, synthetic(2))])
    flip(cache.path, raw_rows(cache.path)[b"a.jpg"][14], 3)
    with FeatureCache.open(folder, KEY) as cache:
        assert cache.get("a.jpg") is None
        assert cache.paths().keys() == {"b.jpg"} and cache.damaged.keys() == {"a.jpg"}


#: A row's fields, each changed in place as a damaged disk would: the checksums cover all.
FIELDS = {
    "rel_path": "CAST('z.jpg' AS BLOB)",
    **{c: f"{c} + 1" for c in ("size", "mtime_ns", "patch_size", "photo_h", "photo_w")},
    **{c: f"{c} + 1" for c in ("input_size", "x0", "y0", "x1", "y1")},
    "gh": "gw",  # a 3×4 grid read as 4×3: same byte count, different layout
    "gw": "gh",
    "patches": "zeroblob(length(patches))",
    "global_emb": "zeroblob(length(global_emb))",
    "check_meta": "check_meta + 1",
    "check_patches": "check_patches + 1",
}


@pytest.mark.parametrize("field", FIELDS)
def test_the_checksums_cover_every_field(folder: Path, field: str) -> None:
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, synthetic(1))])
        path = cache.path
    with sqlite3.connect(path) as raw:
        raw.execute(f"UPDATE features SET {field} = {FIELDS[field]}")
    raw.close()
    name = "z.jpg" if field == "rel_path" else "a.jpg"
    with FeatureCache.open(folder, KEY, writer=False) as r:
        assert r.get(name) is None and list(r.items()) == []
        whole_row = field not in ("patches", "check_patches")  # those leave the layout sound
        assert [row.rel_path for row in r.layouts()] == ([] if whole_row else [name])
        if not whole_row:
            assert [p for _, p in r.patch_rows([name])] == [None]
    with FeatureCache.open(folder, KEY, verify=True) as cache:
        assert cache.paths() == {} and "1 damaged row removed" in " ".join(cache.notes)


def test_verify_says_a_sound_cache_is_sound(folder: Path) -> None:
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([(f"p{i}.jpg", 1, 1, synthetic(i)) for i in range(5)])
    with FeatureCache.open(folder, KEY, verify=True) as cache:
        assert cache.notes == ["verified: the file and all 5 rows' checksums are sound"]
        assert len(cache) == 5
    with FeatureCache.open(folder, KEY) as cache:  # an ordinary open says nothing
        assert cache.notes == []


# -- lost writes, salvage ----------------------------------------------------------------------


def test_writes_lost_with_the_write_ahead_log_are_noticed(folder: Path) -> None:
    """The WAL holds commits not yet copied into the database file; if it is deleted (a
    cleaning tool, a partial backup) they vanish without a trace in SQLite itself. The lock
    file's count of commits notices, and the whole cache is checked."""
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, synthetic(1))])
        with sqlite3.connect(cache.path) as raw:  # a checkpoint: a.jpg is in the main file
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw.close()
        cache.put([("b.jpg", 1, 1, synthetic(2))])  # only in the WAL
        path = cache.path
        before = path.read_bytes()
    path.write_bytes(before)  # the file as it was; its log lost
    for side in ("-wal", "-shm"):
        path.with_name(path.name + side).unlink(missing_ok=True)
    with FeatureCache.open(folder, KEY) as cache:
        assert cache.paths().keys() == {"a.jpg"}
        (note,) = cache.notes
        assert "1 of its 2 writes are missing" in note and "write-ahead log" in note
        assert_same(cache.get("a.jpg"), synthetic(1))
        cache.put([("b.jpg", 1, 1, synthetic(2))])
    with FeatureCache.open(folder, KEY) as cache:  # counted again: no second alarm
        assert cache.notes == [] and len(cache) == 2


def test_a_truncated_cache_is_moved_aside_and_its_sound_rows_salvaged(folder: Path) -> None:
    rows = [(f"p{i:02d}.jpg", i, i, synthetic(i, 8, 8, 64)) for i in range(40)]
    with FeatureCache.open(folder, KEY) as cache:
        cache.put(rows)
        path = cache.path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    with FeatureCache.open(folder, KEY) as cache:
        notes = " ".join(cache.notes)
        assert "moved it aside" in notes and "sound rows salvaged" in notes, notes
        kept = cache.paths()
        assert 0 < len(kept) < 40
        for name, f in cache.items():
            i = int(name[1:3])
            assert kept[name] == (i, i)
            assert_same(f, synthetic(i, 8, 8, 64))


# -- schema 1 --------------------------------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE features (
    rel_path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    gh INTEGER NOT NULL, gw INTEGER NOT NULL, d INTEGER NOT NULL, patch_size INTEGER NOT NULL,
    photo_h INTEGER NOT NULL, photo_w INTEGER NOT NULL, input_size INTEGER NOT NULL,
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    patches BLOB NOT NULL, global_emb BLOB NOT NULL
);
"""


def write_v1_cache(path: Path, rows: list[tuple]) -> None:
    """A cache as version 1 of Sketchpad wrote it (names as text, no checksums)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA page_size = 16384")
        raw.execute("PRAGMA application_id = 1399541830")
        raw.execute("PRAGMA user_version = 1")
        raw.executescript(V1_SCHEMA)
        meta = {"schema_version": "1", **KEY.__dict__, "folder": "x"}
        raw.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        for name, size, mtime, f in rows:
            lb = f.letterbox
            raw.execute(
                f"INSERT INTO features VALUES ({', '.join('?' * 16)})",
                (name, size, mtime, *f.grid_hw, f.patches.shape[1], f.patch_size, *lb.photo_hw,
                 lb.input_size, *lb.content_xyxy, np.asarray(f.patches, "<f2").tobytes(),
                 np.asarray(f.global_embedding, "<f4").tobytes()),
            )  # fmt: skip
        raw.execute("PRAGMA journal_mode = WAL")
    raw.close()


def test_a_schema_1_cache_is_converted_in_place(folder: Path) -> None:
    from sketchpad.gallery.cache import cache_path

    path = cache_path(folder, KEY)
    bad = synthetic(9)
    nan = np.array(bad.patches)
    nan[0, 0] = np.inf  # a flipped float16 exponent: a v1 row damaged beyond doubt
    rows = [("a.jpg", 1, 2, synthetic(1)), ("ünï 🐄.jpg", 3, 4, synthetic(2))]
    write_v1_cache(
        path, [*rows, ("bad.jpg", 5, 6, bad.__class__(**{**bad.__dict__, "patches": nan}))]
    )
    with FeatureCache.open(folder, KEY, writer=False) as reader:  # readers convert nothing
        assert len(reader) == 0
    with FeatureCache.open(folder, KEY) as cache:
        (note,) = cache.notes
        assert "converted" in note and "2 rows kept" in note and "1 unsound row" in note
        assert cache.paths() == {"a.jpg": (1, 2), "ünï 🐄.jpg": (3, 4)}
        for name, _, _, f in rows:
            assert_same(cache.get(name), f)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    raw.close()
    assert not list(path.parent.glob(path.name + ".old-schema-*"))  # kept, not moved aside
