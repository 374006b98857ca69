"""Exports of a labelled scene sketch (issue 6, item 3): JSON, SVG, label-map PNG, CSV.

- **JSON**: the sketch in Sketchpad's own format with each stroke's ``label`` set (a field the
  format always had, so older readers still read it), its metadata (part names included)
  and ``metadata["scene_labels"]``: the labels, their colours, the threshold and the model;
  for a raster-only sketch also one entry per ink component (id, label, pixel count,
  bounding box).
- **SVG** (vector sketches): one ``<path>`` per stroke with ``class="label-<slug>"``,
  ``data-label`` and ``data-id``, coloured by its label (a ``<style>`` block and the ``stroke``
  attribute agree); Sketchpad reads it back with the labels. The root carries the labels
  (``data-labels``) and the sketch's part names (``data-part-names``) as JSON lists, so
  names with commas survive.
- **Label-map PNG**: a palette PNG on the label raster; pixel value 0 = paper, k + 1 = label k
  (colours as in the SVG), so it is both an index map and a picture.
- **CSV**: one row per stroke (or ink component): index, id, label, label index, pixel count,
  agreement (the share of its pixels that carry its label) and its canvas bounding box.
- **Isolation masks**: per label, 0/255 PNG of the ink pixels at or above the threshold.

Every file is written atomically (:mod:`sketchpad.atomic`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from PIL import Image

from sketchpad.atomic import SaveError, atomic_write_bytes
from sketchpad.sketch.formats.svg import part_names_attribute
from sketchpad.sketch.io import sketch_to_json_bytes
from sketchpad.sketch.model import Sketch
from sketchpad.vision.scene_labels import SceneLabels

#: Label colours (Tableau 20, strong shades first), reused in order for more labels.
LABEL_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
#: Colour of strokes with no label.
UNLABELLED_COLOR = "#000000"
#: File names written by :func:`export_scene` in the output folder.
JSON_NAME = "labelled.json"
SVG_NAME = "labelled.svg"
MAP_NAME = "label_map.png"
CSV_NAME = "strokes.csv"
CSV_COLUMNS = (
    "index",
    "stroke_id",
    "label",
    "label_index",
    "pixels",
    "agreement",
    "x0",
    "y0",
    "x1",
    "y1",
)


def label_color(k: int) -> str:
    """``#rrggbb`` of label index ``k`` (the palette repeats after 20 labels)."""
    return LABEL_PALETTE[k % len(LABEL_PALETTE)]


def label_colors(n: int, colors: Sequence[str] | None = None) -> list[str]:
    """The ``#rrggbb`` of each of ``n`` labels: ``colors`` (the user's choice) where given and
    valid, else the default palette by position."""
    given = list(colors or ())
    return [
        given[k].lower()
        if k < len(given) and re.fullmatch(r"#[0-9a-fA-F]{6}", str(given[k]))
        else label_color(k)
        for k in range(n)
    ]


def label_slug(label: str) -> str:
    """A CSS-class and file-name safe form of a label: lower case, ``a-z0-9`` and hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "label"


def _unique_slugs(labels: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for label in labels:
        slug, k = label_slug(label), 2
        base = slug
        while slug in out:
            slug, k = f"{base}-{k}", k + 1
        out.append(slug)
    return out


def _num(v: float) -> str:
    """Shortest text that reads back as exactly ``v`` (ints without '.0')."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 2**53 else repr(float(v))


def _finite(v: float) -> float | None:
    return round(float(v), 6) if np.isfinite(v) else None


def stroke_bboxes(result: SceneLabels) -> list[tuple[float, float, float, float] | None]:
    """Per stroke (or component), the canvas bounding box of its pixels on the label raster
    (x0, y0, x1, y1; pixel edges mapped back through the frame), None without pixels."""
    _, w = result.raster_hw
    f = result.pixels.frame
    out: list[tuple[float, float, float, float] | None] = []
    for idx in result.pixels.pixels:
        if not idx.size:
            out.append(None)
            continue
        ys, xs = idx // w, idx % w
        out.append(
            (
                (float(xs.min()) - f.tx) / f.scale,
                (float(ys.min()) - f.ty) / f.scale,
                (float(xs.max()) + 1 - f.tx) / f.scale,
                (float(ys.max()) + 1 - f.ty) / f.scale,
            )
        )
    return out


