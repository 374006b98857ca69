"""Screenshots of photo search: the window with a folder open and live overlays, and the
Model Manager.

Run through ``packaging/screenshot.sh`` (a virtual X display). No model weights ship with
Sketchpad and none can be downloaded where the screenshots are made, so the gallery
screenshot uses a *stand-in* model: photo patches whose pixels are mostly cow-brown get the
sketch's embedding, every other patch an orthogonal one (the captions in README say so).
Everything else is real: the photos are decoded, cached and queried by the engine, the
sketch is drawn with mouse events, and each pen-up runs the live query.

Usage: python packaging/screenshot_photos.py [OUTPUT_DIR]   (default resources/screenshots)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = tempfile.mkdtemp(prefix="sketchpad-screenshot-photos-")
os.environ["SKETCHPAD_HOME"] = HOME  # before anything asks for a standard path
os.environ["SKETCHPAD_OFFLINE"] = "1"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "packaging"))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from screenshot import arc, draw_stroke, polyline, save_shot  # noqa: E402

HOME = os.environ["SKETCHPAD_HOME"]  # importing screenshot chose its own temporary home

from sketchpad.ui.app import app_icon, set_application_names  # noqa: E402

WINDOW_SIZE = (1400, 860)
BROWN = (120, 72, 40)
D = 8


def cow(draw: ImageDraw.ImageDraw, x: float, y: float, s: float, facing: int) -> None:
    """A brown cow seen from the side: body, head, legs, tail."""
    body = (x - 40 * s, y - 20 * s, x + 40 * s, y + 20 * s)
    draw.ellipse(body, fill=BROWN)
    hx = x + facing * 46 * s
    draw.ellipse((hx - 14 * s, y - 30 * s, hx + 14 * s, y - 6 * s), fill=BROWN)
    for dx in (-28, -14, 14, 28):
        draw.rectangle((x + dx * s - 4 * s, y + 10 * s, x + dx * s + 4 * s, y + 42 * s), fill=BROWN)
    tx = x - facing * 40 * s
    draw.line(
        (tx, y - 8 * s, tx - facing * 10 * s, y + 18 * s), fill=BROWN, width=max(2, int(3 * s))
    )


def make_photos(folder: Path, n: int = 24) -> None:
    """Pasture scenes: sky, grass, hills; cows in most; a barn, trees or a pond in others."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        w, h = (480, 360) if i % 4 else (360, 480)
        im = Image.new("RGB", (w, h), (135 + int(rng.integers(-15, 15)), 190, 235))
        d = ImageDraw.Draw(im)
        horizon = int(h * rng.uniform(0.35, 0.55))
        d.rectangle((0, horizon, w, h), fill=(86, 150 + int(rng.integers(-20, 20)), 60))
        d.ellipse((-w * 0.3, horizon - 50, w * 0.6, horizon + 60), fill=(96, 160, 70))
        if i % 5 == 2:
            d.rectangle((w * 0.55, horizon - 90, w * 0.85, horizon + 10), fill=(170, 40, 40))
            d.polygon(
                [(w * 0.53, horizon - 90), (w * 0.7, horizon - 140), (w * 0.87, horizon - 90)],
                fill=(90, 30, 30),
            )
        if i % 3 == 1:
            tx = w * rng.uniform(0.1, 0.9)
            d.rectangle((tx - 8, horizon - 60, tx + 8, horizon + 20), fill=(70, 50, 30))
            d.ellipse((tx - 45, horizon - 130, tx + 45, horizon - 40), fill=(40, 110, 40))
        if i % 5 != 2 and i % 7 != 3:
            for _ in range(1 + int(rng.integers(0, 3))):
                s = rng.uniform(0.6, 1.2)
                cow(
                    d,
                    w * rng.uniform(0.2, 0.8),
                    horizon + h * rng.uniform(0.12, 0.4),
                    s,
                    1 if rng.random() < 0.5 else -1,
                )
        im.save(folder / f"pasture-{i + 1:02d}.jpg", quality=90)


