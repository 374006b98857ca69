"""Indexing keeps the folder's patch store in step with its feature cache (issue 19): the same
photo identities, deletions and re-encodes followed, a killed run resumed, and queries of a
large folder read from the store (the size rule lowered through ``min_photos``)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_index import ROOT, make_photos

from sketchpad.gallery.cache import FeatureCache
from sketchpad.gallery.index import index_folder, model_key
from sketchpad.gallery.patch_store import PatchStore, store_path
from sketchpad.gallery.query import load_bank
from sketchpad.gallery.store_bank import CHECK_MARK
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.segmenter import Segmenter


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return Segmenter(create_backbone("test-clip-tiny", pretrained=False, device="cpu"))


def identities(folder: Path, seg: Segmenter) -> tuple[dict, dict]:
    """(the cache's rel_path → (size, mtime_ns), the store's)."""
    with FeatureCache.open(folder, model_key(seg), writer=False) as cache:
        want = cache.paths()
        where = store_path(cache.path)
    with PatchStore.open(where, writer=False) as store:
        return want, store.paths()


def stored_close_to_cached(folder: Path, seg: Segmenter) -> None:
    """Every store row decodes to its cache row (same name, patches within the codec's
    error)."""
    key = model_key(seg)
    with FeatureCache.open(folder, key, writer=False) as cache:
        feats = dict(cache.items())
    with load_bank(folder, key, min_photos=1) as bank:
        assert bank.from_store
        assert sorted(bank.names) == sorted(feats)
        for i, name in enumerate(bank.names):
            rows, _ = bank.photo_rows(np.array([i]))
            got = bank.take_rows(rows)
            want = feats[name].patches.astype(np.float32)
            valid = bank.valid[rows]
            assert not got[~valid].any()  # letterbox padding has no codes: zeros
            got, want = got[valid], want[valid]
            cos = np.sum(got * want, axis=1) / (
                np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1)
            )
            assert cos.min() > 0.97, name


def test_indexing_writes_store_rows_of_the_cache_identities(
    tmp_path: Path, seg: Segmenter
) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 7)
    index_folder(folder, seg, batch_size=3)
    want, have = identities(folder, seg)
    assert len(want) == 7 and have == want
    stored_close_to_cached(folder, seg)
    # the size rule: a small folder reads float16 rows, ``exact`` never reads the store
    with load_bank(folder, model_key(seg), min_photos=8) as bank:
        assert len(bank) == 7 and not bank.from_store
    with load_bank(folder, model_key(seg), min_photos=1, exact=True) as bank:
        assert len(bank) == 7 and not bank.from_store
    with load_bank(folder, model_key(seg), min_photos=100, exact=False) as bank:
        assert bank.from_store


def test_deleted_and_replaced_photos_update_both(tmp_path: Path, seg: Segmenter) -> None:
    folder = tmp_path / "photos"
    paths = make_photos(folder, 6)
    index_folder(folder, seg, batch_size=4)
    paths[2].unlink()
    rng = np.random.default_rng(9)  # new content, a new size and time: re-encoded
    Image.fromarray(rng.integers(0, 256, (70, 30, 3), dtype=np.uint8)).save(paths[4])
    st = paths[4].stat()
    os.utime(paths[4], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    s = index_folder(folder, seg)
    assert (s.indexed, s.removed) == (1, 1)
    want, have = identities(folder, seg)
    assert "img2.png" not in have and have == want
    stored_close_to_cached(folder, seg)  # img4.png: the new features, not the old
    # two of seven rows' codes were dead (≥ a quarter): the run compacted the store
    with PatchStore.open(store_path(s.cache_path), writer=False) as store:
        assert store.dead_fraction() == 0.0 and store.codes_name != "codes.bin"
        live = sum(store.load_bank().valid)
        assert store.codes_path.stat().st_size == live * store.row_bytes


def test_a_lost_or_damaged_store_is_refilled_from_the_cache(
    tmp_path: Path, seg: Segmenter
) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 5)
    first = index_folder(folder, seg)
    where = store_path(first.cache_path)
    with PatchStore.open(where) as store:  # a row lost, as if killed between the commits
        store.remove(["img1.png"])
    with load_bank(folder, model_key(seg), min_photos=1) as bank:
        assert not bank.from_store and len(bank) == 5  # a lagging store is not used
    s = index_folder(folder, seg)
    assert (s.indexed, s.up_to_date) == (0, 5)  # copied from the cache, not encoded again
    want, have = identities(folder, seg)
    assert have == want
    # damaged codes: a query reports them and marks the store; the next run re-stores them
    codes = where / "codes.bin"
    data = bytearray(codes.read_bytes())
    data[-5] ^= 0xFF  # in the codes of the photo copied last (the rest is dead space)
    codes.write_bytes(bytes(data))
    with load_bank(folder, model_key(seg), min_photos=1) as bank:
        bank.correlate(np.ones(bank.dim or 0, np.float32))
        assert len(bank.damaged) == 1
    assert (where / CHECK_MARK).exists()
    s = index_folder(folder, seg)
    assert "1 damaged rows removed" in " ".join(s.repairs) and s.indexed == 0
    assert not (where / CHECK_MARK).exists()
    with load_bank(folder, model_key(seg), min_photos=1) as bank:
        bank.correlate(np.ones(bank.dim or 0, np.float32))
        assert bank.from_store and len(bank) == 5 and not bank.damaged
    assert index_folder(folder, seg, verify=True).repairs[-1] == "patch store verified: sound"
    with sqlite3.connect(where / "meta.sqlite") as db:  # codes of a kind this version lacks
        db.execute("UPDATE meta SET value = 'q3x' WHERE key = 'codec'")
    db.close()
    s = index_folder(folder, seg)
    assert "patch store unreadable" in " ".join(s.repairs) and s.indexed == 0
    assert identities(folder, seg)[1] == want  # rebuilt from the cache
    with FeatureCache.open(folder, model_key(seg)) as cache:  # the cache lost a row (damaged)
        cache.remove(["img3.png"])
    with load_bank(folder, model_key(seg), min_photos=1) as bank:  # the store serves only
        assert bank.from_store and sorted(bank.names) == sorted(set(want) - {"img3.png"})
    s = index_folder(folder, seg, rebuild=True)
    assert s.indexed == 5 and identities(folder, seg)[1] == want


# A child that is killed (SIGKILL, by itself) at the worst moments: right after the cache
# committed a batch, before the store saw it ("between"), or after the store's codes were
# written and fsync'd but before its rows were committed ("codes").
_CHILD = """
import os, signal, sys
from pathlib import Path
import sketchpad.gallery.index as ix
import sketchpad.gallery.patch_store as ps
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.segmenter import Segmenter
seg = Segmenter(create_backbone("test-clip-tiny", pretrained=False, device="cpu"))
where = sys.argv[2]
calls = [0]
if where == "between":
    put = ix._StoreWriter.put
    def dying_put(self, items):
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        put(self, items)
    ix._StoreWriter.put = dying_put
