"""A scripted walkthrough of the real main window on an X server, driven with real X events.

Run through ``packaging/walkthrough.sh`` (``make walkthrough``), which starts a virtual X
display (Xvfb) and sets ``DISPLAY``; every pointer and key event comes from ``xdotool`` (the X
server's XTEST extension), as from a person's mouse and keyboard, never from Qt's test API.
It checks and prints, with a screenshot of each step:

1. **A narrow gallery, 20 pen-ups**: the canvas transform (zoom and offset) after every pen-up
   while each query shows the busy bar; every stroke lands where the pointer drew it.
2. **During indexing**: the same while a folder of generated photos is indexed (progress
   footer shown).
3. **Cancel on the indexing footer**: which widget has the keyboard afterwards, and whether
   the tool keys (L, B) still reach the canvas.
4. **Space held pans**: Space down, drag, Space up: the view moves by the drag, nothing is
   drawn, the pen is the tool again.

The model is the tiny test CLIP with random weights (no download); everything the app writes
goes to a temporary SKETCHPAD_HOME and QSettings folder. Exit status 1 when a check fails.

Usage: python packaging/walkthrough.py OUT_DIR
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOME = tempfile.mkdtemp(prefix="sketchpad-walkthrough-")
os.environ["SKETCHPAD_HOME"] = HOME  # before anything asks for a standard path
os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QCoreApplication, QPoint, QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

PHOTOS = int(os.environ.get("WALKTHROUGH_PHOTOS", "6000"))
BACKBONE = "test-clip-tiny"


def pump(seconds: float) -> None:
    """Run the event loop for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QCoreApplication.processEvents()
        time.sleep(0.002)


def until(cond: Callable[[], bool], timeout_s: float) -> bool:
    end = time.perf_counter() + timeout_s
    while not cond():
        if time.perf_counter() > end:
            return False
        QCoreApplication.processEvents()
        time.sleep(0.002)
    return True


def xdo(*args: object) -> None:
    """One xdotool command line (the events reach Qt through the X server)."""
    subprocess.run(["xdotool", *map(str, args)], check=True)


def pen_stroke(window: Any, view_points: list[tuple[float, float]]) -> None:  # noqa: ANN401
    """A pen stroke with the X pointer through points of ``window``'s canvas view, as a hand
    draws it: xdotool runs in the background, a short pause per move, while Qt reads the
    events; returns once the stroke is in the document."""
    canvas = window.canvas
    n = len(window.document.sketch.strokes)
    pts = [canvas.mapToGlobal(QPoint(round(x), round(y))) for x, y in view_points]
    cmd: list[object] = ["mousemove", pts[0].x(), pts[0].y(), "mousedown", "1"]
    for p in pts[1:]:
        cmd += ["sleep", "0.02", "mousemove", p.x(), p.y()]
    proc = subprocess.Popen(["xdotool", *map(str, cmd), "sleep", "0.05", "mouseup", "1"])
    until(lambda: proc.poll() is not None, 30)
    until(lambda: len(window.document.sketch.strokes) > n, 5)


def open_window(backbone: str, **choice: object) -> Any:  # noqa: ANN401
    """The main window at (0, 0), 1360×860, shown, with ``backbone`` as its photo model built
    from random weights (``choice``: further LoadModel fields, e.g. ``input_size``)."""
    from sketchpad.engine.worker import default_loader
    from sketchpad.ui.main_window import MainWindow
    from sketchpad.workspace.preferences import Preferences

    def loader(request: Any, progress: Any) -> Any:  # noqa: ANN401
        return default_loader(dataclasses.replace(request, pretrained=False, **choice), progress)

    prefs = Preferences.load(Path(HOME) / "prefs.json")
    prefs.backbone = backbone
    window = MainWindow(
        autosave_dir=Path(HOME) / "autosave",
        photo_loader=loader,
        photo_backbones=([backbone], []),
        preferences=prefs,
    )
    window.move(0, 0)
    window.resize(1360, 860)
    window.show()
    return window


