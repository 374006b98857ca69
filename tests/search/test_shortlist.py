"""The two-stage query against the exact one on planted galleries (the right answer is known)."""

from __future__ import annotations

import numpy as np
import pytest
from planted import E0, SKETCH, D, PlantedBackbone

from sketchpad.search.core import SearchCore
from sketchpad.search.scoring import score_query
from sketchpad.search.shortlist import probe_photos, score_query_shortlist
from sketchpad.search.spec import QuerySpec
from sketchpad.vision.bank import FeatureBank, PhotoLayout, TensorBlock
from sketchpad.vision.letterbox import fit_letterbox
from sketchpad.vision.segmenter import Query, Segmenter

G = 4  # 4×4 patches per photo
N = 600


def planted_bank(n: int = N, seed: int = 0) -> tuple[FeatureBank, np.ndarray]:
    """``n`` photos of background patches; every 40th holds the concept E0 on 1–5 patches of
    16 (the known answer; one patch is a small object a summary could average away), every
    40th + 7 a faint trace of it on one patch (a match by the calibration, far below the
    planted ones). Returns the bank and the planted photos."""
    rng = np.random.default_rng(seed)
    t = G * G
    x = 0.5 * np.eye(D, dtype=np.float32)[1] + 0.35 * rng.standard_normal((n, t, D))
    x[:, :, 0] = 0.0  # the background is orthogonal to the concept: it never matches
    planted = np.arange(0, n, 40)
    for i in planted:
        k = int(rng.integers(1, 6))
        x[i, :k] = E0 + 0.1 * rng.standard_normal((k, D))
        x[i + 7, int(rng.integers(0, t)), 0] = 0.05
    x /= np.linalg.norm(x, axis=2, keepdims=True)
    lay = PhotoLayout((G, G), fit_letterbox((64, 64), 64), 16)
    bank = FeatureBank()
    bank.add_block_rows([lay] * n, x[:, 0], [TensorBlock(x.reshape(-1, D).astype(np.float16))])
    return bank, planted


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    s = Segmenter(PlantedBackbone())
    assert s.calibration == "gallery-relative"
    return s


def test_shortlist_keeps_the_planted_matches_and_the_exact_top_n(seg: Segmenter) -> None:
    bank, planted = planted_bank()
    q = Query(E0, "sketch")
    exact = score_query(seg, q, bank)
    short = score_query_shortlist(seg, q, bank, top_n=10, threshold=0.5)
    assert short.photos is not None and len(short.photos) < len(bank)  # not every photo
    assert set(np.flatnonzero(exact.photo_scores >= 0.5)) == set((planted + 7).tolist()) | set(
        planted.tolist()
    )
    np.testing.assert_array_equal(short.photo_scores >= 0.5, exact.photo_scores >= 0.5)
    top = np.argsort(-exact.photo_scores, kind="stable")[:10]
    assert set(top.tolist()) <= set(short.photos.tolist())
    np.testing.assert_allclose(short.photo_scores[short.photos], exact.photo_scores[short.photos])
    assert short.floor <= 0.5
    rest = np.setdiff1d(np.arange(len(bank)), short.photos)
    assert np.all(short.photo_scores[rest] < short.floor)  # estimates stay below the floor


def test_statistics_come_from_the_fixed_whole_gallery_sample(seg: Segmenter) -> None:
    bank, _ = planted_bank()
    q = Query(E0, "sketch")
    exact = score_query(seg, q, bank)
    short = score_query_shortlist(seg, q, bank, top_n=10)
    assert exact.stats is not None and short.stats is not None
    assert short.stats.center == pytest.approx(exact.stats.center, abs=1e-3)
    assert short.stats.scale == pytest.approx(exact.stats.scale, rel=1e-3)


