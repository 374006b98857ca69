"""A folder of photos with class masks and sketches per class, for ``sketchpad eval segmenter``.

Layout (PASCAL VOC's, plus a sketch folder)::

    DATA/JPEGImages/<id>.jpg            the photos (any format the gallery decodes)
    DATA/SegmentationClass/<id>.png     indexed PNG, pixel = class index (0 background,
                                        255 void: left out of every metric)
    DATA/class_names.txt                one class name per line, line k = index k
    DATA/sketches/<class>/*             sketches of each class, any file
                                        ``sketchpad.sketch.io.read_sketch`` reads (the first
                                        drawing of a multi-drawing file)

A sketch folder matches a class when both reduce to the same letters and digits
(:func:`~sketchpad.train.datasets_common.class_key`): ``sketches/tvmonitor`` and
``sketches/tv_monitor`` are ``tv/monitor``, ``sketches/potted_plant`` is ``potted plant``.
A photo is evaluated for every class of its mask that has sketches, with each of them (or
the first ``N``). Unreadable files are reported through ``warn`` by name and left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.train.datasets_common import (
    DatasetError,
    Warn,
    class_key,
    load_sketch_file,
    read_small_text,
    subfolders,
)
from sketchpad.train.seg_eval import SegSample

PHOTO_DIR, MASK_DIR, SKETCH_DIR, CLASSES_FILE = (
    "JPEGImages",
    "SegmentationClass",
    "sketches",
    "class_names.txt",
)
VOID = 255
_PHOTO_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LAYOUT = (
    f"{PHOTO_DIR}/*.jpg, {MASK_DIR}/*.png (class index per pixel, 0 background, 255 void), "
    f"{CLASSES_FILE} and {SKETCH_DIR}/<class>/<sketch files>"
)


@dataclass(frozen=True)
class SegEvalData:
    """The files of a dataset (listed, not decoded).

    Attributes:
        root: the folder.
        class_names: index → name (index 0 is the background).
        items: (photo, mask) paths of the same stem, by name.
        sketch_files: class name → its sketch files, sorted (classes without sketches absent).
    """

    root: Path
    class_names: tuple[str, ...]
    items: tuple[tuple[Path, Path], ...]
    sketch_files: dict[str, tuple[Path, ...]]


def _files(folder: Path, exts: Sequence[str]) -> list[Path]:
    with os.scandir(folder) as it:
        found = [
            Path(e.path)
            for e in it
            if not e.name.startswith(".") and e.name.lower().endswith(tuple(exts))
        ]
    return sorted(found, key=lambda p: p.name)


def read_seg_eval_data(root: str | Path, warn: Warn) -> SegEvalData:
    """List the dataset in ``root`` (layout in the module docstring).

    Raises:
        DatasetError: a part of the layout is missing, or nothing can be evaluated.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected {LAYOUT})")
    missing = [n for n in (PHOTO_DIR, MASK_DIR, SKETCH_DIR) if not (root / n).is_dir()]
    missing += [CLASSES_FILE] if not (root / CLASSES_FILE).is_file() else []
    if missing:
        raise DatasetError(f"{root}: no {', '.join(missing)} (expected {LAYOUT})")
    text = read_small_text(root / CLASSES_FILE, warn, what="class list")
    names = tuple(line.strip() for line in (text or "").splitlines())
    while names and not names[-1]:
        names = names[:-1]
    if len(names) < 2:
        raise DatasetError(f"{root / CLASSES_FILE}: needs the background and at least 1 class")
    masks = {p.stem: p for p in _files(root / MASK_DIR, (".png",))}
    items = []
    for photo in _files(root / PHOTO_DIR, _PHOTO_EXTS):
        if photo.stem in masks:
            items.append((photo, masks.pop(photo.stem)))
        else:
            warn(f"skipped {photo}: no mask {MASK_DIR}/{photo.stem}.png")
    for mask in masks.values():
        warn(f"skipped {mask}: no photo of that name in {PHOTO_DIR}")
    by_key = {class_key(n): n for n in names[1:] if class_key(n)}
    sketch_files: dict[str, tuple[Path, ...]] = {}
    for folder in subfolders(root / SKETCH_DIR):
        name = by_key.get(class_key(folder.name))
        if name is None:
            warn(f"skipped {folder}: no class of that name in {CLASSES_FILE}")
            continue
        files = tuple(f for f in _files(folder, ("",)) if f.is_file())
        if files:
            sketch_files[name] = sketch_files.get(name, ()) + files
    if not items:
        raise DatasetError(f"{root}: no photo with a mask (expected {LAYOUT})")
    if not sketch_files:
        raise DatasetError(f"{root / SKETCH_DIR}: no sketches of any class in {CLASSES_FILE}")
    return SegEvalData(root, names, tuple(items), sketch_files)


