"""Training datasets (DESIGN §4.5): Sketchy, Sketchy-Extended, FS-COCO, FSCOCO-Seg, Quick, Draw!.

Each reader lists a dataset in its real on-disk layout (REFERENCE §3) and gives typed samples;
sketches and photos are decoded only when a sample is used, so a 75,000-sketch dataset lists in
about the time it takes to read its folders. The readers live in one module per family, and
are gathered here:

==================  ===============================  =========================================
layout              reader                           samples
==================  ===============================  =========================================
sketchy             :func:`read_sketchy`             :class:`SketchyDataset` → pairs
sketchy-extended    :func:`read_sketchy_extended`    the same, with the extra photos
fscoco              :func:`read_fscoco`              :class:`CaptionedSketch`
fscoco-seg          :func:`read_fscoco_seg`          :class:`CaptionedSketch` (+ stroke labels)
quickdraw           :func:`iter_quickdraw`           :class:`QuickDrawSample` (streamed)
==================  ===============================  =========================================

Every file that cannot be used is reported through a ``warn(message)`` callback naming the file
and the reason (default: a warning on the ``sketchpad.train.datasets`` logger), and the rest
goes on; a folder that is not the expected layout raises :class:`DatasetError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from sketchpad.train.datasets_common import DatasetError, Warn, class_key, log_warning
from sketchpad.train.datasets_fscoco import (
    CaptionedSketch,
    find_fscoco_root,
    is_fscoco_seg,
    read_fscoco,
    read_fscoco_seg,
    read_val_list,
)
from sketchpad.train.datasets_quickdraw import (
    QuickDrawSample,
    iter_quickdraw,
    quickdraw_files,
)
from sketchpad.train.datasets_sketchy import (
    DEFAULT_TX,
    INVALID_KINDS,
    SKETCHY_UNSEEN_21,
    ClassSplit,
    SketchPhotoPair,
    SketchyDataset,
    SketchyPhoto,
    SketchySketch,
    find_extended,
    find_rendered,
    random_class_split,
    read_sketchy,
    read_sketchy_extended,
    split_classes,
)

__all__ = [
    "DEFAULT_TX",
    "INVALID_KINDS",
    "SKETCHY_UNSEEN_21",
    "CaptionedSketch",
    "ClassSplit",
    "DatasetError",
    "QuickDrawSample",
    "SketchPhotoPair",
    "SketchyDataset",
    "SketchyPhoto",
    "SketchySketch",
    "TrainingLayout",
    "Warn",
    "class_key",
    "detect_training_layout",
    "iter_quickdraw",
    "log_warning",
    "quickdraw_files",
    "random_class_split",
    "read_fscoco",
    "read_fscoco_seg",
    "read_sketchy",
    "read_sketchy_extended",
    "read_val_list",
    "split_classes",
]

TrainingLayout = Literal["sketchy", "sketchy-extended", "fscoco", "fscoco-seg", "quickdraw"]


def detect_training_layout(path: str | os.PathLike[str]) -> TrainingLayout:
    """Which training dataset a folder (or ``.ndjson`` file) holds, by its layout alone.

    Raises:
        DatasetError: none of them; the message names the folder and the layouts expected.
    """
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".ndjson":
        return "quickdraw"
    if not p.is_dir():
        raise DatasetError(f"{p}: not a folder (or an .ndjson file)")
    rendered = find_rendered(p)
    if rendered is not None:
        return "sketchy-extended" if find_extended(rendered) is not None else "sketchy"
    if find_fscoco_root(p) is not None:
        return "fscoco"
    if is_fscoco_seg(p):
        return "fscoco-seg"
    if any(f.is_file() for f in p.glob("*.ndjson")):
        return "quickdraw"
    raise DatasetError(
        f"{p}: not a training dataset folder. Expected one of: Sketchy "
        "(rendered_256x256/256x256/{photo,sketch}/tx_*/<class>/), Sketchy-Extended (the same "
        "plus EXTEND_image_sketchy/ or extended_photo/), FS-COCO "
        "(fscoco/{images,raster_sketches,vector_sketches,text}/<participant>/), FSCOCO-Seg "
        "(train/{sketches,text}/, test/{vector_sketches,classes,captions,images}/), "
        "Quick, Draw! (<category>.ndjson files)"
    )
