"""The live loop in the main window, with a stand-in model and generated photos: drawing
updates every photo's overlay; 50 rapid queries show only the newest result; an exception
in the worker shows an error and the next query works; the threshold slider re-thresholds
without the model; part mode asks for the selection; exports decode to the masks shown;
missing weights show the banner while drawing still works; closing mid-indexing exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from planted import GALLERY

HERE = Path(__file__).resolve().parent
ENGINE_TESTS = HERE.parents[1] / "engine"
sys.path.insert(0, str(ENGINE_TESTS))

from standins import StandInLoader, has_object, make_photos  # noqa: E402
from windows import RecordingWindow as Window  # noqa: E402
from windows import planted_window  # noqa: E402

from sketchpad.engine.requests import QueryRequest  # noqa: E402
from sketchpad.gallery.export import ExportOptions  # noqa: E402
from sketchpad.search.spec import StrokesPart  # noqa: E402
from sketchpad.sketch.edit import SketchEdit  # noqa: E402
from sketchpad.sketch.model import Stroke  # noqa: E402
from sketchpad.ui.photos.mask_export import start_export  # noqa: E402
from sketchpad.workspace.preferences import Preferences  # noqa: E402

WAIT_MS = 15_000
N = len(GALLERY)


@pytest.fixture
def loader() -> StandInLoader:
    return StandInLoader()


@pytest.fixture
def window(qtbot: Any, tmp_path: Path, loader: StandInLoader) -> Any:
    w = planted_window(qtbot, tmp_path, loader)
    yield w
    assert w.photos.shutdown(), "the inference thread did not join"


def open_gallery(window: Any, qtbot: Any, tmp_path: Path, n: int = N) -> Path:
    folder = tmp_path / "photos"
    make_photos(folder, n)
    window.photos.start()
    qtbot.waitUntil(lambda: window.photos.model is not None, timeout=WAIT_MS)
    engine = window.photos.engine
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS):
        assert window.photos.open_folder(folder)
    return folder


def draw(window: Any, x: float = 200.0) -> None:
    """A stroke drawn with the mouse: press, moves, release (the pen-up runs the query)."""
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


def test_drawing_updates_every_photo_overlay(window: Any, qtbot: Any, tmp_path: Path) -> None:
    open_gallery(window, qtbot, tmp_path)
    pane = window.photos.pane
    assert pane.model.rowCount() == N
    assert window.photos.last_result is None  # nothing drawn: no query
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        draw(window)
    model = pane.model
    for name in (f"p{i:03d}.png" for i in range(N)):
        assert model.is_match(name) == has_object(name), name
    # Masks for the photos on screen: objects get masks, the rest none.
    qtbot.waitUntil(
        lambda: all(model.mask_for(n) is not None for n in model.names() if has_object(n)),
        timeout=WAIT_MS,
    )
    for name in model.names():
        m = model.mask_for(name)
        if has_object(name):
            assert m.mask.any() and max(m.mask.shape) == 160
        else:
            assert m is None or not m.mask.any()
    assert "match" in window.photos.controls.status_label.text()


def test_fifty_rapid_queries_show_only_the_newest(
    window: Any, qtbot: Any, tmp_path: Path, loader: StandInLoader
) -> None:
    open_gallery(window, qtbot, tmp_path)
    shown: list[int] = []
    window.photos.resultShown.connect(shown.append)
    loader.backbone.sketch_delay_s = 0.01
    doc = window.document
    for i in range(50):
        stroke = Stroke(np.array([[10.0 + i, 10.0], [40.0 + i, 60.0]]))
        doc.apply(SketchEdit.add(doc.sketch, [stroke]), f"stroke {i}")
    engine = window.photos.engine
    latest = engine.latest_query_generation
    qtbot.waitUntil(lambda: latest in shown, timeout=WAIT_MS)
    assert engine.wait_until_idle()
    assert shown[-1] == latest and len(shown) < 50
    assert window.photos.last_result.generation == latest
    assert sorted(shown) == shown  # never an older one after a newer one


def test_a_worker_exception_shows_an_error_and_the_next_query_works(
    window: Any, qtbot: Any, tmp_path: Path, loader: StandInLoader
) -> None:
    open_gallery(window, qtbot, tmp_path)
    controls = window.photos.controls
    loader.backbone.fail_next_sketch = True
    with qtbot.waitSignal(window.photos.errorShown, timeout=WAIT_MS) as blocker:
        draw(window)
    assert "injected failure" in blocker.args[0]
    assert controls.error_label.isVisible() and "injected" in controls.error_label.text()
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        draw(window, 300)
    assert not controls.error_label.isVisible()
    assert window.photos.engine.is_running


def test_the_threshold_slider_rethresholds_without_the_model(
    window: Any, qtbot: Any, tmp_path: Path, loader: StandInLoader
) -> None:
    open_gallery(window, qtbot, tmp_path)
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        draw(window)
    model = window.photos.pane.model
    qtbot.waitUntil(lambda: model.mask_for("p000.png") is not None, timeout=WAIT_MS)
    before = model.mask_for("p000.png").mask.sum()
    calls, shown = loader.backbone.sketch_calls, window.photos.last_result
    engine = window.photos.engine
    sent: list[Any] = []
    submit = engine.submit
    engine.submit = lambda request: sent.append(request) or submit(request)
    window.photos.controls.set_threshold(0.95)  # re-cut at once, on the GUI thread
    after = model.mask_for("p000.png").mask.sum()
    assert after < before
    assert not any(isinstance(r, QueryRequest) for r in sent)  # no query: no model, no product
    assert loader.backbone.sketch_calls == calls
    assert window.photos.last_result is shown and model.threshold == pytest.approx(0.95)


def test_part_mode_queries_the_selection(window: Any, qtbot: Any, tmp_path: Path) -> None:
    open_gallery(window, qtbot, tmp_path)
    sent: list[QueryRequest] = []
    engine = window.photos.engine
    submit = engine.submit

    def spy(request: Any) -> int:
        if isinstance(request, QueryRequest):
            sent.append(request)
        return submit(request)

    engine.submit = spy
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        draw(window)
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        draw(window, 400)
    assert sent[-1].spec.part is None
    window.photos.controls.set_mode("part")
    first = window.document.sketch.strokes[0].id
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        window.document.set_selection([first])
    part = sent[-1].spec.part
    assert part == StrokesPart((first,))
    assert sent[-1].spec.sketch is window.document.sketch  # framed in the whole sketch


def test_a_lasso_or_a_sector_is_searched_as_a_part_and_the_window_says_so(
    window: Any, qtbot: Any, tmp_path: Path
) -> None:
    from sketchpad.search.spec import LassoPart, SectorPart

    open_gallery(window, qtbot, tmp_path)
    sent: list[QueryRequest] = []
    engine = window.photos.engine
    submit = engine.submit

    def spy(request: Any) -> int:
        if isinstance(request, QueryRequest):
            sent.append(request)
        return submit(request)

    engine.submit = spy
    for x in (200.0, 400.0):
        with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
            draw(window, x)
    doc, canvas, controls = window.document, window.canvas, window.photos.controls
    sketch = doc.sketch
    controls.set_mode("part")
    assert controls.searching_label.text() == "Searching: the whole sketch (nothing selected)"
    canvas.set_tool("partition")
    canvas.partition_n = 3
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        canvas.tool_object().pick(0)
    assert sent[-1].spec.part == SectorPart(3, 0, 0.0)
    assert controls.searching_label.text() == "Searching: sector 1 of 3"
    canvas.lasso_mode = "cut"
    poly = np.array([[150.0, 150.0], [260.0, 150.0], [260.0, 300.0], [150.0, 300.0]])
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        canvas.tool_object("lasso")._select(poly, add=False)
    assert sent[-1].spec.part == LassoPart(poly, "cut")
    assert controls.searching_label.text() == "Searching: the lasso's inside (1 stroke cut)"
    assert doc.sketch is sketch and doc.undo_stack.count() == 2  # two strokes drawn, no more


def test_opening_a_folder_leaves_the_gui_thread_free(
    window: Any, qtbot: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """The preferences (an atomic write ending in fsync) are written on another thread, and
    the engine scans the folder only after the gallery's own scan (never two at once)."""
    import threading

    import sketchpad.atomic as atomic

    folder = tmp_path / "photos"
    make_photos(folder, N)
    window.photos.start()
    qtbot.waitUntil(lambda: window.photos.model is not None, timeout=WAIT_MS)
    engine = window.photos.engine
    writers: list[str] = []
    write = atomic.atomic_write_text

    def recorded_write(path: Any, text: str) -> None:
        writers.append(threading.current_thread().name)
        write(path, text)

    monkeypatch.setattr(atomic, "atomic_write_text", recorded_write)
    open_in_engine = engine.open_folder
    shown_then: list[int] = []  # photos the gallery showed when the engine was asked

    def recorded_open(f: Path, *a: Any, **k: Any) -> int:
        shown_then.append(window.photos.pane.model.rowCount())
        return open_in_engine(f, *a, **k)

    monkeypatch.setattr(engine, "open_folder", recorded_open)
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS):
        assert window.photos.open_folder(folder)
    assert shown_then == [N]  # the gallery's scan had landed
    assert window.photos.shutdown()
    assert writers and threading.main_thread().name not in writers
    assert str(folder.resolve()) in window.photos.preferences.path.read_text(encoding="utf-8")


