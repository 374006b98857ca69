"""What the GUI asks the inference worker, and what it answers: immutable values, no Qt.

Every request carries a ``generation``: a number the :class:`~sketchpad.engine.client.Engine`
hands out in increasing order. The worker answers requests in generation order, except that a
newer :class:`QueryRequest` *replaces* a pending older one (the newest query wins) and that
queries and mask requests overtake a folder that is being indexed. A result is *stale* when a
newer query was asked for before it was ready; stale results are never delivered.

Results carry numpy arrays and plain values only (no widgets, no Qt objects), so they can cross
threads and be kept by the GUI as they are. Treat their arrays and mappings as read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from sketchpad.gallery.index import IndexSummary
from sketchpad.sketch.model import Sketch
from sketchpad.vision.segmenter import GalleryScores, PhotoMask

#: Long side (pixels) of the masks sent with a query result unless asked otherwise.
DEFAULT_MASK_SIDE = 160


def _check_generation(generation: int) -> None:
    if not isinstance(generation, int) or generation < 0:
        raise ValueError(f"generation must be an int ≥ 0, got {generation!r}")


# -- requests --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadModel:
    """Load a backbone and build the segmenter on it (replaces the current model and closes
    the open folder: its features belong to the old model).

    Attributes:
        generation: request number.
        backbone_id: a registry id (``sketchpad models``).
        weights: a weights file or folder the user gave; None resolves as DESIGN §4.1 says.
        device: "auto"/None, "cpu", "cuda", "cuda:N" or "mps".
        pretrained: False gives random weights (tests, benchmarks).
        offline: never download (None: the environment decides).
        input_size: photo input side (None: the backbone's).
        patch_path: "vv" (CLIP Surgery path) or "plain" patch tokens.
        calibration: "fixed", "gallery-relative", or None (from the weights).
        fp16: half precision on a GPU (the Model Manager's preference).
    """

    generation: int
    backbone_id: str
    weights: Path | None = None
    device: str | None = None
    pretrained: bool = True
    offline: bool | None = None
    input_size: int | None = None
    patch_path: Literal["vv", "plain"] = "vv"
    calibration: Literal["fixed", "gallery-relative"] | None = None
    fp16: bool = True

    def __post_init__(self) -> None:
        _check_generation(self.generation)
        if not self.backbone_id:
            raise ValueError("LoadModel.backbone_id is empty")


@dataclass(frozen=True)
class OpenFolder:
    """Open a photo folder: its cached photos are queryable at once; new or changed photos are
    then indexed batch by batch, and each batch joins the gallery as soon as it is cached.

    Attributes:
        generation: request number.
        folder: the photo folder (only read).
        recursive: include subfolders.
        budget: memory budget for patch features ("2G", bytes; None: the default or
            ``$SKETCHPAD_QUERY_MEMORY``).
        batch_size: photos per forward (halved on out-of-memory).
        rebuild: drop the cached features first.
    """

    generation: int
    folder: Path
    recursive: bool = False
    budget: int | str | None = None
    batch_size: int = 8
    rebuild: bool = False

    def __post_init__(self) -> None:
        _check_generation(self.generation)
        if self.batch_size < 1:
            raise ValueError(f"OpenFolder.batch_size must be ≥ 1, got {self.batch_size}")


@dataclass(frozen=True)
class QueryRequest:
    """Score every photo of the open folder against a sketch (or a part of it, or words),
    and make masks for the best photos and for the photos named.

    Attributes:
        generation: request number.
        sketch: the whole sketch; None for a text-only query.
        part: the selected part (lasso, partition sector), in the whole sketch's framing.
        text: words added to the sketch (``q = normalise(α·ŝ + (1 − α)·t̂)``), or alone.
        alpha: weight of the sketch against the words, in [0, 1].
        compose: segment each stroke group as well as the whole sketch, masks united.
        groups: stroke-id groups for ``compose`` (None: automatic spatial grouping).
        threshold: mask probability threshold in (0, 1); None: the segmenter's.
        top_k: masks for the ``top_k`` best-ranked photos.
        mask_names: masks for these photos too (names relative to the folder, e.g. the
            thumbnails on screen).
        mask_side: long side of those masks in pixels (the aspect ratio is the photo's).
    """

    generation: int
    sketch: Sketch | None
    part: Sketch | None = None
    text: str | None = None
    alpha: float = 0.5
    compose: bool = False
    groups: tuple[tuple[str, ...], ...] | None = None
    threshold: float | None = None
    top_k: int = 0
    mask_names: tuple[str, ...] = ()
    mask_side: int = DEFAULT_MASK_SIDE

    def __post_init__(self) -> None:
        _check_generation(self.generation)
        has_text = bool(self.text and self.text.strip())
        if self.sketch is None and not has_text:
            raise ValueError("QueryRequest needs a sketch or some text")
        if self.sketch is None and (self.part is not None or self.compose):
            raise ValueError("QueryRequest.part and .compose need a sketch")
        if self.part is not None and self.compose:
            raise ValueError("QueryRequest: a part query cannot also be composed")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"QueryRequest.alpha must be in [0, 1], got {self.alpha}")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"QueryRequest.threshold must be in (0, 1), got {self.threshold}")
        if self.top_k < 0:
            raise ValueError(f"QueryRequest.top_k must be ≥ 0, got {self.top_k}")
        if self.mask_side < 1:
            raise ValueError(f"QueryRequest.mask_side must be ≥ 1, got {self.mask_side}")
        object.__setattr__(self, "mask_names", tuple(self.mask_names))


@dataclass(frozen=True)
class MaskRequest:
    """Masks of more photos under an answered query (thumbnails scrolled into view, the large
    view). A newer request on the same ``channel`` replaces a pending one.

    Attributes:
        generation: request number.
        query_generation: the query whose scores to use; dropped when it is not the newest.
        names: photos, relative to the folder.
        side: long side of the masks in pixels; None: the photo's own size.
        crf: dense-CRF refinement (reads the photo; for the large view and exports).
        channel: who asks ("gallery", "viewer", …): requests replace their own channel's only.
    """

    generation: int
    query_generation: int
    names: tuple[str, ...]
    side: int | None = DEFAULT_MASK_SIDE
    crf: bool = False
    channel: str = "gallery"

    def __post_init__(self) -> None:
        _check_generation(self.generation)
        if self.side is not None and self.side < 1:
            raise ValueError(f"MaskRequest.side must be ≥ 1, got {self.side}")
        object.__setattr__(self, "names", tuple(self.names))


Request = LoadModel | OpenFolder | QueryRequest | MaskRequest


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """The model now loaded.

    Attributes:
        generation: the LoadModel request.
        backbone_id: registry id.
        device: where it runs ("cpu", "cuda", …).
        weights_source: "given", "imported", "hf-cache", "download" or "random".
        weights_sha256: digest of the weights (part of the cache key).
        embed_dim: feature dimension d.
        has_text: whether text queries work (CLIP).
        seconds: load time.
    """

    generation: int
    backbone_id: str
    device: str
    weights_source: str
    weights_sha256: str
    embed_dim: int
    has_text: bool
    seconds: float


@dataclass(frozen=True)
class FolderSummary:
    """The end of an OpenFolder request.

    Attributes:
        generation: the OpenFolder request.
        folder: the photo folder.
        photos: photos in the gallery now (queryable).
        index: what indexing did; None when it could not run (see ``error``).
        cancelled: indexing was cancelled or superseded before the end (the photos indexed
            so far are cached and stay queryable).
        error: why indexing could not run, or None.
    """

    generation: int
    folder: Path
    photos: int
    index: IndexSummary | None
    cancelled: bool = False
    error: str | None = None


@dataclass(frozen=True)
class QueryResult:
    """A query's answer over the whole gallery.

    Attributes:
        generation: the QueryRequest.
        folder: the photo folder.
        names: (N,) photo names relative to ``folder``, in gallery order; indices below refer
            to this order (it may differ from one result to the next while indexing runs).
        photo_scores: (N,) float32 ranking score of each photo in [0, 1] (0: no match).
        ranking: (N,) int64 photo indices, best first.
        masks: name → mask at ``mask_side`` (top K and the photos named in the request).
        scores: the gallery scores of each query (the whole sketch first, then stroke groups).
        threshold: the mask threshold used.
        indexing: the folder was still being indexed (more photos may come).
        seconds: worker time for the query.
    """

    generation: int
    folder: Path
    names: tuple[str, ...]
    photo_scores: np.ndarray
    ranking: np.ndarray
    masks: Mapping[str, PhotoMask]
    scores: tuple[GalleryScores, ...] = field(repr=False)
    threshold: float
    indexing: bool
    seconds: float

    def path(self, i: int) -> Path:
        """Photo i's path."""
        return self.folder / self.names[i]


@dataclass(frozen=True)
class MaskResult:
    """Masks for a MaskRequest.

    Attributes:
        generation: the MaskRequest.
        query_generation: the query they belong to.
        channel: the request's channel.
        masks: name → mask (photos not in the gallery are left out).
    """

    generation: int
    query_generation: int
    channel: str
    masks: Mapping[str, PhotoMask]
