"""Sketch → masks over a gallery, shaped embed-once / query-many (as SAM's set_image/predict).

1. ``Segmenter.embed_photos`` computes each photo's patch features once (a later layer caches
   them on disk); ``FeatureBank`` stacks them into one matrix.
2. A query (``sketch_query``, ``text_query``, ``group_queries``) costs one forward of the sketch
   (or the words); ``score`` costs one matrix product over the bank and ranks every photo.
3. ``mask`` upsamples, thresholds and (optionally) CRF-refines only the photos asked for.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.vision import maps
from sketchpad.vision.backbone import Backbone, PatchPath
from sketchpad.vision.bank import FeatureBank, PhotoLayout
from sketchpad.vision.features import (
    PhotoFeatures,
    embed_photos,
    embed_sketches,
    embed_texts,
    normalize,
)

log = logging.getLogger(__name__)

__all__ = ["FeatureBank", "GalleryScores", "PhotoLayout", "PhotoMask", "Query", "Segmenter"]

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


@dataclass(frozen=True)
class GalleryScores:
    """One query scored against a whole bank.

    Attributes:
        query: the query.
        cos: (ΣT,) float32 patch cosines.
        logits: (ΣT,) float32 calibrated logits (probability = sigmoid).
        stats: the gallery statistics used ('gallery-relative'), else None.
        photo_scores: (N,) float32 ranking score of each photo in [0, 1].
        global_cos: (N,) float32 cosine of the query with each photo's global embedding.
        global_prob: (N,) float32 that cosine, calibrated like the patches.
    """

    query: Query
    cos: np.ndarray
    logits: np.ndarray
    stats: maps.GalleryStats | None
    photo_scores: np.ndarray
    global_cos: np.ndarray
    global_prob: np.ndarray

    def ranking(self) -> np.ndarray:
        """Photo indices, best match first (stable for ties)."""
        return np.argsort(-self.photo_scores, kind="stable")


@dataclass(frozen=True)
class PhotoMask:
    """A photo's mask for one query (or the union of a composed query's groups).

    Attributes:
        prob: (H, W) float32 foreground probability at the output size.
        mask: (H, W) bool.
        instances: connected components, best first, boxes XYXY in output pixels.
        label_map: (H, W) int32, 0 = none, k = instances[k − 1].
        score: the photo's score (best instance score, blended with the global score when the
            segmenter is set to).
        refined: whether dense-CRF refinement was applied.
        group_map: (H, W) int16 for composed queries: 0 = none, k = the query
            ``scores[k − 1]`` that gives the pixel its highest probability (1 = the whole
            sketch, 2… = the stroke groups); None for single queries.
    """

    prob: np.ndarray
    mask: np.ndarray
    instances: tuple[maps.Instance, ...]
    label_map: np.ndarray
    score: float
    refined: bool
    group_map: np.ndarray | None = None


ProgressFn = Callable[[int, int], None]


class Segmenter:
    """Sketch-guided segmentation of photo galleries with one backbone.

    Args:
        backbone: the loaded model.
        calibration: "fixed" (fine-tuned checkpoints: threshold the cosine at 0.5) or
            "gallery-relative" (zero-shot); default from ``backbone.weights.fine_tuned``.
        threshold: probability threshold for masks (0.5 = the calibrated decision).
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
        global_weight: weight of the global sketch–photo similarity in the photo score.
        min_area_frac: smallest instance, as a fraction of the photo area.
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
        global_weight: float = 0.0,
        min_area_frac: float = 0.001,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if not 0.0 <= global_weight <= 1.0:
            raise ValueError(f"global_weight must be in [0, 1], got {global_weight}")
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
        self.global_weight = float(global_weight)
        self.min_area_frac = float(min_area_frac)

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
    def sketch_query(
        self,
        sketch: Sketch,
        *,
        part: Sketch | None = None,
        text: str | None = None,
        alpha: float = 0.5,
    ) -> Query:
        """The query for a sketch, or a part of it (lasso selection or partition sector,
        drawn in the whole sketch's framing), optionally mixed with words:
        ``q = normalise(α·ŝ + (1 − α)·t̂)`` (seed 004)."""
        target = part if part is not None else sketch
        if not target.strokes and target.raster is None:
            raise ValueError("the sketch (or the selected part) has no strokes")
        s = embed_sketches(self.backbone, [target], sketch, input_size=self.input_size)[0]
        label = "sketch part" if part is not None else "sketch"
        ids = tuple(st.id for st in target.strokes)
        if text is None or not text.strip():
            return Query(s, label, ids)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        t = self.text_query(text).embedding
        return Query(normalize(alpha * s + (1.0 - alpha) * t), f"{label} + text", ids)

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
        groups = [tuple(g) for g in groups]
        groups = [g for g in groups if g]
        parts = [sketch] + [sketch.subset(g) for g in groups] if len(groups) > 1 else [sketch]
        emb = embed_sketches(self.backbone, parts, sketch, input_size=self.input_size)
        out = [Query(emb[0], "sketch", tuple(s.id for s in sketch.strokes))]
        if len(parts) > 1:
            out += [Query(emb[k + 1], f"group {k + 1}", g) for k, g in enumerate(groups)]
        return out

    # -- scoring -----------------------------------------------------------------------------
    def score(
        self, query: Query, bank: FeatureBank, *, threshold: float | None = None
    ) -> GalleryScores:
        """Score every photo of ``bank``: one matrix product, then grid-level ranking of all
        photos at once (vectorised; no per-photo Python loop). Ranking counts the regions
        above ``threshold`` (default: the segmenter's)."""
        cos = bank.correlate(query.embedding)
        global_cos = bank.globals @ query.embedding if len(bank) else np.zeros(0, np.float32)
        logits, stats = self._logits(cos, cos[bank.stats_rows()])
        g_prob = maps.sigmoid(self._logits(global_cos, global_cos)[0])
        none = np.zeros(0, np.float32)
        scores = GalleryScores(query, cos, logits, stats, none, global_cos, g_prob)
        return self.rescore(scores, bank, threshold=threshold)

    def rescore(
        self, scores: GalleryScores, bank: FeatureBank, *, threshold: float | None = None
    ) -> GalleryScores:
        """``scores`` ranked again at another threshold: no model, no matrix product (the
        threshold slider). ``bank`` must be the one ``scores`` were computed on."""
        t = self.threshold if threshold is None else float(threshold)
        if not 0.0 < t < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {t}")
        if scores.logits.shape[0] != bank.rows:
            raise ValueError(
                f"these scores cover {scores.logits.shape[0]} patches; the bank has {bank.rows}"
            )
        best = grid_scores(bank, scores.logits, t)
        w = self.global_weight
        photo = ((1.0 - w) * best + w * scores.global_prob).astype(np.float32) if w else best
        return dataclasses.replace(scores, photo_scores=photo)

    def _logits(
        self, cos: np.ndarray, reference: np.ndarray
    ) -> tuple[np.ndarray, maps.GalleryStats | None]:
        """Cosines → calibrated logits, and the gallery statistics (from ``reference``, the
        same query's cosines over the gallery) when the calibration is gallery-relative."""
        if self.calibration == "fixed":
            return maps.calibrate(cos, "fixed", tau=self.tau), None
        stats = maps.gallery_stats(reference) if reference.size else maps.GalleryStats(0.0, 1.0)
        logits = maps.calibrate(
            cos,
            "gallery-relative",
            stats=stats,
            z_offset=self.z_offset,
            z_temperature=self.z_temperature,
        )
        return logits, stats

    # -- masks -------------------------------------------------------------------------------
    def prob_hw(
        self, scores: GalleryScores, bank: FeatureBank, i: int, out_hw: tuple[int, int]
    ) -> np.ndarray:
        """(H, W) float32 probabilities of photo i at ``out_hw``, aligned to its pixels.

        As the paper does: sigmoid on the patch grid, then bilinear upsampling. Letterbox
        padding takes the value of the nearest photo patch before upsampling."""
        f = bank.layouts[i]
        grid = maps.sigmoid(bank.grid(scores.logits, i))
        valid = f.valid_patches()
        rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
        r = np.clip(np.arange(grid.shape[0]), rows[0], rows[-1])
        c = np.clip(np.arange(grid.shape[1]), cols[0], cols[-1])
        grid = grid[r][:, c]
        box = f.letterbox.content_grid_xyxy(f.patch_size)
        return maps.upsample_to_photo(grid, box, out_hw)

    def mask(
        self,
        scores: GalleryScores,
        bank: FeatureBank,
        i: int,
        *,
        photo: np.ndarray | None = None,
        crf: bool = False,
        out_hw: tuple[int, int] | None = None,
        threshold: float | None = None,
    ) -> PhotoMask:
        """Photo i's mask at ``out_hw`` (default: the photo's size).

        Args:
            photo: (H, W, 3) uint8 RGB at the photo's own size; needed for ``crf``.
            crf: dense-CRF refinement (large view, exports).
            threshold: override of the segmenter's threshold.
        """
        return self.composed_mask(
            [scores], bank, i, photo=photo, crf=crf, out_hw=out_hw, threshold=threshold
        )

    def composed_mask(
        self,
        scores: Sequence[GalleryScores],
        bank: FeatureBank,
        i: int,
        *,
        photo: np.ndarray | None = None,
        crf: bool = False,
        out_hw: tuple[int, int] | None = None,
        threshold: float | None = None,
    ) -> PhotoMask:
        """The union of several queries' masks on photo i (composed sketches); the group map
        says which query claims each pixel. With one query, its plain mask."""
        if not scores:
            raise ValueError("no scores")
        t = self.threshold if threshold is None else float(threshold)
        if not 0.0 < t < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {t}")
        hw = tuple(out_hw or bank.layouts[i].photo_hw)
        probs = np.stack([self.prob_hw(s, bank, i, hw) for s in scores])
        if crf:
            if photo is None:
                raise ValueError("CRF refinement needs the photo")
            image = _resize_rgb(photo, hw)
            probs = np.stack([crf_refine(image, p) for p in probs])
        prob = probs.max(axis=0).astype(np.float32)
        mask = prob > t
        instances, label_map = maps.find_instances(prob, mask, min_area_frac=self.min_area_frac)
        w = self.global_weight
        g = float(scores[0].global_prob[i])
        score = maps.photo_score(instances, global_score=g if w else None, global_weight=w)
        group_map = None
        if len(scores) > 1:
            group_map = np.where(mask, probs.argmax(axis=0) + 1, 0).astype(np.int16)
        return PhotoMask(prob, mask, instances, label_map, score, crf, group_map)


