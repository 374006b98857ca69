"""Correlation maps → calibrated probabilities → masks → instances (DESIGN §4.3).

A query embedding ``s`` (d,) and a photo's patch features ``p`` (gh, gw, d) give the
correlation map ``C(u, v) = cos(s, p(u, v))`` on the patch grid (seed 000 Eq. 2). This module
turns such maps into per-pixel probabilities, binary masks, instances and a photo score:

1. :func:`calibrate` maps cosines to logits (``probability = sigmoid(logit)``), either with the
   fixed threshold of a fine-tuned segmenter or relative to the query's own score distribution
   over the whole gallery (:func:`gallery_stats`), never per photo, so that a photo without the
   concept comes out empty.
2. :func:`upsample_to_photo` resamples a grid bilinearly to photo pixels, undoing the letterbox.
3. :func:`mask_from_logits` thresholds, :func:`find_instances` splits a mask into connected
   components with a score each, :func:`photo_score` ranks photos.

Coordinate frames: grids are indexed ``[row, column]`` = ``[y, x]``; patch column ``i`` covers
``[i, i + 1)`` in grid units and its centre is at ``i + 0.5``. Photo pixel ``(x, y)`` covers
``[x, x + 1) × [y, y + 1)`` and its centre is at ``(x + 0.5, y + 0.5)``.

Headless: numpy and OpenCV only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Calibration = Literal["fixed", "gallery-relative"]

#: 1.4826 · MAD estimates the standard deviation of a normal distribution.
MAD_TO_SIGMA = 1.4826
#: Floor of :attr:`GalleryStats.scale`. Cosines lie in [−1, 1] and a query's spread over a real
#: gallery is of the order of 0.01–0.1, far above this; the floor only stops a (degenerate)
#: constant distribution from dividing by zero. With it, a patch 3 · 1e-3 above such a constant
#: counts as 3 robust sigmas.
MIN_GALLERY_SCALE = 1e-3


@dataclass(frozen=True)
class GalleryStats:
    """Robust statistics of one query's patch cosines over the whole gallery.

    Attributes:
        center: median of the cosines.
        scale: 1.4826 · median absolute deviation (a robust standard deviation), floored at
            :data:`MIN_GALLERY_SCALE`, so always > 0.
    """

    center: float
    scale: float


def gallery_stats(scores: np.ndarray) -> GalleryStats:
    """Median and robust spread of one query's patch cosines over the whole gallery.

    Median and MAD rather than mean and standard deviation: the patches that show the concept
    are a minority of the gallery and must not drag the reference the others are measured by.

    Args:
        scores: 1-D array (any float dtype) of the cosines of ONE query with every valid patch
            of every photo of the gallery (or of a reference set). Non-empty, all finite.

    Returns:
        The statistics; ``scale`` is floored at :data:`MIN_GALLERY_SCALE`.

    Raises:
        ValueError: ``scores`` is not 1-D, is empty, or holds NaN or infinite values.
    """
    a = np.asarray(scores)
    if a.ndim != 1:
        raise ValueError(f"scores must be a 1-D array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError("scores is empty: gallery statistics need at least one patch score")
    if a.dtype.kind not in "fiu":
        raise ValueError(f"scores must be numeric, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError("scores contains NaN or infinite values")
    center = _median(a)
    mad = _median(np.abs(a.astype(np.float64, copy=False) - center))
    return GalleryStats(center=center, scale=max(MAD_TO_SIGMA * mad, MIN_GALLERY_SCALE))


def _median(a: np.ndarray) -> float:
    """np.median by partial sort only (np.median is several times slower on millions)."""
    n = a.size
    k = n // 2
    if n % 2:
        return float(np.partition(a, k)[k])
    part = np.partition(a, (k - 1, k))
    return (float(part[k - 1]) + float(part[k])) / 2.0


def calibrate(
    cos_grid: np.ndarray,
    calibration: Calibration,
    *,
    stats: GalleryStats | None = None,
    tau: float = 0.05,
    z_offset: float = 3.0,
    z_temperature: float = 1.0,
) -> np.ndarray:
    """Cosine scores → logits (``probability = sigmoid(logit)``).

    * ``"fixed"`` (fine-tuned checkpoints): ``logit = (C − 0.5) / tau``; the probability crosses
      0.5 exactly where ``C`` crosses 0.5, the paper's threshold (the soft threshold of seed 000
      Eq. 3 with its sign corrected).
    * ``"gallery-relative"`` (zero-shot CLIP): ``z = (C − stats.center) / stats.scale`` and
      ``logit = (z − z_offset) / z_temperature``: the probability exceeds 0.5 where the patch
      scores more than ``z_offset`` robust sigmas above what this query scores on the gallery's
      typical patch. A photo without the concept therefore comes out empty. (Each photo is never
      min-maxed on its own.)

    Args:
        cos_grid: cosines of any shape, typically (gh, gw) or (n, gh, gw); any float dtype.
        calibration: ``"fixed"`` or ``"gallery-relative"``.
        stats: the query's :func:`gallery_stats`; required for ``"gallery-relative"``, ignored
            for ``"fixed"``.
        tau: temperature of ``"fixed"``, > 0.
        z_offset: how many robust sigmas above the gallery median p = 0.5 lies
            (``"gallery-relative"``).
        z_temperature: temperature in sigma units (``"gallery-relative"``), > 0.

    Returns:
        float32 logits, same shape as ``cos_grid``.

    Raises:
        ValueError: an unknown ``calibration``, ``stats`` missing, or a bad ``tau`` /
            ``z_offset`` / ``z_temperature`` / ``cos_grid``.
    """
    c = np.asarray(cos_grid)
    if c.dtype.kind not in "fiu":
        raise ValueError(f"cos_grid must be numeric, got dtype {c.dtype}")
    # float32 in, float32 arithmetic: a gallery has millions of patches (float64 would double
    # the memory traffic for digits the float16 features never had).
    work = np.float32 if c.dtype in (np.float16, np.float32) else np.float64
    c = c.astype(work, copy=False)
    if calibration == "fixed":
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a positive number, got {tau!r}")
        logits = (c - work(0.5)) * work(1.0 / tau)
    elif calibration == "gallery-relative":
        if stats is None:
            raise ValueError("stats is required for calibration='gallery-relative'")
        if not (math.isfinite(stats.scale) and stats.scale > 0 and math.isfinite(stats.center)):
            raise ValueError(f"stats must have a finite center and a positive scale, got {stats}")
        if not math.isfinite(z_offset):
            raise ValueError(f"z_offset must be finite, got {z_offset!r}")
        if not (math.isfinite(z_temperature) and z_temperature > 0):
            raise ValueError(f"z_temperature must be a positive number, got {z_temperature!r}")
        # (C − center)/scale − offset, over the temperature, folded into one multiply-add
        gain = work(1.0 / (stats.scale * z_temperature))
        shift = work(stats.center + z_offset * stats.scale)
        logits = (c - shift) * gain
    else:
        raise ValueError(f"calibration must be 'fixed' or 'gallery-relative', got {calibration!r}")
    return np.asarray(logits, dtype=np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (no overflow for large ``|x|``).

    Args:
        x: logits of any shape and float dtype.

    Returns:
        float32 probabilities in [0, 1], same shape.
    """
    a = np.asarray(x, dtype=np.float32)
    with np.errstate(under="ignore"):  # exp(−large) → 0 is the right answer
        e = np.exp(-np.abs(a))  # in [0, 1]: never overflows
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32, copy=False)


