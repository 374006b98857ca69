"""Indexing in the worker: batches that a query overtakes, a gallery that grows as batches are
cached, cancellation between batches, out-of-memory fallback, and shutdown mid-indexing that
joins promptly and leaves the cache consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from planted import GALLERY
from standins import Recorder, StandInLoader, sketch_at

from sketchpad.engine.client import Engine
from sketchpad.engine.oom import AdaptiveEmbedder, retry_on_cpu
from sketchpad.gallery.cache import FeatureCache
from sketchpad.gallery.index import model_key
from sketchpad.vision.segmenter import Segmenter

WAIT_MS = 10_000
N = 24  # photos in a slow folder
BATCH = 2


def load(engine: Engine, qtbot: Any) -> None:
    with qtbot.waitSignal(engine.modelLoaded, timeout=WAIT_MS):
        engine.load_model("planted")


def wait_progress(engine: Engine, qtbot: Any, recorder: Recorder, done: int) -> None:
    """Wait until a batch beyond ``done`` photos has been committed."""
    qtbot.waitUntil(
        lambda: any(a[1] >= done for a in recorder.of("indexProgress")), timeout=WAIT_MS
    )


def cached_rows(folder: Path, loader: StandInLoader) -> dict[str, tuple[int, int]]:
    """The cache's valid rows, through a *writer* open: the lock must be free."""
    key = model_key(Segmenter(loader.backbone))
    with FeatureCache.open(folder, key, writer=True) as cache:
        rows = cache.paths()
        for name in rows:
            assert cache.get(name) is not None
        return rows


def test_a_query_during_indexing_is_answered_before_indexing_ends(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader, recorder: Recorder
) -> None:
    folder = photos(N)
    load(engine, qtbot)
    loader.backbone.photo_delay_s = 0.05  # ≥ 0.6 s of indexing
    engine.open_folder(folder, batch_size=BATCH)
    wait_progress(engine, qtbot, recorder, BATCH)
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(sketch_at(0), top_k=3)
    r = blocker.args[0]
    assert "indexFinished" not in recorder.names()  # answered while indexing went on
    assert r.indexing and 0 < len(r.names) < N  # the photos indexed so far
    assert r.masks and all(n in r.names for n in r.masks)
    grown = [a[1] for a in recorder.of("bankChanged")]
    assert grown == sorted(grown) and len(grown) >= 2  # the gallery grows batch by batch

    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as blocker:
        pass
    assert blocker.args[0].photos == N and blocker.args[0].index.indexed == N
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(sketch_at(1))
    assert sorted(blocker.args[0].names) == [f"p{i:03d}.png" for i in range(N)]
    assert not blocker.args[0].indexing


def test_cancel_stops_between_batches_and_keeps_what_is_cached(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader, recorder: Recorder
) -> None:
    folder = photos(N)
    load(engine, qtbot)
    loader.backbone.photo_delay_s = 0.05
    engine.open_folder(folder, batch_size=BATCH)
    wait_progress(engine, qtbot, recorder, BATCH)
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as blocker:
        engine.cancel_indexing()
    s = blocker.args[0]
    assert s.cancelled and 0 < s.photos < N and s.index is None
    assert len(recorder.of("indexProgress")) < N // BATCH + 1
    assert engine.wait_until_idle()
    assert len(cached_rows(folder, loader)) == s.photos  # whole batches only, lock released
    # Opening again indexes only the rest.
    loader.backbone.photo_delay_s = 0.0
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as blocker:
        engine.open_folder(folder, batch_size=BATCH)
    again = blocker.args[0]
    assert again.index.indexed == N - s.photos and again.index.up_to_date == s.photos
    assert again.photos == N


def test_a_new_folder_supersedes_the_one_being_indexed(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader, recorder: Recorder
) -> None:
    slow, small = photos(N), photos(3)
    load(engine, qtbot)
    loader.backbone.photo_delay_s = 0.05
    engine.open_folder(slow, batch_size=BATCH)
    wait_progress(engine, qtbot, recorder, BATCH)
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as blocker:
        gen = engine.open_folder(small, batch_size=BATCH)
    assert blocker.args[0].generation == gen and blocker.args[0].photos == 3
    assert engine.wait_until_idle()
    assert len(cached_rows(slow, loader)) < N  # did not wait for the slow folder to end
    assert [s.generation for (s,) in recorder.of("indexFinished")] == [gen]  # old one dropped


def test_out_of_memory_halves_the_batch(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader, recorder: Recorder
) -> None:
    folder = photos(len(GALLERY) * 2)
    load(engine, qtbot)
    loader.backbone.fake_gpu(oom_above=2)
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as blocker:
        engine.open_folder(folder, batch_size=8)
    assert blocker.args[0].photos == len(GALLERY) * 2 and blocker.args[0].error is None
    assert max(loader.backbone.photo_batches) == 2
    notices = [a[0] for a in recorder.of("notice")]
    assert any("4 photo(s) at a time" in n for n in notices)
    assert any("2 photo(s) at a time" in n for n in notices)
    assert loader.backbone.device.type == "cuda"  # a smaller batch was enough