class Walk:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.failures: list[str] = []
        self.shot_no = 0
        self.window = open_window(BACKBONE)
        self.canvas = self.window.canvas
        self.strokes_aimed: list[list[tuple[float, float]]] = []  # canvas points under the pointer

    # -- helpers ---------------------------------------------------------------------------
    def check(self, ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {what}")
        if not ok:
            self.failures.append(what)

    def shot(self, name: str) -> None:
        pump(0.15)
        self.shot_no += 1
        path = self.out / f"{self.shot_no:02d}-{name}.png"
        screen = QApplication.primaryScreen()
        screen.grabWindow(0).save(str(path))  # the X root window: what a person sees
        print(f"  screenshot {path}")

    def screen_point(self, vx: float, vy: float) -> QPoint:
        return self.canvas.mapToGlobal(QPoint(round(vx), round(vy)))

    def stroke(self, k: int) -> None:
        """A pen stroke with the X pointer through 10 view points of the canvas; remembers the
        canvas points under the pointer (as the view was before the press)."""
        vx, vy = 140 + (k % 5) * 110, 140 + (k // 5) * 90
        view = [(vx + 9 * i, vy + 4 * ((i * 7) % 5)) for i in range(10)]
        self.strokes_aimed.append([self.canvas.view.to_canvas(x, y) for x, y in view])
        pen_stroke(self.window, view)

    def view_text(self) -> str:
        v = self.canvas.view
        return f"{v.scale * 100:.1f}% offset ({v.offset_x:.1f}, {v.offset_y:.1f})"

    def landed_error(self, first: int) -> float:
        """Largest distance (canvas px) between the path the pointer took and the stroke that
        landed, both ways (every aimed point to the stroke, every stroke point to the path):
        a stroke shifted, scaled or cut short counts, not only its first point."""
        import numpy as np

        def to_path(points: np.ndarray, path: np.ndarray) -> float:
            if len(path) == 1:
                return float(np.linalg.norm(points - path[0], axis=1).max())
            a, b = path[:-1], path[1:]
            ab = b - a
            t = ((points[:, None, :] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)
            near = a + np.clip(t, 0, 1)[..., None] * ab
            return float(np.linalg.norm(points[:, None, :] - near, axis=-1).min(1).max())

        strokes = self.window.document.sketch.strokes
        worst = 0.0
        pairs = zip(self.strokes_aimed[first:], strokes[first:], strict=False)
        for k, (aimed, s) in enumerate(pairs, start=first):
            path = np.asarray(aimed, dtype=float)
            got = np.asarray(s.points, dtype=float)[:, :2]
            err = max(to_path(path, got), to_path(got, path))
            if err >= 1.0 or len(got) < len(path):  # say how it went wrong
                print(f"   stroke {k}: {len(got)} of {len(path)} points, {err:.2f} px off; "
                      f"aimed {np.round(path, 1).tolist()}, got {np.round(got, 1).tolist()}")
            worst = max(worst, err)
        return worst

    def fewest_points(self, first: int) -> int:
        """The fewest points any of the strokes from ``first`` on arrived with."""
        return min((len(s.points) for s in self.window.document.sketch.strokes[first:]), default=0)

    # -- the steps -------------------------------------------------------------------------
    def start(self) -> None:
        photos = self.window.photos
        photos.start()
        ok = until(lambda: photos.model is not None, 180)
        self.check(ok, f"the model {BACKBONE} loaded")
        self.window.activateWindow()
        self.canvas.setFocus()
        pump(0.5)

    def narrow_gallery(self) -> None:
        print("1. a narrow gallery, 20 pen-ups (each runs a query: busy bar)")
        folder = Path(HOME) / "few"
        from sketchpad.ui.bench_ui import make_gallery

        make_gallery(folder, 60, seed=1)
        photos = self.window.photos
        finished: list[object] = []
        engine = photos.engine
        assert engine is not None
        engine.indexFinished.connect(finished.append)
        photos.open_folder(folder)
        until(lambda: bool(finished), 120)
        engine.indexFinished.disconnect(finished.append)
        self.window.splitter.setSizes([1230, 130])
        pump(0.5)
        first = len(self.window.document.sketch.strokes)
        views = []
        busy_seen = 0
        for k in range(20):
            self.stroke(first + k)
            t = time.perf_counter()
            while time.perf_counter() - t < 0.6:  # the query runs: the busy bar comes and goes
                QCoreApplication.processEvents()
                busy_seen += photos.pane.is_busy
                time.sleep(0.002)
            views.append(self.canvas.view)
            print(f"   pen-up {k + 1:2d}: {self.view_text()}")
        self.check(busy_seen > 0, "the busy bar showed during the queries")
        zooms = sorted({round(v.scale * 100, 1) for v in views})
        what = f"canvas transform unchanged over 20 pen-ups (zoom {zooms})"
        self.check(len(set(views)) == 1, what)
        err = self.landed_error(first)
        few = self.fewest_points(first)
        self.check(
            err < 1.0 and few >= 10,
            f"strokes land where drawn, every point (largest error {err:.2f} canvas px; "
            f"at least {few} points per stroke)",
        )
        self.shot("narrow-gallery-20-strokes")

    def during_indexing(self) -> None:
        print(f"2. pen-ups while {PHOTOS} photos are indexed (progress footer)")
        from sketchpad.ui.bench_ui import make_gallery

        folder = Path(HOME) / "many"
        make_gallery(folder, PHOTOS, seed=2)
        photos = self.window.photos
        before_open = self.canvas.view
        photos.open_folder(folder)
        ok = until(lambda: photos.pane.is_indexing_shown, 60)
        self.check(ok, "the indexing footer is shown")
        print(f"   before opening the folder: {self.view_text_of(before_open)}")
        first = len(self.window.document.sketch.strokes)
        views = []
        for k in range(6):
            self.stroke(first + k)
            pump(0.4)
            views.append(self.canvas.view)
            progress = photos.pane.progress_text or "indexed"
            print(f"   pen-up {k + 1} ({progress}): {self.view_text()}")
        self.check(
            len(set(views)) == 1 and views[0] == before_open,
            "canvas transform unchanged while indexing",
        )
        err = self.landed_error(first)
        few = self.fewest_points(first)
        self.check(
            err < 1.0 and few >= 10,
            f"strokes land where drawn, every point (largest error {err:.2f} canvas px; "
            f"at least {few} points per stroke)",
        )
        self.shot("during-indexing")

    @staticmethod
    def view_text_of(v: Any) -> str:  # noqa: ANN401
        return f"{v.scale * 100:.1f}% offset ({v.offset_x:.1f}, {v.offset_y:.1f})"

    def cancel_keeps_tool_keys(self) -> None:
        print("3. Cancel on the indexing footer, then the tool keys")
        pane = self.window.photos.pane
        if not pane.is_indexing_shown:
            self.check(False, "indexing runs for the Cancel step (raise WALKTHROUGH_PHOTOS)")
            return
        button = pane.cancel_button
        c = button.mapToGlobal(QPoint(button.width() // 2, button.height() // 2))
        xdo("mousemove", c.x(), c.y(), "click", "1")
        pump(0.4)
        focus = QApplication.focusWidget()
        name = type(focus).__name__ if focus is not None else "nothing"
        print(f"   keyboard focus after Cancel: {name}")
        self.check(focus is self.canvas, "the canvas has the keyboard after Cancel")
        p = self.screen_point(60, 60)
        xdo("mousemove", p.x(), p.y())
        xdo("key", "l")
        pump(0.2)
        after_l = self.canvas.tool
        xdo("key", "b")
        pump(0.2)
        print(f"   L → {after_l}, B → {self.canvas.tool}")
        self.check(after_l == "lasso" and self.canvas.tool == "pen", "tool keys work after Cancel")
        until(lambda: not pane.is_indexing_shown, 60)
        self.shot("after-cancel")

    def space_pans(self) -> None:
        print("4. Space held pans")
        doc = self.window.document
        n = len(doc.sketch.strokes)
        before = self.canvas.view
        a, b = self.screen_point(400, 400), self.screen_point(480, 350)
        xdo("mousemove", a.x(), a.y())
        xdo("keydown", "space")
        pump(0.2)
        cmd: list[object] = ["mousedown", "1"]
        for i in range(1, 9):
            cmd += ["mousemove", a.x() + (b.x() - a.x()) * i // 8, a.y() + (b.y() - a.y()) * i // 8]
        xdo(*cmd, "mouseup", "1")
        pump(0.2)
        xdo("keyup", "space")
        pump(0.3)
        after = self.canvas.view
        moved = (after.offset_x - before.offset_x, after.offset_y - before.offset_y)
        zoom = after.scale * 100
        print(f"   view moved by ({moved[0]:.1f}, {moved[1]:.1f}) px; zoom {zoom:.1f}%")
        viewer = self.window.photos.viewer
        self.check(moved == (80.0, -50.0), "the drawing follows the drag (80, −50)")
        self.check(len(doc.sketch.strokes) == n, "nothing was drawn")
        self.check(viewer is None or not viewer.isVisible(), "the large view did not open")
        self.check(self.canvas.tool == "pen", "released: the pen again")
        self.stroke(n)
        err = self.landed_error(n)
        few = self.fewest_points(n)
        self.check(
            err < 1.0 and few >= 10,
            f"a stroke after the pan lands where drawn ({err:.2f} px, {few} points)",
        )
        self.shot("space-pan")

    def close(self) -> None:
        self.window.document.undo_stack.setClean()
        self.window.photos.shutdown()
        self.window.close()


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else ROOT / "build" / "walkthrough").resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    if shutil.which("xdotool") is None:
        print("xdotool is not installed: sudo apt-get install xdotool", file=sys.stderr)
        return 2
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, HOME)
    from sketchpad.ui.app import keep_every_pointer_event, set_application_names, tune_interpreter

    app = QApplication(["sketchpad-walkthrough"])
    keep_every_pointer_event()  # as the app's own start does (run_app), once it exists
    set_application_names()
    tune_interpreter()  # as the window has it (sketchpad.ui.app.run_app)
    print(f"Qt platform {app.platformName()}, display {os.environ.get('DISPLAY')}")
    walk = Walk(out)
    try:
        walk.start()
        walk.narrow_gallery()
        walk.during_indexing()
        walk.cancel_keeps_tool_keys()
        walk.space_pans()
    finally:
        walk.close()
        shutil.rmtree(HOME, ignore_errors=True)
    print(f"{len(walk.failures)} check(s) failed" if walk.failures else "all checks passed")
    return 1 if walk.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
