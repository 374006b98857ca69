"""SearchCore: query vectors kept by the spec's key, results kept per bank state."""

from __future__ import annotations

import numpy as np
from planted import GALLERY, SKETCH, TWO_SIDES, ReactiveBackbone, photo

from sketchpad.search.core import SearchCore
from sketchpad.search.spec import QuerySpec, StrokesPart
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.segmenter import Segmenter


def test_vectors_are_kept_by_key_and_results_by_bank_state() -> None:
    backbone = ReactiveBackbone(fine_tuned=True)
    seg = Segmenter(backbone)
    core = SearchCore(seg)
    photos = [photo(hw, boxes) for hw, boxes in GALLERY]
    bank = FeatureBank(seg.embed_photos(photos[:4]))
    spec = QuerySpec(sketch=SKETCH)
    first = core.search(spec, bank)
    assert backbone.sketch_calls == 1 and core.encodes == 1 and len(first.names) == 4
    assert core.search(spec, bank) is first  # the same query on the same bank: nothing runs
    relabelled = QuerySpec(sketch=SKETCH.with_strokes([SKETCH.strokes[0]]))  # same geometry
    assert core.is_encoded(relabelled)
    left = QuerySpec(sketch=TWO_SIDES, part=StrokesPart(("left",)))
    right = QuerySpec(sketch=TWO_SIDES, part=StrokesPart(("right",)))
    assert not core.is_encoded(left)
    a, b = core.encode(left)[0].embedding, core.encode(right)[0].embedding
    assert backbone.sketch_calls == 3 and not np.allclose(a, b)  # another key: another forward
    assert core.search(spec, bank) is first  # its result is kept for this bank
    assert backbone.sketch_calls == 3

    bank.extend(seg.embed_photos(photos[4:]))  # indexing grew the bank in place
    grown = core.search(spec, bank)
    assert len(grown.names) == len(GALLERY) and grown is not first
    assert backbone.sketch_calls == 4  # its vectors again (the last encoded were others)
    np.testing.assert_array_equal(grown.photo_scores[:4], first.photo_scores)

    other = FeatureBank(seg.embed_photos(photos[:2]))  # another folder
    assert len(core.search(spec, other).names) == 2 and backbone.sketch_calls == 4
    core.forget()
    core.search(spec, other)
    assert backbone.sketch_calls == 5 and core.encodes == 5
