"""Sketchpad's own file format: JSON with a format name and a version (DESIGN §3).

Layout (version 1)::

    {"format": "sketchpad-sketch", "version": 1,
     "canvas": {"width": W, "height": H},
     "metadata": {...},
     "strokes": [
      {"id": "…", "label": "…", "width": 3, "color": "#000000",
       "points": [[x, y], ...], "times": [...], "pressure": [...], "point_labels": [...]},
      ...],
     "raster": {"png": "<base64 PNG, 8-bit grey, pixel = ink coverage>"}}

``label``, ``times``, ``pressure``, ``point_labels`` and ``raster`` are optional.
The round trip is lossless: floats are written with ``repr`` (exact for float64),
integral values as ints, and NaN is never written. Files from a newer Sketchpad
are refused with a message asking to update; older versions are upgraded through
``_MIGRATIONS`` before they are read.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..model import DEFAULT_COLOR, DEFAULT_PEN_WIDTH, Sketch, Stroke
from ._common import (
    MEMORY_PATH,
    SketchFileError,
    check_index,
    check_point_count,
    json_number,
    json_numbers,
    loads_strict,
    make_sketch,
    make_stroke,
    read_file_bytes,
)
from .bitmap import decode_gray_png, encode_gray_png

FORMAT_NAME = "sketchpad-sketch"
CURRENT_VERSION = 1
EXTENSIONS = (".json",)

#: version v → function turning a version-v document (parsed JSON) into version v+1.
#: Version 1 is the first version, so there is nothing to migrate yet.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


# ---------------------------------------------------------------- writing


def sketch_to_json_bytes(sketch: Sketch) -> bytes:
    """The sketch as Sketchpad JSON (UTF-8), one stroke per line.

    Raises:
        SketchFileError: the metadata holds something JSON cannot represent
            (NaN, an object that is not a number/str/list/dict, ...).
    """
    return _to_json_bytes(sketch, MEMORY_PATH)


def encode_json(sketch: Sketch, path: Path) -> bytes:
    """Sketchpad JSON bytes for ``sketch``, to be written at ``path`` (named in errors)."""
    return _to_json_bytes(sketch, path)


def _to_json_bytes(sketch: Sketch, path: Path) -> bytes:
    head = {
        "format": FORMAT_NAME,
        "version": CURRENT_VERSION,
        "canvas": {"width": json_number(sketch.width), "height": json_number(sketch.height)},
    }
    try:
        metadata = json.dumps(
            dict(sketch.metadata),
            ensure_ascii=False,
            allow_nan=False,
            sort_keys=True,
            default=_json_default,
        )
    except (TypeError, ValueError) as e:
        raise SketchFileError(path, f"the sketch's metadata cannot be written as JSON: {e}") from e
    parts = [json.dumps(head)[:-1], f', "metadata": {metadata}, "strokes": [']
    lines = [
        json.dumps(_stroke_to_dict(s), ensure_ascii=False, separators=(",", ":"))
        for s in sketch.strokes
    ]
    if lines:
        parts.append("\n " + ",\n ".join(lines) + "\n")
    parts.append("]")
    if sketch.raster is not None:
        png = base64.b64encode(encode_gray_png(sketch.raster)).decode("ascii")
        parts.append(f',\n "raster": {{"png": "{png}"}}')
    parts.append("}\n")
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as e:
        raise SketchFileError(path, f"the sketch holds text that is not valid Unicode: {e}") from e


def _json_default(o: object) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} {o!r} is not JSON serialisable")


def _stroke_to_dict(s: Stroke) -> dict[str, Any]:
    d: dict[str, Any] = {"id": s.id}
    if s.label is not None:
        d["label"] = s.label
    d["width"] = json_number(s.width)
    d["color"] = s.color
    d["points"] = json_numbers(s.points)
    if s.times is not None:
        d["times"] = json_numbers(s.times)
    if s.pressure is not None:
        d["pressure"] = json_numbers(s.pressure)
    if s.point_labels is not None:
        d["point_labels"] = s.point_labels.tolist()
    return d


# ---------------------------------------------------------------- reading


def read_json(path: Path, index: int = 0) -> Sketch:
    """Read a Sketchpad JSON file (one drawing)."""
    check_index(path, index, 1)
    return sketch_from_json_bytes(read_file_bytes(path), path)


def sketch_from_json_bytes(data: bytes, path: Path | None = None) -> Sketch:
    """Parse Sketchpad JSON bytes (a file, the autosave or the clipboard).

    Args:
        data: the UTF-8 JSON text.
        path: the file it came from, named in error messages (``<memory>`` if None).

    Raises:
        SketchFileError: the data is not a valid Sketchpad sketch; the message says why.
    """
    where = Path(path) if path is not None else MEMORY_PATH
    doc = _parse(data, where)
    return _doc_to_sketch(_migrate(doc, where), where)


def _parse(data: bytes, path: Path) -> Any:
    return loads_strict(path, data)


def _migrate(doc: Any, path: Path) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise SketchFileError(path, "is not a Sketchpad sketch: the JSON is not an object")
    fmt = doc.get("format")
    if fmt is None:
        raise SketchFileError(path, 'is not a Sketchpad sketch: it has no "format" field')
    if fmt != FORMAT_NAME:
        raise SketchFileError(
            path, f"is not a Sketchpad sketch: its format is {fmt!r}, not {FORMAT_NAME!r}"
        )
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SketchFileError(path, f"has an invalid format version {version!r}")
    if version > CURRENT_VERSION:
        raise SketchFileError(
            path,
            f"was written by a newer Sketchpad (format version {version}); this version "
            f"reads up to {CURRENT_VERSION} — please update Sketchpad to open it",
        )
    while version < CURRENT_VERSION:
        step = _MIGRATIONS.get(version)
        if step is None:
            raise SketchFileError(path, f"format version {version} is no longer supported")
        doc = step(doc)
        version += 1
        doc["version"] = version
    return doc


def _doc_to_sketch(doc: dict[str, Any], path: Path) -> Sketch:
    canvas = doc.get("canvas")
    if not isinstance(canvas, dict):
        raise SketchFileError(path, 'has no "canvas" object with the width and height')
    width = _number(path, "canvas width", canvas.get("width"))
    height = _number(path, "canvas height", canvas.get("height"))
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise SketchFileError(path, '"metadata" must be a JSON object')
    strokes_doc = doc.get("strokes", [])
    if not isinstance(strokes_doc, list):
        raise SketchFileError(path, '"strokes" must be a list')
    for i, s in enumerate(strokes_doc):
        if not isinstance(s, dict):
            raise SketchFileError(path, f"stroke {i} is not a JSON object")
        if not isinstance(s.get("points"), list):
            raise SketchFileError(path, f"stroke {i} has no list of points")
    check_point_count(path, sum(len(s["points"]) for s in strokes_doc))
    strokes = tuple(_stroke_from_dict(path, i, s) for i, s in enumerate(strokes_doc))
    raster = None
    if doc.get("raster") is not None:
        raster = _raster(path, doc["raster"])
    return make_sketch(
        path, strokes=strokes, width=width, height=height, metadata=metadata, raster=raster
    )


def _number(path: Path, what: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SketchFileError(path, f"{what} must be a number, got {v!r}")
    return float(v)


def _stroke_from_dict(path: Path, i: int, d: dict[str, Any]) -> Stroke:
    where = f"stroke {i}"
    sid = d.get("id")
    if sid is not None:
        if not isinstance(sid, str) or not sid:
            raise SketchFileError(path, f"{where}: id must be a non-empty string, got {sid!r}")
        where = f"stroke {i} (id {sid!r})"
    points = d["points"]
    if not points:
        raise SketchFileError(path, f"{where} has no points (empty stroke)")
    fields: dict[str, Any] = {
        "points": _array(path, f"{where} points", points, ndim=2),
        "width": _number(path, f"{where} width", d.get("width", DEFAULT_PEN_WIDTH)),
        "color": d.get("color", DEFAULT_COLOR),
        "label": d.get("label"),
    }
    if sid is not None:
        fields["id"] = sid
    for name in ("times", "pressure", "point_labels"):
        if d.get(name) is not None:
            fields[name] = _array(
                path, f"{where} {name}", d[name], ndim=1, integer=name == "point_labels"
            )
    return make_stroke(path, where, **fields)


def _array(path: Path, what: str, value: Any, *, ndim: int, integer: bool = False) -> np.ndarray:
    if not isinstance(value, list):
        raise SketchFileError(path, f"{what} must be a list")
    try:
        a = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as e:
        raise SketchFileError(path, f"{what} is not a regular array of numbers ({e})") from e
    kinds = "iu" if integer else "iuf"
    if a.size and a.dtype.kind not in kinds:
        kind = "integers" if integer else "numbers"
        raise SketchFileError(path, f"{what} must hold only {kind}")
    if a.ndim != ndim or (ndim == 2 and a.shape[1] != 2):
        layout = "[x, y] pairs" if ndim == 2 else "a flat list"
        raise SketchFileError(path, f"{what} must be {layout}, got shape {a.shape}")
    return a


def _raster(path: Path, value: Any) -> np.ndarray:
    if not isinstance(value, dict) or not isinstance(value.get("png"), str):
        raise SketchFileError(path, '"raster" must be an object with a base64 "png" string')
    try:
        png = base64.b64decode(value["png"], validate=True)
    except (binascii.Error, ValueError) as e:
        raise SketchFileError(path, f"the raster is not valid base64: {e}") from e
    return decode_gray_png(png, path)
