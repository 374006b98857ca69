"""Sketch–photo correspondence from dense features (seed 003 §6.3): a point on one image →
its match on the other, with a confidence and a heat map.

Works with any backbone's patch map (the fused map is the one trained for it). Both images are
letterboxed into the model input as photos are (:func:`~sketchpad.vision.features.embed_photos`);
a query point's feature is sampled bilinearly from its cell neighbourhood, compared by cosine
with every target cell that covers the target image, and ``softmax(cos / T)`` is the heat map.
The match is the probability-weighted centre of the 3×3 cells around the best one (sub-cell
precision); its confidence is the probability mass there. Points come and go in each image's
own pixels (x, y).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from sketchpad.sketch.model import Sketch
from sketchpad.vision.backbone import Backbone
from sketchpad.vision.features import PhotoFeatures, embed_photos, sketch_input
from sketchpad.vision.letterbox import Letterbox


@dataclass(frozen=True)
class Match:
    """One query point, its match and how sure the model is (0–1)."""

    source: tuple[float, float]
    target: tuple[float, float]
    confidence: float


@dataclass(frozen=True)
class Correspondence:
    """Matches of a list of points, with each point's heat map over the target's cells.

    Attributes:
        matches: one per query point, in order.
        heat: (N, gh, gw) float32 softmax probabilities over the target's grid (padding 0).
        target_box: where the target sat in the model input (maps heat back to its pixels).
        patch_size: the grid's stride in input pixels.
    """

    matches: tuple[Match, ...]
    heat: np.ndarray
    target_box: Letterbox
    patch_size: int

    def heatmap(self, i: int, out_hw: tuple[int, int] | None = None) -> np.ndarray:
        """Point ``i``'s heat map over the target, (H, W) float32, max 1: at the target's own
        size, or at ``out_hw`` (a smaller map for display)."""
        import cv2

        x0, y0, x1, y1 = self.target_box.content_xyxy
        s = self.target_box.input_size
        full = cv2.resize(self.heat[i], (s, s), interpolation=cv2.INTER_LINEAR)
        h, w = self.target_box.photo_hw if out_hw is None else out_hw
        crop = cv2.resize(full[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_LINEAR)
        peak = float(crop.max())
        return (crop / peak if peak > 0 else crop).astype(np.float32)


def to_input(box: Letterbox, xy: np.ndarray) -> np.ndarray:
    """(N, 2) image pixels → model-input pixels."""
    x0, y0, x1, y1 = box.content_xyxy
    h, w = box.photo_hw
    return np.stack([x0 + xy[:, 0] * (x1 - x0) / w, y0 + xy[:, 1] * (y1 - y0) / h], axis=1)


def from_input(box: Letterbox, xy: np.ndarray) -> np.ndarray:
    """(N, 2) model-input pixels → image pixels."""
    x0, y0, x1, y1 = box.content_xyxy
    h, w = box.photo_hw
    return np.stack([(xy[:, 0] - x0) * w / (x1 - x0), (xy[:, 1] - y0) * h / (y1 - y0)], axis=1)


def _sample(grid: np.ndarray, gxy: np.ndarray) -> np.ndarray:
    """Bilinear sample (gh, gw, d) at (N, 2) fractional cell coordinates (centres at i)."""
    gh, gw, _ = grid.shape
    x = np.clip(gxy[:, 0], 0, gw - 1)
    y = np.clip(gxy[:, 1], 0, gh - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, gw - 1), np.minimum(y0 + 1, gh - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = grid[y0, x0] * (1 - fx) + grid[y0, x1] * fx
    bottom = grid[y1, x0] * (1 - fx) + grid[y1, x1] * fx
    return np.asarray(top * (1 - fy) + bottom * fy)


def match_features(
    source: PhotoFeatures,
    target: PhotoFeatures,
    points: np.ndarray,
    *,
    temperature: float = 0.05,
) -> Correspondence:
    """Match (N, 2) x, y points of ``source``'s image on ``target``'s (module docstring)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(pts).all():
        raise ValueError("points must be finite numbers")
    h, w = source.photo_hw
    if (pts < 0).any() or (pts[:, 0] > w).any() or (pts[:, 1] > h).any():
        raise ValueError(f"points must lie inside the source image ({w}×{h} pixels)")
    p = source.patch_size
    sh, sw = source.grid_hw
    src = source.patches.astype(np.float32).reshape(sh, sw, -1)
    q = _sample(src, to_input(source.letterbox, pts) / p - 0.5)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    th, tw = target.grid_hw
    cells = target.patches.astype(np.float32)  # (T, d), unit rows
    sim = (q @ cells.T) / temperature  # (N, T)
    valid = target.valid_patches().reshape(-1)
    sim[:, ~valid] = -np.inf
    sim -= sim.max(axis=1, keepdims=True)
    prob = np.exp(sim)
    prob /= prob.sum(axis=1, keepdims=True)
    heat = prob.reshape(-1, th, tw).astype(np.float32)
    matches = []
    tp = target.patch_size
    for i in range(len(pts)):
        r, c = np.unravel_index(int(np.argmax(heat[i])), (th, tw))
        r0, r1, c0, c1 = max(r - 1, 0), min(r + 2, th), max(c - 1, 0), min(c + 2, tw)
        win = heat[i, r0:r1, c0:c1]
        mass = float(win.sum())
        rr, cc = np.mgrid[r0:r1, c0:c1]
        gx, gy = float((win * cc).sum() / mass), float((win * rr).sum() / mass)
        xy = from_input(target.letterbox, np.array([[(gx + 0.5) * tp, (gy + 0.5) * tp]]))[0]
        xy = np.clip(xy, 0, [target.photo_hw[1], target.photo_hw[0]])
        matches.append(
            Match((float(pts[i, 0]), float(pts[i, 1])), (float(xy[0]), float(xy[1])), mass)
        )
    return Correspondence(tuple(matches), heat, target.letterbox, tp)


