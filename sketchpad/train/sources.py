"""The real datasets as the trainers' sources (DESIGN §4.5).

- :class:`SketchyPairs`: Sketchy / Sketchy-Extended as the segmenter's
  :class:`~sketchpad.train.segmenter_train.PairSource`;
- :class:`SketchyTriplets`: the same as the SBIR critic's
  :class:`~sketchpad.train.sbir_train.TripletSource`;
- :func:`fscoco_scenes`: FS-COCO / FSCOCO-Seg captioned sketches as the scene labeller's
  :class:`~sketchpad.train.scene_train.CaptionedScene` samples.

Images are decoded when a batch needs them and kept, at the model's input size, in a small LRU
(photos letterboxed whole with the backbone's mean as the fill, sketches rendered by the app's
own ``sketch_input``), so an epoch over 75,000 sketches never holds them all. Every draw is made
with the step's generator, so a batch is a function of (seed, step) and of which files are
unreadable, never of what happens to be cached: a resumed run sees the batches of an
uninterrupted one.

A file that cannot be used (unreadable, no ink) is reported once through ``warn`` (file and
reason), remembered, and the sample is drawn again; after ``max_failures`` unusable draws in a
row the source gives up with a :class:`~sketchpad.train.loop.TrainingError` naming the last
file, so a folder of broken files ends the run instead of looping forever.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.train.datasets_common import Warn, class_key, load_photo_file, load_sketch_file
from sketchpad.train.datasets_common import log_warning as _log_warning
from sketchpad.train.datasets_fscoco import CaptionedSketch
from sketchpad.train.datasets_sketchy import SketchyDataset
from sketchpad.train.loop import TrainingError
from sketchpad.train.sbir_train import TripletBatch
from sketchpad.train.scene_train import CaptionedScene
from sketchpad.train.segmenter_train import PairBatch, partition_views
from sketchpad.vision.features import sketch_input
from sketchpad.vision.letterbox import letterbox_image
from sketchpad.vision.scene_vocab import Vocabulary

Level = Literal["category", "fine"]
K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

#: Unusable draws in a row after which a source gives up.
MAX_FAILURES = 100
#: Decoded images kept per kind (photos, sketches); ~150 kB each at 224².
CACHE_SIZE = 512


class LRU(Generic[K, V]):
    """A least-recently-used mapping of at most ``maxsize`` items (0: keeps nothing)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = max(0, int(maxsize))
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.maxsize == 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)


def fill_of(mean: Sequence[float]) -> tuple[int, int, int]:
    """The letterbox fill of a backbone: its normalisation mean as 0–255 RGB."""
    r, g, b = (round(255 * float(m)) for m in mean)
    return (r, g, b)


