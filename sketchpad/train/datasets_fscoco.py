"""FS-COCO scene sketches paired with their captions, for training the scene labeller.

Two layouts (REFERENCE §3):

- **FS-COCO** (``read_fscoco``): ``fscoco/{images,raster_sketches,vector_sketches,text}/
  <participant>/<coco_id>.{jpg,jpg,npy,txt}``, paired by participant and file stem. The
  sketch is the vector ``.npy`` ((N, 3) absolute x, y, pen; pen 1 ends a stroke, 2 may end the
  drawing), else the raster. ``val_normal.txt`` (one COCO id a line, in the folder or one
  up) is the official validation list. A ``classes/<participant>/<coco_id>.json`` beside the
  vector sketches, if present, gives per-stroke labels as in FSCOCO-Seg.
- **FSCOCO-Seg** (``read_fscoco_seg``, the SSS code's layout): ``train/{sketches,text}/
  <subdir>/<file>`` (captions only), and ``test/`` (or ``val/``) with ``vector_sketches/*.npy``,
  ``classes/*.json`` (one label per stroke: a name or an index into ``all_classes.json``),
  ``captions/`` and ``images/``. Folders and files are paired by name, or, where no names
  match and the counts agree, in sorted order (as the SSS code does). Sketches are paired with
  their label files by :mod:`sketchpad.train.datasets_scene`, which also reads the labels.

Captions are read while listing (small files); sketches, photos and labels are decoded when a
sample is used. A sample with no caption is reported and left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.train.datasets_common import (
    DatasetError,
    Warn,
    load_photo_file,
    load_sketch_file,
    log_warning,
    pair_by_name,
    read_small_text,
    subfolders,
)
from sketchpad.train.datasets_scene import (
    SceneSample,
    _class_names,
    _fscoco_roots,
    _fscoco_sample,
    _pairs,
)

FscocoSplit = Literal["all", "train", "val"]
SegSplit = Literal["all", "train", "val", "test"]
_RAW_FOLDERS = ("images", "raster_sketches", "vector_sketches", "text")
_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class CaptionedSketch:
    """A scene sketch and its caption.

    Attributes:
        sketch_path: the vector ``.npy`` sketch, or a raster image where there is none.
        caption: the caption text, stripped.
        photo_path: the COCO photo, if the layout has it.
        raster_path: the raster rendering, if the layout has one besides the vector file.
        labels_path: ``classes/…json`` with one label per stroke (FSCOCO-Seg test/val).
        class_names: ``all_classes.json`` for labels given as indices.
        group: the participant sub-folder, or the split folder's name.
        source: ``"fscoco"``, or ``"fscoco-seg/<split folder>"``.
    """

    sketch_path: Path
    caption: str
    photo_path: Path | None = None
    raster_path: Path | None = None
    labels_path: Path | None = None
    class_names: tuple[str, ...] | None = field(default=None, repr=False)
    group: str = ""
    source: str = "fscoco"

    @property
    def instance_id(self) -> str:
        """The file stem (the COCO id in FS-COCO)."""
        return self.sketch_path.stem

    @property
    def has_stroke_labels(self) -> bool:
        return self.labels_path is not None

    def load_sketch(self, warn: Warn = log_warning) -> Sketch | None:
        """The sketch, or None after reporting the file."""
        return load_sketch_file(self.sketch_path, warn)

    def load_photo(self, warn: Warn = log_warning) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB; None when there is no photo or it cannot be read (reported)."""
        return None if self.photo_path is None else load_photo_file(self.photo_path, warn)

    def load_labelled(self, warn: Warn = log_warning) -> SceneSample | None:
        """The sketch with its per-stroke labels (``SceneSample.stroke_labels`` index
        ``labels``), or None after reporting why (no labels, unreadable, counts differ)."""
        if self.labels_path is None:
            warn(f"{self.sketch_path}: no per-stroke labels")
            return None
        names = list(self.class_names) if self.class_names is not None else None
        return _fscoco_sample(self.sketch_path, self.labels_path, names, self.group, warn)


def _id_key(stem: str) -> str:
    """COCO ids compared as numbers (``000123`` = ``123``)."""
    return str(int(stem)) if stem.isdigit() else stem


def _folder_order(p: Path) -> tuple[int, str]:
    return (int(p.name), "") if p.name.isdigit() else (1 << 30, p.name)


