"""CanvasToolBar: tool buttons and options, in sync with the canvas both ways."""

from __future__ import annotations

import pytest

from sketchpad.ui.canvas.toolbar import CanvasToolBar


@pytest.fixture
def toolbar(qtbot, canvas):
    bar = CanvasToolBar(canvas)
    qtbot.addWidget(bar)
    return bar


def test_toolbar_shows_the_tool_actions(toolbar, canvas):
    tool_actions = list(canvas.tool_actions().values())
    assert tool_actions == [a for a in toolbar.actions() if a in tool_actions]
    tool_actions[3].trigger()
    assert canvas.tool == "lasso"


def test_options_follow_the_widgets_and_the_canvas(toolbar, canvas):
    toolbar.width_spin.setValue(6.5)
    assert canvas.pen_width == 6.5
    canvas.pen_width = 2.0
    assert toolbar.width_spin.value() == 2.0
    toolbar.lasso_mode_combo.setCurrentIndex(toolbar.lasso_mode_combo.findData("cut"))
    assert canvas.lasso_mode == "cut"
    canvas.lasso_mode = "whole"
    assert toolbar.lasso_mode_combo.currentData() == "whole"
    toolbar.partition_n_spin.setValue(7)
    assert canvas.partition_n == 7
    canvas.partition_n = 3
    assert toolbar.partition_n_spin.value() == 3
    assert (toolbar.partition_n_spin.minimum(), toolbar.partition_n_spin.maximum()) == (2, 12)
    canvas.pen_color = "#ff8000"
    assert toolbar.color_button.text() == "#ff8000"


def test_colour_dialog_sets_the_pen_colour(toolbar, canvas, monkeypatch):
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QColorDialog

    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *a, **k: QColor("#123456")))
    toolbar.color_button.click()
    assert canvas.pen_color == "#123456"
