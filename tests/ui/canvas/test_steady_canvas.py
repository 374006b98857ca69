"""A steady canvas (issue 21 item 1): the view changes scale only when the user asks or when a
document is first shown; layout changes elsewhere never move the drawing; busy and progress
indicators never change the gallery's minimum width; Space belongs to the canvas (held, it
pans; the large view is on Enter); after Cancel on the indexing footer the keyboard is the
canvas's again."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from sketchpad.sketch.model import Sketch
from sketchpad.ui.photos.gallery_pane import GalleryPane


def test_resizes_after_the_first_touch_keep_the_view(canvas, driver, document, line):
    fitted = canvas.view
    canvas.resize(700, 650)  # an untouched new document is still refitted
    assert canvas.view != fitted and canvas.auto_fit
    driver.drag(line(100, 100, 300, 200))  # the user draws: the view is theirs now
    before = canvas.view
    for w in (600, 900, 450, 880):  # a gallery widening and narrowing, a footer showing
        canvas.resize(w, 640)
        assert canvas.view == before
    assert not canvas.auto_fit
    canvas.fit_to_view()  # the user asks: the page is fitted
    assert canvas.view != before
    document.reset(Sketch(width=300, height=200), None)  # a new document is fitted again
    assert canvas.auto_fit
    x0, _, x1, _ = canvas.view.rect_to_view((0, 0, 300, 200))
    assert (x0 + x1) / 2 == pytest.approx(canvas.width() / 2)


def test_strokes_land_where_drawn_across_resizes(canvas, driver, document, line):
    driver.drag(line(100, 100, 200, 100))
    pts = line(300, 300, 400, 380)
    on_screen = [canvas.view.to_view(x, y) for x, y in pts]  # where the user aims
    for w in (500, 800):  # the layout changes while the pen is on its way
        canvas.resize(w, 600)
    driver.drag_view(on_screen)
    assert document.sketch.strokes[-1].points == pytest.approx(pts, abs=1e-6)


def test_busy_bar_footer_and_notice_keep_the_panes_minimum_width(qtbot: Any) -> None:
    pane = GalleryPane()
    qtbot.addWidget(pane)
    pane.resize(240, 500)
    pane.show()
    widths = [pane.minimumSizeHint().width()]
    pane.set_busy(True)
    widths.append(pane.minimumSizeHint().width())
    pane.set_index_progress(1234, 10000, 3725.0)
    widths.append(pane.minimumSizeHint().width())
    pane.cancel_button.click()  # "Cancelling…"
    widths.append(pane.minimumSizeHint().width())
    pane.set_busy(False)
    pane.index_finished("10000 photos ready · 10000 indexed now · 3 skipped (see the log)")
    widths.append(pane.minimumSizeHint().width())
    assert len(set(widths)) == 1, widths
    assert pane.minimumSizeHint().width() < 240


# -- the window ------------------------------------------------------------------------------
@pytest.fixture
def window(qtbot: Any, tmp_path: Any) -> Any:
    from sketchpad.ui.main_window import MainWindow
    from sketchpad.workspace.preferences import Preferences

    class Window(MainWindow):
        def _ask_save_changes(self) -> Any:
            return "discard"

    w = Window(
        autosave_dir=tmp_path / "autosave",
        preferences=Preferences.load(tmp_path / "prefs.json"),
    )
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    w.canvas.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is w.canvas)
    yield w
    w.photos.shutdown()


def _stroke(canvas: Any, x: float, y: float) -> None:
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    pts = [QPoint(int(x + dx), int(y + dy)) for dx, dy in ((0, 0), (20, 15), (40, 5))]
    QTest.mousePress(canvas, left, none, pts[0])
    for p in pts[1:]:
        QTest.mouseMove(canvas, p, 1)
    QTest.mouseRelease(canvas, left, none, pts[-1])


def test_a_narrow_gallery_busy_at_every_pen_up_never_moves_the_canvas(window: Any) -> None:
    window.splitter.setSizes([1100, 100])
    QApplication.processEvents()
    canvas, pane = window.canvas, window.photos.pane
    _stroke(canvas, 100, 100)
    before, width = canvas.view, canvas.width()
    for i in range(20):
        pane.set_busy(True)  # what every pen-up's query does
        QApplication.processEvents()
        _stroke(canvas, 120 + 10 * i, 200)
        pane.set_index_progress(i * 500, 10000, 120.0 - i)
        pane.set_busy(False)
        QApplication.processEvents()
        assert canvas.view == before and canvas.width() == width
    assert len(window.document.sketch.strokes) == 21


def test_space_held_pans_on_the_canvas_and_enter_is_the_large_view(window: Any) -> None:
    canvas = window.canvas
    large = window.photos.actions["large_view"]
    keys = [k.toString() for k in large.shortcuts()]
    assert "Space" not in keys and "Return" in keys
    opened: list[bool] = []
    large.triggered.connect(lambda *_: opened.append(True))
    grabbed = canvas.view.to_canvas(300, 300)
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QTest.keyPress(canvas, Qt.Key.Key_Space)
    QTest.mousePress(canvas, left, none, QPoint(300, 300))
    QTest.mouseMove(canvas, QPoint(340, 280), 1)
    QTest.mouseRelease(canvas, left, none, QPoint(360, 270))
    QTest.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.view.to_view(*grabbed) == pytest.approx((360, 270))
    assert window.document.sketch.strokes == () and not opened
    assert canvas.tool == "pen"  # released: the pen again
    _stroke(canvas, 100, 100)
    assert len(window.document.sketch.strokes) == 1


def test_after_cancel_on_the_indexing_footer_tool_keys_work(window: Any, qtbot: Any) -> None:
    pane, canvas = window.photos.pane, window.canvas
    pane.set_index_progress(10, 100, 30.0)
    QApplication.processEvents()
    QTest.mouseClick(pane.cancel_button, Qt.MouseButton.LeftButton)
    QApplication.processEvents()
    assert QApplication.focusWidget() is canvas
    QTest.keyClick(window, Qt.Key.Key_L)
    assert canvas.tool == "lasso"
    pane.index_finished("")
    pane.set_index_progress(20, 100, 30.0)  # another box had the keyboard: back to the canvas
    box = window.photos.controls.text_edit
    box.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is box)
    QTest.mouseClick(pane.cancel_button, Qt.MouseButton.LeftButton)
    QApplication.processEvents()
    assert QApplication.focusWidget() is canvas


def test_no_window_shortcut_takes_space_from_the_canvas(window: Any) -> None:
    from PySide6.QtGui import QAction, QKeySequence

    canvas = window.canvas
    other = QAction("Something on Space", window)
    other.setShortcut(QKeySequence("Space"))
    fired: list[bool] = []
    other.triggered.connect(lambda *_: fired.append(True))
    window.addAction(other)
    grabbed = canvas.view.to_canvas(300, 300)
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QTest.keyPress(canvas, Qt.Key.Key_Space)
    QTest.mousePress(canvas, left, none, QPoint(300, 300))
    QTest.mouseMove(canvas, QPoint(330, 320), 1)
    QTest.mouseRelease(canvas, left, none, QPoint(330, 320))
    QTest.keyRelease(canvas, Qt.Key.Key_Space)
    assert not fired and window.document.sketch.strokes == ()
    assert canvas.view.to_view(*grabbed) == pytest.approx((330, 320))
