"""A segmenter: one backbone, its photo and query encoders, and its calibration settings.

- ``Segmenter.embed_photos`` computes each photo's patch features once (the gallery layer
  caches them on disk; ``FeatureBank`` stacks them into one matrix).
- ``sketch_query``, ``text_query`` and ``group_queries`` cost one forward of the sketch (or of
  the words) each.
- Scores, ranking and masks are the search core's (:mod:`sketchpad.search`): it reads the
  calibration settings kept here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.vision import maps
from sketchpad.vision.backbone import Backbone, PatchPath
from sketchpad.vision.features import PhotoFeatures, embed_photos, embed_sketches, embed_texts

log = logging.getLogger(__name__)

__all__ = ["Query", "Segmenter"]

#: Templates for free text added to a sketch ("a dog on the desk"): phrases as well as words.
CAPTION_TEMPLATES = ("{}.", "a photo of {}.", "a picture of {}.", "an image of {}.")


@dataclass(frozen=True)
class Query:
    """A query vector and what it came from.

    Attributes:
        embedding: (d,) float32, L2-normalised.
        label: a short description for results ("sketch", "group 2", "sketch + text").
        stroke_ids: the strokes it was made of (empty for text alone).
    """

    embedding: np.ndarray
    label: str
    stroke_ids: tuple[str, ...] = ()


ProgressFn = Callable[[int, int], None]


class Segmenter:
    """Sketch-guided segmentation of photo galleries with one backbone.

    Args:
        backbone: the loaded model.
        calibration: "fixed" (fine-tuned checkpoints: threshold the cosine at 0.5) or
            "gallery-relative" (zero-shot); default from ``backbone.weights.fine_tuned``.
        threshold: the default probability threshold for masks and matches (0.5 = the
            calibrated decision).
        input_size: photo input side (default the backbone's; larger = finer maps).
        patch_path: "vv" (default) or "plain" CLIP patch tokens.
        tau: temperature of the 'fixed' calibration (seed 000 Eq. 3, sign corrected).
        z_offset: 'gallery-relative': robust sigmas above the gallery's typical patch at which
            the probability is 0.5.
        z_temperature: 'gallery-relative': sigmas per unit of logit. 0.5 puts the typical
            (background) patch at p = σ(−6) ≈ 0.0025, near zero as with fine-tuned maps, so the
            upsampled probability crosses 0.5 close to the middle between a background and an
            object patch (at 1.0 it would sit at 0.047 and masks would grow by ~5 % of a
            patch).
    """

    def __init__(
        self,
        backbone: Backbone,
        *,
        calibration: maps.Calibration | None = None,
        threshold: float = 0.5,
        input_size: int | None = None,
        patch_path: PatchPath = "vv",
        tau: float = 0.05,
        z_offset: float = 3.0,
        z_temperature: float = 0.5,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.backbone = backbone
        self.calibration: maps.Calibration = calibration or (
            "fixed" if backbone.weights.fine_tuned else "gallery-relative"
        )
        if self.calibration not in ("fixed", "gallery-relative"):
            raise ValueError(f"unknown calibration {self.calibration!r}")
        self.threshold = float(threshold)
        self.input_size = int(input_size or backbone.spec.input_size)
        self.patch_path: PatchPath = patch_path
        self.tau = float(tau)
        self.z_offset = float(z_offset)
        self.z_temperature = float(z_temperature)

    # -- photos ------------------------------------------------------------------------------
    def embed_photos(
        self,
        images: Sequence[np.ndarray],
        *,
        batch_size: int = 8,
        progress: ProgressFn | None = None,
    ) -> list[PhotoFeatures]:
        """Features of (H, W, 3) uint8 RGB photos, in batches; ``progress(done, total)``."""
        out: list[PhotoFeatures] = []
        for start in range(0, len(images), max(1, batch_size)):
            chunk = images[start : start + batch_size]
            out += embed_photos(
                self.backbone, chunk, input_size=self.input_size, path=self.patch_path
            )
            if progress is not None:
                progress(len(out), len(images))
        return out

    # -- queries -----------------------------------------------------------------------------
    def sketch_query(self, sketch: Sketch, *, part: Sketch | None = None) -> Query:
        """The query vector of a sketch, or of a part of it (a lasso selection or a partition
        sector, drawn in the whole sketch's framing). Words are mixed in by the search core
        (:func:`sketchpad.search.core.encode_query`)."""
        target = part if part is not None else sketch
        if not target.strokes and target.raster is None:
            raise ValueError("the sketch (or the selected part) has no strokes")
        s = embed_sketches(self.backbone, [target], sketch, input_size=self.input_size)[0]
        label = "sketch part" if part is not None else "sketch"
        return Query(s, label, tuple(st.id for st in target.strokes))

    def text_query(self, text: str) -> Query:
        """A query from words alone (CLIP backbones)."""
        words = text.strip()
        if not words:
            raise ValueError("the text is empty")
        emb = embed_texts(self.backbone, [words], CAPTION_TEMPLATES)[0]
        return Query(emb, f"text: {words}")

    def group_queries(
        self, sketch: Sketch, groups: Sequence[Sequence[str]] | None = None
    ) -> list[Query]:
        """Composed sketches: the whole sketch first, then one query per stroke group
        (``groups`` of stroke ids, or automatic spatial grouping). One batched forward."""
        if groups is None:
            from sketchpad.sketch.grouping import group_strokes

            groups = group_strokes(sketch)
        chosen = [tuple(g) for g in groups if g]
        parts = [sketch] + [sketch.subset(g) for g in chosen] if len(chosen) > 1 else [sketch]
        emb = embed_sketches(self.backbone, parts, sketch, input_size=self.input_size)
        out = [Query(emb[0], "sketch", tuple(s.id for s in sketch.strokes))]
        if len(parts) > 1:
            out += [Query(emb[k + 1], f"group {k + 1}", g) for k, g in enumerate(chosen)]
        return out