def _caption(path: Path, warn: Warn) -> str | None:
    text = read_small_text(path, warn, what="caption")
    if text is not None and not text.strip():
        warn(f"skipped {path}: the caption is empty")
        return None
    return None if text is None else text.strip()


def _by_stem(folder: Path, exts: tuple[str, ...], warn: Warn) -> dict[str, Path]:
    """Files of ``folder`` with one of ``exts`` by stem; other files reported."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    with os.scandir(folder) as it:
        for e in sorted(it, key=lambda e: e.name):
            if e.name.startswith("."):
                continue
            p = Path(e.path)
            if e.is_file() and p.suffix.lower() in exts:
                out[p.stem] = p
            else:
                warn(f"skipped {p}: not a {'/'.join(exts)} file")
    return out


# ---------------------------------------------------------------- FS-COCO


def find_fscoco_root(path: Path) -> Path | None:
    """The folder holding ``vector_sketches/`` (or ``raster_sketches/``) and ``text/``: ``path``
    or its ``fscoco/``."""
    for cand in (path, path / "fscoco"):
        sketches = (cand / "vector_sketches").is_dir() or (cand / "raster_sketches").is_dir()
        if sketches and (cand / "text").is_dir():
            return cand
    return None


def read_val_list(path: Path, warn: Warn = log_warning) -> frozenset[str]:
    """The ids of ``val_normal.txt`` (one a line; a ``<participant>/<id>`` path is accepted)."""
    text = read_small_text(path, warn, what="list")
    if text is None:
        raise DatasetError(f"{path}: the validation list cannot be read")
    return frozenset(
        _id_key(Path(line.strip().replace("\\", "/")).stem)
        for line in text.splitlines()
        if line.strip()
    )


def read_fscoco(
    path: str | os.PathLike[str],
    *,
    split: FscocoSplit = "all",
    val_list: str | os.PathLike[str] | None = None,
    warn: Warn = log_warning,
) -> list[CaptionedSketch]:
    """The captioned sketches of FS-COCO (see the module notes), by participant then id.

    Args:
        path: ``fscoco/`` or the folder holding it.
        split: ``"val"``: the ids of the validation list; ``"train"``: the others.
        val_list: the validation list; default ``val_normal.txt`` in the folder or one up.
        warn: receives one line per file skipped or missing.

    Raises:
        DatasetError: not an FS-COCO folder; a split asked for without a validation list.
    """
    given = Path(path)
    root = find_fscoco_root(given) if given.is_dir() else None
    if root is None:
        raise DatasetError(
            f"{given}: not an FS-COCO folder: expected fscoco/{{images,raster_sketches,"
            "vector_sketches,text}/<participant>/<coco_id>.{jpg,jpg,npy,txt}"
        )
    val: frozenset[str] | None = None
    if split != "all":
        found = [Path(val_list)] if val_list is not None else []
        found += [d / "val_normal.txt" for d in (root, root.parent) if val_list is None]
        lists = [f for f in found if f.is_file()]
        if not lists:
            raise DatasetError(f"{root}: no validation list ({found[0]}) for split {split!r}")
        val = read_val_list(lists[0], warn)
    names = _class_names(root, warn) if (root / "classes").is_dir() else None
    samples = []
    groups = {p.name for d in ("vector_sketches", "raster_sketches") for p in _subs(root / d)}
    for group in sorted(groups, key=lambda g: _folder_order(Path(g))):
        vectors = _by_stem(root / "vector_sketches" / group, (".npy",), warn)
        rasters = _by_stem(root / "raster_sketches" / group, _IMAGE_EXTS, warn)
        photos = _by_stem(root / "images" / group, _IMAGE_EXTS, warn)
        for stem in sorted(vectors.keys() | rasters.keys(), key=lambda s: _folder_order(Path(s))):
            if val is not None and (_id_key(stem) in val) != (split == "val"):
                continue
            sketch = vectors.get(stem) or rasters[stem]
            text = root / "text" / group / f"{stem}.txt"
            if not text.is_file():
                warn(f"skipped {sketch}: no caption {text}")
                continue
            caption = _caption(text, warn)
            if caption is None:
                continue
            photo = photos.get(stem)
            if photo is None:
                warn(f"{sketch}: no photo {root / 'images' / group / stem}.jpg")
            labels = root / "classes" / group / f"{stem}.json"
            samples.append(
                CaptionedSketch(
                    sketch_path=sketch,
                    caption=caption,
                    photo_path=photo,
                    raster_path=rasters.get(stem) if stem in vectors else None,
                    labels_path=labels if labels.is_file() else None,
                    class_names=tuple(names) if names is not None else None,
                    group=group,
                    source="fscoco",
                )
            )
    return samples


def _subs(folder: Path) -> list[Path]:
    return subfolders(folder) if folder.is_dir() else []


# ---------------------------------------------------------------- FSCOCO-Seg


def _train_splits(root: Path) -> list[Path]:
    cands = [root, *_subs(root)]
    return [c for c in cands if (c / "sketches").is_dir() and (c / "text").is_dir()]


def is_fscoco_seg(path: Path) -> bool:
    """Whether ``path`` holds an FSCOCO-Seg split (or is one)."""
    return bool(_train_splits(path) or _fscoco_roots(path))


def read_fscoco_seg(
    path: str | os.PathLike[str], *, split: SegSplit = "all", warn: Warn = log_warning
) -> list[CaptionedSketch]:
    """The captioned sketches of FSCOCO-Seg (see the module notes): the training split's
    captioned sketches, then the labelled splits' ones with their per-stroke labels.

    Args:
        path: the folder holding ``train/``, ``test/`` … or one split folder.
        split: only the split folder of that name (``"all"``: every split found).
        warn: receives one line per file skipped or unpaired.

    Raises:
        DatasetError: no split folder in the FSCOCO-Seg layout (of that name).
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    train = _train_splits(root)
    labelled = [s for s in _fscoco_roots(root) if s not in train]
    if split != "all":
        train = [s for s in train if s.name == split]
        labelled = [s for s in labelled if s.name == split]
    if not train and not labelled:
        which = "" if split == "all" else f" named {split!r}"
        raise DatasetError(
            f"{root}: no FSCOCO-Seg split folder{which}: expected train/{{sketches,text}}/"
            "<subdir>/<file> or test/{images,captions,vector_sketches,classes}/"
        )
    samples = []
    for s in train:
        samples += _read_seg_train(s, warn)
    for s in labelled:
        samples += _read_seg_labelled(s, warn)
    return samples


