"""Planted features: a stand-in backbone whose patch features the test chooses.

Patches that are mostly pure red in the model input get the sketch's embedding e0; every
other patch gets an orthogonal e1. Masks must land exactly on the red regions, in photo pixels,
for any aspect ratio; photos without red must stay empty.
"""

from __future__ import annotations

import numpy as np
import pytest
from planted import (
    GALLERY,
    SKETCH,
    D,
    PlantedBackbone,
    box_mask,
    corner_zones,
    photo,
)

from sketchpad.search.masks import photo_mask
from sketchpad.search.scoring import ranking, score_query
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.features import embed_photos
from sketchpad.vision.segmenter import Segmenter


@pytest.fixture(params=["fixed", "gallery-relative"])
def setup(request: pytest.FixtureRequest) -> tuple[Segmenter, FeatureBank, list[np.ndarray]]:
    bb = PlantedBackbone(fine_tuned=request.param == "fixed")
    seg = Segmenter(bb)
    assert seg.calibration == request.param
    photos = [photo(hw, boxes) for hw, boxes in GALLERY]
    bank = FeatureBank(seg.embed_photos(photos, batch_size=3))
    assert bb.photo_batches == [3, 3, 1]
    return seg, bank, photos


def test_masks_land_exactly_on_the_planted_regions(setup: tuple) -> None:
    """Along every edge the mask boundary is exact to the pixel, for every aspect ratio;
    nothing outside the planted boxes is marked; only the rounded corners (within half a
    patch of a corner, as bilinear upsampling makes them) may be missing."""
    seg, bank, _ = setup
    scores = score_query(seg, seg.sketch_query(SKETCH), bank)
    for i, (hw, boxes) in enumerate(GALLERY):
        m = photo_mask([scores], bank, i, threshold=seg.threshold)
        assert m.mask.shape == hw
        expect = box_mask(hw, boxes)
        half_patch = 16 * max(hw) // 64 // 2  # photo pixels per patch / 2
        outside = m.mask & ~expect
        assert not outside.any(), f"photo {i} {hw}: {outside.sum()} pixels outside the region"
        missed = expect & ~m.mask & ~corner_zones(hw, boxes, half_patch)
        assert not missed.any(), f"photo {i} {hw}: {missed.sum()} pixels missed"
        if boxes:  # one-patch objects come out as rounded blobs: IoU ≈ 0.8
            iou = (m.mask & expect).sum() / (m.mask | expect).sum()
            assert iou > 0.75


def test_photos_without_the_concept_stay_empty_and_rank_last(setup: tuple) -> None:
    seg, bank, _ = setup
    scores = score_query(seg, seg.sketch_query(SKETCH), bank)
    empty = [i for i, (_, boxes) in enumerate(GALLERY) if not boxes]
    for i in empty:
        m = photo_mask([scores], bank, i, threshold=seg.threshold)
        assert not m.mask.any() and m.instances == () and m.score < 0.01
        assert scores.photo_scores[i] == m.score  # one score, whatever the mask's size
    order = list(ranking(scores.photo_scores))
    assert set(order[-len(empty) :]) == set(empty)
    assert all(scores.photo_scores[i] > 0.9 for i in range(len(GALLERY)) if i not in empty)


def test_two_instances_get_their_own_boxes(setup: tuple) -> None:
    seg, bank, _ = setup
    scores = score_query(seg, seg.sketch_query(SKETCH), bank)
    m = photo_mask([scores], bank, 2, threshold=seg.threshold)
    boxes = sorted(inst.box_xyxy for inst in m.instances)
    assert boxes == [(0, 0, 32, 32), (64, 64, 128, 128)]
    assert all(inst.score > 0.7 for inst in m.instances)
    assert {int(v) for v in np.unique(m.label_map)} == {0, 1, 2}


