"""The gallery pane, offscreen: thumbnails and mask overlays painted where they belong, sort
and filter controls, local re-thresholding, the indexing footer, drops, the names on screen,
skipped files, and the 10,000-photo scroll benchmark's plumbing. Photos are generated under
tmp_path; no model runs."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, QRect, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QHelpEvent, QImage
from PySide6.QtWidgets import QApplication, QStyleOptionViewItem, QToolTip
from qtevents import deliver_posted_events

from sketchpad.engine.requests import QueryResult
from sketchpad.gallery.images import ScanResult, scan_folder
from sketchpad.search.masks import PhotoMask
from sketchpad.ui.photos import gallery_view
from sketchpad.ui.photos.gallery_bench import finish_layout, measure_apply_result, measure_scroll
from sketchpad.ui.photos.gallery_delegate import fit_rect
from sketchpad.ui.photos.gallery_model import NameRole
from sketchpad.ui.photos.gallery_pane import EMPTY_TEXT, GalleryPane, folder_from_mime, format_eta
from sketchpad.vision import maps

GREY = (128, 128, 128)


def solid(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (160, 120)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def photo_mask(prob: np.ndarray, threshold: float = 0.5) -> PhotoMask:
    prob = prob.astype(np.float32)
    mask = prob >= threshold
    instances, labels = maps.find_instances(prob, mask)
    return PhotoMask(
        prob=prob,
        mask=mask,
        instances=instances,
        label_map=labels,
        score=0.9,
        refined=False,
        threshold=threshold,
    )


def result(folder: Path, names, scores, masks=None, generation: int = 1) -> QueryResult:
    s = np.asarray(scores, dtype=np.float32)
    return QueryResult(
        generation=generation,
        folder=folder,
        names=tuple(names),
        photo_scores=s,
        ranking=np.argsort(-s),
        masks=masks or {},
        scores=(),
        threshold=0.5,
        indexing=False,
        seconds=0.01,
    )


@pytest.fixture
def pane(qtbot) -> GalleryPane:
    p = GalleryPane()
    qtbot.addWidget(p)
    p.resize(700, 520)
    p.show()
    qtbot.waitExposed(p)
    yield p
    p.shutdown()


def open_folder(qtbot, pane: GalleryPane, folder: Path):
    with qtbot.waitSignal(pane.scanFinished, timeout=5000) as blocker:
        pane.set_folder(folder)
    return blocker.args[0]


def painted(pane: GalleryPane) -> QImage:
    """The viewport as painted once every thumbnail on screen has been decoded."""
    finish_layout(pane)
    pane.view.viewport().repaint()  # asks for the thumbnails on screen
    assert pane.thumbnails.wait_for_done(5000)
    return pane.view.viewport().grab().toImage()


def target_rect(pane: GalleryPane, name: str, wh: tuple[int, int]) -> QRect:
    """Where the thumbnail of ``name`` (w × h pixels) is drawn, in viewport pixels."""
    cell = pane.view.visualRect(pane.proxy.index(pane.proxy.proxy_row_of(name), 0))
    return fit_rect(*wh, pane.delegate.thumb_area(cell)).toAlignedRect()


def colour_at(image: QImage, x: float, y: float) -> tuple[int, int, int]:
    c = image.pixelColor(int(x), int(y))
    return c.red(), c.green(), c.blue()


def near(c: tuple[int, int, int], want: tuple[int, int, int], tol: int = 6) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(c, want, strict=True))


def test_empty_state_before_a_folder(pane) -> None:
    assert pane._stack.currentWidget() is pane._empty_label
    assert pane._empty_label.text() == EMPTY_TEXT
    assert pane.visible_names() == ()


def test_thumbnails_appear_in_their_cells(qtbot, pane, tmp_path) -> None:
    solid(tmp_path / "red.png", (230, 20, 20))
    solid(tmp_path / "blue.png", (20, 20, 230), (90, 180))
    scan = open_folder(qtbot, pane, tmp_path)
    assert [p.name for p in scan.photos] == ["blue.png", "red.png"]
    assert pane._stack.currentWidget() is pane.view
    image = painted(pane)
    red = target_rect(pane, "red.png", (160, 120))
    blue = target_rect(pane, "blue.png", (80, 160))  # thumbnail of 90 × 180 at side 160
    assert near(colour_at(image, red.center().x(), red.center().y()), (230, 20, 20))
    assert near(colour_at(image, blue.center().x(), blue.center().y()), (20, 20, 230))
    # the tall photo is fitted: beside it (inside its cell) there is no blue
    assert not near(colour_at(image, blue.left() - 6, blue.center().y()), (20, 20, 230), 60)


def test_mask_overlay_covers_the_left_half_only(qtbot, pane, tmp_path) -> None:
    solid(tmp_path / "grey.png", GREY)
    open_folder(qtbot, pane, tmp_path)
    prob = np.full((60, 80), 0.1, np.float32)  # masks come at their own size: scaled ×2 here
    prob[:, :40] = 0.9
    pane.apply_result(result(tmp_path, ["grey.png"], [0.9], {"grey.png": photo_mask(prob)}))
    image = painted(pane)
    r = target_rect(pane, "grey.png", (160, 120))
    left = colour_at(image, r.left() + r.width() * 0.25, r.top() + r.height() * 0.6)
    right = colour_at(image, r.left() + r.width() * 0.75, r.top() + r.height() * 0.6)
    assert near(right, GREY)
    assert left[0] > GREY[0] + 30 and left[1] < GREY[1] - 10  # tinted red
    # the instance box's right edge runs down the middle of the drawn thumbnail
    edge = colour_at(image, r.left() + r.width() * 0.5 - 1, r.top() + r.height() * 0.6)
    assert edge[2] < 100 and edge[0] > 180 and edge[1] > 150  # yellow

    pane.set_threshold(0.95)  # locally: no mask passes any more, and 0.9 is no match
    image = painted(pane)
    left = colour_at(image, r.left() + r.width() * 0.25, r.top() + r.height() * 0.6)
    assert abs(left[0] - left[1]) < 10  # no red tint (the photo is shown faded)
    pane.set_threshold(0.05)  # now the whole photo
    image = painted(pane)
    right = colour_at(image, r.left() + r.width() * 0.75, r.top() + r.height() * 0.6)
    assert right[0] > GREY[0] + 30


def test_the_mask_is_scaled_to_the_drawn_thumbnail(qtbot, pane, tmp_path) -> None:
    """A wide photo is letterboxed in its square: the mask follows the photo, not the cell."""
    solid(tmp_path / "wide.png", GREY, (160, 120))
    open_folder(qtbot, pane, tmp_path)
    prob = np.full((120, 160), 0.1, np.float32)
    prob[:30] = 0.9  # the top quarter
    pane.apply_result(result(tmp_path, ["wide.png"], [0.9], {"wide.png": photo_mask(prob)}))
    image = painted(pane)
    r = target_rect(pane, "wide.png", (160, 120))
    x = r.left() + r.width() * 0.3  # left of the score badge
    assert colour_at(image, x, r.top() + r.height() * 0.2)[0] > GREY[0] + 30
    assert near(colour_at(image, x, r.top() + r.height() * 0.3), GREY)
    above = colour_at(image, x, r.top() - 3)
    assert not above[0] > above[1] + 30  # nothing tinted above the photo


def test_a_broken_photo_shows_the_failure(qtbot, pane, tmp_path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    open_folder(qtbot, pane, tmp_path)
    with qtbot.waitSignal(pane.thumbnails.failed, timeout=5000):
        image = painted(pane)
    image = painted(pane)
    assert pane.thumbnails.failure(bad)
    cell = pane.view.visualRect(pane.proxy.index(0, 0))
    c = pane.delegate.thumb_area(cell).center()
    red, green, _ = colour_at(image, c.x(), c.y())
    assert red > green + 80  # the red cross
    option = QStyleOptionViewItem()
    option.rect = cell
    tip = QHelpEvent(QEvent.Type.ToolTip, c, pane.view.viewport().mapToGlobal(c))
    index = pane.proxy.index(0, 0)
    assert pane.delegate.helpEvent(tip, pane.view, option, index)
    assert "bad.png" in QToolTip.text() and pane.thumbnails.failure(bad) in QToolTip.text()


def test_sort_and_matches_only_controls(qtbot, pane, tmp_path) -> None:
    names = ["img10.png", "img2.png", "img1.png"]
    pane.set_names(tmp_path, names)
    pane.apply_result(result(tmp_path, names, [0.9, 0.0, 0.6]))
    order = lambda: [pane.proxy.index(r, 0).data(NameRole) for r in range(pane.proxy.rowCount())]  # noqa: E731
    assert order() == ["img10.png", "img1.png", "img2.png"]
    pane.sort_combo.setCurrentIndex(pane.sort_combo.findText("Name"))
    assert pane.proxy.sort_key == "name" and order() == ["img1.png", "img2.png", "img10.png"]
    pane.matches_box.setChecked(True)
    assert order() == ["img1.png", "img10.png"]
    pane.set_sort("score")
    assert pane.sort_combo.currentText() == "Score" and order() == ["img10.png", "img1.png"]
    pane.apply_result(result(tmp_path, names, [0.0, 0.0, 0.0], generation=2))
    assert pane.proxy.rowCount() == 0
    assert pane._stack.currentWidget() is pane._empty_label
    assert "Matches only" in pane._empty_label.text()


def test_indexing_footer_and_cancel(qtbot, pane) -> None:
    assert not pane.is_indexing_shown
    pane.set_index_progress(12, 100, 25.0)
    assert pane.is_indexing_shown and pane.progress_text == "12 / 100 · about 25 s left"
    pane.set_index_progress(13, 100, -1)
    assert pane.progress_text == "13 / 100"
    with qtbot.waitSignal(pane.cancelIndexing, timeout=1000):
        qtbot.mouseClick(pane.cancel_button, Qt.MouseButton.LeftButton)
    assert not pane.cancel_button.isEnabled()
    with qtbot.waitSignal(pane.message, timeout=1000) as said:
        pane.index_finished("Indexed 100 photos")
    assert said.args == ["Indexed 100 photos"]
    assert not pane.is_indexing_shown and pane.notice_text == "Indexed 100 photos"
    pane.set_index_progress(1, 5, 3)
    assert pane.cancel_button.isEnabled()


def test_a_model_meant_for_a_gpu_shows_its_measured_time_per_photo(pane) -> None:
    pane.set_index_progress(10, 100, 45.0, "cpu")  # 45 s left for 90 photos
    assert pane.progress_text == "10 / 100 · 0.5 s/photo on CPU · about 45 s left"
    assert "expects a GPU" in pane._eta_label.toolTip()
    pane.set_index_progress(10, 100, 45.0)  # on its GPU, or a model for the CPU
    assert pane.progress_text == "10 / 100 · about 45 s left"


def test_a_long_footer_text_ends_in_an_ellipsis_at_a_narrow_width(qtbot, pane) -> None:
    pane.set_index_progress(12, 400, 23_000.0, "cpu")
    pane.resize(360, 300)
    qtbot.waitUntil(lambda: pane.width() == 360)
    label = pane._eta_label
    assert pane.progress_text == "12 / 400 · 59.3 s/photo on CPU · about 6 h 23 min left"
    shown = label.shown_text()
    assert shown.endswith("…") and pane.progress_text.startswith(shown[:-1])
    pane.resize(900, 300)
    qtbot.waitUntil(lambda: pane.width() == 900)
    assert label.shown_text() == pane.progress_text


def test_busy_indicator(pane) -> None:
    assert not pane.is_busy
    pane.set_busy(True)
    assert pane.is_busy
    pane.set_busy(False)
    assert not pane.is_busy


def test_format_eta() -> None:
    assert format_eta(25.2) == "25 s"
    assert format_eta(150) == "2 min" or format_eta(150) == "3 min"
    assert format_eta(3900) == "1 h 5 min"


def mime_of(*paths_or_urls: Path | str) -> QMimeData:
    mime = QMimeData()
    mime.setUrls(
        [QUrl.fromLocalFile(str(p)) if isinstance(p, Path) else QUrl(p) for p in paths_or_urls]
    )
    return mime


def drop(pane: GalleryPane, mime: QMimeData) -> tuple[bool, bool]:
    """Drag ``mime`` over the pane and drop it; returns (enter accepted, drop accepted)."""
    action = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(
        QPoint(50, 50), action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(pane, enter)
    event = QDropEvent(
        QPointF(50, 50), action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(pane, event)
    return enter.isAccepted(), event.isAccepted()


def test_dropping_a_folder_emits_folder_dropped(qtbot, pane, tmp_path) -> None:
    photo = solid(tmp_path / "a.png", GREY)
    got: list[object] = []
    pane.folderDropped.connect(got.append)
    assert drop(pane, mime_of(tmp_path)) == (True, True)
    assert drop(pane, mime_of(photo)) == (True, True)  # a file: its folder
    assert got == [tmp_path, tmp_path]
    assert drop(pane, mime_of("https://example.org/photos/")) == (False, False)
    other = tmp_path / "other"
    other.mkdir()
    assert folder_from_mime(mime_of(tmp_path, other)) is None  # two folders: which one?
    assert got == [tmp_path, tmp_path]


def test_visible_names_are_the_cells_on_screen(qtbot, pane, tmp_path) -> None:
    names = [f"p{i:03d}.png" for i in range(300)]
    pane.set_names(tmp_path, names)
    finish_layout(pane)
    assert pane.visible_names() == brute_force_visible(pane)
    assert 0 < len(pane.visible_names()) < 300
    bar = pane.view.verticalScrollBar()
    qtbot.waitUntil(lambda: not pane._visible_timer.isActive(), timeout=2000)  # settled
    with qtbot.waitSignal(pane.visibleNamesChanged, timeout=2000):
        bar.setValue(bar.maximum() // 2 + 37)
    middle = pane.visible_names()
    assert middle == brute_force_visible(pane) and "p000.png" not in middle
    bar.setValue(bar.maximum())
    assert pane.visible_names() == brute_force_visible(pane)
    assert pane.visible_names()[-1] == "p299.png"


def brute_force_visible(pane: GalleryPane) -> tuple[str, ...]:
    view = pane.view
    g = view.gridSize().height()
    area = view.viewport().rect().adjusted(0, -g, 0, g)  # one row of margin
    out = []
    for r in range(pane.proxy.rowCount()):
        index = pane.proxy.index(r, 0)
        if view.visualRect(index).intersects(area):
            out.append(index.data(NameRole))
    return tuple(out)


def test_skipped_files_are_reported(qtbot, pane, tmp_path) -> None:
    solid(tmp_path / "good.png", GREY)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()
    messages: list[str] = []
    pane.message.connect(messages.append)
    scan = open_folder(qtbot, pane, tmp_path)
    assert len(scan.skipped) == 2 and [p.name for p in scan.photos] == ["good.png"]
    assert "2 skipped" in pane.skipped_text
    assert "empty.jpg" in pane.skipped_text and "folder.jpg" in pane.skipped_text
    assert any("2 files skipped" in m for m in messages)


def test_a_folder_that_cannot_be_listed(qtbot, pane, tmp_path) -> None:
    with qtbot.waitSignal(pane.scanFailed, timeout=5000) as blocker:
        pane.set_folder(tmp_path / "missing")
    assert "missing" in blocker.args[0]
    assert pane._stack.currentWidget() is pane._empty_label
    assert "Cannot open" in pane._empty_label.text()


def test_a_newer_folder_wins_over_a_scan_in_flight(qtbot, pane, tmp_path, monkeypatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    solid(first / "one.png", GREY)
    solid(second / "two.png", GREY)
    gate = threading.Event()

    def slow_scan(folder: Path) -> ScanResult:
        if folder == first:
            assert gate.wait(10)
        return scan_folder(folder)

    monkeypatch.setattr(gallery_view, "scan_folder", slow_scan)
    finished: list[ScanResult] = []
    pane.scanFinished.connect(finished.append)
    pane.set_folder(first)
    pane.set_folder(second)  # while the first scan is still running
    gate.set()
    assert pane.wait_for_scan(5000)
    qtbot.waitUntil(lambda: len(finished) >= 1, timeout=5000)
    deliver_posted_events()
    assert [[p.name for p in r.photos] for r in finished] == [["two.png"]]
    assert pane.model.folder == second and pane.model.names() == ("two.png",)


def test_enter_activates_the_current_photo(qtbot, pane, tmp_path) -> None:
    pane.set_names(tmp_path, ["a.png", "b.png"])
    finish_layout(pane)
    pane.view.setFocus()
    pane.view.setCurrentIndex(pane.proxy.index(1, 0))
    with qtbot.waitSignal(pane.photoActivated, timeout=1000) as blocker:
        qtbot.keyClick(pane.view, Qt.Key.Key_Return)
    assert blocker.args == ["b.png"]


def test_ten_thousand_photos_scroll_benchmark_runs(qtbot, pane, tmp_path) -> None:
    """The plumbing of ``sketchpad bench ui``'s gallery numbers (no time is asserted)."""
    sources = [
        solid(tmp_path / f"src{i}.png", c, s)
        for i, (c, s) in enumerate(
            [((200, 40, 40), (160, 120)), ((40, 200, 40), (120, 160)), ((40, 40, 200), (160, 160))]
        )
    ]
    photos = tmp_path / "photos"
    photos.mkdir()
    names = [f"img{i}.png" for i in range(10_000)]
    for i, name in enumerate(names):
        os.link(sources[i % 3], photos / name)
    pane.set_names(photos, names)
    rng = np.random.default_rng(0)
    prob = np.zeros((120, 160), np.float32)
    prob[30:90, 40:120] = 0.9

    def make(k: int) -> QueryResult:
        scores = rng.random(len(names)).astype(np.float32)
        scores[scores < 0.3] = 0.0
        best = np.argsort(-scores)[:50]
        return result(photos, names, scores, {names[j]: photo_mask(prob) for j in best}, k)

    applied = measure_apply_result(pane, make, repeats=2)
    assert set(applied) >= {"max_ms", "p99_ms", "p50_ms", "mean_ms", "events_max_ms"}
    scrolled = measure_scroll(pane, steps=20)
    assert scrolled["steps"] == 20 and scrolled["rows"] == 10_000
    assert 0 < scrolled["p50_ms"] <= scrolled["p99_ms"] <= scrolled["max_ms"]
    assert scrolled["total_s"] > 0
    assert pane.visible_names()[-1] == pane.proxy.index(9_999, 0).data(NameRole)  # the end
    with pytest.raises(ValueError):
        measure_scroll(pane, steps=0)


