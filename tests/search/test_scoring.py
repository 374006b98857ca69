"""The photo score and the calibration (sketchpad.search.scoring), against hand computations."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sketchpad.search.masks import photo_mask
from sketchpad.search.scoring import (
    combined_scores,
    matches,
    peak_scores,
    ranking,
    score_query,
)
from sketchpad.vision import maps
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.features import PhotoFeatures, normalize
from sketchpad.vision.letterbox import fit_letterbox
from sketchpad.vision.segmenter import Query, Segmenter

D = 16


def random_features(
    rng: np.random.Generator, n: int, size: int = 64, patch: int = 16
) -> list[PhotoFeatures]:
    g = size // patch
    out = []
    for _ in range(n):
        hw = (int(rng.integers(8, 200)), int(rng.integers(8, 200)))  # letterboxed: padding
        patches = normalize(rng.standard_normal((g * g, D))).astype(np.float16)
        glob = normalize(rng.standard_normal(D)).astype(np.float32)
        out.append(PhotoFeatures(patches, (g, g), glob, fit_letterbox(hw, size), patch))
    return out


def segmenter(calibration: str, z_offset: float = 1.5) -> Segmenter:
    fake = SimpleNamespace(
        spec=SimpleNamespace(input_size=64), weights=SimpleNamespace(fine_tuned=False)
    )
    return Segmenter(
        fake,  # type: ignore[arg-type]  # scoring never runs the model
        calibration=calibration,  # type: ignore[arg-type]
        tau=0.1,
        z_offset=z_offset,  # random 16-d features: put many photos above the threshold
    )


def hand_logits(seg: Segmenter, bank: FeatureBank, q: np.ndarray) -> np.ndarray:
    """Seed 000 Eq. 2 and DESIGN §4.3 by hand: cosines in float64 from the float16 rows, then
    the calibration; gallery-relative statistics over every valid patch of every photo."""
    rows = []
    for i in range(len(bank)):
        rows.append(np.asarray(bank.blocks[0].tensor[bank.offsets[i] : bank.offsets[i + 1]]))
    cos = np.concatenate(rows).astype(np.float64) @ normalize(q).astype(np.float64)
    if seg.calibration == "fixed":
        return (cos - 0.5) / seg.tau
    valid = np.concatenate([lay.valid_patches().ravel() for lay in bank.layouts])
    ref = cos[valid]
    center = np.median(ref)
    scale = max(1.4826 * np.median(np.abs(ref - center)), maps.MIN_GALLERY_SCALE)
    return ((cos - center) / scale - seg.z_offset) / seg.z_temperature


@pytest.mark.parametrize("calibration", ["fixed", "gallery-relative"])
@pytest.mark.parametrize("seed", [0, 1])
def test_scores_equal_a_hand_computation(calibration: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    feats = random_features(rng, 30)
    bank = FeatureBank(feats)
    seg = segmenter(calibration)
    q = normalize(feats[3].patches[5].astype(np.float32) + 0.1)
    s = score_query(seg, Query(q, "q"), bank)
    logits = hand_logits(seg, bank, q)
    np.testing.assert_allclose(s.logits, logits, atol=2e-2, rtol=1e-3)
    # The photo score: the peak probability over the photo's valid patches, on the grid.
    for i, lay in enumerate(bank.layouts):
        valid = lay.valid_patches().ravel()
        p = 1.0 / (1.0 + np.exp(-logits[bank.offsets[i] : bank.offsets[i + 1]][valid]))
        assert s.photo_scores[i] == pytest.approx(p.max(), abs=2e-3)


def test_the_peak_ignores_letterbox_padding() -> None:
    """A padding patch that scores high must not make a photo match."""
    lb = fit_letterbox((16, 64), 64)  # a wide photo: the bottom rows of the grid are padding
    patches = np.tile(np.eye(D, dtype=np.float16)[1], (16, 1))
    valid = lb.valid_patches(16).ravel()
    pad = int(np.flatnonzero(~valid)[0])
    patches[pad] = np.eye(D, dtype=np.float16)[0]  # the query's direction, in the padding
    bank = FeatureBank([PhotoFeatures(patches, (4, 4), np.eye(D, dtype=np.float32)[0], lb, 16)])
    s = score_query(segmenter("fixed"), Query(np.eye(D, dtype=np.float32)[0], "q"), bank)
    assert s.photo_scores[0] < 0.01


def test_scores_do_not_depend_on_the_threshold_and_matches_follow_it() -> None:
    rng = np.random.default_rng(7)
    bank = FeatureBank(random_features(rng, 40))
    seg = segmenter("gallery-relative")
    s = score_query(seg, Query(normalize(rng.standard_normal(D)).astype(np.float32), "q"), bank)
    order = ranking(s.photo_scores)
    assert np.all(np.diff(s.photo_scores[order]) <= 0)
    for t in (0.2, 0.5, 0.8):
        m = matches(s.photo_scores, t)
        assert np.array_equal(m, s.photo_scores >= t)
        # A match has a patch at or above the threshold on its grid: its grid mask is not
        # empty; a non-match's is.
        for i in range(len(bank)):
            grid = photo_mask([s], bank, i, threshold=t, out_hw=bank.layouts[i].grid_hw)
            assert grid.score == pytest.approx(float(s.photo_scores[i]))
    assert 0 < matches(s.photo_scores, 0.5).sum() < len(bank)  # both kinds exercised
    with pytest.raises(ValueError, match="threshold"):
        matches(s.photo_scores, 1.0)


def test_a_composed_query_scores_a_photo_by_its_best_vector() -> None:
    rng = np.random.default_rng(2)
    bank = FeatureBank(random_features(rng, 12))
    seg = segmenter("fixed")
    qs = [Query(normalize(rng.standard_normal(D)).astype(np.float32), f"q{k}") for k in range(3)]
    scores = tuple(score_query(seg, q, bank) for q in qs)
    want = np.max([s.photo_scores for s in scores], axis=0)
    np.testing.assert_array_equal(combined_scores(scores), want)


def test_peak_scores_of_an_empty_bank() -> None:
    assert peak_scores(FeatureBank(), np.zeros(0, np.float32)).shape == (0,)


def gallery_with_a_concept() -> tuple[FeatureBank, np.ndarray]:
    """Ten photos, patches at known cosines with the query: photos 0–3 dull (≈ 0.05), 4–9
    ordinary (≈ 0.1); photos 5 and 8 show the concept (two patches at 0.6); photo 9 has one
    slightly brighter patch (0.17), which is nothing next to the gallery's spread but stands
    out of its own photo's."""
    rng = np.random.default_rng(11)
    e0, e1 = np.eye(D)[0], np.eye(D)[1]
    feats = []
    for i in range(10):
        cos = (0.05 if i < 4 else 0.1) + 0.01 * rng.standard_normal(16)
        if i in (5, 8):
            cos[[5, 6]] = 0.6
        if i == 9:
            cos[3] = 0.17
        patches = np.stack([c * e0 + np.sqrt(1 - c * c) * e1 for c in cos]).astype(np.float16)
        lb = fit_letterbox((64, 64), 64)
        feats.append(PhotoFeatures(patches, (4, 4), e0.astype(np.float32), lb, 16))
    return FeatureBank(feats), e0.astype(np.float32)


