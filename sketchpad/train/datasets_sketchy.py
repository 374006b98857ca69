"""Sketchy (Sangkloy 2016) and Sketchy-Extended (Liu 2017) as sketch–photo pairs (REFERENCE §3).

Layout (``root`` is the folder holding these; ``rendered_256x256/`` itself or its
``256x256/`` are accepted too, the rest then being looked for one or two levels up)::

    rendered_256x256/256x256/photo/tx_*/<class>/<ImageNetID>.jpg
    rendered_256x256/256x256/sketch/tx_*/<class>/<ImageNetID>-<k>.png
    sketches-06-04/sketches/<class>/<ImageNetID>-<k>.svg     (or sketches/; optional)
    info-06-04/info/stats.csv, testset.txt, invalid-*.txt    (or info/; optional)
    EXTEND_image_sketchy/<class>/*.jpg                        (or extended_photo/; Extended)

- The augmentation folders are chosen by name (``tx_000000000000``: the whole image scaled
  to 256², the default; ``tx_000100000000``: the bounding box plus 10 %; sketches have four
  more, see REFERENCE §3). The photos always come from the rendered folder, also when the
  sketches are the SVG files.
- Invalid sketches: a sketch id (``<ImageNetID>-<k>``) listed in ``invalid-<kind>.txt`` or
  flagged in ``stats.csv`` (``Error?``, ``Ambiguous?``, ``WrongPose?``, ``Context?`` = 1) for a
  kind in ``drop`` is left out. Without the info folder every sketch is kept (with a note).
  The per-class ``checked.txt`` / ``invalid.txt`` of the SVG folders are not read (their
  format is not documented).
- ``testset.txt`` lists the test photos as ``<class>/<ImageNetID>.jpg``; a sketch belongs to
  the split of its photo. Extended photos are all training photos.
- Class names are matched across files by :func:`class_key`, so ``car_(sedan)`` (folder) and
  ``car (sedan)`` (``stats.csv``) are one class; folders keep their own spelling.
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.train.datasets_common import (
    DatasetError,
    Warn,
    class_key,
    load_photo_file,
    load_sketch_file,
    log_warning,
    read_small_text,
    subfolders,
)

#: The 21 unseen classes of the zero-shot SBIR split of Sketchy-Extended (Yelamarthi 2018).
SKETCHY_UNSEEN_21: tuple[str, ...] = (
    "bat", "cabin", "cow", "dolphin", "door", "giraffe", "helicopter", "mouse", "pear",
    "raccoon", "rhinoceros", "saw", "scissors", "seagull", "skyscraper", "songbird", "sword",
    "tree", "wheelchair", "windmill", "window",
)  # fmt: skip
#: The default augmentation folder of photos and sketches: the whole image scaled to 256².
DEFAULT_TX = "tx_000000000000"
#: The kinds of invalid sketch (``info/invalid-<kind>.txt``), all dropped by default.
INVALID_KINDS: tuple[str, ...] = ("error", "ambiguous", "pose", "context")
#: ``stats.csv`` column flagging each kind.
_STATS_COLUMNS = {
    "error": "Error?",
    "ambiguous": "Ambiguous?",
    "pose": "WrongPose?",
    "context": "Context?",
}
EXTENDED_FOLDERS = ("EXTEND_image_sketchy", "extended_photo")
_PHOTO_EXTS = (".jpg", ".jpeg", ".png")
_SKETCH_NAME = re.compile(r"^(?P<id>.+)-(?P<k>\d+)$")
#: Files of the SVG class folders that are not sketches.
_SVG_META = ("checked.txt", "invalid.txt")

SketchFormat = Literal["png", "svg"]
Split = Literal["all", "train", "test"]


@dataclass(frozen=True)
class SketchyPhoto:
    """A photo: ``instance_id`` is its ImageNet id (the file stem); ``extended`` for a
    Sketchy-Extended photo, which has no sketches of its own."""

    path: Path
    category: str
    instance_id: str
    extended: bool = False

    def load(self, warn: Warn = log_warning) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB, or None after reporting why the file cannot be read."""
        return load_photo_file(self.path, warn)


