"""Hand-checked cases for lasso, partition, erasers and hit-testing (see test_properties for
the general invariants)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.geometry import (
    erase_along,
    lasso_select,
    partition_sketch,
    points_in_polygon,
    sector_of_point,
    selection_bbox,
    stroke_at,
    strokes_hit,
    translate,
)
from sketchpad.sketch.model import Sketch, Stroke

SQUARE = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)


def _sketch(*polylines: list, **kw) -> Sketch:
    return Sketch(
        strokes=tuple(Stroke(points=p, id=f"s{i}", **kw) for i, p in enumerate(polylines)),
        width=100,
        height=100,
    )


def test_points_in_polygon_even_odd() -> None:
    pts = np.array([[5, 5], [15, 5], [-1, 5]])
    assert points_in_polygon(pts, SQUARE).tolist() == [True, False, False]
    # A self-overlapping star: the inner pentagon is outside under even-odd.
    star = np.array([[math.cos(a), math.sin(a)] for a in np.arange(5) * 4 * math.pi / 5]) * 10
    assert not points_in_polygon(np.array([[0.0, 0.0]]), star)[0]
    with pytest.raises(ValueError, match="3 vertices"):
        points_in_polygon(pts, SQUARE[:2])


def test_lasso_whole_selects_touched_strokes() -> None:
    sk = _sketch([[5, 5], [50, 50]], [[-5, 5], [15, 5]], [[20, 20], [30, 30]])
    r = lasso_select(sk, SQUARE, "whole")
    assert r.selected_ids == ("s0", "s1") and r.replacements == {}


def test_lasso_cut_splits_at_the_polygon() -> None:
    sk = _sketch([[-5, 5], [15, 5]], times=None)
    r = lasso_select(sk, SQUARE, "cut")
    pieces = r.replacements["s0"]
    assert [p.points.tolist() for p in pieces] == [
        [[-5, 5], [0, 5]],
        [[0, 5], [10, 5]],
        [[10, 5], [15, 5]],
    ]
    assert r.selected_ids == (pieces[1].id,)
    after = SketchEdit.replace(sk, r.replacements).apply(sk)
    assert len(after) == 3


def test_cut_interpolates_per_point_data() -> None:
    sk = Sketch(
        strokes=(
            Stroke(
                points=[[-10, 5], [10, 5]],
                times=[0, 100],
                pressure=[0, 1],
                point_labels=[3, 4],
                id="a",
            ),
        ),
        width=50,
        height=50,
    )
    pieces = lasso_select(sk, SQUARE, "cut").replacements["a"]
    assert pieces[0].times.tolist() == [0, 50] and pieces[1].pressure.tolist() == [0.5, 1.0]
    assert pieces[1].point_labels.tolist() == [3, 4]


def test_partition_two_sectors_of_a_horizontal_line() -> None:
    # Centroid (0, 0); θ₁ = π/2 puts the boundary on the vertical axis: left half, right half.
    sk = _sketch([[-10, 0], [10, 0]], [[0, -3], [0, 3]])
    part = partition_sketch(sk, 2, math.pi / 2)
    assert part.center == (0.0, 0.0)
    line = [p for p in part.pieces if p.source_id == "s0"]
    assert [p.stroke.points.tolist() for p in line] == [[[-10, 0], [0, 0]], [[0, 0], [10, 0]]]
    assert [p.sector for p in line] == [0, 1]  # angles grow clockwise (y down) from θ₁ = down
    assert [p.origin.tolist() for p in line] == [[0, -1], [-1, 1]]
    assert sector_of_point(-5, 0, part.center, 2, math.pi / 2) == 0
    assert sector_of_point(5, 0, part.center, 2, math.pi / 2) == 1
    # The vertical stroke lies on the two boundary rays; sectors are half-open, so the upper
    # half (ray at 3π/2) belongs to sector 1 and the lower half (ray at π/2) to sector 0.
    vertical = [p for p in part.pieces if p.source_id == "s1"]
    assert [(p.sector, p.stroke.points.tolist()) for p in vertical] == [
        (1, [[0, -3], [0, 0]]),
        (0, [[0, 0], [0, 3]]),
    ]


def test_partition_sector_sketch_keeps_canvas() -> None:
    sk = _sketch([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]])
    part = partition_sketch(sk, 4, 0.1)
    pieces = [part.sector_sketch(sk, k) for k in range(4)]
    assert all(p.width == sk.width and len(p) >= 1 for p in pieces)
    assert sum(p.num_points for p in pieces) >= sk.num_points
    with pytest.raises(ValueError):
        partition_sketch(sk, 0)


def test_stroke_eraser_and_partial_eraser() -> None:
    sk = _sketch([[0, 0], [20, 0]], [[0, 50], [20, 50]], width=2.0)
    assert strokes_hit(sk, np.array([[10, 3], [11, 3]]), radius=2.5) == ("s0",)
    assert strokes_hit(sk, np.array([[10, 5]]), radius=2.5) == ()
    rep = erase_along(sk, np.array([[10.0, 0.0]]), radius=2.0)
    left, right = rep["s0"]
    assert left.points[0].tolist() == [0, 0] and right.points[-1].tolist() == [20, 0]
    assert left.points[:, 0].max() < 8.01 and right.points[:, 0].min() > 11.99
    assert erase_along(sk, np.array([[10.0, 0.0]]), radius=30.0)["s0"] == ()


def test_hit_testing_and_translate() -> None:
    sk = _sketch([[0, 0], [20, 0]], [[10, -5], [10, 5]], width=2.0)
    assert stroke_at(sk, 10, 0.5, 1.0) == "s1"  # the topmost
    assert stroke_at(sk, 3, 1.5, 1.0) == "s0"
    assert stroke_at(sk, 3, 5, 1.0) is None
    moved = translate(sk, ["s0"], 5, 1)["s0"][0]
    assert moved.id == "s0" and moved.points.tolist() == [[5, 1], [25, 1]]
    assert selection_bbox(sk, ["s1"]) == (9, -6, 11, 6)


def test_a_lasso_cut_through_polygon_vertices_meets_them_exactly() -> None:
    """A diagonal through two corners of the lasso: three pieces meeting at the corners; only
    the one inside is selected. A stroke that only touches a corner is touched (whole) but
    has nothing inside (cut)."""
    diag = _sketch([[-5, -5], [15, 15]])
    r = lasso_select(diag, SQUARE, "cut")
    pieces = r.replacements["s0"]
    assert [p.points.tolist() for p in pieces] == [
        [[-5, -5], [0, 0]],
        [[0, 0], [10, 10]],
        [[10, 10], [15, 15]],
    ]
    assert r.selected_ids == (pieces[1].id,)
    corner = _sketch([[-5, 5], [5, -5]])
    assert lasso_select(corner, SQUARE, "whole").selected_ids == ("s0",)
    assert lasso_select(corner, SQUARE, "cut").selected_ids == ()
    # A stroke vertex lying on a lasso vertex: cut there, no sliver.
    bend = _sketch([[-5, 0], [0, 0], [5, 5]])
    r = lasso_select(bend, SQUARE, "cut")
    assert [p.points.tolist() for p in r.replacements["s0"]] == [
        [[-5, 0], [0, 0]],
        [[0, 0], [5, 5]],
    ]


def test_a_lasso_cut_along_an_edge_keeps_the_overlap_apart() -> None:
    """A stroke running along the lasso's bottom edge is cut where the overlap starts and
    ends: the parts off the edge are outside, the overlap counts as inside."""
    along = _sketch([[-5, 0], [15, 0]])
    r = lasso_select(along, SQUARE, "cut")
    pieces = r.replacements["s0"]
    assert [p.points.tolist() for p in pieces] == [
        [[-5, 0], [0, 0]],
        [[0, 0], [10, 0]],
        [[10, 0], [15, 0]],
    ]
    assert r.selected_ids == (pieces[1].id,)
    entering = _sketch([[5, 5], [5, 0], [15, 0]])  # comes from inside, leaves along the edge
    r = lasso_select(entering, SQUARE, "cut")
    assert [p.points.tolist() for p in r.replacements["s0"]] == [
        [[5, 5], [5, 0], [10, 0]],
        [[10, 0], [15, 0]],
    ]


def test_the_partition_centre_is_the_mean_of_all_points_of_an_asymmetric_sketch() -> None:
    """31 points on a line from x = 0 to 30 and two at x = 100: the centroid (mean of all 33
    points) is at x ≈ 20.15, far from the bounding box's centre (50) and from the mean of the
    strokes' own centres (57.5). A vertical boundary through it cuts the dense line there."""
    dense = np.stack([np.arange(31.0), np.zeros(31)], axis=1)
    sk = _sketch(dense, [[100, -5], [100, 5]])
    mean_x = (dense[:, 0].sum() + 200) / 33
    part = partition_sketch(sk, 2, math.pi / 2)
    assert part.center == pytest.approx((mean_x, 0.0))
    line = [p for p in part.pieces if p.source_id == "s0"]
    assert len(line) == 2
    assert line[0].stroke.points[-1].tolist() == pytest.approx([mean_x, 0.0])
    assert line[1].stroke.points[0].tolist() == pytest.approx([mean_x, 0.0])
    assert line[0].sector != line[1].sector
