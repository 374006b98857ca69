"""The partition tool: n sectors around the centroid, rotate by dragging, click to pick."""

from __future__ import annotations

import math

import pytest


@pytest.fixture
def two_bars(document, make_sketch, line):
    """Vertical strokes at x = 300 and x = 500 from y = 150 to 450: centroid (400, 300)."""
    document.reset(make_sketch(line(300, 150, 300, 450, n=7), line(500, 150, 500, 450, n=7)), None)
    return [s.id for s in document.sketch.strokes]


def test_partition_n_defaults_to_two_and_is_validated(canvas, qtbot):
    assert canvas.partition_n == 2
    with qtbot.waitSignal(canvas.partition_n_changed) as sig:
        canvas.partition_n = 5
    assert sig.args == [5]
    for bad in (1, 13, 2.5):
        with pytest.raises(ValueError):
            canvas.partition_n = bad


def test_click_picks_a_sector_and_the_split_is_undoable(canvas, driver, document, two_bars):
    before = document.sketch
    canvas.set_tool("partition")
    tool = canvas.tool_object()
    assert tool.center == pytest.approx((400, 300))
    canvas.grab()  # the sector lines paint
    driver.click(400, 420)  # below the centre: angles in [0, π) = sector 0
    sketch = document.sketch
    assert len(sketch) == 4
    assert document.undo_stack.count() == 1
    assert document.undo_stack.undoText() == "Split at partition"
    selected = [s for s in sketch.strokes if s.id in document.selection]
    assert len(selected) == 2 and all(s.points[:, 1].min() >= 300 - 1e-9 for s in selected)
    assert tool.picked_sector == 0
    assert tool.center == pytest.approx((400, 300))  # the inserted cut points do not move it
    canvas.grab()  # the picked sector is shaded
    driver.click(400, 180)  # the other sector: nothing more to cut, no new step
    assert document.undo_stack.count() == 1 and tool.picked_sector == 1
    assert all(s.points[:, 1].max() <= 300 + 1e-9
               for s in document.sketch.strokes if s.id in document.selection)
    document.undo_stack.undo()
    assert document.sketch == before


def test_drag_rotates_the_sector_lines(canvas, driver, document, two_bars, qtbot):
    canvas.set_tool("partition")
    with qtbot.waitSignal(canvas.partition_theta1_changed):
        driver.drag([(600, 300), (590, 350), (400, 500)])  # angle 0 → π/2 about (400, 300)
    assert canvas.partition_theta1 == pytest.approx(math.pi / 2)
    assert document.undo_stack.count() == 0  # rotating edits nothing
    assert canvas.tool_object().picked_sector is None
    # Lines now vertical through x = 400: the bars lie wholly in one sector each, no cut.
    driver.click(300, 300)  # angle π: sector 0 covers [π/2, 3π/2)
    assert document.undo_stack.count() == 0
    assert document.selection == {two_bars[0]}


def test_more_sectors(canvas, driver, document, two_bars):
    canvas.set_tool("partition")
    canvas.partition_n = 4
    canvas.partition_theta1 = math.pi / 4  # diagonal lines: each bar crosses two of them
    driver.click(500, 300)  # right: angle 0 is in sector 3 = [7π/4, 9π/4)
    assert len(document.sketch) == 6
    right = [s for s in document.sketch.strokes if s.id in document.selection]
    assert len(right) == 1 and right[0].points[:, 0].min() == pytest.approx(500)