def _axis_weights(
    n_out: int, g0: float, g1: float, n_grid: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps along one axis: (i0, i1, w) with sample = (1 − w)·g[i0] + w·g[i1]."""
    centers = (np.arange(n_out, dtype=np.float64) + 0.5) * ((g1 - g0) / n_out) + g0
    s = np.clip(centers - 0.5, 0.0, n_grid - 1.0)  # patch-centre index, replicate border
    i0 = np.floor(s).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_grid - 1)
    return i0, i1, s - i0


def upsample_to_photo(
    grid: np.ndarray,
    content_grid_xyxy: tuple[float, float, float, float],
    photo_hw: tuple[int, int],
) -> np.ndarray:
    """Bilinear upsampling of a patch grid to photo pixels, undoing the letterbox.

    The photo was letterboxed into the model input and occupies the region
    ``content_grid_xyxy = (x0, y0, x1, y1)`` of the grid, in grid units (patch column ``i``
    covers ``[i, i + 1)``, centre ``i + 0.5``). Photo pixel ``x`` (centre ``x + 0.5``) maps to
    ``gx = x0 + (x + 0.5) · (x1 − x0) / W`` and is sampled bilinearly between patch centres,
    i.e. at index ``gx − 0.5``; beyond the outermost patch centres the border value is
    replicated. Same for ``y``. Computed exactly (float64, separable), not with the 1/32-pixel
    fixed-point interpolation of ``cv2.remap``, so thresholds fall exactly where they should.

    Args:
        grid: (gh, gw) float map, e.g. logits or probabilities.
        content_grid_xyxy: (x0, y0, x1, y1) of the photo in grid units, with
            0 ≤ x0 < x1 ≤ gw and 0 ≤ y0 < y1 ≤ gh.
        photo_hw: (H, W) of the photo in pixels, both ≥ 1.

    Returns:
        (H, W) float32 aligned to the photo's pixels.

    Raises:
        ValueError: a bad ``grid``, ``content_grid_xyxy`` or ``photo_hw``.
    """
    g = np.asarray(grid)
    if g.ndim != 2 or g.shape[0] < 1 or g.shape[1] < 1:
        raise ValueError(f"grid must have shape (gh, gw) with gh, gw ≥ 1, got {g.shape}")
    if g.dtype.kind not in "fiub":
        raise ValueError(f"grid must be numeric, got dtype {g.dtype}")
    gh, gw = g.shape
    try:
        x0, y0, x1, y1 = (float(v) for v in content_grid_xyxy)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"content_grid_xyxy must be four numbers (x0, y0, x1, y1), got {content_grid_xyxy!r}"
        ) from e
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or not (
        0 <= x0 < x1 <= gw and 0 <= y0 < y1 <= gh
    ):
        raise ValueError(
            f"content_grid_xyxy must satisfy 0 ≤ x0 < x1 ≤ {gw} and 0 ≤ y0 < y1 ≤ {gh}, "
            f"got {content_grid_xyxy!r}"
        )
    try:
        h, w = (int(v) for v in photo_hw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"photo_hw must be two integers (H, W), got {photo_hw!r}") from e
    if h < 1 or w < 1:
        raise ValueError(f"photo_hw must be positive, got {photo_hw!r}")

    g64 = g.astype(np.float64, copy=False)
    r0, r1, wy = _axis_weights(h, y0, y1, gh)
    c0, c1, wx = _axis_weights(w, x0, x1, gw)
    rows = g64[r0] * (1.0 - wy)[:, None] + g64[r1] * wy[:, None]  # (H, gw)
    out = rows[:, c0] * (1.0 - wx)[None, :] + rows[:, c1] * wx[None, :]  # (H, W)
    return out.astype(np.float32)


def mask_from_logits(logits_hw: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary mask ``sigmoid(logits) > threshold``.

    Compared in logit space (``logits > log(t / (1 − t))``), which is the same test without the
    float32 saturation of the sigmoid near 0 and 1; at the default 0.5 it is ``logits > 0``.

    Args:
        logits_hw: (H, W) float logits at photo size.
        threshold: probability threshold, 0 < threshold < 1.

    Returns:
        (H, W) bool mask.

    Raises:
        ValueError: ``logits_hw`` not 2-D, or ``threshold`` outside (0, 1).
    """
    a = np.asarray(logits_hw)
    if a.ndim != 2:
        raise ValueError(f"logits_hw must have shape (H, W), got {a.shape}")
    if a.dtype.kind not in "fiu":
        raise ValueError(f"logits_hw must be numeric, got dtype {a.dtype}")
    t = float(threshold)
    if not (0.0 < t < 1.0):
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold!r}")
    return a > math.log(t / (1.0 - t))


