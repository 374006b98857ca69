"""SceneLabeller on planted features: exact per-stroke and per-pixel labels, batching,
isolation, raster-only sketches, suggestions."""

from __future__ import annotations

import numpy as np
import pytest
from scene_planted import QUADRANT_LABEL, SceneBackbone, quadrant_sketch, ring

from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.sketch.raster import canvas_frame, rasterize
from sketchpad.vision.scene import FINE_TUNED_THRESHOLD, VIEW_MEMO, SceneLabeller
from sketchpad.vision.scene_pixels import stroke_pixels
from sketchpad.vision.scene_suggest import suggest_labels
from sketchpad.vision.scene_vocab import Vocabulary

LABELS = ["cat", "dog", "tree", "sun"]


@pytest.fixture(autouse=True)
def private_home(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Suggestions keep the vocabulary's text embeddings in the cache folder: keep it here."""
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path))


@pytest.fixture
def labeller() -> SceneLabeller:
    return SceneLabeller(SceneBackbone())


def quadrant_of_pixels(flat: np.ndarray, width: int, sketch: Sketch) -> str:
    """The quadrant (of the drawing's box) that holds these pixels' centroid."""
    x0, y0, x1, y1 = sketch.bbox()
    ys, xs = flat // width, flat % width
    right = xs.mean() + 0.5 > (x0 + x1) / 2
    low = ys.mean() + 0.5 > (y0 + y1) / 2
    return QUADRANT_LABEL[2 * low + right]


@pytest.mark.parametrize("labels", [LABELS, ["sun", "cat", "tree", "dog"]])
def test_planted_features_give_the_exact_stroke_labels(
    labeller: SceneLabeller, labels: list[str]
) -> None:
    sketch, truth = quadrant_sketch()
    r = labeller.label(sketch, labels)
    assert r.labels == tuple(labels)
    assert r.stroke_label_names() == tuple(truth)  # labels follow the words, not the order
    assert r.label_of("tl2") == "cat" and r.stroke_ids == ("tl", "tr", "bl", "br", "tl2")
    # Every ink pixel takes its stroke's label (the strokes lie well inside their quadrants).
    expected = r.pixels.owner_labels(np.array([labels.index(t) for t in truth]))
    np.testing.assert_array_equal(r.pixel_labels, expected)
    assert r.raster_hw == (200, 300)  # the canvas, not the model's framing
    assert (r.pixel_labels >= 0).sum() == r.ink.sum() > 0
    # The model saw the drawing fitted to its input: ink in all four quadrants.
    seen = labeller.backbone.inputs[-1][0]
    assert all(
        (seen[a, b] < 0.5).any()
        for a in (slice(0, 32), slice(32, 64))
        for b in (slice(0, 32), slice(32, 64))
    )


def test_batches_equal_one_by_one_with_different_label_sets(labeller: SceneLabeller) -> None:
    sketch, _ = quadrant_sketch()
    small = Sketch(strokes=(Stroke(ring(10, 10, 5), id="a"), Stroke(ring(60, 60, 5), id="b")))
    sets = [LABELS, ["sun", "cat"], ["dog", "tree", "cat"]]
    sketches = [sketch, small, sketch]
    one_by_one = [labeller.label(s, lab) for s, lab in zip(sketches, sets, strict=True)]
    calls = labeller.backbone.text_calls
    batch = labeller.label_batch(sketches, sets, batch_size=3)
    assert labeller.backbone.text_calls == calls  # label embeddings are cached
    assert len(labeller.backbone.inputs[-1]) == 3  # one forward for the batch
    for a, b in zip(one_by_one, batch, strict=True):
        assert a.labels == b.labels
        np.testing.assert_array_equal(a.stroke_labels, b.stroke_labels)
        np.testing.assert_array_equal(a.pixel_labels, b.pixel_labels)
        np.testing.assert_allclose(a.patch_maps, b.patch_maps, atol=1e-6)
    assert batch[1].stroke_label_names() == ("cat", "sun")


def test_isolation_zero_shot_and_fine_tuned() -> None:
    sketch, truth = quadrant_sketch()
    for fine_tuned in (False, True):
        r = SceneLabeller(SceneBackbone(fine_tuned=fine_tuned)).label(sketch, LABELS)
        tl = r.pixels.owner_labels(np.array([0, 1, 2, 3, 0])) == 0  # the cat strokes' ink
        cat = r.isolate("cat")
        np.testing.assert_array_equal(cat, tl)
        assert r.isolate_strokes("cat") == ("tl", "tl2")
        assert r.isolate_strokes("sun") == ("br",)
        if fine_tuned:
            assert r.threshold_for("cat") == FINE_TUNED_THRESHOLD
        else:  # zero-shot: where S crosses 0, inside (0, 1) here
            assert 0.0 < r.threshold_for("cat") < 1.0
            assert r.threshold_for("cat") == pytest.approx(r.zero_level("cat"))
        assert r.isolate("cat", 0.0).sum() == r.ink.sum()  # everything passes 0
        assert r.threshold_for("dog", 0.3) == 0.3
    with pytest.raises(KeyError, match="not one of the labels"):
        r.isolate("giraffe")


