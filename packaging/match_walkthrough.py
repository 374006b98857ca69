"""Match Points in the real window on an X server, driven with real X events (issue 20 item 4).

Run through ``packaging/walkthrough.sh`` with ``WALKTHROUGH_SCRIPT=packaging/match_walkthrough.py``
(a virtual X display). A house is drawn on the canvas with the X pointer, a folder of generated
photos is opened, the large view shows a photo of a house, K (an X key event) turns Match
Points on, and the X pointer clicks the roof's apex on the sketch pane: the matching point is
marked on the photo with the heat map; then a click on the photo marks its match on the
sketch. Screenshots of both go to OUT_DIR (``match-sketch-to-photo.png``,
``match-photo-to-sketch.png``).

The model is the tiny SketchFusion (``test-sketchfusion-tiny``: tiny SD UNet and VAE + tiny CLIP)
with **random weights** at a 256 px input (16 × 16 map): the marks show where the computation
puts them, not a trained model's answer. Exit status 1 when a check fails.

Usage: python packaging/match_walkthrough.py OUT_DIR
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))

# walkthrough sets SKETCHPAD_HOME to a temporary folder (HOME) before anything asks for it
from PySide6.QtCore import QPointF, QRect, QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from walkthrough import HOME, open_window, pen_stroke, pump, until, xdo  # noqa: E402

BACKBONE = "test-sketchfusion-tiny"
INPUT_SIZE = 256


def make_photos(folder: Path) -> None:
    """A house on grass under a sky, and two other scenes."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for name, shift in (("house.jpg", 0), ("house-right.jpg", 120), ("field.jpg", None)):
        im = Image.new("RGB", (480, 360), (140, 190, 235))
        d = ImageDraw.Draw(im)
        d.rectangle((0, 250, 480, 360), fill=(80, 150, 60))
        d.ellipse((380, 30, 440, 90), fill=(250, 220, 60))
        if shift is not None:
            x = 120 + shift
            d.rectangle((x, 150, x + 160, 270), fill=(200, 60, 50), outline=(60, 20, 20), width=4)
            d.polygon([(x - 15, 150), (x + 80, 70), (x + 175, 150)], fill=(110, 40, 30))
            d.rectangle((x + 60, 200, x + 100, 270), fill=(70, 40, 20))
        im.save(folder / name, quality=92)