@dataclass(frozen=True)
class Instance:
    """One connected region of a mask.

    Attributes:
        box_xyxy: (x0, y0, x1, y1) in photo pixels; x0, y0 inclusive, x1, y1 EXCLUSIVE, so the
            region lies in ``mask[y0:y1, x0:x1]`` and the box is ``x1 − x0`` pixels wide.
        score: mean probability over the region's pixels, in [0, 1].
        area: number of pixels in the region.
        label: the region's value in the label map returned with it (1-based).
    """

    box_xyxy: tuple[int, int, int, int]
    score: float
    area: int
    label: int


def find_instances(
    prob_hw: np.ndarray,
    mask_hw: np.ndarray,
    *,
    min_area: int | None = None,
    min_area_frac: float = 0.001,
) -> tuple[tuple[Instance, ...], np.ndarray]:
    """Connected components (8-connectivity) of a mask, scored by the mean probability.

    Args:
        prob_hw: (H, W) float probabilities in [0, 1] at photo size.
        mask_hw: (H, W) bool mask (e.g. :func:`mask_from_logits`), same shape.
        min_area: components with fewer pixels are dropped; default
            ``max(1, ceil(min_area_frac · H · W))``. ≥ 0.
        min_area_frac: fraction of the photo area used when ``min_area`` is None, in [0, 1).

    Returns:
        ``(instances, labels)``: the kept instances sorted by score, descending (ties: larger
        area first, then top-left first), and the (H, W) int32 label map with 0 = none and the
        instances labelled 1..n in the returned order.

    Raises:
        ValueError: mismatched or bad shapes/dtypes, or a bad ``min_area`` / ``min_area_frac``.
    """
    prob = np.asarray(prob_hw)
    mask = np.asarray(mask_hw)
    if prob.ndim != 2 or prob.shape[0] < 1 or prob.shape[1] < 1:
        raise ValueError(f"prob_hw must have shape (H, W), got {prob.shape}")
    if prob.dtype.kind not in "fiu":
        raise ValueError(f"prob_hw must be numeric, got dtype {prob.dtype}")
    if mask.shape != prob.shape:
        raise ValueError(f"mask_hw has shape {mask.shape}, prob_hw has {prob.shape}")
    if mask.dtype != np.bool_:
        raise ValueError(f"mask_hw must be a bool array, got dtype {mask.dtype}")
    h, w = prob.shape
    if min_area is None:
        if not (0.0 <= min_area_frac < 1.0):
            raise ValueError(f"min_area_frac must lie in [0, 1), got {min_area_frac!r}")
        min_area = max(1, math.ceil(min_area_frac * h * w))
    elif int(min_area) != min_area or min_area < 0:
        raise ValueError(f"min_area must be a non-negative integer, got {min_area!r}")
    min_area = int(min_area)

    n, cc, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    sums = np.bincount(cc.ravel(), weights=prob.astype(np.float64).ravel(), minlength=n)
    keep = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= max(min_area, 1)]

    def key(k: int) -> tuple[float, int, int, int]:
        area = int(stats[k, cv2.CC_STAT_AREA])
        top, left = int(stats[k, cv2.CC_STAT_TOP]), int(stats[k, cv2.CC_STAT_LEFT])
        return (-sums[k] / area, -area, top, left)

    keep.sort(key=key)
    relabel = np.zeros(n, dtype=np.int32)
    instances: list[Instance] = []
    for new, k in enumerate(keep, start=1):
        relabel[k] = new
        x, y = int(stats[k, cv2.CC_STAT_LEFT]), int(stats[k, cv2.CC_STAT_TOP])
        bw, bh = int(stats[k, cv2.CC_STAT_WIDTH]), int(stats[k, cv2.CC_STAT_HEIGHT])
        area = int(stats[k, cv2.CC_STAT_AREA])
        instances.append(
            Instance(
                box_xyxy=(x, y, x + bw, y + bh),
                score=float(sums[k] / area),
                area=area,
                label=new,
            )
        )
    return tuple(instances), relabel[cc]


def photo_score(
    instances: Sequence[Instance],
    *,
    global_score: float | None = None,
    global_weight: float = 0.0,
) -> float:
    """Score of a photo for ranking: its best instance, optionally blended with a global score.

    Args:
        instances: the photo's instances (any order).
        global_score: e.g. the sketch–photo retrieval similarity, already mapped to [0, 1];
            None to rank by instances alone (``global_weight`` is then ignored).
        global_weight: w in [0, 1]; the result is ``(1 − w) · best + w · global_score``.

    Returns:
        The score in [0, 1]; the best instance score is 0.0 when there are no instances.

    Raises:
        ValueError: ``global_weight`` or ``global_score`` outside [0, 1].
    """
    if not (0.0 <= global_weight <= 1.0):
        raise ValueError(f"global_weight must lie in [0, 1], got {global_weight!r}")
    best = max((float(i.score) for i in instances), default=0.0)
    if global_score is None:
        return best
    if not (0.0 <= global_score <= 1.0):
        raise ValueError(f"global_score must lie in [0, 1], got {global_score!r}")
    return (1.0 - global_weight) * best + global_weight * float(global_score)
