"""SVG sketches: one ``<path>`` per stroke (Sketchy, TU-Berlin) and our SVG export.

Reading understands ``<path>`` (the full path grammar, Béziers and arcs flattened to
within ``svg_path.TOLERANCE`` canvas pixels), ``<polyline>``, ``<polygon>``,
``<line>``, ``<rect>``, ``<circle>`` and ``<ellipse>``, with ``transform`` on any
element or group. Every subpath (each ``M``) becomes a stroke. The canvas is the
``viewBox`` (its origin moved to 0, 0), else ``width``/``height`` in pixels, else
the extent of the points + 1. ``stroke``, ``stroke-width`` (scaled by the transform),
``stroke-opacity``, ``data-id``/``id`` and ``data-label`` are read when given.
Truncated files (some of Sketchy's lack ``</svg>``) keep the strokes read before the
damage, with a note in ``metadata["import_warnings"]``. DTDs that declare entities
are refused (entity expansion attacks).

Writing gives ``<svg xmlns viewBox width height>`` and one ``<path d="M x y L ...">``
per stroke (``M x y Z`` for a one-point stroke) with its width, colour, id and label;
labelled strokes get ``class="label-<slug>"`` and a ``<style>`` block colours each
label distinctly. Numbers are written with ``repr`` (integers without ``.0``), so
reading back gives exactly the same points. Times, pressure, point labels and
metadata are not written.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from xml.sax.saxutils import quoteattr

import numpy as np

from ..model import DEFAULT_COLOR, Sketch, Stroke, new_stroke_id
from . import svg_path
from ._common import (
    MAX_POINTS,
    SketchFileError,
    check_index,
    check_point_count,
    format_number,
    make_sketch,
    make_stroke,
    plural,
    read_file_bytes,
    require_strokes,
    with_warnings,
)

EXTENSIONS = (".svg",)

_SVG_NS = "http://www.w3.org/2000/svg"
#: Containers whose content is never drawn directly.
_NOT_RENDERED = {
    "defs",
    "clipPath",
    "mask",
    "marker",
    "pattern",
    "symbol",
    "style",
    "script",
    "metadata",
    "title",
    "desc",
    "linearGradient",
    "radialGradient",
    "filter",
}
_SHAPES = {"path", "polyline", "polygon", "line", "rect", "circle", "ellipse"}
_IGNORED_CONTENT = {"text", "image", "use", "foreignObject"}
_NAMED_COLORS = {
    "black": "#000000",
    "white": "#ffffff",
    "red": "#ff0000",
    "green": "#008000",
    "blue": "#0000ff",
    "yellow": "#ffff00",
    "cyan": "#00ffff",
    "magenta": "#ff00ff",
    "gray": "#808080",
    "grey": "#808080",
    "orange": "#ffa500",
    "purple": "#800080",
    "brown": "#a52a2a",
    "pink": "#ffc0cb",
    "navy": "#000080",
    "lime": "#00ff00",
}
#: Label colours of the exported ``<style>`` block (Tableau 10), reused in order.
_LABEL_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_LENGTH = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(px)?\s*$")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@dataclass(frozen=True)
class _Context:
    """What an element inherits from its ancestors."""

    ctm: np.ndarray
    style: dict[str, str]
    hidden: bool


# ---------------------------------------------------------------- reading


def read_svg(path: Path, index: int = 0) -> Sketch:
    """The strokes of an SVG file; see the module notes."""
    check_index(path, index, 1)
    return _Reader(path).read(read_file_bytes(path))


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.strokes: list[Stroke] = []
        self.ids: set[str] = set()
        self.n_points = 0
        self.warnings: list[str] = []
        self.lone_moves = 0
        self.ignored: dict[str, int] = {}
        self.stack: list[_Context] = []
        self.canvas: tuple[float, float] | None = None
        self.root_seen = False

    def read(self, data: bytes) -> Sketch:
        if b"<!ENTITY" in data:
            raise SketchFileError(self.path, "declares XML entities, which are refused for safety")
        parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
        damage: ET.ParseError | None = None
        try:
            parser.feed(data)
            self._handle(parser)
            parser.close()
            self._handle(parser)
        except ET.ParseError as e:
            damage = e
        if not self.root_seen:
            why = f": {damage}" if damage else ""
            raise SketchFileError(self.path, f"is not a valid SVG file (damaged or not XML?){why}")
        if damage is not None:
            if not self.strokes:
                raise SketchFileError(
                    self.path, f"is damaged or truncated before any drawable path: {damage}"
                )
            self.warnings.insert(
                0,
                f"the file ends early or is damaged ({damage}); imported the "
                f"{plural(len(self.strokes), 'stroke')} read before that",
            )
        if not self.strokes:
            raise SketchFileError(
                self.path, "has no drawable paths (no <path>, <polyline>, <polygon> or <line>)"
            )
        if self.lone_moves:
            self.warnings.append(
                f"skipped {plural(self.lone_moves, 'empty subpath')} (a moveto with no line)"
            )
        for tag, n in sorted(self.ignored.items()):
            self.warnings.append(f"ignored {plural(n, f'<{tag}> element')}")
        if self.canvas is None:
            hi = np.concatenate([s.points for s in self.strokes]).max(axis=0)
            self.canvas = (max(float(hi[0]) + 1, 1.0), max(float(hi[1]) + 1, 1.0))
        metadata = with_warnings(
            {"source_format": "svg", "source_file": self.path.name}, self.warnings
        )
        return make_sketch(
            self.path,
            strokes=tuple(self.strokes),
            width=self.canvas[0],
            height=self.canvas[1],
            metadata=metadata,
        )

    def _handle(self, parser: ET.XMLPullParser[ET.Element]) -> None:
        for item in parser.read_events():
            # events=("start", "end") queues (event, element) pairs only
            event, el = cast("tuple[str, ET.Element]", item)
            if event == "start":
                self._start(el)
            else:
                self.stack.pop()
                el.clear()  # keep memory flat on big files

    def _start(self, el: ET.Element) -> None:
        tag = _local(el.tag)
        if not self.root_seen:
            if tag != "svg":
                raise SketchFileError(
                    self.path, f"is not an SVG file (its root element is <{tag}>)"
                )
            self.root_seen = True
            ctm = self._root_canvas(el)
            self.stack.append(_Context(ctm, _style(el, {}), False))
            return
        parent = self.stack[-1]
        ctm = parent.ctm
        try:
            local = svg_path.parse_transform(el.get("transform"))
        except ValueError as e:
            self.warnings.append(f"<{tag}>: ignored a bad transform ({e})")
            local = svg_path.IDENTITY
        if not np.array_equal(local, svg_path.IDENTITY):
            ctm = ctm @ local
        if tag == "svg":  # nested viewport: place it at its x, y
            x, y = _length(el.get("x")) or 0.0, _length(el.get("y")) or 0.0
            ctm = ctm @ svg_path.parse_transform(f"translate({x} {y})")
        hidden = parent.hidden or tag in _NOT_RENDERED or el.get("display") == "none"
        ctx = _Context(ctm, _style(el, parent.style), hidden)
        self.stack.append(ctx)
        if hidden:
            return
        if tag in _SHAPES:
            self._shape(tag, el, ctx)
        elif tag in _IGNORED_CONTENT:
            self.ignored[tag] = self.ignored.get(tag, 0) + 1

    def _root_canvas(self, el: ET.Element) -> np.ndarray:
        """Set the canvas from the root's viewBox or size; returns the root CTM, which
        moves the viewBox origin to (0, 0)."""
        vb = el.get("viewBox")
        if vb is not None:
            try:
                x, y, w, h = svg_path.parse_numbers(vb)
                if w > 0 and h > 0 and np.isfinite([x, y, w, h]).all():
                    self.canvas = (w, h)
                    if x or y:
                        return svg_path.parse_transform(f"translate({-x} {-y})")
                    return svg_path.IDENTITY
            except ValueError:
                pass
            self.warnings.append(f"ignored the bad viewBox {vb!r}")
        width, height = _length(el.get("width")), _length(el.get("height"))
        if width and height and width > 0 and height > 0:
            self.canvas = (width, height)
        return svg_path.IDENTITY

    def _shape(self, tag: str, el: ET.Element, ctx: _Context) -> None:
        try:
            d = _as_path_data(tag, el)
        except ValueError as e:
            self.warnings.append(f"skipped a <{tag}> with bad geometry ({e})")
            return
        if d is None:
            return
        try:
            subpaths, lone = svg_path.flatten_path(d, ctx.ctm, MAX_POINTS - self.n_points)
        except svg_path.TooManyPoints as e:
            check_point_count(self.path, self.n_points + e.args[0])
            raise AssertionError("unreachable") from e  # check_point_count raised
        except svg_path.PathDataError as e:
            subpaths, lone = e.subpaths, e.lone_moves
            kept = "kept the part before it" if subpaths else "skipped it"
            self.warnings.append(f"a <{tag}> has bad path data ({e}); {kept}")
        self.lone_moves += lone
        for k, pts in enumerate(subpaths):
            self.n_points += len(pts)
            check_point_count(self.path, self.n_points)
            self.strokes.append(self._stroke(el, ctx, pts, first=k == 0))

    def _stroke(self, el: ET.Element, ctx: _Context, pts: np.ndarray, *, first: bool) -> Stroke:
        sid = el.get("data-id") or el.get("id")
        if not first or not sid or sid in self.ids:
            sid = new_stroke_id()
        self.ids.add(sid)
        where = f"stroke {len(self.strokes)}"
        width = _length(ctx.style.get("stroke-width"))
        width = (1.0 if width is None else width) * svg_path.linear_scale(ctx.ctm)
        if not np.isfinite(width) or width <= 0:
            width = 1.0
        return make_stroke(
            self.path,
            where,
            points=pts,
            id=sid,
            width=width,
            color=_color(ctx.style.get("stroke"), ctx.style.get("stroke-opacity")),
            label=el.get("data-label") or None,
        )


def _style(el: ET.Element, inherited: dict[str, str]) -> dict[str, str]:
    """Inherited stroke properties, then presentation attributes, then ``style="…"``."""
    style = dict(inherited)
    for name in ("stroke", "stroke-width", "stroke-opacity"):
        if el.get(name) is not None:
            style[name] = el.get(name, "").strip()
    for decl in (el.get("style") or "").split(";"):
        name, _, value = decl.partition(":")
        if name.strip() in ("stroke", "stroke-width", "stroke-opacity") and value.strip():
            style[name.strip()] = value.strip().removesuffix("!important").strip()
    return style


def _length(text: str | None) -> float | None:
    """A length in user units (plain or px); None for missing, other units or percentages."""
    if text is None:
        return None
    m = _LENGTH.match(text)
    if m is None:
        return None
    v = float(m.group(1))
    return v if np.isfinite(v) else None


def _color(text: str | None, opacity: str | None) -> str:
    color = DEFAULT_COLOR
    t = (text or "").strip().lower()
    if re.fullmatch(r"#[0-9a-f]{6}", t):
        color = (text or "").strip()
    elif re.fullmatch(r"#[0-9a-f]{3}", t):
        color = "#" + "".join(ch * 2 for ch in t[1:])
    elif t in _NAMED_COLORS:
        color = _NAMED_COLORS[t]
    else:
        m = re.fullmatch(r"rgb\(\s*([\d.]+)(%?)\s*,\s*([\d.]+)(%?)\s*,\s*([\d.]+)(%?)\s*\)", t)
        if m:
            vals = [float(m.group(i)) * (2.55 if m.group(i + 1) else 1) for i in (1, 3, 5)]
            color = "#" + "".join(f"{min(255, round(v)):02x}" for v in vals)
    try:
        alpha = round(float(opacity) * 255) if opacity is not None else 255
    except (ValueError, OverflowError):
        alpha = 255
    if 0 <= alpha < 255:
        color += f"{alpha:02x}"
    return color


def _as_path_data(tag: str, el: ET.Element) -> str | None:
    """The element's geometry as path data (None when it draws nothing)."""
    if tag == "path":
        return el.get("d") or None

    def num(name: str) -> float:
        v = _length(el.get(name, "0"))
        if v is None:
            raise ValueError(f"{name}={el.get(name)!r} is not a length in pixels")
        return v

    if tag in ("polyline", "polygon"):
        nums = svg_path.parse_numbers(el.get("points", ""))
        if len(nums) < 2:
            return None
        pairs = [f"{nums[i]!r} {nums[i + 1]!r}" for i in range(0, len(nums) - 1, 2)]
        return "M" + " L".join(pairs) + (" Z" if tag == "polygon" else "")
    if tag == "line":
        return f"M{num('x1')!r} {num('y1')!r} L{num('x2')!r} {num('y2')!r}"
    if tag == "rect":
        x, y, w, h = num("x"), num("y"), num("width"), num("height")
        if w <= 0 or h <= 0:
            return None
        return f"M{x!r} {y!r} h{w!r} v{h!r} h{-w!r} Z"
    cx, cy = num("cx"), num("cy")
    rx, ry = (num("r"), num("r")) if tag == "circle" else (num("rx"), num("ry"))
    if rx <= 0 or ry <= 0:
        return None
    return (
        f"M{cx - rx!r} {cy!r} A{rx!r} {ry!r} 0 1 0 {cx + rx!r} {cy!r} "
        f"A{rx!r} {ry!r} 0 1 0 {cx - rx!r} {cy!r} Z"
    )


