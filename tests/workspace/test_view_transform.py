"""ViewTransform: pure canvas ↔ view mapping, no Qt."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sketchpad.workspace.view_transform import MAX_SCALE, MIN_SCALE, ViewTransform

coords = st.floats(-5000, 5000, allow_nan=False)
scales = st.floats(MIN_SCALE, MAX_SCALE)
factors = st.floats(0.01, 100.0)


@given(scales, coords, coords, coords, coords)
def test_to_view_and_back_round_trip(scale, ox, oy, x, y):
    v = ViewTransform(scale, ox, oy)
    bx, by = v.to_canvas(*v.to_view(x, y))
    assert bx == pytest.approx(x, abs=1e-6) and by == pytest.approx(y, abs=1e-6)


@given(scales, coords, coords, factors, coords, coords)
def test_zoom_about_a_point_keeps_that_point_fixed(scale, ox, oy, factor, vx, vy):
    v = ViewTransform(scale, ox, oy)
    z = v.zoomed_about(factor, vx, vy)
    assert MIN_SCALE <= z.scale <= MAX_SCALE
    assert z.scale == pytest.approx(min(MAX_SCALE, max(MIN_SCALE, scale * factor)))
    cx, cy = v.to_canvas(vx, vy)
    assert z.to_view(cx, cy) == pytest.approx((vx, vy), abs=1e-6)


def test_zoom_is_clamped():
    v = ViewTransform()
    assert v.zoomed_about(1e6, 0, 0).scale == MAX_SCALE
    assert v.zoomed_about(1e-6, 0, 0).scale == MIN_SCALE
    with pytest.raises(ValueError, match="positive"):
        v.zoomed_about(0.0, 0, 0)
    with pytest.raises(ValueError, match="scale"):
        ViewTransform(scale=100.0)


@given(st.floats(10, 5000), st.floats(10, 5000), st.floats(200, 3000), st.floats(200, 3000))
def test_fit_centres_the_whole_page(pw, ph, vw, vh):
    v = ViewTransform.fit(pw, ph, vw, vh, margin=20)
    x0, y0, x1, y1 = v.rect_to_view((0, 0, pw, ph))
    assert (x0 + x1) / 2 == pytest.approx(vw / 2) and (y0 + y1) / 2 == pytest.approx(vh / 2)
    if MIN_SCALE < v.scale < MAX_SCALE:  # unclamped: fits inside the margins, touching one pair
        assert x0 >= 20 - 1e-6 and y0 >= 20 - 1e-6
        assert min(x0, y0) == pytest.approx(20)


def test_fit_of_a_small_page_in_a_big_view():
    v = ViewTransform.fit(100, 50, 1000, 600, margin=0)
    assert v.scale == pytest.approx(10.0)
    assert v.to_view(50, 25) == pytest.approx((500, 300))


def test_pan_and_anchor():
    v = ViewTransform(2.0, 10, 20)
    assert v.panned(5, -5).to_view(0, 0) == (15, 15)
    a = v.anchored(100, 100, 300, 400)
    assert a.to_view(100, 100) == (300, 400) and a.scale == 2.0


def test_array_mapping_matches_scalar_mapping():
    v = ViewTransform(1.5, -3, 7)
    pts = np.array([[0.0, 0.0], [10.0, 20.0], [-5.0, 3.0]])
    view_pts = v.to_view_array(pts)
    assert view_pts.tolist() == [list(v.to_view(x, y)) for x, y in pts]
    assert np.allclose(v.to_canvas_array(view_pts), pts)
    assert v.length_to_canvas(15) == 10


def test_wheel_helpers():
    from sketchpad.workspace.view_transform import SCROLL_PER_NOTCH, wheel_scroll, wheel_zoom_factor

    assert wheel_zoom_factor(120, 1.25) == pytest.approx(1.25)
    assert wheel_zoom_factor(-240, 1.25) == pytest.approx(1 / 1.25**2)
    assert wheel_zoom_factor(15, 1.25) == pytest.approx(1.25**0.125)  # a smooth wheel
    assert wheel_scroll(0, -120, 0, 0, shift=False) == (0, -SCROLL_PER_NOTCH)
    assert wheel_scroll(0, 120, 0, 0, shift=True) == (SCROLL_PER_NOTCH, 0)
    assert wheel_scroll(0, 120, 3, -7, shift=False) == (3, -7)  # touchpads give pixels
