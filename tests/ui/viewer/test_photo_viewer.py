"""The large view of one photo (issue 5): the photo decoded off the GUI thread, the quick mask at
once, the engine's full-resolution CRF mask painted exactly where the mask is, boxes, toggles,
zoom, errors in the status line, stale answers ignored, prev/next. A stand-in engine with the
planted model and generated photos (tests/engine/standins.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine.standins import StandInLoader, make_photos, sketch_at
from planted import GALLERY, box_mask, photo
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QImage, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QApplication, QGraphicsView
from qtevents import deliver_posted_events

import sketchpad.ui.viewer.large_view as pv
from sketchpad.engine.client import Engine
from sketchpad.engine.requests import MaskResult, QueryResult
from sketchpad.gallery.images import PhotoError, load_photo
from sketchpad.search import core as search_core
from sketchpad.search.masks import PhotoMask
from sketchpad.ui.canvas.actions import ZOOM_STEP
from sketchpad.ui.viewer.large_view import PhotoViewer, PhotoViewerDialog
from sketchpad.ui.viewer.photo_view import BOX_COLOUR, OVERLAY_ALPHA, mask_overlay_argb32
from sketchpad.vision.overlay import GROUP_COLOURS

WAIT_MS = 10_000
NAMES = [f"p{i:03d}.png" for i in range(len(GALLERY))]
QUICK_SIDE = 32  # the quick (thumbnail) masks of the test queries: 4× smaller than the photos


# -- fixtures and helpers --------------------------------------------------------------------
@pytest.fixture
def loader() -> StandInLoader:
    return StandInLoader()


@pytest.fixture
def engine(qapp: Any, loader: StandInLoader) -> Iterator[Engine]:
    e = Engine(loader=loader)
    yield e
    assert e.shutdown(10.0), "the inference thread did not stop"


@pytest.fixture
def folder(engine: Engine, qtbot: Any, tmp_path: Path) -> Path:
    """The planted gallery, indexed by the engine (no query yet)."""
    f = tmp_path / "photos"
    make_photos(f, len(GALLERY))
    with qtbot.waitSignal(engine.modelLoaded, timeout=WAIT_MS):
        engine.load_model("planted")
    with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS):
        engine.open_folder(f)
    return f


def make_viewer(qtbot: Any, engine: Engine | None) -> PhotoViewer:
    v = PhotoViewer(engine)
    qtbot.addWidget(v)
    v.resize(640, 480)
    v.show()
    qtbot.waitExposed(v)
    return v


@pytest.fixture
def viewer(qtbot: Any, engine: Engine) -> Iterator[PhotoViewer]:
    v = make_viewer(qtbot, engine)
    yield v
    assert v.wait_until_idle(10.0)


def run_query(engine: Engine, qtbot: Any, x: float = 0.0) -> QueryResult:
    """A query whose result carries quick masks of every photo."""
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(sketch_at(x), mask_names=tuple(NAMES), mask_side=QUICK_SIDE)
    return blocker.args[0]


def wait_done(viewer: PhotoViewer, qtbot: Any) -> PhotoMask:
    qtbot.waitUntil(
        lambda: viewer.mask_state == "done" and viewer.photo_size is not None, timeout=WAIT_MS
    )
    assert viewer.shown_mask is not None
    return viewer.shown_mask


def render(viewer: PhotoViewer) -> np.ndarray:
    """The scene at 100 % over the photo's rectangle, (H, W, 3) uint8 RGB."""
    size = viewer.photo_size
    assert size is not None
    w, h = size
    image = QImage(w, h, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.black)
    painter = QPainter(image)
    viewer.view.scene().render(painter, QRectF(0, 0, w, h), QRectF(0, 0, w, h))
    painter.end()
    a = np.frombuffer(image.constBits(), np.uint8).reshape(h, image.bytesPerLine())
    return a[:, : 4 * w].reshape(h, w, 4)[..., [2, 1, 0]].copy()  # BGRA in memory


