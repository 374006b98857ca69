"""Labelled scene and part sketches for evaluation: SPG ndjson and FS-COCO-style vector sketches.

Both give :class:`SceneSample` s: a sketch, the labels offered to the labeller, and the true
label of every stroke (an index into those labels).

- **SPG** (``data/spg``, Li et al. 2018 via SketchGNN): ``<category>_<split>.ndjson`` files of
  Quick, Draw! drawings with a per-point part label (0-based in the real files) and
  ``<category>.txt`` naming the parts in label order. The labels offered are the category's
  part names (all of them, also those a drawing lacks); a stroke's true label is the most
  frequent label of its points (ties: the smaller). The group reported is the category.
- **FS-COCO-style** (FSCOCO-Seg, REFERENCE §3): a folder with ``vector_sketches/**/*.npy``
  ((N, 3) absolute x, y, pen; pen 1 ends a stroke) and ``classes/**/*.json`` beside it, each a
  list with one label per stroke: a name, or an index into ``all_classes.json`` (next to the
  two folders or one level up). A sketch is paired with the label file of the same relative
  path; if no names match but the counts agree, by sorted order (as the SSS code pairs them).
  The labels offered are the sketch's own labels, in order of first appearance; the group is
  the sub-folder (participant) of the sketch, or the split folder's name.

Problems with single files (unreadable, stroke and label counts that disagree) are reported
through ``warn`` and the file is skipped; a folder that is neither layout raises
:class:`DatasetError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from sketchpad.sketch.io import SketchFileError, count_drawings, read_sketch
from sketchpad.sketch.model import Sketch

Warn = Callable[[str], None]
Layout = Literal["spg", "fscoco"]


class DatasetError(ValueError):
    """A dataset folder cannot be read; the message names the folder and the reason."""


@dataclass(frozen=True, eq=False)
class SceneSample:
    """One labelled sketch.

    Attributes:
        sketch: the drawing.
        labels: the labels offered to a labeller (distinct).
        stroke_labels: (n_strokes,) int64, each stroke's true label as an index into
            ``labels`` (−1: unknown, not counted).
        group: what results are reported by (SPG category, FS-COCO participant).
        source: ``file`` or ``file#index`` the sample came from.
    """

    sketch: Sketch
    labels: tuple[str, ...]
    stroke_labels: np.ndarray
    group: str
    source: str

    def __post_init__(self) -> None:
        lab = np.asarray(self.stroke_labels, dtype=np.int64)
        if lab.shape != (len(self.sketch.strokes),):
            raise ValueError(
                f"{self.source}: {lab.shape[0] if lab.ndim else 0} stroke labels for "
                f"{len(self.sketch.strokes)} strokes"
            )
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"{self.source}: labels must be distinct, got {self.labels}")
        if lab.size and (lab.max() >= len(self.labels) or lab.min() < -1):
            raise ValueError(f"{self.source}: stroke label out of range 0..{len(self.labels) - 1}")
        object.__setattr__(self, "stroke_labels", lab)


def _ignore(_: str) -> None:
    return None


def detect_layout(path: str | Path) -> Layout:
    """``"spg"`` for a folder of ``*.ndjson``, ``"fscoco"`` for one holding ``vector_sketches/``
    (directly or in a split sub-folder).

    Raises:
        DatasetError: neither.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if any(root.glob("*.ndjson")):
        return "spg"
    if _fscoco_roots(root):
        return "fscoco"
    raise DatasetError(
        f"{root}: neither SPG (<category>_valid.ndjson + <category>.txt) nor FS-COCO-style "
        "(vector_sketches/*.npy + classes/*.json) data"
    )


def read_scene_dataset(
    path: str | Path, *, limit: int | None = None, warn: Warn = _ignore
) -> Iterator[SceneSample]:
    """The samples of a dataset folder in either layout (:func:`detect_layout`).

    Args:
        path: the folder.
        limit: at most this many sketches per SPG file or per FS-COCO group; None for all.
        warn: receives one line per skipped file or drawing.
    """
    if detect_layout(path) == "spg":
        yield from read_spg(path, limit=limit, warn=warn)
    else:
        yield from read_fscoco_labelled(path, limit=limit, warn=warn)


# ---------------------------------------------------------------- SPG


def _majority(values: np.ndarray) -> int:
    return int(np.argmax(np.bincount(values))) if values.size else -1


def read_spg(
    path: str | Path, *, limit: int | None = None, warn: Warn = _ignore
) -> Iterator[SceneSample]:
    """SPG samples of every ``*.ndjson`` in ``path`` (sorted by name); see the module notes."""
    root = Path(path)
    files = sorted(root.glob("*.ndjson"))
    if not files:
        raise DatasetError(f"{root}: no .ndjson files")
    for f in files:
        category = re.sub(r"_(valid|train|test)$", "", f.stem)
        try:
            n = count_drawings(f)
        except SketchFileError as e:
            warn(f"skipped {e}")
            continue
        for i in range(n if limit is None else min(n, limit)):
            try:
                sketch = read_sketch(f, i)
            except SketchFileError as e:
                warn(f"skipped drawing {i}: {e}")
                continue
            sample = _spg_sample(sketch, category, f"{f}#{i}", warn)
            if sample is not None:
                yield sample


