"""Export Labels…: the labelled drawing as the window shows it, through
:func:`sketchpad.vision.scene_export.export_scene` (JSON, SVG, label-map PNG, CSV and one
isolation mask per label, each written atomically).

The labelling result is the model's; the drawing may differ from it by hand relabels. The
export follows the drawing: each stroke's label is its current one and the pixels of a stroke
relabelled by hand take its label (the model's per-pixel labels stay elsewhere, and the isolation
masks stay the model's). ``metadata["scene_labels"]`` of the JSON records the window's colours,
the model and the hand-labelled strokes. (The SVG and the label map colour labels with the
colours the user chose for the labels.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.ui import scene_label_table as T

if TYPE_CHECKING:
    from sketchpad.engine.requests import LabelResult
    from sketchpad.vision.scene_labels import SceneLabels


def with_current_labels(result: SceneLabels, sketch: Sketch) -> SceneLabels:
    """``result`` with each stroke's label as ``sketch`` has it now (hand relabels included):
    a changed stroke's pixels take its label; the model's maps stay (isolation masks).

    ``sketch`` must have the strokes that were labelled, in order; a raster-only sketch is
    returned unchanged.
    """
    if sketch.is_raster:
        return result
    index: dict[str | None, int] = {name: k for k, name in enumerate(result.labels)}
    now = np.array([index.get(s.label, -1) for s in sketch.strokes], dtype=np.int64)
    pixel_labels = result.pixel_labels.copy()
    owner = result.pixels.owner
    for i in np.flatnonzero(now != result.stroke_labels):
        pixel_labels[owner == i] = now[i]
    return dataclasses.replace(result, stroke_labels=now, pixel_labels=pixel_labels)


def write_label_export(
    folder: Path,
    sketch: Sketch,
    result: LabelResult,
    entries: Sequence[T.LabelEntry],
    threshold: float | None,
) -> list[Path]:
    """Write the exports of ``sketch`` labelled by ``result`` into ``folder``.

    Args:
        entries: the label table (colours).
        threshold: the isolation threshold, None for the default rule.

    Returns:
        The files written.

    Raises:
        sketchpad.atomic.SaveError: a file could not be written (path and reason).
        ValueError: the labelling cannot be exported (e.g. more than 255 labels).
    """
    from sketchpad.vision.scene_export import export_scene

    colors = T.color_map(entries)
    labels = result.labels
    chosen = [colors.get(n, T.DEFAULT_PALETTE[0]) for n in labels.labels]
    info = {
        "backbone": result.backbone_id,
        "weights_sha256": result.weights_sha256,
        "hand_labelled": sorted(T.hand_labelled(sketch)),
    }
    return export_scene(
        folder,
        sketch,
        with_current_labels(labels, sketch),
        threshold=threshold,
        info=info,
        colors=chosen,
    )