def test_search_core_exact_option_and_masks_off_the_shortlist(seg: Segmenter) -> None:
    bank, planted = planted_bank()
    spec = QuerySpec(sketch=SKETCH)  # the planted backbone embeds every sketch as E0
    exact = SearchCore(seg, exact=True).search(spec, bank)
    core = SearchCore(seg, exact=False, top_n=10)
    two = core.search(spec, bank)
    assert exact.exact and not two.exact
    np.testing.assert_array_equal(two.matches(0.5), exact.matches(0.5))
    assert list(two.ranking[:10]) == list(exact.ranking[:10])
    off = int(np.setdiff1d(np.arange(len(bank)), two.scores[0].photos)[0])
    for i in (int(planted[0]), off):  # on the shortlist, and computed on demand
        a = SearchCore(seg, exact=True).mask(exact, bank, i, threshold=0.5, out_hw=(32, 32))
        b = core.mask(two, bank, i, threshold=0.5, out_hw=(32, 32))
        np.testing.assert_allclose(a.prob, b.prob, atol=1e-6)
        np.testing.assert_array_equal(a.mask, b.mask)
    # a lower threshold than the shortlist was made for asks for a new one
    assert core.search(spec, bank, threshold=0.5) is two
    lower = core.search(spec, bank, threshold=min(0.2, two.floor / 2))
    assert lower is not two and lower.floor <= max(0.2, two.floor / 2)


def test_automatic_choice_by_gallery_size(seg: Segmenter) -> None:
    small, _ = planted_bank(50)
    core = SearchCore(seg)
    assert not core.uses_shortlist(small)
    assert SearchCore(seg, exact=False).uses_shortlist(small)
    assert core.search(QuerySpec(sketch=SKETCH), small).exact
    big, _ = planted_bank(4000)
    assert not core.uses_shortlist(big)  # no stored summaries: not computed behind its back
    stored = FeatureBank()
    stored.add_block_rows(big.layouts, big.globals, big.blocks, summaries=big_summaries(big))
    assert core.uses_shortlist(stored)


def big_summaries(bank: FeatureBank) -> np.ndarray:
    return bank.summary_matrix().numpy().reshape(len(bank), -1, D)


def test_probe_photos_are_fixed() -> None:
    assert np.array_equal(probe_photos(10), np.arange(10))
    a, b = probe_photos(5000), probe_photos(5000)
    assert np.array_equal(a, b) and len(a) == 256 and np.all(np.diff(a) > 0)


def test_masks_come_from_the_banks_exact_rows_where_it_has_them(seg: Segmenter) -> None:
    """A bank's ``exact_patches`` source is what masks are made from (its scores, the badge's,
    stay); a row it lacks or of the wrong shape falls back to the bank's own rows."""
    bank, planted = planted_bank()
    spec = QuerySpec(sketch=SKETCH)
    core = SearchCore(seg, exact=False, top_n=10)
    two = core.search(spec, bank)
    i = int(planted[0])
    own = core.mask(two, bank, i, threshold=0.5, out_hw=(32, 32))
    rows, _ = bank.photo_rows(np.array([i]))
    flipped = -bank.take_rows(rows).astype(np.float16)  # "exact" rows unlike the bank's own
    bank.exact_patches = lambda j: flipped if j == i else None
    other = core.mask(two, bank, i, threshold=0.5, out_hw=(32, 32))
    assert other.score == own.score == float(two.photo_scores[i])
    assert other.prob.max() < 0.5 <= own.prob.max()  # the concept's patches flipped away
    for bad in (None, flipped[:3]):
        bank.exact_patches = lambda j, bad=bad: bad
        back = core.mask(two, bank, i, threshold=0.5, out_hw=(32, 32))
        np.testing.assert_array_equal(back.prob, own.prob)


def test_a_concatenated_bank_keeps_each_parts_exact_rows(seg: Segmenter) -> None:
    """``segment`` concatenates its folders' banks: a store bank's exact rows stay the source
    of its photos' masks, a float16 bank's photos keep their own rows."""
    store, planted = planted_bank()
    plain, _ = planted_bank(seed=1)
    i = int(planted[0])
    rows, _ = store.photo_rows(np.array([i]))
    flipped = -store.take_rows(rows).astype(np.float16)
    store.exact_patches = lambda j: flipped if j == i else None
    both = FeatureBank.concat([plain, store])
    assert both.exact_patches is not None
    assert np.array_equal(both.exact_patches(len(plain) + i), flipped)
    rows, _ = plain.photo_rows(np.array([i]))
    assert np.array_equal(both.exact_patches(i), plain.take_rows(rows).astype(np.float16))
    assert FeatureBank.concat([plain, plain]).exact_patches is None