def sketch_image(sketch: Sketch, side: int) -> np.ndarray:
    """A drawn sketch as an image to match: (side, side, 3) uint8, its ink framed as the
    model's view of a sketch (:func:`~sketchpad.vision.features.sketch_input`). The window
    shows it and matches on it; a point on it is a fraction of ``side`` at any side."""
    return sketch_input(sketch, None, side)


def matching_features(
    backbone: Backbone, images: Sequence[np.ndarray], *, input_size: int | None = None
) -> list[PhotoFeatures]:
    """The dense features matching compares: each (H, W, 3) uint8 image letterboxed as a
    photo, the plain patch path, float32 (one forward for the batch)."""
    return embed_photos(
        backbone, list(images), input_size=input_size, path="plain", store_dtype=np.float32
    )


class FeatureCache:
    """Matching features kept by key (a photo's path and modification time, a sketch's
    :meth:`~sketchpad.search.spec.QuerySpec.key`), so that clicking again on the same pair
    runs no forward. The newest ``capacity`` images are kept; one cache per model.

    Attributes:
        forwards: backbone forwards run (each embeds the images that were missing).
    """

    def __init__(
        self, backbone: Backbone, *, input_size: int | None = None, capacity: int = 8
    ) -> None:
        self.backbone = backbone
        self.input_size = input_size
        self.capacity = max(2, int(capacity))
        self.forwards = 0
        self._items: OrderedDict[Hashable, PhotoFeatures] = OrderedDict()

    def features(
        self, wanted: Sequence[tuple[Hashable, Callable[[], np.ndarray]]]
    ) -> list[PhotoFeatures]:
        """The features of each ``(key, image maker)``: cached ones as they are, the missing
        images made and embedded together (:func:`matching_features`)."""
        missing = [(k, make) for k, make in dict(wanted).items() if k not in self._items]
        if missing:
            images = [make() for _, make in missing]
            feats = matching_features(self.backbone, images, input_size=self.input_size)
            self.forwards += 1
            for (k, _), f in zip(missing, feats, strict=True):
                self._items[k] = f
        out = []
        for k, _ in wanted:
            self._items.move_to_end(k)
            out.append(self._items[k])
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return out


def correspond(
    backbone: Backbone,
    source: np.ndarray,
    target: np.ndarray,
    points: Sequence[tuple[float, float]] | np.ndarray,
    *,
    input_size: int | None = None,
    temperature: float = 0.05,
) -> Correspondence:
    """Match ``points`` (x, y pixels of the (H, W, 3) uint8 ``source``) on ``target``: one
    forward of both images."""
    feats = matching_features(backbone, [source, target], input_size=input_size)
    return match_features(feats[0], feats[1], np.asarray(points), temperature=temperature)


def pck(pred: np.ndarray, true: np.ndarray, side: float, alpha: float) -> float:
    """The fraction of (N, 2) predicted points within ``alpha · side`` pixels of the true ones
    (PCK@α, seed 003 §6.3 after PSC6K: α of the image size)."""
    pred, true = np.asarray(pred, float).reshape(-1, 2), np.asarray(true, float).reshape(-1, 2)
    if pred.shape != true.shape or not len(pred):
        raise ValueError(
            f"pck needs two equal non-empty point lists, got {pred.shape}, {true.shape}"
        )
    return float((np.linalg.norm(pred - true, axis=1) <= alpha * side).mean())
