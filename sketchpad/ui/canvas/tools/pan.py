"""The hand: drag the canvas. Also used while Space is held or the middle button drags."""

from __future__ import annotations

from PySide6.QtCore import Qt

from sketchpad.ui.canvas.tools.base import PointerInput, Tool, ToolHost


class PanTool(Tool):
    """Keeps the canvas point grabbed at the press under the pointer."""

    name = "pan"
    cursor = Qt.CursorShape.OpenHandCursor

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._anchor: tuple[float, float] | None = None  # canvas point grabbed

    @property
    def dragging(self) -> bool:
        return self._anchor is not None

    def cursor_at(self, x: float, y: float) -> Qt.CursorShape:
        return Qt.CursorShape.ClosedHandCursor if self.dragging else self.cursor

    def press(self, p: PointerInput) -> None:
        self._anchor = (p.x, p.y)

    def move(self, p: PointerInput) -> None:
        if self._anchor is None:
            return
        view = self.host.view
        # p was mapped with the current view, so this is where the pointer is on screen.
        vx, vy = view.to_view(p.x, p.y)
        self.host.set_view(view.anchored(self._anchor[0], self._anchor[1], vx, vy))

    def release(self, p: PointerInput) -> None:
        self.move(p)
        self._anchor = None

    def cancel(self) -> None:
        self._anchor = None
