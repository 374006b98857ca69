"""A trained recognition head for the suggestion tests: ``test-sketchfusion-tiny``'s
recognition checkpoint, written by FusionTrainer's own saver after a few steps on the
synthetic shapes (circle, square, triangle)."""

from __future__ import annotations

import functools
from pathlib import Path

from train.test_fusion_train import FixedBatch, synthetic_batch, trainer

CLASSES = ("circle", "square", "triangle")


@functools.cache
def trained_head(folder: str) -> Path:
    """Train 3 steps into ``folder``; its ``fusion.safetensors`` (+ ``fusion.json``)."""
    t = trainer("recognition", FixedBatch(synthetic_batch("recognition")), Path(folder), steps=3)
    t.fit()
    return Path(folder) / "fusion.safetensors"
