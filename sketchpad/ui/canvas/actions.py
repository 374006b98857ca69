"""The canvas's QActions: edit, view and tool commands with their standard shortcuts.

Every action's parent is the canvas and its shortcut works anywhere in the canvas's window
(``Qt.WindowShortcut``), so the main window can also put them in its menus.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence

from sketchpad.ui.canvas.clipboard import has_strokes
from sketchpad.ui.canvas.tools import TOOL_NAMES, TOOL_TEXT
from sketchpad.ui.shortcuts import describe

if TYPE_CHECKING:
    from sketchpad.ui.canvas.canvas import Canvas

ZOOM_STEP = 1.25  # zoom in / out actions and one Ctrl+wheel notch
SELECTION_ACTIONS = ("cut", "copy", "delete", "deselect")  # enabled when something is selected

# What each action does (its tooltip says this and its key) and its icon in resources/icons.
EDIT_TIPS: dict[str, tuple[str, str | None]] = {
    "undo": ("take back the last change", "undo"),
    "redo": ("do again what was undone", "redo"),
    "cut": ("move the selected strokes to the clipboard", None),
    "copy": ("copy the selected strokes", None),
    "paste": ("add the clipboard's strokes to the sketch", None),
    "delete": ("remove the selected strokes", None),
    "select_all": ("select every stroke", None),
    "deselect": ("select nothing (the whole sketch is searched)", None),
    "zoom_in": ("magnify the canvas", "zoom_in"),
    "zoom_out": ("shrink the canvas", "zoom_out"),
    "fit": ("show the whole sketch", "fit"),
}
TOOL_TIPS: dict[str, str] = {
    "pen": "draw strokes",
    "eraser": "erase every stroke it touches",
    "partial_eraser": "erase only the parts of strokes under it",
    "lasso": "select strokes to search for",
    "partition": "split the sketch into sectors and pick one to search for",
    "relabel": "click a stroke to choose its scene label",
    "pan": "drag to move the view (Space held pans with any tool)",
}
# Keys the canvas reads itself, not through an action: (keys, what).
CANVAS_KEYS: tuple[tuple[str, str], ...] = (
    ("Space (held)", "Pan with any tool: drag while holding Space"),
    ("Ctrl+wheel", "Zoom about the pointer"),
    ("Middle-button drag", "Pan"),
)


def _action(
    canvas: Canvas,
    text: str,
    slot: Callable[[], object],
    *keys: QKeySequence | QKeySequence.StandardKey | str | Qt.Key,
) -> QAction:
    action = QAction(text, canvas)
    action.setShortcuts([QKeySequence(k) for k in keys])
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.triggered.connect(lambda _checked=False: slot())  # drop triggered's bool
    canvas.addAction(action)
    return action


def build_edit_actions(canvas: Canvas) -> dict[str, QAction]:
    """Actions keyed undo, redo, cut, copy, paste, delete, select_all, deselect, zoom_in,
    zoom_out, fit. Undo and redo come from the document's undo stack, so their text names
    the step they will undo or redo."""
    K = QKeySequence.StandardKey
    stack = canvas.document.undo_stack
    undo = stack.createUndoAction(canvas, "&Undo")
    redo = stack.createRedoAction(canvas, "&Redo")
    undo.setShortcuts(QKeySequence.keyBindings(K.Undo))
    redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    for a in (undo, redo):
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        canvas.addAction(a)
    c = canvas
    actions = {
        "undo": undo,
        "redo": redo,
        "cut": _action(c, "Cu&t", c.cut_selection, K.Cut),
        "copy": _action(c, "&Copy", c.copy_selection, K.Copy),
        "paste": _action(c, "&Paste", c.paste, K.Paste),
        "delete": _action(
            c, "&Delete", c.delete_selection, Qt.Key.Key_Delete, Qt.Key.Key_Backspace
        ),
        "select_all": _action(c, "Select &All", c.select_all, K.SelectAll),
        "deselect": _action(c, "D&eselect", c.deselect, "Ctrl+Shift+A", Qt.Key.Key_Escape),
        "zoom_in": _action(c, "Zoom &In", lambda: c.zoom_by(ZOOM_STEP), "Ctrl+=", "Ctrl++"),
        "zoom_out": _action(c, "Zoom &Out", lambda: c.zoom_by(1 / ZOOM_STEP), "Ctrl+-"),
        "fit": _action(c, "&Fit to Window", c.fit_to_view, "Ctrl+0"),
    }
    for key, (what, icon) in EDIT_TIPS.items():
        describe(actions[key], what, icon)
    update_edit_actions(actions, canvas)
    return actions


def update_edit_actions(actions: dict[str, QAction], canvas: Canvas) -> None:
    """Enable the actions that apply to the current selection, sketch and clipboard."""
    doc = canvas.document
    for key in SELECTION_ACTIONS:
        actions[key].setEnabled(bool(doc.selection))
    actions["select_all"].setEnabled(bool(doc.sketch.strokes))
    actions["paste"].setEnabled(has_strokes(QGuiApplication.clipboard().mimeData()))


def build_tool_actions(canvas: Canvas) -> dict[str, QAction]:
    """One checkable action per tool, keyed by ToolName, in an exclusive group."""
    group = QActionGroup(canvas)
    group.setExclusive(True)
    actions: dict[str, QAction] = {}
    for name in TOOL_NAMES:
        text, key = TOOL_TEXT[name]
        action = _action(canvas, text, partial(canvas.set_tool, name), key)
        action.setCheckable(True)
        action.setChecked(name == canvas.tool)
        describe(action, TOOL_TIPS[name], name)
        group.addAction(action)
        actions[name] = action
    return actions
