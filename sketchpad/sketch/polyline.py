"""Cutting a stroke where it crosses a boundary (the shared mechanism of partition, lasso-cut
and the partial eraser).

A boundary is described by two vectorised functions: one gives the parameters t ∈ (0, 1)
at which each segment crosses it, the other classifies points (sector index, inside/outside).
The stroke is cut at every crossing where the class changes; the cut point is inserted
into both pieces, so consecutive pieces meet exactly on the boundary. Every original point
ends up in exactly one piece (``origin`` records which).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .model import Stroke

#: (A (S,2), B (S,2)) -> (seg_index (C,), t (C,)): crossings of segment A[s]→B[s] at A + t(B−A).
CrossingFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
#: (P (M,2)) -> (M,) int64 class of each point.
ClassifyFn = Callable[[np.ndarray], np.ndarray]

_T_EPS = 1e-12


@dataclass(frozen=True)
class Piece:
    """One piece of a cut stroke.

    Attributes:
        cls: the class (sector, 1 = inside / 0 = outside) the whole piece belongs to.
        stroke: the piece; a stroke that was not cut is returned as is (same id).
        origin: (N,) int64 index of each point in the source stroke, −1 for an inserted cut point.
    """

    cls: int
    stroke: Stroke
    origin: np.ndarray


def cross2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z-component of the 2-D cross product, broadcasting over leading axes."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _interp(values: np.ndarray | None, seg: np.ndarray, t: np.ndarray) -> np.ndarray | None:
    if values is None:
        return None
    v = values.astype(np.float64)
    nxt = np.minimum(seg + 1, len(values) - 1)
    return v[seg] + t * (v[nxt] - v[seg])


def cut_stroke(stroke: Stroke, crossings: CrossingFn, classify: ClassifyFn) -> list[Piece]:
    """Cut ``stroke`` wherever its class changes along it.

    Returns:
        Pieces in drawing order. One piece (the stroke itself) if it never changes class.
    """
    pts = stroke.points
    n = len(pts)
    if n == 1:
        return [Piece(int(classify(pts)[0]), stroke, np.zeros(1, dtype=np.int64))]

    # Vertices in order along the stroke: the original points and the crossing points,
    # each described by (segment index, parameter t); original point i is (i, 0).
    seg_x, t_x = crossings(pts[:-1], pts[1:])
    keep = (t_x > _T_EPS) & (t_x < 1 - _T_EPS)
    seg_x, t_x = seg_x[keep], t_x[keep]
    seg = np.concatenate([np.arange(n, dtype=np.int64), seg_x.astype(np.int64)])
    t = np.concatenate([np.zeros(n), t_x])
    is_orig = np.concatenate([np.ones(n, bool), np.zeros(len(t_x), bool)])
    order = np.lexsort((~is_orig, t, seg))  # by segment, then t; an original point first
    seg, t, is_orig = seg[order], t[order], is_orig[order]
    nxt = np.minimum(seg + 1, n - 1)
    verts = pts[seg] + t[:, None] * (pts[nxt] - pts[seg])
    verts[is_orig] = pts[seg[is_orig]]  # exact coordinates for original points

    # Class of each interval between consecutive vertices: the majority of three samples, so
    # that one sample lying on the boundary (a polygon vertex, the centre) cannot decide it.
    # A zero-length interval has no side of its own: it takes its neighbour's class.
    cls = _interval_classes(verts, classify)
    zero = np.all(verts[:-1] == verts[1:], axis=1)
    if zero.all():
        cls[:] = classify(verts[:1])[0]
    elif zero.any():
        idx = np.where(~zero, np.arange(len(cls)), -1)
        np.maximum.accumulate(idx, out=idx)
        first = int(np.argmax(~zero))
        idx[idx < 0] = first
        cls = cls[idx]

    run_starts = np.concatenate([[0], np.nonzero(np.diff(cls))[0] + 1])
    if len(run_starts) == 1:
        return [Piece(int(cls[0]), stroke, np.arange(n, dtype=np.int64))]

    origin_all = np.where(is_orig, seg, -1)
    times = _interp(stroke.times, seg, t)
    pressure = _interp(stroke.pressure, seg, t)
    labels = None if stroke.point_labels is None else stroke.point_labels[seg]

    pieces: list[Piece] = []
    run_ends = np.concatenate([run_starts[1:], [len(cls)]])  # exclusive interval index
    for r, (a, b) in enumerate(zip(run_starts, run_ends, strict=False)):
        # Interval a..b-1 spans vertices a..b. The shared vertex at a run boundary is an
        # original point (the earlier piece keeps it; the later one gets a copy) or a cut point.
        # Crossing points inside a run (the boundary touched, not crossed) are dropped.
        idx = np.arange(a, b + 1)
        idx = idx[is_orig[idx] | (idx == a) | (idx == b)]
        origin = origin_all[idx].copy()
        if r > 0 and origin[0] >= 0:
            origin[0] = -1
        piece = Stroke(
            points=verts[idx],
            times=None if times is None else times[idx],
            pressure=None if pressure is None else np.clip(pressure[idx], 0.0, 1.0),
            point_labels=None if labels is None else labels[idx],
            width=stroke.width,
            color=stroke.color,
            label=stroke.label,
        )
        pieces.append(Piece(int(cls[a]), piece, origin))
    return pieces


def _interval_classes(verts: np.ndarray, classify: ClassifyFn) -> np.ndarray:
    a, d = verts[:-1], verts[1:] - verts[:-1]
    c1, c2, c3 = (classify(a + f * d).astype(np.int64) for f in (0.25, 0.5, 0.75))
    return np.where((c2 == c1) | (c2 == c3), c2, np.where(c1 == c3, c1, c2))


def segment_point_distance(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Distance from points p (P,2) to segments a→b (S,2): (P, S)."""
    e = b - a  # (S,2)
    ee = np.einsum("sd,sd->s", e, e)
    ap = p[:, None, :] - a[None, :, :]  # (P,S,2)
    with np.errstate(all="ignore"):
        u = np.where(ee > 0, np.einsum("psd,sd->ps", ap, e) / np.where(ee > 0, ee, 1), 0.0)
    u = np.clip(u, 0.0, 1.0)
    d = ap - u[..., None] * e[None, :, :]
    return np.sqrt(np.einsum("psd,psd->ps", d, d))


def segments_distance(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Distance between every segment a→b (S,2) and every segment c→d (M,2): (S, M)."""
    d1 = segment_point_distance(c, d, a)  # (S, M): endpoints a to segments c→d
    d2 = segment_point_distance(c, d, b)
    d3 = segment_point_distance(a, b, c).T  # (S, M)
    d4 = segment_point_distance(a, b, d).T
    dist = np.minimum(np.minimum(d1, d2), np.minimum(d3, d4))
    # Proper intersections have distance 0.
    e = (b - a)[:, None, :]
    f = (d - c)[None, :, :]
    ca = c[None, :, :] - a[:, None, :]
    den = cross2(e, f)
    with np.errstate(all="ignore"):
        t = cross2(ca, f) / den
        s = cross2(ca, e) / den
    hit = (den != 0) & (t >= 0) & (t <= 1) & (s >= 0) & (s <= 1)
    return np.where(hit, 0.0, dist)


def polyline_segments(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segments of a polyline as (A, B); a single point is one zero-length segment."""
    if len(points) == 1:
        return points, points
    return points[:-1], points[1:]
