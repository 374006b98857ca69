"""The two-stage query: a compact index shortlists photos, the exact scoring runs on them.

The exact method (:func:`sketchpad.search.scoring.score_query`) correlates the query with every
patch of every photo. A photo's score is ``sigmoid(calibrate(max cos))`` over its valid patches,
and the calibration is monotone, so ranking and matching only need each photo's *maximum
cosine*. The two-stage method estimates it cheaply and computes it exactly only where it can
matter:

1. **Statistics** of the gallery-relative calibration come, as in the exact method, from the
   fixed whole-gallery sample of patches (``FeatureBank.stats_rows``), kept in memory as one
   small matrix (``FeatureBank.sample_matrix``): the calibration means the same thing in both.
2. **Stage 1**: each photo's compact summary, k unit vectors (``vision.quant.summarize``: k-means
   centroids of its patches, seeded so a small object gets its own), gives an estimate
   ``a_i = max_k q · c_ik`` (one product over N·k rows instead of N·T).
3. **Stage 2**: photos in descending ``a_i`` are scored exactly (their patches correlated,
   calibrated, maxed) until the rule below says no other photo can matter.

**The stopping rule.** Let ``g_i = exact_i − a_i`` be the estimate's error. The upper bound of an
unscored photo is ``a_i + δ`` where δ is the largest error seen on a fixed probe set of photos
(:data:`PROBES`, drawn once per gallery, always scored exactly; the largest of a few hundred
errors is about their 99.6th percentile) and on the shortlisted photos' upper 99 % — plus a
margin :data:`MARGIN`. Scoring continues until every unscored photo's bound, calibrated, lies
below *both* the N-th best exact score so far (it cannot enter the exact top N: that score only
rises as more photos are scored) *and* the threshold (it cannot be a match). So the exact
top-N photos and every above-threshold match are shortlisted with their exact scores, up to the
rare photo whose error exceeds δ (the benchmark reports the recall this gives). The floor
``min(N-th score, threshold)`` is kept with the scores: a lower threshold asks for a new
shortlist (:meth:`sketchpad.search.core.SearchCore.search`).

Unscored photos get their stage-1 estimate as score (always below the floor), so the whole
gallery still ranks; their masks are computed on demand (:func:`score_photo`).

**Masks** come from the photo's *exact* float16 rows where the bank carries a source of them
(:attr:`FeatureBank.exact_patches`: a patch store's bank reads the folder's feature cache, one
row per mask), with the query's statistics: the same mask the exact method makes, up to the
statistics sample being read from the codes. Scores and ranking stay on the codes: a photo's
score — the one number the gallery badge, the large view and every export show — is the
shortlist's (see :mod:`sketchpad.gallery.query`).
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING

import numpy as np
import torch

from sketchpad.search.scoring import GalleryScores, calibrate_cosines, check_threshold
from sketchpad.vision import maps
from sketchpad.vision.features import normalize

if TYPE_CHECKING:
    from sketchpad.vision.bank import FeatureBank
    from sketchpad.vision.segmenter import Query, Segmenter

log = logging.getLogger(__name__)

#: The exact top N a shortlist keeps by default.
TOP_N = 100
#: The threshold a shortlist keeps every match above by default (DESIGN §4.3's default).
FLOOR_THRESHOLD = 0.5
#: Photos scored exactly in every query to measure the estimate's error.
PROBES = 256
#: The quantile of the probes' estimate errors taken as the bound δ.
GAP_QUANTILE = 0.95
#: Added to δ (cosine units).
MARGIN = 0.0
#: Below this many photos a search scores every photo exactly (the product is cheap).
MIN_PHOTOS = 4000


def probe_photos(n: int) -> np.ndarray:
    """The fixed (seeded) probe set of a gallery of ``n`` photos, ascending."""
    if n <= PROBES:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(1).choice(n, PROBES, replace=False)).astype(np.int64)


def calibrated(
    segmenter: Segmenter, cos: np.ndarray, stats: maps.GalleryStats | None
) -> np.ndarray:
    """Cosines → logits with the segmenter's calibration and given statistics."""
    if segmenter.calibration == "fixed":
        return maps.calibrate(cos, "fixed", tau=segmenter.tau)
    return maps.calibrate(
        cos,
        "gallery-relative",
        stats=stats,
        z_offset=segmenter.z_offset,
        z_temperature=segmenter.z_temperature,
    )


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return float(np.log(p / (1.0 - p)))


