"""Acc@P, Acc@S and mIoU against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sketchpad.train.metrics import (
    ScoreSummary,
    SketchScores,
    confusion_matrix,
    mean_iou,
    pixel_accuracy,
    sketch_scores,
    stroke_accuracy,
)

# Counted pixels (gt ≥ 0), row-major: gt 0 0 1 1 2, pred 0 1 1 1 −1; the (1, 1) pixel is paper.
GT = np.array([[0, 0, 1], [1, -1, 2]])
PRED = np.array([[0, 1, 1], [1, 0, -1]])


def test_pixel_accuracy_counts_only_ink() -> None:
    assert pixel_accuracy(PRED, GT) == pytest.approx(3 / 5)
    assert pixel_accuracy(GT, GT) == 1.0
    assert math.isnan(pixel_accuracy(np.zeros((2, 2), int), np.full((2, 2), -1)))


def test_mean_iou_over_the_labels_present() -> None:
    # label 0: ∩ 1, ∪ 2; label 1: ∩ 2, ∪ 3; label 2: ∩ 0, ∪ 1 (its pixel has no prediction).
    assert mean_iou(PRED, GT) == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    # A label absent from the sketch and never predicted is left out (label 3 here).
    assert mean_iou(np.array([0, 1, 1]), np.array([0, 1, 1])) == 1.0
    # A label predicted but absent from the truth counts, with IoU 0.
    assert mean_iou(np.array([0, 3, 1]), np.array([0, 1, 1])) == pytest.approx((1 + 0.5 + 0) / 3)


def test_stroke_accuracy() -> None:
    assert stroke_accuracy(np.array([0, 2, -1, 1]), np.array([0, 1, 1, -1])) == pytest.approx(1 / 3)


def test_confusion_matrix() -> None:
    m = confusion_matrix(PRED, GT, 3)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 2, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="smaller than"):
        confusion_matrix(PRED, GT, 1)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="differs"):
        pixel_accuracy(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(ValueError, match="integer labels"):
        mean_iou(np.zeros(3), np.zeros(3, int))


def test_sketch_scores_and_the_mean_over_sketches() -> None:
    s = sketch_scores(PRED, GT, np.array([1, 1]), np.array([1, 0]))
    assert s == SketchScores(acc_p=pytest.approx(0.6), acc_s=0.5, miou=pytest.approx(7 / 18))
    summary = ScoreSummary.of([SketchScores(1.0, 0.5, 0.2), SketchScores(0.0, float("nan"), 0.4)])
    assert summary.count == 2
    assert (summary.acc_p, summary.acc_s, summary.miou) == pytest.approx((0.5, 0.5, 0.3))
    assert ScoreSummary.of([]).count == 0 and math.isnan(ScoreSummary.of([]).acc_p)
