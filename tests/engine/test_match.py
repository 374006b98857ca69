"""Sketch–photo correspondence through the engine (issue 20 item 4): a MatchRequest is answered
on the photo-search model with the features cached per photo file, sketch key and model; a
changed photo, sketch or model is embedded again; a missing photo fails with its name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from planted import photo
from standins import StandInLoader, sketch_at

from sketchpad.engine.client import Engine
from sketchpad.engine.requests import MatchResult
from sketchpad.gallery.images import load_photo
from sketchpad.vision.fusion.correspond import correspond, sketch_image

WAIT_MS = 10_000


def load(engine: Engine, qtbot: Any) -> None:
    with qtbot.waitSignal(engine.modelLoaded, timeout=WAIT_MS):
        engine.load_model("planted")


def ask(engine: Engine, qtbot: Any, *args: Any, **kw: Any) -> MatchResult:
    with qtbot.waitSignal(engine.matchFinished, timeout=WAIT_MS) as blocker:
        engine.match(*args, **kw)
    return blocker.args[0]


def test_matches_equal_correspond_and_the_cache_follows_photo_sketch_and_model(
    engine: Engine, loader: StandInLoader, qtbot: Any, tmp_path: Path
) -> None:
    load(engine, qtbot)
    path = tmp_path / "p.png"
    Image.fromarray(photo((96, 128), [(0, 0, 64, 48)])).save(path)
    sketch = sketch_at(10.0)
    r = ask(engine, qtbot, path, sketch, ((0.3, 0.6), (0.8, 0.2)))
    direct = correspond(
        loader.backbone, sketch_image(sketch, 64), load_photo(path),
        [(0.3 * 64, 0.6 * 64), (0.8 * 64, 0.2 * 64)], input_size=64,
    )  # fmt: skip
    assert r.targets == tuple(m.target for m in direct.matches)
    assert r.confidences == tuple(m.confidence for m in direct.matches)
    assert r.photo_hw == (96, 128) and r.heat.shape == (192, 256) and r.forwards == 1
    assert r.backbone_id == "planted"
    assert ask(engine, qtbot, path, sketch, ((40.0, 30.0),), reverse=True).forwards == 0
    other = sketch_at(50.0)
    assert ask(engine, qtbot, path, other, ((0.5, 0.5),)).forwards == 1  # another sketch
    st = path.stat()
    Image.fromarray(photo((96, 128), [])).save(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert ask(engine, qtbot, path, other, ((0.5, 0.5),)).forwards == 1  # the photo changed
    assert ask(engine, qtbot, path, other, ((0.2, 0.5),)).forwards == 0
    load(engine, qtbot)  # another model: its own features
    assert ask(engine, qtbot, path, other, ((0.5, 0.5),)).forwards == 1


def test_a_missing_photo_or_no_model_fails_with_a_readable_message(
    engine: Engine, qtbot: Any, tmp_path: Path
) -> None:
    def failure(*args: Any) -> str:
        with qtbot.waitSignal(engine.failed, timeout=WAIT_MS) as blocker:
            gen = engine.match(*args)
        assert blocker.args[0] == gen
        return str(blocker.args[1])

    assert "No model is loaded" in failure(tmp_path / "x.png", sketch_at(0.0), ((0.5, 0.5),))
    load(engine, qtbot)
    message = failure(tmp_path / "gone.png", sketch_at(0.0), ((0.5, 0.5),))
    assert "gone.png" in message and "Could not match points" in message


def test_only_the_newest_match_is_delivered(
    engine: Engine, loader: StandInLoader, qtbot: Any, tmp_path: Path
) -> None:
    load(engine, qtbot)
    path = tmp_path / "p.png"
    Image.fromarray(photo((64, 64), [])).save(path)
    got: list[MatchResult] = []
    engine.matchFinished.connect(got.append)
    first = engine.match(path, sketch_at(0.0), ((0.1, 0.1),))
    last = engine.match(path, sketch_at(0.0), ((0.9, 0.9),))
    assert engine.wait_until_idle(10.0)
    assert [r.request.generation for r in got] == [last] and first < last
    assert np.isfinite(got[0].targets).all()
