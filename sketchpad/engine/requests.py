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
from typing import TYPE_CHECKING

import numpy as np

from sketchpad.gallery.index import IndexSummary
from sketchpad.search.masks import PhotoMask
from sketchpad.search.model import ModelChoice
from sketchpad.search.scoring import GalleryScores
from sketchpad.search.spec import QuerySpec
from sketchpad.sketch.model import Sketch

if TYPE_CHECKING:
    from sketchpad.vision.scene_labels import SceneLabels
    from sketchpad.vision.scene_suggest import SceneSuggestions

#: Long side (pixels) of the masks sent with a query result unless asked otherwise.
DEFAULT_MASK_SIDE = 160


def _check_generation(generation: int) -> None:
    if not isinstance(generation, int) or generation < 0:
        raise ValueError(f"generation must be an int ≥ 0, got {generation!r}")


# -- requests --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadModel:
    """Load a model for photo search (replaces the current one and closes the open folder:
    its features belong to the old model).

    Attributes:
        generation: request number.
        model: what to load (backbone, weights or checkpoint, device, fp16, calibration, …).
    """

    generation: int
    model: ModelChoice

    def __post_init__(self) -> None:
        _check_generation(self.generation)

    @property
    def backbone_id(self) -> str:
        return self.model.backbone_id or str(self.model.checkpoint)


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
    """Score every photo of the open folder against a query, and make masks for the best
    photos and for the photos named.

    Attributes:
        generation: request number.
        spec: the query (sketch, part, words, α, composed groups).
        threshold: the masks' probability threshold in (0, 1); None: the segmenter's. Scores
            and ranking do not depend on it.
        top_k: masks for the ``top_k`` best-ranked photos.
        mask_names: masks for these photos too (names relative to the folder, e.g. the
            thumbnails on screen).
        mask_side: long side of those masks in pixels (the aspect ratio is the photo's).
    """

    generation: int
    spec: QuerySpec
    threshold: float | None = None
    top_k: int = 0
    mask_names: tuple[str, ...] = ()
    mask_side: int = DEFAULT_MASK_SIDE

    def __post_init__(self) -> None:
        _check_generation(self.generation)
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
        threshold: the masks' threshold; None: the query's.
    """

    generation: int
    query_generation: int
    names: tuple[str, ...]
    side: int | None = DEFAULT_MASK_SIDE
    crf: bool = False
    channel: str = "gallery"
    threshold: float | None = None

    def __post_init__(self) -> None:
        _check_generation(self.generation)
        if self.side is not None and self.side < 1:
            raise ValueError(f"MaskRequest.side must be ≥ 1, got {self.side}")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"MaskRequest.threshold must be in (0, 1), got {self.threshold}")
        object.__setattr__(self, "names", tuple(self.names))


@dataclass(frozen=True)
class LabelRequest:
    """Label every stroke and ink pixel of a scene sketch (seed 001) with one of ``labels``.

    Attributes:
        generation: request number (a newer label request replaces a pending one).
        sketch: the scene sketch.
        labels: the category names.
        model: the CLIP backbone to label with (the one photo search uses is shared when it
            is the same).
    """

    generation: int
    sketch: Sketch
    labels: tuple[str, ...]
    model: ModelChoice

    def __post_init__(self) -> None:
        _check_generation(self.generation)
        object.__setattr__(self, "labels", tuple(self.labels))


@dataclass(frozen=True)
class SuggestRequest:
    """Label suggestions for a scene sketch
    (:func:`~sketchpad.vision.scene_suggest.suggest_labels`, as ``sketchpad label --suggest``):
    zero-shot with the labelling CLIP model, or by a trained recognition head when one is
    named. A newer suggest request replaces a pending one.

    Attributes:
        generation: request number.
        sketch: the scene sketch.
        model: the CLIP backbone of the zero-shot path (the labelling model).
        recognition_head: a ``train fusion --task recognition`` checkpoint, or None
            (zero-shot). Its backbone is loaded by the engine's loader (the same device and
            precision as ``model``); a head that cannot be used leaves a note and the
            suggestions are zero-shot.
        top_k: names per sketch and per group.
    """

    generation: int
    sketch: Sketch
    model: ModelChoice
    recognition_head: Path | None = None
    top_k: int = 5

    def __post_init__(self) -> None:
        _check_generation(self.generation)
        if self.top_k < 1:
            raise ValueError(f"SuggestRequest.top_k must be ≥ 1, got {self.top_k}")


#: Long side of the heat map sent with a match (the view stretches it over the image).
DEFAULT_HEAT_SIDE = 256


@dataclass(frozen=True)
class MatchRequest:
    """Sketch–photo correspondence (seed 003 §6.3) with the photo-search model's dense
    features: where points of the sketch are on a photo, or (``reverse``) points of the photo
    on the sketch. The same computation as ``sketchpad correspond``
    (:mod:`sketchpad.vision.fusion.correspond`); each image's features are cached by the
    worker (per photo file, sketch key and model), so more clicks on the same pair run no
    forward. A newer match request replaces a pending one.

    Attributes:
        generation: request number.
        photo: the photo's path.
        sketch: the drawn sketch, matched as
            :func:`~sketchpad.vision.fusion.correspond.sketch_image` draws it (a square).
        sketch_key: what identifies the sketch's image (``QuerySpec(sketch).key()``).
        points: query points, (x, y): on the sketch as fractions of its image's side, on the
            photo (``reverse``) in photo pixels.
        reverse: the points are on the photo, the matches on the sketch.
        heat_side: long side of the heat map sent back.
    """

    generation: int
    photo: Path
    sketch: Sketch
    sketch_key: str
    points: tuple[tuple[float, float], ...]
    reverse: bool = False
    heat_side: int = DEFAULT_HEAT_SIDE

    def __post_init__(self) -> None:
        _check_generation(self.generation)
        if not self.points:
            raise ValueError("MatchRequest.points is empty")
        if self.heat_side < 1:
            raise ValueError(f"MatchRequest.heat_side must be ≥ 1, got {self.heat_side}")
        pts = tuple((float(x), float(y)) for x, y in self.points)
        object.__setattr__(self, "points", pts)


Request = (
    LoadModel
    | OpenFolder
    | QueryRequest
    | MaskRequest
    | LabelRequest
    | MatchRequest
    | SuggestRequest
)


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
        photo_scores: (N,) float32 photo score of each photo in [0, 1]
            (:mod:`sketchpad.search.scoring`); it matches when its score ≥ the threshold.
        ranking: (N,) int64 photo indices, best first.
        masks: name → mask at ``mask_side`` (top K and the photos named in the request).
        scores: the gallery scores of each query (the whole sketch first, then stroke groups).
        threshold: the threshold the masks were cut at.
        key: the query's key (:meth:`sketchpad.search.spec.QuerySpec.key`).
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
    key: str = ""

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


@dataclass(frozen=True)
class LabelResult:
    """The answer to a :class:`LabelRequest`.

    Attributes:
        request: what was asked.
        labels: the labelling (:class:`sketchpad.vision.scene_labels.SceneLabels`).
        backbone_id, weights_sha256: the model that answered.
        seconds: wall time of the labelling, model loading excluded.
    """

    request: LabelRequest
    labels: SceneLabels
    backbone_id: str
    weights_sha256: str
    seconds: float


@dataclass(frozen=True)
class MatchResult:
    """The answer to a :class:`MatchRequest`.

    Attributes:
        request: what was asked.
        targets: each point's match, (x, y) in the request's other image's units (sketch:
            fractions of its side; photo: pixels).
        confidences: each match's confidence (0–1).
        heat: (h, w) float32 in [0, 1] (max 1): the first point's heat map over the target
            image (the photo, or the sketch's square), ``heat_side`` on its long side.
        photo_hw: the photo's (H, W) in pixels.
        backbone_id: the model that matched.
        forwards: backbone forwards this answer ran (0: both images were cached).
        seconds: worker time.
    """

    request: MatchRequest
    targets: tuple[tuple[float, float], ...]
    confidences: tuple[float, ...]
    heat: np.ndarray = field(repr=False)
    photo_hw: tuple[int, int]
    backbone_id: str
    forwards: int
    seconds: float


@dataclass(frozen=True)
class SuggestResult:
    """The answer to a :class:`SuggestRequest`.

    Attributes:
        request: what was asked.
        suggestions: for the whole sketch and each group; ``suggestions.source`` says who
            answered (``"zero-shot"`` or the head's path).
        note: why the recognition head named was not used (the message names the file), or
            None.
        seconds: wall time, model loading included.
    """

    request: SuggestRequest
    suggestions: SceneSuggestions
    note: str | None
    seconds: float
