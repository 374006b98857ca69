"""Property tests (hypothesis) for the sketch model: JSON round trip, partition, lasso cut."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sketchpad.sketch.geometry import (
    lasso_select,
    partition_sketch,
    points_in_polygon,
    sector_boundary_angles,
)
from sketchpad.sketch.io import sketch_from_json_bytes, sketch_to_json_bytes
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.sketch.polyline import segment_point_distance

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Coordinates: mostly small integers (so points land exactly on rays and polygon edges, the
# degenerate cases), sometimes arbitrary floats.
coord = st.one_of(
    st.integers(-20, 20).map(float),
    st.floats(-1000, 1000, allow_nan=False, allow_infinity=False),
)
point = st.tuples(coord, coord)


@st.composite
def strokes(draw: st.DrawFn, with_extras: bool = False) -> Stroke:
    pts = np.array(draw(st.lists(point, min_size=1, max_size=25)), dtype=np.float64)
    n = len(pts)
    kw: dict = {}
    if with_extras:
        if draw(st.booleans()):
            kw["times"] = np.cumsum(draw(st.lists(st.floats(0, 1e4), min_size=n, max_size=n)))
        if draw(st.booleans()):
            kw["pressure"] = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
        if draw(st.booleans()):
            kw["point_labels"] = draw(st.lists(st.integers(-5, 2**40), min_size=n, max_size=n))
        kw["label"] = draw(st.one_of(st.none(), st.text(max_size=12)))
        kw["width"] = draw(st.floats(0.01, 100))
        kw["color"] = "#" + draw(st.text("0123456789abcdef", min_size=6, max_size=6))
    return Stroke(points=pts, **kw)


@st.composite
def sketches(draw: st.DrawFn, with_extras: bool = False) -> Sketch:
    ss = draw(st.lists(strokes(with_extras), min_size=0, max_size=6))
    meta = (
        draw(
            st.dictionaries(
                st.text(max_size=8),
                st.one_of(
                    st.integers(-(2**53), 2**53),
                    st.text(max_size=10),
                    st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.lists(st.text(max_size=5), max_size=4),
                ),
                max_size=4,
            )
        )
        if with_extras
        else {}
    )
    w = draw(st.floats(1, 5000))
    h = draw(st.floats(1, 5000))
    return Sketch(strokes=tuple(ss), width=w, height=h, metadata=meta)


@SETTINGS
@given(sketches(with_extras=True))
def test_json_round_trip_is_lossless(sketch: Sketch) -> None:
    again = sketch_from_json_bytes(sketch_to_json_bytes(sketch))
    assert again == sketch
    for a, b in zip(again.strokes, sketch.strokes, strict=False):
        assert a.points.tobytes() == b.points.tobytes()  # bit-exact, not merely close


def _tol(pts: np.ndarray) -> float:
    return 1e-7 * (1.0 + float(np.abs(pts).max()))


def _angle_distance(a: np.ndarray, b: float) -> np.ndarray:
    d = np.mod(a - b, 2 * math.pi)
    return np.minimum(d, 2 * math.pi - d)


def _on_a_boundary(p: np.ndarray, center: np.ndarray, angles: np.ndarray, tol: float) -> np.ndarray:
    """(M,) whether each point lies on one of the boundary rays (or at the centre)."""
    rel = p - center
    r = np.hypot(rel[:, 0], rel[:, 1])
    ang = np.arctan2(rel[:, 1], rel[:, 0])
    off = np.min(
        [r * np.sin(np.minimum(_angle_distance(ang, a), math.pi / 2)) for a in angles], axis=0
    )
    return (r <= tol) | (off <= tol)


@SETTINGS
@given(
    sketches(),
    st.integers(1, 9),
    st.one_of(st.sampled_from([0.0, math.pi / 2, math.pi, -math.pi / 4]), st.floats(-10, 10)),
    st.one_of(st.none(), point),
)
def test_partition_pieces(sketch: Sketch, n: int, theta1: float, center: tuple | None) -> None:
    part = partition_sketch(sketch, n, theta1, center)
    c = np.array(part.center)
    angles = sector_boundary_angles(n, theta1)
    for stroke in sketch.strokes:
        pieces = [p for p in part.pieces if p.source_id == stroke.id]
        tol = _tol(np.vstack([stroke.points, c[None]]))
        # Every input point appears in exactly one piece, in order, at its exact position.
        origins = np.concatenate([p.origin for p in pieces])
        assert sorted(origins[origins >= 0].tolist()) == list(range(len(stroke)))
        assert origins[origins >= 0].tolist() == list(range(len(stroke)))
        for p in pieces:
            keep = p.origin >= 0
            assert np.array_equal(p.stroke.points[keep], stroke.points[p.origin[keep]])
        # Consecutive pieces meet on a sector boundary.
        for a, b in zip(pieces, pieces[1:], strict=False):
            assert np.array_equal(a.stroke.points[-1], b.stroke.points[0])
            assert _on_a_boundary(b.stroke.points[:1], c, angles, tol).all()
        # Every piece lies in one sector (points on its boundary rays count as in it).
        for p in pieces:
            rel = p.stroke.points - c
            ang = np.mod(np.arctan2(rel[:, 1], rel[:, 0]) - theta1, 2 * math.pi)
            sector = np.minimum((ang // (2 * math.pi / n)).astype(int), n - 1)
            off = sector != p.sector
            assert _on_a_boundary(p.stroke.points[off], c, angles, tol).all(), (p.sector, sector)
        if n > 1 and len(pieces) == 1:
            assert pieces[0].stroke is stroke  # an uncut stroke is kept as is, same id


polygons = st.lists(point, min_size=3, max_size=12).map(lambda v: np.array(v, dtype=np.float64))


def _dist_to_polygon(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    return segment_point_distance(poly, np.roll(poly, -1, axis=0), p).min(axis=1)


@SETTINGS
@given(sketches(), polygons)
def test_lasso_cut_puts_points_on_their_side(sketch: Sketch, poly: np.ndarray) -> None:
    assume(np.ptp(poly[:, 0]) > 0 and np.ptp(poly[:, 1]) > 0)
    result = lasso_select(sketch, poly, "cut")
    after = sketch.with_strokes(
        t for s in sketch.strokes for t in result.replacements.get(s.id, (s,))
    )
    selected = set(result.selected_ids)
    assert selected <= {s.id for s in after.strokes}
    tol = _tol(np.vstack([sketch.all_points(), poly]) if len(sketch.strokes) else poly)
    for s in after.strokes:
        inside = points_in_polygon(s.points, poly)
        wrong = inside != (s.id in selected)
        # Only cut points (on the polygon) may disagree: the boundary belongs to both sides.
        assert (_dist_to_polygon(s.points[wrong], poly) <= tol).all()
    # The cut keeps every original point exactly once.
    for s in sketch.strokes:
        if s.id in result.replacements:
            pieces = result.replacements[s.id]
            kept = np.vstack([p.points for p in pieces])
            for q in s.points:
                assert (np.all(kept == q, axis=1)).any()
