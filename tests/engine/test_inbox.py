"""The worker's inbox on its own (no Qt): newest-wins slots, order by generation, stop,
cancellation, staleness and idleness."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from standins import sketch_at

from sketchpad.engine.inbox import Inbox
from sketchpad.engine.requests import (
    LabelRequest,
    LoadModel,
    MaskRequest,
    OpenFolder,
    QueryRequest,
)
from sketchpad.search.model import ModelChoice
from sketchpad.search.spec import QuerySpec


def q(gen: int) -> QueryRequest:
    return QueryRequest(generation=gen, spec=QuerySpec(sketch=sketch_at(float(gen))))


def load(gen: int, backbone_id: str = "planted") -> LoadModel:
    return LoadModel(generation=gen, model=ModelChoice(backbone_id))


def label(gen: int) -> LabelRequest:
    return LabelRequest(
        generation=gen, sketch=sketch_at(0.0), labels=("a", "b"), model=ModelChoice("clip")
    )


def test_a_newer_query_replaces_the_pending_one() -> None:
    box = Inbox()
    for g in range(5):
        box.put(q(g))
    got = box.take(timeout_s=0)
    assert isinstance(got, QueryRequest) and got.generation == 4
    box.done()
    assert box.take(timeout_s=0) is None
    assert box.idle()


def test_requests_are_taken_in_generation_order_and_jobs_all_run() -> None:
    box = Inbox()
    box.put(load(0))
    box.put(OpenFolder(1, Path("a")))
    box.put(q(2))
    box.put(OpenFolder(generation=3, folder=Path("b")))
    box.put(MaskRequest(generation=4, query_generation=2, names=("x",)))
    box.put(q(5))  # replaces 2: taken after OpenFolder 3 (order of asking), before masks 4
    order = []
    while (r := box.take(timeout_s=0)) is not None:
        order.append((type(r).__name__, r.generation))
        box.done()
    assert order == [
        ("LoadModel", 0),
        ("OpenFolder", 1),
        ("OpenFolder", 3),
        ("MaskRequest", 4),
        ("QueryRequest", 5),
    ]


def test_take_urgent_hands_out_only_queries_and_masks() -> None:
    box = Inbox()
    box.put(OpenFolder(generation=0, folder=Path("a")))
    assert box.take_urgent() is None
    box.put(q(1))
    box.put(MaskRequest(generation=2, query_generation=1, names=("x",), channel="viewer"))
    box.put(
        MaskRequest(generation=3, query_generation=1, names=("y",), channel="viewer")
    )  # replaces 2 (same channel)
    got = [box.take_urgent(), box.take_urgent(), box.take_urgent()]
    assert [type(r).__name__ for r in got[:2]] == ["QueryRequest", "MaskRequest"]
    assert got[1].generation == 3 and got[2] is None
    assert box.has_queued_job()


def test_stale_checks() -> None:
    box = Inbox()
    box.put(q(3))
    assert not box.is_stale_query(3)
    box.put(q(7))
    assert box.is_stale_query(3) and not box.is_stale_query(7)
    m = MaskRequest(generation=8, query_generation=7, names=("x",))
    box.put(m)
    assert not box.is_stale_mask(m)
    box.put(MaskRequest(generation=9, query_generation=7, names=("y",)))
    assert box.is_stale_mask(m)  # a newer request on its channel
    box.put(MaskRequest(generation=10, query_generation=7, names=("z",), channel="viewer"))
    m11 = MaskRequest(generation=11, query_generation=7, names=("x",), channel="other")
    box.put(m11)
    assert not box.is_stale_mask(m11)
    box.put(q(12))
    assert box.is_stale_mask(m11)  # a newer query


def test_cancel_applies_to_the_folders_asked_for_up_to_then() -> None:
    box = Inbox()
    assert not box.indexing_cancelled(4)
    box.cancel_indexing(4)
    assert box.indexing_cancelled(3) and box.indexing_cancelled(4)
    assert not box.indexing_cancelled(5)
    box.stop()
    assert box.indexing_cancelled(5)


def test_stop_wakes_a_blocked_worker_and_ends_taking() -> None:
    box = Inbox()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(box.take()))
    t.start()
    for _ in range(10_000):  # until the worker is waiting on the inbox's condition
        with box._cond:
            if box._cond._waiters:  # type: ignore[attr-defined]
                break
        t.join(0.001)
    with box._cond:
        assert box._cond._waiters and got == []  # type: ignore[attr-defined]  # blocked in take()
    box.stop()
    t.join(2.0)
    assert not t.is_alive() and got == [None]
    box.put(q(1))
    assert box.take(timeout_s=0) is None and box.take_urgent() is None


def test_idle_waits_for_the_request_in_hand() -> None:
    box = Inbox()
    box.put(OpenFolder(generation=0, folder=Path("a")))
    assert not box.idle()
    box.take()
    assert not box.pending()  # nothing waiting, one request in hand
    assert not box.idle() and not box.wait_idle(0.01)
    threading.Timer(0.05, box.done).start()
    assert box.wait_idle(2.0)


def test_requests_are_validated() -> None:
    with pytest.raises(ValueError, match="sketch or some words"):
        QuerySpec(sketch=None)
    with pytest.raises(ValueError, match="alpha"):
        QuerySpec(sketch=sketch_at(0), alpha=1.5)
    with pytest.raises(ValueError, match="threshold"):
        QueryRequest(generation=0, spec=QuerySpec(sketch=sketch_at(0)), threshold=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        OpenFolder(generation=0, folder=Path("a"), batch_size=0)
    with pytest.raises(ValueError, match="generation"):
        load(-1)
    with pytest.raises(ValueError, match="backbone id or a checkpoint"):
        ModelChoice(None)
    with pytest.raises(TypeError):
        Inbox().put("not a request")  # type: ignore[arg-type]


def test_a_newer_label_request_replaces_the_pending_one_and_overtakes_indexing() -> None:
    box = Inbox()
    box.put(OpenFolder(0, Path("a")))
    box.put(label(1))
    box.put(label(2))
    assert box.is_stale_label(1) and not box.is_stale_label(2)
    got = box.take_urgent()  # served between indexing batches, like queries
    assert isinstance(got, LabelRequest) and got.generation == 2
    box.done()
    assert box.take_urgent() is None
    assert not box.idle()  # the folder is still waiting