# ---------------------------------------------------------------- writing


def encode_svg(sketch: Sketch, path: Path) -> bytes:
    """SVG bytes (UTF-8) of the sketch's strokes; see the module notes."""
    require_strokes(sketch, path, "SVG")
    w, h = format_number(sketch.width), format_number(sketch.height)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="{_SVG_NS}" viewBox="0 0 {w} {h}" width="{w}" height="{h}">',
    ]
    classes = _label_classes(sketch.strokes)
    if classes:
        lines.append("<style>")
        for i, cls in enumerate(classes.values()):
            color = _LABEL_PALETTE[i % len(_LABEL_PALETTE)]
            lines.append(f"  .{cls} {{ stroke: {color}; }}")
        lines.append("</style>")
    for s in sketch.strokes:
        lines.append(_path_element(s, classes))
    lines.append("</svg>\n")
    try:
        return "\n".join(lines).encode("utf-8")
    except UnicodeEncodeError as e:
        raise SketchFileError(path, f"a stroke label is not valid Unicode text: {e}") from e


def _label_classes(strokes: tuple[Stroke, ...]) -> dict[str, str]:
    """label → unique CSS class ``label-<slug>``, in order of first appearance."""
    classes: dict[str, str] = {}
    for s in strokes:
        if s.label is None or s.label in classes:
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", s.label.lower()).strip("-") or "label"
        cls, k = f"label-{slug}", 2
        while cls in classes.values():
            cls, k = f"label-{slug}-{k}", k + 1
        classes[s.label] = cls
    return classes


def _path_element(s: Stroke, classes: dict[str, str]) -> str:
    xy = [f"{format_number(x)} {format_number(y)}" for x, y in s.points.tolist()]
    d = f"M{xy[0]} Z" if len(xy) == 1 else f"M{xy[0]} L" + " ".join(xy[1:])
    attrs: dict[str, Any] = {}
    if re.fullmatch(r"[A-Za-z_][\w.-]*", s.id):
        attrs["id"] = s.id
    attrs["data-id"] = s.id
    if s.label is not None:
        attrs["class"] = classes[s.label]
        attrs["data-label"] = s.label
    attrs["d"] = d
    attrs["stroke"] = s.color[:7]
    if len(s.color) == 9:
        attrs["stroke-opacity"] = format_number(int(s.color[7:], 16) / 255)
    attrs["stroke-width"] = format_number(s.width)
    attrs.update({"fill": "none", "stroke-linecap": "round", "stroke-linejoin": "round"})
    body = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
    return f"<path {body}/>"
