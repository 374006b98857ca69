"""Findable (issue 21 item 8): toolbar icons drawn in the palette's colour, tooltips that say
what an action does and its key, and Help ▸ Keyboard Shortcuts generated from the actions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtGui import QAction, QColor, QKeySequence, QPalette
from PySide6.QtWidgets import QAbstractButton, QApplication, QToolBar, QWidgetAction

from sketchpad.ui import icons
from sketchpad.ui.shortcuts import action_keys, plain_text
from sketchpad.ui.viewer.large_view import PhotoViewer


@pytest.fixture
def viewer(qtbot: Any) -> Iterator[PhotoViewer]:
    v = PhotoViewer(None)
    qtbot.addWidget(v)
    yield v
    v.editor.shutdown()


def toolbar_actions(bar: QToolBar) -> list[QAction]:
    """The toolbar's buttons' actions (not separators nor embedded widgets)."""
    return [a for a in bar.actions() if not a.isSeparator() and not isinstance(a, QWidgetAction)]


def drawn_colors(action: QAction | QAbstractButton, size: int = 24, alpha: int = 255) -> set[str]:
    """The colours of the icon's pixels at least ``alpha`` opaque."""
    image = action.icon().pixmap(size).toImage()
    return {
        image.pixelColor(x, y).name()
        for x in range(image.width())
        for y in range(image.height())
        if image.pixelColor(x, y).alpha() >= alpha
    }


def test_every_toolbar_action_has_an_icon_and_says_what_it_does_and_its_key(
    window: Any, viewer: PhotoViewer
) -> None:
    bars = {"canvas": window.toolbar, "large view": viewer.toolbar}
    checked = 0
    for where, bar in bars.items():
        for a in toolbar_actions(bar):
            name = plain_text(a)
            assert not a.icon().isNull(), f"{where}: {name} has no icon"
            assert drawn_colors(a), f"{where}: {name}'s icon draws nothing"
            tip = a.toolTip()
            assert tip.startswith(f"{name} — ") and len(tip) > len(name) + 8, tip
            keys = action_keys(a)
            if keys:
                assert tip.endswith(f"({keys[0]})"), f"{where}: {tip!r} does not name {keys[0]}"
            checked += 1
    assert checked == 7 + 5 + 9 + 10 + 1  # canvas tools + undo/redo/zoom; viewer; mask editor;
    # Match Points
    panel = window.scene_panel
    for b in (panel.add_button, panel.remove_button, panel.color_button, panel.label_button,
              panel.show_all_button):  # fmt: skip
        assert drawn_colors(b, alpha=1), f"the scene panel's {b.text()!r} button has no icon"
    undo = window.canvas.edit_actions()["undo"]
    assert undo.toolTip().startswith("Undo — take back the last change (")
    tools = window.canvas.tool_actions()
    assert tools["lasso"].toolTip() == "Lasso — select strokes to search for (L)"
    assert viewer.editor.actions_by_name["brush"].toolTip() == "Brush — paint onto the mask (P)"


def test_icons_are_redrawn_in_a_dark_palettes_text_colour(window: Any) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    lasso = window.canvas.tool_actions()["lasso"]
    old = app.palette()
    light, dark = QPalette(old), QPalette(old)
    light.setColor(QPalette.ColorRole.ButtonText, QColor("#101010"))
    dark.setColor(QPalette.ColorRole.Window, QColor("#202124"))
    dark.setColor(QPalette.ColorRole.Button, QColor("#303134"))
    dark.setColor(QPalette.ColorRole.ButtonText, QColor("#e8eaed"))
    try:
        app.setPalette(light)
        add_label = window.scene_panel.add_button  # a plain button, not an action
        assert drawn_colors(lasso) == drawn_colors(add_label) == {"#101010"}
        app.setPalette(dark)  # the toolbar's action changes without being asked
        assert drawn_colors(lasso) == drawn_colors(add_label) == {"#e8eaed"}
        button = window.toolbar.widgetForAction(lasso)
        assert drawn_colors(button.defaultAction()) == {"#e8eaed"}
    finally:
        app.setPalette(old)


def test_every_icon_file_renders(qapp: Any) -> None:
    names = sorted(p.stem for p in icons.ICON_DIR.glob("*.svg") if p.stem != "sketchpad")
    assert len(names) >= 25
    for name in names:
        image = icons.icon(name).pixmap(24).toImage()
        opaque = sum(image.pixelColor(x, y).alpha() > 0 for x in range(24) for y in range(24))
        assert opaque > 20, f"{name}.svg draws almost nothing"
    with pytest.raises(icons.IconError, match="nothing.svg"):
        icons.icon("nothing")


def rows_of(window: Any) -> list[tuple[str, str, str]]:
    return window.show_shortcuts().visible_rows()


def test_shortcuts_dialog_lists_the_keys_of_every_area(window: Any, draw: Any) -> None:
    draw(window.document, 1)  # the undo action's text is now "Undo Draw"
    rows = rows_of(window)
    groups = list(dict.fromkeys(g for g, _, _ in rows))
    assert groups == [
        *("File", "Edit", "Tools", "View", "Photos", "Labels", "Help", "Canvas", "Gallery"),
        *("Large view", "Large view: mask correction and review"),
    ]
    table = {(g, k): w for g, k, w in rows}
    assert table["Tools", "L"] == "Lasso — select strokes to search for"
    undo = [w for (g, k), w in table.items() if g == "Edit" and k.startswith("Ctrl+Z")]
    assert undo == ["Undo — take back the last change"]
    assert table["File", "Ctrl+Q"] == "Quit"
    assert table["Canvas", "Space (held)"].startswith("Pan with any tool")
    assert table["Gallery", "A"] == "Accept the selected photos' masks"  # its own tooltip
    assert table["Gallery", "Return, Enter"] == "Large View"
    assert table["Large view", "Right"] == "Next — show the next photo"
    assert table["Large view: mask correction and review", "P"] == "Brush — paint onto the mask"
    assert table["Large view: mask correction and review", "X"].startswith("Reject")
    assert table["Large view: mask correction and review", "[ / ]"].startswith("Smaller")
    help_key = QKeySequence(QKeySequence.StandardKey.HelpContents).toString(
        QKeySequence.SequenceFormat.NativeText
    )
    assert table["Help", help_key].startswith("Keyboard Shortcuts")


def test_the_list_is_read_from_the_actions_not_written_down(window: Any) -> None:
    window.canvas.tool_actions()["lasso"].setShortcut(QKeySequence("K"))
    window.photos.pane.review_actions["reject"].setShortcut(QKeySequence("Ctrl+Alt+J"))
    table = {(g, k): w for g, k, w in rows_of(window)}
    assert table["Tools", "K"].startswith("Lasso")
    assert ("Tools", "L") not in table
    assert table["Gallery", "Ctrl+Alt+J"].startswith("Reject")


def test_the_filter_finds_keys_and_words(window: Any) -> None:
    dialog = window.show_shortcuts()
    everything = dialog.visible_rows()
    dialog.filter_edit.setText("lasso")
    shown = dialog.visible_rows()
    assert shown and all("lasso" in f"{g} {k} {w}".lower() for g, k, w in shown)
    assert ("Tools", "L", "Lasso — select strokes to search for") in shown
    dialog.filter_edit.setText("paint mask")
    assert [k for _, k, _ in dialog.visible_rows()] == ["P"]
    dialog.filter_edit.clear()
    assert dialog.visible_rows() == everything
