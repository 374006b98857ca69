"""The result of labelling one scene sketch, and how its patch maps reach the label raster.

:class:`SceneLabels` holds the labels, the label raster (:mod:`sketchpad.vision.scene_pixels`),
each ink pixel's and each stroke's label, and the per-label patch maps they came from. Maps live
on the model's patch grid; a pixel of the label raster is sampled bilinearly between patch
centres through two frames: raster → canvas (the raster's frame, inverted) → model input (the
model's framing of the sketch) → grid units (÷ patch size). Beyond the outermost patch centres
the border value is replicated.

Isolating one label (:meth:`SceneLabels.isolate`) keeps the ink pixels whose normalised score
reaches a threshold: the given one; else 0.71 for a fine-tuned model; else, per label, its
:meth:`SceneLabels.zero_level` (see :mod:`sketchpad.vision.scene`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.sketch.raster import Frame
from sketchpad.vision.scene_pixels import StrokePixels


def _axis_taps(
    n_out: int,
    out_scale: float,
    out_t: float,
    model_scale: float,
    model_t: float,
    patch: int,
    n_grid: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps along one axis from label-raster pixels to the patch grid.

    Raster pixel centre ``p + 0.5`` → canvas ``(p + 0.5 − out_t) / out_scale`` → model pixels
    ``canvas · model_scale + model_t`` → grid units ``/ patch``; sampled between patch centres
    (index ``grid − 0.5``), the border value replicated beyond the outermost centres.
    """
    canvas = (np.arange(n_out, dtype=np.float64) + 0.5 - out_t) / out_scale
    s = np.clip((canvas * model_scale + model_t) / patch - 0.5, 0.0, n_grid - 1.0)
    i0 = np.floor(s).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_grid - 1)
    return i0, i1, s - i0