def test_export_decodes_to_exactly_the_masks_shown(window: Any, qtbot: Any, tmp_path: Path) -> None:
    from pycocotools import mask as rle

    folder = open_gallery(window, qtbot, tmp_path)
    with qtbot.waitSignal(window.photos.resultShown, timeout=WAIT_MS):
        draw(window)
    out = tmp_path / "export"
    with qtbot.waitSignal(window.photos.exportFinished, timeout=WAIT_MS) as blocker:
        start_export(window.photos, out, ExportOptions(), crf=False)
    summary = blocker.args[0]
    matches = [n for n in window.photos.pane.model.names() if has_object(n)]
    assert summary.photos == len(matches)
    # The masks the app shows in the large view: full size, from the engine.
    engine = window.photos.engine
    with qtbot.waitSignal(engine.masksFinished, timeout=WAIT_MS) as masks:
        engine.request_masks(tuple(matches), side=None, channel="check")
    shown = masks.args[0].masks
    coco = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
    by_image: dict[int, list[np.ndarray]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(rle.decode(ann["segmentation"]))
    assert {im["file_name"] for im in coco["images"]} == set(matches)
    for im in coco["images"]:
        m = shown[im["file_name"]]
        union = np.any(np.stack(by_image[im["id"]]), axis=0)
        assert union.shape == m.mask.shape
        assert np.array_equal(union, m.label_map > 0)
    assert sorted(p.name for p in folder.iterdir()) == [f"p{i:03d}.png" for i in range(N)]
    assert window.photos.engine is not None and not window.photos._suspended


def test_missing_weights_show_the_banner_and_drawing_still_works(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKETCHPAD_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    prefs = Preferences.load(tmp_path / "prefs.json")
    prefs.backbone = "test-clip-tiny"
    w = Window(
        autosave_dir=tmp_path / "autosave",
        photo_backbones=(["test-clip-tiny"], ["test-dinov2-tiny"]),
        preferences=prefs,
    )
    qtbot.addWidget(w)
    w.show()
    try:
        w.photos.start()
        qtbot.waitUntil(lambda: w.photos.banner.isVisible(), timeout=WAIT_MS)
        assert "test-clip-tiny" in w.photos.banner.message or "CLIP" in w.photos.banner.message
        draw(w)
        assert len(w.document.sketch.strokes) == 1
        assert w.photos.model is None
    finally:
        assert w.photos.shutdown()


SCRIPT = """
import sys
from pathlib import Path

sys.path[:0] = [{engine_tests!r}, {tests!r}]
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from standins import StandInLoader

from sketchpad.ui.main_window import MainWindow
from sketchpad.workspace.preferences import Preferences

app = QApplication(sys.argv)
loader = StandInLoader()
loader.backbone.photo_delay_s = 0.05
prefs = Preferences.load(Path(sys.argv[2]) / "prefs.json")
prefs.backbone = "planted"
w = MainWindow(photo_loader=loader, photo_backbones=(["planted"], []), preferences=prefs,
               autosave_dir=Path(sys.argv[2]) / "autosave")
w.show()
w.photos.start()


def on_engine(engine):
    def on_progress(generation, done, total, eta_s):
        if done > 0:
            print(f"closing at {{done}}/{{total}}", flush=True)
            w.close()
    engine.indexProgress.connect(on_progress)
    engine.indexFinished.connect(lambda s: print("indexing finished", flush=True))


w.photos.host.when_ready(on_engine)
w.photos.open_folder(Path(sys.argv[1]))
QTimer.singleShot(30_000, lambda: app.exit(3))  # a watchdog, never reached
status = app.exec()
print(f"thread running after exec: {{w.photos.engine.is_running}}", flush=True)
sys.exit(status)
"""


def test_closing_the_window_during_indexing_exits_with_status_0(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 30)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SKETCHPAD_HOME": str(tmp_path / "h")}
    code = SCRIPT.format(engine_tests=str(ENGINE_TESTS), tests=str(HERE.parents[1]))
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Destroyed while thread is still running" not in out.stderr
    assert "closing at" in out.stdout and "indexing finished" not in out.stdout
    assert "thread running after exec: False" in out.stdout


@pytest.mark.parametrize(
    ("backbone", "device", "slow"),
    [
        ("test-sketchfusion-tiny", "cpu", True),
        ("test-sketchfusion-tiny", "cuda:0", False),
        ("test-clip-tiny", "cpu", False),
    ],
)
def test_the_window_says_a_gpu_model_is_slow_on_the_cpu_with_its_time_per_photo(
    window: Any, backbone: str, device: str, slow: bool
) -> None:
    from sketchpad.engine.requests import ModelInfo

    info = ModelInfo(
        generation=1, backbone_id=backbone, device=device, weights_source="random",
        weights_sha256="0" * 64, embed_dim=16, has_text=True, seconds=0.5,
    )  # fmt: skip
    window.photos._on_model_loaded(info)
    assert ("expects a GPU" in window.statusBar().currentMessage()) is slow
    window.photos._on_index_progress(0, 4, 10, 12.0)  # 12 s for the 6 photos left
    shown = window.photos.pane.progress_text
    assert ("2.0 s/photo on CPU" in shown) is slow, shown
