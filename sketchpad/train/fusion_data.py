"""Data for SketchFusion's four tasks (seed 003 §6): PSC6K and TU-Berlin in their real layouts,
and a synthetic world with known masks and keypoints.

- **PSC6K** (Lu et al. 2023, keypoints on Sketchy pairs): ``test_pairs_ps.csv`` (or
  ``train_pairs_ps.csv``, which has no keypoints) with columns ``photo``, ``sketch`` (paths
  relative to the Sketchy root), ``class``, and in the annotated split ``XA``, ``YA`` (the
  photo's keypoints) and ``XB``, ``YB`` (the sketch's), 8 numbers each separated by ``;``, in
  the pixels of Sketchy's 256×256 images. The seed trains and tests on an 80:20 split of the
  annotated pairs; :func:`read_psc6k` gives the rows, :func:`split_rows` the split.
- **TU-Berlin** (Eitz et al. 2012): ``png/<class>/<id>.png`` (or ``svg/<class>/<id>.svg``),
  250 classes × 80 sketches; class names contain spaces.
- **Synthetic**: photos of one textured shape and outline sketches of a shape class at other
  poses (``train.synthetic``), with the object's mask, and keypoints: outline vertices
  followed through both poses, so sketch and photo keypoints correspond exactly.

A batch (:class:`FusionBatch`) holds images as (B, 3, S, S) float tensors in [−1, 1] (the
fused extractor's input) and, per task, labels, masks or keypoints (pixels of the S×S input,
x then y).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

from sketchpad.train.datasets_common import Warn, load_photo_file, log_warning, subfolders
from sketchpad.train.synthetic import SEEN, SHAPES, make_photo, make_sketch, render_sketch

Task = Literal["retrieval", "recognition", "segmentation", "correspondence"]
TASKS: tuple[Task, ...] = ("retrieval", "recognition", "segmentation", "correspondence")
#: PSC6K's keypoints are in the pixels of Sketchy's images.
PSC6K_SIDE = 256
#: Keypoints per synthetic pair.
SYNTH_KEYPOINTS = 8


class DatasetError(ValueError):
    """A dataset folder or file cannot be used; the message names it and the reason."""


@dataclass
class FusionBatch:
    """One step's examples. Images (B, 3, S, S) in [−1, 1]; keypoints (B, K, 2) x, y pixels."""

    sketch: torch.Tensor
    photo: torch.Tensor | None = None
    negative: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    mask: torch.Tensor | None = None  # (B, S, S) float 0/1
    kp_sketch: torch.Tensor | None = None
    kp_photo: torch.Tensor | None = None
    extra: dict[str, object] = field(default_factory=dict)


