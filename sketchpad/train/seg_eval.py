"""Sketch-based segmentation metrics (seed 000 §5): mIoU of seen and unseen classes, hIoU, pAcc.

Each evaluated pair is a sketch of class ``c`` and a photo that shows ``c``; the prediction
is a binary mask of the photo ("where is what the sketch shows"), compared with the true
mask of ``c`` in that photo. Void pixels (VOC's 255 border) are left out of every count.

- :class:`SegCounts` sums, per class, the intersection and union of predicted and true
  foreground over all pairs of that class, and the correct and total pixels (pixel accuracy
  of the binary decision, background included).
- :func:`summarise` turns counts into a :class:`SegSummary`: a class's IoU is Σ∩ / Σ∪ over
  its pairs; mIoU is the *mean over classes* (a large object does not outweigh a small
  class), separately for seen and unseen classes; hIoU = 2·S·U / (S + U); pAcc is Σ correct /
  Σ total over the pairs of the seen classes, the unseen ones, and all.
- :func:`evaluate` runs a predictor ``predict(sketch, photo) -> mask`` over samples and
  returns the summary with per-pair scores; :class:`SegmenterPredictor` makes one from a
  :class:`~sketchpad.vision.segmenter.Segmenter` (photos embedded once, one query per sketch).

The synthetic benchmark calls the counts directly::

    counts = SegCounts()
    counts.add("circle", pred_mask, true_mask)        # (H, W) bool each
    summary = summarise(counts, unseen={"triangle"})
    summary.miou_seen, summary.miou_unseen, summary.hiou, summary.pacc
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sketchpad.sketch.model import Sketch

if TYPE_CHECKING:  # torch is imported only by the caller that builds a segmenter
    from sketchpad.search.scoring import GalleryScores
    from sketchpad.vision.segmenter import Segmenter

Split = Literal["seen", "unseen", "other"]
#: ``predict(sketch, photo)``: photo (H, W, 3) uint8 RGB → (H, W) bool mask of what the
#: sketch shows.
Predict = Callable[[Sketch, np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]
Warn = Callable[[str], None]


def _as_mask(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{what} must be (H, W), got shape {a.shape}")
    return a.astype(bool, copy=False)


@dataclass
class ClassCounts:
    """Summed counts of one class (pixels; void pixels excluded)."""

    intersection: int = 0
    union: int = 0
    correct: int = 0
    total: int = 0
    pairs: int = 0


@dataclass
class SegCounts:
    """Per-class sums over evaluated pairs. ``add`` one pair at a time; ``merge`` another's.

    Attributes:
        classes: class name → its counts, in first-added order.
    """

    classes: dict[str, ClassCounts] = field(default_factory=dict)

    def add(
        self,
        class_name: str,
        pred: np.ndarray,
        true: np.ndarray,
        valid: np.ndarray | None = None,
    ) -> tuple[float, float]:
        """Count one pair.

        Args:
            class_name: the class the sketch shows.
            pred: (H, W) bool predicted mask (any dtype: nonzero is foreground).
            true: (H, W) bool true mask of the class.
            valid: (H, W) bool, False where the truth is void (not counted); None: all.

        Returns:
            The pair's own (IoU, pixel accuracy); IoU is NaN when both masks are empty.

        Raises:
            ValueError: shapes differ or are not 2-D.
        """
        p, t = _as_mask(pred, "pred"), _as_mask(true, "true")
        if p.shape != t.shape:
            raise ValueError(f"pred of shape {p.shape} but true mask of shape {t.shape}")
        if valid is not None:
            v = _as_mask(valid, "valid")
            if v.shape != t.shape:
                raise ValueError(f"valid of shape {v.shape} but true mask of shape {t.shape}")
            p, t = p[v], t[v]
        inter = int(np.count_nonzero(p & t))
        union = int(np.count_nonzero(p | t))
        correct = int(p.size - np.count_nonzero(p ^ t))
        c = self.classes.setdefault(str(class_name), ClassCounts())
        c.intersection += inter
        c.union += union
        c.correct += correct
        c.total += int(p.size)
        c.pairs += 1
        iou = inter / union if union else math.nan
        return iou, correct / p.size if p.size else math.nan

    def merge(self, other: SegCounts) -> None:
        """Add ``other``'s counts to these."""
        for name, o in other.classes.items():
            c = self.classes.setdefault(name, ClassCounts())
            c.intersection += o.intersection
            c.union += o.union
            c.correct += o.correct
            c.total += o.total
            c.pairs += o.pairs


