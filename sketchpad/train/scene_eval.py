"""Evaluate a scene labeller on labelled sketches: Acc@P, Acc@S and mIoU per group and overall.

The ground truth and the prediction share one label raster per sketch
(:func:`sketchpad.vision.scene_pixels.stroke_pixels`: the canvas at each stroke's pen width).
A pixel's true label is the label of the stroke that covers it most; a stroke's true label
comes with the sample. A predictor receives the samples and their rasters and returns a label
per ink pixel and per stroke, so a trained model, the zero-shot labeller, or a baseline
(:func:`oracle_predictor`, :func:`constant_predictor`) are evaluated by the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sketchpad.train.datasets_scene import SceneSample
from sketchpad.train.metrics import ScoreSummary, SketchScores, sketch_scores
from sketchpad.vision.scene_pixels import StrokePixels, stroke_pixels

if TYPE_CHECKING:  # torch is imported only by the caller that builds a labeller
    from sketchpad.vision.scene import SceneLabeller


@dataclass(frozen=True)
class Prediction:
    """A labeller's answer for one sketch, as indices into the sample's labels.

    Attributes:
        pixel_labels: (H, W) int on the sample's label raster (negative: no label).
        stroke_labels: (n_strokes,) int (negative: no label).
    """

    pixel_labels: np.ndarray
    stroke_labels: np.ndarray


Predictor = Callable[[Sequence[SceneSample], Sequence[StrokePixels]], Sequence[Prediction]]
Progress = Callable[[int], None]


def ground_truth(sample: SceneSample, pixels: StrokePixels) -> tuple[np.ndarray, np.ndarray]:
    """((H, W) int64 true pixel labels, −1 off ink; (n,) int64 true stroke labels)."""
    return pixels.owner_labels(sample.stroke_labels), sample.stroke_labels


@dataclass(frozen=True)
class SceneEvaluation:
    """Scores of an evaluation run.

    Attributes:
        groups: group name → the mean scores of its sketches, groups in first-seen order.
        overall: the mean over all sketches.
        sketches: per sketch, (source, group, scores).
    """

    groups: dict[str, ScoreSummary]
    overall: ScoreSummary
    sketches: tuple[tuple[str, str, SketchScores], ...]

    def table(self) -> str:
        """A plain-text table: one row per group, then the overall row (percentages)."""
        width = max([len("overall"), len("category"), *(len(g) for g in self.groups)])

        def pct(v: float) -> str:
            return "    n/a" if np.isnan(v) else f"{100 * v:6.2f}%"

        lines = [f"{'category':<{width}}  sketches    Acc@P    Acc@S     mIoU"]
        rows = [*self.groups.items(), ("overall", self.overall)]
        for name, s in rows:
            lines.append(
                f"{name:<{width}}  {s.count:>8}  {pct(s.acc_p)}  {pct(s.acc_s)}  {pct(s.miou)}"
            )
        return "\n".join(lines)


def evaluate_scenes(
    samples: Iterable[SceneSample],
    predict: Predictor,
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> SceneEvaluation:
    """Score ``predict`` on ``samples``, ``batch_size`` sketches per call.

    Raises:
        ValueError: a prediction of the wrong shape.
    """
    rows: list[tuple[str, str, SketchScores]] = []
    batch: list[SceneSample] = []

    def run() -> None:
        rasters = [stroke_pixels(s.sketch) for s in batch]
        preds = list(predict(batch, rasters))
        if len(preds) != len(batch):
            raise ValueError(f"the predictor returned {len(preds)} answers for {len(batch)}")
        for sample, px, pred in zip(batch, rasters, preds, strict=True):
            gt_pixels, gt_strokes = ground_truth(sample, px)
            scores = sketch_scores(pred.pixel_labels, gt_pixels, pred.stroke_labels, gt_strokes)
            rows.append((sample.source, sample.group, scores))
        batch.clear()
        if progress is not None:
            progress(len(rows))

    for sample in samples:
        batch.append(sample)
        if len(batch) >= max(1, batch_size):
            run()
    if batch:
        run()
    groups: dict[str, list[SketchScores]] = {}
    for _, group, scores in rows:
        groups.setdefault(group, []).append(scores)
    return SceneEvaluation(
        groups={g: ScoreSummary.of(v) for g, v in groups.items()},
        overall=ScoreSummary.of(s for _, _, s in rows),
        sketches=tuple(rows),
    )


def oracle_predictor(
    samples: Sequence[SceneSample], rasters: Sequence[StrokePixels]
) -> list[Prediction]:
    """The ground truth itself (scores 100 %): a check of the evaluation."""
    return [Prediction(*ground_truth(s, px)) for s, px in zip(samples, rasters, strict=True)]


def constant_predictor(label: int = 0) -> Predictor:
    """Every ink pixel and every stroke gets ``label`` (its Acc@P is that label's share of the
    ink): a baseline and a check of the evaluation."""

    def predict(
        samples: Sequence[SceneSample], rasters: Sequence[StrokePixels]
    ) -> list[Prediction]:
        return [
            Prediction(
                np.where(px.ink, label, -1).astype(np.int64),
                np.full(len(s.sketch.strokes), label, dtype=np.int64),
            )
            for s, px in zip(samples, rasters, strict=True)
        ]

    return predict


def labeller_predictor(labeller: SceneLabeller, *, batch_size: int = 16) -> Predictor:
    """A :class:`sketchpad.vision.scene.SceneLabeller` as a predictor: each sketch is labelled
    with its sample's labels, on the sample's raster."""

    def predict(
        samples: Sequence[SceneSample], rasters: Sequence[StrokePixels]
    ) -> list[Prediction]:
        results = labeller.label_batch(
            [s.sketch for s in samples],
            [s.labels for s in samples],
            pixels=rasters,
            batch_size=batch_size,
        )
        return [Prediction(r.pixel_labels, r.stroke_labels) for r in results]

    return predict
