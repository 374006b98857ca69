"""The synthetic world: photos with their true masks, sketches, batches, and the benchmark run
end to end at a tiny size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sketchpad.train import bench
from sketchpad.train.synthetic import SHAPES, SyntheticWorld, make_photo, make_set, make_sketch


def test_photo_masks_are_the_visible_pixels_of_each_object() -> None:
    rng = np.random.default_rng(3)
    p = make_photo(rng, ["circle", "square", "star"], 48)
    assert p.image.shape == (48, 48, 3) and p.image.dtype == np.uint8
    assert p.masks.shape == (3, 48, 48)
    # Occlusion: no pixel belongs to two objects, and each object is visible somewhere.
    assert (p.masks.sum(axis=0) <= 1).all()
    assert all(m.sum() > 0 for m in p.masks)
    assert np.array_equal(p.mask_of("square"), p.masks[1])
    assert not p.mask_of("heart").any()


def test_objects_have_different_pixels_from_the_background_around_them() -> None:
    rng = np.random.default_rng(5)
    p = make_photo(rng, ["triangle"], 64)
    inside = p.image[p.masks[0]].astype(float).mean(axis=0)
    outside = p.image[~p.masks[0]].astype(float).mean(axis=0)
    assert np.abs(inside - outside).max() > 5


def test_sketches_are_stroke_outlines_some_partial() -> None:
    rng = np.random.default_rng(0)
    sketches = [make_sketch(rng, "heart") for _ in range(40)]
    assert all(1 <= len(s.strokes) <= 3 for s in sketches)
    lengths = [sum(len(st.points) for st in s.strokes) for s in sketches]
    assert min(lengths) < 0.85 * max(lengths)  # some are partial
    assert set(SHAPES) >= set(bench.SEEN) | set(bench.UNSEEN)


def test_make_set_is_deterministic_and_single_gives_one_object() -> None:
    a = make_set(7, ["circle", "cross"], 5, 2, size=32)
    b = make_set(7, ["circle", "cross"], 5, 2, size=32)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a.photos, b.photos, strict=True))
    single = make_set(7, ["circle", "cross"], 5, 1, size=32, single=True)
    assert all(len(p.classes) == 1 for p in single.photos)


def test_world_batches_are_a_function_of_the_generator() -> None:
    world = SyntheticWorld(("circle", "square", "star"), 32, photos_per_class=6,
                           sketches_per_class=4)  # fmt: skip
    a = world.pairs(np.random.default_rng([1, 2]), 5, 0.5)
    b = world.pairs(np.random.default_rng([1, 2]), 5, 0.5)
    assert np.array_equal(a.photos, b.photos) and np.array_equal(a.sketches, b.sketches)
    assert a.photos.shape == (5, 32, 32, 3) and a.unpaired.shape == (5, 32, 32, 3)
    assert len(a.part_rows) <= 3 and a.parts.shape[1:] == (2, 32, 32, 3)
    t = world.triplets(np.random.default_rng(0), 6, "category")
    assert t.sketches.shape == (6, 32, 32, 3) and t.labels.shape == (6,)
    with pytest.raises(ValueError, match="category"):
        world.triplets(np.random.default_rng(0), 2, "fine")


def test_unpaired_photos_never_hold_the_sketched_class() -> None:
    world = SyntheticWorld(("circle", "square", "star"), 32, photos_per_class=8,
                           sketches_per_class=2)  # fmt: skip
    for j in range(3):
        for i in world.without_class[j]:
            assert i not in set(world.with_class[j])
        assert len(world.with_class[j]) > 0


def test_bench_runs_end_to_end_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    lines: list[str] = []
    try:
        settings = bench.BenchSettings(critic_steps=2, segmenter_steps=2, critic_batch=4,
                                       segmenter_batch=4, test_photos=3, test_sketches=2,
                                       threads=1)  # fmt: skip
        code = bench.run(report=lines.append, settings=settings)
    finally:
        torch.set_num_threads(threads)
    text = "\n".join(lines)
    assert code == 1  # two steps do not train a segmenter: the targets say FAIL
    for row in ("full (all losses)", "w/o InfoNCE", "w/o unpaired loss", "w/o regulariser",
                "untrained: random weights", "reference: all objects"):  # fmt: skip
        assert row in text
    assert "target ≥ 60 %: FAIL" in text