class Walk:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.failures: list[str] = []
        self.window = open_window(BACKBONE, input_size=INPUT_SIZE)
        self.canvas = self.window.canvas

    def check(self, ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {what}")
        if not ok:
            self.failures.append(what)

    def shot(self, name: str, rect: QRect) -> Path:
        pump(0.3)
        path = self.out / f"{name}.png"
        screen = QApplication.primaryScreen()
        screen.grabWindow(0, rect.x(), rect.y(), rect.width(), rect.height()).save(str(path))
        print(f"  screenshot {path}")
        return path

    def draw(self, points: list[tuple[float, float]]) -> None:
        """A pen stroke through canvas view points, with the X pointer."""
        pen_stroke(self.window, points)

    def run(self) -> None:
        photos = self.window.photos
        photos.start()
        self.check(until(lambda: photos.model is not None, 300), f"the model {BACKBONE} loaded")
        self.window.activateWindow()
        self.canvas.setFocus()
        pump(0.5)
        print("1. a house drawn on the canvas with the X pointer")

        def line(a: tuple[float, float], b: tuple[float, float], n: int = 12) -> list[Any]:
            return [(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n)
                    for i in range(n + 1)]  # fmt: skip

        def path(*corners: tuple[float, float]) -> list[Any]:
            out = [corners[0]]
            for a, b in zip(corners, corners[1:], strict=False):
                out += line(a, b)[1:]
            return out

        x, y = 250.0, 300.0
        self.draw(path((x, y), (x + 200, y), (x + 200, y + 150), (x, y + 150), (x, y)))  # walls
        self.draw(path((x - 20, y), (x + 100, y - 100), (x + 220, y)))  # roof
        self.draw(path((x + 75, y + 150), (x + 75, y + 85), (x + 125, y + 85), (x + 125, y + 150)))
        strokes = self.window.document.sketch.strokes
        self.check(len(strokes) == 3, "three strokes drawn")
        print(f"   points per stroke: {[len(s.points) for s in strokes]}")
        folder = Path(HOME) / "photos"
        make_photos(folder)
        engine = photos.engine
        assert engine is not None
        done: list[object] = []
        engine.indexFinished.connect(done.append)
        photos.open_folder(folder)
        self.check(until(lambda: bool(done), 300), "the photos indexed")
        pump(1.0)
        print("2. the large view of house.jpg; K turns Match Points on")
        photos.show_photo("house.jpg")
        dialog = photos.viewer
        assert dialog is not None
        dialog.move(0, 0)
        dialog.resize(1300, 820)
        viewer = dialog.viewer
        self.check(until(lambda: viewer.photo_size is not None, 30), "the photo is shown")
        dialog.activateWindow()
        viewer.view.setFocus()
        pump(0.5)
        c = viewer.view.mapToGlobal(viewer.view.rect().center())
        xdo("mousemove", c.x(), c.y())
        xdo("key", "k")
        matcher = viewer.matcher
        self.check(until(lambda: matcher.active, 5), "K turned Match Points on (X key event)")
        pump(0.5)
        print("3. click the roof's apex on the sketch pane")
        import numpy as np

        from sketchpad.vision.fusion.correspond import sketch_image

        img = sketch_image(self.window.document.sketch, 400)
        ys, xs = np.nonzero(img[..., 0] < 128)
        top = int(np.argmin(ys))
        u, v = (xs[top] + 0.5) / 400, (ys[top] + 3.5) / 400
        shown: list[Any] = []
        matcher.matchShown.connect(shown.append)
        p = matcher.pane.mapToGlobal(matcher.pane.to_widget(u, v).toPoint())
        xdo("mousemove", p.x(), p.y(), "click", "1")
        self.check(until(lambda: bool(shown), 120), "the match came back")
        query, match = matcher.sketch_marks()[0], matcher.photo_marks()[1]
        self.check(query is not None and match is not None, "marked on the sketch and the photo")
        r = shown[-1] if shown else None
        if r is not None:
            to = tuple(round(t, 1) for t in r.targets[0])
            print(f"   sketch ({u:.3f}, {v:.3f}) → photo {to}, confidence "
                  f"{r.confidences[0]:.3f}, {r.seconds:.2f} s, forwards {r.forwards}")  # fmt: skip
        print(f"   status: {viewer.status_text()}")
        frame = dialog.frameGeometry()
        self.shot("match-sketch-to-photo", frame)
        print("4. click the photo's door: its match on the sketch")
        door = viewer.view.mapToGlobal(viewer.view.mapFromScene(QPointF(200.0, 240.0)))
        xdo("mousemove", door.x(), door.y(), "click", "1")
        self.check(until(lambda: len(shown) >= 2, 120), "the reverse match came back")
        if len(shown) >= 2:
            r2 = shown[-1]
            self.check(r2.forwards == 0, "the second click ran no forward (features cached)")
            print(f"   photo (200, 240) → sketch {tuple(round(t, 3) for t in r2.targets[0])}, "
                  f"confidence {r2.confidences[0]:.3f}")  # fmt: skip
        self.check(matcher.sketch_marks()[1] is not None, "the match is marked on the sketch")
        self.shot("match-photo-to-sketch", frame)
        xdo("key", "Escape")
        self.check(until(lambda: matcher.photo_marks() == (None, None), 5), "Esc cleared")

    def close(self) -> None:
        self.window.document.undo_stack.setClean()
        self.window.photos.shutdown()
        self.window.close()


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else ROOT / "build" / "walkthrough").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if shutil.which("xdotool") is None:
        print("xdotool is not installed: sudo apt-get install xdotool", file=sys.stderr)
        return 2
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, HOME)
    from sketchpad.ui.app import keep_every_pointer_event, set_application_names

    app = QApplication(["sketchpad-match-walkthrough"])
    keep_every_pointer_event()  # as the app's own start does (run_app), once it exists
    set_application_names()
    print(f"Qt platform {app.platformName()}, display {os.environ.get('DISPLAY')}")
    walk = Walk(out)
    try:
        walk.run()
    finally:
        walk.close()
        shutil.rmtree(HOME, ignore_errors=True)
    print(f"{len(walk.failures)} check(s) failed" if walk.failures else "all checks passed")
    return 1 if walk.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
