"""The compressed patch store: codecs, crash safety, integrity, and queries on its bank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sketchpad.gallery.cache_file import CacheError, CacheLockedError
from sketchpad.gallery.patch_store import PatchStore, StoreRow
from sketchpad.vision.letterbox import fit_letterbox
from sketchpad.vision.quant import dequantize, quantize, summarize

D, G = 16, 4


def _rows(n: int, seed: int = 0) -> list[StoreRow]:
    rng = np.random.default_rng(seed)
    box = fit_letterbox((48, 64), 64)
    out = []
    for i in range(n):
        x = rng.standard_normal((G * G, D)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out.append(StoreRow(f"p{i}.jpg", 100 + i, 7, x, (G, G), x.mean(0), box, 16))
    return out


@pytest.mark.parametrize(("codec", "tol"), [("q8", 0.01), ("q4", 0.2), ("q5r", 0.1)])
def test_codecs_round_trip_within_their_step(codec: str, tol: float) -> None:
    x = np.random.default_rng(1).standard_normal((50, D)).astype(np.float32)
    codes, scales = quantize(x, codec)  # type: ignore[arg-type]
    y = dequantize(codes, scales, codec, D)  # type: ignore[arg-type]
    err = np.abs(y - x).max(axis=1) / np.abs(x).max(axis=1)
    assert err.max() < tol


def test_summaries_give_a_small_object_its_own_vector() -> None:
    rng = np.random.default_rng(2)
    x = np.tile(np.eye(D, dtype=np.float32)[1], (G * G, 1)) + 0.05 * rng.standard_normal((16, D))
    x[5] = np.eye(D, dtype=np.float32)[0]  # one distinctive patch of sixteen
    s = summarize(x[None], None, 4)[0]
    assert np.max(s @ np.eye(D, dtype=np.float32)[0]) > 0.99


@pytest.mark.parametrize("codec", ["q8", "q4", "q4r", "q5r"])
def test_store_bank_scores_like_the_features(tmp_path: Path, codec: str) -> None:
    rows = _rows(20)
    with PatchStore.open(tmp_path / "s", codec=codec, dim=D) as store:  # type: ignore[arg-type]
        store.put(rows[:12])
        store.put(rows[12:])
        assert len(store) == 20
    with PatchStore.open(tmp_path / "s", writer=False) as store:
        bank = store.load_bank()
    assert bank.names == [r.rel_path for r in rows] and not bank.damaged
    q = np.random.default_rng(3).standard_normal(D).astype(np.float32)
    q /= np.linalg.norm(q)
    want = np.concatenate([r.patches for r in rows]) @ q
    got = bank.correlate(q)
    tol = {"q8": 0.01, "q4": 0.15, "q4r": 0.1, "q5r": 0.05}[codec]
    np.testing.assert_allclose(got, want, atol=tol)
    rows_idx = np.array([3, 40, 41, 300])
    np.testing.assert_allclose(bank.correlate_rows(q, rows_idx), got[rows_idx], atol=1e-3)
    np.testing.assert_allclose(bank.take_rows(rows_idx) @ q, got[rows_idx], atol=1e-3)
    assert bank.summary_matrix().shape == (20 * 8, D)


def test_uncommitted_codes_are_cut_and_a_second_writer_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    with PatchStore.open(folder, dim=D) as store:
        store.put(_rows(3))
        size = (folder / "codes.bin").stat().st_size
        with pytest.raises(CacheLockedError):
            PatchStore.open(folder, dim=D)
    with open(folder / "codes.bin", "ab") as f:  # a write whose transaction never committed
        f.write(b"\xff" * 1000)
    with PatchStore.open(folder, dim=D) as store:
        assert (folder / "codes.bin").stat().st_size == size
        store.put(_rows(2, seed=9))  # replaces p0, p1: their old codes become dead space
        assert len(store) == 3
    with PatchStore.open(folder, writer=False) as store:
        bank = store.load_bank()
        with pytest.raises(CacheError):
            store.put(_rows(1))
    assert sorted(bank.names) == ["p0.jpg", "p1.jpg", "p2.jpg"] and not bank.damaged


def test_damaged_codes_are_never_served(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    with PatchStore.open(folder, codec="q8", dim=D) as store:
        store.put(_rows(3))
    data = bytearray((folder / "codes.bin").read_bytes())
    data[G * G * D + 5] ^= 0x40  # a bit of photo 1's codes
    (folder / "codes.bin").write_bytes(bytes(data))
    with PatchStore.open(folder, writer=False) as store:
        bank = store.load_bank()
    q = torch.zeros(D)
    q[0] = 1.0
    cos = bank.correlate(q.numpy())
    assert np.all(cos[G * G : 2 * G * G] == -1.0) and np.all(cos[: G * G] > -1.0)
    assert list(bank.damaged) == ["p1.jpg"]
    with PatchStore.open(folder, writer=False) as store:  # the shortlist's reads: row subsets
        bank = store.load_bank()
    rows = np.arange(G * G - 2, 2 * G * G + 2)
    got = bank.correlate_rows(q.numpy(), rows)
    assert np.all(got[2:-2] == -1.0) and np.all(got[:2] > -1.0) and np.all(got[-2:] > -1.0)
    assert list(bank.damaged) == ["p1.jpg"]


def test_a_store_of_codes_this_version_cannot_read_is_refused_by_name(tmp_path: Path) -> None:
    import sqlite3

    folder = tmp_path / "s"
    with PatchStore.open(folder, dim=D) as store:
        store.put(_rows(2))
    with sqlite3.connect(folder / "meta.sqlite") as db:
        db.execute("UPDATE meta SET value = 'q3x' WHERE key = 'codec'")
    db.close()
    for writer in (False, True):
        with pytest.raises(CacheError, match="q3x.*index the folder again"):
            PatchStore.open(folder, writer=writer)


def test_a_new_store_takes_the_default_codec_where_it_fits_else_q8() -> None:
    from sketchpad.vision.quant import DEFAULT_CODEC, codec_for

    assert codec_for(512) == DEFAULT_CODEC == "q5r" and codec_for(8) == "q5r"
    assert codec_for(12) == "q8"  # q5r's bit plane needs a multiple of 8


def _mapped_kib(path: Path) -> int:
    """KiB of ``path``'s memory-mapped pages resident in this process (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1].isalnum() and "-" in line.split(" ", 1)[0]:  # a mapping's header
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc")
def test_a_query_leaves_none_of_the_codes_it_read_in_memory(tmp_path: Path) -> None:
    from planted import PlantedBackbone

    from sketchpad.search.shortlist import score_query_shortlist
    from sketchpad.vision.segmenter import Query, Segmenter

    rows = _rows(400, seed=5)  # 400 × 16 patches × 10 B of codes: many pages
    with PatchStore.open(tmp_path / "s", dim=D) as store:
        store.put(rows)
    with PatchStore.open(tmp_path / "s", writer=False) as store:
        bank = store.load_bank()
    codes = (tmp_path / "s" / "codes.bin").resolve()
    bank.sample_matrix()  # reads a sample spread over the whole file
    assert _mapped_kib(codes) == 0
    seg = Segmenter(PlantedBackbone())
    q = np.random.default_rng(6).standard_normal(D).astype(np.float32)
    got = score_query_shortlist(seg, Query(q / np.linalg.norm(q), "q"), bank, top_n=50)
    assert got.photos is not None and len(got.photos) >= 50  # it read codes
    assert _mapped_kib(codes) == 0


