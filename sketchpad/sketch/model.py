"""Stroke and Sketch: validated, immutable values over numpy (DESIGN.md §3).

Coordinates are canvas coordinates in logical pixels, x to the right, y down.
Arrays are copied at construction, converted to the documented dtype and made
read-only, so a Stroke or Sketch can be shared freely (undo history, workers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

DEFAULT_PEN_WIDTH = 3.0
DEFAULT_COLOR = "#000000"


def new_stroke_id() -> str:
    """A fresh, globally unique stroke id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _optional_per_point(name: str, values: Any, n: int, dtype: type) -> np.ndarray | None:
    if values is None:
        return None
    a: np.ndarray = np.array(values, dtype=dtype, copy=True)
    if a.shape != (n,):
        raise ValueError(f"Stroke.{name} must have shape ({n},) to match the points, got {a.shape}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError(f"Stroke.{name} contains NaN or infinite values")
    return _frozen(a)


def _is_hex_color(s: str) -> bool:
    if len(s) not in (7, 9) or s[0] != "#":
        return False
    try:
        int(s[1:], 16)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, eq=False)
class Stroke:
    """One pen-down → pen-up trace.

    Attributes:
        points: (N, 2) float64 canvas coordinates (x, y), N ≥ 1, all finite.
        times: optional (N,) float64 milliseconds since the drawing started.
        pressure: optional (N,) float64 pen pressure in [0, 1].
        point_labels: optional (N,) int64 per-point labels (e.g. SPG part indices).
        width: display pen width in canvas pixels, > 0.
        color: display colour as ``#rrggbb`` (or ``#rrggbbaa``).
        id: stable identifier, unique within a sketch; kept across edits that
            only move the stroke, new ids for pieces of a cut stroke.
        label: optional category of the whole stroke (scene labelling).
    """

    points: np.ndarray
    times: np.ndarray | None = None
    pressure: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    width: float = DEFAULT_PEN_WIDTH
    color: str = DEFAULT_COLOR
    id: str = field(default_factory=new_stroke_id)
    label: str | None = None

    def __post_init__(self) -> None:
        try:
            pts = np.array(self.points, dtype=np.float64, copy=True)
        except (TypeError, ValueError) as e:
            raise ValueError(f"Stroke.points is not a numeric array: {e}") from e
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"Stroke.points must have shape (N, 2), got {pts.shape}")
        if pts.shape[0] < 1:
            raise ValueError("Stroke.points is empty: a stroke needs at least one point")
        if not np.all(np.isfinite(pts)):
            raise ValueError("Stroke.points contains NaN or infinite coordinates")
        n = pts.shape[0]
        object.__setattr__(self, "points", _frozen(pts))
        object.__setattr__(self, "times", _optional_per_point("times", self.times, n, np.float64))
        pressure = _optional_per_point("pressure", self.pressure, n, np.float64)
        if pressure is not None and (pressure.min() < 0 or pressure.max() > 1):
            raise ValueError("Stroke.pressure must lie in [0, 1]")
        object.__setattr__(self, "pressure", pressure)
        object.__setattr__(
            self,
            "point_labels",
            _optional_per_point("point_labels", self.point_labels, n, np.int64),
        )
        width = float(self.width)
        if not np.isfinite(width) or width <= 0:
            raise ValueError(f"Stroke.width must be a positive number, got {self.width!r}")
        object.__setattr__(self, "width", width)
        if not isinstance(self.color, str) or not _is_hex_color(self.color):
            raise ValueError(f"Stroke.color must be '#rrggbb', got {self.color!r}")
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Stroke.id must be a non-empty string, got {self.id!r}")
        if self.label is not None and not isinstance(self.label, str):
            raise ValueError(f"Stroke.label must be a string or None, got {self.label!r}")

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stroke):
            return NotImplemented
        return (
            self.id == other.id
            and self.width == other.width
            and self.color == other.color
            and self.label == other.label
            and _arrays_equal(self.points, other.points)
            and _arrays_equal(self.times, other.times)
            and _arrays_equal(self.pressure, other.pressure)
            and _arrays_equal(self.point_labels, other.point_labels)
        )

    __hash__ = None  # type: ignore[assignment]  # equal-by-value, not hashable

    def replace(self, **changes: Any) -> Stroke:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def translated(self, dx: float, dy: float) -> Stroke:
        """The same stroke (same id) moved by (dx, dy) canvas pixels."""
        return replace(self, points=self.points + np.array([dx, dy]))

    def subset(self, index: np.ndarray | slice, *, new_id: bool = True) -> Stroke:
        """A stroke made of some of this stroke's points, with per-point data kept."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return replace(
            self,
            points=self.points[index],
            times=pick(self.times),
            pressure=pick(self.pressure),
            point_labels=pick(self.point_labels),
            id=new_stroke_id() if new_id else self.id,
        )

    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the points, not counting the pen width."""
        lo = self.points.min(axis=0)
        hi = self.points.max(axis=0)
        return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def _arrays_equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))