def test_out_of_memory_with_one_photo_moves_the_model_to_the_cpu(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader, recorder: Recorder
) -> None:
    folder = photos(len(GALLERY))
    load(engine, qtbot)
    loader.backbone.fake_gpu(oom_above=0)
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as blocker:
        engine.open_folder(folder, batch_size=4)
    assert blocker.args[0].photos == len(GALLERY)
    assert loader.backbone.device.type == "cpu" and loader.backbone.dtype == torch.float32
    assert any("now runs on the CPU" in a[0] for a in recorder.of("notice"))
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(sketch_at(0), top_k=1)
    assert blocker.args[0].masks


def test_out_of_memory_in_a_query_retries_on_the_cpu(loader: StandInLoader) -> None:
    seg = Segmenter(loader.backbone)
    loader.backbone.fake_gpu(oom_above=0, sketch=True)
    notices: list[str] = []
    q = retry_on_cpu(seg, "a query", lambda: seg.sketch_query(sketch_at(0)), notices.append)
    assert q.embedding.shape == (8,) and loader.backbone.device.type == "cpu"
    assert len(notices) == 1 and "a query" in notices[0]


def test_the_adaptive_embedder_gives_the_same_features(loader: StandInLoader) -> None:
    seg = Segmenter(loader.backbone)
    images = [np.zeros((64, 64, 3), np.uint8) + 255 * (i % 2) for i in range(7)]
    expect = seg.embed_photos(images, batch_size=7)
    loader.backbone.fake_gpu(oom_above=3)
    emb = AdaptiveEmbedder(seg, 7, lambda _: None)
    got = emb.embed_photos(images, batch_size=7)
    assert emb.batch_size == 3 and len(got) == 7
    for a, b in zip(got, expect, strict=True):
        assert np.array_equal(a.patches, b.patches)


def test_the_adaptive_embedder_retries_only_out_of_memory_on_an_accelerator(
    loader: StandInLoader,
) -> None:
    seg = Segmenter(loader.backbone)
    images = [np.zeros((64, 64, 3), np.uint8)] * 2
    loader.backbone.fake_gpu(oom_above=None)
    seg.embed_photos = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="boom"):
        AdaptiveEmbedder(seg, 2, lambda _: None).embed_photos(images)
    loader.backbone.device = torch.device("cpu")
    seg.embed_photos = lambda *a, **k: (_ for _ in ()).throw(  # type: ignore[method-assign]
        torch.cuda.OutOfMemoryError("out of memory")
    )
    with pytest.raises(torch.cuda.OutOfMemoryError):  # nowhere left to go
        AdaptiveEmbedder(seg, 2, lambda _: None).embed_photos(images)


def test_shutdown_during_indexing_joins_promptly_and_the_cache_is_consistent(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader, recorder: Recorder
) -> None:
    folder = photos(N)
    load(engine, qtbot)
    loader.backbone.photo_delay_s = 0.1  # 1.2 s left to index at least
    engine.open_folder(folder, batch_size=BATCH)
    wait_progress(engine, qtbot, recorder, BATCH)
    assert engine.shutdown(5.0)
    assert not engine.is_running
    rows = cached_rows(folder, loader)
    assert 0 < len(rows) < N and len(rows) % BATCH == 0  # the batch in flight, not the folder


def test_a_photo_changed_on_disk_is_reindexed_and_its_old_features_replaced(
    engine: Engine, qtbot: Any, photos: Any, recorder: Recorder
) -> None:
    """A photo changed since it was cached is indexed again: the bank (which loaded its old
    features) is reloaded when indexing ends, so no photo is in it twice and the query sees
    the new picture."""
    import os

    from PIL import Image
    from planted import photo

    folder = photos(len(GALLERY))
    load(engine, qtbot)
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS):
        engine.open_folder(folder, batch_size=BATCH)
    # p001 had nothing; now it shows an object; p000 keeps its square.
    Image.fromarray(photo((128, 128), [(0, 0, 64, 64)])).save(folder / "p001.png")
    st = os.stat(folder / "p001.png")
    os.utime(folder / "p001.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as blocker:
        engine.open_folder(folder, batch_size=BATCH)
    summary = blocker.args[0]
    assert summary.index.indexed == 1 and summary.photos == len(GALLERY)
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(sketch_at(0), mask_names=("p001.png",), mask_side=128)
    r = blocker.args[0]
    assert sorted(r.names) == [f"p{i:03d}.png" for i in range(len(GALLERY))]  # once each
    m = r.masks["p001.png"]
    assert m.mask[16, 16] and not m.mask[100, 100]  # the new picture, not the old
    assert r.photo_scores[r.names.index("p001.png")] > 0
