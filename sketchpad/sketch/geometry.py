"""Pure geometry on sketches: lasso, partition, erasers, hit-testing (DESIGN §3).

Everything works in canvas coordinates (logical pixels, y down). Angles are radians
measured with ``atan2(y − cy, x − cx)``, so they grow clockwise on screen. Sector k of
an n-partition covers the angles [θ₁ + k·2π/n, θ₁ + (k+1)·2π/n).

Functions that change strokes return *replacements* — ``{stroke id: new strokes}`` —
ready for :meth:`sketchpad.sketch.edit.SketchEdit.replace`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .model import Sketch, Stroke
from .polyline import (
    CrossingFn,
    Piece,
    cross2,
    cut_stroke,
    polyline_segments,
    segment_point_distance,
    segments_distance,
)

LassoMode = Literal["whole", "cut"]
Replacements = dict[str, tuple[Stroke, ...]]

_TAU = 2.0 * math.pi


# -- polygons ------------------------------------------------------------------------------
def _as_polygon(polygon: np.ndarray | Iterable[Iterable[float]]) -> np.ndarray:
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(poly) < 3:
        raise ValueError(f"a lasso polygon needs at least 3 vertices, got {len(poly)}")
    if not np.all(np.isfinite(poly)):
        raise ValueError("the lasso polygon has NaN or infinite vertices")
    return poly


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon.

    Args:
        points: (M, 2) canvas coordinates.
        polygon: (K, 2) vertices of a closed polygon (the last edge joins back to the first).

    Returns:
        (M,) bool.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = _as_polygon(polygon)
    x, y = pts[:, 0:1], pts[:, 1:2]  # (M,1)
    x0, y0 = poly[:, 0], poly[:, 1]  # (K,)
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > y) != (y1 > y)  # (M,K)
    with np.errstate(all="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    hits = straddles & (x < x_cross)
    return (np.count_nonzero(hits, axis=1) % 2) == 1


def _polygon_crossings(polygon: np.ndarray) -> CrossingFn:
    p = polygon
    q = np.roll(polygon, -1, axis=0)

    def crossings(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = (b - a)[:, None, :]  # (S,1,2)
        f = (q - p)[None, :, :]  # (1,K,2)
        pa = p[None, :, :] - a[:, None, :]  # (S,K,2)
        den = cross2(e, f)
        with np.errstate(all="ignore"):
            t = cross2(pa, f) / den
            s = cross2(pa, e) / den
        # Closed edges: a crossing through a polygon vertex is found by both of its edges, which
        # is harmless (cut_stroke keeps a crossing point only where the side changes) and
        # robust when one of the two edges is nearly collinear with the segment.
        ok = (den != 0) & (t > 0) & (t < 1) & (s >= 0) & (s <= 1)
        si, _ = np.nonzero(ok)
        # A segment running along an edge is cut where the overlap starts and ends, so the
        # parts off the edge are classified on their own.
        collinear = (den == 0) & (cross2(pa, e) == 0)
        ee = np.einsum("sid,sid->si", e, e)
        with np.errstate(all="ignore"):
            tp = np.einsum("skd,skd->sk", pa, np.broadcast_to(e, pa.shape)) / ee
            tq = np.einsum("skd,skd->sk", pa + f, np.broadcast_to(e, pa.shape)) / ee
        ends_s, ends_t = [si], [t[ok]]
        for tt in (tp, tq):
            hit = collinear & (tt > 0) & (tt < 1)
            ends_s.append(np.nonzero(hit)[0])
            ends_t.append(tt[hit])
        return np.concatenate(ends_s), np.concatenate(ends_t)

    return crossings


@dataclass(frozen=True)
class LassoResult:
    """Outcome of a lasso.

    Attributes:
        selected_ids: ids selected after ``replacements`` are applied.
        replacements: cut mode only: each stroke crossing the polygon → its pieces (new ids).
    """

    selected_ids: tuple[str, ...]
    replacements: Replacements


def lasso_select(sketch: Sketch, polygon: np.ndarray, mode: LassoMode = "whole") -> LassoResult:
    """Select strokes with a closed lasso polygon (canvas coordinates, (K, 2)).

    ``whole``: every stroke the polygon touches (a point inside, or a segment crossing it).
    ``cut``: strokes crossing the polygon are cut at it; the inside pieces and the strokes
    wholly inside are selected.
    """
    poly = _as_polygon(polygon)
    crossings = _polygon_crossings(poly)

    def classify(p: np.ndarray) -> np.ndarray:
        return points_in_polygon(p, poly).astype(np.int64)

    selected: list[str] = []
    replacements: Replacements = {}
    for stroke in sketch.strokes:
        if mode == "whole":
            inside = bool(classify(stroke.points).any())
            if not inside and len(stroke) > 1:
                inside = len(crossings(stroke.points[:-1], stroke.points[1:])[0]) > 0
            if inside:
                selected.append(stroke.id)
            continue
        pieces = cut_stroke(stroke, crossings, classify)
        if len(pieces) > 1:
            replacements[stroke.id] = tuple(p.stroke for p in pieces)
        selected.extend(p.stroke.id for p in pieces if p.cls == 1)
    return LassoResult(tuple(selected), replacements)


# -- partition -----------------------------------------------------------------------------
def sector_boundary_angles(n: int, theta1: float) -> np.ndarray:
    """(n,) angles (radians, in [0, 2π)) of the boundary rays θₖ = θ₁ + k·2π/n."""
    _check_n(n)
    return np.mod(theta1 + np.arange(n) * (_TAU / n), _TAU)


def _check_n(n: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"the number of sectors must be a positive integer, got {n!r}")


def _sectors(points: np.ndarray, center: tuple[float, float], n: int, theta1: float) -> np.ndarray:
    ang = np.arctan2(points[:, 1] - center[1], points[:, 0] - center[0])
    rel = np.mod(ang - theta1, _TAU)
    return np.minimum((rel // (_TAU / n)).astype(np.int64), n - 1)


def sector_of_point(x: float, y: float, center: tuple[float, float], n: int, theta1: float) -> int:
    """Index of the sector containing canvas point (x, y)."""
    _check_n(n)
    return int(_sectors(np.array([[x, y]], dtype=np.float64), center, n, theta1)[0])


def _ray_crossings(center: tuple[float, float], n: int, theta1: float) -> CrossingFn:
    c = np.asarray(center, dtype=np.float64)
    ang = sector_boundary_angles(n, theta1)
    dirs = np.stack([np.cos(ang), np.sin(ang)], axis=1)  # (n,2)

    def crossings(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = (b - a)[:, None, :]  # (S,1,2)
        d = dirs[None, :, :]  # (1,n,2)
        ca = (c - a)[:, None, :]  # (S,1,2)
        den = cross2(e, d)  # (S,n)
        with np.errstate(all="ignore"):
            t = cross2(ca, d) / den
            u = cross2(ca, e) / den
        ok = (den != 0) & (t > 0) & (t < 1) & (u >= 0)
        si, _ = np.nonzero(ok)
        return si, t[ok]

    return crossings


@dataclass(frozen=True)
class PartitionPiece:
    """A stroke, or a piece of one, lying in one sector.

    Attributes:
        source_id: id of the stroke it comes from.
        sector: sector index in [0, n).
        stroke: the piece (the source stroke itself, same id, when it was not cut).
        origin: (N,) int64 index of each point in the source stroke, −1 for inserted cut points.
    """

    source_id: str
    sector: int
    stroke: Stroke
    origin: np.ndarray


@dataclass(frozen=True)
class Partition:
    """The sketch split into n sectors around ``center`` (seed 000 §4.5)."""

    center: tuple[float, float]
    n: int
    theta1: float
    pieces: tuple[PartitionPiece, ...]

    @property
    def replacements(self) -> Replacements:
        """Strokes cut into two or more pieces → the pieces, for ``SketchEdit.replace``."""
        groups: dict[str, list[Stroke]] = {}
        for p in self.pieces:
            groups.setdefault(p.source_id, []).append(p.stroke)
        return {sid: tuple(v) for sid, v in groups.items() if len(v) > 1}

    def sector_ids(self, k: int) -> tuple[str, ...]:
        """Ids (after the replacements are applied) of the pieces in sector k."""
        return tuple(p.stroke.id for p in self.pieces if p.sector == k)

    def sector_sketch(self, sketch: Sketch, k: int) -> Sketch:
        """Sector k as a sketch on the same canvas (a part query keeps the whole framing)."""
        return sketch.with_strokes(p.stroke for p in self.pieces if p.sector == k)


def partition_sketch(
    sketch: Sketch, n: int, theta1: float = 0.0, center: tuple[float, float] | None = None
) -> Partition:
    """Split every stroke at the n boundary rays from ``center`` (default: the centroid of all
    points; the canvas centre for an empty sketch)."""
    _check_n(n)
    if center is None:
        center = sketch.centroid() or (sketch.width / 2.0, sketch.height / 2.0)
    if n == 1:
        pieces = tuple(
            PartitionPiece(s.id, 0, s, np.arange(len(s), dtype=np.int64)) for s in sketch.strokes
        )
        return Partition(center, 1, float(theta1), pieces)
    crossings = _ray_crossings(center, n, theta1)

    def classify(p: np.ndarray) -> np.ndarray:
        return _sectors(p, center, n, theta1)

    out: list[PartitionPiece] = []
    for stroke in sketch.strokes:
        for piece in cut_stroke(stroke, crossings, classify):
            out.append(PartitionPiece(stroke.id, piece.cls, piece.stroke, piece.origin))
    return Partition((float(center[0]), float(center[1])), int(n), float(theta1), tuple(out))


# -- erasers, hit-testing, moves -------------------------------------------------------------
def _near(stroke: Stroke, path: np.ndarray, reach: float) -> bool:
    x0, y0, x1, y1 = stroke.bbox()
    lo, hi = path.min(axis=0) - reach, path.max(axis=0) + reach
    return not (x1 < lo[0] or x0 > hi[0] or y1 < lo[1] or y0 > hi[1])


def _as_path(path: np.ndarray) -> np.ndarray:
    p = np.asarray(path, dtype=np.float64).reshape(-1, 2)
    if len(p) == 0:
        raise ValueError("the eraser path is empty")
    return p


def strokes_hit(sketch: Sketch, path: np.ndarray, radius: float) -> tuple[str, ...]:
    """Ids of strokes that pass within ``radius`` (+ half their width) of the polyline ``path``."""
    p = _as_path(path)
    c, d = polyline_segments(p)
    hit: list[str] = []
    for s in sketch.strokes:
        reach = radius + s.width / 2.0
        if not _near(s, p, reach):
            continue
        a, b = polyline_segments(s.points)
        if segments_distance(a, b, c, d).min() <= reach:
            hit.append(s.id)
    return tuple(hit)


def erase_along(sketch: Sketch, path: np.ndarray, radius: float) -> Replacements:
    """Partial eraser: cut away the parts of strokes within ``radius`` of the polyline ``path``.

    Returns:
        Replacements for the strokes touched: the pieces left outside the eraser (new ids),
        or an empty tuple when nothing of a stroke is left.
    """
    p = _as_path(path)
    c, d = polyline_segments(p)
    step = max(radius / 4.0, 1e-3)
    out: Replacements = {}
    for s in sketch.strokes:
        if not _near(s, p, radius):
            continue
        pts = s.points
        a, b = polyline_segments(pts)
        if segments_distance(a, b, c, d).min() > radius:
            continue
        dense = _densify_near(s, c, d, radius, step)
        erased = segment_point_distance(c, d, dense.points).min(axis=1) <= radius
        if not erased.any():
            continue
        kept: list[Stroke] = []
        idx = np.nonzero(~erased)[0]
        if len(idx):
            runs = np.split(idx, np.nonzero(np.diff(idx) > 1)[0] + 1)
            kept = [dense.subset(r) for r in runs]
        out[s.id] = tuple(kept)
    return out


def _densify_near(s: Stroke, c: np.ndarray, d: np.ndarray, radius: float, step: float) -> Stroke:
    """Subdivide the segments of ``s`` that come within ``radius`` of the path, so the eraser
    cuts close to its edge; segments far from the path are left alone."""
    pts = s.points
    if len(pts) == 1:
        return s
    a, b = pts[:-1], pts[1:]
    near = segments_distance(a, b, c, d).min(axis=1) <= radius
    lengths = np.linalg.norm(b - a, axis=1)
    counts = np.where(near, np.maximum(1, np.ceil(lengths / step)).astype(np.int64), 1)
    seg = np.repeat(np.arange(len(a)), counts)
    within = np.arange(len(seg)) - np.repeat(np.cumsum(counts) - counts, counts)
    t = within / np.repeat(counts, counts)
    seg = np.concatenate([seg, [len(pts) - 1]])
    t = np.concatenate([t, [0.0]])
    nxt = np.minimum(seg + 1, len(pts) - 1)

    def lerp(v: np.ndarray | None) -> np.ndarray | None:
        if v is None:
            return None
        v = v.astype(np.float64)
        return v[seg] + t * (v[nxt] - v[seg])

    pressure = lerp(s.pressure)
    return s.replace(
        points=pts[seg] + t[:, None] * (pts[nxt] - pts[seg]),
        times=lerp(s.times),
        pressure=None if pressure is None else np.clip(pressure, 0.0, 1.0),
        point_labels=None if s.point_labels is None else s.point_labels[seg],
    )


def stroke_at(sketch: Sketch, x: float, y: float, tolerance: float) -> str | None:
    """Id of the topmost stroke within ``tolerance`` (+ half its width) of (x, y), or None."""
    q = np.array([[x, y]], dtype=np.float64)
    for s in reversed(sketch.strokes):
        reach = tolerance + s.width / 2.0
        if not _near(s, q, reach):
            continue
        a, b = polyline_segments(s.points)
        if segment_point_distance(a, b, q).min() <= reach:
            return s.id
    return None


def translate(sketch: Sketch, ids: Iterable[str], dx: float, dy: float) -> Replacements:
    """Replacements moving the strokes ``ids`` by (dx, dy); moved strokes keep their ids."""
    wanted = set(ids)
    return {s.id: (s.translated(dx, dy),) for s in sketch.strokes if s.id in wanted}


def selection_bbox(sketch: Sketch, ids: Iterable[str]) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of the strokes ``ids`` including half their pen width; None if none."""
    wanted = set(ids)
    boxes = [
        (x0 - s.width / 2, y0 - s.width / 2, x1 + s.width / 2, y1 + s.width / 2)
        for s in sketch.strokes
        if s.id in wanted
        for (x0, y0, x1, y1) in [s.bbox()]
    ]
    if not boxes:
        return None
    arr = np.array(boxes)
    return (
        float(arr[:, 0].min()),
        float(arr[:, 1].min()),
        float(arr[:, 2].max()),
        float(arr[:, 3].max()),
    )


__all__ = [
    "LassoMode",
    "LassoResult",
    "Partition",
    "PartitionPiece",
    "Piece",
    "erase_along",
    "lasso_select",
    "partition_sketch",
    "points_in_polygon",
    "sector_boundary_angles",
    "sector_of_point",
    "selection_bbox",
    "stroke_at",
    "strokes_hit",
    "translate",
]
