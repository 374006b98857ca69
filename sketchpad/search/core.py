"""The search core: a query over a gallery's feature bank → scores, ranking, masks.

Shaped embed-once / query-many, as SAM's ``set_image``/``predict``: photos are encoded once
(``Segmenter.embed_photos``, cached on disk by the gallery layer) into a
:class:`~sketchpad.vision.bank.FeatureBank`; a :class:`SearchCore` answers queries against it:

1. :meth:`SearchCore.encode` turns a :class:`~sketchpad.search.spec.QuerySpec` into query
   vectors — one forward of the sketch (or the selected part, or each stroke group and the
   whole sketch at once) and of the words — and keeps them by the spec's key, so a query that
   only differs in what the model does not see (labels, colours, the threshold) never runs
   the model again.
2. :meth:`SearchCore.search` scores every photo: one matrix product per query vector, the
   calibration, the photo scores (:mod:`sketchpad.search.scoring`) and the ranking — or, on a
   large bank with stored summaries, the two-stage query (:mod:`sketchpad.search.shortlist`),
   exact for the top N and every match above the threshold searched with. Kept for the bank
   it was computed on: the same query on the same bank is free.
3. :meth:`SearchCore.mask` makes the mask of any photo at any size, thresholded, optionally
   CRF-refined, with instances and boxes (:mod:`sketchpad.search.masks`).

The window's worker, ``sketchpad segment``, the large view and every export call this; nothing
else computes scores or masks. No Qt, no threads: the caller decides where it runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from sketchpad.search.masks import PhotoMask, photo_mask
from sketchpad.search.scoring import (
    GalleryScores,
    check_threshold,
    combined_scores,
    ranking,
    score_query,
)
from sketchpad.search.shortlist import (
    FLOOR_THRESHOLD,
    MIN_PHOTOS,
    TOP_N,
    score_photo,
    score_query_shortlist,
)
from sketchpad.search.spec import QuerySpec, resolve_part
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.features import normalize
from sketchpad.vision.segmenter import Query, Segmenter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchResult:
    """A query's answer over a whole bank.

    Attributes:
        key: the query spec's key.
        names: (N,) the photos' names, bank order; indices below refer to it.
        scores: each query vector scored (the whole sketch first, then the stroke groups of a
            composed query).
        photo_scores: (N,) float32 photo scores in [0, 1] (best over the vectors).
        ranking: (N,) int64 photo indices, best first.
    """

    key: str
    names: tuple[str, ...]
    scores: tuple[GalleryScores, ...] = field(repr=False)
    photo_scores: np.ndarray
    ranking: np.ndarray

    def matches(self, threshold: float) -> np.ndarray:
        """(N,) bool: photos whose score reaches ``threshold`` (no model, no product)."""
        return self.photo_scores >= check_threshold(threshold)

    def match_count(self, threshold: float) -> int:
        return int(self.matches(threshold).sum())

    @property
    def floor(self) -> float:
        """Matches at any threshold ≥ ``floor`` are exact (0: every photo was scored exactly;
        a shortlist query's, see :mod:`sketchpad.search.shortlist`)."""
        return max(s.floor for s in self.scores)

    @property
    def exact(self) -> bool:
        """Whether every photo was scored exactly (no shortlist)."""
        return all(s.photos is None for s in self.scores)

    @property
    def labels(self) -> tuple[str, ...]:
        """What each query vector is ("sketch", "group 2", "sketch + text", …)."""
        return tuple(s.query.label for s in self.scores)


class SearchCore:
    """Queries against feature banks with one segmenter (its backbone and calibration).

    Args:
        segmenter: the model and its calibration settings.
        exact: True: score every patch of every photo (one product over the whole bank);
            False: the two-stage query (:mod:`sketchpad.search.shortlist`: a compact index
            shortlists, the exact scoring runs on the shortlist, which keeps the exact top
            ``top_n`` and every match at thresholds ≥ the one searched with); None (default):
            two-stage from :data:`~sketchpad.search.shortlist.MIN_PHOTOS` photos on when the
            bank carries stored summaries (a patch store's), the exact method otherwise (a
            feature cache's float16 bank: computing its summaries would stall the first query).
        top_n: the exact top N a shortlist keeps.
        min_photos: the gallery size from which ``exact=None`` goes two-stage (and from which
            :func:`sketchpad.gallery.query.load_bank`, given this core's ``exact`` and
            ``min_photos``, reads a folder's patch store).

    Attributes:
        encodes: how many times a query was encoded (a model forward); for logs and tests.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        *,
        exact: bool | None = None,
        top_n: int = TOP_N,
        min_photos: int = MIN_PHOTOS,
    ) -> None:
        if top_n < 1:
            raise ValueError(f"top_n must be ≥ 1, got {top_n}")
        if min_photos < 1:
            raise ValueError(f"min_photos must be ≥ 1, got {min_photos}")
        self.segmenter = segmenter
        self.exact = exact
        self.top_n = int(top_n)
        self.min_photos = int(min_photos)
        self.encodes = 0
        self._vectors: tuple[str, tuple[Query, ...]] | None = None
        self._result: tuple[FeatureBank, int, SearchResult] | None = None

    # -- step 1: query vectors ---------------------------------------------------------------
    def encode(self, spec: QuerySpec) -> tuple[Query, ...]:
        """The query vectors of ``spec`` (the last spec's are reused when its key is the same).

        Raises:
            ValueError: an empty part, words on a backbone without a text encoder, …
        """
        key = spec.key()
        if self._vectors is not None and self._vectors[0] == key:
            return self._vectors[1]
        vectors = encode_query(self.segmenter, spec)
        self.encodes += 1
        self._vectors = (key, vectors)
        return vectors

    def is_encoded(self, spec: QuerySpec) -> bool:
        """Whether :meth:`encode` would answer ``spec`` without running the model."""
        return self._vectors is not None and self._vectors[0] == spec.key()

    # -- step 2: scores and ranking ----------------------------------------------------------
    def search(
        self, spec: QuerySpec, bank: FeatureBank, *, threshold: float = FLOOR_THRESHOLD
    ) -> SearchResult:
        """Score every photo of ``bank`` against ``spec`` and rank them.

        ``threshold``: the lowest threshold the caller will cut matches at (a shortlist keeps
        every match from there up; :attr:`SearchResult.floor`). The result is kept while the
        bank is unchanged (the same object with the same rows) and its floor is at or below
        ``threshold``: the same query again costs nothing; a bank that grew (indexing) costs
        the products only.
        """
        key = spec.key()
        t = check_threshold(threshold)
        kept = self._result
        if (
            kept is not None
            and kept[0] is bank
            and kept[1] == bank.rows
            and kept[2].key == key
            and kept[2].floor <= t
        ):
            return kept[2]
        vectors = self.encode(spec)
        if self.uses_shortlist(bank):
            scores = tuple(
                score_query_shortlist(self.segmenter, q, bank, top_n=self.top_n, threshold=t)
                for q in vectors
            )
        else:
            scores = tuple(score_query(self.segmenter, q, bank) for q in vectors)
        photo = combined_scores(scores)
        result = SearchResult(
            key=key,
            names=tuple(bank.names),
            scores=scores,
            photo_scores=photo,
            ranking=ranking(photo),
        )
        self._result = (bank, bank.rows, result)
        return result

    def uses_shortlist(self, bank: FeatureBank) -> bool:
        """Whether :meth:`search` runs the two-stage query on ``bank``."""
        if self.exact is not None:
            return not self.exact
        return len(bank) >= self.min_photos and bank.has_summaries

    # -- step 3: masks -----------------------------------------------------------------------
    def mask(
        self,
        result: SearchResult,
        bank: FeatureBank,
        i: int,
        *,
        threshold: float,
        out_hw: tuple[int, int] | None = None,
        photo: np.ndarray | None = None,
        crf: bool = False,
    ) -> PhotoMask:
        """Photo ``i``'s mask under ``result`` (computed on ``bank``) at ``out_hw`` (default
        the photo's size); see :func:`sketchpad.search.masks.photo_mask`."""
        if len(result.names) > len(bank) or not 0 <= i < len(result.names):
            raise ValueError(f"photo {i} is not in this result's bank")
        scores = tuple(score_photo(self.segmenter, s, bank, i) for s in result.scores)
        return photo_mask(scores, bank, i, threshold=threshold, out_hw=out_hw, photo=photo, crf=crf)

    def forget(self) -> None:
        """Drop the kept vectors and result (the bank was closed, the folder changed)."""
        self._vectors = None
        self._result = None


def encode_query(segmenter: Segmenter, spec: QuerySpec) -> tuple[Query, ...]:
    """The query vectors of ``spec``, always computed (see :meth:`SearchCore.encode`).

    - words alone: their text embedding;
    - a sketch, or the part of it the spec selects (drawn in the whole sketch's framing);
    - composed: the whole sketch and each stroke group (the spec's groups, or automatic
      spatial grouping), in one batched forward.

    Words with a sketch mix into every vector: ``q = normalise(α·ŝ + (1 − α)·t̂)`` (seed 004).
    """
    if spec.sketch is None:
        assert spec.text is not None  # QuerySpec guarantees words or a sketch
        return (segmenter.text_query(spec.text),)
    if spec.compose:
        queries = list(segmenter.group_queries(spec.sketch, spec.groups))
    else:
        part = resolve_part(spec.sketch, spec.part) if spec.part is not None else None
        queries = [segmenter.sketch_query(spec.sketch, part=part)]
    if spec.text is None:
        return tuple(queries)
    t = segmenter.text_query(spec.text).embedding
    a = spec.alpha
    return tuple(
        Query(normalize(a * q.embedding + (1.0 - a) * t), f"{q.label} + text", q.stroke_ids)
        for q in queries
    )
