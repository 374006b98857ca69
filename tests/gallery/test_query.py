"""Queries over a folder's feature cache: one product over every cached photo, a memory
budget beyond which rows are streamed, masks aligned with EXIF-rotated photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from planted import GALLERY, SKETCH, PlantedBackbone, box_mask, corner_zones, photo

from sketchpad.gallery.cache import FeatureCache
from sketchpad.gallery.index import index_folder, model_key
from sketchpad.gallery.query import (
    BUDGET_ENV,
    DEFAULT_MEMORY_BUDGET,
    CacheStreamBlock,
    load_bank,
    memory_budget,
    parse_bytes,
)
from sketchpad.search.masks import photo_mask
from sketchpad.search.scoring import ranking, score_query
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.segmenter import Segmenter

ROW_BYTES = 16 * 8 * 2  # a planted photo: 4×4 patches of 8 float16


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    return tmp_path / "home"


@pytest.fixture
def gallery(tmp_path: Path) -> tuple[Path, Segmenter]:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (hw, boxes) in enumerate(GALLERY):
        Image.fromarray(photo(hw, boxes)).save(folder / f"p{i}.png")
    seg = Segmenter(PlantedBackbone(fine_tuned=True))
    summary = index_folder(folder, seg, batch_size=3)
    assert summary.indexed == len(GALLERY)
    return folder, seg


def test_a_cached_bank_answers_like_a_bank_built_in_memory(gallery: tuple) -> None:
    folder, seg = gallery
    bb: PlantedBackbone = seg.backbone  # type: ignore[assignment]
    direct = FeatureBank(seg.embed_photos([photo(hw, b) for hw, b in GALLERY]))
    forwards = len(bb.photo_batches)
    with load_bank(folder, model_key(seg)) as bank:
        assert bank.names == [f"p{i}.png" for i in range(len(GALLERY))]
        assert bank.paths()[0] == folder / "p0.png"
        assert bank.resident_bytes == len(GALLERY) * ROW_BYTES
        q = seg.sketch_query(SKETCH)
        a, b = score_query(seg, q, bank), score_query(seg, q, direct)
        assert np.array_equal(a.cos, b.cos)
        assert np.array_equal(a.photo_scores, b.photo_scores)
        assert set(ranking(a.photo_scores)[:4]) == {0, 2, 3, 4}  # the concept's photos first
        for i, (hw, boxes) in enumerate(GALLERY):
            m = photo_mask([a], bank, i, threshold=seg.threshold)
            assert m.mask.shape == hw
            assert not (m.mask & ~box_mask(hw, boxes)).any()
    assert len(bb.photo_batches) == forwards  # queries over the cache never run the encoder


@pytest.mark.parametrize("budget_rows", [0, 1, 3, 6])
def test_beyond_the_budget_rows_are_streamed_with_the_same_answers(
    gallery: tuple, budget_rows: int
) -> None:
    folder, seg = gallery
    q = seg.sketch_query(SKETCH)
    with load_bank(folder, model_key(seg)) as full:
        expect = score_query(seg, q, full)
    budget = max(1, budget_rows * ROW_BYTES)
    with load_bank(folder, model_key(seg), budget_bytes=budget) as bank:
        assert bank.resident_bytes <= budget
        assert bank.resident_bytes < len(GALLERY) * ROW_BYTES
        assert any(isinstance(b, CacheStreamBlock) for b in bank.blocks)
        got = score_query(seg, q, bank)
        np.testing.assert_array_equal(got.cos, expect.cos)
        np.testing.assert_array_equal(got.photo_scores, expect.photo_scores)
        assert bank.names == full.names


def test_rows_removed_after_loading_score_minus_one(gallery: tuple) -> None:
    folder, seg = gallery
    key = model_key(seg)
    with load_bank(folder, key, budget_bytes=1) as bank:  # everything streamed
        with FeatureCache.open(folder, key) as writer:
            assert writer.remove(["p2.png"]) == 1
        s = score_query(seg, seg.sketch_query(SKETCH), bank)
        assert np.all(bank.grid(s.cos, 2) == -1.0)
        assert s.photo_scores[2] < 1e-6 and s.photo_scores[0] > 0.5  # never a match


def test_an_absent_cache_is_an_empty_bank(tmp_path: Path) -> None:
    seg = Segmenter(PlantedBackbone())
    (tmp_path / "empty").mkdir()
    with load_bank(tmp_path / "empty", model_key(seg)) as bank:
        assert len(bank) == 0
        assert score_query(seg, seg.sketch_query(SKETCH), bank).photo_scores.shape == (0,)


def test_memory_budget_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_bytes("2G") == 2 * 2**30
    assert parse_bytes("512M") == 512 * 2**20
    assert parse_bytes("1.5GiB") == 3 * 2**29
    assert parse_bytes(" 300k ") == 300 * 1024
    assert parse_bytes("4096") == parse_bytes(4096) == 4096
    for bad in ("", "lots", "-1G", "0", "2X"):
        with pytest.raises(ValueError):
            parse_bytes(bad)
    assert memory_budget() == DEFAULT_MEMORY_BUDGET == 2 * 2**30
    monkeypatch.setenv(BUDGET_ENV, "256M")
    assert memory_budget() == 256 * 2**20
    assert memory_budget("1G") == 2**30  # an explicit value wins
    monkeypatch.setenv(BUDGET_ENV, "plenty")
    with pytest.raises(ValueError, match=BUDGET_ENV):
        memory_budget()


# EXIF orientation → the transpose that displays the stored pixels (as ImageOps.exif_transpose).
DISPLAY = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
INVERSE = {
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
}


def test_masks_align_with_the_exif_rotated_photo(tmp_path: Path) -> None:
    """Each photo is stored rotated/flipped with the EXIF orientation that displays it
    upright; its mask must land on the red box where the *displayed* photo has it."""
    hw, boxes = (64, 128), [(32, 0, 64, 32)]  # displayed: landscape, box at the top
    shown = Image.fromarray(photo(hw, boxes))
    folder = tmp_path / "exif"
    folder.mkdir()
    for o in range(1, 9):
        method = DISPLAY.get(o)
        stored = shown if method is None else shown.transpose(INVERSE.get(method, method))
        exif = Image.Exif()
        exif[0x0112] = o
        stored.save(folder / f"o{o}.png", exif=exif)
    seg = Segmenter(PlantedBackbone(fine_tuned=True))
    index_folder(folder, seg)
    with load_bank(folder, model_key(seg)) as bank:
        s = score_query(seg, seg.sketch_query(SKETCH), bank)
        expect = box_mask(hw, boxes)
        for i, name in enumerate(bank.names):
            m = photo_mask([s], bank, i, threshold=seg.threshold)
            assert m.mask.shape == hw, name
            assert not (m.mask & ~expect).any(), name
            assert not (expect & ~m.mask & ~corner_zones(hw, boxes, 16)).any(), (
                name
            )  # ½ photo patch
            assert m.instances[0].box_xyxy[:2] == (32, 0), name
