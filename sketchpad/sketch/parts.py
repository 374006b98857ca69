"""Parts of a sketch: the part a lasso or a partition sector picks out, and part names.

The part is returned as a sketch on the same canvas; the model renders it in the *whole*
sketch's framing (``raster.render_query(part, whole)``), so the part stays where it was.

Part names are a sketch's own label list: ``metadata["part_names"]`` (SPG's
``<category>.txt``, kept in Sketchpad JSON, ndjson and SVG exports), else the labels its
strokes carry. ``sketchpad label`` uses them when no labels are given.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sketchpad.sketch.formats._common import SketchFileError, read_names_file
from sketchpad.sketch.geometry import LassoMode, lasso_select, partition_sketch
from sketchpad.sketch.model import Sketch


def _unique(names: list[str]) -> tuple[str, ...]:
    """Names with inner white space made one space, empty ones dropped, duplicates (ignoring
    case) kept once, first first."""
    out: dict[str, str] = {}
    for n in names:
        name = " ".join(n.split())
        if name:
            out.setdefault(name.lower(), name)
    return tuple(out.values())


def part_names(sketch: Sketch) -> tuple[str, ...]:
    """The sketch's own part names: ``metadata["part_names"]`` when it is a list of strings,
    else its strokes' labels in drawing order; () when it has neither. Commas are kept."""
    names = sketch.metadata.get("part_names")
    if isinstance(names, list) and all(isinstance(n, str) for n in names) and _unique(names):
        return _unique(names)
    return _unique([s.label for s in sketch.strokes if s.label is not None])


def read_label_file(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Labels from a text file: one per line (commas are part of a label), UTF-8, blank lines
    and lines starting with ``#`` skipped, duplicates (ignoring case) kept once.

    Raises:
        SketchFileError: missing, unreadable, too large, not UTF-8 (naming the line), or
            holding no label.
    """
    p = Path(path)
    labels = _unique(read_names_file(p))
    if not labels:
        raise SketchFileError(p, "holds no label (one per line; # starts a comment)")
    return labels


def lasso_part(sketch: Sketch, polygon: np.ndarray, mode: LassoMode = "cut") -> Sketch:
    """The strokes (``whole``) or stroke pieces (``cut``) inside a closed lasso polygon
    ((K, 2) canvas coordinates), in drawing order.

    Raises:
        ValueError: the lasso selects nothing.
    """
    result = lasso_select(sketch, polygon, mode)
    chosen = set(result.selected_ids)
    strokes = []
    for s in sketch.strokes:
        pieces = result.replacements.get(s.id, (s,))
        strokes += [p for p in pieces if p.id in chosen]
    if not strokes:
        raise ValueError("the lasso selects no stroke")
    return sketch.with_strokes(strokes)


def sector_part(sketch: Sketch, n: int, k: int, theta1: float = 0.0) -> Sketch:
    """Sector ``k`` of the sketch split into ``n`` sectors around its centroid (seed 000
    §4.5), the first boundary at ``theta1`` radians; strokes crossing a boundary are cut.

    Raises:
        ValueError: bad n or k, or the sector is empty.
    """
    if not 0 <= k < n:
        raise ValueError(f"sector {k} does not exist: use 0 … {n - 1}")
    part = partition_sketch(sketch, n, theta1).sector_sketch(sketch, k)
    if not part.strokes:
        raise ValueError(f"sector {k} of {n} is empty")
    return part
