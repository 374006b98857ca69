"""Export Labels…: the labelled drawing as the window shows it, through
:func:`sketchpad.vision.scene_export.export_scene` (JSON, SVG, label-map PNG, CSV and one
isolation mask per label, each written atomically).

The labelling result is the model's; the drawing may differ from it by hand relabels. The
export follows the drawing: each stroke's label is its current one and the pixels of a stroke
relabelled by hand take its label (the model's per-pixel labels stay elsewhere, and the isolation
masks stay the model's). ``metadata["scene_labels"]`` of the JSON records the window's colours,
the model and the hand-labelled strokes. (The SVG and the label map colour labels with the
colours the user chose for the labels.)

Without a labelling that fits the drawing (labels imported with it, given by hand, or edits
since the last run) the export is made from the drawing's own stroke labels
(:func:`drawing_labels`): Export Labels writes what is shown and never runs the labeller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.workspace import scene_label_table as T

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


def drawing_labels(sketch: Sketch, names: Sequence[str]) -> SceneLabels:
    """The labelling a vector drawing's own stroke labels make (no model): each ink pixel
    takes its stroke's label; a label's isolation mask is exactly its strokes' pixels.

    (The per-label maps are one "patch" per raster pixel, 1 on the label's pixels and 0
    elsewhere, with the zero level at 0.5, so :meth:`SceneLabels.isolate` keeps exactly them.)
    """
    from sketchpad.vision.scene_labels import SceneLabels
    from sketchpad.vision.scene_pixels import stroke_pixels

    pixels = stroke_pixels(sketch)
    index: dict[str | None, int] = {n: k for k, n in enumerate(names)}
    stroke_labels = np.array([index.get(s.label, -1) for s in sketch.strokes], dtype=np.int64)
    pixel_labels = pixels.owner_labels(stroke_labels)
    maps = (pixel_labels[None] == np.arange(len(names))[:, None, None]).astype(np.float32)
    return SceneLabels(
        labels=tuple(names),
        pixels=pixels,
        pixel_labels=pixel_labels,
        stroke_labels=stroke_labels,
        patch_maps=maps,
        patch_scores=maps - np.float32(0.5),
        label_weights=np.ones(len(names), dtype=np.float32),
        model_frame=pixels.frame,
        patch_size=1,
    )


def write_label_export(
    folder: Path,
    sketch: Sketch,
    result: LabelResult | None,
    entries: Sequence[T.LabelEntry],
    threshold: float | None,
) -> list[Path]:
    """Write the exports of ``sketch`` labelled by ``result`` into ``folder`` (created if
    needed); ``result`` None: by the drawing's own stroke labels (:func:`drawing_labels`).

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
    info: dict[str, object]
    if result is None:
        labels = drawing_labels(sketch, [e.name for e in entries])
        info = {"backbone": None, "source": "the drawing's stroke labels (no labeller run)"}
    else:
        labels = result.labels
        info = {"backbone": result.backbone_id, "weights_sha256": result.weights_sha256}
    info["hand_labelled"] = sorted(T.hand_labelled(sketch))
    chosen = [colors.get(n, T.DEFAULT_PALETTE[0]) for n in labels.labels]
    return export_scene(
        folder,
        sketch,
        with_current_labels(labels, sketch),
        threshold=threshold,
        info=info,
        colors=chosen,
    )
