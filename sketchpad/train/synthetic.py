"""A synthetic sketch–photo world with true masks, to prove on a CPU that training works.

Photos: a textured background (smooth colour noise plus a grating) with 1–3 filled, textured
objects from several shape classes, each at a random pose (rotation, aspect, scale, place) and
colour; later objects occlude earlier ones and the true masks say what stays visible. With
``materials``, each class's objects wear that class's surface pattern (:data:`SURFACES`) and
the background is colour noise alone. The true
masks are kept for evaluation only: training never reads them.

Sketches: stroke-vector outlines of a shape class at another random pose, jittered like a
hand would, cut into 1–3 strokes, and sometimes partial (a piece of the outline left out).
They are :class:`~sketchpad.sketch.model.Sketch` objects, rendered by the app's own
``render_query``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from sketchpad.sketch.model import Sketch, sketch_from_polylines

if TYPE_CHECKING:  # both import this module
    from sketchpad.train.sbir_train import TripletBatch
    from sketchpad.train.segmenter_train import PairBatch


def _polygon(n: int, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star(points: int, inner: float) -> np.ndarray:
    t = -np.pi / 2 + np.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y], axis=1) / 17.0


def _crescent() -> np.ndarray:
    t = np.linspace(-0.8 * np.pi, 0.8 * np.pi, 24)
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([0.45 + 0.6 * np.cos(t[::-1]), 0.75 * np.sin(t[::-1])], axis=1)
    return np.concatenate([outer, inner])


def _cross() -> np.ndarray:
    a, b = 0.33, 1.0
    return np.array(
        [[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b], [-a, a],
         [-b, a], [-b, -a], [-a, -a]]
    )  # fmt: skip


def _arrow() -> np.ndarray:
    return np.array([[-1, -0.3], [0.2, -0.3], [0.2, -0.8], [1, 0], [0.2, 0.8], [0.2, 0.3],
                     [-1, 0.3]])  # fmt: skip


def _l_shape() -> np.ndarray:
    return np.array([[-0.8, -1], [-0.2, -1], [-0.2, 0.4], [0.8, 0.4], [0.8, 1], [-0.8, 1]])


#: Shape classes: a closed outline in about [−1, 1]², counter-clockwise or not.
SHAPES: dict[str, np.ndarray] = {
    "circle": _polygon(40),
    "square": _polygon(4, np.pi / 4) / math.sqrt(0.5) * 0.8,
    "triangle": _polygon(3, -np.pi / 2),
    "star": _star(5, 0.42),
    "cross": _cross(),
    "heart": _heart(),
    "crescent": _crescent(),
    "arrow": _arrow(),
    "hexagon": _polygon(6),
    "l-shape": _l_shape(),
}
#: The default split: the seen classes train, the unseen ones are only evaluated.
SEEN = ("circle", "square", "triangle", "star", "cross", "heart", "crescent", "arrow")
UNSEEN = ("hexagon", "l-shape")


#: Each class's surface (``materials=True``): a pattern kind, its angle in degrees (fixed in
#: the image, ±10° jitter) and period in pixels at size 32 (scaled with the photo).
SURFACES: dict[str, tuple[str, float, float]] = {
    "circle": ("stripes", 0.0, 6.0),
    "square": ("stripes", 90.0, 6.0),
    "triangle": ("checks", 0.0, 8.0),
    "star": ("dots", 0.0, 6.0),
    "cross": ("stripes", 45.0, 6.0),
    "heart": ("stripes", 135.0, 6.0),
    "crescent": ("rings", 0.0, 6.0),
    "arrow": ("grid", 0.0, 7.0),
    "hexagon": ("checks", 45.0, 8.0),
    "l-shape": ("stripes", 0.0, 12.0),
}


def _surface(rng: np.random.Generator, cls: str, size: int, centre: np.ndarray) -> np.ndarray:
    """(size, size) float in [−1, 1]: class ``cls``'s surface pattern at a random phase."""
    kind, angle, period = SURFACES[cls]
    theta = math.radians(angle + rng.uniform(-10, 10))
    w = 2 * math.pi / (period * size / 32 * math.exp(rng.uniform(-0.15, 0.15)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = (xx - centre[0]) * math.cos(theta) + (yy - centre[1]) * math.sin(theta)
    v = -(xx - centre[0]) * math.sin(theta) + (yy - centre[1]) * math.cos(theta)
    ph, ph2 = rng.uniform(0, 2 * np.pi, 2)
    if kind == "stripes":
        return np.sign(np.sin(w * u + ph))
    if kind == "checks":
        return np.sign(np.sin(w * u + ph) * np.sin(w * v + ph2))
    if kind == "dots":
        return np.where(np.cos(w * u + ph) + np.cos(w * v + ph2) > 1.0, 1.0, -0.4)
    if kind == "grid":
        return np.where(np.maximum(np.cos(w * u + ph), np.cos(w * v + ph2)) > 0.8, 1.0, -0.4)
    if kind == "rings":
        return np.sign(np.sin(w * np.hypot(u, v) + ph))
    raise ValueError(f"unknown surface kind {kind!r}")


def _densify(outline: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` units along the closed outline."""
    closed = np.concatenate([outline, outline[:1]])
    seg = np.diff(closed, axis=0)
    length = np.linalg.norm(seg, axis=1)
    cum = np.concatenate([[0.0], np.cumsum(length)])
    t = np.arange(0.0, cum[-1], step)
    i = np.clip(np.searchsorted(cum, t, side="right") - 1, 0, len(seg) - 1)
    frac = ((t - cum[i]) / np.maximum(length[i], 1e-9))[:, None]
    return closed[i] + frac * seg[i]


def _pose(rng: np.random.Generator, outline: np.ndarray, rotation: float = np.pi) -> np.ndarray:
    """Random rotation (within ±``rotation`` radians) and aspect (the shape's own proportions
    vary a little)."""
    theta = rng.uniform(-rotation, rotation)
    c, s = math.cos(theta), math.sin(theta)
    aspect = math.exp(rng.uniform(-0.25, 0.25))
    pts = outline * np.array([aspect, 1 / aspect])
    return pts @ np.array([[c, -s], [s, c]]).T


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    small = rng.random((cells, cells, 3)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, size: int, base: np.ndarray, amount: float) -> np.ndarray:
    """(size, size, 3) float: ``base`` colour with smooth noise and a random grating."""
    noise = _smooth_noise(rng, size, int(rng.integers(3, 9))) - 0.5
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    ang = rng.uniform(0, np.pi)
    freq = rng.uniform(0.15, 0.6)
    grating = np.sin(freq * (xx * math.cos(ang) + yy * math.sin(ang)) + rng.uniform(0, 6.3))
    tint = rng.uniform(-1, 1, 3).astype(np.float32)
    img = base[None, None] + amount * (0.6 * noise + 0.25 * grating[..., None] * tint)
    return img


@dataclass(frozen=True)
class SyntheticPhoto:
    """A generated photo and what is in it.

    Attributes:
        image: (S, S, 3) uint8 RGB.
        classes: the shape class of each object, in drawing order.
        masks: (n, S, S) bool, each object's visible pixels (for evaluation only).
    """

    image: np.ndarray
    classes: tuple[str, ...]
    masks: np.ndarray

    def mask_of(self, cls: str) -> np.ndarray:
        """(S, S) bool: the visible pixels of every object of class ``cls``."""
        hit = [m for c, m in zip(self.classes, self.masks, strict=True) if c == cls]
        return np.any(hit, axis=0) if hit else np.zeros(self.image.shape[:2], dtype=bool)


def make_photo(
    rng: np.random.Generator,
    classes: Sequence[str],
    size: int = 64,
    *,
    scale: tuple[float, float] = (0.22, 0.4),
    texture: float = 1.0,
    rotation: float = np.pi,
    materials: bool = False,
) -> SyntheticPhoto:
    """A photo with one object of each of ``classes`` (drawn in that order); ``texture``
    scales how strongly background and objects are textured.

    With ``materials``, each object's surface is its class's pattern (:data:`SURFACES`) over
    its random colour, as real things have their own look (a cow's hide, a zebra's stripes)
    besides their outline; the background is then smooth colour noise without a grating.
    Without, objects are filled with the same kind of random texture as the background, so
    only the outline tells the class."""
    background = rng.uniform(0.15, 0.85, 3).astype(np.float32)
    if materials:
        img = background + 0.55 * texture * 0.6 * (_smooth_noise(rng, size, 5) - 0.5)
    else:
        img = _texture(rng, size, background, 0.55 * texture)
    masks: list[np.ndarray] = []
    for cls in classes:
        pts = _pose(rng, SHAPES[cls], rotation)
        radius = rng.uniform(*scale) * size
        centre = rng.uniform(radius * 0.8, size - radius * 0.8, 2)
        poly = np.round((pts * radius + centre) * 16).astype(np.int32)
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [poly], 1, lineType=cv2.LINE_8, shift=4)
        m = mask.astype(bool)
        colour = rng.uniform(0.05, 0.95, 3).astype(np.float32)
        if materials:
            amount = rng.uniform(0.15, 0.3)
            fill = colour + amount * _surface(rng, cls, size, centre)[..., None]
        else:
            fill = _texture(rng, size, colour, rng.uniform(0.1, 0.4) * texture)
        img[m] = fill[m]
        for earlier in masks:
            earlier &= ~m
        masks.append(m)
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return SyntheticPhoto(image, tuple(classes), np.array(masks, dtype=bool))


def make_sketch(
    rng: np.random.Generator,
    cls: str,
    *,
    partial_rate: float = 0.25,
    jitter: float = 0.035,
    rotation: float = np.pi,
) -> Sketch:
    """A hand-like outline sketch of class ``cls`` at a random pose: 1–3 strokes, wobbly
    lines, and with probability ``partial_rate`` a piece (10–30 %) of the outline left out."""
    pts = _densify(_pose(rng, SHAPES[cls], rotation), 0.06)
    n = len(pts)
    # A slow wobble (the hand) plus a little tremor, along the outline.
    wobble = np.cumsum(rng.normal(0, jitter * 0.35, (n, 2)), axis=0)
    wobble -= np.linspace(0, 1, n)[:, None] * wobble[-1]  # closes up again
    pts = pts + wobble + rng.normal(0, jitter * 0.25, (n, 2))
    start = int(rng.integers(n))
    pts = np.roll(pts, -start, axis=0)
    pts = np.concatenate([pts, pts[:2]])  # a small overshoot where the pen meets the start
    if rng.random() < partial_rate:
        keep = int(round(len(pts) * (1 - rng.uniform(0.1, 0.3))))
        pts = pts[:keep]
    cuts = sorted(rng.choice(np.arange(4, len(pts) - 4), int(rng.integers(0, 3)), replace=False))
    strokes = [s for s in np.split(pts, cuts) if len(s) >= 2]
    return sketch_from_polylines([(s + 1.5) * 100.0 for s in strokes], width=300, height=300)


@dataclass(frozen=True)
class SyntheticSet:
    """Photos with their objects, and sketches per class."""

    photos: tuple[SyntheticPhoto, ...]
    sketches: dict[str, tuple[Sketch, ...]]


def make_set(
    seed: int,
    classes: Sequence[str],
    n_photos: int,
    sketches_per_class: int,
    *,
    size: int = 64,
    max_objects: int = 3,
    single: bool = False,
    texture: float = 1.0,
    rotation: float = np.pi,
    scale: tuple[float, float] = (0.22, 0.4),
    materials: bool = False,
) -> SyntheticSet:
    """``n_photos`` photos of 1–``max_objects`` objects (distinct classes from ``classes``; one
    each when ``single``), and ``sketches_per_class`` sketches of each class."""
    rng = np.random.default_rng(seed)
    photos = []
    for _ in range(n_photos):
        k = 1 if single else int(rng.integers(1, max_objects + 1))
        chosen = rng.choice(len(classes), size=min(k, len(classes)), replace=False)
        objects = [classes[i] for i in chosen]
        photos.append(
            make_photo(
                rng,
                objects,
                size,
                texture=texture,
                rotation=rotation,
                scale=scale,
                materials=materials,
            )  # fmt: skip
        )
    sketches = {
        c: tuple(make_sketch(rng, c, rotation=rotation) for _ in range(sketches_per_class))
        for c in classes
    }
    return SyntheticSet(tuple(photos), sketches)


def render_sketch(sketch: Sketch, size: int) -> np.ndarray:
    """(size, size, 3) uint8: the model's view of a whole sketch (the app's renderer)."""
    from sketchpad.vision.features import sketch_input

    return sketch_input(sketch, None, size)


class SyntheticWorld:
    """Training batches from a generated pool of photos and sketches, drawn with the step's
    generator (so every batch is a function of the seed and the step).

    The pool is made once, like a dataset on disk: ``photos_per_class`` single-object photos
    and as many multi-object photos per class, and ``sketches_per_class`` sketches (with their
    renders). It serves both trainers: SBIR triplets (``triplets``: single-object photos,
    category-level) and segmenter pairs (``pairs``: a photo of 1–3 objects, one of the
    sketch's class; the unpaired photo has none of it).
    """

    def __init__(
        self,
        classes: Sequence[str] = SEEN,
        size: int = 32,
        *,
        seed: int = 0,
        photos_per_class: int = 200,
        sketches_per_class: int = 200,
        texture: float = 1.0,
        rotation: float = np.pi,
        scale: tuple[float, float] = (0.22, 0.4),
        materials: bool = False,
    ) -> None:
        if len(classes) < 2:
            raise ValueError("the synthetic world needs at least two classes")
        self.classes = tuple(classes)
        self.size = size
        rng = np.random.default_rng([seed, 7919])
        n = len(self.classes)
        self.single = [
            np.stack(
                [
                    make_photo(
                        rng,
                        [c],
                        size,
                        texture=texture,
                        rotation=rotation,
                        scale=scale,
                        materials=materials,
                    ).image
                    for _ in range(photos_per_class)
                ]
            )  # fmt: skip
            for c in self.classes
        ]
        multi = make_set(int(rng.integers(2**31)), self.classes, photos_per_class * n, 0,
                         size=size, texture=texture, rotation=rotation,
                         scale=scale, materials=materials).photos  # fmt: skip
        self.multi = np.stack([p.image for p in multi])
        has = np.array([[c in p.classes for c in self.classes] for p in multi], dtype=bool)
        self.with_class = [np.flatnonzero(has[:, j]) for j in range(n)]
        self.without_class = [np.flatnonzero(~has[:, j]) for j in range(n)]
        self.drawings = [
            [make_sketch(rng, c, rotation=rotation) for _ in range(sketches_per_class)]
            for c in classes
        ]
        self.renders = [np.stack([render_sketch(d, size) for d in ds]) for ds in self.drawings]

    def _sketch(self, rng: np.random.Generator, y: int) -> tuple[Sketch, np.ndarray]:
        j = int(rng.integers(len(self.drawings[y])))
        return self.drawings[y][j], self.renders[y][j]

    def triplets(self, rng: np.random.Generator, k: int, level: str) -> TripletBatch:
        from sketchpad.train.sbir_train import TripletBatch

        if level != "category":
            raise ValueError("the synthetic world pairs sketches by class only (category-level)")
        n = len(self.classes)
        labels = rng.integers(0, n, k)
        others = (labels + rng.integers(1, n, k)) % n
        sketches = np.stack([self._sketch(rng, int(y))[1] for y in labels])
        pos = np.stack([self.single[y][rng.integers(len(self.single[y]))] for y in labels])
        neg = np.stack([self.single[y][rng.integers(len(self.single[y]))] for y in others])
        return TripletBatch(sketches, pos, neg, labels)

    def pairs(self, rng: np.random.Generator, k: int, partition_fraction: float) -> PairBatch:
        from sketchpad.train.segmenter_train import PairBatch, choose_partitions

        # Distinct classes while the batch allows: InfoNCE takes every other pair of the batch
        # as a negative, and a second sketch of the same class would be a false one.
        n = len(self.classes)
        labels = rng.choice(n, size=k, replace=k > n)
        drawings, sketches, photos, unpaired = [], [], [], []
        for y in labels:
            drawing, render = self._sketch(rng, int(y))
            drawings.append(drawing)
            sketches.append(render)
            photos.append(self.multi[rng.choice(self.with_class[y])])
            unpaired.append(self.multi[rng.choice(self.without_class[y])])
        parts, rows = choose_partitions(drawings, rng, self.size, partition_fraction)
        return PairBatch(np.stack(sketches), np.stack(photos), np.stack(unpaired), parts, rows,
                         labels)  # fmt: skip