class _Exact:
    """Photos scored exactly so far: their cosines (in the order scored) and maxima."""

    def __init__(self, bank: FeatureBank, q: np.ndarray) -> None:
        self.bank = bank
        self.q = q
        n = len(bank)
        self.scored = np.zeros(n, dtype=bool)
        self.best = np.full(n, -np.inf, dtype=np.float32)
        self.photos: list[np.ndarray] = []
        self.cos: list[np.ndarray] = []
        self.sizes: list[np.ndarray] = []

    def score(self, photos: np.ndarray) -> None:
        todo = np.unique(np.asarray(photos, np.int64))
        todo = todo[~self.scored[todo]]
        if not len(todo):
            return
        cos, offs, best = self.bank.correlate_photos(self.q, todo)
        sizes = np.diff(offs)
        self.best[todo] = best
        self.scored[todo] = True
        self.photos.append(todo)
        self.cos.append(cos)
        self.sizes.append(sizes)

    def gathered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(photos ascending, their cosines concatenated in that order, row offsets)."""
        photos = np.concatenate(self.photos) if self.photos else np.zeros(0, np.int64)
        cos = np.concatenate(self.cos) if self.cos else np.zeros(0, np.float32)
        sizes = np.concatenate(self.sizes) if self.sizes else np.zeros(0, np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        order = np.argsort(photos, kind="stable")
        sizes_sorted = sizes[order]
        offsets = np.concatenate([[0], np.cumsum(sizes_sorted)]).astype(np.int64)
        # photos next to each other in both orders are copied as one slice
        cut = np.flatnonzero(np.diff(order) != 1) + 1
        first = np.concatenate([[0], cut]).astype(np.int64)
        last = np.concatenate([cut, [len(order)]]).astype(np.int64)
        lo, hi = starts[order[first]].tolist(), (starts[order[last - 1] + 1]).tolist()
        parts = [cos[a:b] for a, b in zip(lo, hi, strict=True)]
        merged = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return photos[order], merged, offsets


def score_query_shortlist(
    segmenter: Segmenter,
    query: Query,
    bank: FeatureBank,
    *,
    top_n: int = TOP_N,
    threshold: float = FLOOR_THRESHOLD,
) -> GalleryScores:
    """Score ``bank`` against one query vector in two stages (see the module docstring).

    Args:
        top_n: the exact top N kept.
        threshold: every photo whose exact score reaches it is kept.
    """
    t_logit = _logit(check_threshold(threshold))
    n = len(bank)
    q = normalize(np.asarray(query.embedding, dtype=np.float32))
    q16 = torch.from_numpy(q).to(torch.float16)
    with torch.inference_mode():
        sample_cos = torch.mv(bank.sample_matrix(), q16).float().numpy()
        k = bank.summary_matrix().shape[0] // max(n, 1)
        products = bank.summary_products(torch.from_numpy(q))
        approx = products.reshape(n, k).max(axis=1) if n else np.zeros(0, np.float32)
    _, stats = calibrate_cosines(segmenter, np.zeros(0, np.float32), sample_cos)
    order = np.argsort(-approx, kind="stable")
    approx_sorted = approx[order]
    exact = _Exact(bank, q)
    probes = probe_photos(n)
    exact.score(probes)
    gaps = exact.best[probes] - approx[probes]
    gaps = gaps[np.isfinite(gaps)]
    delta = (float(np.quantile(gaps, GAP_QUANTILE)) if len(gaps) else 0.0) + MARGIN
    bounds = calibrated(segmenter, approx_sorted + delta, stats)
    taken = min(n, max(top_n, 1))
    while True:
        exact.score(order[:taken])
        bests = exact.best[exact.scored]
        nth_logit = -np.inf
        if len(bests) >= top_n:
            nth = np.partition(bests, -top_n)[-top_n : -top_n + 1].astype(np.float32)
            if np.isfinite(nth[0]):
                nth_logit = float(calibrated(segmenter, nth, stats)[0])
        floor_logit = min(nth_logit, t_logit)
        # every photo whose bound reaches the floor is needed (bounds descend with order)
        needed = int(np.count_nonzero(bounds >= floor_logit))
        if needed <= taken:
            break
        taken = min(n, max(needed, 2 * taken))  # grow geometrically: few rounds
    out = _assemble(segmenter, query, bank, exact, approx, stats, floor_logit)
    bank.release()  # the codes' pages this query read: memory does not grow query by query
    return out


def _assemble(
    segmenter: Segmenter,
    query: Query,
    bank: FeatureBank,
    exact: _Exact,
    approx: np.ndarray,
    stats: maps.GalleryStats | None,
    floor_logit: float,
) -> GalleryScores:
    photos, cos, offsets = exact.gathered()
    logits = calibrated(segmenter, cos, stats).astype(np.float32, copy=False)
    photo_scores = maps.sigmoid(calibrated(segmenter, approx.astype(np.float32), stats))
    photo_scores = np.asarray(photo_scores, dtype=np.float32)
    if len(photos):
        # the calibration is monotone: the best patch's logit is the best cosine's, calibrated
        best = exact.best[photos]
        found = np.isfinite(best)
        best_logits = np.full(len(photos), -np.inf, dtype=np.float32)
        best_logits[found] = calibrated(segmenter, best[found], stats)
        photo_scores[photos] = maps.sigmoid(best_logits)
    floor = float(maps.sigmoid(np.array([floor_logit], np.float32))[0])
    return GalleryScores(query, cos, logits, stats, photo_scores, photos, offsets, floor)


def score_photo(
    segmenter: Segmenter, scores: GalleryScores, bank: FeatureBank, i: int
) -> GalleryScores:
    """``scores`` with photo ``i``'s patch logits for its mask, with the same statistics and
    photo scores (so the mask's score is the number the gallery shows).

    The logits come from photo ``i``'s exact float16 rows where the bank's own rows are an
    approximation and it carries a source of them (:attr:`FeatureBank.exact_patches`: a patch
    store's bank reads the folder's feature cache); where that source lacks the photo (its row
    missing or damaged: logged once per bank), or there is none, from the bank's own rows —
    ``scores`` itself when it already holds photo ``i``."""
    exact = _exact_cosines(bank, scores.query.embedding, i)
    if exact is None and scores.photo_logits(bank, i) is not None:
        return scores
    if exact is None:
        rows, offsets = bank.photo_rows(np.array([i], np.int64))
        cos = bank.correlate_rows(scores.query.embedding, rows)
    else:
        cos, offsets = exact, np.array([0, len(exact)], np.int64)
    logits = calibrated(segmenter, cos, scores.stats).astype(np.float32, copy=False)
    return GalleryScores(
        scores.query,
        cos,
        logits,
        scores.stats,
        scores.photo_scores,
        np.array([i], np.int64),
        offsets,
        scores.floor,
    )


_fallback_logged: weakref.WeakSet[FeatureBank] = weakref.WeakSet()


def _exact_cosines(bank: FeatureBank, query: np.ndarray, i: int) -> np.ndarray | None:
    """(T,) float32 cosines of photo ``i``'s exact rows with ``query`` — the numbers the exact
    method's product gives (a float16 product) — or None: no source, or it lacks the photo."""
    source = bank.exact_patches
    if source is None:
        return None
    patches = source(i)
    t = bank.layouts[i].grid_hw[0] * bank.layouts[i].grid_hw[1]
    if patches is None or patches.shape != (t, bank.dim):
        if bank not in _fallback_logged:
            _fallback_logged.add(bank)
            log.warning(
                "the exact features of %s are missing or damaged: its mask (and any other "
                "such photo's) is made from the compressed patch store",
                bank.names[i],
            )
        return None
    m = torch.from_numpy(np.array(patches, dtype=np.float16))  # a writable copy
    q16 = torch.from_numpy(normalize(np.asarray(query, dtype=np.float32))).to(torch.float16)
    with torch.inference_mode():
        return torch.mv(m, q16).float().numpy()