def load_sketches(
    data: SegEvalData, warn: Warn, *, per_class: int | None = None
) -> dict[str, list[tuple[str, Sketch]]]:
    """Class → its readable sketches as (file, sketch): the first ``per_class`` that can be
    read (all when None); unreadable or empty ones are reported and skipped."""
    out: dict[str, list[tuple[str, Sketch]]] = {}
    for name, files in data.sketch_files.items():
        got: list[tuple[str, Sketch]] = []
        for f in files:
            if per_class is not None and len(got) >= per_class:
                break
            sketch = load_sketch_file(f, warn)
            if sketch is None:
                continue
            if not sketch.strokes and sketch.raster is None:
                warn(f"skipped {f}: the sketch has no ink")
                continue
            got.append((str(f), sketch))
        if got:
            out[name] = got
    return out


def read_class_mask(path: Path) -> np.ndarray:
    """(H, W) uint8 class indices of an indexed (palette or grey) PNG.

    Raises:
        DatasetError: unreadable, not a PNG, or a colour image (not indices).
    """
    from PIL import Image

    try:
        with Image.open(path, formats=["PNG"]) as im:
            if im.mode not in ("P", "L"):
                raise DatasetError(
                    f"{path}: a {im.mode} image; a class mask is an indexed (palette) or grey "
                    "PNG whose pixel values are class indices"
                )
            return np.array(im, dtype=np.uint8)
    except DatasetError:
        raise
    except (OSError, SyntaxError, ValueError, MemoryError) as e:  # Pillow's failures
        raise DatasetError(f"{path}: unreadable mask ({e})") from e


def mask_classes(mask: np.ndarray, n_classes: int) -> tuple[list[int], list[int]]:
    """(class indices present in ``mask``, indices beyond the class list), void and
    background left out."""
    values = [int(v) for v in np.unique(mask) if v not in (0, VOID)]
    return [v for v in values if v < n_classes], [v for v in values if v >= n_classes]


@dataclass(frozen=True)
class MaskedPhoto:
    """A photo whose mask could be read: the mask's (h, w) and the classes it shows."""

    photo: Path
    mask: Path
    hw: tuple[int, int]
    classes: tuple[int, ...]


def scan_masks(data: SegEvalData, warn: Warn) -> list[MaskedPhoto]:
    """Read every mask once: the photos that can be evaluated and their classes. Unreadable
    masks and class indices beyond the class list are reported."""
    out = []
    for photo, mask_path in data.items:
        try:
            mask = read_class_mask(mask_path)
        except DatasetError as e:
            warn(f"skipped {e}")
            continue
        present, unknown = mask_classes(mask, len(data.class_names))
        if unknown:
            warn(f"{mask_path}: class indices {unknown} are beyond {CLASSES_FILE}; ignored")
        out.append(MaskedPhoto(photo, mask_path, (mask.shape[0], mask.shape[1]), tuple(present)))
    return out


def iter_samples(
    data: SegEvalData,
    sketches: dict[str, list[tuple[str, Sketch]]],
    photos: Sequence[MaskedPhoto],
    warn: Warn,
) -> Iterator[SegSample]:
    """The (sketch, photo) pairs: every class of each photo's mask that has sketches, with
    each of its sketches, photo by photo (the evaluation loop loads each photo once)."""
    for item in photos:
        names = [data.class_names[k] for k in item.classes]
        if not any(n in sketches for n in names):
            continue
        try:
            mask = read_class_mask(item.mask)
        except DatasetError as e:  # changed since it was scanned
            warn(f"skipped {e}")
            continue
        valid = mask != VOID
        for k, name in zip(item.classes, names, strict=True):
            for source, sketch in sketches.get(name, ()):
                yield SegSample(name, sketch, mask == k, valid, None, item.photo, source)


def pair_counts(
    data: SegEvalData, sketches: dict[str, list[tuple[str, Sketch]]], photos: Sequence[MaskedPhoto]
) -> dict[str, int]:
    """Class → pairs :func:`iter_samples` yields for it (classes without sketches: 0)."""
    out: dict[str, int] = {}
    for item in photos:
        for k in item.classes:
            name = data.class_names[k]
            out[name] = out.get(name, 0) + len(sketches.get(name, ()))
    return out