@dataclass(frozen=True)
class SketchySketch:
    """A sketch file (rendered ``.png`` or ``.svg``) of photo ``instance_id``; ``index`` is k."""

    path: Path
    category: str
    instance_id: str
    index: int

    @property
    def sketch_id(self) -> str:
        """``<ImageNetID>-<k>``, as the info files name it."""
        return f"{self.instance_id}-{self.index}"

    def load(self, warn: Warn = log_warning) -> Sketch | None:
        """The sketch (raster-only for a ``.png``), or None after reporting the file."""
        return load_sketch_file(self.path, warn)


@dataclass(frozen=True)
class SketchPhotoPair:
    """One training pair; ``fine_grained`` when the photo is the sketch's own photo."""

    sketch_path: Path
    photo_path: Path
    category: str
    sketch_id: str
    photo_id: str

    @property
    def fine_grained(self) -> bool:
        return self.sketch_id.rsplit("-", 1)[0] == self.photo_id

    def load_sketch(self, warn: Warn = log_warning) -> Sketch | None:
        return load_sketch_file(self.sketch_path, warn)

    def load_photo(self, warn: Warn = log_warning) -> np.ndarray | None:
        return load_photo_file(self.photo_path, warn)


@dataclass(frozen=True)
class SketchyDataset:
    """What :func:`read_sketchy` listed. Nothing is decoded yet.

    Attributes:
        root: the dataset folder.
        photos: Sketchy photos, then extended ones; each sorted by class and name.
        sketches: the valid sketches, sorted by class and name.
        dropped: ids of the sketches left out as invalid, sorted.
        test_photos: (class key, ImageNet id) of the photos in ``testset.txt``.
    """

    root: Path
    photos: tuple[SketchyPhoto, ...]
    sketches: tuple[SketchySketch, ...]
    dropped: tuple[str, ...] = ()
    test_photos: frozenset[tuple[str, str]] = field(default=frozenset(), repr=False)

    @property
    def categories(self) -> tuple[str, ...]:
        """The class names (folder spelling) with sketches or photos, sorted."""
        return tuple(
            sorted({s.category for s in self.sketches} | {p.category for p in self.photos})
        )

    def is_test_photo(self, category: str, instance_id: str) -> bool:
        return (class_key(category), instance_id) in self.test_photos

    def split(self, which: Split) -> SketchyDataset:
        """The photos and sketches of one side of ``testset.txt`` (extended photos: train).

        Raises:
            DatasetError: no ``testset.txt`` was found.
        """
        if which == "all":
            return self
        if not self.test_photos:
            raise DatasetError(f"{self.root}: no info/testset.txt, so no train/test split")
        test = which == "test"
        photos = [
            p
            for p in self.photos
            if (not p.extended and self.is_test_photo(p.category, p.instance_id)) == test
        ]
        sketches = [
            s for s in self.sketches if self.is_test_photo(s.category, s.instance_id) == test
        ]
        return replace(self, photos=tuple(photos), sketches=tuple(sketches))

    def with_categories(self, names: Iterable[str]) -> SketchyDataset:
        """Only the classes named (any spelling, see :func:`class_key`)."""
        keys = {class_key(n) for n in names}
        return replace(
            self,
            photos=tuple(p for p in self.photos if class_key(p.category) in keys),
            sketches=tuple(s for s in self.sketches if class_key(s.category) in keys),
        )

    def photos_by_category(self, *, extended: bool = True) -> dict[str, list[SketchyPhoto]]:
        out: dict[str, list[SketchyPhoto]] = {}
        for p in self.photos:
            if extended or not p.extended:
                out.setdefault(class_key(p.category), []).append(p)
        return out

    def fine_grained_pairs(self, warn: Warn = log_warning) -> list[SketchPhotoPair]:
        """Each sketch with its own photo (same class, same ImageNet id); a sketch whose photo
        is missing is reported and left out."""
        own = {(class_key(p.category), p.instance_id): p for p in self.photos if not p.extended}
        pairs = []
        for s in self.sketches:
            p = own.get((class_key(s.category), s.instance_id))
            if p is None:
                warn(f"skipped {s.path}: no photo {s.instance_id} in class {s.category}")
                continue
            pairs.append(SketchPhotoPair(s.path, p.path, s.category, s.sketch_id, p.instance_id))
        return pairs

    def category_pairs(
        self, seed: int = 0, *, extended: bool = True, warn: Warn = log_warning
    ) -> list[SketchPhotoPair]:
        """Each sketch with a photo of its class drawn at random (seeded; Sketchy-Extended
        photos included when ``extended``). Classes without photos are reported and left out."""
        draws = np.random.default_rng(seed).random(len(self.sketches)).tolist()
        by_class = self.photos_by_category(extended=extended)
        pairs, missing = [], set()
        for s, u in zip(self.sketches, draws, strict=True):
            photos = by_class.get(class_key(s.category))
            if not photos:
                if s.category not in missing:
                    warn(f"class {s.category}: sketches but no photos; its sketches are left out")
                    missing.add(s.category)
                continue
            p = photos[int(u * len(photos))]
            pairs.append(SketchPhotoPair(s.path, p.path, s.category, s.sketch_id, p.instance_id))
        return pairs