def to_input(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """(H, W, 3) uint8 images → (B, 3, size, size) float in [−1, 1] (plain resize)."""
    out = []
    for im in images:
        if im.ndim == 2:
            im = np.repeat(im[:, :, None], 3, axis=2)
        if im.shape[:2] != (size, size):
            im = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
        out.append(im[:, :, :3])
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x.contiguous()


# --- PSC6K --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PSC6KPair:
    """One annotated photo–sketch pair: paths under the Sketchy root, class index, and the
    keypoints (K, 2) x, y in Sketchy's 256-pixel images."""

    photo: Path
    sketch: Path
    label: int
    kp_photo: np.ndarray
    kp_sketch: np.ndarray


def _floats(text: str, where: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(";") if v.strip()]
    except ValueError as e:
        raise DatasetError(f"{where}: not a ;-separated list of numbers ({e})") from e
    if not all(math.isfinite(v) for v in values):
        raise DatasetError(f"{where}: a keypoint coordinate is not finite")
    return values


def read_psc6k(csv_path: Path, sketchy_root: Path, *, warn: Warn = log_warning) -> list[PSC6KPair]:
    """The annotated pairs of a PSC6K ``*_pairs_ps.csv`` whose images exist under
    ``sketchy_root`` (missing images are skipped with a warning).

    Raises:
        DatasetError: the file is unreadable, lacks a column, or holds bad keypoints.
    """
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{csv_path}: cannot be read as CSV ({e})") from e
    need = {"photo", "sketch", "class", "XA", "YA", "XB", "YB"}
    if not rows or not need <= set(rows[0]):
        have = ", ".join(rows[0]) if rows else "no rows"
        raise DatasetError(
            f"{csv_path}: not an annotated PSC6K pairs file (needs {', '.join(sorted(need))}; "
            f"has {have}); the train_pairs_*.csv files carry no keypoints"
        )
    out: list[PSC6KPair] = []
    for i, row in enumerate(rows, start=2):
        where = f"{csv_path}:{i}"
        xa, ya = _floats(row["XA"], where), _floats(row["YA"], where)
        xb, yb = _floats(row["XB"], where), _floats(row["YB"], where)
        if not len(xa) == len(ya) == len(xb) == len(yb) or not xa:
            raise DatasetError(f"{where}: keypoint lists of different lengths")
        photo, sketch = sketchy_root / row["photo"], sketchy_root / row["sketch"]
        if not photo.is_file() or not sketch.is_file():
            warn(f"{where}: skipped, {photo if not photo.is_file() else sketch} does not exist")
            continue
        try:
            label = int(row["class"])
        except ValueError as e:
            raise DatasetError(f"{where}: class {row['class']!r} is not an integer") from e
        out.append(
            PSC6KPair(
                photo,
                sketch,
                label,
                np.stack([xa, ya], axis=1).astype(np.float32),
                np.stack([xb, yb], axis=1).astype(np.float32),
            )
        )
    return out


def split_rows(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """A seeded train/test split of ``n`` items (the seed's 80:20 by default)."""
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(n * test_fraction))
    return sorted(order[k:].tolist()), sorted(order[:k].tolist())


# --- TU-Berlin ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledSketches:
    """Sketch files and their class index; ``classes`` in sorted order."""

    files: tuple[Path, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]


def read_tu_berlin(root: Path) -> LabelledSketches:
    """TU-Berlin's ``png/<class>/*.png`` (or ``svg/<class>/*.svg``) under ``root`` (``root``
    may be the ``png``/``svg`` folder itself).

    Raises:
        DatasetError: no class folders with sketches.
    """
    base = root
    for name in ("png", "svg"):
        if (root / name).is_dir():
            base = root / name
            break
    classes: list[str] = []
    files: list[Path] = []
    labels: list[int] = []
    for folder in subfolders(base):
        found = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in (".png", ".svg") and p.is_file()
        )
        if not found:
            continue
        classes.append(folder.name)
        files += found
        labels += [len(classes) - 1] * len(found)
    if not files:
        raise DatasetError(f"{root}: no TU-Berlin class folders (png/<class>/<id>.png) found")
    return LabelledSketches(tuple(files), tuple(labels), tuple(classes))


def load_sketch_image(path: Path, size: int, warn: Warn = log_warning) -> np.ndarray | None:
    """A sketch file as (size, size, 3) uint8: PNG/JPG as it is, SVG through our renderer."""
    if path.suffix.lower() == ".svg":
        from sketchpad.train.datasets_common import load_sketch_file

        sketch = load_sketch_file(path, warn)
        return None if sketch is None else render_sketch(sketch, size)
    return load_photo_file(path, warn)


# --- the synthetic world --------------------------------------------------------------------


def _outline_pixels(cls: str, pose: np.ndarray, radius: float, centre: np.ndarray) -> np.ndarray:
    return (SHAPES[cls] @ pose.T) * radius + centre


def _random_pose(rng: np.random.Generator, rotation: float) -> np.ndarray:
    theta = rng.uniform(-rotation, rotation)
    aspect = math.exp(rng.uniform(-0.2, 0.2))
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]]) @ np.diag([aspect, 1 / aspect])


