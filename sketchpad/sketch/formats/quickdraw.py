"""Quick, Draw! ndjson: one drawing per line (REFERENCE §3, data/README.md).

Each line is a JSON object whose ``drawing`` holds one entry per stroke:

- simplified: ``[xs, ys]``, coordinates on a 0–255 canvas;
- raw: ``[xs, ys, t_ms]`` with ``word``, ``countrycode``, ``timestamp`` and
  ``recognized`` fields; the third list becomes :attr:`Stroke.times`;
- SPG (part-labelled, ``data/spg``): ``[xs, ys, labels]`` with only ``key_id``; the
  third list becomes :attr:`Stroke.point_labels`. A sibling ``<category>.txt`` (or
  ``<word>.txt``) gives the part names in label order; the labels in the real SPG
  files are 0-based, recorded as ``metadata["label_base"] = 0``.

A third list is read as times when the record carries any raw Quick, Draw! field, or
when its values are not all integers; otherwise as per-point labels.

Canvas: for raw data (with times) the extent of the points + 1; otherwise (simplified,
SPG) 256×256, larger if a coordinate exceeds 255. Strokes with no points are skipped and counted in
``metadata["import_warnings"]``.

Writing gives one line. Coordinates are written as ints when every coordinate is
integral. The third list is the point labels when any stroke has them (times are then
dropped), else the times; a sketch with times but none of the raw fields in its
metadata gets a ``word`` field (the category, or "") so that the times read back as
times. ``key_id``, ``word``, ``countrycode``, ``recognized``, ``timestamp`` and any
unknown fields of the original record (``metadata["ndjson_fields"]``) are written back.
The part names (``metadata["part_names"]``, with ``label_base``) are written as fields of
the record, and read from there before any ``<category>.txt``, so they survive a copy or
re-export under another name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..model import Sketch, Stroke
from ._common import (
    SketchFileError,
    check_coordinates,
    check_index,
    check_point_count,
    iter_lines,
    json_numbers,
    loads_strict,
    make_sketch,
    make_stroke,
    part_names_of,
    plural,
    read_names_file,
    require_strokes,
    with_warnings,
)

EXTENSIONS = (".ndjson",)

#: Side of the Quick, Draw! simplified canvas (coordinates 0–255).
SIMPLIFIED_SIZE = 256
#: Any of these marks a record as raw Quick, Draw! data (third list = times).
_RAW_FIELDS = ("word", "countrycode", "timestamp", "recognized")
#: Record fields kept in the sketch's metadata and written back.
_KEPT_FIELDS = ("key_id", "word", "countrycode", "recognized", "timestamp")
#: Largest part-names file read (bytes).
#: Fields we add to a record: the part names (``metadata["part_names"]``) and the value of
#: the first point label (``metadata["label_base"]``), so that they survive a re-export
#: under any file name (SPG keeps them in a ``<category>.txt`` beside the file).
_PART_FIELDS = ("part_names", "label_base")


def count_ndjson(path: Path) -> int:
    """Number of drawings: the non-empty lines, counted without parsing them."""
    return sum(1 for line in iter_lines(path) if line.strip())


def read_ndjson(path: Path, index: int = 0) -> Sketch:
    """The ``index``-th drawing (non-empty line) of a Quick, Draw! ndjson file."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        check_index(path, index, count_ndjson(path))
    n = 0
    for lineno, line in enumerate(iter_lines(path), start=1):
        if not line.strip():
            continue
        if n == index:
            return _record_to_sketch(path, _parse_line(path, line, lineno), lineno, index)
        n += 1
    check_index(path, index, n)
    raise AssertionError("unreachable")  # check_index raised


def _parse_line(path: Path, line: bytes, lineno: int) -> dict[str, Any]:
    rec = loads_strict(path, line, where=f"line {lineno} ", bom=lineno == 1)
    if not isinstance(rec, dict):
        raise SketchFileError(path, f"line {lineno} is not a JSON object")
    if not isinstance(rec.get("drawing"), list):
        raise SketchFileError(path, f'line {lineno} has no "drawing" list of strokes')
    return rec


def _numbers(path: Path, where: str, value: Any) -> np.ndarray:
    if not isinstance(value, list):
        raise SketchFileError(path, f"{where} must be a list of numbers")
    try:
        a = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as e:
        raise SketchFileError(path, f"{where} is not a list of numbers ({e})") from e
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iuf"):
        raise SketchFileError(path, f"{where} must be a flat list of numbers")
    return a


#: Largest point label read (SPG has a few dozen parts); beyond it int64 conversion is not exact.
_MAX_POINT_LABEL = 2**31


