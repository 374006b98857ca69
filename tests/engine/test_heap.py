"""The window's heap policy (sketchpad.engine.heap): code whose objects live on (the engine's
import, model loads) runs with the cyclic collector paused, and what it made is frozen, so
that the collector's full passes (which hold the GIL: the GUI thread waits) stop walking the
~430,000 objects of torch, open_clip and the model (``bench ui``: 211 and 219 ms stalls)."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from standins import StandInLoader

from sketchpad.engine import heap
from sketchpad.engine.inbox import Inbox
from sketchpad.engine.requests import LabelRequest, LoadModel
from sketchpad.engine.worker import InferenceWorker
from sketchpad.search.model import ModelChoice
from sketchpad.sketch.model import Sketch


class _Made:
    """An object made inside a block (a class of our own: tracked by the collector)."""


def _in_generations(obj: object) -> bool:
    """Whether the collector's passes would walk ``obj`` (frozen objects are in none)."""
    return any(o is obj for o in gc.get_objects())


@pytest.fixture
def policy() -> Iterator[None]:
    """The window's policy on for one test; the interpreter's own collector afterwards."""
    was = gc.isenabled()
    heap.keep_long_lived()
    yield
    heap.keep_long_lived(False)
    gc.unfreeze()
    if was:
        gc.enable()


def test_a_long_lived_block_pauses_the_collector_and_freezes_what_it_made(policy: None) -> None:
    assert gc.isenabled()
    with heap.long_lived("test"):
        assert not gc.isenabled()
        made = _Made()
        assert gc.is_tracked(made) and _in_generations(made)
    assert gc.isenabled()
    assert gc.is_tracked(made) and not _in_generations(made)  # frozen: walked by no pass
    after = _Made()
    assert _in_generations(after)  # what comes later is collected as usual


def test_the_collector_resumes_when_the_last_of_overlapping_blocks_ends(policy: None) -> None:
    """The engine's import and a model load may overlap, in two threads."""
    inside, leave = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        with heap.long_lived("other"):
            inside.set()
            assert leave.wait(10)
        seen.append(gc.isenabled())

    t = threading.Thread(target=other)
    with heap.long_lived("first"):
        t.start()
        assert inside.wait(10)
    assert not gc.isenabled()  # the other block still runs
    leave.set()
    t.join(10)
    assert seen == [True] and gc.isenabled()


def test_a_failing_block_still_resumes_the_collector(policy: None) -> None:
    with pytest.raises(RuntimeError), heap.long_lived("failing"):
        raise RuntimeError("no weights")
    assert gc.isenabled()


def test_off_by_default_a_block_changes_nothing() -> None:
    assert not heap.keeping_long_lived()
    frozen = gc.get_freeze_count()
    with heap.long_lived("plain"):
        assert gc.isenabled()
        made = _Made()
    assert _in_generations(made) and gc.get_freeze_count() == frozen


def test_the_window_turns_the_policy_on(qapp: Any) -> None:
    from sketchpad.ui.app import tune_interpreter

    try:
        tune_interpreter()
        assert heap.keeping_long_lived()
    finally:
        heap.keep_long_lived(False)
        gc.unfreeze()


def _recording(loader: Callable[..., Any], seen: list[bool], made: list[object]) -> Any:  # noqa: ANN401
    def load(choice: Any, progress: Any) -> Any:  # noqa: ANN401
        seen.append(gc.isenabled())
        out = loader(choice, progress)
        made.append(out)
        return out

    return load


def test_a_model_loads_with_the_collector_paused_and_stays_out_of_its_passes(
    policy: None, qapp: Any
) -> None:
    seen: list[bool] = []
    made: list[object] = []
    worker = InferenceWorker(Inbox(), _recording(StandInLoader(), seen, made))
    loaded: list[Any] = []
    worker.modelLoaded.connect(loaded.append)
    worker._load_model(LoadModel(1, ModelChoice(backbone_id="planted")))
    assert loaded and seen == [False]
    assert gc.isenabled()
    segmenter = made[0]
    assert gc.is_tracked(segmenter) and not _in_generations(segmenter)
    assert not _in_generations(segmenter.backbone)  # type: ignore[attr-defined]


def test_a_labelling_model_loads_with_the_collector_paused(policy: None, qapp: Any) -> None:
    seen: list[bool] = []

    def no_weights(choice: Any, progress: Any) -> Any:  # noqa: ANN401
        seen.append(gc.isenabled())
        raise FileNotFoundError("no weights for test-clip-tiny")

    worker = InferenceWorker(Inbox(), no_weights)
    request = LabelRequest(1, Sketch(), ("cat",), ModelChoice(backbone_id="test-clip-tiny"))
    with pytest.raises(FileNotFoundError):
        worker._labeller_for(request)
    assert seen == [False] and gc.isenabled()


def test_the_engine_is_imported_with_the_collector_paused(
    policy: None, qtbot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sketchpad.ui import engine_host

    (tmp_path / "engine_stand_in.py").write_text("import gc\nCOLLECTING = gc.isenabled()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(engine_host, "ENGINE_MODULE", "engine_stand_in")
    monkeypatch.delitem(sys.modules, "engine_stand_in", raising=False)
    host = engine_host.EngineHost(factory=lambda: object())  # type: ignore[arg-type,return-value]
    with qtbot.waitSignal(host.ready, timeout=10_000):
        host.start()
    assert sys.modules["engine_stand_in"].COLLECTING is False
    assert gc.isenabled()