# ---------------------------------------------------------------- class splits


@dataclass(frozen=True)
class ClassSplit:
    """Classes for zero-shot training: train on ``seen``, test on ``unseen`` (disjoint)."""

    seen: tuple[str, ...]
    unseen: tuple[str, ...]


def split_classes(
    categories: Sequence[str],
    unseen: Sequence[str] = SKETCHY_UNSEEN_21,
    *,
    warn: Warn = log_warning,
) -> ClassSplit:
    """``categories`` split into the ``unseen`` ones (matched by :func:`class_key`) and the
    rest; unseen names that are not among ``categories`` are reported."""
    keys = {class_key(u) for u in unseen}
    present = {class_key(c) for c in categories}
    absent = [u for u in unseen if class_key(u) not in present]
    if absent:
        warn(f"unseen classes not in the dataset: {', '.join(absent)}")
    return ClassSplit(
        seen=tuple(c for c in categories if class_key(c) not in keys),
        unseen=tuple(c for c in categories if class_key(c) in keys),
    )


def random_class_split(categories: Sequence[str], k: int, seed: int = 0) -> ClassSplit:
    """``k`` classes drawn at random (seeded) as unseen, the rest seen; both in input order.

    Raises:
        ValueError: ``k`` is not between 0 and the number of classes.
    """
    if not 0 <= k <= len(categories):
        raise ValueError(f"k must be between 0 and {len(categories)} (the classes), got {k}")
    chosen = set(random.Random(seed).sample(list(categories), k))
    return ClassSplit(
        seen=tuple(c for c in categories if c not in chosen),
        unseen=tuple(c for c in categories if c in chosen),
    )


# ---------------------------------------------------------------- finding the folders


def find_rendered(path: Path) -> Path | None:
    """The ``256x256`` folder (holding ``photo/`` and ``sketch/``) of a Sketchy folder."""
    for cand in (path / "rendered_256x256" / "256x256", path / "256x256", path):
        if (cand / "photo").is_dir() and (cand / "sketch").is_dir():
            return cand
    return None


def _around(path: Path) -> list[Path]:
    """``path`` and up to two parents: where the info, SVG and extended folders may be."""
    out = [path]
    for p in path.parents[:2]:
        out.append(p)
    return out


def _first_dir(path: Path, names: Sequence[str]) -> Path | None:
    for base in _around(path):
        for n in names:
            if (base / n).is_dir():
                return base / n
    return None


def find_extended(path: Path) -> Path | None:
    """``EXTEND_image_sketchy/`` or ``extended_photo/`` beside a Sketchy folder."""
    return _first_dir(path, EXTENDED_FOLDERS)


def _tx_folder(base: Path, tx: str) -> Path:
    folder = base / tx
    if not folder.is_dir():
        found = sorted(p.name for p in subfolders(base) if p.name.startswith("tx_"))
        raise DatasetError(
            f"{base}: no augmentation folder {tx}; found {', '.join(found) or 'none'}"
        )
    return folder


# ---------------------------------------------------------------- reading


