"""Automatic spatial grouping of strokes (sketchpad.sketch.grouping)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sketchpad.sketch.grouping import DEFAULT_GAP_FRACTION, default_gap, group_strokes
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.sketch.polyline import polyline_segments, segments_distance


def _sketch(*polylines: list[tuple[float, float]], ids: list[str] | None = None) -> Sketch:
    ids = ids or [f"s{i}" for i in range(len(polylines))]
    strokes = [Stroke(points=np.array(p, float), id=i) for p, i in zip(polylines, ids, strict=True)]
    return Sketch(strokes=tuple(strokes), width=1000, height=1000)


def _circle(cx: float, cy: float, r: float, n: int = 24) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n)
    return list(zip(cx + r * np.cos(t), cy + r * np.sin(t), strict=True))


def test_two_well_separated_clusters_give_two_groups() -> None:
    dog = [_circle(100, 100, 40), [(90, 140), (90, 200)], [(110, 140), (110, 200)]]
    frisbee = [_circle(700, 150, 30), [(680, 150), (720, 150)]]
    # Interleave the drawing order: groups follow the first stroke, ids keep sketch order.
    sk = _sketch(dog[0], frisbee[0], dog[1], frisbee[1], dog[2])
    assert group_strokes(sk) == (("s0", "s2", "s4"), ("s1", "s3"))


def test_a_chain_of_touching_strokes_is_one_group() -> None:
    chain = [[(i * 100.0, 0.0), (i * 100.0 + 100.0, 0.0)] for i in range(8)]
    sk = _sketch(*reversed(chain))
    assert group_strokes(sk, gap=0.0) == (tuple(f"s{i}" for i in range(8)),)


def test_crossing_strokes_link_even_with_no_vertex_near() -> None:
    sk = _sketch([(0, 0), (100, 100)], [(0, 100), (100, 0)])  # an X: only the middles meet
    assert group_strokes(sk, gap=0.0) == (("s0", "s1"),)


def test_gap_is_respected_on_segment_distance() -> None:
    # A point 10 px above the middle of a long segment: its nearest vertex is 50 px away.
    sk = _sketch([(0, 0), (100, 0)], [(50, 10)])
    assert group_strokes(sk, gap=10.0) == (("s0", "s1"),)
    assert group_strokes(sk, gap=9.99) == (("s0",), ("s1",))


def test_default_gap_is_a_fraction_of_the_bbox_diagonal() -> None:
    sk = _sketch([(0, 0), (300, 0)], [(0, 400)])
    assert default_gap(sk) == pytest.approx(DEFAULT_GAP_FRACTION * 500)  # = 25
    near = _sketch([(0, 0), (300, 0)], [(0, 400)], [(150, 24)])
    assert group_strokes(near) == (("s0", "s2"), ("s1",))
    scaled = _sketch([(0, 0), (3000, 0)], [(0, 4000)], [(1500, 240)])  # same, 10× larger
    assert group_strokes(scaled) == group_strokes(near)


def test_empty_raster_and_single() -> None:
    assert group_strokes(Sketch()) == ()
    raster = np.zeros((20, 30), np.uint8)
    raster[5:10, 5:10] = 255
    assert group_strokes(Sketch(width=30, height=20, raster=raster)) == ()
    assert group_strokes(_sketch([(5, 5)])) == (("s0",),)


@pytest.mark.parametrize("gap", [-1.0, math.nan, math.inf, "wide"])
def test_bad_gap(gap: object) -> None:
    with pytest.raises(ValueError, match="gap"):
        group_strokes(_sketch([(0, 0)]), gap=gap)  # type: ignore[arg-type]


def test_500_strokes_fall_into_their_25_objects() -> None:
    rng = np.random.default_rng(0)
    polylines = []
    for k in range(500):  # 25 objects of 20 strokes each (≈ 90 px wide), 250 px apart
        cx, cy = 250.0 * (k % 25 % 5) + 100, 250.0 * (k % 25 // 5) + 100
        start = rng.normal((cx, cy), 10, 2)
        polylines.append(np.cumsum(rng.normal(0, 2, (40, 2)), axis=0) + start)
    sk = _sketch(*polylines)
    groups = group_strokes(sk)  # its speed is measured by `sketchpad bench`, not asserted
    assert sorted(len(g) for g in groups) == [20] * 25


# -- property: the groups are exactly the connected components of "within gap" ---------------

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
coord = st.integers(-30, 30).map(float)  # integers: distances compared exactly against the gap


@st.composite
def sketches(draw: st.DrawFn) -> Sketch:
    n = draw(st.integers(0, 8))
    polylines = [draw(st.lists(st.tuples(coord, coord), min_size=1, max_size=6)) for _ in range(n)]
    return _sketch(*polylines)


def _brute_components(sk: Sketch, gap: float) -> set[frozenset[str]]:
    n = len(sk.strokes)
    segs = [polyline_segments(s.points) for s in sk.strokes]
    adj = [
        [bool((segments_distance(*segs[i], *segs[j]) <= gap).any()) for j in range(n)]
        for i in range(n)
    ]
    seen: set[int] = set()
    comps: set[frozenset[str]] = set()
    for i in range(n):
        if i in seen:
            continue
        stack, comp = [i], set()
        while stack:
            k = stack.pop()
            if k in comp:
                continue
            comp.add(k)
            stack += [j for j in range(n) if adj[k][j] and j not in comp]
        seen |= comp
        comps.add(frozenset(sk.strokes[k].id for k in comp))
    return comps


@SETTINGS
@given(sketches(), st.one_of(st.none(), st.integers(0, 12).map(float)))
def test_groups_partition_the_strokes_into_gap_components(sk: Sketch, gap: float | None) -> None:
    groups = group_strokes(sk, gap=gap)
    order = [s.id for s in sk.strokes]
    flat = [i for g in groups for i in g]
    assert sorted(flat) == sorted(order)  # every stroke in exactly one group
    assert all(g for g in groups)
    for g in groups:  # ids in sketch order
        assert [order.index(i) for i in g] == sorted(order.index(i) for i in g)
    firsts = [order.index(g[0]) for g in groups]  # groups ordered by their first stroke
    assert firsts == sorted(firsts)
    expected = _brute_components(sk, default_gap(sk) if gap is None else gap)
    assert {frozenset(x) for x in groups} == expected
