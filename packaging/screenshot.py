"""Draw a sketch in the real main window and save screenshots of it.

Run through ``packaging/screenshot.sh`` (a virtual X display). Everything the app
writes goes to a temporary SKETCHPAD_HOME and a temporary QSettings folder, so the
user's files, window geometry and autosaves are never touched and no restore offer
appears. The strokes are drawn with simulated mouse events on the canvas, exactly as
a person would draw them.

Two screenshots: ``canvas.png`` (the drawing, a lasso selection) and, next to it,
``labelling.png`` (the same scene labelled in the Scene Labels panel). No CLIP weights
ship with Sketchpad, so the labelling screenshot uses :class:`RegionStandIn`, a stand-in
backbone whose patch features are planted by region of this very drawing (house, tree,
sun, birds, hills, grass): the labelling machinery, the panel and the colours are real,
the model is not.

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

import numpy as np  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QMainWindow  # noqa: E402

from sketchpad.sketch.model import Sketch, Stroke  # noqa: E402
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


CAPTION = "A house with smoke from the chimney, a tree, the sun and two birds over the hills " \
          "and the grass."


def scene_region(x: float, y: float) -> str | None:
    """Which object of :func:`house_and_sun` the canvas point (x, y) belongs to."""
    if x < 175 and y >= 420:
        return "hill"
    if 480 <= x <= 665 and 270 <= y < 445:
        return "tree"
    if y >= 445 and not 150 <= x <= 410:
        return "grass"
    if 150 <= x <= 410 and y >= 170:
        return "house"
    if x >= 540 and y < 230:
        return "sun"
    if 380 <= x <= 510 and y < 150:
        return "bird"
    return None


class RegionStandIn:
    """Builds the stand-in backbone for the labelling screenshot (see the module notes).

    Patch (i, j) of a 28×28 grid (224 px input, 8 px patches) is mapped back to the canvas
    through the labeller's framing of ``sketch`` and gets the basis vector of the object
    there; a prompt gets the basis vector of the object it names (the empty prompt its own).
    """

    def __init__(self, sketch: Sketch, names: tuple[str, ...]) -> None:
        self.sketch, self.names = sketch, names

    def __call__(self, progress: object) -> object:
        import re

        import torch
        from torch import nn

        from sketchpad.sketch.raster import fit_frame
        from sketchpad.vision.backbone import Backbone, WeightsInfo
        from sketchpad.vision.registry import OPENAI_MEAN, OPENAI_STD, BackboneSpec

        names, d = self.names, len(self.names) + 2  # + the empty prompt, + elsewhere
        basis = np.eye(d, dtype=np.float32)
        spec = BackboneSpec(
            id="screenshot-stand-in", family="open_clip", arch="stand-in",
            description="features planted by region", use="screenshot", pretrained_tag="none",
            hf_repo="none/none", hf_files=("none.safetensors",), input_size=224, patch_size=8,
            width=d, embed_dim=d, depth=1, mean=OPENAI_MEAN, std=OPENAI_STD, has_text=True,
            testing=True,
        )
        frame = fit_frame(self.sketch.bbox(), (224, 224), 0.1)  # as SceneLabeller frames it
        g = spec.input_size // spec.patch_size
        centre = (np.arange(g) + 0.5) * spec.patch_size
        grid = np.zeros((g, g, d), dtype=np.float32)
        for i in range(g):
            for j in range(g):
                x, y = (centre[j] - frame.tx) / frame.scale, (centre[i] - frame.ty) / frame.scale
                name = scene_region(x, y)
                grid[i, j] = basis[names.index(name) if name in names else d - 1]
        cls = basis.sum(axis=0) / np.sqrt(d)

        class Planted(Backbone):
            def encode_patches(self, x: torch.Tensor, **_: object) -> tuple[torch.Tensor, ...]:
                b = x.shape[0]
                return (torch.from_numpy(np.tile(cls, (b, 1))),
                        torch.from_numpy(np.broadcast_to(grid, (b, g, g, d)).copy()))

            def encode_text(self, texts: list[str]) -> torch.Tensor:
                rows = []
                for t in texts:
                    hit = [k for k, n in enumerate(names) if re.search(rf"\b{n}\b", t)]
                    rows.append(basis[hit[0] if hit else d - 2])
                return torch.from_numpy(np.stack(rows))

        weights = WeightsInfo("stand-in", None, "random", False)
        return Planted(spec, nn.Identity(), weights, torch.device("cpu"))


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

    scene = Sketch(strokes=tuple(Stroke(np.array(p)) for p in house_and_sun()))
    names = ("house", "tree", "sun", "bird", "hill", "grass")
    window = MainWindow(labelling_backbone=RegionStandIn(scene, names))
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

    if not save_shot(window, out):
        return 1

    # The labelling screenshot: the same scene, labels proposed from a caption, labelled.
    window.undo_dock.hide()
    window.document.reset(scene, None)
    panel = window.scene_panel
    panel.raise_()  # its tab, in front of Photo Search
    panel.caption_edit.setText(CAPTION)
    panel.propose_button.click()
    panel.actions["label"].trigger()
    if not window.scene.service.wait_until_idle(60.0) or window.scene.result is None:
        print("the labelling did not finish", file=sys.stderr)
        return 1
    window.canvas.set_tool("relabel")
    QTest.mouseMove(canvas, QPointF(*canvas.view.to_view(470, 300)).toPoint())
    QTest.qWait(300)
    ok = save_shot(window, out.parent / "labelling.png")
    window.document.undo_stack.setClean()  # nothing to ask about on close
    window.close()
    return 0 if ok else 1


def save_shot(window: QMainWindow, out: Path) -> bool:
    """Grab the window from the (virtual) screen into ``out``."""
    screen = window.screen()
    geometry = window.frameGeometry()
    shot = screen.grabWindow(0, geometry.x(), geometry.y(), geometry.width(), geometry.height())
    if shot.isNull():
        shot = window.grab()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not shot.save(str(out)):
        print(f"could not write {out}", file=sys.stderr)
        return False
    print(f"wrote {out} ({shot.width()}×{shot.height()})")
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv))