@dataclass(frozen=True, eq=False)
class Sketch:
    """A drawing: strokes on a canvas, plus metadata; optionally raster-only.

    Attributes:
        strokes: the strokes in drawing order; ids are unique.
        width, height: canvas size in logical pixels (> 0).
        metadata: JSON-serialisable facts about the drawing (category, source
            file, part names, ...). Copied at construction.
        raster: for a bitmap sketch, (H, W) uint8 ink coverage (0 = paper,
            255 = full ink) with H, W = height, width. A raster-only sketch has
            no strokes; only pixel-level operations apply to it.
    """

    strokes: tuple[Stroke, ...] = ()
    width: float = 800.0
    height: float = 600.0
    metadata: Mapping[str, Any] = field(default_factory=dict)
    raster: np.ndarray | None = None

    def __post_init__(self) -> None:
        strokes = tuple(self.strokes)
        for i, s in enumerate(strokes):
            if not isinstance(s, Stroke):
                raise ValueError(f"Sketch.strokes[{i}] is a {type(s).__name__}, not a Stroke")
        ids = [s.id for s in strokes]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"Sketch.strokes has duplicate stroke id {dup!r}")
        object.__setattr__(self, "strokes", strokes)
        for name in ("width", "height"):
            v = float(getattr(self, name))
            if not np.isfinite(v) or v <= 0:
                raise ValueError(
                    f"Sketch.{name} must be a positive number, got {getattr(self, name)!r}"
                )
            object.__setattr__(self, name, v)
        object.__setattr__(self, "metadata", dict(self.metadata))
        if self.raster is not None:
            r = np.array(self.raster, dtype=np.uint8, copy=True)
            if r.ndim != 2:
                raise ValueError(f"Sketch.raster must have shape (H, W), got {r.shape}")
            if strokes:
                raise ValueError(
                    "Sketch.raster is for raster-only sketches: it cannot have strokes"
                )
            if (r.shape[0], r.shape[1]) != (round(self.height), round(self.width)):
                raise ValueError(
                    f"Sketch.raster shape {r.shape} does not match the canvas "
                    f"{self.height:g}×{self.width:g} (H×W)"
                )
            object.__setattr__(self, "raster", _frozen(r))

    @property
    def is_raster(self) -> bool:
        return self.raster is not None

    def __len__(self) -> int:
        return len(self.strokes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sketch):
            return NotImplemented
        return (
            self.strokes == other.strokes
            and self.width == other.width
            and self.height == other.height
            and dict(self.metadata) == dict(other.metadata)
            and _arrays_equal(self.raster, other.raster)
        )

    __hash__ = None  # type: ignore[assignment]  # equal-by-value, not hashable

    @property
    def num_points(self) -> int:
        return sum(len(s) for s in self.strokes)

    def replace(self, **changes: Any) -> Sketch:
        return replace(self, **changes)

    def with_strokes(self, strokes: Iterable[Stroke]) -> Sketch:
        """Same canvas and metadata, other strokes."""
        return replace(self, strokes=tuple(strokes))

    def index_of(self, stroke_id: str) -> int:
        for i, s in enumerate(self.strokes):
            if s.id == stroke_id:
                return i
        raise KeyError(stroke_id)

    def subset(self, stroke_ids: Iterable[str]) -> Sketch:
        """The strokes with these ids (in drawing order), same canvas: a part of the sketch."""
        keep = set(stroke_ids)
        return self.with_strokes(s for s in self.strokes if s.id in keep)

    def all_points(self) -> np.ndarray:
        """(P, 2) float64: every stroke's points, concatenated in drawing order."""
        if not self.strokes:
            return np.zeros((0, 2), dtype=np.float64)
        return np.concatenate([s.points for s in self.strokes], axis=0)

    def bbox(self) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1) of all stroke points, or of a raster sketch's ink; None if empty."""
        if self.raster is not None:
            ys, xs = np.nonzero(self.raster)
            if xs.size == 0:
                return None
            return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        if not self.strokes:
            return None
        pts = self.all_points()
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))

    def centroid(self) -> tuple[float, float] | None:
        """Mean of all stroke points (DESIGN §3, partition centre); None if there are none."""
        pts = self.all_points()
        if pts.shape[0] == 0:
            return None
        c = pts.mean(axis=0)
        return (float(c[0]), float(c[1]))


def sketch_from_polylines(
    polylines: Sequence[np.ndarray | Sequence[Sequence[float]]],
    *,
    width: float | None = None,
    height: float | None = None,
    margin: float = 0.0,
    **sketch_fields: Any,
) -> Sketch:
    """Build a Sketch from (N, 2) point lists; the canvas defaults to the points' extent.

    With ``margin`` > 0 the points are shifted so that their bounding box starts at
    (margin, margin); the canvas then covers the box plus the margin on each side.
    """
    arrays = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polylines]
    arrays = [a for a in arrays if a.shape[0] > 0]
    if arrays and (width is None or height is None or margin):
        allp = np.concatenate(arrays)
        lo, hi = allp.min(axis=0), allp.max(axis=0)
        if margin:
            arrays = [a - lo + margin for a in arrays]
            lo, hi = np.full(2, margin), hi - lo + margin
        width = width if width is not None else max(float(hi[0]) + margin, 1.0)
        height = height if height is not None else max(float(hi[1]) + margin, 1.0)
    strokes = tuple(Stroke(points=a) for a in arrays)
    return Sketch(strokes=strokes, width=width or 800.0, height=height or 600.0, **sketch_fields)