def _spg_sample(sketch: Sketch, category: str, source: str, warn: Warn) -> SceneSample | None:
    md = sketch.metadata
    if any(s.point_labels is None for s in sketch.strokes):
        warn(f"skipped {source}: a stroke has no per-point part labels")
        return None
    per_stroke = [_majority(np.asarray(s.point_labels)) for s in sketch.strokes]
    base = int(md.get("label_base", 0))
    names = [str(n) for n in md.get("part_names", [])]
    if not names:
        top = max(per_stroke) - base + 1
        names = [f"part {k + 1}" for k in range(top)]
        warn(f"{source}: no {category}.txt with the part names; using 'part 1'…'part {top}'")
    index = [k - base for k in per_stroke]
    if min(index) < 0 or max(index) >= len(names):
        warn(
            f"skipped {source}: part labels {sorted(set(per_stroke))} beyond the {len(names)} "
            "part names"
        )
        return None
    labels, remap = _distinct(names)
    return SceneSample(
        sketch=sketch,
        labels=labels,
        stroke_labels=np.array([remap[k] for k in index], dtype=np.int64),
        group=category,
        source=source,
    )


def _distinct(names: Sequence[str]) -> tuple[tuple[str, ...], list[int]]:
    """Distinct names (first kept) and each original position's index among them."""
    first: dict[str, int] = {}
    for n in names:
        first.setdefault(n, len(first))
    return tuple(first), [first[n] for n in names]


# ---------------------------------------------------------------- FS-COCO style


def _fscoco_roots(root: Path) -> list[Path]:
    """Folders holding ``vector_sketches/`` and ``classes/``: ``root`` itself or its children."""
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    return [c for c in candidates if (c / "vector_sketches").is_dir() and (c / "classes").is_dir()]


def _class_names(split: Path, warn: Warn) -> list[str] | None:
    for f in (split / "all_classes.json", split.parent / "all_classes.json"):
        if f.is_file():
            try:
                names = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                warn(f"could not read {f}: {e}")
                return None
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return names
            warn(f"{f}: not a list of class names")
            return None
    return None


def _pairs(split: Path, warn: Warn) -> list[tuple[Path, Path]]:
    vec_dir, cls_dir = split / "vector_sketches", split / "classes"
    npys = sorted(vec_dir.rglob("*.npy"))
    jsons = sorted(cls_dir.rglob("*.json"))
    by_rel = {j.relative_to(cls_dir).with_suffix(""): j for j in jsons}
    matched = [(v, by_rel.get(v.relative_to(vec_dir).with_suffix(""))) for v in npys]
    if all(j is not None for _, j in matched):
        return [(v, j) for v, j in matched if j is not None]
    if not any(j is not None for _, j in matched) and len(npys) == len(jsons):
        warn(f"{split}: sketch and label file names differ; pairing them in sorted order")
        return list(zip(npys, jsons, strict=True))
    for v, j in matched:
        if j is None:
            expected = cls_dir / v.relative_to(vec_dir).with_suffix(".json")
            warn(f"skipped {v}: no label file {expected}")
    return [(v, j) for v, j in matched if j is not None]


def read_fscoco_labelled(
    path: str | Path, *, limit: int | None = None, warn: Warn = _ignore
) -> Iterator[SceneSample]:
    """FS-COCO-style samples of ``path`` (a split folder, or a folder of split folders)."""
    root = Path(path)
    splits = _fscoco_roots(root) if root.is_dir() else []
    if not splits:
        raise DatasetError(f"{root}: no vector_sketches/ and classes/ folders")
    for split in splits:
        names = _class_names(split, warn)
        taken: dict[str, int] = {}
        for npy, js in _pairs(split, warn):
            rel = npy.parent.relative_to(split / "vector_sketches")
            group = str(rel) if str(rel) != "." else split.name
            if limit is not None and taken.get(group, 0) >= limit:
                continue
            sample = _fscoco_sample(npy, js, names, group, warn)
            if sample is not None:
                taken[group] = taken.get(group, 0) + 1
                yield sample


def _fscoco_sample(
    npy: Path, js: Path, names: list[str] | None, group: str, warn: Warn
) -> SceneSample | None:
    try:
        sketch = read_sketch(npy)
    except SketchFileError as e:
        warn(f"skipped {e}")
        return None
    try:
        raw = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        warn(f"skipped {npy}: its labels {js} cannot be read ({e})")
        return None
    if not isinstance(raw, list):
        warn(f"skipped {npy}: {js} is not a list of stroke labels")
        return None
    stroke_names: list[str] = []
    for k, v in enumerate(raw):
        if isinstance(v, str) and v.strip():
            stroke_names.append(v.strip())
        elif isinstance(v, int) and not isinstance(v, bool) and names and 0 <= v < len(names):
            stroke_names.append(names[v])
        else:
            warn(f"skipped {npy}: label {k} in {js} is {v!r} (a name or a class index expected)")
            return None
    if len(stroke_names) != len(sketch.strokes):
        warn(f"skipped {npy}: {len(sketch.strokes)} strokes but {len(stroke_names)} labels in {js}")
        return None
    labels, remap = _distinct(stroke_names)
    return SceneSample(
        sketch=sketch,
        labels=labels,
        stroke_labels=np.array(remap, dtype=np.int64),
        group=group,
        source=str(npy),
    )
