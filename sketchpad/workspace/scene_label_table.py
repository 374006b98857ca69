"""The scene-label table of a drawing: names and colours, kept in ``Sketch.metadata``.

Pure functions (no widgets), used by the labelling panel and its tests.

Storage, saved with the drawing (our JSON keeps ``metadata`` and each stroke's ``label``):

- ``metadata["labels"]``: ``[{"name": "tree", "color": "#2ca02c"}, …]``, the table in the order
  the person sees it;
- ``Stroke.label``: each stroke's label (a name from the table, or None);
- ``metadata["hand_labelled"]``: ids of strokes labelled by hand; the labeller never
  overrides them (a re-run after an edit keeps the person's corrections).

A drawing whose strokes carry labels missing from the table (imported from an SVG or an older
file) shows them after the table's entries with the next free palette colours: the
*effective* table. Writing the table back writes the effective one, so those become explicit.

Strokes are painted in their label's colour at draw time from this table; ``Stroke.color`` is
never rewritten, so turning label colours off shows the drawing as it was drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sketchpad.sketch.model import Sketch, Stroke

log = logging.getLogger(__name__)

GeometryKey = tuple[Any, ...]
LABELS_KEY = "labels"
HAND_LABELLED_KEY = "hand_labelled"
#: Label colours: Tableau 20, strong shades first (the same order as the exports'
#: ``scene_export.LABEL_PALETTE``, so a table left at its defaults exports in its own colours).
DEFAULT_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


@dataclass(frozen=True)
class LabelEntry:
    """One row of the table.

    Attributes:
        name: the label, stripped, single-spaced, non-empty.
        color: its colour, ``#rrggbb`` lower case.
    """

    name: str
    color: str

    def __post_init__(self) -> None:
        name = clean_name(self.name)
        if not name:
            raise ValueError(f"LabelEntry.name must be a non-empty string, got {self.name!r}")
        if not is_color(self.color):
            raise ValueError(f"LabelEntry.color must be '#rrggbb', got {self.color!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "color", self.color.lower())

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "color": self.color}


def clean_name(name: object) -> str:
    """``name`` stripped and single-spaced ("" for anything but a string)."""
    return " ".join(name.split()) if isinstance(name, str) else ""


def is_color(value: object) -> bool:
    """True for ``#rrggbb``."""
    if not isinstance(value, str) or len(value) != 7 or value[0] != "#":
        return False
    return all(c in "0123456789abcdefABCDEF" for c in value[1:])


def next_color(used: Iterable[str]) -> str:
    """The first palette colour not in ``used``; when all are taken, the one used least."""
    taken = [c.lower() for c in used]
    for c in DEFAULT_PALETTE:
        if c not in taken:
            return c
    return min(DEFAULT_PALETTE, key=taken.count)


def stored_entries(metadata: Mapping[str, Any]) -> tuple[LabelEntry, ...]:
    """The table as stored in ``metadata["labels"]``; malformed or repeated rows are skipped
    (and logged), a missing colour gets the next free one."""
    raw = metadata.get(LABELS_KEY)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        log.warning("ignoring metadata[%r]: a list was expected, got %r", LABELS_KEY, raw)
        return ()
    out: list[LabelEntry] = []
    for item in raw:
        name = clean_name(item.get("name")) if isinstance(item, dict) else clean_name(item)
        if not name or find(out, name) is not None:
            log.warning("ignoring label table row %r", item)
            continue
        color = item.get("color") if isinstance(item, dict) else None
        if not is_color(color):
            color = next_color(e.color for e in out)
        out.append(LabelEntry(name, str(color)))
    return tuple(out)


def with_part_labels(sketch: Sketch) -> Sketch:
    """An imported part-labelled drawing (SPG: per-point part indices, ``metadata["part_names"]``)
    with each stroke labelled by its most frequent part and the parts as the label table, so
    they show as labels with colours; any other sketch (or one whose strokes already carry
    labels) is returned as it is. Part indices without a name become "part N"."""
    if not any(s.point_labels is not None for s in sketch.strokes):
        return sketch
    if any(s.label is not None for s in sketch.strokes):
        return sketch
    raw_names = sketch.metadata.get("part_names")
    names = [clean_name(n) for n in raw_names] if isinstance(raw_names, list) else []
    base = sketch.metadata.get("label_base", 0)
    base = base if isinstance(base, int) else 0

    def part_name(v: int) -> str:
        i = v - base
        return names[i] if 0 <= i < len(names) and names[i] else f"part {v}"

    strokes: list[Stroke] = []
    used: list[str] = []
    for s in sketch.strokes:
        if s.point_labels is None or not len(s.point_labels):
            strokes.append(s)
            continue
        values, counts = np.unique(np.asarray(s.point_labels, dtype=np.int64), return_counts=True)
        name = part_name(int(values[int(np.argmax(counts))]))
        if name not in used:
            used.append(name)
        strokes.append(s.replace(label=name))
    order = [n for n in names if n in used] + [n for n in used if n not in names]
    table: list[LabelEntry] = []
    for n in order:
        table.append(LabelEntry(n, next_color(e.color for e in table)))
    metadata = dict(sketch.metadata)
    metadata[LABELS_KEY] = [e.to_json() for e in table]
    return sketch.replace(strokes=tuple(strokes), metadata=metadata)


