"""Correlation maps → calibrated probabilities → masks → instances (sketchpad.vision.maps)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sketchpad.vision.maps import (
    MIN_GALLERY_SCALE,
    GalleryStats,
    Instance,
    calibrate,
    find_instances,
    gallery_stats,
    mask_from_logits,
    photo_score,
    sigmoid,
    upsample_to_photo,
)

# -- gallery statistics ----------------------------------------------------------------------


def test_gallery_stats_median_and_mad() -> None:
    s = gallery_stats(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert s.center == 3.0
    assert s.scale == pytest.approx(1.4826 * 1.0)  # |x − 3| = 2, 1, 0, 1, 97 → median 1


def test_gallery_stats_is_robust_to_the_concepts_own_patches() -> None:
    rng = np.random.default_rng(0)
    background = rng.normal(0.20, 0.02, 10_000)
    concept = np.full(800, 0.35)  # 7 % of the patches, far above
    s = gallery_stats(np.concatenate([background, concept]))
    assert s.center == pytest.approx(0.20, abs=0.004)
    assert s.scale == pytest.approx(0.02, rel=0.12)


def test_gallery_stats_floors_the_scale_of_a_constant_distribution() -> None:
    s = gallery_stats(np.full(50, 0.3, dtype=np.float32))
    assert s.center == pytest.approx(0.3)
    assert s.scale == MIN_GALLERY_SCALE > 0


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 3)), np.zeros(0), np.array([0.1, np.nan]), np.array(["a"])]
)
def test_gallery_stats_rejects_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="scores"):
        gallery_stats(bad)


# -- calibration -----------------------------------------------------------------------------


def test_fixed_calibration_crosses_one_half_at_cosine_one_half() -> None:
    c = np.array([[0.3, 0.49, 0.5], [0.51, 0.7, 0.9]], dtype=np.float32)
    logits = calibrate(c, "fixed", tau=0.05)
    assert logits.dtype == np.float32 and logits.shape == c.shape
    np.testing.assert_allclose(logits, (c - 0.5) / 0.05, rtol=1e-6, atol=1e-5)
    p = sigmoid(logits)
    assert p[0, 2] == pytest.approx(0.5)
    assert mask_from_logits(logits).tolist() == [[False, False, False], [True, True, True]]


def test_fixed_calibration_ignores_stats_and_checks_tau() -> None:
    c = np.array([0.2, 0.8])
    a = calibrate(c, "fixed")
    b = calibrate(c, "fixed", stats=GalleryStats(10.0, 5.0))
    np.testing.assert_array_equal(a, b)
    for tau in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="tau"):
            calibrate(c, "fixed", tau=tau)


def test_gallery_relative_needs_stats() -> None:
    with pytest.raises(ValueError, match="stats"):
        calibrate(np.zeros((2, 2)), "gallery-relative")
    with pytest.raises(ValueError, match="calibration"):
        calibrate(np.zeros((2, 2)), "minmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="z_temperature"):
        calibrate(np.zeros(2), "gallery-relative", stats=GalleryStats(0, 1), z_temperature=0)


def test_gallery_relative_formula() -> None:
    stats = GalleryStats(center=0.2, scale=0.01)
    c = np.array([0.2, 0.23, 0.25], dtype=np.float32)
    logits = calibrate(c, "gallery-relative", stats=stats, z_offset=3.0, z_temperature=0.5)
    np.testing.assert_allclose(logits, [(0 - 3) / 0.5, (3 - 3) / 0.5, (5 - 3) / 0.5], atol=1e-4)


def test_gallery_relative_photo_without_the_concept_comes_out_empty() -> None:
    """Gallery: 20 photos of 7×7 patches around 0.20; one photo has the concept at 0.30 in a
    3×3 block. A per-photo min-max would light up every photo; gallery-relative must not."""
    rng = np.random.default_rng(1)
    gallery = rng.normal(0.20, 0.01, (20, 7, 7)).astype(np.float32)
    gallery[3, 2:5, 2:5] = 0.30
    stats = gallery_stats(gallery.ravel())
    logits = calibrate(gallery, "gallery-relative", stats=stats)
    masks = logits > 0
    assert masks[3, 2:5, 2:5].all()
    assert masks[3].sum() == 9
    others = np.delete(masks, 3, axis=0)
    assert others.sum() <= 2  # at most a stray > 3-sigma patch among 19 × 49 normal samples
    assert (~others.reshape(19, -1).any(axis=1)).sum() >= 17  # nearly every other photo empty
    # What a per-photo min-max would have done instead: light up every photo.
    lo = gallery.min(axis=(1, 2), keepdims=True)
    hi = gallery.max(axis=(1, 2), keepdims=True)
    assert (((gallery - lo) / (hi - lo)) > 0.5).any(axis=(1, 2)).all()


def test_sigmoid_is_stable_and_float32() -> None:
    x = np.array([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4])
    with np.errstate(all="raise"):
        p = sigmoid(x)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p[1:-1], 1 / (1 + np.exp(-x[1:-1])), rtol=1e-6, atol=1e-30)
    assert p[0] == 0.0 and p[-1] == 1.0 and p[3] == 0.5


# -- upsampling ------------------------------------------------------------------------------


def _brute_upsample(grid: np.ndarray, box: tuple[float, ...], hw: tuple[int, int]) -> np.ndarray:
    gh, gw = grid.shape
    x0, y0, x1, y1 = box
    h, w = hw
    out = np.zeros(hw)
    for y in range(h):
        sy = min(max(y0 + (y + 0.5) * (y1 - y0) / h - 0.5, 0.0), gh - 1.0)
        for x in range(w):
            sx = min(max(x0 + (x + 0.5) * (x1 - x0) / w - 0.5, 0.0), gw - 1.0)
            i, j = int(math.floor(sy)), int(math.floor(sx))
            i1, j1 = min(i + 1, gh - 1), min(j + 1, gw - 1)
            fy, fx = sy - i, sx - j
            out[y, x] = (
                (1 - fy) * (1 - fx) * grid[i, j]
                + (1 - fy) * fx * grid[i, j1]
                + fy * (1 - fx) * grid[i1, j]
                + fy * fx * grid[i1, j1]
            )
    return out


def test_upsample_matches_brute_force_bilinear() -> None:
    rng = np.random.default_rng(2)
    for gh, gw, box, hw in [
        (14, 14, (0.0, 0.0, 14.0, 14.0), (37, 53)),
        (7, 5, (0.3, 1.25, 4.9, 6.0), (23, 31)),
        (4, 4, (0.0, 1.0, 4.0, 3.0), (10, 20)),
        (1, 3, (0.0, 0.0, 3.0, 1.0), (4, 9)),
    ]:
        grid = rng.normal(size=(gh, gw))
        got = upsample_to_photo(grid, box, hw)
        assert got.dtype == np.float32 and got.shape == hw
        np.testing.assert_allclose(got, _brute_upsample(grid, box, hw), atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 8, 40])
def test_upsampled_bands_threshold_to_exact_patch_rectangles(k: int) -> None:
    """A band of whole patch rows (or columns) set to 1 thresholds at 0.5 to exactly its pixel
    rectangle when each patch is k × k pixels (bilinear in one axis = exact mid-point cut)."""
    g = 6
    hw = (g * k, g * k)
    rows = np.zeros((g, g))
    rows[2:4] = 1.0
    cols = np.zeros((g, g))
    cols[:, 1] = 1.0
    cols[:, 4] = 1.0
    want_rows = np.zeros(hw, bool)
    want_rows[2 * k : 4 * k] = True
    want_cols = np.zeros(hw, bool)
    want_cols[:, k : 2 * k] = True
    want_cols[:, 4 * k : 5 * k] = True
    box = (0.0, 0.0, float(g), float(g))
    np.testing.assert_array_equal(upsample_to_photo(rows, box, hw) > 0.5, want_rows)
    np.testing.assert_array_equal(upsample_to_photo(cols, box, hw) > 0.5, want_cols)


def test_upsampled_block_stays_inside_its_rectangle_and_keeps_its_centre_lines() -> None:
    """A 2-D block of ones: bilinear rounds the corners (product of two fractions < 0.5), but
    nothing outside the block's rectangle is set and its mid-row / mid-column extents are
    exact."""
    k, g = 8, 6
    grid = np.zeros((g, g))
    grid[1:4, 2:5] = 1.0  # rows 1..3, cols 2..4
    m = upsample_to_photo(grid, (0.0, 0.0, g, g), (g * k, g * k)) > 0.5
    rect = np.zeros_like(m)
    rect[1 * k : 4 * k, 2 * k : 5 * k] = True
    assert not (m & ~rect).any()
    assert np.flatnonzero(m[int(2.5 * k)]).tolist() == list(range(2 * k, 5 * k))
    assert np.flatnonzero(m[:, int(3.5 * k)]).tolist() == list(range(1 * k, 4 * k))


def test_upsample_undoes_a_letterbox() -> None:
    """A 200×100 (W×H) photo letterboxed into a 4×4 grid occupies rows y ∈ [1, 3): grid row 1
    is the photo's top half, grid column 2 its third quarter."""
    box = (0.0, 1.0, 4.0, 3.0)
    row = np.zeros((4, 4))
    row[1] = 1.0
    m = upsample_to_photo(row, box, (100, 200)) > 0.5
    want = np.zeros((100, 200), bool)
    want[:50] = True
    np.testing.assert_array_equal(m, want)
    col = np.zeros((4, 4))
    col[:, 2] = 1.0
    m = upsample_to_photo(col, box, (100, 200)) > 0.5
    want = np.zeros((100, 200), bool)
    want[:, 100:150] = True
    np.testing.assert_array_equal(m, want)
    # The padding rows 0 and 3 only enter by replication at the photo's edges: a value there
    # shifts nothing when it equals the adjacent photo row.
    pad = np.tile(np.array([[7.0], [7.0], [3.0], [3.0]]), (1, 4))
    u = upsample_to_photo(pad, box, (100, 200))
    assert u[0, 0] == pytest.approx(7.0) and u[-1, 0] == pytest.approx(3.0)


