"""Match Points in the large view (issue 20 item 4): K shows the sketch beside the photo; a
click on the sketch marks on the photo the point ``sketchpad correspond``'s function computes
(compared with a direct call), with its heat map; a click on the photo marks its match on the
sketch; two clicks on the same pair run the backbone once; Esc clears.

The model is the engine tests' reactive stand-in (tests/planted.py) with ink: a patch with any
dark pixel gets its own direction, so drawn lines match the dark object of a photo and the
paper matches the photo's grey background."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from engine.standins import StandIn, StandInLoader
from PIL import Image
from planted import D, photo
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from sketchpad.engine.client import Engine
from sketchpad.engine.requests import MatchResult
from sketchpad.search.masks import mask_hw
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.ui.viewer.large_view import PhotoViewer, large_view_rows
from sketchpad.vision.fusion.correspond import correspond, sketch_image

WAIT_MS = 10_000
SIDE = 64  # the stand-in's input: the sketch is matched at this side
DARK = (64, 64, 128, 128)  # the photo's dark object (x0, y0, x1, y1): its bottom-right quarter
E_INK = np.eye(D, dtype=np.float32)[4]


class InkStandIn(StandIn):
    """The reactive stand-in, and a patch holding any dark pixel is ink (E4)."""

    def encode_patches(self, x: torch.Tensor, **kw: object) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, patches = super().encode_patches(x, **kw)
        dark = (self._rgb(x).amax(dim=1) < 0.35).float()  # (B, H, W)
        ink = torch.nn.functional.max_pool2d(dark[:, None], 16)[:, 0, ..., None]  # (B, gh, gw, 1)
        return pooled, ink * torch.from_numpy(E_INK) + (1 - ink) * patches


#: An L drawn in the sketch's top-left: its ink lies in the image's top-left cells only.
SKETCH = Sketch(
    strokes=(
        Stroke(np.array([[0.0, 0.0], [0.0, 30.0], [30.0, 30.0]]), id="l"),
        Stroke(np.array([[100.0, 100.0], [100.5, 100.5]]), id="dot"),  # frames the L top-left
    ),
    width=120,
    height=120,
)


@pytest.fixture
def loader() -> StandInLoader:
    ld = StandInLoader()
    ld.backbone = InkStandIn()
    return ld


@pytest.fixture
def engine(qapp: Any, qtbot: Any, loader: StandInLoader) -> Iterator[Engine]:
    e = Engine(loader=loader)
    with qtbot.waitSignal(e.modelLoaded, timeout=WAIT_MS):
        e.load_model("planted")
    yield e
    assert e.shutdown(10.0), "the inference thread did not stop"


@pytest.fixture
def photo_file(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    im = photo((128, 128), [])
    x0, y0, x1, y1 = DARK
    im[y0:y1, x0:x1] = 20
    Image.fromarray(im).save(folder / "dark.png")
    return folder / "dark.png"


@pytest.fixture
def viewer(qtbot: Any, engine: Engine, photo_file: Path) -> Iterator[PhotoViewer]:
    v = PhotoViewer(engine)
    qtbot.addWidget(v)
    v.resize(900, 600)
    v.show()
    qtbot.waitExposed(v)
    v.set_sketch(SKETCH)
    v.show_photo(photo_file.parent, photo_file.name)
    qtbot.waitUntil(lambda: v.photo_size is not None, timeout=WAIT_MS)
    yield v
    assert v.wait_until_idle(10.0)


def key(viewer: PhotoViewer, k: Qt.Key) -> None:
    QTest.keyClick(viewer.view, k)


def ink_fraction() -> tuple[float, float]:
    """A point of the L's ink in the sketch image (fractions of its side)."""
    img = sketch_image(SKETCH, SIDE)
    ys, xs = np.nonzero(img[..., 0] < 128)
    i = int(np.argmin(xs + ys * 0.5 + (ys < 20) * 100))  # on the L's corner side
    return (xs[i] + 0.5) / SIDE, (ys[i] + 0.5) / SIDE


def click_sketch(viewer: PhotoViewer, qtbot: Any, u: float, v: float) -> MatchResult:
    pane = viewer.matcher.pane
    p = pane.to_widget(u, v)
    with qtbot.waitSignal(viewer.matcher.matchShown, timeout=WAIT_MS) as blocker:
        QTest.mouseClick(pane, Qt.MouseButton.LeftButton, pos=QPoint(round(p.x()), round(p.y())))
    return blocker.args[0]


def click_photo(viewer: PhotoViewer, qtbot: Any, x: float, y: float) -> MatchResult:
    view = viewer.view
    p = view.mapFromScene(QPointF(x, y))
    with qtbot.waitSignal(viewer.matcher.matchShown, timeout=WAIT_MS) as blocker:
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=p)
    return blocker.args[0]


def inside(xy: tuple[float, float] | None, box: tuple[float, float, float, float]) -> bool:
    assert xy is not None
    return box[0] <= xy[0] <= box[2] and box[1] <= xy[1] <= box[3]


def test_k_shows_the_sketch_pane_and_the_action_is_findable(viewer: PhotoViewer) -> None:
    matcher = viewer.matcher
    assert not matcher.active and matcher.pane.isHidden()
    key(viewer, Qt.Key.Key_K)
    assert matcher.active and matcher.pane.isVisible() and matcher.action.isChecked()
    assert matcher.pane.image is not None  # the sketch drawn in it
    assert matcher.action.toolTip().endswith("(K)")
    rows = [(r.keys, r.what) for r in large_view_rows(viewer)]
    assert any(k == "K" and w.startswith("Match Points") for k, w in rows)
    keys = [k for k, _ in rows]
    assert keys.count("K") == 1  # no other large-view key is K
    key(viewer, Qt.Key.Key_K)
    assert not matcher.active and matcher.pane.isHidden()


