"""Queries through the Engine: answers over the indexed folder, masks at thumbnail size,
newest-wins with 50 rapid queries, errors as `failed` signals, the real tiny CLIP."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from planted import GALLERY, box_mask
from qtevents import deliver_posted_events
from standins import Recorder, StandInLoader, has_object, make_photos, sketch_at

from sketchpad.engine.client import Engine
from sketchpad.engine.requests import FolderSummary, ModelInfo, QueryResult
from sketchpad.engine.worker import mask_hw
from sketchpad.sketch.model import Sketch, Stroke

WAIT_MS = 10_000


def open_indexed(engine: Engine, qtbot: Any, folder: Path, **kw: Any) -> FolderSummary:
    with qtbot.waitSignal(engine.modelLoaded, timeout=WAIT_MS):
        engine.load_model("planted")
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as blocker:
        engine.open_folder(folder, **kw)
    return blocker.args[0]


def test_a_query_ranks_every_photo_and_masks_the_best(
    engine: Engine, qtbot: Any, photos: Any, recorder: Recorder
) -> None:
    folder = photos(len(GALLERY))
    summary = open_indexed(engine, qtbot, folder, batch_size=3)
    assert summary.photos == len(GALLERY) and summary.index is not None
    assert summary.index.indexed == len(GALLERY) and not summary.cancelled
    info = recorder.of("modelLoaded")[0][0]
    assert recorder.of("downloadProgress") == [(1 << 40, None)]
    assert isinstance(info, ModelInfo) and info.backbone_id == "planted"

    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        gen = engine.query(sketch_at(0), top_k=4, mask_names=("p001.png",), mask_side=64)
    r: QueryResult = blocker.args[0]
    assert r.generation == gen and not r.indexing
    assert sorted(r.names) == [f"p{i:03d}.png" for i in range(len(GALLERY))]
    assert r.photo_scores.shape == (len(GALLERY),) and r.ranking.shape == (len(GALLERY),)
    best = {r.names[i] for i in r.ranking[:4]}
    assert best == {n for n in r.names if has_object(n)}
    assert set(r.masks) == best | {"p001.png"}
    for name, m in r.masks.items():
        hw, boxes = GALLERY[int(name[1:4])]
        assert m.mask.shape == mask_hw(hw, 64) and max(m.mask.shape) == 64
        assert m.mask.any() == bool(boxes)  # no concept, no mask
    m0 = r.masks["p000.png"]
    assert m0.mask[32, 32] and not m0.mask[2, 2]  # the centre square, not the corner
    assert engine.wait_until_idle()
    busy = [a[0] for a in recorder.of("busyChanged")]
    assert busy[0] is True and busy[-1] is False


def test_masks_on_request_follow_the_latest_query(engine: Engine, qtbot: Any, photos: Any) -> None:
    folder = photos(len(GALLERY))
    open_indexed(engine, qtbot, folder)
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        gen = engine.query(sketch_at(0))
    assert blocker.args[0].masks == {}
    with qtbot.waitSignal(engine.masksFinished, timeout=WAIT_MS) as blocker:
        engine.request_masks(("p000.png", "p002.png", "gone.png"), side=None)
    res = blocker.args[0]
    assert res.query_generation == gen and set(res.masks) == {"p000.png", "p002.png"}
    for name in res.masks:
        hw, boxes = GALLERY[int(name[1:4])]
        m = res.masks[name]
        assert m.mask.shape == hw and not m.refined
        assert (m.mask & box_mask(hw, boxes)).sum() > 0.8 * box_mask(hw, boxes).sum()
    # The large view: CRF-refined (reads the photo in the worker).
    with qtbot.waitSignal(engine.masksFinished, timeout=WAIT_MS) as blocker:
        engine.request_masks(("p000.png",), side=None, crf=True, channel="viewer")
    crf = blocker.args[0]
    assert crf.channel == "viewer" and crf.masks["p000.png"].refined


def test_fifty_rapid_queries_deliver_only_the_newest(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader
) -> None:
    open_indexed(engine, qtbot, photos(len(GALLERY)))
    gate = loader.backbone.gate = threading.Event()
    raw: list[int] = []  # straight from the worker, before the Engine's own filter
    engine.worker.queryFinished.connect(lambda r: raw.append(r.generation))
    delivered: list[QueryResult] = []
    engine.queryFinished.connect(delivered.append)
    calls_before = loader.backbone.sketch_calls
    gens = [engine.query(sketch_at(0.0), top_k=2)]
    # The first one is being computed while the other 49 arrive.
    qtbot.waitUntil(lambda: loader.backbone.sketch_calls > calls_before, timeout=WAIT_MS)
    try:
        gens += [engine.query(sketch_at(float(k)), top_k=2) for k in range(1, 50)]
    finally:
        gate.set()
    assert engine.wait_until_idle(WAIT_MS / 1000)
    assert [r.generation for r in delivered] == [gens[-1]]
    assert raw == [gens[-1]]  # the worker itself never emitted a stale result
    assert delivered[0].masks and len(delivered[0].names) == len(GALLERY)
    # Pending queries were replaced, not run: far fewer forwards than queries.
    assert loader.backbone.sketch_calls - calls_before == 2


def test_the_engine_drops_a_result_that_arrives_after_a_newer_query(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader
) -> None:
    """The second check, on the GUI thread: a result emitted just before a newer query was
    asked for (so the worker could not know) is not delivered."""
    open_indexed(engine, qtbot, photos(len(GALLERY)))
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(sketch_at(0))
    late = blocker.args[0]
    gate = loader.backbone.gate = threading.Event()  # hold the newer query in the worker
    newer = engine.query(sketch_at(1))
    delivered: list[QueryResult] = []
    engine.queryFinished.connect(delivered.append)
    try:
        engine.worker.queryFinished.emit(late)  # the older result arrives now
        deliver_posted_events()
        assert delivered == []
    finally:
        gate.set()
    assert engine.wait_until_idle(WAIT_MS / 1000)
    assert [r.generation for r in delivered] == [newer]


def test_an_exception_in_the_worker_is_reported_and_the_next_query_works(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader
) -> None:
    open_indexed(engine, qtbot, photos(len(GALLERY)))
    loader.backbone.fail_next_sketch = True
    with qtbot.waitSignal(engine.failed, timeout=WAIT_MS) as blocker:
        gen = engine.query(sketch_at(0))
    assert blocker.args[0] == gen
    assert "injected failure" in blocker.args[1] and "planted" in blocker.args[1]
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        gen2 = engine.query(sketch_at(1), top_k=1)
    assert blocker.args[0].generation == gen2 and blocker.args[0].masks


def test_failures_name_the_model_or_the_missing_step(
    engine: Engine, qtbot: Any, photos: Any, tmp_path: Path
) -> None:
    with qtbot.waitSignal(engine.failed, timeout=WAIT_MS) as blocker:
        engine.query(sketch_at(0))
    assert "No model is loaded" in blocker.args[1]
    with qtbot.waitSignal(engine.failed, timeout=WAIT_MS) as blocker:
        engine.load_model("no-such-model")
    assert "no-such-model" in blocker.args[1] and "'" not in blocker.args[1][:30]
    with qtbot.waitSignal(engine.modelLoaded, timeout=WAIT_MS):
        engine.load_model("planted")
    with qtbot.waitSignal(engine.failed, timeout=WAIT_MS) as blocker:
        engine.query(sketch_at(0))
    assert "No photo folder is open" in blocker.args[1]
    missing = tmp_path / "missing"
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as blocker:
        engine.open_folder(missing)
    summary = blocker.args[0]
    assert summary.error is not None and str(missing) in summary.error
    assert summary.photos == 0 and summary.index is None


def test_composed_and_text_queries(engine: Engine, qtbot: Any, photos: Any) -> None:
    open_indexed(engine, qtbot, photos(len(GALLERY)))
    two = Sketch(
        strokes=(
            Stroke(np.array([[0.0, 0.0], [10.0, 10.0]]), id="a"),
            Stroke(np.array([[90.0, 90.0], [99.0, 99.0]]), id="b"),
        ),
        width=100,
        height=100,
    )
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(two, compose=True, groups=(("a",), ("b",)), top_k=1)
    r = blocker.args[0]
    assert [s.query.label for s in r.scores] == ["sketch", "group 1", "group 2"]
    (m,) = r.masks.values()
    assert m.group_map is not None and m.group_map[m.mask].min() >= 1
    # Words alone find what they name (tests/engine/test_query_results.py checks by result).
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(None, text="a red square", top_k=1)
    assert blocker.args[0].scores[0].query.label == "text: a red square"


def test_loading_another_model_reopens_the_folder(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader, recorder: Recorder
) -> None:
    open_indexed(engine, qtbot, photos(3))
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as blocker:
        engine.load_model("planted")
    assert len(loader.requests) == 2
    assert blocker.args[0].photos == 3 and blocker.args[0].index.up_to_date == 3


@pytest.mark.parametrize("backbone_id", ["test-clip-tiny", "test-dinov2-tiny"])
def test_tiny_registry_models_end_to_end(
    make_engine: Any, qtbot: Any, tmp_path: Path, backbone_id: str
) -> None:
    """The default loader (registry, random weights) through indexing, a query and masks."""
    engine = make_engine()
    folder = tmp_path / "photos"
    make_photos(folder, 5)
    with qtbot.waitSignal(engine.modelLoaded, timeout=60_000) as blocker:
        engine.load_model(backbone_id, pretrained=False, device="cpu")
    assert blocker.args[0].backbone_id == backbone_id and blocker.args[0].device == "cpu"
    with qtbot.waitSignal(engine.indexFinished, timeout=60_000) as blocker:
        engine.open_folder(folder, batch_size=2)
    assert blocker.args[0].photos == 5
    with qtbot.waitSignal(engine.queryFinished, timeout=60_000) as blocker:
        engine.query(sketch_at(0), top_k=5, mask_side=32, threshold=0.3)
    r = blocker.args[0]
    assert len(r.names) == 5 and np.isfinite(r.photo_scores).all() and len(r.masks) == 5
    assert all(max(m.mask.shape) == 32 for m in r.masks.values())


def test_weights_not_found_is_reported_quickly_with_the_fix(make_engine: Any, qtbot: Any) -> None:
    engine = make_engine()
    with qtbot.waitSignal(engine.failed, timeout=WAIT_MS) as blocker:
        engine.load_model("test-clip-tiny", pretrained=True, offline=True)
    assert "No weights found for test-clip-tiny" in blocker.args[1]


def test_a_new_threshold_reranks_without_running_the_model(
    engine: Engine, qtbot: Any, photos: Any, loader: StandInLoader
) -> None:
    """The threshold slider: the same query at another threshold reuses its vectors and its
    product; the answer equals a fresh query's at that threshold."""
    folder = photos(len(GALLERY))
    open_indexed(engine, qtbot, folder)
    sketch, other = sketch_at(0), sketch_at(1)
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(sketch, threshold=0.5, mask_names=("p000.png",), mask_side=64)
    low: QueryResult = blocker.args[0]
    calls = loader.backbone.sketch_calls
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(sketch, threshold=0.97, mask_names=("p000.png",), mask_side=64)
    high: QueryResult = blocker.args[0]
    assert loader.backbone.sketch_calls == calls  # no model run
    assert high.threshold == 0.97
    assert high.masks["p000.png"].mask.sum() < low.masks["p000.png"].mask.sum()
    # A different sketch with the same planted embedding runs the model: same answer.
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(other, threshold=0.97, mask_names=("p000.png",), mask_side=64)
    fresh: QueryResult = blocker.args[0]
    assert loader.backbone.sketch_calls == calls + 1
    np.testing.assert_array_equal(fresh.photo_scores, high.photo_scores)
    np.testing.assert_array_equal(fresh.masks["p000.png"].mask, high.masks["p000.png"].mask)
    # Composing changes the query: the model runs again.
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS):
        engine.query(other, compose=True, threshold=0.97)
    assert loader.backbone.sketch_calls == calls + 2
