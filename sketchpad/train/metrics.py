"""Scene-sketch segmentation metrics (seed 001 §4.2): Acc@P, Acc@S and mIoU. Numpy only.

Labels are integer indices ≥ 0; a negative value marks a pixel (or stroke) that does not count
(paper, void) in the ground truth, or one left without a label in a prediction (it counts as
wrong).

- **Acc@P**: the share of the ground truth's ink pixels that carry the right label.
- **Acc@S**: the share of strokes that carry the right label (a stroke's label being the most
  frequent label of its pixels).
- **mIoU**: the mean, over the labels present in the ground truth or the prediction (on the
  counted pixels), of |pred = k ∧ gt = k| / |pred = k ∨ gt = k|. Labels that appear in neither
  are left out, so a sketch is not rewarded or punished for parts it does not have.

Each is computed per sketch; a dataset's figure is the mean over its sketches (the paper reports
these per-sketch ratios averaged), see :class:`ScoreSummary`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def _pair(pred: np.ndarray, gt: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    p, g = np.asarray(pred), np.asarray(gt)
    if p.shape != g.shape:
        raise ValueError(f"{what}: prediction shape {p.shape} differs from ground truth {g.shape}")
    for name, a in (("prediction", p), ("ground truth", g)):
        if a.size and a.dtype.kind not in "iu":
            raise ValueError(f"{what}: {name} must hold integer labels, got dtype {a.dtype}")
    return p.reshape(-1).astype(np.int64), g.reshape(-1).astype(np.int64)


def pixel_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """Acc@P: correct labels over the ground truth's counted (≥ 0) pixels.

    Args:
        pred: (H, W) int predicted labels (negative: no label, counts as wrong).
        gt: (H, W) int true labels, negative where the pixel does not count.

    Returns:
        A ratio in [0, 1]; NaN when no pixel counts.
    """
    p, g = _pair(pred, gt, "pixel_accuracy")
    counted = g >= 0
    n = int(counted.sum())
    return float(np.sum(p[counted] == g[counted]) / n) if n else float("nan")


def stroke_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """Acc@S: correct labels over the strokes with a (≥ 0) true label.

    Args:
        pred: (n,) int predicted stroke labels (negative: no label, counts as wrong).
        gt: (n,) int true stroke labels (negative: the stroke does not count).

    Returns:
        A ratio in [0, 1]; NaN when no stroke counts.
    """
    return pixel_accuracy(pred, gt)


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, n_labels: int | None = None) -> np.ndarray:
    """(L, L) int64 counts, ``m[true, predicted]``, over the counted (gt ≥ 0) elements whose
    prediction is a label (≥ 0). ``L`` defaults to 1 + the largest label seen."""
    p, g = _pair(pred, gt, "confusion_matrix")
    keep = (g >= 0) & (p >= 0)
    p, g = p[keep], g[keep]
    top = int(max(p.max(initial=-1), g.max(initial=-1))) + 1
    n = top if n_labels is None else int(n_labels)
    if n < top:
        raise ValueError(f"n_labels {n} is smaller than the largest label + 1 ({top})")
    return np.bincount(g * n + p, minlength=n * n).reshape(n, n).astype(np.int64)


def mean_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """mIoU over the labels present in the ground truth or the prediction (counted pixels).

    A counted pixel without a predicted label adds to its true label's union only.

    Returns:
        The mean IoU in [0, 1]; NaN when no pixel counts.
    """
    p, g = _pair(pred, gt, "mean_iou")
    counted = g >= 0
    if not counted.any():
        return float("nan")
    p, g = p[counted], g[counted]
    labels = np.union1d(g, p[p >= 0])
    ious = [np.sum((p == k) & (g == k)) / np.sum((p == k) | (g == k)) for k in labels]
    return float(np.mean(ious))


@dataclass(frozen=True)
class SketchScores:
    """The three metrics of one sketch (ratios in [0, 1]; NaN where nothing counts).

    Attributes:
        acc_p: Acc@P over ink pixels.
        acc_s: Acc@S over strokes.
        miou: mIoU over the labels present.
    """

    acc_p: float
    acc_s: float
    miou: float


def sketch_scores(
    pred_pixels: np.ndarray, gt_pixels: np.ndarray, pred_strokes: np.ndarray, gt_strokes: np.ndarray
) -> SketchScores:
    """Acc@P, Acc@S and mIoU of one sketch (see the module notes)."""
    return SketchScores(
        acc_p=pixel_accuracy(pred_pixels, gt_pixels),
        acc_s=stroke_accuracy(pred_strokes, gt_strokes),
        miou=mean_iou(pred_pixels, gt_pixels),
    )


@dataclass(frozen=True)
class ScoreSummary:
    """Per-sketch scores averaged over a set of sketches (NaNs skipped).

    Attributes:
        count: how many sketches.
        acc_p, acc_s, miou: the means (NaN for an empty set).
    """

    count: int
    acc_p: float
    acc_s: float
    miou: float

    @classmethod
    def of(cls, scores: Iterable[SketchScores]) -> ScoreSummary:
        rows = list(scores)
        if not rows:
            return cls(0, float("nan"), float("nan"), float("nan"))
        a = np.array([(s.acc_p, s.acc_s, s.miou) for s in rows], dtype=np.float64)
        means = [
            float(np.mean(c[~np.isnan(c)])) if (~np.isnan(c)).any() else float("nan") for c in a.T
        ]
        return cls(len(rows), *means)