class ImageStore:
    """Photos and sketches decoded on demand at one input size, with an LRU and a memory of
    the files that could not be used (each reported once)."""

    def __init__(
        self,
        size: int,
        fill_rgb: tuple[int, int, int],
        *,
        warn: Warn = _log_warning,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size = int(size)
        self.fill_rgb = fill_rgb
        self.warn = warn
        self.bad: dict[Path, str] = {}
        self._photos: LRU[Path, np.ndarray] = LRU(cache_size)
        self._sketches: LRU[Path, tuple[Sketch, np.ndarray]] = LRU(cache_size)

    def _report(self, path: Path) -> Warn:
        def warn(message: str) -> None:
            self.bad.setdefault(path, message)
            self.warn(message)

        return warn

    def photo(self, path: Path) -> np.ndarray | None:
        """(S, S, 3) uint8: the photo letterboxed whole; None when it cannot be used."""
        if path in self.bad:
            return None
        got = self._photos.get(path)
        if got is None:
            image = load_photo_file(path, self._report(path))
            if image is None:
                return None
            got, _ = letterbox_image(image, self.size, self.fill_rgb)
            self._photos.put(path, got)
        return got

    def sketch(self, path: Path) -> tuple[Sketch, np.ndarray] | None:
        """(the sketch, its (S, S, 3) uint8 rendering); None when it cannot be used."""
        if path in self.bad:
            return None
        got = self._sketches.get(path)
        if got is None:
            sketch = load_sketch_file(path, self._report(path))
            if sketch is None:
                return None
            if sketch.bbox() is None:
                self._report(path)(f"skipped {path}: the sketch has no ink")
                return None
            got = (sketch, sketch_input(sketch, None, self.size))
            self._sketches.put(path, got)
        return got


class Retry:
    """Draws until one succeeds; gives up after ``max_failures`` failures in a row."""

    def __init__(self, store: ImageStore, max_failures: int = MAX_FAILURES) -> None:
        self.store = store
        self.max_failures = max(1, int(max_failures))

    def __call__(self, draw: Callable[[], T | None], paths: Callable[[], Sequence[Path]]) -> T:
        """``draw()`` until it gives a value; ``paths()`` names the files of the last try."""
        for _ in range(self.max_failures):
            got = draw()
            if got is not None:
                return got
        bad = [p for p in paths() if p in self.store.bad]
        last = self.store.bad[bad[-1]] if bad else "no reason recorded"
        raise TrainingError(
            f"{self.max_failures} training samples in a row could not be used; the last: "
            f"{last}. Check the dataset's files"
        )


@dataclass(frozen=True)
class _Sketch:
    path: Path
    label: int  # index into the classes
    own_photo: Path | None  # the photo it was drawn from (fine-grained pairs)


class SketchyIndex:
    """Sketchy's sketches and photos by class, as the two sources draw from them.

    Attributes:
        classes: the classes with sketches and photos (folder spelling), sorted.
        photos: per class, its photo files (Sketchy-Extended ones included).
        sketches: every usable sketch with its class and its own photo.
    """

    def __init__(self, dataset: SketchyDataset) -> None:
        by_class = dataset.photos_by_category(extended=True)
        names = sorted(
            {s.category for s in dataset.sketches if by_class.get(class_key(s.category))}
        )
        self.classes: tuple[str, ...] = tuple(names)
        index = {class_key(c): i for i, c in enumerate(names)}
        self.photos: list[list[Path]] = [[p.path for p in by_class[class_key(c)]] for c in names]
        own = {
            (class_key(p.category), p.instance_id): p.path for p in dataset.photos if not p.extended
        }
        self.sketches: list[_Sketch] = [
            _Sketch(s.path, index[key], own.get((key, s.instance_id)))
            for s in dataset.sketches
            if (key := class_key(s.category)) in index
        ]
        self.fine_rows = np.array(
            [
                i
                for i, s in enumerate(self.sketches)
                if s.own_photo is not None and len(self.photos[s.label]) > 1
            ],
            dtype=np.int64,
        )

    def rows(self, level: Level) -> np.ndarray:
        """The sketches usable at ``level``: all (category), those with their own photo and
        another photo of the class (fine).

        Raises:
            TrainingError: none, or fewer than two classes for category-level training.
        """
        if level == "fine":
            if not len(self.fine_rows):
                raise TrainingError(
                    "no sketch has its own photo and another photo of its class: fine-grained "
                    "training needs Sketchy's photo/<class>/<id>.jpg for <id>-<k> sketches"
                )
            return self.fine_rows
        if level != "category":
            raise TrainingError(f"level must be 'category' or 'fine', got {level!r}")
        if len(self.classes) < 2:
            raise TrainingError(
                f"category-level training needs sketches and photos of at least two classes, "
                f"found {len(self.classes)}"
            )
        return np.arange(len(self.sketches), dtype=np.int64)

    def photo_of_class(self, rng: np.random.Generator, label: int) -> Path:
        photos = self.photos[label]
        return photos[int(rng.integers(len(photos)))]

    def photo_of_other_class(self, rng: np.random.Generator, label: int) -> Path:
        n = len(self.classes)
        return self.photo_of_class(rng, int((label + rng.integers(1, n)) % n))

    def photo_and_negative(
        self, rng: np.random.Generator, entry: _Sketch, level: Level
    ) -> list[Path]:
        """The sketch's photo and a negative one: fine-grained, its own photo and another of
        its class; category-level, a photo of its class and one of another class."""
        if level == "fine":
            assert entry.own_photo is not None
            return [entry.own_photo, self.other_photo_of_class(rng, entry)]
        return [
            self.photo_of_class(rng, entry.label),
            self.photo_of_other_class(rng, entry.label),
        ]

    def other_photo_of_class(self, rng: np.random.Generator, sketch: _Sketch) -> Path:
        photos = [p for p in self.photos[sketch.label] if p != sketch.own_photo]
        return photos[int(rng.integers(len(photos)))]


class _SketchySource:
    def __init__(
        self,
        dataset: SketchyDataset,
        size: int,
        *,
        fill_rgb: tuple[int, int, int],
        warn: Warn,
        cache_size: int,
        max_failures: int,
    ) -> None:
        self.index = SketchyIndex(dataset)
        self.store = ImageStore(size, fill_rgb, warn=warn, cache_size=cache_size)
        self.retry = Retry(self.store, max_failures)
        self.size = int(size)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.index.classes

    def _draw(
        self, rng: np.random.Generator, rows: np.ndarray, pick: Callable[[_Sketch], list[Path]]
    ) -> tuple[_Sketch, Sketch, np.ndarray, list[np.ndarray]]:
        """One sketch of ``rows`` with the photos ``pick`` chooses for it, all decoded."""
        tried: list[Path] = []

        def once() -> tuple[_Sketch, Sketch, np.ndarray, list[np.ndarray]] | None:
            entry = self.index.sketches[int(rows[rng.integers(len(rows))])]
            photos = pick(entry)
            tried[:] = [entry.path, *photos]
            drawn = self.store.sketch(entry.path)
            if drawn is None:
                return None
            images = []
            for path in photos:
                image = self.store.photo(path)
                if image is None:
                    return None
                images.append(image)
            return entry, drawn[0], drawn[1], images

        return self.retry(once, lambda: tried)


class SketchyPairs(_SketchySource):
    """Sketchy as the segmenter's pair source.

    Per pair: a sketch drawn at random; its photo (category level: a photo of its class;
    fine: the photo it was drawn from); the unpaired photo (category: a photo of another
    class; fine: another photo of the same class). Partitions only for sketches with strokes
    (the SVG sketches; a rendered PNG is a raster and cannot be cut by strokes).

    Args:
        dataset: what ``read_sketchy`` listed (a split or a class subset of it).
        size: the segmenter's input side.
        level: "category" or "fine".
        fill_rgb: the letterbox fill (:func:`fill_of` the backbone's mean).
        warn: receives one line per unusable file.
        cache_size: decoded photos (and sketches) kept.
        max_failures: unusable draws in a row before giving up.

    Raises:
        TrainingError: nothing usable at ``level``.
    """

    def __init__(
        self,
        dataset: SketchyDataset,
        size: int,
        level: Level = "category",
        *,
        fill_rgb: tuple[int, int, int] = (128, 128, 128),
        warn: Warn = _log_warning,
        cache_size: int = CACHE_SIZE,
        max_failures: int = MAX_FAILURES,
    ) -> None:
        super().__init__(dataset, size, fill_rgb=fill_rgb, warn=warn, cache_size=cache_size,
                         max_failures=max_failures)  # fmt: skip
        self.level = level
        self._rows = self.index.rows(level)

    def pairs(self, rng: np.random.Generator, k: int, partition_fraction: float) -> PairBatch:
        def pick(entry: _Sketch) -> list[Path]:
            return self.index.photo_and_negative(rng, entry, self.level)

        drawings, sketches, photos, unpaired = [], [], [], []
        for _ in range(k):
            _, drawing, render, (photo, other) = self._draw(rng, self._rows, pick)
            drawings.append(drawing)
            sketches.append(render)
            photos.append(photo)
            unpaired.append(other)
        parts, rows = self._partitions(drawings, rng, partition_fraction)
        return PairBatch(np.stack(sketches), np.stack(photos), np.stack(unpaired), parts, rows)

    def _partitions(
        self, drawings: Sequence[Sketch], rng: np.random.Generator, fraction: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like ``choose_partitions``, over the sketches with strokes only."""
        want = int(round(fraction * len(drawings)))
        views: list[np.ndarray] = []
        rows: list[int] = []
        for i, drawing in enumerate(drawings):
            if len(rows) >= want:
                break
            if drawing.is_raster or not drawing.strokes:
                continue
            pv = partition_views(drawing, rng, self.size)
            if pv is not None:
                views.append(np.stack(pv))
                rows.append(i)
        if not views:
            return np.zeros((0, 2, self.size, self.size, 3), np.uint8), np.zeros(0, np.int64)
        return np.stack(views), np.asarray(rows, dtype=np.int64)


class SketchyTriplets(_SketchySource):
    """Sketchy as the SBIR critic's triplet source: a sketch, a positive photo (category: of
    its class; fine: its own) and a negative (category: of another class; fine: another photo
    of its class); ``labels`` index :attr:`classes`. Arguments as :class:`SketchyPairs`."""

    def __init__(
        self,
        dataset: SketchyDataset,
        size: int,
        *,
        fill_rgb: tuple[int, int, int] = (128, 128, 128),
        warn: Warn = _log_warning,
        cache_size: int = CACHE_SIZE,
        max_failures: int = MAX_FAILURES,
    ) -> None:
        super().__init__(dataset, size, fill_rgb=fill_rgb, warn=warn, cache_size=cache_size,
                         max_failures=max_failures)  # fmt: skip
        if not self.index.sketches:
            raise TrainingError("no class has both sketches and photos")

    def triplets(self, rng: np.random.Generator, k: int, level: Level) -> TripletBatch:
        rows = self.index.rows(level)

        def pick(entry: _Sketch) -> list[Path]:
            return self.index.photo_and_negative(rng, entry, level)

        sketches, pos, neg, labels = [], [], [], []
        for _ in range(k):
            entry, _, render, (p, n) = self._draw(rng, rows, pick)
            sketches.append(render)
            pos.append(p)
            neg.append(n)
            labels.append(entry.label)
        return TripletBatch(
            np.stack(sketches), np.stack(pos), np.stack(neg), np.asarray(labels, np.int64)
        )


def fscoco_scenes(
    samples: Sequence[CaptionedSketch], vocabulary: Vocabulary, *, warn: Warn = _log_warning
) -> list[CaptionedScene]:
    """FS-COCO / FSCOCO-Seg samples as the scene trainer's captioned scenes (decoded now).

    A sample's categories are the labels of its strokes when it has per-stroke labels, else
    the vocabulary names its caption mentions. Samples that cannot be read, have no ink or no
    category are reported through ``warn`` and left out.
    """
    scenes = []
    for s in samples:
        sketch: Sketch | None = None
        categories: tuple[str, ...] = ()
        if s.has_stroke_labels:
            labelled = s.load_labelled(warn)
            if labelled is not None:
                sketch = labelled.sketch
                used = sorted({int(i) for i in labelled.stroke_labels if i >= 0})
                categories = tuple(labelled.labels[i] for i in used)
        if sketch is None:
            sketch = s.load_sketch(warn)
            if sketch is None:
                continue
        if sketch.bbox() is None:
            warn(f"skipped {s.sketch_path}: the sketch has no ink")
            continue
        if not categories:
            categories = vocabulary.labels_from_caption(s.caption)
        if not categories:
            warn(
                f"skipped {s.sketch_path}: no category in its stroke labels or caption "
                f"({s.caption[:60]!r})"
            )
            continue
        scenes.append(CaptionedScene(sketch, s.caption, categories))
    return scenes
