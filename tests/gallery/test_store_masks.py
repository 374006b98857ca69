"""Masks of a store-backed (two-stage) query come from the feature cache's exact float16 rows
(issue 19): the same masks as the exact method, bit for bit; a cache row missing or damaged
falls back to the store's codes, and the log says so (once)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from planted import SKETCH
from test_index import make_photos

from sketchpad.gallery.cache import FeatureCache
from sketchpad.gallery.cache_rows import db_name
from sketchpad.gallery.index import index_folder, model_key
from sketchpad.gallery.query import CachedBank, load_bank
from sketchpad.search.core import SearchCore, SearchResult
from sketchpad.search.spec import QuerySpec
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.segmenter import Segmenter

N = 9
HW = (24, 32)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    # "fixed" calibration: no gallery statistics, so the exact method's masks and the
    # store-backed query's are comparable bit for bit (with "gallery-relative" the store's
    # statistics sample is read from its codes)
    bb = create_backbone("test-clip-tiny", pretrained=False, device="cpu")
    return Segmenter(bb, calibration="fixed", tau=0.2)


def indexed(tmp_path: Path, seg: Segmenter) -> Path:
    folder = tmp_path / "photos"
    make_photos(folder, N, seed=3)
    index_folder(folder, seg, batch_size=4)
    return folder


def probs(
    core: SearchCore, result: SearchResult, bank: CachedBank
) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    out = {}
    for i, name in enumerate(bank.names):
        m = core.mask(result, bank, i, threshold=0.5, out_hw=HW)
        out[name] = (m.prob, m.mask, m.score)
    return out


def test_store_masks_are_the_exact_methods_bit_for_bit(tmp_path: Path, seg: Segmenter) -> None:
    folder = indexed(tmp_path, seg)
    spec = QuerySpec(sketch=SKETCH)
    exact_core = SearchCore(seg, exact=True)
    with load_bank(folder, model_key(seg), exact=True) as ebank:
        assert not ebank.from_store
        want = probs(exact_core, exact_core.search(spec, ebank), ebank)
    core = SearchCore(seg, min_photos=1, top_n=3)
    with load_bank(folder, model_key(seg), min_photos=1) as bank:
        assert bank.from_store and bank.exact_patches is not None
        result = core.search(spec, bank)
        assert not result.exact  # the two-stage query, on the store's codes
        got = probs(core, result, bank)
        source, bank.exact_patches = bank.exact_patches, None  # what the codes alone give
        coded = probs(core, result, bank)
        bank.exact_patches = source
    assert sorted(got) == sorted(want)
    for name, (prob, mask, score) in got.items():
        np.testing.assert_array_equal(prob, want[name][0], err_msg=name)
        np.testing.assert_array_equal(mask, want[name][1], err_msg=name)
        assert score == float(result.photo_scores[bank.names.index(name)])  # the badge's
    # the codes' masks differ (else this test could not tell the two sources apart)
    assert any(not np.array_equal(coded[n][0], got[n][0]) for n in got)
    assert not bank.exact_patches  # closing the bank closed the cache reader


def test_a_missing_or_damaged_cache_row_falls_back_to_the_codes(
    tmp_path: Path, seg: Segmenter, caplog: pytest.LogCaptureFixture
) -> None:
    folder = indexed(tmp_path, seg)
    spec = QuerySpec(sketch=SKETCH)
    core = SearchCore(seg, min_photos=1, top_n=3)
    with load_bank(folder, model_key(seg), min_photos=1) as bank:
        assert bank.from_store
        result = core.search(spec, bank)
        source, bank.exact_patches = bank.exact_patches, None
        coded = probs(core, result, bank)
        bank.exact_patches = source
        exact = probs(core, result, bank)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # (INFO: index)
        # two photos whose masks from the codes differ from those from the exact rows
        gone, bad = [n for n in bank.names if not np.array_equal(coded[n][0], exact[n][0])][:2]
        # a row removed from the cache (as if damaged and dropped) and one damaged in place
        with FeatureCache.open(folder, model_key(seg)) as cache:
            cache.remove([gone])
            where = cache.path
        key = (db_name(bad),)
        with sqlite3.connect(where) as db:
            sql = "SELECT patches FROM features WHERE rel_path = ?"
            blob = bytearray(db.execute(sql, key).fetchone()[0])
            blob[10] ^= 0xFF
            db.execute("UPDATE features SET patches = ? WHERE rel_path = ?", (blob, *key))
        db.close()
        with caplog.at_level(logging.WARNING):
            after = probs(core, result, bank)
    for name in (gone, bad):
        np.testing.assert_array_equal(after[name][0], coded[name][0], err_msg=name)
    for name in set(after) - {gone, bad}:
        np.testing.assert_array_equal(after[name][0], exact[name][0], err_msg=name)
    fallback = [r for r in caplog.records if "made from the compressed patch store" in r.message]
    assert len(fallback) == 1 and min(gone, bad, key=bank.names.index) in fallback[0].message
