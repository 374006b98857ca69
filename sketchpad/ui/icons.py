"""Toolbar icons: one-colour SVGs drawn in the palette's text colour.

The icons in ``resources/icons/`` are drawn once, in ``currentColor``; :func:`icon` puts the
application palette's button-text colour in its place (and the disabled text colour for the
disabled state) and renders the result with QtSvg, so the same drawing works in a light and
a dark palette. Rendered icons are cached per colour. :func:`set_icon` remembers the icon's
name on the action, and :func:`follow_palette` re-renders every named action's icon when the
application palette changes (a theme switch, or the system's colour scheme).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QObject, QRectF, Qt
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QAbstractButton, QApplication

ICON_DIR = Path(__file__).resolve().parents[2] / "resources" / "icons"
ICON_PROPERTY = "sketchpadIcon"  # the action's icon name, for re-rendering
PLACEHOLDER = "currentColor"
SIZES = (16, 24, 32, 48)  # pixels; the icon engine scales for other sizes


class IconError(ValueError):
    """An icon that is missing or not a drawable SVG."""


@cache
def svg_text(name: str) -> str:
    """The SVG source of icon ``name`` (``resources/icons/<name>.svg``)."""
    path = ICON_DIR / f"{name}.svg"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise IconError(f"{path}: cannot read the icon ({e.strerror or e})") from e


def _renderer(name: str, color: str) -> QSvgRenderer:
    data = QByteArray(svg_text(name).replace(PLACEHOLDER, color).encode("utf-8"))
    renderer = QSvgRenderer(data)
    if not renderer.isValid():
        raise IconError(f"{ICON_DIR / f'{name}.svg'}: not a valid SVG drawing")
    return renderer


def _pixmap(renderer: QSvgRenderer, size: int) -> QPixmap:
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return pix


@cache
def _icon(name: str, normal: str, disabled: str) -> QIcon:
    out = QIcon()
    for color, mode in ((normal, QIcon.Mode.Normal), (disabled, QIcon.Mode.Disabled)):
        renderer = _renderer(name, color)  # parsed once per colour, drawn at every size
        for size in SIZES:
            out.addPixmap(_pixmap(renderer, size), mode)
    return out


def icon_colors(palette: QPalette | None = None) -> tuple[str, str]:
    """The (normal, disabled) colours icons are drawn in: the palette's button text."""
    pal = palette or QGuiApplication.palette()
    role = QPalette.ColorRole.ButtonText
    return (
        pal.color(QPalette.ColorGroup.Active, role).name(),
        pal.color(QPalette.ColorGroup.Disabled, role).name(),
    )


def icon(name: str) -> QIcon:
    """Icon ``name`` in the current application palette's colours (cached)."""
    return _icon(name, *icon_colors())


def set_icon(target: QAction | QAbstractButton, name: str) -> None:
    """Give an action or a button icon ``name`` and remember the name for
    :func:`refresh_icons`."""
    target.setProperty(ICON_PROPERTY, name)
    target.setIcon(icon(name))


def refresh_icons() -> int:
    """Re-render the icon of every action and button given one by :func:`set_icon` (in
    every widget of the application); returns how many were set."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return 0
    seen: set[int] = set()
    for widget in app.allWidgets():
        name = widget.property(ICON_PROPERTY)
        if isinstance(widget, QAbstractButton) and isinstance(name, str):
            seen.add(id(widget))
            widget.setIcon(icon(name))
        for action in (*widget.actions(), *widget.findChildren(QAction)):
            name = action.property(ICON_PROPERTY)
            if isinstance(name, str) and id(action) not in seen:
                seen.add(id(action))
                action.setIcon(icon(name))
    return len(seen)


class _PaletteFollower(QObject):
    """Re-renders icons when the application palette changes."""

    def __init__(self, app: QGuiApplication) -> None:
        super().__init__(app)
        app.paletteChanged.connect(lambda _palette: refresh_icons())


def follow_palette() -> None:
    """Re-render named icons whenever the application palette changes (idempotent)."""
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication) and app.findChild(_PaletteFollower) is None:
        _PaletteFollower(app)
