"""Sketch–photo correspondence through the engine (issue 20 item 4): a MatchRequest is answered
on the photo-search model with the features cached per photo file, sketch key and model; a
changed photo, sketch or model is embedded again; a missing photo fails with its name."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from planted import D, photo
from standins import StandIn, StandInLoader, sketch_at

from sketchpad.engine.client import Engine
from sketchpad.engine.requests import MatchResult
from sketchpad.gallery.images import load_photo
from sketchpad.vision.fusion.correspond import correspond, sketch_image

WAIT_MS = 10_000


class PositionalStandIn(StandIn):
    """Patch features that vary smoothly with the patch's place and brightness, so that any
    change of a query point changes its feature and its match (exact comparisons can fail)."""

    def encode_patches(self, x: torch.Tensor, **kw: object) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, _ = super().encode_patches(x, **kw)
        b, _, h, w = x.shape
        grey = torch.nn.functional.avg_pool2d(self._rgb(x).mean(1, keepdim=True), 16)[:, 0]
        gh, gw = h // 16, w // 16
        yy, xx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        feats = torch.zeros(b, gh, gw, D)
        feats[..., 0], feats[..., 1] = torch.cos(xx * 0.7), torch.sin(xx * 0.7)
        feats[..., 2], feats[..., 3] = torch.cos(yy * 0.9), torch.sin(yy * 0.9)
        feats[..., 4] = grey
        return pooled, feats


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
    loader.backbone = PositionalStandIn()
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
    back = ask(engine, qtbot, path, sketch, ((40.0, 30.0),), reverse=True)
    assert back.forwards == 0
    (m,) = correspond(
        loader.backbone, load_photo(path), sketch_image(sketch, 64), [(40.0, 30.0)],
        input_size=64,
    ).matches  # fmt: skip
    assert back.targets == ((m.target[0] / 64, m.target[1] / 64),)  # fractions of the side
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
    last = engine.match(path, sketch_at(0.0), ((0.9, 0.9),))  # replaces it, never run
    assert engine.wait_until_idle(10.0)
    assert [r.request.generation for r in got] == [last] and first < last
    assert np.isfinite(got[0].targets).all()
    # an answer already on its way to the GUI thread when a newer click came: dropped there
    got.clear()
    answered = engine.match(path, sketch_at(0.0), ((0.2, 0.2),))
    assert engine.inbox.wait_idle(10.0)  # answered; its signal waits for the event loop
    newer = engine.match(path, sketch_at(0.0), ((0.3, 0.3),))
    assert engine.wait_until_idle(10.0)
    assert [r.request.generation for r in got] == [newer] and answered < newer


class GatedStandIn(StandIn):
    """Photo forwards wait for ``gate`` once ``hold`` is set (a match held in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.hold = False
        self.entered = threading.Event()

    def encode_patches(self, x: torch.Tensor, **kw: object) -> tuple[torch.Tensor, torch.Tensor]:
        if self.hold:
            self.entered.set()
            assert self.gate.wait(10.0), "the test never opened the gate"
        return super().encode_patches(x, **kw)


def test_a_match_superseded_during_its_forward_is_not_emitted(
    engine: Engine, loader: StandInLoader, qtbot: Any, tmp_path: Path
) -> None:
    gated = loader.backbone = GatedStandIn()
    load(engine, qtbot)
    path = tmp_path / "p.png"
    Image.fromarray(photo((64, 64), [])).save(path)
    emitted: list[MatchResult] = []
    engine.worker.matchFinished.connect(emitted.append)  # the worker's own, unfiltered
    gated.hold = True
    first = engine.match(path, sketch_at(0.0), ((0.1, 0.1),))
    assert gated.entered.wait(10.0)  # its forward is running
    gated.hold = False
    newer = engine.match(path, sketch_at(0.0), ((0.4, 0.4),))
    gated.gate.set()
    assert engine.wait_until_idle(10.0)
    assert [r.request.generation for r in emitted] == [newer] and first < newer
