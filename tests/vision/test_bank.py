"""FeatureBank: float16 blocks, one product per query, layouts and the statistics sample.
(Scoring over a bank is the search core's: tests/search.)"""

from __future__ import annotations

import numpy as np
import pytest

from sketchpad.vision import maps
from sketchpad.vision.bank import FeatureBank, PhotoLayout, TensorBlock
from sketchpad.vision.features import PhotoFeatures, normalize
from sketchpad.vision.letterbox import fit_letterbox

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
