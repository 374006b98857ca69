"""FeatureBank (float16 blocks, one product per query) and vectorised ranking of all photos."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sketchpad.vision import maps
from sketchpad.vision.bank import FeatureBank, PhotoLayout, TensorBlock
from sketchpad.vision.features import PhotoFeatures, normalize
from sketchpad.vision.letterbox import fit_letterbox
from sketchpad.vision.segmenter import Query, Segmenter, grid_scores

D = 16


def random_features(rng: np.random.Generator, n: int, size: int = 64, patch: int = 16) -> list:
    g = size // patch
    out = []
    for _ in range(n):
        hw = (int(rng.integers(8, 200)), int(rng.integers(8, 200)))
        patches = normalize(rng.standard_normal((g * g, D))).astype(np.float16)
        glob = normalize(rng.standard_normal(D)).astype(np.float32)
        out.append(PhotoFeatures(patches, (g, g), glob, fit_letterbox(hw, size), patch))
    return out


def segmenter(calibration: str, global_weight: float = 0.0) -> Segmenter:
    fake = SimpleNamespace(
        spec=SimpleNamespace(input_size=64), weights=SimpleNamespace(fine_tuned=False)
    )
    return Segmenter(
        fake,  # type: ignore[arg-type]  # score() never runs the model
        calibration=calibration,  # type: ignore[arg-type]
        tau=0.1,
        z_offset=1.5,  # random 16-d features: put many photos above the threshold
        global_weight=global_weight,
    )


def reference_scores(seg: Segmenter, bank: FeatureBank, logits: np.ndarray) -> np.ndarray:
    """The per-photo loop the vectorised ranking replaced."""
    out = []
    for i, lay in enumerate(bank.layouts):
        prob = maps.sigmoid(bank.grid(logits, i)) * lay.valid_patches()
        inst, _ = maps.find_instances(prob, prob > seg.threshold, min_area=1)
        out.append(maps.photo_score(inst))
    return np.asarray(out, dtype=np.float32)


@pytest.mark.parametrize("calibration", ["fixed", "gallery-relative"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_ranking_equals_the_per_photo_loop(calibration: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Two grids in one bank (photos indexed at two input sizes), interleaved.
    feats = random_features(rng, 40) + random_features(rng, 30, size=96) + random_features(rng, 5)
    bank = FeatureBank(feats)
    seg = segmenter(calibration)
    q = Query(normalize(feats[3].patches[5].astype(np.float32) + 0.1), "q")
    s = seg.score(q, bank)
    ref = reference_scores(seg, bank, s.logits)
    assert (ref > 0).sum() >= 3 and (ref == 0).sum() >= 3  # both kinds are exercised
    np.testing.assert_allclose(s.photo_scores, ref, atol=1e-6)
    assert np.array_equal(grid_scores(bank, s.logits, seg.threshold), s.photo_scores)


@pytest.mark.parametrize("calibration", ["fixed", "gallery-relative"])
def test_rescore_at_another_threshold_equals_scoring_again(calibration: str) -> None:
    """The threshold slider re-ranks from the stored logits: the same as a fresh score."""
    rng = np.random.default_rng(7)
    feats = random_features(rng, 40)
    bank = FeatureBank(feats)
    seg = segmenter(calibration)
    q = Query(normalize(feats[3].patches[5].astype(np.float32) + 0.1), "q")
    s = seg.score(q, bank, threshold=0.5)
    for t in (0.2, 0.8):
        again = seg.rescore(s, bank, threshold=t)
        fresh = seg.score(q, bank, threshold=t)
        np.testing.assert_array_equal(again.photo_scores, fresh.photo_scores)
        assert again.logits is s.logits  # nothing recomputed
        assert not np.array_equal(again.photo_scores, s.photo_scores)
    assert seg.threshold == 0.5  # the segmenter's own threshold is untouched
    with pytest.raises(ValueError, match="patches"):
        seg.rescore(s, FeatureBank(random_features(rng, 3)))
    with pytest.raises(ValueError, match="threshold"):
        seg.rescore(s, bank, threshold=1.0)


def test_global_weight_blends_the_global_probability() -> None:
    rng = np.random.default_rng(5)
    bank = FeatureBank(random_features(rng, 20))
    q = Query(normalize(rng.standard_normal(D).astype(np.float32)), "q")
    plain = segmenter("fixed").score(q, bank)
    blended = segmenter("fixed", global_weight=0.25).score(q, bank)
    np.testing.assert_allclose(
        blended.photo_scores, 0.75 * plain.photo_scores + 0.25 * plain.global_prob, atol=1e-6
    )


def test_correlate_is_one_float16_product_close_to_float64() -> None:
    rng = np.random.default_rng(3)
    feats = random_features(rng, 50)
    bank = FeatureBank(feats)
    q = normalize(rng.standard_normal(D))
    exact = np.concatenate([f.patches.astype(np.float64) for f in feats]) @ q
    cos = bank.correlate(q)
    assert cos.dtype == np.float32 and cos.shape == (bank.rows,)
    np.testing.assert_allclose(cos, exact, atol=2e-3)
    assert bank.resident_bytes == bank.rows * D * 2  # float16, not float32


def test_extend_and_concat_equal_one_bank_built_at_once() -> None:
    rng = np.random.default_rng(4)
    feats = random_features(rng, 12)
    whole = FeatureBank(feats, names=[f"p{i}" for i in range(12)])
    grown = FeatureBank(feats[:5], names=[f"p{i}" for i in range(5)])
    grown.extend(feats[5:], names=[f"p{i}" for i in range(5, 12)])
    joined = FeatureBank.concat([FeatureBank(feats[:7]), FeatureBank(), FeatureBank(feats[7:])])
    q = normalize(rng.standard_normal(D))
    for other in (grown, joined):
        assert np.array_equal(other.correlate(q), whole.correlate(q))
        assert np.array_equal(other.offsets, whole.offsets)
        assert np.array_equal(other.valid, whole.valid)
        assert np.array_equal(other.globals, whole.globals)
    assert grown.names == whole.names
    assert joined.names[:3] == ["0", "1", "2"]


def test_bad_banks_are_refused() -> None:
    rng = np.random.default_rng(6)
    bank = FeatureBank(random_features(rng, 2))
    other = PhotoFeatures(
        np.zeros((16, D + 1), np.float16), (4, 4), np.zeros(D + 1, np.float32),
        fit_letterbox((10, 10), 64), 16,
    )  # fmt: skip
    with pytest.raises(ValueError, match="different dimensions"):
        bank.extend([other])
    with pytest.raises(ValueError, match="query of shape"):
        bank.correlate(np.ones(D + 1))
    lay = PhotoLayout((4, 4), fit_letterbox((10, 10), 64), 16)
    with pytest.raises(ValueError, match="patches"):
        bank.add_block_rows([lay], np.zeros((1, D)), [TensorBlock(np.zeros((15, D)))])
    with pytest.raises(ValueError, match="names"):
        bank.add_block_rows([lay], np.zeros((1, D)), [TensorBlock(np.zeros((16, D)))], names=[])


def test_empty_bank_scores_nothing() -> None:
    bank = FeatureBank()
    s = segmenter("gallery-relative").score(Query(np.eye(D, dtype=np.float32)[0], "q"), bank)
    assert s.photo_scores.shape == (0,) and s.cos.shape == (0,)


def test_gallery_statistics_come_from_a_fixed_sample_of_valid_patches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sketchpad.vision.bank as bank_module

    rng = np.random.default_rng(7)
    feats = random_features(rng, 60)
    bank = FeatureBank(feats)
    every = np.flatnonzero(bank.valid)
    assert np.array_equal(bank.stats_rows(), every)  # small gallery: every valid patch
    monkeypatch.setattr(bank_module, "STATS_SAMPLE", 400)
    bank = FeatureBank(feats)
    rows = bank.stats_rows()
    assert rows.size == 400 and np.all(np.diff(rows) > 0) and np.all(bank.valid[rows])
    assert np.array_equal(FeatureBank(feats).stats_rows(), rows)  # deterministic
    cos = bank.correlate(normalize(rng.standard_normal(D)))
    full, sample = maps.gallery_stats(cos[every]), maps.gallery_stats(cos[rows])
    assert abs(full.center - sample.center) < 0.1 * full.scale
    assert abs(full.scale - sample.scale) < 0.15 * full.scale
    bank.extend(feats[:1])
    assert bank.stats_rows().size == 400 and bank.stats_rows() is not rows  # recomputed