def test_overlays_of_non_contiguous_masks(qapp) -> None:
    """Masks from the engine can be Fortran-ordered views (upsampling transposes): the
    overlay must still build (it raised BufferError and the cell painted nothing)."""
    from sketchpad.ui.photos.gallery_delegate import overlay_image

    mask = np.zeros((6, 8), dtype=bool)
    mask[:, :4] = True
    for m in (np.asfortranarray(mask), mask.T.copy().T, mask[:, ::1]):
        image = overlay_image(m)
        assert (image.width(), image.height()) == (8, 6)
        assert image.pixelColor(1, 1).alpha() > 0 and image.pixelColor(6, 1).alpha() == 0
    groups = np.asfortranarray(mask.astype(np.int16))
    assert overlay_image(np.asfortranarray(mask), groups).pixelColor(1, 1).alpha() > 0


def test_a_name_that_is_not_utf8_survives_qt_whole(qtbot, pane, tmp_path) -> None:
    """Qt turns a str with surrogate escapes into another string (the bytes are lost): names
    read back from the gallery, the large view's photo and thumbnails keep them whole."""
    odd = os.fsdecode(b"caf\xe9.png")
    twin = os.fsdecode(b"caf\xe8.png")
    for name in (odd, twin):
        solid(tmp_path / name, GREY)
    open_folder(qtbot, pane, tmp_path)
    assert set(pane.visible_names()) == {odd, twin}
    activated: list[str] = []
    pane.photoActivated.connect(activated.append)
    for row in range(pane.proxy.rowCount()):
        index = pane.proxy.index(row, 0)
        pane._view.setCurrentIndex(index)
        assert pane.current_name() in (odd, twin)
        pane._on_activated(index)
    assert sorted(activated) == sorted([odd, twin])
    got: list[object] = []
    pane.thumbnails.ready.connect(got.append)
    with qtbot.waitSignals([pane.thumbnails.ready, pane.thumbnails.ready], timeout=5000):
        painted(pane)
    assert {os.path.basename(str(p)) for p in got} == {odd, twin}