def correspondence_pair(
    rng: np.random.Generator, cls: str, size: int, *, rotation: float = 0.6
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A photo of a filled, textured ``cls`` and an outline sketch of it under another random
    warp (rotation, aspect, scale, place), with keypoints: ``SYNTH_KEYPOINTS`` outline vertices
    in both. Returns photo, sketch (size, size, 3) uint8, kp_photo, kp_sketch (K, 2) x, y."""
    outline = SHAPES[cls]
    idx = np.linspace(0, len(outline), SYNTH_KEYPOINTS, endpoint=False).astype(int)
    kps = []
    images = []
    for kind in ("photo", "sketch"):
        pose = _random_pose(rng, rotation)
        radius = rng.uniform(0.25, 0.38) * size
        centre = rng.uniform(radius * 1.1, size - radius * 1.1, 2)
        pts = _outline_pixels(cls, pose, radius, centre)
        poly = np.round(pts * 16).astype(np.int32)
        if kind == "photo":
            bg = rng.uniform(0.2, 0.8, 3)
            img = np.empty((size, size, 3), np.float32)
            img[:] = bg
            img += rng.normal(0, 0.04, img.shape)
            mask = np.zeros((size, size), np.uint8)
            cv2.fillPoly(mask, [poly], 1, lineType=cv2.LINE_8, shift=4)
            colour = rng.uniform(0.05, 0.95, 3)
            yy, xx = np.mgrid[0:size, 0:size]
            shade = 0.15 * np.sin((xx - centre[0]) * 0.3)[..., None]
            img[mask.astype(bool)] = (colour + shade)[mask.astype(bool)]
            images.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
        else:
            img_u8 = np.full((size, size, 3), 255, np.uint8)
            cv2.polylines(img_u8, [poly], True, (0, 0, 0), max(1, size // 64), cv2.LINE_AA, 4)
            images.append(img_u8)
        kps.append(pts[idx].astype(np.float32))
    return images[0], images[1], kps[0], kps[1]


class SyntheticFusionSource:
    """Batches of every task from generated shapes, a pure function of (rng state, size).

    Args:
        size: the extractor's input side.
        classes: shape classes (``train.synthetic.SHAPES`` names).
    """

    def __init__(self, size: int, classes: Sequence[str] = SEEN) -> None:
        self.size = int(size)
        self.classes = tuple(classes)

    def _sketch(self, rng: np.random.Generator, cls: str) -> np.ndarray:
        return render_sketch(make_sketch(rng, cls, partial_rate=0.0), self.size)

    def batch(self, task: Task, rng: np.random.Generator, n: int) -> FusionBatch:
        s = self.size
        labels = rng.integers(0, len(self.classes), n)
        names = [self.classes[int(k)] for k in labels]
        if task == "recognition":
            sketches = [self._sketch(rng, c) for c in names]
            return FusionBatch(to_input(sketches, s), labels=torch.from_numpy(labels).long())
        if task == "retrieval":
            sketches = [self._sketch(rng, c) for c in names]
            pos = [make_photo(rng, [c], s, materials=True).image for c in names]
            neg_names = [
                self.classes[(int(k) + int(rng.integers(1, len(self.classes)))) % len(self.classes)]
                for k in labels
            ]
            neg = [make_photo(rng, [c], s, materials=True).image for c in neg_names]
            return FusionBatch(
                to_input(sketches, s),
                photo=to_input(pos, s),
                negative=to_input(neg, s),
                labels=torch.from_numpy(labels).long(),
            )
        if task == "segmentation":
            sketches = [self._sketch(rng, c) for c in names]
            photos = [make_photo(rng, [c], s, materials=True) for c in names]
            masks = np.stack([p.mask_of(c) for p, c in zip(photos, names, strict=True)])
            return FusionBatch(
                to_input(sketches, s),
                photo=to_input([p.image for p in photos], s),
                mask=torch.from_numpy(masks).float(),
            )
        if task == "correspondence":
            pairs = [correspondence_pair(rng, c, s) for c in names]
            return FusionBatch(
                to_input([p[1] for p in pairs], s),
                photo=to_input([p[0] for p in pairs], s),
                kp_photo=torch.from_numpy(np.stack([p[2] for p in pairs])),
                kp_sketch=torch.from_numpy(np.stack([p[3] for p in pairs])),
            )
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


class PSC6KSource:
    """Correspondence batches from PSC6K pairs (images resized to ``size``, keypoints
    scaled with them)."""

    def __init__(self, pairs: Sequence[PSC6KPair], size: int, warn: Warn = log_warning) -> None:
        if not pairs:
            raise DatasetError("no PSC6K pairs to train on")
        self.pairs = list(pairs)
        self.size = int(size)
        self.warn = warn

    def batch(self, task: Task, rng: np.random.Generator, n: int) -> FusionBatch:
        if task != "correspondence":
            raise DatasetError("PSC6K holds keypoints: it trains the correspondence task only")
        chosen = [self.pairs[int(i)] for i in rng.integers(0, len(self.pairs), n)]
        photos, sketches, kp_p, kp_s = [], [], [], []
        for pair in chosen:
            photo = load_photo_file(pair.photo, self.warn)
            sketch = load_photo_file(pair.sketch, self.warn)
            if photo is None or sketch is None:
                raise DatasetError(f"{pair.photo} or {pair.sketch} cannot be decoded")
            photos.append(photo)
            sketches.append(sketch)
            kp_p.append(pair.kp_photo * (self.size / photo.shape[1]))
            kp_s.append(pair.kp_sketch * (self.size / sketch.shape[1]))
        return FusionBatch(
            to_input(sketches, self.size),
            photo=to_input(photos, self.size),
            kp_photo=torch.from_numpy(np.stack(kp_p)).float(),
            kp_sketch=torch.from_numpy(np.stack(kp_s)).float(),
        )


class TripletFusionSource:
    """Retrieval (and recognition) batches from an SBIR triplet source, e.g. Sketchy's
    (``train.sources.SketchyTriplets``): category level (the negative is of another class) or
    fine-grained (another photo of the same class: the seed's hard triplets)."""

    def __init__(self, triplets: object, size: int, level: Literal["category", "fine"]) -> None:
        from sketchpad.train.sbir_train import TripletSource

        self.triplets: TripletSource = triplets  # type: ignore[assignment]
        self.size = int(size)
        self.level: Literal["category", "fine"] = level

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.triplets.classes)

    def batch(self, task: Task, rng: np.random.Generator, n: int) -> FusionBatch:
        if task not in ("retrieval", "recognition"):
            raise DatasetError(f"a triplet source trains retrieval or recognition, not {task}")
        t = self.triplets.triplets(rng, n, self.level)
        labels = torch.from_numpy(np.asarray(t.labels, np.int64))
        if task == "recognition":
            return FusionBatch(to_input(list(t.sketches), self.size), labels=labels)
        return FusionBatch(
            to_input(list(t.sketches), self.size),
            photo=to_input(list(t.positives), self.size),
            negative=to_input(list(t.negatives), self.size),
            labels=labels,
        )


class LabelledSketchSource:
    """Recognition batches from labelled sketch files (TU-Berlin)."""

    def __init__(self, data: LabelledSketches, size: int, warn: Warn = log_warning) -> None:
        self.data = data
        self.size = int(size)
        self.warn = warn

    def batch(self, task: Task, rng: np.random.Generator, n: int) -> FusionBatch:
        if task != "recognition":
            raise DatasetError("TU-Berlin holds labelled sketches: it trains recognition only")
        idx = rng.integers(0, len(self.data.files), n)
        images = []
        for i in idx:
            im = load_sketch_image(self.data.files[int(i)], self.size, self.warn)
            if im is None:
                raise DatasetError(f"{self.data.files[int(i)]} cannot be decoded")
            images.append(im)
        labels = torch.tensor([self.data.labels[int(i)] for i in idx], dtype=torch.long)
        return FusionBatch(to_input(images, self.size), labels=labels)