def _grid_taps(
    pixels: StrokePixels, model_frame: Frame, patch: int, grid_hw: tuple[int, ...]
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """(rows, cols) bilinear taps from the label raster to the patch grid."""
    h, w = pixels.raster_hw
    of, mf = pixels.frame, model_frame
    rows = _axis_taps(h, of.scale, of.ty, mf.scale, mf.ty, patch, grid_hw[0])
    cols = _axis_taps(w, of.scale, of.tx, mf.scale, mf.tx, patch, grid_hw[1])
    return rows, cols


def argmax_labels(
    pixels: StrokePixels, maps: np.ndarray, model_frame: Frame, patch: int
) -> np.ndarray:
    """(H, W) int64: on each ink pixel the label whose bilinearly resampled map (K, gh, gw) is
    highest (ties: the first label), −1 off ink."""
    (r0, r1, wy), (c0, c1, wx) = _grid_taps(pixels, model_frame, patch, maps.shape[1:])
    ys, xs = np.nonzero(pixels.ink)
    g = maps.astype(np.float64)
    wy_, wx_ = wy[ys], wx[xs]
    vals = (
        g[:, r0[ys], c0[xs]] * (1 - wy_) * (1 - wx_)
        + g[:, r0[ys], c1[xs]] * (1 - wy_) * wx_
        + g[:, r1[ys], c0[xs]] * wy_ * (1 - wx_)
        + g[:, r1[ys], c1[xs]] * wy_ * wx_
    )  # (K, n_ink)
    out = np.full(pixels.raster_hw, -1, dtype=np.int64)
    if ys.size:
        out[ys, xs] = np.argmax(vals, axis=0)
    return out


@dataclass(frozen=True, eq=False)
class SceneLabels:
    """The labelling of one sketch.

    Attributes:
        labels: the K labels, in the order given.
        pixels: the label raster (which pixels are ink, which stroke covers which).
        pixel_labels: (H, W) int64 label index of every ink pixel, −1 off ink.
        stroke_labels: (n,) int64 label index of every stroke (or ink component), −1 for a
            stroke with no pixel on the raster.
        patch_maps: (K, gh, gw) float32 min-max normalised scores in [0, 1], row-major grid of
            the model input.
        patch_scores: (K, gh, gw) float32 redundancy-removed scores S before normalising.
        label_weights: (K,) float32 CLIP Surgery's w (mean 1): how much the whole sketch
            looks like each label.
        model_frame: canvas → model-input pixels.
        patch_size: model patch side in model-input pixels.
        fine_tuned_threshold: the isolation threshold of a fine-tuned model, or None for
            zero-shot weights (per-label zero level, see the module notes).
    """

    labels: tuple[str, ...]
    pixels: StrokePixels
    pixel_labels: np.ndarray
    stroke_labels: np.ndarray
    patch_maps: np.ndarray
    patch_scores: np.ndarray
    label_weights: np.ndarray
    model_frame: Frame
    patch_size: int
    fine_tuned_threshold: float | None = None

    @property
    def stroke_ids(self) -> tuple[str, ...]:
        return self.pixels.stroke_ids

    @property
    def raster_hw(self) -> tuple[int, int]:
        return self.pixels.raster_hw

    @property
    def ink(self) -> np.ndarray:
        """(H, W) bool ink pixels of the label raster."""
        return self.pixels.ink

    def stroke_label_names(self) -> tuple[str | None, ...]:
        """Per stroke, its label (None when it has none)."""
        return tuple(self.labels[k] if k >= 0 else None for k in self.stroke_labels.tolist())

    def label_of(self, stroke_id: str) -> str | None:
        """The label of one stroke (or ink component ``c1``…).

        Raises:
            KeyError: no such stroke.
        """
        try:
            i = self.stroke_ids.index(stroke_id)
        except ValueError:
            raise KeyError(stroke_id) from None
        k = int(self.stroke_labels[i])
        return self.labels[k] if k >= 0 else None

    def _index(self, label: str | int) -> int:
        if isinstance(label, str):
            if label not in self.labels:
                raise KeyError(f"{label!r} is not one of the labels {list(self.labels)}")
            return self.labels.index(label)
        if not 0 <= int(label) < len(self.labels):
            raise KeyError(f"label index {label} out of range 0..{len(self.labels) - 1}")
        return int(label)

    @functools.cached_property
    def _taps(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        return _grid_taps(self.pixels, self.model_frame, self.patch_size, self.patch_maps.shape[1:])

    def score_map(self, label: str | int) -> np.ndarray:
        """(H, W) float32: the label's normalised score on every pixel of the label raster."""
        g = self.patch_maps[self._index(label)].astype(np.float64)
        (r0, r1, wy), (c0, c1, wx) = self._taps
        rows = g[r0] * (1.0 - wy)[:, None] + g[r1] * wy[:, None]
        return (rows[:, c0] * (1.0 - wx)[None, :] + rows[:, c1] * wx[None, :]).astype(np.float32)

    def zero_level(self, label: str | int) -> float:
        """The normalised score at which the label's S crosses 0 (the zero-shot threshold).

        Below 0 when S is positive on every patch (all of the ink passes), above 1 when it is
        negative on every patch (none does); ``inf`` for a constant negative map.
        """
        s = self.patch_scores[self._index(label)].astype(np.float64)
        lo, hi = float(s.min()), float(s.max())
        if hi - lo <= 1e-12:
            return 0.0 if lo >= 0 else math.inf
        return -lo / (hi - lo)

    def threshold_for(self, label: str | int, threshold: float | None = None) -> float:
        """The isolation threshold used for ``label``: ``threshold`` if given, else 0.71 for a
        fine-tuned model, else the label's :meth:`zero_level`."""
        if threshold is not None:
            return float(threshold)
        if self.fine_tuned_threshold is not None:
            return self.fine_tuned_threshold
        return self.zero_level(label)

    def isolate(self, label: str | int, threshold: float | None = None) -> np.ndarray:
        """(H, W) bool: the ink pixels whose normalised score for ``label`` reaches the
        threshold (:meth:`threshold_for`)."""
        t = self.threshold_for(label, threshold)
        return self.ink & (self.score_map(label) >= t)

    def isolate_strokes(self, label: str | int, threshold: float | None = None) -> tuple[str, ...]:
        """The strokes (or ink components) at least half of whose pixels :meth:`isolate` keeps."""
        keep = self.isolate(label, threshold).reshape(-1)
        return tuple(
            sid
            for sid, idx in zip(self.stroke_ids, self.pixels.pixels, strict=True)
            if idx.size and 2 * int(keep[idx].sum()) >= idx.size
        )

    def labelled_sketch(self, sketch: Sketch) -> Sketch:
        """``sketch`` with each stroke's ``label`` set (None where it has none). A raster-only
        sketch is returned unchanged (its components are not strokes)."""
        if sketch.is_raster:
            return sketch
        if tuple(s.id for s in sketch.strokes) != self.stroke_ids:
            raise ValueError("the sketch's strokes are not the ones that were labelled")
        names = self.stroke_label_names()
        return sketch.with_strokes(
            s.replace(label=name) for s, name in zip(sketch.strokes, names, strict=True)
        )
