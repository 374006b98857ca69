"""What every canvas tool shares: the pointer sample, the settings, the host protocol.

A tool turns pointer samples in **canvas coordinates** into document changes
(:class:`~sketchpad.sketch.edit.SketchEdit` pushed through ``Document.apply``) and
selection changes, and paints its own overlay (lasso polygon, eraser circle, partition
lines) in **view coordinates**. It never sees a QMouseEvent: the canvas maps events
through its :class:`~sketchpad.ui.view_transform.ViewTransform` first, so tools can be
driven directly in tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter

from sketchpad.sketch.geometry import LassoMode
from sketchpad.sketch.model import DEFAULT_COLOR, DEFAULT_PEN_WIDTH
from sketchpad.ui.document import Document
from sketchpad.ui.view_transform import ViewTransform

ToolName = Literal["pen", "eraser", "partial_eraser", "lasso", "partition", "relabel", "pan"]
TOOL_NAMES: tuple[ToolName, ...] = get_args(ToolName)
LASSO_MODES: tuple[LassoMode, ...] = get_args(LassoMode)
TOOL_TEXT: dict[ToolName, tuple[str, str]] = {  # menu text, shortcut
    "pen": ("&Pen", "B"),
    "eraser": ("&Eraser", "E"),
    "partial_eraser": ("P&artial Eraser", "Shift+E"),
    "lasso": ("&Lasso", "L"),
    "partition": ("Pa&rtition", "P"),
    "relabel": ("Rela&bel", "R"),
    "pan": ("&Hand", "H"),
}

PARTITION_N_RANGE = (2, 12)
CLICK_SLOP_VIEW = 4.0  # a press and release closer than this (view px) is a click, not a drag

Rect = tuple[float, float, float, float]  # (x0, y0, x1, y1)


@dataclass(frozen=True)
class PointerInput:
    """One pointer sample.

    Attributes:
        x, y: canvas coordinates.
        t_ms: monotonic clock in milliseconds (only differences matter).
        pressure: stylus pressure in [0, 1], None for a mouse or touchpad.
        shift: Shift held (lasso: add to the selection).
    """

    x: float
    y: float
    t_ms: float = 0.0
    pressure: float | None = None
    shift: bool = False


@dataclass
class ToolSettings:
    """The user's tool options, shared by the canvas, its tools and the toolbar.

    Attributes:
        pen_width: new strokes' width, canvas pixels.
        pen_color: new strokes' display colour, ``#rrggbb``.
        eraser_radius: eraser radius in *view* pixels (constant on screen at any zoom).
        lasso_mode: ``whole`` selects touched strokes, ``cut`` cuts them at the lasso.
        partition_n: number of sectors, in PARTITION_N_RANGE.
        partition_theta1: angle of the first sector boundary, radians, canvas frame.
    """

    pen_width: float = DEFAULT_PEN_WIDTH
    pen_color: str = DEFAULT_COLOR
    eraser_radius: float = 10.0
    lasso_mode: LassoMode = "whole"
    partition_n: int = 2
    partition_theta1: float = 0.0

    @staticmethod
    def checked(name: str, value: Any) -> Any:
        """``value`` normalised for field ``name``; ValueError naming the field if invalid."""
        if name in ("pen_width", "eraser_radius"):
            if not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
            return float(value)
        if name == "lasso_mode":
            if value not in LASSO_MODES:
                raise ValueError(f"lasso_mode must be one of {LASSO_MODES}, got {value!r}")
            return value
        if name == "partition_n":
            lo, hi = PARTITION_N_RANGE
            if not isinstance(value, (int, float)) or int(value) != value or not lo <= value <= hi:
                raise ValueError(f"partition_n must be an integer in {lo}..{hi}, got {value!r}")
            return int(value)
        if name == "partition_theta1":
            if not math.isfinite(value):
                raise ValueError(f"partition_theta1 must be a finite angle, got {value!r}")
            return float(value) % (2.0 * math.pi)
        if name == "pen_color":
            hex_digits = set("0123456789abcdef")
            if not (
                isinstance(value, str)
                and len(value) == 7
                and value[0] == "#"
                and set(value[1:].lower()) <= hex_digits
            ):
                raise ValueError(f"pen_color must be '#rrggbb', got {value!r}")
            return value.lower()
        raise ValueError(f"ToolSettings has no field {name!r}")


class ToolHost(Protocol):
    """What a tool needs from the canvas."""

    @property
    def document(self) -> Document: ...

    @property
    def view(self) -> ViewTransform: ...

    @property
    def settings(self) -> ToolSettings: ...

    def set_view(self, view: ViewTransform) -> None:
        """Change the view (pan); the canvas repaints."""

    def request_update(self, canvas_rect: Rect | None = None) -> None:
        """Repaint ``canvas_rect`` (canvas coordinates), or everything when None."""

    def show_message(self, text: str) -> None:
        """Tell the user something brief (status bar)."""

    def partition_changed(self) -> None:
        """The partition angle changed (the canvas emits its signal)."""


class Tool:
    """Base class: ignores everything. Subclasses override what they handle.

    The canvas calls ``press`` / ``move`` / ``release`` for a left-button drag (``move``
    only while the button is held), ``hover`` for moves without a button, ``leave`` when
    the pointer leaves the widget, ``finish`` when the tool is switched mid-drag and
    ``cancel`` when the drag must be abandoned (the document was replaced).
    """

    name: ToolName
    cursor: Qt.CursorShape = Qt.CursorShape.CrossCursor

    def __init__(self, host: ToolHost) -> None:
        self.host = host

    @property
    def document(self) -> Document:
        return self.host.document

    def press(self, p: PointerInput) -> None:
        """Button pressed at ``p``."""

    def move(self, p: PointerInput) -> None:
        """Pointer moved to ``p`` with the button held."""

    def release(self, p: PointerInput) -> None:
        """Button released at ``p``."""

    def hover(self, p: PointerInput) -> None:
        """Pointer moved to ``p`` without a button."""

    def leave(self) -> None:
        """Pointer left the widget."""

    def cancel(self) -> None:
        """Abandon any drag in progress without a further edit (a new document)."""

    def finish(self) -> None:
        """End any drag in progress because the tool is being switched (default: cancel)."""
        self.cancel()

    def cursor_at(self, x: float, y: float) -> Qt.CursorShape:
        """The mouse cursor to show over canvas point (x, y)."""
        return self.cursor

    def paint_overlay(self, painter: QPainter, view: ViewTransform) -> None:
        """Paint the tool's feedback; ``painter`` works in view coordinates."""


def rect_around(points: list[tuple[float, float]], pad: float) -> Rect:
    """Bounding box of ``points`` (canvas coordinates) grown by ``pad`` on each side."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)


def is_click(a: PointerInput, b: PointerInput, view: ViewTransform) -> bool:
    """True when ``a`` and ``b`` are closer than the click slop on screen."""
    slop = view.length_to_canvas(CLICK_SLOP_VIEW)
    return (a.x - b.x) ** 2 + (a.y - b.y) ** 2 <= slop * slop