def test_raster_only_sketches_get_a_label_per_ink_component(labeller: SceneLabeller) -> None:
    sketch, _ = quadrant_sketch()
    hw = (200, 300)
    ink = 255 - rasterize(sketch, hw, frame=canvas_frame(sketch, hw), line_width=None)
    raster = Sketch(raster=ink, width=300, height=200)
    r = labeller.label(raster, LABELS)
    assert r.pixels.from_components
    # The line crosses the top-left ring: four components, c1 … c4.
    assert r.stroke_ids == ("c1", "c2", "c3", "c4")
    for cid, flat in zip(r.stroke_ids, r.pixels.pixels, strict=True):
        assert r.label_of(cid) == quadrant_of_pixels(flat, 300, raster)
    # Components partition the ink and every ink pixel is labelled.
    assert sum(p.size for p in r.pixels.pixels) == r.ink.sum() == (r.pixel_labels >= 0).sum()
    assert r.labelled_sketch(raster) is raster


def test_components_follow_connectivity() -> None:
    ink = np.zeros((20, 30), dtype=np.uint8)
    ink[2:5, 2:8] = 255  # c1
    ink[10:12, 20:22] = 200  # c2
    ink[12, 22] = 255  # touches c2 diagonally: 8-connected
    ink[15:18, 3:5] = 40  # too faint to be ink
    px = stroke_pixels(Sketch(raster=ink, width=30, height=20))
    assert px.stroke_ids == ("c1", "c2")
    assert [p.size for p in px.pixels] == [18, 5]
    assert px.owner[16, 4] == -1 and px.owner[12, 22] == 1


def test_empty_sketches_and_missing_labels_are_refused(labeller: SceneLabeller) -> None:
    sketch, _ = quadrant_sketch()
    with pytest.raises(ValueError, match="no ink"):
        labeller.label(Sketch(), ["cat"])
    with pytest.raises(ValueError, match="no labels"):
        labeller.label(sketch, [])
    with pytest.raises(ValueError, match="names nothing"):
        labeller.label_caption(sketch, "an empty page")
    r = labeller.label_caption(sketch, "Two cats and a dog under the sun.")
    assert r.labels == ("cat", "dog", "sun")


def test_one_label_takes_all_the_ink(labeller: SceneLabeller) -> None:
    sketch, _ = quadrant_sketch()
    r = labeller.label(sketch, ["tree"])
    assert set(r.stroke_label_names()) == {"tree"}
    # Its map is the plain cosine: 1/√2 in its own quadrant, 0 elsewhere.
    assert r.isolate_strokes("tree", 0.5) == ("bl",)
    assert r.zero_level("tree") == 0.0


VOCAB = Vocabulary(names=("cat", "dog", "tree", "sun", "car", "boat"))


def test_suggest_then_label_encodes_the_whole_sketch_once(labeller: SceneLabeller) -> None:
    """`label --suggest`: the whole sketch's suggestions come from the forward pass that its
    labels need (one v-v pass, remembered), its groups from the plain path."""
    sketch, _ = quadrant_sketch()
    sug = suggest_labels(labeller, sketch, vocabulary=VOCAB)
    assert len(labeller.backbone.inputs) == 1
    first = labeller.label(sketch, sug.proposed_labels())
    assert len(labeller.backbone.inputs) == 1  # the same view: not run again
    fresh = SceneLabeller(labeller.backbone).label(sketch, sug.proposed_labels())
    assert len(labeller.backbone.inputs) == 2
    np.testing.assert_array_equal(first.pixel_labels, fresh.pixel_labels)
    np.testing.assert_allclose(first.patch_scores, fresh.patch_scores, atol=1e-6)
    moved = Sketch(strokes=sketch.strokes[:-1], width=sketch.width, height=sketch.height)
    labeller.label(moved, ["cat", "dog"])
    labeller.label(moved, ["cat", "dog"])  # labelling alone remembers nothing
    assert len(labeller.backbone.inputs) == 4
    for i in range(12):  # only the last few views are kept
        two = (Stroke(ring(10, 10, 5), id="a"), Stroke(ring(30 + 7 * i, 10, 5), id="b"))
        labeller.view_embedding(Sketch(strokes=two))
    assert len(labeller.backbone.inputs) == 4 + 12
    assert len(labeller._views) == VIEW_MEMO


def test_suggestions_for_the_whole_sketch_and_each_group(labeller: SceneLabeller) -> None:
    strokes = (
        Stroke(ring(20, 20, 12), id="a"),
        Stroke(ring(22, 22, 4), id="b"),
        Stroke(ring(90, 90, 4), id="c"),
    )
    sketch = Sketch(strokes=strokes, width=120, height=120)
    sug = suggest_labels(labeller, sketch, vocabulary=VOCAB, top_k=3)
    assert sug.whole[0].label == "cat"  # most ink is top-left
    assert [g.stroke_ids for g in sug.groups] == [("a", "b"), ("c",)]
    assert [g.suggestions[0].label for g in sug.groups] == ["cat", "sun"]
    assert len(sug.groups[0].suggestions) == 3
    assert sug.groups[1].suggestions[0].probability > 0.9
    assert sug.proposed_labels() == ("cat", "sun")
    # The same drawing as a bitmap: groups of ink components.
    ink = 255 - rasterize(
        sketch, (120, 120), frame=canvas_frame(sketch, (120, 120)), line_width=None
    )
    raster = Sketch(raster=ink, width=120, height=120)
    rsug = suggest_labels(labeller, raster, vocabulary=VOCAB)
    assert [len(g.stroke_ids) for g in rsug.groups] == [2, 1]
    assert rsug.proposed_labels() == ("cat", "sun")
