"""One photo score in the window, and no needless model runs.

- The gallery badge, the large view and the export (COCO) carry the same score for a photo, at
  two thresholds; only which photos match changes with the threshold.
- The sketch encoder runs once per stroke, and never for a label rename, a recolour, a label on
  a stroke or a threshold change; with re-labelling on, a pen-up still costs one search forward.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from planted import photo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "engine"))

from standins import StandInLoader  # noqa: E402
from windows import planted_window  # noqa: E402

from sketchpad.engine.requests import QueryRequest  # noqa: E402
from sketchpad.gallery.export import ExportOptions  # noqa: E402
from sketchpad.sketch.edit import SketchEdit  # noqa: E402
from sketchpad.ui.photos.gallery_model import CellRole  # noqa: E402
from sketchpad.ui.photos.mask_export import start_export  # noqa: E402

WAIT_MS = 15_000
#: Red squares of different sizes inside one photo patch (32 photo pixels): each photo's best
#: patch is covered by a different fraction, so their scores differ.
SIDES = {"a.png": 30, "b.png": 24, "c.png": 21, "d.png": 17, "e.png": 0}


@pytest.fixture
def loader() -> StandInLoader:
    return StandInLoader()


@pytest.fixture
def window(qtbot: Any, tmp_path: Path, loader: StandInLoader) -> Any:
    w = planted_window(qtbot, tmp_path, loader)
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, side in SIDES.items():
        boxes = [(1, 1, 1 + side, 1 + side)] if side else []
        Image.fromarray(photo((128, 128), boxes)).save(folder / name)
    w.photos.start()
    qtbot.waitUntil(lambda: w.photos.model is not None, timeout=WAIT_MS)
    with qtbot.waitSignal(w.photos.engine.indexFinished, timeout=WAIT_MS):
        assert w.photos.open_folder(folder)
    yield w
    assert w.photos.shutdown(), "the inference thread did not join"


def draw(window: Any, x: float = 200.0) -> None:
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest

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


def large_view_score(window: Any, qtbot: Any, name: str) -> tuple[float, str]:
    window.photos.show_photo(name)
    viewer = window.photos.viewer.viewer
    qtbot.waitUntil(lambda: viewer.name == name and viewer.mask_state == "done", timeout=WAIT_MS)
    return viewer.shown_mask.score, viewer.status_text()


def exported_scores(window: Any, qtbot: Any, out: Path) -> dict[str, float]:
    with qtbot.waitSignal(window.photos.exportFinished, timeout=WAIT_MS):
        start_export(window.photos, out, ExportOptions(only_matches=False), crf=True)
    coco = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
    by_id = {im["id"]: im["file_name"] for im in coco["images"]}
    for ann in coco["annotations"]:  # every region carries its photo's score
        im = next(i for i in coco["images"] if i["id"] == ann["image_id"])
        assert ann["score"] == im["sketchpad_score"]
    assert set(by_id.values()) == set(SIDES)
    return {im["file_name"]: im["sketchpad_score"] for im in coco["images"]}


def test_badge_large_view_and_export_show_one_score_at_two_thresholds(
    window: Any, qtbot: Any, tmp_path: Path
) -> None:
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        draw(window)
    model = window.photos.pane.model
    badge = {n: model.index(model.row_of(n)).data(CellRole).score for n in SIDES}
    assert len({round(s, 3) for s in badge.values()}) == len(SIDES)  # all different
    matches = {}
    for threshold in (0.5, 0.15):
        window.photos.controls.set_threshold(threshold)
        for name in ("a.png", "c.png", "e.png"):
            score, status = large_view_score(window, qtbot, name)
            assert score == badge[name]
            assert f"score {badge[name]:.2f}" in status
            assert ("no match" in status) == (badge[name] < threshold)
        window.photos.viewer.close()
        exported = exported_scores(window, qtbot, tmp_path / f"export-{threshold}")
        assert exported == {n: round(float(s), 6) for n, s in badge.items()}
        now = {n: model.index(model.row_of(n)).data(CellRole) for n in SIDES}
        assert {n: c.score for n, c in now.items()} == badge  # the slider never moves a score
        matches[threshold] = {n for n, c in now.items() if c.match}
        assert matches[threshold] == {n for n, s in badge.items() if s >= threshold}
    assert matches[0.5] < matches[0.15]  # both thresholds matter here


def test_the_sketch_encoder_runs_for_strokes_only(
    window: Any, qtbot: Any, loader: StandInLoader
) -> None:
    photos, doc = window.photos, window.document
    queries: list[QueryRequest] = []
    engine = photos.engine
    submit = engine.submit
    engine.submit = lambda r: (
        (queries.append(r) if isinstance(r, QueryRequest) else None) or submit(r)
    )
    backbone = loader.backbone
    before = backbone.sketch_calls
    with qtbot.waitSignal(photos.resultShown, timeout=WAIT_MS):
        draw(window)
    assert backbone.sketch_calls == before + 1 and len(queries) == 1

    stroke = doc.sketch.strokes[0]
    doc.apply(
        SketchEdit.replace(doc.sketch, {stroke.id: [dataclasses.replace(stroke, color="#ff0000")]}),
        "Recolour",
    )
    doc.apply(
        SketchEdit.replace(doc.sketch, {stroke.id: [dataclasses.replace(stroke, label="cat")]}),
        "Label stroke",
    )
    window.scene.add_labels(["cat", "dog"])
    window.scene.rename_label("cat", "kitten")
    photos.controls.set_threshold(0.3)
    photos.controls.set_threshold(0.6)
    assert engine.wait_until_idle()
    assert backbone.sketch_calls == before + 1 and len(queries) == 1  # nothing sent

    with qtbot.waitSignal(photos.resultShown, timeout=WAIT_MS):
        draw(window, 400)
    assert backbone.sketch_calls == before + 2 and len(queries) == 2


def test_relabelling_after_a_pen_up_costs_one_search_forward(
    window: Any, qtbot: Any, loader: StandInLoader
) -> None:
    """Scene labelling runs on the same engine (here on the photo-search model itself: one
    model); its result labels the strokes, which changes nothing the search model sees."""
    scene, backbone = window.scene, loader.backbone
    scene.add_labels(["red", "green"])
    scene._debounce.setInterval(1)
    scene.set_auto_relabel(True)
    before = backbone.sketch_calls
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        draw(window)
    qtbot.waitUntil(lambda: scene.result is not None, timeout=WAIT_MS)
    assert window.photos.engine.wait_until_idle()
    assert all(s.label is not None for s in window.document.sketch.strokes)  # labelled
    assert backbone.sketch_calls == before + 1
    assert len(loader.requests) == 1  # labelling shared the loaded model: none loaded for it
