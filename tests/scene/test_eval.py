"""The evaluation itself: an oracle scores 100 %, a constant labeller its class frequency."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from scene_fixtures import write_spg

from sketchpad.train.datasets_scene import SceneSample, read_scene_dataset
from sketchpad.train.scene_eval import (
    Prediction,
    constant_predictor,
    evaluate_scenes,
    ground_truth,
    oracle_predictor,
)
from sketchpad.vision.scene_pixels import StrokePixels, stroke_pixels

SPG = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "spg"
needs_spg = pytest.mark.skipif(
    not SPG.is_dir(), reason=f"the SPG data is not at {SPG} (../shared/data/spg from the repo root)"
)


def check_oracle_and_constant(samples: list[SceneSample]) -> None:
    oracle = evaluate_scenes(samples, oracle_predictor, batch_size=4)
    assert oracle.overall.count == len(samples)
    assert (oracle.overall.acc_p, oracle.overall.acc_s, oracle.overall.miou) == (1.0, 1.0, 1.0)
    assert all((g.acc_p, g.acc_s, g.miou) == (1.0, 1.0, 1.0) for g in oracle.groups.values())

    const = evaluate_scenes(samples, constant_predictor(0), batch_size=3)
    freq_p, freq_s, miou = [], [], []
    for s in samples:
        gt, _ = ground_truth(s, stroke_pixels(s.sketch))
        ink = gt[gt >= 0]
        freq_p.append(np.mean(ink == 0))
        freq_s.append(np.mean(s.stroke_labels == 0))
        present = len(set(ink.tolist()) | {0})
        miou.append(np.mean(ink == 0) / present)  # IoU of label 0 is its frequency, others 0
    assert const.overall.acc_p == pytest.approx(np.mean(freq_p))
    assert const.overall.acc_s == pytest.approx(np.mean(freq_s))
    assert const.overall.miou == pytest.approx(np.mean(miou))
    assert const.overall.acc_p < 1.0


def test_oracle_and_constant_on_fixtures(tmp_path: Path) -> None:
    samples = list(read_scene_dataset(write_spg(tmp_path / "spg")))
    check_oracle_and_constant(samples)


@needs_spg
def test_oracle_and_constant_on_the_spg_data() -> None:
    samples = list(read_scene_dataset(SPG, limit=4))
    assert len(samples) == 80 and len({s.group for s in samples}) == 20
    check_oracle_and_constant(samples)


def test_a_wrong_labeller_is_caught(tmp_path: Path) -> None:
    samples = list(read_scene_dataset(write_spg(tmp_path / "spg")))

    def swap(batch: Sequence[SceneSample], rasters: Sequence[StrokePixels]) -> list[Prediction]:
        out = []
        for p in oracle_predictor(batch, rasters):
            px = np.where(p.pixel_labels == 0, 1, np.where(p.pixel_labels == 1, 0, p.pixel_labels))
            out.append(Prediction(px, np.where(p.stroke_labels == 0, 1, 0)))
        return out

    ev = evaluate_scenes(samples, swap)
    assert ev.overall.acc_p < 1.0 and ev.overall.miou < 1.0
    assert "overall" in ev.table() and "cup" in ev.table()
    # The ground truth: each ink pixel carries its (majority) stroke label.
    s = samples[0]
    px = stroke_pixels(s.sketch)
    gt, strokes = ground_truth(s, px)
    assert set(np.unique(gt[gt >= 0]).tolist()) == {0, 1}
    assert strokes.tolist() == [1, 0]
    assert (gt >= 0).sum() == px.ink.sum()


def test_predictions_must_match_the_batch(tmp_path: Path) -> None:
    samples = list(read_scene_dataset(write_spg(tmp_path / "spg")))
    with pytest.raises(ValueError, match="answers"):
        evaluate_scenes(samples, lambda b, r: [])