def _agreement(result: SceneLabels) -> list[float]:
    lab = result.pixel_labels.reshape(-1)
    return [
        float(np.mean(lab[idx] == k)) if idx.size and k >= 0 else 0.0
        for idx, k in zip(result.pixels.pixels, result.stroke_labels.tolist(), strict=True)
    ]


def _threshold_rule(result: SceneLabels, threshold: float | None) -> str:
    if threshold is not None:
        return "given"
    if result.fine_tuned_threshold is not None:
        return f"fine-tuned: {result.fine_tuned_threshold}"
    return "zero-shot: per label, where its redundancy-removed score crosses 0"


def scene_metadata(
    result: SceneLabels,
    *,
    threshold: float | None = None,
    info: Mapping[str, Any] | None = None,
    colors: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``scene_labels`` metadata entry (JSON-serialisable)."""
    meta: dict[str, Any] = {
        "labels": list(result.labels),
        "colors": label_colors(len(result.labels), colors),
        "thresholds": {lab: _finite(result.threshold_for(lab, threshold)) for lab in result.labels},
        "threshold_rule": _threshold_rule(result, threshold),
        "raster_hw": list(result.raster_hw),
        "label_weights": [round(float(v), 6) for v in result.label_weights],
    }
    if info:
        meta.update(dict(info))
    if result.pixels.from_components:
        names = result.stroke_label_names()
        meta["components"] = [
            {
                "id": sid,
                "label": name,
                "pixels": int(idx.size),
                "bbox_xyxy": None if box is None else [round(v, 3) for v in box],
            }
            for sid, name, idx, box in zip(
                result.stroke_ids, names, result.pixels.pixels, stroke_bboxes(result), strict=True
            )
        ]
    return meta


def scene_json_bytes(
    sketch: Sketch,
    result: SceneLabels,
    *,
    threshold: float | None = None,
    info: Mapping[str, Any] | None = None,
    colors: Sequence[str] | None = None,
) -> bytes:
    """Sketchpad JSON of the labelled sketch (see the module notes)."""
    labelled = result.labelled_sketch(sketch)
    metadata = dict(labelled.metadata)
    metadata["scene_labels"] = scene_metadata(result, threshold=threshold, info=info, colors=colors)
    return sketch_to_json_bytes(labelled.replace(metadata=metadata))


def scene_svg_bytes(
    sketch: Sketch, result: SceneLabels, colors: Sequence[str] | None = None
) -> bytes:
    """SVG of the labelled strokes, coloured (``colors``, else the default palette) and
    classed by label.

    Raises:
        ValueError: a raster-only sketch (it has no strokes to write as paths).
    """
    if sketch.is_raster:
        raise ValueError("a raster-only sketch has no strokes to write as SVG paths")
    labelled = result.labelled_sketch(sketch)
    slugs = _unique_slugs(result.labels)
    palette = label_colors(len(result.labels), colors)
    w, h = _num(sketch.width), _num(sketch.height)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}"'
        f"{part_names_attribute(sketch.metadata)} "
        f"data-labels={quoteattr(json.dumps(list(result.labels), ensure_ascii=False))}>",
        "<style>",
        *(f"  .label-{s} {{ stroke: {palette[k]}; }}" for k, s in enumerate(slugs)),
        f"  .unlabelled {{ stroke: {UNLABELLED_COLOR}; }}",
        "</style>",
    ]
    for s in labelled.strokes:
        k = result.labels.index(s.label) if s.label is not None else -1
        xy = [f"{_num(x)} {_num(y)}" for x, y in s.points.tolist()]
        d = f"M{xy[0]} Z" if len(xy) == 1 else f"M{xy[0]} L" + " ".join(xy[1:])
        attrs = {"data-id": s.id, "class": f"label-{slugs[k]}" if k >= 0 else "unlabelled"}
        if s.label is not None:
            attrs["data-label"] = s.label
        attrs.update(
            {
                "d": d,
                "stroke": palette[k] if k >= 0 else UNLABELLED_COLOR,
                "stroke-width": _num(s.width),
                "fill": "none",
                "stroke-linecap": "round",
                "stroke-linejoin": "round",
            }
        )
        lines.append("<path " + " ".join(f"{a}={quoteattr(v)}" for a, v in attrs.items()) + "/>")
    lines.append(f"<!-- labels: {escape(', '.join(result.labels)).replace('--', '- -')} -->")
    lines.append("</svg>\n")
    return "\n".join(lines).encode("utf-8")


def label_map_png_bytes(result: SceneLabels, colors: Sequence[str] | None = None) -> bytes:
    """Palette PNG on the label raster: 0 = paper (white), k + 1 = label k (its colour:
    ``colors``, else the default palette).

    Raises:
        ValueError: more than 255 labels (one byte per pixel).
    """
    k = len(result.labels)
    if k > 255:
        raise ValueError(f"a label-map PNG holds at most 255 labels, got {k}")
    index = (result.pixel_labels + 1).astype(np.uint8)
    palette = [255, 255, 255]
    for c in label_colors(k, colors):
        palette += [int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)]
    h, w = index.shape
    im = Image.frombytes("P", (w, h), np.ascontiguousarray(index).tobytes())
    im.putpalette(palette + [0, 0, 0] * (256 - len(palette) // 3))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def strokes_csv_text(result: SceneLabels) -> str:
    """One CSV row per stroke (or ink component); columns :data:`CSV_COLUMNS`."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    rows = zip(
        result.stroke_ids,
        result.stroke_labels.tolist(),
        result.pixels.pixels,
        _agreement(result),
        stroke_bboxes(result),
        strict=True,
    )
    for i, (sid, k, idx, agree, box) in enumerate(rows):
        label = result.labels[k] if k >= 0 else ""
        coords = ["", "", "", ""] if box is None else [f"{v:.3f}" for v in box]
        out.writerow([i, sid, label, k, int(idx.size), f"{agree:.4f}", *coords])
    return buf.getvalue()