def read_sketchy(
    path: str | os.PathLike[str],
    *,
    photo_tx: str = DEFAULT_TX,
    sketch_tx: str = DEFAULT_TX,
    sketch_format: SketchFormat = "png",
    drop: Iterable[str] = INVALID_KINDS,
    extended: bool | str | os.PathLike[str] = False,
    warn: Warn = log_warning,
) -> SketchyDataset:
    """List Sketchy's photos and sketches (see the module notes).

    Args:
        path: the dataset folder.
        photo_tx, sketch_tx: the augmentation folders (``tx_…``) of photos and of rendered
            sketches.
        sketch_format: ``"png"``: the rendered sketches; ``"svg"``: the vector sketches of
            ``sketches-06-04/sketches`` (then ``sketch_tx`` is not used).
        drop: the kinds of invalid sketch to leave out (of ``INVALID_KINDS``).
        extended: add the Sketchy-Extended photos: True to find their folder beside the
            dataset, or the folder itself.
        warn: receives one line per file or entry skipped, and per missing optional file.

    Raises:
        DatasetError: not a Sketchy folder, a ``tx`` folder that is not there, no SVG
            folder for ``"svg"``, no extended folder when one was asked for.
    """
    root = Path(path)
    rendered = find_rendered(root) if root.is_dir() else None
    if rendered is None:
        raise DatasetError(
            f"{root}: not a Sketchy folder: expected rendered_256x256/256x256/{{photo,sketch}}/"
            "tx_*/<class>/ (the folder holding rendered_256x256, or that folder itself)"
        )
    drop = tuple(drop)
    bad_kinds = [k for k in drop if k not in INVALID_KINDS]
    if bad_kinds:
        raise ValueError(f"unknown invalid kinds {bad_kinds}; expected some of {INVALID_KINDS}")
    photos = _list_photos(_tx_folder(rendered / "photo", photo_tx), warn)
    if sketch_format == "svg":
        svg_root = _first_dir(rendered, ("sketches-06-04/sketches", "sketches"))
        if svg_root is None:
            raise DatasetError(f"{root}: no sketches-06-04/sketches/<class>/*.svg folder")
        sketches = _list_sketches(svg_root, ".svg", warn)
    else:
        sketches = _list_sketches(_tx_folder(rendered / "sketch", sketch_tx), ".png", warn)

    info = _first_dir(rendered, ("info-06-04/info", "info"))
    invalid: set[str] = set()
    test: frozenset[tuple[str, str]] = frozenset()
    if info is None:
        warn(f"{root}: no info-06-04/info folder: keeping every sketch, no train/test split")
    else:
        invalid = _invalid_ids(info, drop, warn)
        test = _test_photos(info, warn)
    kept = tuple(s for s in sketches if s.sketch_id not in invalid)
    dropped = tuple(sorted(s.sketch_id for s in sketches if s.sketch_id in invalid))

    classes = {class_key(p.category) for p in photos}
    for c in sorted({s.category for s in kept if class_key(s.category) not in classes}):
        warn(f"class {c}: sketches but no photo folder in {photo_tx}")
    if extended is not False:
        ext = find_extended(rendered) if extended is True else Path(extended)
        if ext is None:
            folders = " or ".join(EXTENDED_FOLDERS)
            raise DatasetError(f"{root}: no Sketchy-Extended photos ({folders}/<class>/*.jpg)")
        if not ext.is_dir():
            raise DatasetError(f"{ext}: not a folder of Sketchy-Extended photos")
        photos += _list_extended(ext, {class_key(s.category): s.category for s in kept}, warn)
    return SketchyDataset(root, tuple(photos), kept, dropped, test)


def read_sketchy_extended(
    path: str | os.PathLike[str],
    *,
    extended_dir: str | os.PathLike[str] | None = None,
    photo_tx: str = DEFAULT_TX,
    sketch_tx: str = DEFAULT_TX,
    sketch_format: SketchFormat = "png",
    drop: Iterable[str] = INVALID_KINDS,
    warn: Warn = log_warning,
) -> SketchyDataset:
    """:func:`read_sketchy` with the Sketchy-Extended photos, found beside the dataset
    (``EXTEND_image_sketchy/`` or ``extended_photo/``) or in ``extended_dir``."""
    return read_sketchy(
        path,
        photo_tx=photo_tx,
        sketch_tx=sketch_tx,
        sketch_format=sketch_format,
        drop=drop,
        extended=True if extended_dir is None else extended_dir,
        warn=warn,
    )


def _entries(cls: Path) -> list[tuple[Path, str, str, bool]]:
    """(path, stem, lower-case extension, is a file) of each entry of a class folder, by name.

    Paths are joined to ``cls`` rather than parsed: listing 75,000 sketches stays fast."""
    with os.scandir(cls) as it:
        entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    out = []
    for e in entries:
        stem, ext = os.path.splitext(e.name)
        out.append((cls / e.name, stem, ext.lower(), e.is_file()))
    return out