def crf_refine(image: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Dense-CRF refinement with DESIGN §4.3's parameters (imported lazily: pydensecrf)."""
    from sketchpad.vision.crf import refine_with_crf

    return refine_with_crf(image, prob)


def _resize_rgb(photo: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if photo.shape[:2] == tuple(hw):
        return photo
    import cv2

    return cv2.resize(photo, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def grid_scores(bank: FeatureBank, logits: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) float32: each photo's best connected region of patches above ``threshold`` (its
    mean probability; 0 when none), as ``maps.find_instances`` scores instances at pixel level.

    All photos at once: photos whose best valid patch passes the threshold are stacked into one
    tall image with an empty row between grids, and labelled by one connected-components call.
    """
    n = len(bank)
    best = np.zeros(n, dtype=np.float32)
    if n == 0:
        return best
    t_logit = float(np.log(threshold / (1.0 - threshold)))
    grids: dict[tuple[int, int], list[int]] = {}
    for i, lay in enumerate(bank.layouts):
        grids.setdefault(lay.grid_hw, []).append(i)
    offsets, valid = bank.offsets, bank.valid
    for (gh, gw), members in grids.items():
        idx = np.asarray(members)
        t = gh * gw
        if len(idx) == n:  # the usual case: one grid, photos back to back
            lg = logits.reshape(n, t)
            ok = valid.reshape(n, t)
        else:
            rows = offsets[idx][:, None] + np.arange(t)[None, :]
            lg, ok = logits[rows], valid[rows]
        masked = np.where(ok, lg, -np.inf)
        cand = np.flatnonzero(masked.max(axis=1) > t_logit)
        if cand.size == 0:
            continue
        prob = maps.sigmoid(masked[cand]).reshape(-1, gh, gw)  # invalid → exactly 0
        tall = np.zeros((len(cand), gh + 1, gw), dtype=np.float32)
        tall[:, :gh] = prob
        tall = tall.reshape(-1, gw)
        k, labels, stats, _ = cv2.connectedComponentsWithStats(
            (tall > threshold).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
        )
        sums = np.bincount(labels.ravel(), weights=tall.ravel(), minlength=k)[1:]
        mean = sums / stats[1:, cv2.CC_STAT_AREA]
        owner = stats[1:, cv2.CC_STAT_TOP] // (gh + 1)
        per = np.zeros(len(cand), dtype=np.float64)
        np.maximum.at(per, owner, mean)
        best[idx[cand]] = per
    return best
