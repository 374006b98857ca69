"""Correspondence evaluation: PCK@5 and PCK@10 of sketch → photo keypoint matching (seed 003
§6.3, after PSC6K: a predicted point is correct within α × the photo's longer side)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sketchpad.train.datasets_common import Warn, load_photo_file, log_warning
from sketchpad.train.fusion_data import PSC6KPair
from sketchpad.vision.backbone import Backbone
from sketchpad.vision.fusion.correspond import correspond, pck

ALPHAS = (0.05, 0.10)


@dataclass(frozen=True)
class CorrespondenceScores:
    """PCK at each α over every keypoint, and how many pairs and points were scored."""

    pck: dict[float, float]
    pairs: int
    points: int

    def as_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {f"pck@{round(a * 100)}": v for a, v in self.pck.items()}
        out.update(pairs=self.pairs, points=self.points)
        return out


def score_matches(
    items: Sequence[tuple[np.ndarray, np.ndarray, float]], alphas: Sequence[float] = ALPHAS
) -> CorrespondenceScores:
    """``(predicted, true, side)`` per pair → PCK over all their points."""
    if not items:
        raise ValueError("nothing to score")
    pred = np.concatenate([p for p, _, _ in items])
    true = np.concatenate([t for _, t, _ in items])
    sides = np.concatenate([np.full(len(p), s) for p, _, s in items])
    dist = np.linalg.norm(pred - true, axis=1)
    scores = {float(a): float((dist <= a * sides).mean()) for a in alphas}
    return CorrespondenceScores(scores, len(items), len(pred))


def evaluate_psc6k(
    backbone: Backbone,
    pairs: Sequence[PSC6KPair],
    *,
    input_size: int | None = None,
    warn: Warn = log_warning,
    progress: Callable[[int, int], None] | None = None,
) -> CorrespondenceScores:
    """Match each pair's sketch keypoints on its photo and score them."""
    items = []
    for i, pair in enumerate(pairs):
        photo = load_photo_file(pair.photo, warn)
        sketch = load_photo_file(pair.sketch, warn)
        if photo is None or sketch is None:
            continue
        res = correspond(backbone, sketch, photo, pair.kp_sketch, input_size=input_size)
        pred = np.array([m.target for m in res.matches])
        items.append((pred, pair.kp_photo.astype(np.float64), float(max(photo.shape[:2]))))
        if progress is not None:
            progress(i + 1, len(pairs))
    return score_matches(items)


__all__ = ["ALPHAS", "CorrespondenceScores", "evaluate_psc6k", "pck", "score_matches"]