def test_zero_shot_statistics_come_from_the_query_over_the_whole_gallery() -> None:
    bank, q = gallery_with_a_concept()
    seg = segmenter("gallery-relative", z_offset=3.0)
    s = score_query(seg, Query(q, "q"), bank)
    cos = bank.correlate(q)
    assert s.stats == maps.gallery_stats(cos[bank.valid])

    def pixels(i: int) -> int:
        return int(photo_mask([s], bank, i, threshold=0.5, out_hw=(4, 4)).mask.sum())

    # Over the whole gallery only the concept's patches stand out.
    assert [pixels(i) for i in range(10)] == [0, 0, 0, 0, 0, 2, 0, 0, 2, 0]

    # What the two classic slips would give instead (so the test above tells them apart):
    def count(stats: maps.GalleryStats, i: int) -> int:
        lg = maps.calibrate(
            cos[16 * i : 16 * i + 16], "gallery-relative", stats=stats, z_offset=3.0,
            z_temperature=seg.z_temperature,
        )  # fmt: skip
        return int((lg >= 0).sum())

    half = maps.gallery_stats(cos[:80])  # statistics of part of the gallery
    assert sum(count(half, i) for i in range(4, 10)) > 40  # ordinary photos all light up
    own = [count(maps.gallery_stats(cos[16 * i : 16 * i + 16]), i) for i in range(10)]
    assert own[9] == 1  # each photo on its own: the bright patch of photo 9 is a "match"
