"""The window's engine on a large folder (issue 19): from ``shortlist_from`` photos on (lowered
here) the open folder's bank is its patch store's and queries run in two stages — the same
bank and rule ``sketchpad segment`` uses — with the exact method's matches and masks on a
planted gallery; below that size the float16 features are queried."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from planted import GALLERY
from standins import StandInLoader, make_photos, sketch_at

from sketchpad.engine.client import Engine
from sketchpad.engine.requests import QueryResult
from sketchpad.engine.session import FolderSession

WAIT_MS = 30_000
N = 14


def answer(engine: Engine, qtbot: Any, folder: Path) -> tuple[QueryResult, FolderSession]:
    with qtbot.waitSignal(engine.modelLoaded, timeout=WAIT_MS):
        engine.load_model("planted")
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS):
        engine.open_folder(folder, batch_size=4)
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(sketch_at(0), top_k=N, mask_side=64)
    session = engine.worker._session
    assert session is not None
    return blocker.args[0], session


def test_a_large_folder_is_queried_from_its_patch_store_in_two_stages(
    make_engine: Callable[..., Engine], qtbot: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    names = make_photos(folder, N)
    # first the two-stage engine: it indexes the folder (cache and store) itself
    two, two_session = answer(make_engine(StandInLoader(), shortlist_from=4), qtbot, folder)
    exact, exact_session = answer(make_engine(StandInLoader(), shortlist_from=N + 1), qtbot, folder)
    assert two_session.bank.from_store and not exact_session.bank.from_store
    assert all(s.photos is not None for s in two.scores)  # shortlisted: two stages
    assert all(s.photos is None for s in exact.scores)
    assert set(two.names) == set(exact.names) == set(names)
    t = two.threshold
    by_name = dict(zip(exact.names, exact.photo_scores, strict=True))
    for name, score in zip(two.names, two.photo_scores, strict=True):
        assert abs(score - by_name[name]) < 1e-3
        has_object = bool(GALLERY[names.index(name) % len(GALLERY)][1])
        assert (score >= t) == (by_name[name] >= t) == has_object
    assert two.masks.keys() == exact.masks.keys() and len(two.masks) == N
    for name, m in two.masks.items():
        assert np.array_equal(m.mask, exact.masks[name].mask)