@dataclass(frozen=True)
class ClassScore:
    """A class's scores: ``iou`` = Σ∩ / Σ∪ (NaN when the union is empty), ``pacc`` = Σ correct
    / Σ total, over its ``pairs``; ``split`` is "seen", "unseen" or "other" (in neither)."""

    iou: float
    pacc: float
    pairs: int
    split: Split


def _nanmean(values: Iterable[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan


def harmonic_iou(seen: float, unseen: float) -> float:
    """hIoU = 2·S·U / (S + U); NaN when either side is NaN (absent), 0 when both are 0."""
    if math.isnan(seen) or math.isnan(unseen):
        return math.nan
    return 2.0 * seen * unseen / (seen + unseen) if seen + unseen > 0 else 0.0


@dataclass(frozen=True)
class SegSummary:
    """The scores of an evaluation (fractions in [0, 1]; NaN where nothing was counted).

    Attributes:
        classes: class name → :class:`ClassScore`.
        miou_seen, miou_unseen, miou: mean IoU over the seen, unseen and all classes.
        hiou: harmonic mean of ``miou_seen`` and ``miou_unseen``.
        pacc_seen, pacc_unseen, pacc: pixel accuracy over the pairs of those classes.
        pairs: pairs counted.
    """

    classes: dict[str, ClassScore]
    miou_seen: float
    miou_unseen: float
    miou: float
    hiou: float
    pacc_seen: float
    pacc_unseen: float
    pacc: float
    pairs: int

    def names(self, split: Split) -> list[str]:
        """The classes of ``split``, in order."""
        return [n for n, c in self.classes.items() if c.split == split]

    def table(self) -> str:
        """Plain text: one row per class (IoU and pAcc in %), then the summary lines."""

        def pct(v: float) -> str:
            return "    n/a" if math.isnan(v) else f"{100 * v:6.2f}%"

        width = max([len("class"), *(len(n) for n in self.classes)])
        lines = [f"{'class':<{width}}  split   pairs      IoU     pAcc"]
        for name, c in self.classes.items():
            row = f"{name:<{width}}  {c.split:<6}  {c.pairs:>5}  {pct(c.iou)}  {pct(c.pacc)}"
            lines.append(row)
        n_s, n_u = len(self.names("seen")), len(self.names("unseen"))
        lines += [
            f"mIoU (S) {pct(self.miou_seen)} over {n_s} classes   mIoU (U) "
            f"{pct(self.miou_unseen)} over {n_u} classes   hIoU {pct(self.hiou)}",
            f"pAcc (S) {pct(self.pacc_seen)}   pAcc (U) {pct(self.pacc_unseen)}   pAcc "
            f"{pct(self.pacc)}   mIoU (all) {pct(self.miou)}   {self.pairs} pairs",
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (NaN → None)."""

        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 6)

        return {
            "miou_seen": num(self.miou_seen),
            "miou_unseen": num(self.miou_unseen),
            "hiou": num(self.hiou),
            "miou": num(self.miou),
            "pacc_seen": num(self.pacc_seen),
            "pacc_unseen": num(self.pacc_unseen),
            "pacc": num(self.pacc),
            "pairs": self.pairs,
            "classes": {
                n: {"split": c.split, "pairs": c.pairs, "iou": num(c.iou), "pacc": num(c.pacc)}
                for n, c in self.classes.items()
            },
        }


def summarise(
    counts: SegCounts,
    *,
    seen: Collection[str] | None = None,
    unseen: Collection[str] = (),
) -> SegSummary:
    """Scores of ``counts``.

    Args:
        counts: the summed counts.
        seen: the seen classes; None: every class not in ``unseen``. A counted class in
            neither set is reported with split "other" and counts only in the "all" scores.
        unseen: the unseen classes.

    ``classes`` lists the seen classes, then the unseen, then the others; within each, in
    the order of ``seen`` / ``unseen`` when they are sequences, else as first counted.

    Raises:
        ValueError: a class is both seen and unseen.
    """
    if isinstance(unseen, str) or isinstance(seen, str):
        raise ValueError("seen and unseen are collections of class names, not one string")
    unseen_set = set(unseen)
    both = unseen_set & set(seen or ())
    if both:
        raise ValueError(f"classes both seen and unseen: {sorted(both)}")

    def split_of(name: str) -> Split:
        if name in unseen_set:
            return "unseen"
        return "seen" if seen is None or name in seen else "other"

    rank = {"seen": 0, "unseen": 1, "other": 2}
    listed = {
        n: i
        for group in (seen or (), unseen)
        if isinstance(group, Sequence)
        for i, n in enumerate(group)
    }
    order = sorted(counts.classes, key=lambda n: (rank[split_of(n)], listed.get(n, len(listed))))
    classes: dict[str, ClassScore] = {}
    for n in order:
        c = counts.classes[n]
        iou = c.intersection / c.union if c.union else math.nan
        pacc_n = c.correct / c.total if c.total else math.nan
        classes[n] = ClassScore(iou, pacc_n, c.pairs, split_of(n))

    def pacc(names: Iterable[str]) -> float:
        names = list(names)
        total = sum(counts.classes[n].total for n in names)
        return sum(counts.classes[n].correct for n in names) / total if total else math.nan

    by: dict[str, list[str]] = {"seen": [], "unseen": []}
    for n, score in classes.items():
        by.get(score.split, []).append(n)
    miou_s = _nanmean(classes[n].iou for n in by["seen"])
    miou_u = _nanmean(classes[n].iou for n in by["unseen"])
    return SegSummary(
        classes=classes,
        miou_seen=miou_s,
        miou_unseen=miou_u,
        miou=_nanmean(c.iou for c in classes.values()),
        hiou=harmonic_iou(miou_s, miou_u),
        pacc_seen=pacc(by["seen"]),
        pacc_unseen=pacc(by["unseen"]),
        pacc=pacc(classes),
        pairs=sum(c.pairs for c in counts.classes.values()),
    )


# -- the evaluation loop -------------------------------------------------------------------------
@dataclass(frozen=True)
class SegSample:
    """One (sketch, photo) pair with the truth.

    Attributes:
        class_name: the class the sketch shows.
        sketch: the query sketch.
        mask: (H, W) bool true mask of the class in the photo.
        valid: (H, W) bool, False on void pixels; None: every pixel counts.
        photo: (H, W, 3) uint8 RGB, or None to load ``photo_path`` when evaluated.
        photo_path: where the photo is (also its name in reports).
        sketch_source: the sketch's name in reports (its file).
    """

    class_name: str
    sketch: Sketch
    mask: np.ndarray
    valid: np.ndarray | None = None
    photo: np.ndarray | None = None
    photo_path: Path | None = None
    sketch_source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", _as_mask(self.mask, "mask"))
        if self.valid is not None:
            object.__setattr__(self, "valid", _as_mask(self.valid, "valid"))
            if self.valid.shape != self.mask.shape:
                raise ValueError(f"valid {self.valid.shape} and mask {self.mask.shape} differ")
        if self.photo is None and self.photo_path is None:
            raise ValueError("photo or photo_path is required")
        if self.photo is not None:
            p = np.asarray(self.photo)
            if p.ndim != 3 or p.shape[2] != 3 or p.dtype != np.uint8:
                raise ValueError(f"photo must be (H, W, 3) uint8, got {p.shape} {p.dtype}")
            if p.shape[:2] != self.mask.shape:
                raise ValueError(f"photo {p.shape[:2]} and mask {self.mask.shape} differ")


@dataclass(frozen=True)
class PairScore:
    """One evaluated pair: its photo and sketch names, class, IoU and pixel accuracy."""

    photo: str
    sketch: str
    class_name: str
    iou: float
    pacc: float


@dataclass(frozen=True)
class SegEvaluation:
    """What :func:`evaluate` returns: the summary, the counts, each pair, the skipped files."""

    summary: SegSummary
    counts: SegCounts
    pairs: tuple[PairScore, ...]
    skipped: tuple[str, ...]


def evaluate(
    predict: Predict,
    samples: Iterable[SegSample],
    seen: Collection[str] | None = None,
    unseen: Collection[str] = (),
    *,
    progress: Progress | None = None,
    total: int | None = None,
    warn: Warn | None = None,
) -> SegEvaluation:
    """Run ``predict`` on every sample and score it (see :func:`summarise` for the splits).

    A sample whose photo cannot be loaded, or whose photo and mask differ in size, is reported
    through ``warn`` (with the file's name) and skipped; the photo of consecutive samples is
    loaded once.

    Args:
        progress: ``progress(done, total)`` after each pair (``total`` may be 0: unknown).

    Raises:
        ValueError: ``predict`` returned a mask that is not the photo's size.
    """
    from sketchpad.gallery.images import PhotoError, load_photo

    counts = SegCounts()
    pairs: list[PairScore] = []
    skipped: list[str] = []
    last: tuple[Path | None, np.ndarray | None] = (None, None)
    bad: set[Path] = set()

    def skip(line: str) -> None:
        skipped.append(line)
        if warn is not None:
            warn(line)

    for sample in samples:
        photo = sample.photo
        if photo is None:
            path = Path(sample.photo_path)  # type: ignore[arg-type]  # set when photo is None
            if path in bad:
                continue
            if last[0] != path:
                try:
                    last = (path, load_photo(path))
                except PhotoError as e:
                    bad.add(path)
                    skip(f"skipped {e}")
                    continue
            photo = last[1]
            assert photo is not None
            if photo.shape[:2] != sample.mask.shape:
                bad.add(path)
                skip(
                    f"skipped {path}: the photo is {photo.shape[1]}×{photo.shape[0]} but its "
                    f"mask {sample.mask.shape[1]}×{sample.mask.shape[0]}"
                )
                continue
        pred = _as_mask(predict(sample.sketch, photo), "the predicted mask")
        if pred.shape != sample.mask.shape:
            raise ValueError(f"predicted mask {pred.shape} for a photo of {sample.mask.shape}")
        iou, pacc = counts.add(sample.class_name, pred, sample.mask, sample.valid)
        name = str(sample.photo_path) if sample.photo_path is not None else f"#{len(pairs)}"
        pairs.append(PairScore(name, sample.sketch_source, sample.class_name, iou, pacc))
        if progress is not None:
            progress(len(pairs), total or 0)
    return SegEvaluation(
        summarise(counts, seen=seen, unseen=unseen), counts, tuple(pairs), tuple(skipped)
    )


# -- a Segmenter as a predictor ------------------------------------------------------------------
class SegmenterPredictor:
    """``predict(sketch, photo)`` by a :class:`~sketchpad.vision.segmenter.Segmenter`, as the
    app segments: each photo is embedded once into one feature bank; each sketch is encoded
    once and scored over the whole bank; the mask of the photo asked for is made at its full
    resolution (dense CRF only with ``crf``).

    With 'gallery-relative' calibration a query's scores are standardised over the bank, so
    :meth:`add_photos` the whole evaluation set first (the app scores a query over the whole
    folder); with 'fixed' calibration (fine-tuned checkpoints) the bank does not matter.

    Args:
        segmenter: the segmenter.
        crf: dense-CRF refinement of each mask.
        threshold: mask threshold (default the segmenter's).
        batch_size: photos per forward in :meth:`add_photos`.
        keep_scores: how many sketches' gallery scores are kept (an LRU).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        *,
        crf: bool = False,
        threshold: float | None = None,
        batch_size: int = 8,
        keep_scores: int = 16,
    ) -> None:
        from sketchpad.vision.bank import FeatureBank

        self.segmenter = segmenter
        self.crf = crf
        self.threshold = threshold
        self.batch_size = max(1, batch_size)
        self.bank = FeatureBank()
        self._index: dict[str, int] = {}
        self._queries: dict[int, tuple[Sketch, np.ndarray]] = {}
        self._scores: OrderedDict[int, GalleryScores] = OrderedDict()
        self._keep = max(1, keep_scores)

    @staticmethod
    def _key(photo: np.ndarray) -> str:
        h = hashlib.blake2b(np.ascontiguousarray(photo).data, digest_size=16)
        return f"{photo.shape}:{h.hexdigest()}"

    def add_photos(self, photos: Iterable[np.ndarray]) -> int:
        """Embed the photos not in the bank yet ((H, W, 3) uint8 RGB); returns how many."""
        new = [p for p in photos if self._key(p) not in self._index]
        uniq = list({self._key(p): p for p in new}.items())
        if not uniq:
            return 0
        feats = self.segmenter.embed_photos([p for _, p in uniq], batch_size=self.batch_size)
        for key, _ in uniq:
            self._index[key] = len(self._index)
        self.bank.extend(feats, names=[k for k, _ in uniq])
        self._scores.clear()  # the gallery changed: its statistics too
        return len(uniq)

    def _query(self, sketch: Sketch) -> GalleryScores:
        key = id(sketch)
        got = self._queries.get(key)
        if got is None or got[0] is not sketch:
            got = (sketch, self.segmenter.sketch_query(sketch).embedding)
            self._queries[key] = got
        scores = self._scores.get(key)
        if scores is None:
            from sketchpad.search.scoring import score_query
            from sketchpad.vision.segmenter import Query

            scores = score_query(self.segmenter, Query(got[1], "sketch"), self.bank)
            self._scores[key] = scores
            while len(self._scores) > self._keep:
                self._scores.popitem(last=False)
        self._scores.move_to_end(key)
        return scores

    def cosine_grid(self, sketch: Sketch, photo: np.ndarray) -> np.ndarray:
        """(gh, gw) float32: the raw patch cosines of ``sketch`` over ``photo`` (diagnostics:
        how well the map separates the object before any threshold)."""
        self.add_photos([photo])
        return self.bank.grid(self._query(sketch).cos, self._index[self._key(photo)])

    def __call__(self, sketch: Sketch, photo: np.ndarray, *, crf: bool | None = None) -> np.ndarray:
        """(H, W) bool mask of what ``sketch`` shows in ``photo`` ((H, W, 3) uint8 RGB); ``crf``
        overrides the predictor's setting for this mask."""
        self.add_photos([photo])
        i = self._index[self._key(photo)]
        scores = self._query(sketch)
        from sketchpad.search.masks import photo_mask

        refine = self.crf if crf is None else crf
        t = self.segmenter.threshold if self.threshold is None else self.threshold
        m = photo_mask([scores], self.bank, i, threshold=t, photo=photo, crf=refine)
        return m.mask


def segmenter_predictor(segmenter: Segmenter, **kwargs: Any) -> SegmenterPredictor:
    """A :class:`SegmenterPredictor` (keyword arguments as its constructor's)."""
    return SegmenterPredictor(segmenter, **kwargs)


def split_classes(
    names: Iterable[str], unseen: Collection[str], key: Callable[[str], str] = str
) -> tuple[list[str], list[str]]:
    """(seen, unseen) of ``names``: a name is unseen when ``key(name)`` is among the keys of
    ``unseen`` (e.g. ``key=class_key`` to match spellings)."""
    keys = {key(u) for u in unseen}
    names = list(names)
    return [n for n in names if key(n) not in keys], [n for n in names if key(n) in keys]
