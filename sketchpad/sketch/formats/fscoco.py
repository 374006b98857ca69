"""FS-COCO vector sketches (``.npy``): a float array (N, 3) of absolute x, y and a pen flag.

The pen flag is 1 on the last point of a stroke; SketchKit also uses 2 for the last
point of the drawing (REFERENCE §3, FS-COCO). Points after a 2 are ignored (and
noted in ``metadata["import_warnings"]``); a final run of points with no end flag
is kept as a stroke. Coordinates are kept as they are (roughly 0–256 or larger in
the dataset); the canvas is the largest coordinate + 1 on each axis.

The file is read with ``allow_pickle=False``: object arrays are refused.

Writing uses the same layout in float64 (so coordinates are exact): flag 1 on the
last point of every stroke, 0 elsewhere. Times, pressure, labels, widths, colours,
metadata and the canvas size are not stored; reading back gives canvas = extent + 1.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..model import Sketch, Stroke
from ._common import (
    SketchFileError,
    check_coordinates,
    check_index,
    check_point_count,
    make_sketch,
    make_stroke,
    plural,
    read_file_bytes,
    require_strokes,
    with_warnings,
)
from ._npy import read_header, read_plain_array

EXTENSIONS = (".npy",)


def read_fscoco(path: Path, index: int = 0) -> Sketch:
    """The drawing in an FS-COCO vector ``.npy``; canvas = max coordinate + 1."""
    check_index(path, index, 1)
    data = read_file_bytes(path)
    what = "the array"
    # Check the promised shape before reading the data: a huge or wrong array costs nothing.
    header = read_header(io.BytesIO(data), path, what)
    if len(header.shape) != 2 or header.shape[1] != 3:
        raise SketchFileError(
            path, f"holds {header.describe()}; an FS-COCO sketch is an (N, 3) array of x, y, pen"
        )
    if header.dtype.kind not in "iuf":
        raise SketchFileError(path, f"holds {header.describe()}; expected numbers (float or int)")
    if header.shape[0] == 0:
        raise SketchFileError(path, "holds no points (an empty array)")
    check_point_count(path, header.shape[0])
    _, a = read_plain_array(data, path, what)
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(a), axis=1))[0])
        raise SketchFileError(path, f"row {bad} contains NaN or infinite values")
    pen = a[:, 2]
    odd = np.setdiff1d(np.unique(pen), [0.0, 1.0, 2.0])
    if odd.size:
        raise SketchFileError(path, f"pen flags must be 0, 1 or 2, found {odd[0]:g}")

    warnings: list[str] = []
    end = np.flatnonzero(pen == 2)
    if end.size and end[0] + 1 < len(a):
        dropped = len(a) - end[0] - 1
        warnings.append(
            f"ignored {plural(int(dropped), 'point')} after the end-of-drawing flag (2)"
        )
        a, pen = a[: end[0] + 1], pen[: end[0] + 1]
    pieces = np.split(a[:, :2], np.flatnonzero(pen >= 1) + 1)
    strokes: list[Stroke] = [
        make_stroke(path, f"stroke {k}", points=p)
        for k, p in enumerate(q for q in pieces if len(q))
    ]
    hi = a[:, :2].max(axis=0)
    metadata = {"source_format": "fscoco", "source_file": path.name}
    return make_sketch(
        path,
        strokes=tuple(strokes),
        width=max(float(hi[0]) + 1, 1.0),
        height=max(float(hi[1]) + 1, 1.0),
        metadata=with_warnings(metadata, warnings),
    )


def encode_fscoco(sketch: Sketch, path: Path) -> bytes:
    """``.npy`` bytes: float64 (N, 3) absolute x, y, pen (1 = last point of a stroke)."""
    require_strokes(sketch, path, "FS-COCO .npy")
    check_coordinates(sketch, path, "FS-COCO .npy", canvas=False)
    pen = np.zeros(sketch.num_points)
    pen[np.cumsum([len(s) for s in sketch.strokes]) - 1] = 1.0
    array = np.column_stack([sketch.all_points(), pen])
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