else:
    real = os.fsync
    class Os:
        def __getattr__(self, name):
            return getattr(os, name)
        def fsync(self, fd):
            real(fd)
            calls[0] += 1
            if calls[0] == 3:
                os.kill(os.getpid(), signal.SIGKILL)
    ps.os = Os()
ix.index_folder(Path(sys.argv[1]), seg, batch_size=2)
"""


@pytest.mark.parametrize("where", ["between", "codes"])
def test_a_killed_index_resumes_with_the_store_in_step(
    tmp_path: Path, seg: Segmenter, home: Path, where: str
) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 10)
    env = {**os.environ, "SKETCHPAD_HOME": str(home), "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder), where], env=env, timeout=300, check=False
    )
    assert child.returncode == -signal.SIGKILL
    want, have = identities(folder, seg)
    assert len(want) == 6 and len(have) == 4  # the cache committed a batch the store lacks
    s = index_folder(folder, seg)
    assert (s.indexed, s.up_to_date) == (4, 6)  # the killed batch is not encoded again
    want, have = identities(folder, seg)
    assert len(want) == 10 and have == want
    with PatchStore.open(store_path(s.cache_path), writer=False) as store:
        row_bytes, size = store.row_bytes, (store.folder / "codes.bin").stat().st_size
    with load_bank(folder, model_key(seg), min_photos=1) as bank:
        assert size == int(bank.valid.sum()) * row_bytes  # no dead or half-written codes
    stored_close_to_cached(folder, seg)
