"""A photo's mask under a scored query: upsampling, threshold, CRF, instances.

The mask of photo ``i`` is made from its slice of the calibrated logits (:mod:`.scoring`):
sigmoid on the patch grid, bilinear upsampling to the size asked for (undoing the letterbox),
optionally dense-CRF refinement against the photo's pixels, then ``probability ≥ threshold``
and connected components as instances. A composed query unites its vectors' masks and records
which vector claims each pixel.

:func:`rethreshold` re-cuts a mask at another threshold from its probabilities alone (no model,
no bank): the window's threshold slider uses it on the masks it already holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from sketchpad.search.scoring import check_threshold

if TYPE_CHECKING:
    from sketchpad.search.scoring import GalleryScores
    from sketchpad.vision.bank import FeatureBank
    from sketchpad.vision.maps import Instance

#: Smallest instance, as a fraction of the mask's area (smaller components stay in the mask
#: but are not instances: no box, no COCO annotation).
MIN_AREA_FRAC = 0.001


@dataclass(frozen=True)
class PhotoMask:
    """A photo's mask for one query (or the union of a composed query's vectors).

    Attributes:
        prob: (H, W) float32 foreground probability at the output size.
        mask: (H, W) bool, ``prob ≥ threshold``.
        instances: connected components, best first, boxes XYXY in output pixels.
        label_map: (H, W) int32, 0 = none, k = instances[k − 1].
        score: the photo's score (:mod:`sketchpad.search.scoring`), the same number at every
            size, threshold and refinement.
        refined: whether dense-CRF refinement was applied.
        threshold: the threshold ``mask`` was cut at.
        group_map: (H, W) int16 for composed queries: 0 = none, k = the query vector
            ``k − 1`` that gives the pixel its highest probability (1 = the whole sketch,
            2… = the stroke groups); None for single queries.
        corrected: the user drew or corrected it (:func:`corrected_mask`): it is what every
            view and export shows, whatever the threshold or the query's map.
    """

    prob: np.ndarray
    mask: np.ndarray
    instances: tuple[Instance, ...]
    label_map: np.ndarray
    score: float
    refined: bool
    threshold: float = 0.5
    group_map: np.ndarray | None = None
    corrected: bool = False


def mask_hw(photo_hw: tuple[int, int], side: int | None) -> tuple[int, int]:
    """The (h, w) of a photo's mask whose long side is ``side`` (None: the photo's size)."""
    h, w = photo_hw
    if side is None:
        return (int(h), int(w))
    s = side / max(h, w)
    return (max(1, round(h * s)), max(1, round(w * s)))


def prob_hw(
    scores: GalleryScores, bank: FeatureBank, i: int, out_hw: tuple[int, int]
) -> np.ndarray:
    """(H, W) float32 probabilities of photo ``i`` at ``out_hw``, aligned to its pixels.

    As the paper does: sigmoid on the patch grid, then bilinear upsampling. Letterbox padding
    takes the value of the nearest photo patch before upsampling."""
    from sketchpad.vision import maps

    f = bank.layouts[i]
    logits = scores.photo_logits(bank, i)
    if logits is None:
        raise ValueError(f"photo {i} was not scored by this query (not on its shortlist)")
    grid = maps.sigmoid(logits)
    valid = f.valid_patches()
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    r = np.clip(np.arange(grid.shape[0]), rows[0], rows[-1])
    c = np.clip(np.arange(grid.shape[1]), cols[0], cols[-1])
    grid = grid[r][:, c]
    box = f.letterbox.content_grid_xyxy(f.patch_size)
    return maps.upsample_to_photo(grid, box, out_hw)


def photo_mask(
    scores: Sequence[GalleryScores],
    bank: FeatureBank,
    i: int,
    *,
    threshold: float,
    out_hw: tuple[int, int] | None = None,
    photo: np.ndarray | None = None,
    crf: bool = False,
) -> PhotoMask:
    """Photo ``i``'s mask under a query's vectors (one, or a composed query's several).

    Args:
        scores: the query's vectors scored on ``bank`` (the whole sketch first).
        bank: the bank they were scored on.
        i: the photo's index in the bank.
        threshold: the probability threshold, in (0, 1).
        out_hw: (H, W) of the mask; default the photo's size.
        photo: (H, W, 3) uint8 RGB at the photo's own size; needed for ``crf``.
        crf: dense-CRF refinement (large view, exports).

    Raises:
        ValueError: no scores, a bad threshold, ``crf`` without the photo.
    """
    from sketchpad.search.scoring import combined_scores

    if not scores:
        raise ValueError("no scores")
    t = check_threshold(threshold)
    hw: tuple[int, int] = out_hw or bank.layouts[i].photo_hw
    probs = np.stack([prob_hw(s, bank, i, hw) for s in scores])  # (Q, H, W)
    if crf:
        if photo is None:
            raise ValueError("CRF refinement needs the photo")
        from sketchpad.vision.crf import refine_with_crf

        image = _resize_rgb(photo, hw)
        probs = np.stack([refine_with_crf(image, p) for p in probs])
    prob = probs.max(axis=0).astype(np.float32)
    group_map = np.argmax(probs, axis=0).astype(np.int16) + 1 if len(scores) > 1 else None
    score = float(combined_scores(tuple(scores))[i])
    return _cut(prob, t, score=score, refined=crf, group_map=group_map)


def corrected_mask(pixels: np.ndarray, *, score: float, threshold: float) -> PhotoMask:
    """A mask the user drew or corrected: ``pixels`` (H, W) bool as it is, whatever the
    threshold (its probability is 1 inside and 0 outside), with the photo's score."""
    px = np.asarray(pixels)
    if px.ndim != 2 or px.dtype != np.bool_:
        raise ValueError(f"a corrected mask must be (H, W) bool, got {px.shape} {px.dtype}")
    cut = _cut(
        px.astype(np.float32),
        check_threshold(threshold),
        score=score,
        refined=False,
        group_map=None,
    )
    return replace(cut, corrected=True)


def rethreshold(mask: PhotoMask, threshold: float) -> PhotoMask:
    """``mask`` cut again at ``threshold`` from its probabilities (no model, no bank).

    The photo's score is kept (it does not depend on the threshold). A composed mask keeps each
    pixel's group where it had one; pixels that join the mask take group 1 (the whole sketch,
    whose vector the union always includes)."""
    t = check_threshold(threshold)
    if mask.corrected:  # the user's pixels are not cut again
        return replace(mask, threshold=t)
    group_map = None
    if mask.group_map is not None:
        group_map = np.maximum(mask.group_map, 1).astype(np.int16)
    return _cut(mask.prob, t, score=mask.score, refined=mask.refined, group_map=group_map)


def _cut(
    prob: np.ndarray,
    threshold: float,
    *,
    score: float,
    refined: bool,
    group_map: np.ndarray | None,
) -> PhotoMask:
    from sketchpad.vision import maps

    binary = prob >= threshold
    instances, label_map = maps.find_instances(prob, binary, min_area_frac=MIN_AREA_FRAC)
    if group_map is not None:
        group_map = np.where(binary, group_map, 0).astype(np.int16)
    return PhotoMask(
        prob=prob,
        mask=binary,
        instances=instances,
        label_map=label_map,
        score=score,
        refined=refined,
        threshold=threshold,
        group_map=group_map,
    )


def _resize_rgb(photo: np.ndarray, hw: tuple[int, ...]) -> np.ndarray:
    if photo.shape[:2] == tuple(hw):
        return photo
    import cv2

    return cv2.resize(photo, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
