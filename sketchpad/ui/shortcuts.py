"""Findable keys: tooltips that say what an action does and its key, and Help ▸ Keyboard
Shortcuts, a list generated from the actions themselves.

An action's keys are its QKeySequences; an action whose keys a widget handles itself (the
large view and the mask editor read keys in ``keyPressEvent``) names them in the
``sketchpadKeys`` property, set by :func:`describe`. Keys that belong to no action (Space held
pans the canvas) are listed by their owners as ``(keys, what)`` pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLineEdit,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sketchpad.ui.icons import set_icon

KEYS_PROPERTY = "sketchpadKeys"  # keys a widget handles for this action, e.g. "P" or "[ / ]"
WHAT_PROPERTY = "sketchpadWhat"  # what the action does, for the shortcuts list
NAME_PROPERTY = "sketchpadName"  # its name when described ("Undo", whatever the text says now)


def plain_text(action: QAction) -> str:
    """The action's text without mnemonics and a trailing ellipsis: ``"Open Folder"``."""
    return action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…. ")


def action_keys(action: QAction) -> list[str]:
    """The action's keys in the platform's words (``["Ctrl+Z"]``): its shortcuts, or else the
    keys named by :func:`describe`."""
    keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()]
    keys = [k for k in keys if k]
    if keys:
        return keys
    named = action.property(KEYS_PROPERTY)
    return [named] if isinstance(named, str) and named else []


def describe(action: QAction, what: str, icon: str | None = None, keys: str = "") -> None:
    """Tooltip ``"Lasso — select strokes to search for (L)"``: the action's name, what it
    does and its first key (``keys`` names keys a widget handles itself); ``icon`` names the
    icon in ``resources/icons``."""
    if keys:
        action.setProperty(KEYS_PROPERTY, keys)
    name = plain_text(action)
    action.setProperty(WHAT_PROPERTY, what)
    action.setProperty(NAME_PROPERTY, name)
    found = action_keys(action)
    suffix = f" ({found[0]})" if found else ""
    action.setToolTip(f"{name} — {what}{suffix}")
    if icon:
        set_icon(action, icon)


@dataclass(frozen=True)
class Shortcut:
    """One row of the shortcuts list."""

    group: str
    keys: str
    what: str


def action_rows(group: str, actions: Iterable[QAction]) -> list[Shortcut]:
    """A row per action with keys (duplicates dropped): keys joined by commas, then the
    action's name and, where described, what it does."""
    rows: list[Shortcut] = []
    seen: set[int] = set()
    for a in actions:
        keys = action_keys(a)
        if not keys or id(a) in seen or a.isSeparator():
            continue
        seen.add(id(a))
        rows.append(Shortcut(group, ", ".join(keys), _what(a, keys)))
    return rows


def _what(action: QAction, keys: Sequence[str]) -> str:
    """``"Name — what it does"`` when described; else its own tooltip without the keys (when
    it says more than the name); else its name."""
    text = plain_text(action)
    what, name = action.property(WHAT_PROPERTY), action.property(NAME_PROPERTY)
    if isinstance(what, str) and what:
        return f"{name if isinstance(name, str) else text} — {what}"
    tip = action.toolTip()
    for k in keys:
        tip = tip.replace(f" ({k})", "")
    return tip if tip and plain_text(action) not in (tip, tip.rstrip("…. ")) else text


def menu_actions(menu: QMenu) -> list[QAction]:
    """Every action of ``menu`` and of its submenus, in menu order."""
    out: list[QAction] = []
    for a in menu.actions():
        sub = a.menu()
        if isinstance(sub, QMenu):
            out.extend(menu_actions(sub))
        else:
            out.append(a)
    return out


def pair_rows(group: str, pairs: Sequence[tuple[str, str]]) -> list[Shortcut]:
    """Rows for keys that belong to no action, given as ``(keys, what)``."""
    return [Shortcut(group, keys, what) for keys, what in pairs]


class ShortcutsDialog(QDialog):
    """Help ▸ Keyboard Shortcuts: the rows grouped by area, with a filter box.

    Widgets: ``filter_edit``, ``tree`` (a top-level item per group, a child per row; columns
    keys and what)."""

    def __init__(self, rows: Sequence[Shortcut], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard Shortcuts")
        self.rows = list(rows)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Search keys and actions")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._filter)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Keys", "Action"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        groups: dict[str, tuple[QTreeWidgetItem, list[QTreeWidgetItem]]] = {}
        for row in self.rows:
            if row.group not in groups:
                head = QTreeWidgetItem(self.tree, [row.group])
                font = head.font(0)
                font.setBold(True)
                head.setFont(0, font)
                head.setFirstColumnSpanned(True)
                head.setFlags(Qt.ItemFlag.ItemIsEnabled)
                groups[row.group] = (head, [])
            head, items = groups[row.group]
            items.append(QTreeWidgetItem(head, [row.keys, row.what]))
        self._items = list(groups.values())
        self.tree.expandAll()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.tree, 1)
        layout.addWidget(buttons)
        self.resize(640, 620)

    def visible_rows(self) -> list[tuple[str, str, str]]:
        """The rows the filter lets through, as (group, keys, what)."""
        return [
            (group.text(0), item.text(0), item.text(1))
            for group, items in self._items
            for item in items
            if not item.isHidden()
        ]

    def _filter(self, text: str) -> None:
        words = text.casefold().split()
        for group, items in self._items:
            shown = 0
            for item in items:
                hay = f"{group.text(0)} {item.text(0)} {item.text(1)}".casefold()
                hide = not all(w in hay for w in words)
                item.setHidden(hide)
                shown += not hide
            group.setHidden(shown == 0)
