"""Stroke eraser and partial eraser: one drag is one undo step."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt


@pytest.fixture
def grid(document, make_sketch, line):
    """Four vertical strokes at x = 100..400 and one horizontal at y = 500."""
    strokes = [line(x, 100, x, 400, n=16) for x in (100, 200, 300, 400)]
    document.reset(make_sketch(*strokes, line(100, 500, 400, 500, n=16)), None)
    return [s.id for s in document.sketch.strokes]


def test_stroke_eraser_removes_touched_strokes_in_one_step(canvas, driver, document, grid):
    before = document.sketch
    canvas.set_tool("eraser")
    driver.drag([(50, 250), (150, 250), (250, 252), (350, 250)])  # crosses strokes 0, 1, 2
    assert [s.id for s in document.sketch.strokes] == [grid[3], grid[4]]
    assert document.undo_stack.count() == 1
    assert document.undo_stack.undoText() == "Erase strokes"
    document.undo_stack.undo()
    assert document.sketch == before
    document.undo_stack.redo()
    assert len(document.sketch) == 2


def test_eraser_radius_is_constant_on_screen(canvas, driver, document, grid):
    canvas.set_tool("eraser")
    canvas.eraser_radius = 10  # view pixels
    canvas.zoom_by(4.0)  # 10 view px = 2.5 / scale-ish canvas px: a near miss stays a miss
    gap = 12 / canvas.zoom  # canvas distance that is 12 px on screen
    x = 200 - 1.5 - gap  # half the pen width plus the gap left of stroke 1
    driver.drag([(x, 250), (x, 260)])
    assert len(document.sketch) == 5
    driver.drag([(x + 4 / canvas.zoom, 250), (x + 4 / canvas.zoom, 260)])  # 4 px closer: hit
    assert grid[1] not in {s.id for s in document.sketch.strokes}


def test_partial_eraser_cuts_in_one_step(canvas, driver, document, grid):
    before = document.sketch
    canvas.set_tool("partial_eraser")
    driver.drag([(50, 250), (150, 250), (250, 250)])  # cuts strokes 0 and 1 in two
    sketch = document.sketch
    assert len(sketch) == 7
    assert document.undo_stack.count() == 1 and document.undo_stack.undoText() == "Erase"
    r = canvas.view.length_to_canvas(canvas.eraser_radius)
    left = [s for s in sketch.strokes if np.allclose(s.points[:, 0], 100)]
    assert len(left) == 2
    gap_top = min(s.points[:, 1].max() for s in left)
    gap_bottom = max(s.points[:, 1].min() for s in left)
    assert gap_bottom - gap_top == pytest.approx(2 * r, abs=r / 2)
    document.undo_stack.undo()
    assert document.sketch == before


def test_eraser_circle_follows_the_cursor(canvas, driver, qtbot):
    canvas.set_tool("partial_eraser")
    with qtbot.waitSignal(canvas.cursorMoved) as sig:
        driver.move(300, 300, buttons=Qt.MouseButton.NoButton)
    assert sig.args == pytest.approx([300, 300])
    assert canvas.cursor().shape() == canvas.tool_object().cursor
    canvas.grab()
