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
    with qtbot.waitSignal(canvas.partitionNChanged) as sig:
        canvas.partition_n = 5
    assert sig.args == [5]
    for bad in (1, 13, 2.5):
        with pytest.raises(ValueError):
            canvas.partition_n = bad


def test_click_picks_a_sector_without_editing_the_drawing(canvas, driver, document, two_bars):
    from sketchpad.search.spec import SectorPart, resolve_part

    before = document.sketch
    canvas.set_tool("partition")
    tool = canvas.tool_object()
    assert tool.center == pytest.approx((400, 300))
    canvas.grab()  # the sector lines paint
    driver.click(400, 420)  # below the centre: angles in [0, π) = sector 0
    assert document.sketch is before and document.undo_stack.count() == 0
    assert document.selection == set(two_bars)  # both bars have a piece in sector 0
    assert document.search_part == SectorPart(2, 0, 0.0)
    assert document.describe_selection() == "sector 1 of 2"
    pieces = resolve_part(document.sketch, document.search_part)  # what the search core gets
    assert len(pieces) == 2 and all(s.points[:, 1].min() >= 300 - 1e-9 for s in pieces.strokes)
    assert len(document.part_sketch()) == 2  # the pieces are what is highlighted
    assert tool.picked_sector == 0
    canvas.grab()  # the picked sector is shaded
    driver.click(400, 180)  # the other sector
    assert tool.picked_sector == 1 and document.describe_selection() == "sector 2 of 2"
    assert all(s.points[:, 1].max() <= 300 + 1e-9 for s in document.part_sketch().strokes)
    assert document.sketch is before and document.undo_stack.count() == 0


def test_rotating_or_renumbering_ends_the_pick(canvas, driver, document, two_bars):
    canvas.set_tool("partition")
    driver.click(400, 420)
    assert document.selection and canvas.tool_object().picked_sector == 0
    driver.drag([(600, 300), (590, 350), (400, 500)])  # rotate
    assert document.selection == frozenset() and document.search_part is None
    assert canvas.tool_object().picked_sector is None
    driver.click(300, 300)
    assert document.selection
    canvas.partition_n = 3
    assert document.selection == frozenset() and document.search_part is None


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
    assert len(document.sketch) == 2 and document.describe_selection() == "sector 4 of 4"
    right = document.part_sketch().strokes
    assert len(right) == 1 and right[0].points[:, 0].min() == pytest.approx(500)
