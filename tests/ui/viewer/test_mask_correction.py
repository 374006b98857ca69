"""Correcting masks and reviewing photos in the window, and what the exports then write.

Generated photos of a planted world (red squares on grey); the stand-in model finds red where the
sketch is drawn. The large view's brush, eraser and scribble refinement edit the mask at the
photo's size; every edit is undoable; the corrected mask is kept in the folder's review (not the
photo folder), marked in the gallery, survives re-queries and threshold changes, and is what the
export writes (pycocotools decodes it back exactly). Accept / reject from the gallery and the
large view with single keys; the filters show each state; "accepted only" exports only those.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from planted import photo
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from qtevents import deliver_posted_events

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "engine"))

from standins import StandInLoader  # noqa: E402
from windows import planted_window  # noqa: E402

from sketchpad.gallery.export import ExportOptions  # noqa: E402
from sketchpad.gallery.review import FolderReview  # noqa: E402
from sketchpad.ui.photos.gallery_model import CellRole  # noqa: E402
from sketchpad.ui.photos.mask_export import start_export  # noqa: E402

WAIT_MS = 15_000
#: name → red square (x0, y0, x1, y1) in a 128 × 128 photo (None: no object).
BOXES = {"a.png": (8, 8, 40, 40), "b.png": (60, 60, 100, 100), "c.png": None}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    f = tmp_path / "photos"
    f.mkdir()
    for name, box in BOXES.items():
        Image.fromarray(photo((128, 128), [box] if box else [])).save(f / name)
    return f


def make_window(qtbot: Any, tmp_path: Path, folder: Path) -> Any:
    w = planted_window(qtbot, tmp_path, StandInLoader())
    w.photos.start()
    qtbot.waitUntil(lambda: w.photos.model is not None, timeout=WAIT_MS)
    with qtbot.waitSignal(w.photos.engine.indexFinished, timeout=WAIT_MS):
        assert w.photos.open_folder(folder)
    return w


@pytest.fixture
def window(qtbot: Any, tmp_path: Path, folder: Path) -> Any:
    w = make_window(qtbot, tmp_path, folder)
    yield w
    if w.photos.viewer is not None:
        w.photos.viewer.viewer.editor.shutdown()
    assert w.photos.shutdown(), "the inference thread did not join"


def draw(window: Any, x: float = 200.0) -> None:
    canvas = window.canvas
    pts = [
        QPointF(*canvas.view.to_view(px, py)).toPoint()
        for px, py in [(x, 200), (x + 40, 260), (x + 80, 220)]
    ]
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QTest.mousePress(canvas, left, none, pts[0])
    for p in pts[1:]:
        QTest.mouseMove(canvas, p, 1)
    QTest.mouseRelease(canvas, left, none, pts[-1])


def query(window: Any, qtbot: Any) -> None:
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        draw(window)


def open_large(window: Any, qtbot: Any, name: str) -> Any:
    window.photos.show_photo(name)
    viewer = window.photos.viewer.viewer
    qtbot.waitUntil(lambda: viewer.name == name and viewer.mask_state == "done", timeout=WAIT_MS)
    assert viewer.wait_until_idle()
    deliver_posted_events()
    return viewer


def drag(viewer: Any, points: list[tuple[float, float]], *, button: Any = None) -> None:
    """A mouse stroke through photo pixels ``points`` on the large view."""
    button = button or Qt.MouseButton.LeftButton
    view = viewer.view
    vp = view.viewport()
    at = [view.mapFromScene(QPointF(x, y)) for x, y in points]
    none = Qt.KeyboardModifier.NoModifier
    QTest.mousePress(vp, button, none, at[0])
    for p in at[1:]:
        QTest.mouseMove(vp, p, 1)
    QTest.mouseRelease(vp, button, none, at[-1])


def key(viewer: Any, k: Qt.Key, mods: Any = Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(viewer.view, k, mods)


def truth(name: str) -> np.ndarray:
    m = np.zeros((128, 128), bool)
    if (box := BOXES[name]) is not None:
        x0, y0, x1, y1 = box
        m[y0:y1, x0:x1] = True
    return m


def test_brush_eraser_undo_and_the_correction_is_kept(window: Any, qtbot: Any) -> None:
    query(window, qtbot)
    viewer = open_large(window, qtbot, "a.png")
    editor = viewer.editor
    model_mask = viewer.shown_mask.mask.copy()
    assert model_mask.shape == (128, 128) and not viewer.shown_mask.corrected
    # The brush adds a blob far from the object; the eraser removes a corner of the object.
    key(viewer, Qt.Key.Key_P)
    assert editor.tool == "brush"
    editor.radius = 4 * viewer.zoom()  # 4 photo pixels
    drag(viewer, [(100.0, 100.0), (110.0, 100.0)])
    after_brush = viewer.shown_mask.mask
    assert viewer.shown_mask.corrected and "corrected by hand" in viewer.status_text()
    assert after_brush[100, 105] and not model_mask[100, 105]
    assert (after_brush[:60, :60] == model_mask[:60, :60]).all()  # the object is untouched
    key(viewer, Qt.Key.Key_E)
    drag(viewer, [(12.0, 12.0)])
    after_erase = viewer.shown_mask.mask
    assert not after_erase[12, 12] and model_mask[12, 12] and after_erase[100, 105]
    # Stored in the folder's review at the photo's size, not in the photo folder.
    review = window.photos.review
    assert (review.corrected("a.png") == after_erase).all()
    assert {p.name for p in window.photos.folder.iterdir()} == set(BOXES)
    # The gallery marks the photo.
    model = window.photos.pane.model
    cell = model.index(model.row_of("a.png")).data(CellRole)
    assert cell.corrected and cell.mask.corrected
    # Undo, undo: the model's mask again; redo: the brush again.
    key(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert (viewer.shown_mask.mask == after_brush).all()
    key(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not viewer.shown_mask.corrected and (viewer.shown_mask.mask == model_mask).all()
    assert review.corrected("a.png") is None
    assert not model.index(model.row_of("a.png")).data(CellRole).corrected
    key(
        viewer,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert (viewer.shown_mask.mask == after_brush).all()
    # Reset is one undo step too.
    editor.actions_by_name["reset"].trigger()
    assert not viewer.shown_mask.corrected
    key(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert viewer.shown_mask.corrected


def test_scribbles_pull_the_mask_onto_the_object(window: Any, qtbot: Any) -> None:
    """GrabCut from the query's map: the model's mask of b.png is coarse (patches); scribbles
    on the square and on the background give the square's own outline."""
    query(window, qtbot)
    viewer = open_large(window, qtbot, "b.png")
    editor = viewer.editor
    coarse = viewer.shown_mask.mask.copy()
    goal = truth("b.png")
    key(viewer, Qt.Key.Key_G)
    editor.radius = 3 * viewer.zoom()
    drag(viewer, [(70.0, 70.0), (90.0, 90.0)])  # object
    assert editor.wait_until_idle()
    deliver_posted_events()
    drag(viewer, [(20.0, 110.0), (20.0, 20.0), (110.0, 20.0)], button=Qt.MouseButton.RightButton)
    assert editor.wait_until_idle()
    deliver_posted_events()
    refined = viewer.shown_mask.mask
    iou = lambda m: (m & goal).sum() / (m | goal).sum()  # noqa: E731
    assert viewer.shown_mask.corrected
    assert iou(refined) > 0.95 and iou(refined) > iou(coarse)
    # Two scribbles, two undo steps.
    key(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    key(viewer, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not viewer.shown_mask.corrected


def test_a_correction_survives_requery_threshold_and_is_exported_exactly(
    window: Any, qtbot: Any, tmp_path: Path
) -> None:
    from pycocotools import mask as coco_mask

    query(window, qtbot)
    viewer = open_large(window, qtbot, "a.png")
    pixels = np.zeros((128, 128), bool)
    pixels[20:50, 30:90] = True  # drawn by hand (the review is the editor's store)
    viewer.editor._edit(pixels, "Brush")
    assert (viewer.shown_mask.mask == pixels).all()
    # A threshold change and a new query keep it.
    window.photos.controls.set_threshold(0.2)
    assert (viewer.shown_mask.mask == pixels).all() and viewer.shown_mask.corrected
    assert not (viewer.model_mask.mask == pixels).all()  # the model's mask is kept apart
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        draw(window, x=150.0)
    qtbot.waitUntil(lambda: viewer.mask_state == "done", timeout=WAIT_MS)
    assert viewer.wait_until_idle()
    deliver_posted_events()
    assert (viewer.shown_mask.mask == pixels).all() and viewer.shown_mask.corrected
    viewer.window().close()
    out = tmp_path / "export"
    with qtbot.waitSignal(window.photos.exportFinished, timeout=WAIT_MS):
        start_export(window.photos, out, ExportOptions(only_matches=False), crf=False)
    coco = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
    image = next(im for im in coco["images"] if im["file_name"] == "a.png")
    assert image["sketchpad_corrected"] is True
    decoded = np.zeros((128, 128), bool)
    for ann in coco["annotations"]:
        if ann["image_id"] == image["id"]:
            decoded |= coco_mask.decode(ann["segmentation"]).astype(bool)
    assert (decoded == pixels).all()
    png = np.asarray(Image.open(out / "masks" / "a.png")) > 127
    assert (png == pixels).all()


def test_review_keys_filters_restart_and_accepted_only_export(
    qtbot: Any, tmp_path: Path, folder: Path
) -> None:
    w = make_window(qtbot, tmp_path, folder)
    try:
        query(w, qtbot)
        pane = w.photos.pane
        view = pane.view
        # The gallery: select a.png, A accepts; b.png, X rejects.
        for name, k in (("a.png", Qt.Key.Key_A), ("b.png", Qt.Key.Key_X)):
            row = pane.proxy.proxy_row_of(name)
            view.setCurrentIndex(pane.proxy.index(row, 0))
            view.setFocus()
            QTest.keyClick(view, k)
        model = pane.model
        assert model.index(model.row_of("a.png")).data(CellRole).review == "accepted"
        assert model.index(model.row_of("b.png")).data(CellRole).review == "rejected"
        for which, shown in (
            ("accepted", ["a.png"]),
            ("rejected", ["b.png"]),
            ("unreviewed", ["c.png"]),
            ("all", sorted(BOXES)),
        ):
            pane.set_review_filter(which)
            assert sorted(pane.ordered_names()) == shown, which
        # The large view: U clears c.png (nothing), A accepts it and moves on.
        viewer = open_large(w, qtbot, "c.png")
        key(viewer, Qt.Key.Key_A)
        assert w.photos.review.state("c.png") == "accepted"
        assert "accepted" in model.index(model.row_of("c.png")).data(Qt.ItemDataRole.ToolTipRole)
        viewer.window().close()
        # Accepted only: a.png and c.png; the rejected b.png never.
        out = tmp_path / "accepted"
        with qtbot.waitSignal(w.photos.exportFinished, timeout=WAIT_MS):
            start_export(
                w.photos, out, ExportOptions(only_matches=False, accepted_only=True), crf=False
            )
        coco = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
        assert sorted(im["file_name"] for im in coco["images"]) == ["a.png", "c.png"]
        out = tmp_path / "all"
        with qtbot.waitSignal(w.photos.exportFinished, timeout=WAIT_MS):
            start_export(w.photos, out, ExportOptions(only_matches=False), crf=False)
        coco = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
        assert sorted(im["file_name"] for im in coco["images"]) == ["a.png", "c.png"]
        assert w.photos.export_done_box is not None
        assert "Open Folder" in [b.text() for b in w.photos.export_done_box.buttons()]
    finally:
        if w.photos.viewer is not None:
            w.photos.viewer.viewer.editor.shutdown()
        assert w.photos.shutdown()
        w.close()
    # A restart finds the review (kept with the folder's session, not in the photo folder).
    again = FolderReview(folder)
    assert again.state("a.png") == "accepted" and again.state("b.png") == "rejected"
    assert {p.name for p in folder.iterdir()} == set(BOXES)
    w2 = make_window(qtbot, tmp_path, folder)
    try:
        m2 = w2.photos.pane.model
        assert m2.index(m2.row_of("b.png")).data(CellRole).review == "rejected"
    finally:
        assert w2.photos.shutdown()
        w2.close()


def test_editing_without_a_folder_says_why(qtbot: Any) -> None:
    from sketchpad.ui.viewer.large_view import PhotoViewer

    viewer = PhotoViewer(None)
    qtbot.addWidget(viewer)
    messages: list[str] = []
    viewer.editor.message.connect(messages.append)
    viewer.editor.set_tool("brush")
    QTest.mousePress(
        viewer.view.viewport(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        QPoint(5, 5),
    )
    assert messages and "open a folder first" in messages[-1]
    assert not viewer.editor.review("accepted")
    viewer.editor.shutdown()