def tinted(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """What the overlay should make of ``rgb``: ``colour`` blended in where ``mask`` is."""
    a = round(OVERLAY_ALPHA * 255) / 255
    out = rgb.astype(np.float64)
    out[mask] = (1 - a) * out[mask] + a * np.array(colour, dtype=np.float64)
    return np.round(out).astype(np.int16)


def planted_photo(name: str) -> np.ndarray:
    hw, boxes = GALLERY[int(name[1:4])]
    return photo(hw, boxes)


def fake_mask(hw: tuple[int, int]) -> PhotoMask:
    m = np.ones(hw, dtype=bool)
    return PhotoMask(
        prob=m.astype(np.float32),
        mask=m,
        instances=(),
        label_map=np.zeros(hw, np.int32),
        score=1.0,
        refined=True,
    )


# -- the overlay's pixels, without widgets ---------------------------------------------------
def test_mask_overlay_argb32_tints_exactly_the_mask_one_colour_per_group() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((7, 9)) > 0.5
    argb = mask_overlay_argb32(mask, alpha=0.5)
    assert argb.shape == (7, 9) and argb.dtype == np.uint32
    assert ((argb >> 24) == np.where(mask, 128, 0)).all() and not argb[~mask].any()

    def premultiplied(k: int, a: int = 128) -> int:
        r, g, b = ((c * a + 127) // 255 for c in GROUP_COLOURS[k])
        return a << 24 | r << 16 | g << 8 | b

    assert (argb[mask] == premultiplied(0)).all()
    groups = np.tile(np.arange(9, dtype=np.int16), (7, 1))  # column k: group k (0: none)
    argb = mask_overlay_argb32(mask, group_map=groups, alpha=0.5)
    for k in range(1, 9):
        assert (argb[mask[:, k], k] == premultiplied((k - 1) % len(GROUP_COLOURS))).all()
    assert (argb[mask[:, 0], 0] == premultiplied(0)).all()  # claimed by no group: the 1st
    assert not argb[~mask].any()
    with pytest.raises(ValueError, match="differ in size"):
        mask_overlay_argb32(mask, group_map=groups[:, :3])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        mask_overlay_argb32(np.zeros((2, 2, 2), bool))


# -- the photo and its masks -----------------------------------------------------------------
@pytest.mark.parametrize("sync_pixels", [pv.SYNC_OVERLAY_PIXELS, 0], ids=["gui", "pool"])
def test_the_photo_then_the_full_resolution_mask_tinted_exactly_where_it_is(
    engine: Engine,
    folder: Path,
    viewer: PhotoViewer,
    qtbot: Any,
    monkeypatch: pytest.MonkeyPatch,
    sync_pixels: int,
) -> None:
    monkeypatch.setattr(pv, "SYNC_OVERLAY_PIXELS", sync_pixels)  # "pool": built off the GUI
    run_query(engine, qtbot)
    viewer.set_boxes_visible(False)  # the tint alone
    viewer.show_photo(folder, "p000.png")
    assert "refining edges…" in viewer.status_text() and viewer.mask_state == "pending"
    mask = wait_done(viewer, qtbot)
    assert mask.refined and mask.mask.shape == (128, 128)
    assert mask.mask.any() and not mask.mask.all()
    status = viewer.status_text()
    parts = ("p000.png", "128 × 128 px", f"score {mask.score:.2f}", "match, 1 region", "refined")
    for part in parts:
        assert part in status, status
    shown = render(viewer).astype(np.int16)
    rgb = planted_photo("p000.png")
    assert (np.abs(shown - tinted(rgb, mask.mask, GROUP_COLOURS[0])) <= 1).all()
    changed = (shown != rgb).any(axis=-1)
    assert (changed == mask.mask).all()  # every mask pixel tinted, no other pixel touched
    truth = box_mask((128, 128), GALLERY[0][1])
    assert changed[64, 64] and not changed[4, 4] and (changed & truth).sum() > 0.9 * truth.sum()


def test_the_quick_mask_is_stretched_over_the_photo_at_once(
    engine: Engine, folder: Path, qtbot: Any
) -> None:
    quick = run_query(engine, qtbot).masks["p000.png"]
    assert quick.mask.shape == (QUICK_SIDE, QUICK_SIDE)
    lone = make_viewer(qtbot, None)  # no engine: the quick mask stays
    lone.show_photo(folder, "p000.png", quick_mask=quick)
    assert lone.shown_mask is quick  # before the photo is decoded
    qtbot.waitUntil(lambda: lone.photo_size == (128, 128), timeout=WAIT_MS)
    assert lone.shown_mask is quick and lone.mask_state == "none"
    lone.set_boxes_visible(False)
    big = np.kron(quick.mask, np.ones((4, 4), bool))  # 32 → 128 px, nearest
    changed = (render(lone) != planted_photo("p000.png")).any(axis=-1)
    assert (changed == big).all()
    ((x0, y0, x1, y1),) = [i.box_xyxy for i in quick.instances]
    assert lone.view.box_rects() == [QRectF(4 * x0, 4 * y0, 4 * (x1 - x0), 4 * (y1 - y0))]


def test_the_tint_is_the_first_group_colour_at_the_overlay_opacity(
    folder: Path, qtbot: Any
) -> None:
    left = fake_mask((128, 128))
    left.mask[:, 64:] = False  # the left half: grey photo and half of the red square
    lone = make_viewer(qtbot, None)
    lone.show_photo(folder, "p000.png", quick_mask=left)
    qtbot.waitUntil(lambda: lone.photo_size is not None, timeout=WAIT_MS)
    rgb = planted_photo("p000.png")
    shown = render(lone).astype(np.int16)
    assert (np.abs(shown - tinted(rgb, left.mask, GROUP_COLOURS[0])) <= 1).all()
    assert (shown[:, 64:] == rgb[:, 64:]).all()


def test_the_photo_is_decoded_off_the_gui_thread_and_a_newer_one_wins(
    folder: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, threads = threading.Event(), []

    def slow_load(path: Path) -> np.ndarray:
        if path.name == "p000.png":  # held until the test opens the gate
            threads.append(threading.current_thread())
            assert gate.wait(10), "the test never opened the gate"
        return load_photo(path)

    monkeypatch.setattr(pv, "load_photo", slow_load)
    lone = make_viewer(qtbot, None)
    lone.show_photo(folder, "p000.png")  # returns while the decoder waits
    try:
        qtbot.waitUntil(lambda: bool(threads), timeout=WAIT_MS)
        assert "loading…" in lone.status_text() and lone.photo_size is None
        assert threads[0] is not threading.main_thread()
        lone.show_photo(folder, "p003.png")
        qtbot.waitUntil(lambda: lone.photo_size == (128, 64), timeout=WAIT_MS)
    finally:
        gate.set()
    assert lone.wait_until_idle(10.0)
    deliver_posted_events()  # p000's late result is delivered now, and must be dropped
    assert lone.photo_size == (128, 64) and lone.name == "p003.png"
    assert (render(lone) == planted_photo("p003.png")).all()  # no mask: the photo as it is


def test_boxes_and_overlay_toggle(
    engine: Engine, folder: Path, viewer: PhotoViewer, qtbot: Any
) -> None:
    run_query(engine, qtbot)
    viewer.show_photo(folder, "p002.png")  # two instances
    mask = wait_done(viewer, qtbot)
    assert len(mask.instances) == 2 and "2 regions" in viewer.status_text()
    want = [
        QRectF(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in (i.box_xyxy for i in mask.instances)
    ]
    assert viewer.view.box_rects() == want
    x0, y0, x1, y1 = mask.instances[0].box_xyxy
    edge = (y0 + y1) // 2, x1 - 1  # on the right side of the first box
    with_boxes = render(viewer)
    assert tuple(with_boxes[edge]) == BOX_COLOUR
    viewer.actions_by_name["boxes"].trigger()
    assert not viewer.view.boxes_visible and not viewer.actions_by_name["boxes"].isChecked()
    without = render(viewer)
    assert tuple(without[edge]) != BOX_COLOUR
    rgb = planted_photo("p002.png")
    assert (np.abs(without.astype(np.int16) - tinted(rgb, mask.mask, GROUP_COLOURS[0])) <= 1).all()
    viewer.set_overlay_visible(False)
    assert not viewer.actions_by_name["overlay"].isChecked()
    assert (render(viewer) == rgb).all()  # the tint is gone
    qtbot.keyClick(viewer.view, Qt.Key.Key_M)
    qtbot.keyClick(viewer.view, Qt.Key.Key_B)
    assert viewer.view.overlay_visible and viewer.view.boxes_visible
    assert (render(viewer) == with_boxes).all()


def test_crf_toggle_asks_again_without_refinement(
    engine: Engine, folder: Path, viewer: PhotoViewer, qtbot: Any
) -> None:
    viewer.show_photo(folder, "p000.png")
    qtbot.waitUntil(lambda: viewer.photo_size is not None, timeout=WAIT_MS)
    assert viewer.mask_state == "no-query" and "no query yet" in viewer.status_text()
    run_query(engine, qtbot)  # a query while the photo is shown: its mask comes
    assert wait_done(viewer, qtbot).refined
    gen = viewer.mask_request_generation
    viewer.refresh()  # up to date: nothing asked
    assert viewer.mask_request_generation == gen and viewer.mask_state == "done"
    viewer.actions_by_name["crf"].trigger()
    assert viewer.mask_state == "pending" and "full-resolution mask…" in viewer.status_text()
    gen = viewer.mask_request_generation
    viewer.refresh(crf=False)  # pending already: not asked twice
    assert viewer.mask_request_generation == gen
    qtbot.waitUntil(
        lambda: viewer.mask_state == "done" and not viewer.shown_mask.refined, timeout=WAIT_MS
    )
    assert "full resolution" in viewer.status_text()


# -- errors and stale answers ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "reason"), [(b"not a photo at all", "not"), (None, "no such file")]
)
def test_a_photo_that_cannot_be_opened_says_why_in_the_status_line(
    engine: Engine,
    folder: Path,
    viewer: PhotoViewer,
    qtbot: Any,
    content: bytes | None,
    reason: str,
) -> None:
    run_query(engine, qtbot)
    if content is not None:
        (folder / "broken.png").write_bytes(content)
    viewer.show_photo(folder, "broken.png")
    qtbot.waitUntil(lambda: "cannot open broken.png: " in viewer.status_text(), timeout=WAIT_MS)
    assert reason in viewer.status_text().lower() and viewer.photo_size is None
    assert "c62828" in viewer.status_label.styleSheet()
    assert engine.wait_until_idle(10.0)  # the engine's answer ("not in the gallery") too
    deliver_posted_events()
    assert viewer.status_text().startswith("cannot open broken.png: ") and viewer.shown_mask is None


def test_a_photo_the_viewer_cannot_decode_shows_no_mask_either(
    engine: Engine,
    folder: Path,
    viewer: PhotoViewer,
    qtbot: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_query(engine, qtbot)

    def undecodable(path: Path) -> np.ndarray:
        raise PhotoError(path, "injected decoder failure")

    monkeypatch.setattr(pv, "load_photo", undecodable)  # the viewer's decoder, not the engine's
    viewer.show_photo(folder, "p000.png", crf=False)
    qtbot.waitUntil(lambda: viewer.status_text().startswith("cannot open"), timeout=WAIT_MS)
    assert viewer.status_text() == "cannot open p000.png: injected decoder failure"
    assert engine.wait_until_idle(10.0)  # the engine's mask for p000 comes, and is not shown
    deliver_posted_events()
    assert viewer.shown_mask is None and viewer.mask_state == "none"
    assert viewer.status_text() == "cannot open p000.png: injected decoder failure"


def test_a_failed_mask_request_is_shown(
    engine: Engine,
    folder: Path,
    viewer: PhotoViewer,
    qtbot: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_query(engine, qtbot)

    def unreadable(path: Path) -> np.ndarray:
        raise OSError(f"{path}: injected read error")

    monkeypatch.setattr("sketchpad.engine.worker.load_photo", unreadable)  # the CRF's read
    viewer.show_photo(folder, "p000.png")
    qtbot.waitUntil(lambda: viewer.mask_state == "error", timeout=WAIT_MS)
    assert "mask failed: " in viewer.status_text() and "injected read error" in viewer.status_text()
    qtbot.waitUntil(lambda: viewer.photo_size == (128, 128), timeout=WAIT_MS)  # still shown
    assert viewer.mask_state == "error"


def test_under_a_failed_query_the_viewer_says_so_instead_of_waiting(
    engine: Engine, loader: StandInLoader, folder: Path, viewer: PhotoViewer, qtbot: Any
) -> None:
    loader.backbone.fail_next_sketch = True
    with qtbot.waitSignal(engine.failed, timeout=WAIT_MS):
        engine.query(sketch_at(0))
    viewer.show_photo(folder, "p000.png")  # the worker would never answer this request
    assert viewer.mask_state == "error" and viewer.mask_request_generation == -1
    assert "mask failed: the query failed" in viewer.status_text()
    run_query(engine, qtbot)  # the next query works, and the photo gets its mask
    assert wait_done(viewer, qtbot).refined


def test_a_hidden_viewer_asks_for_the_new_mask_when_shown_again(
    engine: Engine, folder: Path, viewer: PhotoViewer, qtbot: Any
) -> None:
    run_query(engine, qtbot)
    viewer.show_photo(folder, "p000.png")
    wait_done(viewer, qtbot)
    viewer.hide()
    result = run_query(engine, qtbot, x=3.0)
    assert viewer.shown_mask is result.masks["p000.png"] and viewer.mask_state == "pending"
    assert viewer.mask_request_generation == -1  # no CRF work for a window nobody sees
    viewer.show()
    assert viewer.mask_state == "pending" and viewer.mask_request_generation >= 0
    assert wait_done(viewer, qtbot).mask.shape == (128, 128)


def test_answers_of_other_channels_names_or_requests_are_ignored(
    engine: Engine, folder: Path, viewer: PhotoViewer, qtbot: Any
) -> None:
    q = run_query(engine, qtbot).generation
    viewer.show_photo(folder, "p000.png")
    gen = viewer.mask_request_generation
    assert gen >= 0
    fake = fake_mask((128, 128))
    # Straight from the engine's signal (its own filter is not what is tested), before the
    # real answer: the connection is direct, so each is handled here and now.
    engine.masksFinished.emit(
        MaskResult(generation=gen, query_generation=q, channel="gallery", masks={"p000.png": fake})
    )
    engine.masksFinished.emit(
        MaskResult(
            generation=gen - 1, query_generation=q, channel="viewer", masks={"p000.png": fake}
        )
    )
    engine.masksFinished.emit(
        MaskResult(
            generation=gen + 5, query_generation=q, channel="viewer", masks={"p001.png": fake}
        )
    )
    assert viewer.shown_mask is None and viewer.mask_state == "pending"
    mask = wait_done(viewer, qtbot)
    assert mask is not fake and not mask.mask.all()
    # A newer show_photo: the answer for the earlier photo never lands.
    viewer.show_photo(folder, "p000.png")
    viewer.show_photo(folder, "p003.png")
    qtbot.waitUntil(
        lambda: viewer.name == "p003.png" and viewer.mask_state == "done", timeout=WAIT_MS
    )
    assert engine.wait_until_idle(10.0) and viewer.wait_until_idle(10.0)
    deliver_posted_events()
    assert viewer.shown_mask is not None and viewer.shown_mask.mask.shape == (64, 128)
    assert viewer.photo_size == (128, 64)


def test_a_full_mask_still_being_built_when_a_newer_one_is_asked_for_is_dropped(
    engine: Engine,
    folder: Path,
    viewer: PhotoViewer,
    qtbot: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_query(engine, qtbot)
    monkeypatch.setattr(pv, "SYNC_OVERLAY_PIXELS", 0)  # every overlay built in the pool
    building, built, answering = threading.Event(), threading.Event(), threading.Event()
    real_overlay, real_mask = pv.overlay_qimage, search_core.photo_mask

    def held_overlay(mask: PhotoMask) -> QImage:
        if mask.refined:  # the CRF mask's overlay waits for the test
            building.set()
            assert built.wait(10), "the test never let the overlay through"
        return real_overlay(mask)

    def held_mask(*args: Any, crf: bool = False, **kw: Any) -> PhotoMask:
        if not crf:  # the engine's answer without CRF waits for the test
            assert answering.wait(10), "the test never let the engine answer"
        return real_mask(*args, crf=crf, **kw)

    monkeypatch.setattr(pv, "overlay_qimage", held_overlay)
    monkeypatch.setattr(search_core, "photo_mask", held_mask)
    try:
        viewer.show_photo(folder, "p000.png")
        qtbot.waitUntil(building.is_set, timeout=WAIT_MS)  # the CRF answer came
        viewer.set_crf(False)  # a newer request while its overlay is being built
        built.set()
        assert viewer.wait_until_idle(10.0)
        deliver_posted_events()  # the CRF overlay is delivered now, and must be dropped
        assert viewer.shown_mask is None and viewer.mask_state == "pending"
    finally:
        built.set()
        answering.set()
    assert not wait_done(viewer, qtbot).refined


def test_a_newer_query_gives_the_photo_a_new_mask(
    engine: Engine, folder: Path, viewer: PhotoViewer, qtbot: Any
) -> None:
    run_query(engine, qtbot)
    viewer.show_photo(folder, "p000.png")
    first = wait_done(viewer, qtbot)
    gen = viewer.mask_request_generation
    result = run_query(engine, qtbot, x=5.0)
    assert viewer.shown_mask is result.masks["p000.png"]  # its quick mask at once
    assert viewer.mask_state == "pending" and viewer.mask_request_generation > gen
    assert wait_done(viewer, qtbot) is not first


def test_a_refresh_from_the_window_on_each_query_does_not_ask_twice(
    engine: Engine, folder: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, ...]] = []
    request_masks = engine.request_masks

    def counting(names: tuple[str, ...], **kw: Any) -> int:
        asked.append(names)
        return request_masks(names, **kw)

    monkeypatch.setattr(engine, "request_masks", counting)
    viewers: list[PhotoViewer] = []
    engine.queryFinished.connect(lambda _r: viewers[0].refresh())  # the window's, first
    viewers.append(make_viewer(qtbot, engine))
    run_query(engine, qtbot)
    viewers[0].show_photo(folder, "p000.png")
    wait_done(viewers[0], qtbot)
    run_query(engine, qtbot, x=2.0)
    wait_done(viewers[0], qtbot)
    assert asked == [("p000.png",), ("p000.png",)]  # one per photo shown and per query


# -- zoom, pan and navigation ----------------------------------------------------------------
def test_zoom_changes_the_view_transform_and_fit_restores_it(folder: Path, qtbot: Any) -> None:
    lone = make_viewer(qtbot, None)
    lone.show_photo(folder, "p000.png")
    qtbot.waitUntil(lambda: lone.photo_size is not None, timeout=WAIT_MS)
    fit = lone.zoom()
    view = lone.view
    avail = view.maximumViewportSize()
    assert fit == pytest.approx(min(avail.width(), avail.height()) / 128)
    lone.zoom_in()
    assert view.transform().m11() == pytest.approx(fit * ZOOM_STEP)
    lone.zoom_out()
    lone.zoom_out()
    assert lone.zoom() == pytest.approx(fit / ZOOM_STEP)
    qtbot.keyClick(view, Qt.Key.Key_1)
    assert lone.zoom() == 1.0 and lone.zoom_label.text() == "100 %"
    lone.actions_by_name["fit"].trigger()
    assert lone.zoom() == pytest.approx(fit)
    assert view.horizontalScrollBar().maximum() == view.verticalScrollBar().maximum() == 0
    # The wheel zooms about the cursor: the photo point under it stays there.
    lone.view.set_zoom(12.0)
    at = QPointF(100, 80)
    before = view.mapToScene(at.toPoint())
    wheel = QWheelEvent(
        at,
        view.viewport().mapToGlobal(at),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), wheel)
    assert lone.zoom() == pytest.approx(12.0 * ZOOM_STEP)
    after = view.mapToScene(at.toPoint())
    assert abs(after.x() - before.x()) <= 0.2 and abs(after.y() - before.y()) <= 0.2
    # Drag to pan.
    assert view.dragMode() == QGraphicsView.DragMode.ScrollHandDrag
    h0, v0 = view.horizontalScrollBar().value(), view.verticalScrollBar().value()
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    for kind, pos, button, buttons in (
        (QEvent.Type.MouseButtonPress, QPointF(300, 200), left, left),
        (QEvent.Type.MouseMove, QPointF(260, 170), none, left),
        (QEvent.Type.MouseMove, QPointF(200, 150), none, left),
        (QEvent.Type.MouseButtonRelease, QPointF(200, 150), left, none),
    ):
        event = QMouseEvent(
            kind,
            pos,
            view.viewport().mapToGlobal(pos),
            button,
            buttons,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(view.viewport(), event)
    assert view.horizontalScrollBar().value() == h0 + 100
    assert view.verticalScrollBar().value() == v0 + 50
    qtbot.keyClick(view, Qt.Key.Key_0)  # fit again, from a zoom with scroll bars
    assert lone.zoom() == pytest.approx(fit)
    assert view.horizontalScrollBar().maximum() == view.verticalScrollBar().maximum() == 0


def test_next_and_previous_follow_the_sequence(
    engine: Engine, folder: Path, viewer: PhotoViewer, qtbot: Any
) -> None:
    result = run_query(engine, qtbot)
    order = ["p002.png", "p000.png", "p003.png"]  # the gallery's order (by score, say)
    viewer.set_sequence(order)
    viewer.show_photo(folder, "p000.png")
    seen: list[str] = []
    viewer.currentChanged.connect(seen.append)
    with qtbot.waitSignal(viewer.currentChanged, timeout=WAIT_MS) as blocker:
        qtbot.keyClick(viewer.view, Qt.Key.Key_Right)
    assert blocker.args == ["p003.png"] and viewer.name == "p003.png"
    assert viewer.shown_mask is result.masks["p003.png"]  # the quick mask at once
    assert not viewer.actions_by_name["next"].isEnabled() and not viewer.next_photo()
    qtbot.keyClick(viewer.view, Qt.Key.Key_Left)
    viewer.actions_by_name["previous"].trigger()
    assert seen == ["p003.png", "p000.png", "p002.png"] and viewer.name == "p002.png"
    assert not viewer.actions_by_name["previous"].isEnabled() and not viewer.previous_photo()
    assert viewer.actions_by_name["next"].isEnabled()
    wait_done(viewer, qtbot)
    assert viewer.photo_size == (128, 128) and len(viewer.shown_mask.instances) == 2


def test_the_dialog_names_the_photo(folder: Path, qtbot: Any) -> None:
    dialog = PhotoViewerDialog(None)
    qtbot.addWidget(dialog)
    dialog.open_photo(folder, "p004.png")
    assert dialog.isVisible() and dialog.windowTitle() == "p004.png — Sketchpad"
    qtbot.waitUntil(lambda: dialog.viewer.photo_size == (64, 128), timeout=WAIT_MS)
    dialog.refresh(crf=False)  # no engine: the setting only
    assert not dialog.viewer.actions_by_name["crf"].isChecked()
    assert dialog.viewer.wait_until_idle(10.0)