def stand_in_loader():  # noqa: ANN201 (an engine Loader)
    """The engine's loader for the screenshot: a stand-in model (see the module notes)."""
    import torch
    from torch import nn

    from sketchpad.vision.backbone import Backbone, WeightsInfo
    from sketchpad.vision.registry import OPENAI_MEAN, OPENAI_STD, BackboneSpec
    from sketchpad.vision.segmenter import Segmenter

    spec = BackboneSpec(
        id="stand-in",
        family="open_clip",
        arch="stand-in",
        description="cow-brown patches",
        use="screenshot",
        pretrained_tag="none",
        hf_repo="none/none",
        hf_files=("none.safetensors",),
        input_size=224,
        patch_size=8,
        width=D,
        embed_dim=D,
        depth=1,
        mean=OPENAI_MEAN,
        std=OPENAI_STD,
        has_text=True,
        testing=True,
    )
    e0, e1 = np.eye(D, dtype=np.float32)[:2]

    class CowColour(Backbone):
        def encode_global(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(np.tile(e0, (x.shape[0], 1)))

        def encode_text(self, texts: list[str]) -> torch.Tensor:
            return torch.from_numpy(np.tile(e0, (len(texts), 1)))

        def encode_patches(self, x: torch.Tensor, **_: object) -> tuple[torch.Tensor, ...]:
            mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
            std = torch.tensor(spec.std).view(1, 3, 1, 1)
            rgb = (x * std + mean) * 255
            target = torch.tensor(BROWN, dtype=rgb.dtype).view(1, 3, 1, 1)
            near = ((rgb - target).abs().amax(dim=1) < 12).float()
            frac = nn.functional.avg_pool2d(near[:, None], spec.patch_size)[:, 0]
            w = frac[..., None]
            patches = w * torch.from_numpy(e0) + (1 - w) * torch.from_numpy(e1)
            patches = patches / patches.norm(dim=-1, keepdim=True)
            return torch.from_numpy(np.tile(e1, (x.shape[0], 1))), patches

    backbone = CowColour(
        spec, nn.Identity(), WeightsInfo("stand-in", None, "random", True), torch.device("cpu")
    )

    def load(request: object, progress: object) -> Segmenter:
        return Segmenter(backbone)

    return load


def wait_for(cond: object, timeout_ms: int) -> bool:
    """Process events until ``cond()`` holds; False on timeout."""
    import time

    deadline = time.monotonic() + timeout_ms / 1000
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        QTest.qWait(20)
    return True


def cow_sketch() -> list[list[tuple[float, float]]]:
    """A cow, drawn as a person would: body, head, four legs, tail, an ear."""
    body = arc(420, 330, 150, 75, 0, 360, n=60, wobble=0.04)
    head = arc(610, 260, 48, 36, 0, 360, n=30, wobble=0.05)
    legs = [polyline((x, 390), (x + 4, 480)) for x in (320, 360, 480, 520)]
    tail = polyline((272, 310), (245, 350), (240, 400))
    ear = polyline((585, 228), (570, 205), (600, 222))
    return [body, head, *legs, tail, ear]


def review_and_correct(window: object, out_dir: Path) -> bool:
    """review-filter.png: photos accepted (A) and rejected (X), the gallery filtered to the
    accepted ones; mask-correction.png: the large view after a brush stroke; preferences.png."""
    from PySide6.QtCore import QPointF, Qt

    from sketchpad.ui.preferences_dialog import PreferencesDialog

    photos = window.photos  # type: ignore[attr-defined]
    pane = photos.pane
    names = pane.ordered_names()
    pane.model.set_review_state(names[:3], "accepted")
    pane.model.set_review_state(names[3:4], "rejected")
    # The large view of the best photo: a brush stroke adds to its mask.
    photos.show_photo(names[0])
    viewer = photos.viewer.viewer
    wait_for(lambda: viewer.mask_state == "done", 30_000)
    viewer.wait_until_idle()
    QTest.qWait(300)
    editor = viewer.editor
    editor.set_tool("brush")
    editor.radius = 10.0
    h, w = viewer.photo_size[1], viewer.photo_size[0]
    view = viewer.view
    pts = [view.mapFromScene(QPointF(w * f, h * 0.85)) for f in (0.15, 0.3, 0.45)]
    vp = view.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pts[0])
    for p in pts[1:]:
        QTest.mouseMove(vp, p, 5)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pts[-1])
    viewer.wait_until_idle()
    QTest.qWait(400)
    ok = save_shot(photos.viewer, out_dir / "mask-correction.png")
    photos.viewer.close()
    pane.set_review_filter("accepted")
    QTest.qWait(400)
    ok = save_shot(window, out_dir / "review-filter.png") and ok
    pane.set_review_filter("all")
    dialog = PreferencesDialog(photos.preferences, [("stand-in", "stand-in")], window)
    dialog.show()
    QTest.qWaitForWindowExposed(dialog)
    QTest.qWait(200)
    ok = save_shot(dialog, out_dir / "preferences.png") and ok
    dialog.close()
    return ok


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else ROOT / "resources" / "screenshots"
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(Path(HOME) / "qsettings")
    )
    set_application_names()
    app = QApplication([argv[0]])
    app.setWindowIcon(app_icon())

    from sketchpad.ui.main_window import MainWindow
    from sketchpad.ui.models.manager import ModelManagerDialog
    from sketchpad.workspace.preferences import Preferences

    photos_dir = Path(HOME) / "Pasture photos"
    make_photos(photos_dir)
    prefs = Preferences.load(Path(HOME) / "prefs.json")
    prefs.backbone = "stand-in"
    window = MainWindow(
        photo_loader=stand_in_loader(), photo_backbones=(["stand-in"], []), preferences=prefs
    )
    window.resize(*WINDOW_SIZE)
    window.move(0, 0)
    window.show()
    QTest.qWaitForWindowExposed(window)
    window.splitter.setSizes([560, 840])
    photos = window.photos
    photos.start()
    engine_ready = wait_for(lambda: photos.model is not None, 60_000)
    if not engine_ready:
        print("the stand-in model did not load", file=sys.stderr)
        return 1
    finished: list[object] = []
    photos.engine.indexFinished.connect(finished.append)
    photos.open_folder(photos_dir)
    if not wait_for(lambda: bool(finished), 120_000):
        print("indexing did not finish", file=sys.stderr)
        return 1
    canvas = window.canvas
    canvas.fit_to_view()
    QTest.qWait(100)
    for pts in cow_sketch():
        draw_stroke(canvas, pts)
        app.processEvents()
    if not wait_for(lambda: photos.last_result is not None, 30_000):
        print("no query result", file=sys.stderr)
        return 1
    photos.engine.wait_until_idle(30.0)
    photos.pane.thumbnails.wait_for_done(10_000)
    QTest.qWait(600)  # debounced mask requests for the cells on screen, then a repaint
    photos.engine.wait_until_idle(30.0)
    QTest.qWait(300)
    ok = save_shot(window, out_dir / "gallery.png")
    ok = review_and_correct(window, out_dir) and ok

    dialog = ModelManagerDialog(window, preferences=prefs)
    dialog.resize(900, 420)
    dialog.show()
    QTest.qWaitForWindowExposed(dialog)
    dialog.wait_until_idle()
    QTest.qWait(300)
    ok = save_shot(dialog, out_dir / "model-manager.png") and ok
    dialog.close()
    window.document.undo_stack.setClean()  # nothing to ask about on close
    window.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