def test_upsample_constant_and_validation() -> None:
    u = upsample_to_photo(np.full((3, 5), 0.25), (0, 0, 5, 3), (7, 11))
    np.testing.assert_allclose(u, 0.25)
    with pytest.raises(ValueError, match="grid"):
        upsample_to_photo(np.zeros((2, 2, 2)), (0, 0, 2, 2), (4, 4))
    with pytest.raises(ValueError, match="content_grid_xyxy"):
        upsample_to_photo(np.zeros((2, 2)), (1, 0, 1, 2), (4, 4))
    with pytest.raises(ValueError, match="content_grid_xyxy"):
        upsample_to_photo(np.zeros((2, 2)), (0, 0, 3, 2), (4, 4))
    with pytest.raises(ValueError, match="photo_hw"):
        upsample_to_photo(np.zeros((2, 2)), (0, 0, 2, 2), (0, 4))


# -- masks -----------------------------------------------------------------------------------


def test_mask_from_logits_equals_thresholded_sigmoid() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 4, (40, 50)).astype(np.float32)
    for t in (0.1, 0.5, 0.77):
        m = mask_from_logits(logits, t)
        assert m.dtype == np.bool_ and m.shape == logits.shape
        np.testing.assert_array_equal(m, sigmoid(logits) > t)
    for t in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            mask_from_logits(logits, t)
    with pytest.raises(ValueError, match="logits_hw"):
        mask_from_logits(logits[None])


