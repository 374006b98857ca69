"""Drawing with the pen, the view (pan, zoom, fit) and the canvas's actions."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QInputDevice, QPointingDevice, QTabletEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.workspace.view_transform import MAX_SCALE, MIN_SCALE


def test_pen_drag_adds_one_stroke_in_canvas_coordinates(canvas, driver, document, line):
    pts = line(100, 100, 300, 200, n=12)
    driver.drag(pts)
    (stroke,) = document.sketch.strokes
    assert np.allclose(stroke.points, pts, atol=1e-6)
    assert stroke.width == canvas.pen_width and stroke.color == canvas.pen_color
    assert stroke.pressure is None  # a mouse has no pressure
    assert stroke.times is not None and stroke.times[0] >= 0
    assert np.all(np.diff(stroke.times) >= 0)
    assert document.undo_stack.count() == 1
    assert document.undo_stack.undoText() == "Draw stroke"


def test_pen_uses_width_and_colour(canvas, driver, document, line):
    canvas.pen_width = 7.5
    canvas.pen_color = QColor(255, 0, 0)
    driver.drag(line(10, 10, 50, 50))
    canvas.pen_color = "#00ff00"
    driver.drag(line(60, 10, 90, 50))
    a, b = document.sketch.strokes
    assert (a.width, a.color, b.color) == (7.5, "#ff0000", "#00ff00")
    with pytest.raises(ValueError):
        canvas.pen_width = 0


def test_click_makes_a_dot(canvas, driver, document):
    driver.click(200, 150)
    (stroke,) = document.sketch.strokes
    assert np.allclose(stroke.points, [[200, 150]])
    canvas.grab()  # a one-point stroke paints (as a disc)


@pytest.mark.parametrize("zoom", [0.5, 3.0])
def test_points_map_through_the_view_after_zoom_and_pan(canvas, driver, document, line, zoom):
    canvas.zoom_by(zoom, QPointF(123, 77))
    canvas.set_view(canvas.view.panned(-40, 25))
    pts = line(150, 120, 260, 90, n=8)
    driver.drag(pts)
    assert np.allclose(document.sketch.strokes[0].points, pts, atol=1e-6)
    # The same stroke from raw view positions: view → canvas is the transform's inverse.
    view_pts = canvas.view.to_view_array(pts)
    assert np.allclose(canvas.view.to_canvas_array(view_pts), pts)


def test_switching_tools_mid_stroke_keeps_it_and_a_new_document_drops_it(canvas, driver, document):
    driver.press(100, 100)
    driver.move(150, 120)
    canvas.set_tool("lasso")
    assert len(document.sketch) == 1 and len(document.sketch.strokes[0]) == 2
    driver.release(150, 120)  # the release of that drag does nothing more
    assert len(document.sketch) == 1
    canvas.set_tool("pen")
    driver.press(100, 100)
    driver.move(150, 120)
    document.reset(Sketch(), None)
    driver.release(150, 120)
    assert len(document.sketch) == 0 and document.undo_stack.count() == 0


def test_strokes_are_undone_one_at_a_time(canvas, driver, document, line):
    for k in range(3):
        driver.drag(line(10, 10 + 20 * k, 100, 10 + 20 * k))
    assert len(document.sketch) == 3
    document.undo_stack.undo()
    assert len(document.sketch) == 2
    document.undo_stack.redo()
    assert len(document.sketch) == 3


def test_stylus_pressure_is_recorded(canvas, document):
    device = QPointingDevice(
        "test stylus",
        77,
        QInputDevice.DeviceType.Stylus,
        QPointingDevice.PointerType.Pen,
        QInputDevice.Capability.Position | QInputDevice.Capability.Pressure,
        1,
        3,
    )
    for kind, (x, y), pressure in [
        (QEvent.Type.TabletPress, (100, 100), 0.2),
        (QEvent.Type.TabletMove, (120, 110), 0.6),
        (QEvent.Type.TabletRelease, (140, 120), 0.9),
    ]:
        pos = QPointF(*canvas.view.to_view(x, y))
        moving = kind == QEvent.Type.TabletMove
        button = Qt.MouseButton.NoButton if moving else Qt.MouseButton.LeftButton
        ev = QTabletEvent(
            kind,
            device,
            pos,
            canvas.mapToGlobal(pos),
            pressure,
            0,
            0,
            0,
            0,
            0,
            Qt.KeyboardModifier.NoModifier,
            button,
            Qt.MouseButton.LeftButton,
        )
        QApplication.sendEvent(canvas, ev)
    (stroke,) = document.sketch.strokes
    assert stroke.pressure is not None
    assert stroke.pressure.tolist() == pytest.approx([0.2, 0.6, 0.9])


def test_pen_refuses_a_bitmap_sketch(canvas, driver, document, qtbot):
    raster = np.zeros((60, 80), dtype=np.uint8)
    raster[20:40, 30:50] = 255
    document.reset(Sketch(width=80, height=60, raster=raster), None)
    with qtbot.waitSignal(canvas.message):
        driver.drag([(10, 10), (30, 30)])
    assert document.sketch.strokes == () and document.undo_stack.count() == 0
    img = canvas.grab().toImage()  # the bitmap is painted: its ink shows dark mid-page
    cx, cy = canvas.view.to_view(40, 30)
    assert QColor(img.pixel(int(cx), int(cy))).lightness() < 60


def test_thousands_of_strokes_repaint_only_what_changed(canvas, driver, document, monkeypatch):
    rng = np.random.default_rng(0)
    walks = [
        rng.uniform(50, 750, 2) + np.cumsum(rng.normal(0, 3, (30, 2)), axis=0) for _ in range(3000)
    ]
    document.reset(
        Sketch(strokes=tuple(Stroke(points=w) for w in walks), width=800, height=600), None
    )
    canvas.repaint()
    painted: list[int] = []  # rectangles per repaint of the stroke layer
    real_paint = canvas._painter._paint
    monkeypatch.setattr(
        canvas._painter,
        "_paint",
        lambda sketch, rects: (painted.append(len(rects)), real_paint(sketch, rects)),
    )
    driver.press(100, 100)
    for k in range(20):
        driver.move(100 + 5 * k, 100 + 3 * k)
        canvas.repaint()
    assert painted == []  # while the pen draws, only its segment is repainted
    driver.release(200, 160)
    canvas.repaint()
    assert len(document.sketch) == 3001
    assert painted == [1]  # the new stroke's rectangle only
    canvas.set_view(canvas.view.panned(-30, 12))
    canvas.repaint()
    assert painted[1:] == [2]  # a pan paints the two uncovered strips


# -- view ---------------------------------------------------------------------------------
def test_fit_centres_the_page_on_show_and_on_reset(canvas, document):
    x0, y0, x1, y1 = canvas.view.rect_to_view((0, 0, 800, 600))
    assert (x0 + x1) / 2 == pytest.approx(canvas.width() / 2)
    assert (y0 + y1) / 2 == pytest.approx(canvas.height() / 2)
    canvas.zoom_by(3.0)
    document.reset(Sketch(width=200, height=100), None)
    x0, y0, x1, y1 = canvas.view.rect_to_view((0, 0, 200, 100))
    assert (x0 + x1) / 2 == pytest.approx(canvas.width() / 2)
    assert x1 - x0 > 500  # a small page is blown up to fill the view


def _wheel(canvas, pos, angle_y, mods=Qt.KeyboardModifier.NoModifier):
    pos = QPointF(*pos)
    ev = QWheelEvent(
        pos,
        canvas.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, angle_y),
        Qt.MouseButton.NoButton,
        mods,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas, ev)


def test_ctrl_wheel_zooms_about_the_cursor_and_wheel_scrolls(canvas, qtbot):
    before = canvas.view
    anchor = before.to_canvas(300, 200)
    with qtbot.waitSignal(canvas.zoomChanged):
        _wheel(canvas, (300, 200), 120, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == pytest.approx(before.scale * 1.25)
    assert canvas.view.to_view(*anchor) == pytest.approx((300, 200))
    scale = canvas.zoom
    _wheel(canvas, (300, 200), -120)
    assert canvas.zoom == scale
    assert canvas.view.offset_y < before.offset_y  # scrolled down the page


def test_pinch_zooms_about_the_fingers(canvas):
    from PySide6.QtGui import QNativeGestureEvent, QPointingDevice

    before = canvas.view
    anchor = before.to_canvas(250, 180)
    pos = QPointF(250, 180)
    ev = QNativeGestureEvent(
        Qt.NativeGestureType.ZoomNativeGesture,
        QPointingDevice.primaryPointingDevice(),
        2,
        pos,
        pos,
        canvas.mapToGlobal(pos),
        0.5,
        QPointF(0, 0),
        1,
    )
    QApplication.sendEvent(canvas, ev)
    assert canvas.zoom == pytest.approx(before.scale * 1.5)
    assert canvas.view.to_view(*anchor) == pytest.approx((250, 180))


def test_zoom_is_clamped(canvas):
    canvas.zoom_by(1e9)
    assert canvas.zoom == MAX_SCALE
    canvas.zoom_by(1e-9)
    assert canvas.zoom == MIN_SCALE
    canvas.fit_to_view()
    assert MIN_SCALE < canvas.zoom < MAX_SCALE


def test_space_drag_and_middle_drag_pan_with_any_tool(canvas, driver, document, qtbot):
    grabbed = canvas.view.to_canvas(300, 300)
    QTest.keyPress(canvas, Qt.Key.Key_Space)
    driver.drag_view([(300, 300), (330, 290), (360, 270)])
    QTest.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.view.to_view(*grabbed) == pytest.approx((360, 270))
    assert document.sketch.strokes == ()  # the pen did not draw
    canvas.set_tool("lasso")
    grabbed = canvas.view.to_canvas(400, 300)
    driver.drag_view([(400, 300), (380, 350)], button=Qt.MouseButton.MiddleButton)
    assert canvas.view.to_view(*grabbed) == pytest.approx((380, 350))
    assert canvas.tool == "lasso"


def test_pan_tool(canvas, driver):
    canvas.set_tool("pan")
    grabbed = canvas.view.to_canvas(200, 200)
    driver.drag_view([(200, 200), (220, 230), (250, 260)])
    assert canvas.view.to_view(*grabbed) == pytest.approx((250, 260))


# -- tools and actions --------------------------------------------------------------------
def test_tool_actions_switch_tools(canvas, qtbot):
    actions = canvas.tool_actions()
    assert set(actions) == {
        "pen",
        "eraser",
        "partial_eraser",
        "lasso",
        "partition",
        "relabel",
        "pan",
    }
    keys = {k: a.shortcut().toString() for k, a in actions.items()}
    assert keys == {
        "pen": "B",
        "eraser": "E",
        "partial_eraser": "Shift+E",
        "lasso": "L",
        "partition": "P",
        "relabel": "R",
        "pan": "H",
    }
    assert actions["pen"].isChecked()
    with qtbot.waitSignal(canvas.toolChanged) as sig:
        actions["lasso"].trigger()
    assert sig.args == ["lasso"] and canvas.tool == "lasso"
    canvas.set_tool("eraser")
    assert actions["eraser"].isChecked() and not actions["lasso"].isChecked()
    with pytest.raises(ValueError, match="unknown tool"):
        canvas.set_tool("brush")


def test_edit_actions_and_shortcuts(canvas, driver, document, line):
    acts = canvas.edit_actions()
    assert set(acts) == {
        "undo",
        "redo",
        "cut",
        "copy",
        "paste",
        "delete",
        "select_all",
        "deselect",
        "zoom_in",
        "zoom_out",
        "fit",
    }
    keys = {k: [s.toString() for s in a.shortcuts()] for k, a in acts.items()}
    assert "Ctrl+Z" in keys["undo"] and {"Ctrl+Shift+Z", "Ctrl+Y"} <= set(keys["redo"])
    assert {"Del", "Backspace"} <= set(keys["delete"]) and "Esc" in keys["deselect"]
    assert keys["fit"] == ["Ctrl+0"] and "Ctrl+-" in keys["zoom_out"]
    assert all(a.parent() is canvas for a in acts.values())
    assert all(a.shortcutContext() == Qt.ShortcutContext.WindowShortcut for a in acts.values())
    driver.drag(line(10, 10, 100, 100))
    assert acts["undo"].text().endswith("Draw stroke") and acts["undo"].isEnabled()
    acts["undo"].trigger()
    assert len(document.sketch) == 0
    acts["redo"].trigger()
    assert len(document.sketch) == 1
    assert not acts["delete"].isEnabled()
    acts["select_all"].trigger()
    assert document.selection == {document.sketch.strokes[0].id} and acts["delete"].isEnabled()
    acts["deselect"].trigger()
    assert document.selection == frozenset()
    zoom = canvas.zoom
    acts["zoom_in"].trigger()
    assert canvas.zoom == pytest.approx(zoom * 1.25)
    acts["fit"].trigger()
    assert canvas.zoom == pytest.approx(zoom)


def test_keyboard_shortcut_reaches_the_action(canvas, qtbot):
    canvas.tool_actions()
    canvas.activateWindow()
    canvas.setFocus()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is canvas, timeout=2000)
    QTest.keyClick(canvas, Qt.Key.Key_L)
    assert canvas.tool == "lasso"
