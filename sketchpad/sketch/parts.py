"""Part queries: the part of a sketch a lasso or a partition sector picks out.

The part is returned as a sketch on the same canvas; the model renders it in the *whole*
sketch's framing (``raster.render_query(part, whole)``), so the part stays where it was.
"""

from __future__ import annotations

import numpy as np

from sketchpad.sketch.geometry import LassoMode, lasso_select, partition_sketch
from sketchpad.sketch.model import Sketch


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