def test_a_sketch_click_marks_the_photo_point_correspond_computes(
    viewer: PhotoViewer, qtbot: Any, loader: StandInLoader, photo_file: Path
) -> None:
    from sketchpad.gallery.images import load_photo

    key(viewer, Qt.Key.Key_K)
    u, v = ink_fraction()
    result = click_sketch(viewer, qtbot, u, v)
    query, match = viewer.matcher.sketch_marks()[0], viewer.matcher.photo_marks()[1]
    assert query is not None and match is not None
    assert query == pytest.approx((u, v), abs=1.0 / viewer.matcher.pane.square().width())
    direct = correspond(
        InkStandIn(),
        sketch_image(SKETCH, SIDE),
        load_photo(photo_file),
        [(query[0] * SIDE, query[1] * SIDE)],
        input_size=SIDE,
    )
    assert match == pytest.approx(direct.matches[0].target, abs=1e-6)
    assert result.confidences[0] == pytest.approx(direct.matches[0].confidence, abs=1e-6)
    assert inside(match, DARK)  # the drawn line is matched on the dark object
    heat = result.heat
    assert heat.shape == mask_hw((128, 128), 256) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    np.testing.assert_allclose(heat, direct.heatmap(0, out_hw=heat.shape), atol=1e-6)
    shown = viewer.matcher.photo_heat()
    assert shown is not None and (shown.height(), shown.width()) == heat.shape


def test_a_photo_click_marks_the_sketch_point_and_two_clicks_run_the_backbone_once(
    viewer: PhotoViewer, qtbot: Any, loader: StandInLoader, photo_file: Path
) -> None:
    from sketchpad.gallery.images import load_photo

    backbone = loader.backbone
    key(viewer, Qt.Key.Key_K)
    before = len(backbone.photo_batches)
    first = click_sketch(viewer, qtbot, *ink_fraction())
    assert len(backbone.photo_batches) == before + 1 and first.forwards == 1
    assert backbone.photo_batches[-1] == 2  # the sketch and the photo in one forward
    second = click_photo(viewer, qtbot, 100.0, 90.0)
    assert second.forwards == 0 and len(backbone.photo_batches) == before + 1
    point, match = viewer.matcher.photo_marks()[0], viewer.matcher.sketch_marks()[1]
    assert point is not None and match is not None
    assert point == pytest.approx((100.0, 90.0), abs=1.0)  # where the photo was clicked
    assert inside(point, DARK)
    direct = correspond(
        InkStandIn(), load_photo(photo_file), sketch_image(SKETCH, SIDE), [point],
        input_size=SIDE,
    )  # fmt: skip
    tx, ty = direct.matches[0].target
    assert match == pytest.approx((tx / SIDE, ty / SIDE), abs=1e-9)
    img = sketch_image(SKETCH, SIDE)
    ink_cells = img[..., 0].reshape(4, 16, 4, 16).min(axis=(1, 3)) < 90
    assert ink_cells[int(match[1] * 4), int(match[0] * 4)]  # on the L, not the paper
    heat = second.heat
    assert heat.shape == (256, 256) and heat.max() == pytest.approx(1.0)
    assert viewer.matcher.pane.heat is not None and viewer.matcher.photo_heat() is None


def test_esc_clears_the_marks_then_leaves_the_tool(viewer: PhotoViewer, qtbot: Any) -> None:
    matcher = viewer.matcher
    key(viewer, Qt.Key.Key_K)
    click_sketch(viewer, qtbot, *ink_fraction())
    assert matcher.photo_heat() is not None and matcher.photo_marks()[1] is not None
    key(viewer, Qt.Key.Key_Escape)
    assert matcher.photo_marks() == (None, None) and matcher.sketch_marks() == (None, None)
    assert matcher.photo_heat() is None and matcher.pane.heat is None
    assert matcher.result is None and matcher.active
    key(viewer, Qt.Key.Key_Escape)
    assert not matcher.active and matcher.pane.isHidden()


def test_a_new_sketch_or_photo_clears_the_marks_and_an_empty_sketch_is_refused(
    viewer: PhotoViewer, qtbot: Any, photo_file: Path
) -> None:
    matcher = viewer.matcher
    key(viewer, Qt.Key.Key_K)
    click_sketch(viewer, qtbot, *ink_fraction())
    other = photo_file.parent / "other.png"
    Image.fromarray(photo((96, 128), [])).save(other)
    viewer.show_photo(other.parent, other.name)  # another photo: the marks go
    assert matcher.photo_marks() == (None, None) and matcher.result is None
    assert matcher.sketch_marks() == (None, None) and matcher.photo_heat() is None
    qtbot.waitUntil(lambda: viewer.photo_size == (128, 96), timeout=WAIT_MS)
    click_sketch(viewer, qtbot, *ink_fraction())
    viewer.set_sketch(Sketch(width=100, height=100))
    assert matcher.photo_marks() == (None, None) and matcher.result is None
    assert matcher.pane.image is None
    assert matcher.match_sketch_point(0.5, 0.5) == -1
    assert "draw a sketch" in viewer.status_text()


def test_a_brush_tool_leaves_match_points(viewer: PhotoViewer) -> None:
    key(viewer, Qt.Key.Key_K)
    assert viewer.matcher.active
    key(viewer, Qt.Key.Key_P)  # the mask editor's brush
    assert viewer.editor.tool == "brush" and not viewer.matcher.active