@pytest.mark.parametrize("codec", ["q8", "q4", "q5r"])
@pytest.mark.parametrize("dim", [8, 16, 64, 512])
def test_products_on_the_codes_equal_the_decoded_vectors(codec: str, dim: int) -> None:
    """Every decoder (a byte at a time, or eight as int64 words where the dimension allows)
    gives the products of the vectors :func:`dequantize` gives, level for level."""
    from sketchpad.vision.quant import QuantBlock

    rng = np.random.default_rng(dim)
    x = rng.standard_normal((300, dim)).astype(np.float32)
    x[:, : dim // 4] *= 3.0  # some coordinates past the clip: extreme levels
    codes, scales = quantize(x, codec)  # type: ignore[arg-type]
    base = {}  # q5r: residuals from a zero base vector
    if codec == "q5r":
        base = {"base_index": np.zeros(300, np.int64), "base_products": lambda q: np.zeros(1)}
    block = QuantBlock(codes, scales, codec, dim, **base)  # type: ignore[arg-type]
    block.STEP = 128  # several steps, the last one short
    q = rng.standard_normal(dim).astype(np.float32)
    want = dequantize(codes, scales, codec, dim) @ q  # type: ignore[arg-type]
    rows = np.array([0, 5, 6, 127, 128, 299])
    np.testing.assert_allclose(block.matvec_rows(torch.from_numpy(q), rows), want[rows], atol=1e-4)
    out = torch.empty(300)
    q16 = q.astype(np.float16)
    block.matvec(torch.from_numpy(q16), out)
    want16 = dequantize(codes, scales, codec, dim) @ q16.astype(np.float32)  # type: ignore[arg-type]
    np.testing.assert_allclose(out.numpy(), want16, atol=1e-4)


def _mixed_rows(n: int, dim: int, seed: int) -> list[StoreRow]:
    """Photos of three shapes: square (no padding), wide (half the grid padding), tall."""
    rng = np.random.default_rng(seed)
    boxes = [fit_letterbox((64, 64), 64), fit_letterbox((16, 64), 64), fit_letterbox((64, 24), 64)]
    out = []
    for i in range(n):
        x = rng.standard_normal((G * G, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out.append(StoreRow(f"m{i}.jpg", 10 + i, 3, x, (G, G), x.mean(0), boxes[i % 3], 16))
    return out


@pytest.mark.parametrize("dim", [16, 64])  # a byte at a time; eight bytes at a time
def test_photos_read_from_the_codes_file_score_as_their_rows(tmp_path: Path, dim: int) -> None:
    """The shortlist's photo reads (pread, chunk by chunk, runs of adjacent photos) give the
    cosines the row-by-row path gives, across chunk borders and the gaps replaced rows leave."""
    from sketchpad.gallery.store_bank import StoreBlock

    with PatchStore.open(tmp_path / "s", dim=dim) as store:
        store.put(_mixed_rows(30, dim, seed=1))
        store.put(_mixed_rows(4, dim, seed=2)[1:3])  # m1, m2 replaced: a gap after m0
    with PatchStore.open(tmp_path / "s", writer=False) as store:
        bank = store.load_bank()
    assert len([b for b in bank.blocks if isinstance(b, StoreBlock)]) == 2  # m0 | m3 … m2
    assert any(not v for v in bank.valid)  # letterbox padding is among the rows
    q = np.random.default_rng(4).standard_normal(dim).astype(np.float32)
    q /= np.linalg.norm(q)
    photos = np.array([0, 1, 2, 3, 4, 5, 9, 10, 11, 20, 28, 29])  # runs, across the gaps
    for step in (8, 20, 2048):  # chunks of one photo … every photo in one chunk
        StoreBlock.STEP = step
        try:
            cos, offsets, best = bank.correlate_photos(q, photos)
        finally:
            StoreBlock.STEP = 2048
        rows, want_offsets = bank.photo_rows(photos)
        want = bank.correlate_rows(q, rows)
        np.testing.assert_array_equal(offsets, want_offsets)
        np.testing.assert_allclose(cos, want, atol=1e-5)
        masked = np.where(bank.valid[rows], want, -np.inf)
        want_best = np.maximum.reduceat(masked, want_offsets[:-1])
        np.testing.assert_allclose(best, want_best, atol=1e-5)
        assert not bank.damaged  # every photo's codes read where they are


def test_a_damaged_photo_read_from_the_codes_file_is_never_served(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    with PatchStore.open(folder, dim=64) as store:
        store.put(_mixed_rows(6, 64, seed=3))
    with PatchStore.open(folder, writer=False) as store:
        bank = store.load_bank()
    block = bank.blocks[0]
    at = int(block.code_starts[2]) * block.codes.shape[1] + 3  # type: ignore[attr-defined]
    data = bytearray((folder / "codes.bin").read_bytes())
    data[at] ^= 0x10  # one bit of photo 2's codes
    (folder / "codes.bin").write_bytes(bytes(data))
    with PatchStore.open(folder, writer=False) as store:
        bank = store.load_bank()
    q = np.zeros(64, np.float32)
    q[0] = 1.0
    cos, offsets, best = bank.correlate_photos(q, np.array([1, 2, 3]))
    assert np.all(cos[offsets[1] : offsets[2]] == -1.0) and best[1] == -1.0
    assert np.all(cos[: offsets[1]] > -1.0) and np.all(best[[0, 2]] > -1.0)
    assert list(bank.damaged) == ["m2.jpg"]
    assert (folder / "check").exists()  # the next index run checks every row


def test_reading_photos_leaves_torchs_threads_as_they_were(tmp_path: Path) -> None:
    with PatchStore.open(tmp_path / "s", dim=64) as store:
        store.put(_mixed_rows(4, 64, seed=5))
    with PatchStore.open(tmp_path / "s", writer=False) as store:
        bank = store.load_bank()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        bank.correlate_photos(np.ones(64, np.float32), np.arange(4))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_compaction_gives_back_dead_space_and_keeps_every_row(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    with PatchStore.open(folder, dim=64) as store:
        store.put(_mixed_rows(12, 64, seed=7))
        store.put(_mixed_rows(6, 64, seed=8))  # m0 … m5 replaced: their old codes are dead
        store.remove(["m11.jpg"])
        assert store.dead_fraction() > 0.25
    with PatchStore.open(folder, writer=False) as store:
        before = store.load_bank()  # a reader opened before the compaction
    q = np.random.default_rng(9).standard_normal(64).astype(np.float32)
    q /= np.linalg.norm(q)
    best = before.correlate_photos(q, np.arange(len(before)))[2]
    want = dict(zip(before.names, best.tolist(), strict=True))
    with PatchStore.open(folder) as store:
        freed = store.compact()
        assert store.dead_fraction() == 0.0 and store.codes_name != "codes.bin"
        kept = _mixed_rows(11, 64, 7)
        live = sum(int(np.count_nonzero(r.letterbox.valid_patches(16))) for r in kept)
        assert store.codes_path.stat().st_size == live * store.row_bytes
        assert freed > 0 and not (folder / "codes.bin").exists()
        assert store.verify() == {}
    with PatchStore.open(folder, writer=False) as store:
        after = store.load_bank()
    assert sorted(after.names) == sorted(want) and not after.damaged
    for i, n in enumerate(after.names):
        assert after.correlate_photos(q, np.array([i]))[2][0] == pytest.approx(want[n], abs=1e-6)
    # the reader opened before still reads its rows: its map holds the old file
    got = before.correlate_photos(q, np.arange(len(before)))[2]
    np.testing.assert_allclose(got, [want[n] for n in before.names], atol=1e-6)
    assert not before.damaged


def test_a_compaction_cut_short_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    folder = tmp_path / "s"
    with PatchStore.open(folder, dim=64) as store:
        store.put(_mixed_rows(8, 64, seed=10))
        store.put(_mixed_rows(4, 64, seed=11))
        paths = store.paths()
        real = store._conn
        assert real is not None

        class Failing:  # the commit's first statement fails, as a full disk would
            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            def executemany(self, sql: str, *args: object) -> object:
                if sql.startswith("UPDATE photos"):
                    raise sqlite3.OperationalError("disk I/O error")
                return real.executemany(sql, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "_conn", Failing())
        with pytest.raises(CacheError, match="cannot compact"):
            store.compact()
        monkeypatch.setattr(store, "_conn", real)
        assert store.codes_name == "codes.bin" and store.paths() == paths
        assert sorted(p.name for p in folder.glob("codes*.bin")) == ["codes.bin"]
        assert store.verify() == {}
    # a copy killed before its commit leaves a half-written file: the next writer deletes it
    (folder / "codes.9.bin").write_bytes(b"\x00" * 100)
    with PatchStore.open(folder) as store:
        assert sorted(p.name for p in folder.glob("codes*.bin")) == ["codes.bin"]
        store.compact()
        name = store.codes_name
    # killed after its commit, before the old file went: the next writer deletes that one
    (folder / "codes.bin").write_bytes(b"\x00" * 100)
    with PatchStore.open(folder) as store:
        assert sorted(p.name for p in folder.glob("codes*.bin")) == [name]
        assert store.verify() == {} and store.paths() == paths


def test_a_row_with_damaged_metadata_is_dropped_by_a_compaction_never_resealed(
    tmp_path: Path,
) -> None:
    import sqlite3

    folder = tmp_path / "s"
    with PatchStore.open(folder, dim=64) as store:
        store.put(_mixed_rows(6, 64, seed=12))
        store.put(_mixed_rows(3, 64, seed=13))
    with sqlite3.connect(folder / "meta.sqlite") as db:  # a flipped byte in m4's scales
        sql = "SELECT scales FROM photos WHERE rel_path = ?"
        blob = bytearray(db.execute(sql, (b"m4.jpg",)).fetchone()[0])
        blob[0] ^= 1
        db.execute("UPDATE photos SET scales = ? WHERE rel_path = ?", (bytes(blob), b"m4.jpg"))
    db.close()
    with PatchStore.open(folder) as store:
        store.compact()
        assert "m4.jpg" not in store.paths() and len(store) == 5
        assert store.verify() == {}
