"""Lasso (whole, cut), moving the selection, delete, clipboard."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, Qt
from PySide6.QtWidgets import QApplication

from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.io import sketch_from_json_bytes
from sketchpad.sketch.model import Stroke
from sketchpad.ui.canvas.clipboard import STROKES_MIME

SHIFT = Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def three(document, make_sketch, line):
    """Three horizontal strokes at y = 100, 200, 300 from x = 100 to 500."""
    document.reset(make_sketch(*(line(100, y, 500, y, n=9) for y in (100, 200, 300))), None)
    return [s.id for s in document.sketch.strokes]


def rect_lasso(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1)]


def test_lasso_whole_selects_touched_strokes(canvas, driver, document, three):
    canvas.set_tool("lasso")
    assert canvas.lasso_mode == "whole"
    driver.drag(rect_lasso(50, 50, 250, 250))  # covers the left part of strokes 0 and 1
    assert document.selection == {three[0], three[1]}
    assert document.undo_stack.count() == 0  # selecting is not an edit
    driver.drag(rect_lasso(50, 250, 250, 350), mods=SHIFT)  # Shift adds
    assert document.selection == set(three)
    canvas.grab()  # the selection paints (halo and dashed box)


def test_lasso_cut_selects_without_editing_and_searches_the_pieces(
    canvas, driver, document, three, qtbot
):
    from sketchpad.search.spec import LassoPart, resolve_part

    before = document.sketch
    canvas.set_tool("lasso")
    with qtbot.waitSignal(canvas.lassoModeChanged):
        canvas.lasso_mode = "cut"
    driver.drag(rect_lasso(50, 50, 250.5, 250.5))
    assert document.sketch is before  # 3 strokes stay 3: selecting is not an edit
    assert document.undo_stack.count() == 0
    assert document.selection == {three[0], three[1]}  # the strokes touched, whole
    part = document.search_part
    assert isinstance(part, LassoPart) and part.mode == "cut"
    pieces = resolve_part(document.sketch, part)  # what the search core receives
    assert len(pieces) == 2 and all(s.points[:, 0].max() <= 250.5 + 1e-9 for s in pieces.strokes)
    assert document.part_sketch() is document.part_sketch()  # highlighted: the pieces
    assert len(document.part_sketch()) == 2
    assert document.describe_selection() == "the lasso's inside (2 strokes cut)"
    canvas.grab()  # the pieces paint highlighted
    driver.drag(rect_lasso(50, 250, 250, 350), mods=SHIFT)  # Shift adds: whole strokes
    assert document.selection == set(three) and document.selection_part is None
    assert document.sketch is before
    with pytest.raises(ValueError):
        canvas.lasso_mode = "loose"


def test_four_strokes_stay_four_whatever_is_selected(canvas, driver, document, three, line):
    stroke = Stroke(points=line(100, 500, 700, 500))
    document.apply(SketchEdit.add(document.sketch, [stroke]), "Draw stroke")
    assert len(document.sketch) == 4
    canvas.set_tool("lasso")
    canvas.lasso_mode = "cut"
    driver.drag(rect_lasso(50, 50, 400.5, 550.5))
    canvas.set_tool("partition")
    for k_point in ((400, 560), (400, 100), (100, 300)):
        driver.click(*k_point)
    canvas.partition_n = 3
    driver.click(600, 400)
    assert len(document.sketch) == 4
    assert document.undo_stack.count() == 1


def test_dragging_the_selection_moves_it_in_one_undo_step(canvas, driver, document, three):
    before = document.sketch
    canvas.set_tool("lasso")
    driver.drag(rect_lasso(50, 50, 550, 150))
    assert document.selection == {three[0]}
    driver.drag([(300, 100), (310, 105), (330, 120), (340, 140)])  # grab inside its box
    moved = document.sketch.strokes[0]
    assert moved.id == three[0]
    assert np.allclose(moved.points, before.strokes[0].points + [40, 40])
    assert document.selection == {three[0]}
    assert document.undo_stack.count() == 1 and document.undo_stack.undoText() == "Move"
    document.undo_stack.undo()
    assert document.sketch == before


def test_click_on_empty_space_clears_the_selection(canvas, driver, document, three):
    canvas.set_tool("lasso")
    canvas.select_all()
    assert len(document.selection) == 3
    driver.click(700, 550)
    assert document.selection == frozenset()


def test_delete_is_undoable(canvas, document, three):
    acts = canvas.edit_actions()
    document.set_selection([three[1]])
    acts["delete"].trigger()
    assert [s.id for s in document.sketch.strokes] == [three[0], three[2]]
    assert document.selection == frozenset()
    document.undo_stack.undo()
    assert [s.id for s in document.sketch.strokes] == three


def test_copy_paste_gives_new_ids_offset_and_selection(canvas, document, three):
    acts = canvas.edit_actions()
    assert not acts["copy"].isEnabled()
    document.set_selection([three[0]])
    acts["copy"].trigger()
    mime = QApplication.clipboard().mimeData()
    assert mime.hasFormat(STROKES_MIME)
    copied = sketch_from_json_bytes(bytes(mime.data(STROKES_MIME).data()))
    assert [s.id for s in copied.strokes] == [three[0]]
    assert acts["paste"].isEnabled()
    acts["paste"].trigger()
    sketch = document.sketch
    assert len(sketch) == 4 and document.undo_stack.undoText() == "Paste"
    pasted = sketch.strokes[-1]
    assert pasted.id not in three and document.selection == {pasted.id}
    assert np.allclose(pasted.points, sketch.strokes[0].points + 10)
    acts["paste"].trigger()  # again: cascades further
    assert np.allclose(document.sketch.strokes[-1].points, sketch.strokes[0].points + 20)


def test_cut_removes_and_paste_restores(canvas, document, three):
    acts = canvas.edit_actions()
    document.set_selection([three[2]])
    acts["cut"].trigger()
    assert len(document.sketch) == 2 and document.undo_stack.undoText() == "Cut"
    acts["paste"].trigger()
    assert len(document.sketch) == 3


def test_foreign_clipboard_data_is_ignored(canvas, document, three):
    mime = QMimeData()
    mime.setData(STROKES_MIME, b"not json")
    QApplication.clipboard().setMimeData(mime)
    canvas.paste()
    assert len(document.sketch) == 3 and document.undo_stack.count() == 0


def test_a_cut_lasso_part_ends_when_the_strokes_change_not_with_labels(
    canvas, driver, document, three, line
):
    from sketchpad.search.spec import LassoPart, StrokesPart

    canvas.set_tool("lasso")
    canvas.lasso_mode = "cut"
    driver.drag(rect_lasso(50, 50, 250.5, 250.5))
    assert isinstance(document.search_part, LassoPart)
    document.set_metadata("labels", [{"name": "cat", "color": "#ff0000"}], "Add label")
    assert isinstance(document.search_part, LassoPart)  # labels are not geometry
    stroke = Stroke(points=line(600, 500, 700, 550))
    document.apply(SketchEdit.add(document.sketch, [stroke]), "Draw stroke")
    assert document.selection_part is None and document.part_sketch() is None
    assert document.search_part == StrokesPart(tuple(sorted(three[:2])))  # searched whole
