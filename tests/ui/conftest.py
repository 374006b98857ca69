"""Fixtures for the canvas tests: offscreen Qt, isolated user folders, a shown canvas and
a driver that sends real mouse events in canvas coordinates."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterable, Sequence

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.ui.canvas.canvas import Canvas
from sketchpad.ui.canvas.document import Document

LEFT = Qt.MouseButton.LeftButton
NO_MOD = Qt.KeyboardModifier.NoModifier


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Nothing a test does may touch the real user folders."""
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))


class CanvasDriver:
    """Sends QMouseEvents to ``canvas`` at canvas coordinates (mapped through its current
    view transform, as a user's pointer would be)."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas

    def view_point(self, x: float, y: float) -> QPointF:
        return QPointF(*self.canvas.view.to_view(x, y))

    def send(self, kind, view_pos: QPointF, button, buttons, mods=NO_MOD) -> None:
        glob = self.canvas.mapToGlobal(view_pos)
        event = QMouseEvent(kind, view_pos, glob, button, buttons, mods)
        QApplication.sendEvent(self.canvas, event)

    def press(self, x, y, button=LEFT, mods=NO_MOD) -> None:
        self.send(QEvent.Type.MouseButtonPress, self.view_point(x, y), button, button, mods)

    def move(self, x, y, buttons=LEFT, mods=NO_MOD) -> None:
        no = Qt.MouseButton.NoButton
        self.send(QEvent.Type.MouseMove, self.view_point(x, y), no, buttons, mods)

    def release(self, x, y, button=LEFT, mods=NO_MOD) -> None:
        self.send(
            QEvent.Type.MouseButtonRelease,
            self.view_point(x, y),
            button,
            Qt.MouseButton.NoButton,
            mods,
        )

    def drag(self, points: Iterable[Sequence[float]], button=LEFT, mods=NO_MOD) -> None:
        """Press, move and release through canvas points (the view must not change meanwhile)."""
        pts = [tuple(map(float, p)) for p in points]
        self.press(*pts[0], button=button, mods=mods)
        for p in pts[1:]:
            self.move(*p, buttons=button, mods=mods)
        self.release(*pts[-1], button=button, mods=mods)

    def drag_view(self, points: Iterable[Sequence[float]], button=LEFT, mods=NO_MOD) -> None:
        """Press, move and release through view (widget) points: for pans, which move the view."""
        pts = [QPointF(*map(float, p)) for p in points]
        no = Qt.MouseButton.NoButton
        self.send(QEvent.Type.MouseButtonPress, pts[0], button, button, mods)
        for p in pts[1:]:
            self.send(QEvent.Type.MouseMove, p, no, button, mods)
        self.send(QEvent.Type.MouseButtonRelease, pts[-1], button, no, mods)

    def click(self, x, y, button=LEFT, mods=NO_MOD) -> None:
        self.press(x, y, button, mods)
        self.release(x, y, button, mods)


def _line(x0: float, y0: float, x1: float, y1: float, n: int = 10) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return np.array([x0, y0]) + t * np.array([x1 - x0, y1 - y0])


def _make_sketch(*polylines: np.ndarray, width: float = 800, height: float = 600) -> Sketch:
    return Sketch(strokes=tuple(Stroke(points=p) for p in polylines), width=width, height=height)


@pytest.fixture
def line():
    """line(x0, y0, x1, y1, n=10) → (n, 2) points evenly spaced along the segment."""
    return _line


@pytest.fixture
def make_sketch():
    """make_sketch(*polylines, width=800, height=600) → a Sketch with one stroke each."""
    return _make_sketch


@pytest.fixture
def document() -> Document:
    return Document(Sketch(width=800, height=600))


@pytest.fixture
def canvas(qtbot, document) -> Canvas:
    c = Canvas(document)
    qtbot.addWidget(c)
    c.resize(900, 700)
    c.show()
    qtbot.waitExposed(c)
    return c


@pytest.fixture
def driver(canvas) -> CanvasDriver:
    return CanvasDriver(canvas)
