"""What a query asks: :class:`QuerySpec`, the part it selects, and its key.

A spec holds everything the model sees of a query — the sketch, the part of it that is searched
(strokes, a lasso, a partition sector), words and their weight α, and whether the sketch is
composed of several objects — and nothing else. :meth:`QuerySpec.key` digests exactly that: the
stroke geometry (points, stroke ids, the canvas), a raster sketch's ink, the part, the words, α
and the groups. Labels, colours, pen widths, timings, pressure and metadata are not in it, so
renaming a label or recolouring a stroke gives the same key and never runs the model again.
The threshold is not part of a query at all: scores do not depend on it (see
:mod:`sketchpad.search.scoring`).
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from sketchpad.sketch.geometry import LassoMode
from sketchpad.sketch.model import Sketch


@dataclass(frozen=True)
class StrokesPart:
    """The strokes with these ids (a selection on the canvas)."""

    stroke_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "stroke_ids", tuple(str(i) for i in self.stroke_ids))
        if not self.stroke_ids:
            raise ValueError("StrokesPart.stroke_ids is empty: select at least one stroke")


@dataclass(frozen=True)
class LassoPart:
    """What a closed lasso polygon encloses: whole strokes it touches, or stroke pieces cut at
    its boundary (DESIGN §3).

    Attributes:
        polygon: (K, 2) float64 canvas coordinates, K ≥ 3, finite.
        mode: "whole" or "cut".
    """

    polygon: np.ndarray
    mode: LassoMode = "cut"

    def __post_init__(self) -> None:
        poly = np.array(self.polygon, dtype=np.float64)
        if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
            raise ValueError(f"LassoPart.polygon must be (K ≥ 3, 2), got {poly.shape}")
        if not np.isfinite(poly).all():
            raise ValueError("LassoPart.polygon has non-finite coordinates")
        if self.mode not in ("whole", "cut"):
            raise ValueError(f"LassoPart.mode must be 'whole' or 'cut', got {self.mode!r}")
        poly.setflags(write=False)
        object.__setattr__(self, "polygon", poly)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LassoPart)
            and self.mode == other.mode
            and np.array_equal(self.polygon, other.polygon)
        )

    def __hash__(self) -> int:
        return hash((self.mode, self.polygon.tobytes()))


@dataclass(frozen=True)
class SectorPart:
    """Sector ``k`` of the sketch split into ``n`` sectors about its centroid, the first
    boundary at ``theta`` radians (seed 000 §4.5)."""

    n: int
    k: int
    theta: float = 0.0

    def __post_init__(self) -> None:
        if self.n < 1 or not 0 <= self.k < self.n:
            raise ValueError(f"SectorPart: sector {self.k} of {self.n} does not exist")
        if not math.isfinite(self.theta):
            raise ValueError("SectorPart.theta must be finite")


Part: TypeAlias = StrokesPart | LassoPart | SectorPart


def resolve_part(sketch: Sketch, part: Part) -> Sketch:
    """The part of ``sketch`` that ``part`` selects, on the same canvas (the model draws it
    in the whole sketch's framing).

    Raises:
        ValueError: the part selects nothing.
    """
    from sketchpad.sketch.parts import lasso_part, sector_part

    if isinstance(part, StrokesPart):
        chosen = sketch.subset(part.stroke_ids)
        if not chosen.strokes:
            raise ValueError("the selected strokes are no longer in the sketch")
        return chosen
    if isinstance(part, LassoPart):
        return lasso_part(sketch, part.polygon, part.mode)
    return sector_part(sketch, part.n, part.k, part.theta)


@dataclass(frozen=True)
class QuerySpec:
    """A query: a sketch (or a part of it), words, or both; one object or several.

    Attributes:
        sketch: the whole sketch; None for words alone.
        part: the part searched for (None: the whole sketch).
        text: words added to the sketch (``q = normalise(α·ŝ + (1 − α)·t̂)``, seed 004), or
            searched alone.
        alpha: weight of the sketch against the words, in [0, 1] (1: the sketch only).
        compose: several objects ("a dog beside a frisbee"): the whole sketch and each stroke
            group are searched, their masks united.
        groups: stroke-id groups for ``compose``; None: automatic spatial grouping.
    """

    sketch: Sketch | None
    part: Part | None = None
    text: str | None = None
    alpha: float = 0.5
    compose: bool = False
    groups: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        text = self.text.strip() if self.text else ""
        object.__setattr__(self, "text", text or None)
        if self.sketch is None and self.text is None:
            raise ValueError("a query needs a sketch or some words")
        if self.sketch is not None and not self.sketch.strokes and self.sketch.raster is None:
            raise ValueError("the sketch is empty: draw something, or search with words")
        if self.sketch is None and (self.part is not None or self.compose):
            raise ValueError("a part or a composed query needs a sketch")
        if self.part is not None and self.compose:
            raise ValueError("a part query cannot also be composed")
        if not (isinstance(self.alpha, (int, float)) and 0.0 <= float(self.alpha) <= 1.0):
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        if self.groups is not None:
            object.__setattr__(self, "groups", tuple(tuple(str(i) for i in g) for g in self.groups))

    def key(self) -> str:
        """A digest of what the model sees of this query (see the module docstring): equal
        keys give equal query vectors under the same model."""
        h = hashlib.blake2b(digest_size=16)

        def put(tag: str, data: bytes = b"") -> None:  # length-prefixed: no ambiguity
            h.update(tag.encode() + struct.pack("<Q", len(data)) + data)

        if self.sketch is not None:
            _digest_sketch(put, self.sketch)
        part = self.part
        if isinstance(part, StrokesPart):
            put("part-strokes", "\0".join(part.stroke_ids).encode("utf-8", "surrogatepass"))
        elif isinstance(part, LassoPart):
            put("part-lasso-" + part.mode, part.polygon.astype("<f8").tobytes())
        elif isinstance(part, SectorPart):
            put("part-sector", struct.pack("<qqd", part.n, part.k, part.theta))
        if self.text is not None:
            put("text", self.text.encode("utf-8", "surrogatepass"))
            if self.sketch is not None:  # α only matters when there are both
                put("alpha", struct.pack("<d", self.alpha))
        if self.compose:
            put("compose")
            if self.groups is not None:
                for g in self.groups:
                    put("group", "\0".join(g).encode("utf-8", "surrogatepass"))
        return h.hexdigest()


def _digest_sketch(put: Callable[[str, bytes], None], sketch: Sketch) -> None:
    put("canvas", struct.pack("<dd", sketch.width, sketch.height))
    if sketch.raster is not None:
        r = np.ascontiguousarray(sketch.raster)
        put("raster", struct.pack("<qq", *r.shape) + r.tobytes())
    for s in sketch.strokes:
        put(
            "stroke",
            s.id.encode("utf-8", "surrogatepass")
            + b"\0"
            + np.ascontiguousarray(s.points, "<f8").tobytes(),
        )