def effective_entries(sketch: Sketch) -> tuple[LabelEntry, ...]:
    """The stored table, then every stroke label missing from it (first use order)."""
    out = list(stored_entries(sketch.metadata))
    for s in sketch.strokes:
        if s.label is not None and clean_name(s.label) and find(out, s.label) is None:
            out.append(LabelEntry(s.label, next_color(e.color for e in out)))
    return tuple(out)


def find(entries: Sequence[LabelEntry], name: str) -> int | None:
    """Index of the entry called ``name`` (case and spacing ignored), or None."""
    key = clean_name(name).casefold()
    for i, e in enumerate(entries):
        if e.name.casefold() == key:
            return i
    return None


def table_json(entries: Iterable[LabelEntry]) -> list[dict[str, str]]:
    """The value stored in ``metadata["labels"]``."""
    return [e.to_json() for e in entries]


def color_map(entries: Iterable[LabelEntry]) -> dict[str, str]:
    """Label name → ``#rrggbb``."""
    return {e.name: e.color for e in entries}


def stroke_counts(sketch: Sketch) -> dict[str, int]:
    """Label name → number of strokes carrying it."""
    counts: dict[str, int] = {}
    for s in sketch.strokes:
        if s.label is not None:
            counts[s.label] = counts.get(s.label, 0) + 1
    return counts


def hand_labelled(sketch: Sketch) -> frozenset[str]:
    """Ids of the live strokes labelled by hand."""
    raw = sketch.metadata.get(HAND_LABELLED_KEY)
    if not isinstance(raw, list):
        return frozenset()
    live = {s.id for s in sketch.strokes}
    return frozenset(i for i in raw if isinstance(i, str) and i in live)


def hand_labelled_json(ids: Iterable[str]) -> list[str] | None:
    """The value stored in ``metadata["hand_labelled"]`` (None: remove the key)."""
    out = sorted(set(ids))
    return out or None


def relabelled(
    sketch: Sketch, labels: Mapping[str, str | None], *, keep: Iterable[str] = ()
) -> dict[str, tuple[Stroke]]:
    """Replacements (for ``SketchEdit.replace``) giving strokes new labels.

    Args:
        sketch: the drawing.
        labels: stroke id → its new label (None: unlabelled); ids not in the drawing are
            ignored.
        keep: ids left as they are (strokes labelled by hand).

    Returns:
        Only the strokes whose label changes, each with just its label changed.
    """
    skip = set(keep)
    out: dict[str, tuple[Stroke]] = {}
    for s in sketch.strokes:
        if s.id in labels and s.id not in skip and labels[s.id] != s.label:
            out[s.id] = (s.replace(label=labels[s.id]),)
    return out


def renamed(sketch: Sketch, old: str, new: str | None) -> dict[str, tuple[Stroke]]:
    """Replacements moving every stroke labelled ``old`` to ``new`` (None: unlabelled)."""
    return relabelled(sketch, {s.id: new for s in sketch.strokes if s.label == old})


def proposed_names(entries: Sequence[LabelEntry], names: Iterable[str]) -> list[str]:
    """``names`` cleaned, without those already in ``entries`` or repeated."""
    out: list[str] = []
    for n in names:
        name = clean_name(n)
        if name and find(entries, name) is None and name.casefold() not in map(str.casefold, out):
            out.append(name)
    return out


def new_label_name(entries: Sequence[LabelEntry], base: str = "label") -> str:
    """``base``, or ``base 2``, ``base 3``… whichever is not in the table yet."""
    name, k = base, 2
    while find(entries, name) is not None:
        name, k = f"{base} {k}", k + 1
    return name


def geometry_key(sketch: Sketch) -> GeometryKey:
    """What a labelling depends on besides the labels: canvas, raster and stroke geometry
    (ids, widths, points), not the strokes' labels or colours."""
    raster = None if sketch.raster is None else hash(sketch.raster.tobytes())
    strokes = tuple((s.id, s.width, hash(s.points.tobytes())) for s in sketch.strokes)
    return (sketch.width, sketch.height, raster, strokes)
