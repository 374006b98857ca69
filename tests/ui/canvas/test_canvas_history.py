"""Fifty mixed edits made with the mouse, undone and redone step by step."""

from __future__ import annotations

import random

import numpy as np

from sketchpad.sketch.model import Sketch, Stroke


def _walk(rng: random.Random, n: int = 12) -> list[tuple[float, float]]:
    x, y = rng.uniform(100, 700), rng.uniform(100, 500)
    pts = []
    for _ in range(n):
        x, y = x + rng.uniform(-25, 25), y + rng.uniform(-25, 25)
        pts.append((x, y))
    return pts


def _box(rng: random.Random) -> list[tuple[float, float]]:
    x0, y0 = rng.uniform(50, 500), rng.uniform(50, 350)
    x1, y1 = x0 + rng.uniform(80, 250), y0 + rng.uniform(80, 200)
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0 + 2)]


def test_fifty_edits_undo_and_redo_exactly(canvas, driver, document):
    rng = random.Random(1234)
    nprng = np.random.default_rng(1234)
    start = Sketch(
        strokes=tuple(Stroke(points=nprng.uniform(100, 600, size=(8, 2))) for _ in range(8)),
        width=800,
        height=600,
    )
    document.reset(start, None)
    stack = document.undo_stack
    snapshots = {0: document.sketch}
    recording = True

    def record(index: int) -> None:  # after each push (also a merge into the top step)
        if recording:
            snapshots[index] = document.sketch

    stack.indexChanged.connect(record)
    acts = canvas.edit_actions()
    kinds = ["draw", "erase", "partial", "move", "cut", "delete", "paste"]
    steps = 0
    while stack.count() < 50:
        kind = kinds[steps % len(kinds)] if steps < len(kinds) else rng.choice(kinds)
        steps += 1
        if kind == "draw":
            canvas.set_tool("pen")
            driver.drag(_walk(rng))
        elif kind in ("erase", "partial"):
            canvas.set_tool("eraser" if kind == "erase" else "partial_eraser")
            driver.drag(_walk(rng, 6))
        elif kind in ("move", "cut"):
            canvas.set_tool("lasso")
            canvas.lasso_mode = "cut" if kind == "cut" else "whole"
            driver.drag(_box(rng))
            if kind == "move" and document.selection:
                box = document.sketch.subset(document.selection).bbox()
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                driver.drag([(cx, cy), (cx + 7, cy - 3), (cx + 19, cy + 11)])
        elif kind == "delete":
            document.set_selection(
                rng.sample([s.id for s in document.sketch.strokes], k=min(2, len(document.sketch)))
            )
            acts["delete"].trigger()
        elif kind == "paste":
            document.set_selection([s.id for s in document.sketch.strokes[:2]])
            acts["copy"].trigger()
            acts["paste"].trigger()
    assert steps < 200
    recording = False
    final = document.sketch
    texts = {stack.text(i) for i in range(stack.count())}
    assert {"Draw stroke", "Move", "Delete", "Paste"} <= texts
    assert "Lasso cut" not in texts  # selecting never edits the drawing
    assert texts & {"Erase", "Erase strokes"}
    for i in range(stack.count() - 1, -1, -1):
        stack.undo()
        assert stack.index() == i and document.sketch == snapshots[i]
    assert document.sketch == start
    for i in range(1, stack.count() + 1):
        stack.redo()
        assert document.sketch == snapshots[i]
    assert document.sketch == final
    canvas.set_view(canvas.view.zoomed_about(2.0, 100, 100))
    assert canvas.grab().size() == canvas.size()


def test_layer_updated_in_place_matches_a_fresh_render(canvas, driver, document, line):
    from sketchpad.ui.canvas.painter import SketchPainter

    for k in range(6):
        driver.drag(line(100 + 40 * k, 100, 300 + 30 * k, 400, n=9))
    canvas.repaint()
    canvas.set_tool("eraser")
    driver.drag([(150, 250), (350, 260)])
    canvas.set_tool("lasso")
    driver.drag([(90, 90), (260, 90), (260, 200), (90, 200), (90, 95)])
    driver.drag([(150, 130), (175, 150)])
    canvas.repaint()
    canvas.set_view(canvas.view.panned(-17, 9))
    canvas.repaint()
    args = (document.sketch, canvas.view, canvas.size(), canvas.devicePixelRatioF())
    incremental, t = canvas._painter.layer(*args)
    fresh, _ = SketchPainter().layer(*args)
    assert t.isIdentity()
    a = np.frombuffer(incremental.constBits(), np.uint8).reshape(incremental.height(), -1)
    b = np.frombuffer(fresh.constBits(), np.uint8).reshape(fresh.height(), -1)
    assert np.array_equal(a, b)