def _files_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _read_seg_train(split: Path, warn: Warn) -> list[CaptionedSketch]:
    sketch_dirs, text_dirs = _subs(split / "sketches"), _subs(split / "text")
    if not sketch_dirs:  # files directly in sketches/ and text/
        sketch_dirs, text_dirs = [split / "sketches"], [split / "text"]
    samples = []
    source = f"fscoco-seg/{split.name}"
    for sdir, tdir in pair_by_name(sketch_dirs, text_dirs, warn, by_order=True, what="text"):
        if tdir is None:
            continue
        files = [p for p in _files_below(sdir) if p.parent == sdir]
        texts = [p for p in _files_below(tdir) if p.parent == tdir]
        for sketch, text in pair_by_name(files, texts, warn, by_order=True, what="caption"):
            caption = None if text is None else _caption(text, warn)
            if caption is not None:
                group = sdir.name if sdir != split / "sketches" else split.name
                samples.append(CaptionedSketch(sketch, caption, group=group, source=source))
    return samples


def _read_seg_labelled(split: Path, warn: Warn) -> list[CaptionedSketch]:
    if not (split / "captions").is_dir():
        warn(
            f"{split}: no captions/ folder; its sketches are left out (for the labels alone: "
            "datasets_scene.read_fscoco_labelled)"
        )
        return []
    names = _class_names(split, warn)
    pairs = _pairs(split, warn)
    npys = [v for v, _ in pairs]
    texts = _files_below(split / "captions")
    captions = dict(pair_by_name(npys, texts, warn, by_order=True, what="caption"))
    photos: dict[Path, Path | None] = {}
    if (split / "images").is_dir():
        photos = dict(
            pair_by_name(npys, _files_below(split / "images"), warn, by_order=True, what="photo")
        )
    samples = []
    for npy, labels in pairs:
        text = captions.get(npy)
        caption = None if text is None else _caption(text, warn)
        if caption is None:
            continue
        rel = npy.parent.relative_to(split / "vector_sketches")
        samples.append(
            CaptionedSketch(
                sketch_path=npy,
                caption=caption,
                photo_path=photos.get(npy),
                labels_path=labels,
                class_names=tuple(names) if names is not None else None,
                group=str(rel) if str(rel) != "." else split.name,
                source=f"fscoco-seg/{split.name}",
            )
        )
    return samples
