"""Mask correction: brush, eraser, and GrabCut scribble refinement on generated photos."""

from __future__ import annotations

import numpy as np
import pytest

from sketchpad.search.correct import paint, refine_with_scribbles
from sketchpad.search.masks import corrected_mask, rethreshold


def test_brush_and_eraser_paint_round_strokes() -> None:
    m = np.zeros((40, 60), bool)
    brushed = paint(m, np.array([[10.0, 20.0], [50.0, 20.0]]), radius=3, value=True)
    assert brushed[20, 10:50].all() and brushed[17:24, 30].all()
    assert not brushed[12, 30] and not brushed[20, 2]  # outside the radius, before the start
    assert not m.any()  # a copy
    erased = paint(brushed, np.array([[30.0, 20.0]]), radius=4, value=False)
    assert not erased[20, 27:34].any() and erased[20, 12] and erased[20, 48]
    with pytest.raises(ValueError, match="radius"):
        paint(m, np.array([[1.0, 1.0]]), radius=0, value=True)


def photo_with_disc() -> tuple[np.ndarray, np.ndarray]:
    """A 300 × 400 noisy photo: a red disc (r = 60 at (200, 150)) on a blue-grey background."""
    rng = np.random.default_rng(0)
    im = np.empty((300, 400, 3), np.float64)
    im[:] = (70, 90, 140)
    yy, xx = np.mgrid[:300, :400]
    disc = (xx - 200) ** 2 + (yy - 150) ** 2 < 60**2
    im[disc] = (200, 40, 30)
    im += rng.normal(0, 8, im.shape)
    return np.clip(im, 0, 255).astype(np.uint8), disc


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_scribbles_pull_a_coarse_map_onto_the_object() -> None:
    photo, disc = photo_with_disc()
    yy, xx = np.mgrid[:300, :400]
    # A coarse map: a box too large on the left, cutting the disc on the right.
    prob = ((xx > 110) & (xx < 230) & (yy > 80) & (yy < 220)).astype(np.float32)
    assert iou(prob > 0.5, disc) < 0.75
    refined = refine_with_scribbles(
        photo,
        prob,
        0.5,
        positive=[np.array([[200.0, 150.0], [240.0, 150.0]])],
        negative=[np.array([[115.0, 90.0], [115.0, 210.0]])],
    )
    assert iou(refined, disc) > 0.9
    assert refined[150, 240] and not refined[150, 115]  # the scribbles hold


def test_refinement_needs_something_to_start_from() -> None:
    photo, _ = photo_with_disc()
    with pytest.raises(ValueError, match="scribble over the object"):
        refine_with_scribbles(photo, np.zeros((300, 400), np.float32), 0.5)
    with pytest.raises(ValueError, match="the map is"):
        refine_with_scribbles(photo, np.zeros((30, 40), np.float32), 0.5)


def test_a_corrected_mask_ignores_the_threshold_and_keeps_the_score() -> None:
    px = np.zeros((20, 20), bool)
    px[3:9, 4:12] = True
    m = corrected_mask(px, score=0.42, threshold=0.5)
    assert m.score == 0.42 and len(m.instances) == 1
    for t in (0.05, 0.95):
        np.testing.assert_array_equal(rethreshold(m, t).mask, px)


def test_the_query_map_alone_starts_the_cut_and_thin_scribbles_hold_at_full_size() -> None:
    photo, disc = photo_with_disc()
    big = np.kron(photo, np.ones((2, 2, 1), np.uint8))  # 600 × 800: GrabCut works scaled down
    big_disc = np.kron(disc, np.ones((2, 2), bool))
    yy, xx = np.mgrid[:600, :800]
    prob = ((xx > 260) & (xx < 540) & (yy > 160) & (yy < 440)).astype(np.float32)
    refined = refine_with_scribbles(big, prob, 0.5, negative=[np.array([[270.0, 170.0]])])
    assert iou(refined, big_disc) > 0.85  # no positive scribble: the map said where
    stroke = np.array([[20.0, 20.0], [60.0, 25.0]])  # on the background, 1 px thin
    kept = refine_with_scribbles(big, prob, 0.5, positive=[stroke], radius=1)
    assert paint(np.zeros((600, 800), bool), stroke, 1, True)[kept == 0].sum() == 0