# -- instances -------------------------------------------------------------------------------


def test_find_instances_boxes_scores_order_and_labels() -> None:
    prob = np.zeros((20, 30), dtype=np.float32)
    prob[2:6, 3:9] = 0.6  # instance A: 4×6, score 0.6
    prob[10:18, 20:25] = 0.9  # instance B: 8×5, score 0.9
    prob[0, 29] = 0.99  # a single pixel: dropped by min_area
    mask = prob > 0.5
    inst, labels = find_instances(prob, mask, min_area=2)
    assert [i.box_xyxy for i in inst] == [(20, 10, 25, 18), (3, 2, 9, 6)]
    assert [i.area for i in inst] == [40, 24]
    assert [round(i.score, 6) for i in inst] == [0.9, 0.6]
    assert [i.label for i in inst] == [1, 2]
    assert labels.dtype == np.int32 and labels.shape == prob.shape
    assert set(np.unique(labels).tolist()) == {0, 1, 2}
    for i in inst:
        x0, y0, x1, y1 = i.box_xyxy
        assert (labels[y0:y1, x0:x1] == i.label).sum() == i.area == (labels == i.label).sum()
    assert labels[0, 29] == 0


def test_find_instances_uses_8_connectivity_and_default_min_area() -> None:
    mask = np.zeros((100, 100), bool)
    mask[10, 10] = mask[11, 11] = mask[12, 12] = True  # a diagonal: one component of 3
    mask[50:60, 50:60] = True
    prob = mask.astype(np.float64) * 0.8
    inst, _ = find_instances(prob, mask)  # default: 0.1 % of 10,000 = 10 pixels
    assert [i.area for i in inst] == [100]
    inst, labels = find_instances(prob, mask, min_area_frac=0.0)
    assert sorted(i.area for i in inst) == [3, 100]
    assert labels[10, 10] == labels[12, 12] != 0


def test_find_instances_empty_and_validation() -> None:
    prob = np.zeros((5, 5))
    inst, labels = find_instances(prob, prob > 0.5)
    assert inst == () and not labels.any()
    with pytest.raises(ValueError, match="mask_hw"):
        find_instances(prob, np.zeros((5, 4), bool))
    with pytest.raises(ValueError, match="mask_hw"):
        find_instances(prob, np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="min_area"):
        find_instances(prob, prob > 0.5, min_area=-1)
    with pytest.raises(ValueError, match="min_area_frac"):
        find_instances(prob, prob > 0.5, min_area_frac=1.0)


def test_photo_score() -> None:
    a = Instance((0, 0, 1, 1), 0.7, 1, 1)
    b = Instance((0, 0, 1, 1), 0.9, 1, 2)
    assert photo_score([]) == 0.0
    assert photo_score([a, b]) == 0.9
    assert photo_score([a, b], global_score=0.5, global_weight=0.25) == pytest.approx(0.8)
    assert photo_score([], global_score=0.4, global_weight=0.5) == pytest.approx(0.2)
    assert photo_score([a], global_weight=0.5) == 0.7  # no global score: weight unused
    with pytest.raises(ValueError, match="global_weight"):
        photo_score([a], global_score=0.5, global_weight=1.5)
    with pytest.raises(ValueError, match="global_score"):
        photo_score([a], global_score=2.0, global_weight=0.5)
