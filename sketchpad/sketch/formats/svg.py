"""SVG sketches: one ``<path>`` per stroke (Sketchy, TU-Berlin) and our SVG export.

Reading understands ``<path>`` (the full path grammar, Béziers and arcs flattened to
within ``svg_path.TOLERANCE`` canvas pixels), ``<polyline>``, ``<polygon>``,
``<line>``, ``<rect>``, ``<circle>`` and ``<ellipse>``, with ``transform`` on any
element or group. Every subpath (each ``M``) becomes a stroke. The canvas is the
``viewBox`` (its origin moved to 0, 0), else ``width``/``height`` in pixels, else
the extent of the points + 1. ``stroke``, ``stroke-width`` (scaled by the transform),
``stroke-opacity``, ``data-id``/``id`` and ``data-label`` are read when given, and the
root's ``data-part-names`` (a JSON list) as ``metadata["part_names"]``. A shape with a fill
and no stroke (``stroke`` none or absent) is a filled area, not a stroke, and is skipped.
Truncated files (some of Sketchy's lack ``</svg>``) keep the strokes read before the
damage, with a note in ``metadata["import_warnings"]``. XML goes through defusedxml:
internal entities of plain text (the Adobe Illustrator prolog) are accepted, every other
entity and external reference refused; see :class:`_SafeXMLParser`. Numbers that are
infinite, beyond ``svg_path.MAX_NUMBER``, or put a point beyond ``MAX_COORDINATE`` are
refused with the file's name.

Writing gives ``<svg xmlns viewBox width height>`` and one ``<path d="M x y L ...">``
per stroke (``M x y Z`` for a one-point stroke) with its width, colour, id and label;
labelled strokes get ``class="label-<slug>"`` and a ``<style>`` block colours each
label distinctly; the part names go in the root's ``data-part-names``. Numbers are
written with ``repr`` (integers without ``.0``), so reading back gives exactly the same
points. Times, pressure, point labels and other metadata are not written.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from xml.sax.saxutils import quoteattr

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from defusedxml.ElementTree import ParseError as DefusedParseError

from ..model import DEFAULT_COLOR, Sketch, Stroke, new_stroke_id
from . import svg_path
from ._common import (
    MAX_POINTS,
    SketchFileError,
    check_coordinates,
    check_index,
    check_point_count,
    format_number,
    iter_chunks,
    make_sketch,
    make_stroke,
    plural,
    require_strokes,
    with_warnings,
)

EXTENSIONS = (".svg",)
#: Root attribute holding the sketch's part names (``metadata["part_names"]``) as JSON.
PART_NAMES_ATTRIBUTE = "data-part-names"

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


#: Longest value of an internal entity accepted (the Illustrator prolog's are < 60 chars).
_MAX_ENTITY_CHARS = 1024
#: Most entities one file may declare.
_MAX_ENTITIES = 64


class _EntityRefused(ValueError):
    """An entity declaration outside the accepted policy (see :class:`_SafeXMLParser`)."""


class _SafeXMLParser(DefusedXMLParser):
    """defusedxml's parser with one allowance: *internal* general entities whose value is
    plain text (no markup, no references), as Adobe Illustrator declares its namespace URIs
    (``<!ENTITY ns_svg "http://www.w3.org/2000/svg">``, used as ``xmlns="&ns_svg;"``).

    Refused: parameter entities, external (``SYSTEM``/``PUBLIC``) and unparsed entities,
    values holding ``&``, ``%`` or ``<`` (so no nested expansion: a "billion laughs" file
    fails at its second entity), values over ``_MAX_ENTITY_CHARS`` and more than
    ``_MAX_ENTITIES`` of them; external references. Expat's own amplification limit (2.4+)
    still bounds many references to one entity. All of this is enforced by expat as it
    decodes, so it holds for every encoding (UTF-16 too).
    """

    def __init__(self) -> None:
        super().__init__(
            target=ET.TreeBuilder(), forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
        self.n_entities = 0

    def defused_entity_decl(
        self,
        name: str,
        is_parameter_entity: bool,
        value: str | None,
        base: str | None,
        sysid: str | None,
        pubid: str | None,
        notation_name: str | None,
    ) -> None:
        self.n_entities += 1
        if is_parameter_entity:
            raise _EntityRefused(f"declares the parameter entity %{name};")
        if value is None or sysid is not None or pubid is not None or notation_name:
            raise _EntityRefused(f"declares the external entity &{name};")
        if any(ch in value for ch in "&%<"):
            raise _EntityRefused(
                f"declares the entity &{name}; holding markup or other entities "
                "(entity expansion attack?)"
            )
        if len(value) > _MAX_ENTITY_CHARS or self.n_entities > _MAX_ENTITIES:
            raise _EntityRefused(f"declares too many or too long entities (&{name};)")


#: Expat's error code for its entity amplification limit (XML_ERROR_AMPLIFICATION_LIMIT_BREACH).
_AMPLIFICATION_BREACH = 43
_XML_REFUSED = (_EntityRefused, DefusedXmlException)
#: The pure-Python ElementTree defusedxml builds on has its own ParseError class.
_PARSE_ERRORS = (ET.ParseError, DefusedParseError)


def read_svg(path: Path, index: int = 0) -> Sketch:
    """The strokes of an SVG file; see the module notes."""
    check_index(path, index, 1)
    return _Reader(path).read()


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
        self.fill_only = 0
        self.part_names: list[str] | None = None

    def read(self) -> Sketch:
        parser = _SafeXMLParser()
        pull: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(
            events=("start", "end"),
            _parser=parser,  # internal to ElementTree, but there since 3.4
        )
        damage: Exception | None = None
        try:
            for chunk in iter_chunks(self.path):
                pull.feed(chunk)
                self._handle(pull)
            pull.close()
            self._handle(pull)
        except _XML_REFUSED as e:
            raise SketchFileError(self.path, f"is refused for safety: {_xml_reason(e)}") from e
        except svg_path.NumberOutOfRange as e:
            raise SketchFileError(self.path, str(e)) from e
        except (LookupError, UnicodeError) as e:  # encoding="…" that Python cannot decode
            raise SketchFileError(
                self.path, f"declares a text encoding that cannot be read: {e}"
            ) from e
        except _PARSE_ERRORS as e:
            if getattr(e, "code", None) == _AMPLIFICATION_BREACH:
                raise SketchFileError(
                    self.path,
                    "is refused for safety: its entities expand too much "
                    f"(entity expansion attack?): {e}",
                ) from e
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
        if self.fill_only:
            self.warnings.append(
                f"skipped {plural(self.fill_only, 'filled shape')} with no outline "
                "(a fill is not a stroke)"
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
        metadata: dict[str, Any] = {"source_format": "svg", "source_file": self.path.name}
        if self.part_names is not None:
            metadata["part_names"] = self.part_names
        metadata = with_warnings(metadata, self.warnings)
        return make_sketch(
            self.path,
            strokes=tuple(self.strokes),
            width=self.canvas[0],
            height=self.canvas[1],
            metadata=metadata,
        )

    def _handle(self, parser: ET.XMLPullParser[ET.Element]) -> None:
        """Handle the queued events (a truncated file keeps the events before the damage)."""
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
            self._root_part_names(el)
            ctm = self._root_canvas(el)
            self.stack.append(_Context(ctm, _style(el, {}), False))
            return
        parent = self.stack[-1]
        ctm = parent.ctm
        try:
            local = svg_path.parse_transform(el.get("transform"))
        except svg_path.NumberOutOfRange as e:
            raise SketchFileError(self.path, f"<{tag}>: {e}") from e
        except ValueError as e:
            self.warnings.append(f"<{tag}>: ignored a bad transform ({e})")
            local = svg_path.IDENTITY
        if not np.array_equal(local, svg_path.IDENTITY):
            ctm = ctm @ local
        if tag == "svg":  # nested viewport: place it at its x, y
            x, y = _length(el.get("x")) or 0.0, _length(el.get("y")) or 0.0
            ctm = ctm @ svg_path.parse_transform(f"translate({x!r} {y!r})")
        if not np.abs(ctm).max() <= svg_path.MAX_NUMBER:  # nested transforms multiply up
            raise SketchFileError(
                self.path,
                f"<{tag}>: its transforms together scale or move by more than "
                f"{svg_path.MAX_NUMBER:.0e}",
            )
        hidden = parent.hidden or tag in _NOT_RENDERED or el.get("display") == "none"
        ctx = _Context(ctm, _style(el, parent.style), hidden)
        self.stack.append(ctx)
        if hidden:
            return
        if tag in _SHAPES:
            self._shape(tag, el, ctx)
        elif tag in _IGNORED_CONTENT:
            self.ignored[tag] = self.ignored.get(tag, 0) + 1

    def _root_part_names(self, el: ET.Element) -> None:
        """``data-part-names`` (a JSON list of strings, as we write it) → the part names."""
        text = el.get(PART_NAMES_ATTRIBUTE)
        if text is None:
            return
        try:
            names = json.loads(text)
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise ValueError("not a list of names")
        except (ValueError, RecursionError) as e:
            self.warnings.append(f"ignored the bad {PART_NAMES_ATTRIBUTE} ({e})")
            return
        self.part_names = names

    def _root_canvas(self, el: ET.Element) -> np.ndarray:
        """Set the canvas from the root's viewBox or size; returns the root CTM, which
        moves the viewBox origin to (0, 0)."""
        vb = el.get("viewBox")
        if vb is not None:
            try:
                x, y, w, h = svg_path.parse_numbers(vb)
                if w > 0 and h > 0:
                    self.canvas = (w, h)
                    if x or y:
                        return svg_path.parse_transform(f"translate({-x!r} {-y!r})")
                    return svg_path.IDENTITY
            except svg_path.NumberOutOfRange as e:
                raise SketchFileError(self.path, f"viewBox: {e}") from e
            except ValueError:
                pass
            self.warnings.append(f"ignored the bad viewBox {vb!r}")
        width, height = _length(el.get("width")), _length(el.get("height"))
        if width and height and width > 0 and height > 0:
            self.canvas = (width, height)
        return svg_path.IDENTITY

    def _shape(self, tag: str, el: ET.Element, ctx: _Context) -> None:
        if not _has_outline(ctx.style):
            self.fill_only += 1
            return
        try:
            d = _as_path_data(tag, el)
        except svg_path.NumberOutOfRange as e:
            raise SketchFileError(self.path, f"<{tag}>: {e}") from e
        except ValueError as e:
            self.warnings.append(f"skipped a <{tag}> with bad geometry ({e})")
            return
        if d is None:
            return
        try:
            subpaths, lone = svg_path.flatten_path(d, ctx.ctm, MAX_POINTS - self.n_points)
        except svg_path.NumberOutOfRange as e:
            raise SketchFileError(self.path, f"<{tag}>: {e}") from e
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


_STYLE_PROPERTIES = ("stroke", "stroke-width", "stroke-opacity", "fill")


def _style(el: ET.Element, inherited: dict[str, str]) -> dict[str, str]:
    """Inherited stroke and fill properties, then presentation attributes, then
    ``style="…"``."""
    style = dict(inherited)
    for name in _STYLE_PROPERTIES:
        if el.get(name) is not None:
            style[name] = el.get(name, "").strip()
    for decl in (el.get("style") or "").split(";"):
        name, _, value = decl.partition(":")
        if name.strip() in _STYLE_PROPERTIES and value.strip():
            style[name.strip()] = value.strip().removesuffix("!important").strip()
    return style


def _has_outline(style: dict[str, str]) -> bool:
    """Whether a shape with this (inherited) style is a stroke of the sketch.

    SVG draws no outline unless ``stroke`` names a paint. Sketch files often give neither
    stroke nor fill, and are read as outlines; but a shape with a fill and no stroke (a
    background ``<rect fill="white">``) is a filled area, not a stroke, and so is one with
    ``stroke="none"``. A filled shape with a stroke keeps its outline.
    """
    stroke = style.get("stroke", "").lower()
    if stroke in ("none", "transparent"):
        return False
    if stroke:
        return True
    return "fill" not in style


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


def _xml_reason(e: Exception) -> str:
    if isinstance(e, _EntityRefused):
        return f"it {e}"
    name = type(e).__name__
    if name == "EntitiesForbidden":
        return "it declares an unparsed entity"
    if name == "ExternalReferenceForbidden":
        return "it refers to an external entity (a file or address outside it)"
    return f"it has a forbidden XML construct ({name})"


# ---------------------------------------------------------------- writing


def encode_svg(sketch: Sketch, path: Path) -> bytes:
    """SVG bytes (UTF-8) of the sketch's strokes; see the module notes."""
    require_strokes(sketch, path, "SVG")
    check_coordinates(sketch, path, "SVG")
    w, h = format_number(sketch.width), format_number(sketch.height)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="{_SVG_NS}" viewBox="0 0 {w} {h}" width="{w}" height="{h}"'
        f"{part_names_attribute(sketch.metadata)}>",
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


def part_names_attribute(metadata: Mapping[str, Any]) -> str:
    """`` data-part-names="[…]"`` for the root ``<svg>`` when the metadata has part names
    (a JSON list, so names with commas survive), else ""."""
    names = metadata.get("part_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return ""
    return f" {PART_NAMES_ATTRIBUTE}={quoteattr(json.dumps(names, ensure_ascii=False))}"


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
