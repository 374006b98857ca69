"""The Qt-free rasteriser: deterministic, framed, anti-aliased."""

from __future__ import annotations

import numpy as np

from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.sketch.raster import canvas_frame, fit_frame, rasterize, render_query


def _sk() -> Sketch:
    return Sketch(strokes=(Stroke(points=[[10, 10], [90, 10]], id="a"),
                           Stroke(points=[[10, 10], [10, 50]], id="b")), width=100, height=100)


def test_deterministic_and_white_background() -> None:
    a, b = render_query(_sk()), render_query(_sk())
    assert a.dtype == np.uint8 and a.shape == (224, 224)
    assert a.tobytes() == b.tobytes()
    assert a[0, 0] == 255 and a.min() == 0


def test_fit_frame_centres_with_margin() -> None:
    f = fit_frame((10, 10, 90, 50), (100, 100), margin=0.1)
    assert f.scale == 1.0  # 80 wide fits 80 available
    assert np.allclose(f.apply(np.array([[50.0, 30.0]])), [[50, 50]])  # bbox centre → image centre


def test_line_lands_where_expected() -> None:
    img = rasterize(_sk(), (100, 100), frame=canvas_frame(_sk(), (100, 100)), line_width=2.0)
    assert img[10, 50] < 60 and img[9, 50] < 60  # the horizontal line covers rows 9–10
    assert img[20, 50] == 255
    assert img[30, 10] < 60 and img[30, 30] == 255


def test_stroke_widths_used_for_export() -> None:
    sk = Sketch(strokes=(Stroke(points=[[50, 50]], width=20, id="dot"),), width=100, height=100)
    img = rasterize(sk, (100, 100), frame=canvas_frame(sk, (100, 100)), line_width=None)
    ink = (img < 128).sum()
    assert abs(ink - np.pi * 10**2) < 20  # a filled disc of radius 10


def test_part_query_keeps_the_whole_framing() -> None:
    whole = _sk()
    part = whole.subset(["b"])
    in_place = render_query(part, whole)
    alone = render_query(part)
    full = render_query(whole)
    # Every ink pixel of the part (framed as the whole) is also ink in the whole sketch.
    assert np.all(full[in_place < 128] < 128)
    assert not np.array_equal(in_place, alone)  # framed alone, the part would be re-centred


def test_raster_only_sketch_resamples() -> None:
    ink = np.zeros((50, 100), np.uint8)
    ink[20:30, 10:90] = 255
    sk = Sketch(raster=ink, width=100, height=50)
    same = rasterize(sk, (50, 100), frame=canvas_frame(sk, (50, 100)))
    assert np.array_equal(same, 255 - ink)
    model = render_query(sk, size=64)
    assert model.min() == 0 and model[0, 0] == 255


def test_a_part_of_a_raster_sketch_keeps_the_whole_framing() -> None:
    """A raster-only whole has no strokes (len 0) but must still frame its part."""
    ink = np.zeros((100, 200), dtype=np.uint8)
    ink[10:30, 20:60] = 255  # the part: top-left
    ink[70:90, 150:190] = 255  # elsewhere
    whole = Sketch(width=200, height=100, raster=ink)
    part_ink = ink.copy()
    part_ink[70:90, 150:190] = 0
    part = Sketch(width=200, height=100, raster=part_ink)
    framed = render_query(part, whole, 64)
    alone = render_query(part, None, 64)
    ys, xs = np.nonzero(framed < 128)
    assert xs.max() < 32 and ys.max() < 32  # stays in the top-left, where it is in the whole
    assert not np.array_equal(framed, alone)
