"""A query against a whole gallery: correlation, calibration and the photo score.

One matrix product gives every patch's cosine with the query (seed 000 Eq. 2); calibration
turns the cosines into logits (``probability = sigmoid(logit)``, :mod:`sketchpad.vision.maps`):
"fixed" for our fine-tuned checkpoints, "gallery-relative" for zero-shot weights, standardised
against *this query's* cosines over the *whole gallery* (a fixed sample of every valid patch of
every photo, ``FeatureBank.stats_rows``) — never per photo, so a photo without the concept comes
out empty.

**The photo score** is defined here and nowhere else: the highest calibrated probability among
the photo's patches that overlap it (letterbox padding excluded), on the patch grid — before
any upsampling, thresholding or CRF. It does not depend on the threshold, so moving the slider
never changes a score or the ranking; a photo *matches* at threshold ``t`` when its score is
≥ ``t`` (then at least one of its patches passes ``t``). The gallery badge, the large view,
``results.json`` and the COCO ``score`` all show this number. In the two-stage query over a
patch store (:mod:`sketchpad.search.shortlist`) it is computed from the store's codes while
masks come from the exact float16 rows: the number shown stays this one everywhere, and the
mask's patches can sit a hair (the codec's error) on the other side of it. Instances
(connected regions of a mask) carry their own scores, the mean probability of their pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sketchpad.vision import maps

if TYPE_CHECKING:
    from sketchpad.vision.bank import FeatureBank
    from sketchpad.vision.segmenter import Query, Segmenter


@dataclass(frozen=True)
class GalleryScores:
    """One query vector scored against a whole bank.

    Attributes:
        query: the query vector and what it came from.
        cos: (ΣT,) float32 patch cosines, bank row order; for a shortlist query only the
            shortlisted photos' rows, photo ``photos[j]``'s at ``offsets[j]:offsets[j + 1]``.
        logits: calibrated logits (probability = sigmoid) of the same rows as ``cos``.
        stats: the gallery statistics used ("gallery-relative"), else None.
        photo_scores: (N,) float32 photo scores (see the module docstring), in [0, 1]; for a
            shortlist query exact for the shortlisted photos, estimates from the compact index
            for the others (all below ``floor``).
        photos: the shortlisted photos (ascending), None when every photo was scored exactly.
        offsets: (len(photos) + 1,) int64 row offsets into ``cos``/``logits``; None likewise.
        floor: every photo whose exact score reaches ``floor`` is shortlisted, so matches at
            any threshold ≥ ``floor`` and the ranking above it are exact (0 for the exact
            method).
    """

    query: Query
    cos: np.ndarray
    logits: np.ndarray
    stats: maps.GalleryStats | None
    photo_scores: np.ndarray
    photos: np.ndarray | None = None
    offsets: np.ndarray | None = None
    floor: float = 0.0

    def photo_logits(self, bank: FeatureBank, i: int) -> np.ndarray | None:
        """Photo ``i``'s (gh, gw) logits, or None when it is not among the photos scored."""
        if self.photos is None or self.offsets is None:
            return bank.grid(self.logits, i)
        j = int(np.searchsorted(self.photos, i))
        if j >= len(self.photos) or self.photos[j] != i:
            return None
        gh, gw = bank.layouts[i].grid_hw
        return self.logits[self.offsets[j] : self.offsets[j + 1]].reshape(gh, gw)


def calibrate_cosines(
    segmenter: Segmenter, cos: np.ndarray, reference: np.ndarray
) -> tuple[np.ndarray, maps.GalleryStats | None]:
    """Cosines → calibrated logits with the segmenter's calibration, and the gallery statistics
    (from ``reference``: the same query's cosines over the whole gallery) when it is
    gallery-relative."""
    if segmenter.calibration == "fixed":
        return maps.calibrate(cos, "fixed", tau=segmenter.tau), None
    stats = maps.gallery_stats(reference) if reference.size else maps.GalleryStats(0.0, 1.0)
    logits = maps.calibrate(
        cos,
        "gallery-relative",
        stats=stats,
        z_offset=segmenter.z_offset,
        z_temperature=segmenter.z_temperature,
    )
    return logits, stats


def score_query(segmenter: Segmenter, query: Query, bank: FeatureBank) -> GalleryScores:
    """Score every photo of ``bank`` against one query vector: one matrix product, the
    calibration, and every photo's score at once (vectorised)."""
    cos = bank.correlate(query.embedding)
    logits, stats = calibrate_cosines(segmenter, cos, cos[bank.stats_rows()])
    return GalleryScores(query, cos, logits, stats, peak_scores(bank, logits))


def peak_scores(bank: FeatureBank, logits: np.ndarray) -> np.ndarray:
    """(N,) float32: each photo's highest probability over its valid patches (0 for a photo
    with no valid patch). ``logits`` is (ΣT,) in bank row order."""
    n = len(bank)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    if logits.shape != (bank.rows,):
        raise ValueError(f"logits of shape {logits.shape}; the bank has {bank.rows} patches")
    masked = np.where(bank.valid, logits, -np.inf).astype(np.float32, copy=False)
    starts = bank.offsets[:-1]
    sizes = np.diff(bank.offsets)
    best = np.full(n, -np.inf, dtype=np.float32)
    nonempty = sizes > 0
    best[nonempty] = np.maximum.reduceat(masked, starts[nonempty])
    return maps.sigmoid(best)  # σ(−inf) = 0


def combined_scores(scores: tuple[GalleryScores, ...]) -> np.ndarray:
    """(N,) float32: a composed query's photo scores, the best over its vectors (the whole
    sketch and each stroke group), as its masks are their union."""
    if not scores:
        raise ValueError("no scores")
    if len(scores) == 1:
        return scores[0].photo_scores
    return np.max(np.stack([s.photo_scores for s in scores]), axis=0)


def ranking(photo_scores: np.ndarray) -> np.ndarray:
    """(N,) int64 photo indices, best first (ties keep gallery order)."""
    return np.argsort(-np.asarray(photo_scores), kind="stable").astype(np.int64)


def matches(photo_scores: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) bool: the photos whose score reaches ``threshold``."""
    check_threshold(threshold)
    return np.asarray(photo_scores) >= threshold


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float in (0, 1).

    Raises:
        ValueError: outside (0, 1).
    """
    t = float(threshold)
    if not 0.0 < t < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    return t