def test_masks_at_another_output_size_stay_aligned(setup: tuple) -> None:
    """Thumbnails: the same map at a quarter of the photo's size."""
    seg, bank, _ = setup
    scores = score_query(seg, seg.sketch_query(SKETCH), bank)
    m = photo_mask([scores], bank, 3, threshold=seg.threshold, out_hw=(16, 32))
    expect = box_mask((16, 32), [(8, 0, 16, 8)])
    assert not (m.mask & ~expect).any()
    assert not (expect & ~m.mask & ~corner_zones((16, 32), [(8, 0, 16, 8)], 4)).any()
    x0, y0, x1, y1 = m.instances[0].box_xyxy
    assert (x0, y0) == (8, 0) and 15 <= x1 <= 16 and 7 <= y1 <= 8


def test_one_matrix_product_per_query_and_no_photo_forward(setup: tuple) -> None:
    seg, bank, _ = setup
    bb: PlantedBackbone = seg.backbone  # type: ignore[assignment]
    before = list(bb.photo_batches)
    for _ in range(3):
        score_query(seg, seg.sketch_query(SKETCH), bank)
    assert bb.photo_batches == before  # queries never re-run the photo encoder
    assert (bank.rows, bank.dim) == (len(GALLERY) * 16, D)


def test_letterbox_padding_never_becomes_mask() -> None:
    """A landscape photo entirely red: the padding rows above and below are not object, but
    the mask must cover exactly the whole photo (and nothing of the padding leaks in)."""
    seg = Segmenter(PlantedBackbone(fine_tuned=True))
    im = photo((64, 128), [(0, 0, 128, 64)])
    bank = FeatureBank(seg.embed_photos([im, photo((128, 128), [])]))
    m = photo_mask([score_query(seg, seg.sketch_query(SKETCH), bank)], bank, 0, threshold=0.5)
    assert m.mask.all()
    assert bank.layouts[0].valid_patches().sum() == 8


def test_composed_queries_unite_masks_per_group() -> None:
    seg = Segmenter(PlantedBackbone(fine_tuned=True))
    bank = FeatureBank(seg.embed_photos([photo((128, 128), [(32, 32, 96, 96)])]))
    left = Stroke(np.array([[0.0, 0.0], [10.0, 10.0]]))
    right = Stroke(np.array([[80.0, 80.0], [90.0, 95.0]]))
    sketch = Sketch(strokes=(left, right), width=100, height=100)
    queries = seg.group_queries(sketch)
    assert [q.label for q in queries] == ["sketch", "group 1", "group 2"]
    assert queries[1].stroke_ids == (left.id,) and queries[2].stroke_ids == (right.id,)
    scores = [score_query(seg, q, bank) for q in queries]
    m = photo_mask(scores, bank, 0, threshold=seg.threshold)
    single = photo_mask(scores[:1], bank, 0, threshold=0.5)
    np.testing.assert_array_equal(m.mask, single.mask)  # every group finds the same object
    assert m.group_map is not None and set(np.unique(m.group_map)) <= {0, 1, 2, 3}
    assert (m.group_map[m.mask] > 0).all() and (m.group_map[~m.mask] == 0).all()


def test_crf_needs_the_photo() -> None:
    seg = Segmenter(PlantedBackbone(fine_tuned=True))
    bank = FeatureBank(seg.embed_photos([photo((128, 128), [(32, 32, 96, 96)])]))
    scores = score_query(seg, seg.sketch_query(SKETCH), bank)
    with pytest.raises(ValueError, match="needs the photo"):
        photo_mask([scores], bank, 0, threshold=seg.threshold, crf=True)
    im = photo((128, 128), [(32, 32, 96, 96)])
    m = photo_mask([scores], bank, 0, threshold=seg.threshold, photo=im, crf=True)
    assert m.refined
    # The photo's own edges agree with the planted map: CRF keeps it (up to a pixel's rim).
    assert (m.mask != box_mask((128, 128), [(32, 32, 96, 96)])).mean() < 0.02


def test_store_dtype_is_half_by_default() -> None:
    bb = PlantedBackbone()
    f = embed_photos(bb, [photo((64, 64), [])])[0]
    assert f.patches.dtype == np.float16 and f.grid_hw == (4, 4)
    np.testing.assert_allclose(np.linalg.norm(f.patches.astype(np.float32), axis=1), 1, atol=1e-3)