def _list_photos(folder: Path, warn: Warn) -> list[SketchyPhoto]:
    photos = []
    for cls in subfolders(folder):
        for p, stem, ext, is_file in _entries(cls):
            if is_file and ext in _PHOTO_EXTS:
                photos.append(SketchyPhoto(p, cls.name, stem))
            else:
                warn(f"skipped {p}: not a photo (.jpg) file")
    return photos


def _list_sketches(folder: Path, ext: str, warn: Warn) -> list[SketchySketch]:
    sketches = []
    for cls in subfolders(folder):
        for p, stem, file_ext, is_file in _entries(cls):
            if ext == ".svg" and p.name in _SVG_META:
                continue
            m = _SKETCH_NAME.match(stem)
            if not is_file or file_ext != ext or m is None:
                warn(f"skipped {p}: not a sketch file named <ImageNetID>-<k>{ext}")
                continue
            sketches.append(SketchySketch(p, cls.name, m["id"], int(m["k"])))
    return sketches


def _list_extended(folder: Path, known: dict[str, str], warn: Warn) -> list[SketchyPhoto]:
    photos = []
    for cls in subfolders(folder):
        name = known.get(class_key(cls.name))
        if name is None:
            warn(f"{cls}: a Sketchy-Extended class with no Sketchy sketches")
            name = cls.name
        for p, stem, ext, is_file in _entries(cls):
            if is_file and ext in _PHOTO_EXTS:
                photos.append(SketchyPhoto(p, name, stem, extended=True))
            else:
                warn(f"skipped {p}: not a photo (.jpg) file")
    if not photos:
        raise DatasetError(f"{folder}: no photos in <class>/*.jpg sub-folders")
    return photos


def _sketch_id(entry: str) -> str:
    """An invalid-list entry as ``<ImageNetID>-<k>``: tolerates a path, an extension and a
    comma for the dash."""
    name = entry.strip().replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"\.(png|svg|jpg)$", "", name, flags=re.IGNORECASE)
    return re.sub(r"\s*,\s*(\d+)$", r"-\1", name)


def _invalid_ids(info: Path, drop: Sequence[str], warn: Warn) -> set[str]:
    ids: set[str] = set()
    for kind in drop:
        f = info / f"invalid-{kind}.txt"
        if not f.is_file():
            warn(f"{info}: no invalid-{kind}.txt; only stats.csv marks {kind} sketches")
            continue
        text = read_small_text(f, warn, what="list")
        if text is not None:
            ids.update(_sketch_id(line) for line in text.splitlines() if line.strip())
    stats = info / "stats.csv"
    if drop and stats.is_file():
        ids |= _flagged_in_stats(stats, drop, warn)
    elif drop:
        warn(f"{info}: no stats.csv")
    return ids


def _flagged_in_stats(stats: Path, drop: Sequence[str], warn: Warn) -> set[str]:
    text = read_small_text(stats, warn, what="table")
    if text is None:
        return set()
    rows = csv.DictReader(io.StringIO(text))
    columns = [_STATS_COLUMNS[k] for k in drop]
    needed = ["ImageNetID", "SketchID", *columns]
    missing = [c for c in needed if c not in (rows.fieldnames or [])]
    if missing:
        warn(f"{stats}: no column {', '.join(missing)}; its flags are not used")
        return set()
    ids = set()
    for n, row in enumerate(rows, start=2):
        try:
            flagged = any(int(row[c] or 0) for c in columns)
            sketch = f"{row['ImageNetID'].strip()}-{int(row['SketchID'])}"
        except (ValueError, TypeError, AttributeError):
            warn(f"{stats}: line {n} is not a sketch row (ImageNetID, SketchID, 0/1 flags)")
            continue
        if flagged:
            ids.add(sketch)
    return ids


def _test_photos(info: Path, warn: Warn) -> frozenset[tuple[str, str]]:
    f = info / "testset.txt"
    if not f.is_file():
        warn(f"{info}: no testset.txt: no train/test split")
        return frozenset()
    text = read_small_text(f, warn, what="list")
    if text is None:
        return frozenset()
    out = set()
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.strip().replace("\\", "/").split("/")
        if len(parts) < 2 or not parts[-1]:
            if line.strip():
                warn(f"{f}: line {n} is not <class>/<ImageNetID>.jpg: {line.strip()!r}")
            continue
        out.add((class_key(parts[-2]), Path(parts[-1]).stem))
    return frozenset(out)