def isolation_png_bytes(result: SceneLabels, label: str, threshold: float | None = None) -> bytes:
    """0/255 greyscale PNG of the ink pixels :meth:`SceneLabels.isolate` keeps for ``label``."""
    buf = io.BytesIO()
    mask = result.isolate(label, threshold).astype(np.uint8) * 255
    Image.fromarray(mask).save(buf, format="PNG")
    return buf.getvalue()


def export_scene(
    out_dir: str | Path,
    sketch: Sketch,
    result: SceneLabels,
    *,
    threshold: float | None = None,
    info: Mapping[str, Any] | None = None,
    colors: Sequence[str] | None = None,
) -> list[Path]:
    """Write every export of a labelled sketch into ``out_dir`` (created if needed), each
    label in ``colors[k]`` (the user's colours; default palette otherwise).

    Files: :data:`JSON_NAME`, :data:`SVG_NAME` (vector sketches only), :data:`MAP_NAME`,
    :data:`CSV_NAME` and ``isolated-<label slug>.png`` per label, each written atomically.

    Returns:
        The paths written, in that order.

    Raises:
        sketchpad.atomic.SaveError: a file could not be written (earlier ones stay written).
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SaveError(out, e.strerror or str(e)) from e
    files: list[tuple[Path, bytes]] = [
        (
            out / JSON_NAME,
            scene_json_bytes(sketch, result, threshold=threshold, info=info, colors=colors),
        )
    ]
    if not sketch.is_raster:
        files.append((out / SVG_NAME, scene_svg_bytes(sketch, result, colors)))
    files.append((out / MAP_NAME, label_map_png_bytes(result, colors)))
    files.append((out / CSV_NAME, strokes_csv_text(result).encode("utf-8")))
    for slug, label in zip(_unique_slugs(result.labels), result.labels, strict=True):
        files.append((out / f"isolated-{slug}.png", isolation_png_bytes(result, label, threshold)))
    for path, data in files:
        atomic_write_bytes(path, data)
    return [path for path, _ in files]
