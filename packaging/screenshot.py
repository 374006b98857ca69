"""Draw a sketch in the real main window and save a screenshot of it.

Run through ``packaging/screenshot.sh`` (a virtual X display). Everything the app
writes goes to a temporary SKETCHPAD_HOME and a temporary QSettings folder, so the
user's files, window geometry and autosaves are never touched and no restore offer
appears. The strokes are drawn with simulated mouse events on the canvas, exactly as
a person would draw them.

Usage: python packaging/screenshot.py [OUTPUT.png]   (default resources/screenshots/canvas.png)
"""

from __future__ import annotations

import math
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = tempfile.mkdtemp(prefix="sketchpad-screenshot-")
os.environ["SKETCHPAD_HOME"] = HOME  # before anything asks for a standard path
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from sketchpad.ui.app import app_icon, set_application_names  # noqa: E402

Point = tuple[float, float]
WINDOW_SIZE = (1280, 800)


_hand = random.Random(7)  # a steady hand, but not a ruler


def polyline(*pts: Point, step: float = 6.0, jitter: float = 0.8) -> list[Point]:
    """The corner points with samples every ``step`` canvas pixels, slightly wobbly."""
    out: list[Point] = [pts[0]]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) / step))
        for k in range(1, n + 1):
            dx, dy = (_hand.uniform(-jitter, jitter) for _ in range(2)) if k < n else (0.0, 0.0)
            out.append((x0 + (x1 - x0) * k / n + dx, y0 + (y1 - y0) * k / n + dy))
    return out


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 40,
        wobble: float = 0.0) -> list[Point]:
    """Points on an elliptical arc from angle a0 to a1 (degrees, y down)."""
    pts = []
    for k in range(n + 1):
        a = math.radians(a0 + (a1 - a0) * k / n)
        w = 1.0 + wobble * math.sin(5 * a)
        pts.append((cx + rx * w * math.cos(a), cy + ry * w * math.sin(a)))
    return pts


def house_and_sun() -> list[list[Point]]:
    """A house with a door and window, a tree, a sun with rays, hills and a bird:
    canvas coordinates on the default 800×600 page."""
    strokes: list[list[Point]] = []
    # house
    strokes.append(polyline((180, 470), (180, 330), (380, 330), (380, 470), (180, 470)))
    strokes.append(polyline((160, 340), (280, 240), (400, 340)))
    strokes.append(polyline((255, 470), (255, 395), (305, 395), (305, 470)))
    strokes.append(polyline((205, 360), (245, 360), (245, 395), (205, 395), (205, 360)))
    strokes.append(polyline((225, 360), (225, 395)))
    strokes.append(polyline((330, 290), (330, 255), (355, 255), (355, 312)))
    # smoke
    strokes.append([(342 + 8 * math.sin(t / 3), 245 - 5 * t) for t in range(0, 14)])
    # tree
    strokes.append(polyline((560, 470), (565, 390)))
    strokes.append(polyline((590, 470), (585, 390)))
    strokes.append(arc(575, 345, 62, 55, 110, 430, n=60, wobble=0.08))
    # sun and rays
    strokes.append(arc(640, 130, 42, 42, 0, 360, n=48))
    for k in range(10):
        a = math.radians(k * 36 + 10)
        strokes.append(polyline((640 + 56 * math.cos(a), 130 + 56 * math.sin(a)),
                                (640 + 80 * math.cos(a), 130 + 80 * math.sin(a)), step=4))
    # ground and hills
    strokes.append(polyline((24, 470), (760, 470), step=10))
    strokes.append(arc(92, 470, 72, 36, 180, 360, n=30))
    # birds
    for bx, by in ((420, 120), (470, 95)):
        strokes.append(arc(bx - 12, by, 12, 8, 200, 340, n=10) + arc(bx + 12, by, 12, 8, 200, 340,
                                                                     n=10))
    return strokes


def draw_stroke(canvas: object, pts: list[Point]) -> None:
    """Press, move through ``pts`` and release with the left button (canvas coordinates)."""
    def view_point(p: Point) -> QPoint:
        vx, vy = canvas.view.to_view(*p)  # type: ignore[attr-defined]
        return QPointF(vx, vy).toPoint()

    first = view_point(pts[0])
    QTest.mouseMove(canvas, first)
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, first)
    for p in pts[1:]:
        QTest.mouseMove(canvas, view_point(p), 1)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       view_point(pts[-1]))


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "resources" / "screenshots" / "canvas.png"
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      str(Path(HOME) / "qsettings"))
    set_application_names()
    app = QApplication([argv[0]])
    app.setWindowIcon(app_icon())

    from sketchpad.ui.main_window import MainWindow

    window = MainWindow()
    window.resize(*WINDOW_SIZE)
    window.move(0, 0)
    window.show()
    QTest.qWaitForWindowExposed(window)
    window.undo_dock.show()
    window.resizeDocks([window.undo_dock], [220], Qt.Orientation.Horizontal)
    QTest.qWait(200)
    canvas = window.canvas
    canvas.fit_to_view()
    QTest.qWait(100)

    for pts in house_and_sun():
        draw_stroke(canvas, pts)
        app.processEvents()

    # Lasso the sun: the selection highlight shows how a part becomes the query.
    window.canvas.tool_actions()["lasso"].trigger()
    draw_stroke(canvas, arc(640, 130, 105, 100, -90, 275, n=50))
    QTest.mouseMove(canvas, QPointF(*canvas.view.to_view(520, 250)).toPoint())
    QTest.qWait(300)

    screen = window.screen()
    geometry = window.frameGeometry()
    shot = screen.grabWindow(0, geometry.x(), geometry.y(), geometry.width(), geometry.height())
    if shot.isNull():
        shot = window.grab()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not shot.save(str(out)):
        print(f"could not write {out}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({shot.width()}×{shot.height()})")
    window.document.undo_stack.setClean()  # nothing to ask about on close
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