def _record_to_sketch(path: Path, rec: dict[str, Any], lineno: int, index: int) -> Sketch:
    is_raw = any(k in rec for k in _RAW_FIELDS)
    strokes_doc = rec["drawing"]
    for j, s in enumerate(strokes_doc):
        if not isinstance(s, list) or len(s) not in (2, 3):
            raise SketchFileError(
                path, f"line {lineno}, stroke {j} must be [xs, ys] or [xs, ys, third list]"
            )
        if not all(isinstance(v, list) for v in s):
            raise SketchFileError(path, f"line {lineno}, stroke {j} must hold lists of numbers")
    check_point_count(path, sum(len(s[0]) for s in strokes_doc))

    strokes: list[Stroke] = []
    warnings: list[str] = []
    empty = 0
    any_labels = False
    for j, s in enumerate(strokes_doc):
        where = f"line {lineno}, stroke {j}"
        lists = [_numbers(path, f"{where} list {k}", v) for k, v in enumerate(s)]
        n = len(lists[0])
        if any(len(v) != n for v in lists):
            lengths = ", ".join(str(len(v)) for v in lists)
            raise SketchFileError(path, f"{where}: its lists have different lengths ({lengths})")
        if n == 0:
            empty += 1
            continue
        fields: dict[str, Any] = {"points": np.stack([lists[0], lists[1]], axis=1)}
        if len(lists) == 3:
            third = lists[2]
            if not is_raw and (third.dtype.kind in "iu" or np.all(np.mod(third, 1) == 0)):
                if third.size and np.abs(third).max() > _MAX_POINT_LABEL:
                    raise SketchFileError(
                        path, f"{where}: a point label of {np.abs(third).max():.6g} is out of range"
                    )
                fields["point_labels"] = third.astype(np.int64)
                any_labels = True
            else:
                fields["times"] = third
        strokes.append(make_stroke(path, where, **fields))
    if empty:
        warnings.append(f"skipped {plural(empty, 'empty stroke')} (no points)")
    if not strokes:
        raise SketchFileError(path, f"line {lineno}: the drawing has no strokes with points")

    pts = np.concatenate([s.points for s in strokes])
    hi = pts.max(axis=0)
    if any(s.times is not None for s in strokes):  # raw data: no fixed canvas
        width, height = max(float(hi[0]) + 1, 1.0), max(float(hi[1]) + 1, 1.0)
    else:
        width = max(float(SIMPLIFIED_SIZE), float(hi[0]) + 1)
        height = max(float(SIMPLIFIED_SIZE), float(hi[1]) + 1)

    metadata: dict[str, Any] = {
        "source_format": "quickdraw",
        "source_file": path.name,
        "source_index": index,
    }
    metadata.update({k: rec[k] for k in _KEPT_FIELDS if k in rec})
    extra = {
        k: v
        for k, v in rec.items()
        if k not in _KEPT_FIELDS and k not in _PART_FIELDS and k != "drawing"
    }
    if extra:
        metadata["ndjson_fields"] = extra
    if "part_names" in rec:
        where = f'line {lineno}: "part_names"'
        metadata["part_names"] = part_names_of(path, rec["part_names"], where)
        base = rec.get("label_base", 0)
        if isinstance(base, bool) or not isinstance(base, int):
            raise SketchFileError(path, f'line {lineno}: "label_base" must be an integer')
        metadata["label_base"] = base
    elif any_labels:
        _add_part_names(path, rec, strokes, metadata, warnings)
    return make_sketch(
        path,
        strokes=tuple(strokes),
        width=width,
        height=height,
        metadata=with_warnings(metadata, warnings),
    )


def _add_part_names(
    path: Path,
    rec: dict[str, Any],
    strokes: list[Stroke],
    metadata: dict[str, Any],
    warnings: list[str],
) -> None:
    """Find ``<category>.txt`` (SPG) or ``<word>.txt`` beside the file: the part names."""
    category = re.sub(r"_(valid|train|test)$", "", path.stem)
    metadata["category"] = category
    candidates = [path.with_name(f"{category}.txt")]
    word = rec.get("word")
    if isinstance(word, str) and word:
        candidates += [
            path.with_name(f"{word}.txt"),
            path.with_name(f"{word.replace(' ', '_')}.txt"),
        ]
    for txt in candidates:
        if not txt.is_file():
            continue
        try:
            # SPG's names are index-aligned: no line is a comment; blank lines were never names.
            names = read_names_file(txt, comments=False)
        except SketchFileError as e:
            warnings.append(f"could not read the part names in {txt.name}: {e.reason}")
            return
        metadata["part_names"] = names
        metadata["label_base"] = 0
        top = max(int(s.point_labels.max()) for s in strokes if s.point_labels is not None)
        if top >= len(names):
            warnings.append(
                f"point labels go up to {top} but {txt.name} names only {len(names)} parts"
            )
        return


def encode_ndjson(sketch: Sketch, path: Path) -> bytes:
    """One ndjson line (UTF-8, ending in a newline) for ``sketch``; see the module notes."""
    require_strokes(sketch, path, "Quick, Draw! ndjson")
    check_coordinates(sketch, path, "Quick, Draw! ndjson", canvas=False)
    md = dict(sketch.metadata)
    pts = sketch.all_points()
    integral = bool(np.all(np.mod(pts, 1) == 0) and np.all(np.abs(pts) < 2**53))
    use_labels = any(s.point_labels is not None for s in sketch.strokes)
    use_times = not use_labels and any(s.times is not None for s in sketch.strokes)

    def coords(a: np.ndarray) -> list[Any]:
        return [int(v) for v in a.tolist()] if integral else a.tolist()

    drawing = []
    for s in sketch.strokes:
        entry = [coords(s.points[:, 0]), coords(s.points[:, 1])]
        if use_labels and s.point_labels is not None:
            entry.append(s.point_labels.tolist())
        elif use_times and s.times is not None:
            entry.append(json_numbers(s.times))
        drawing.append(entry)

    record: dict[str, Any] = {k: md[k] for k in _KEPT_FIELDS if k in md}
    names = md.get("part_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        record["part_names"] = names
        if isinstance(md.get("label_base"), int):
            record["label_base"] = md["label_base"]
    extra = md.get("ndjson_fields")
    if isinstance(extra, dict):
        record.update({k: v for k, v in extra.items() if k not in record and k != "drawing"})
    if use_times and not any(k in record for k in _RAW_FIELDS):
        record["word"] = md.get("category", "") if isinstance(md.get("category"), str) else ""
    record["drawing"] = drawing
    try:
        return (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    except (TypeError, ValueError) as e:  # UnicodeEncodeError is a ValueError
        raise SketchFileError(
            path, f"the sketch's metadata cannot be written as ndjson: {e}"
        ) from e
