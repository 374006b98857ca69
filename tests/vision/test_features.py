"""Preprocessing and feature extraction on the tiny registered models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sketchpad.search.core import encode_query
from sketchpad.search.masks import photo_mask
from sketchpad.search.scoring import score_query
from sketchpad.search.spec import QuerySpec
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.sketch.parts import lasso_part, sector_part
from sketchpad.vision.backbone import Backbone, choose_device, create_backbone
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.features import (
    PHOTO_TEMPLATES,
    embed_photos,
    embed_sketches,
    embed_texts,
    sketch_input,
)
from sketchpad.vision.letterbox import fit_letterbox, letterbox_image
from sketchpad.vision.segmenter import Segmenter


@pytest.fixture(scope="module")
def clip() -> Backbone:
    return create_backbone("test-clip-tiny", pretrained=False, device="cpu")


@pytest.fixture(scope="module")
def dino() -> Backbone:
    return create_backbone("test-dinov2-tiny", pretrained=False, device="cpu")


def two_part_sketch() -> Sketch:
    left = Stroke(np.array([[10.0, 10.0], [40.0, 90.0]]))
    right = Stroke(np.array([[60.0, 10.0], [90.0, 90.0]]))
    return Sketch(strokes=(left, right), width=100, height=100)


@pytest.mark.parametrize(
    ("hw", "size", "box"),
    [
        ((100, 200), 64, (0, 16, 64, 48)),
        ((200, 100), 64, (16, 0, 48, 64)),
        ((50, 50), 64, (0, 0, 64, 64)),
        ((3, 1000), 224, (0, 111, 224, 112)),  # a sliver keeps at least one pixel
    ],
)
def test_letterbox_keeps_the_whole_photo_centred(
    hw: tuple[int, int], size: int, box: tuple[int, int, int, int]
) -> None:
    lb = fit_letterbox(hw, size)
    assert lb.content_xyxy == box
    im = np.zeros((*hw, 3), dtype=np.uint8)
    out, lb2 = letterbox_image(im, size, (1, 2, 3))
    assert lb2 == lb and out.shape == (size, size, 3)
    x0, y0, x1, y1 = box
    assert (out[y0:y1, x0:x1] == 0).all()
    pad = np.ones((size, size), dtype=bool)
    pad[y0:y1, x0:x1] = False
    assert (out[pad] == (1, 2, 3)).all()


def test_valid_patches_follow_the_content() -> None:
    lb = fit_letterbox((100, 200), 64)  # content rows 16..48 of 64
    v = lb.valid_patches(16)
    assert v[:, 0].tolist() == [False, True, True, False] and v.all(axis=1)[1:3].all()
    assert fit_letterbox((100, 190), 64).valid_patches(16)[0].sum() == 4  # partial patch row


def test_device_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_device("cpu").type == "cpu"
    monkeypatch.setenv("SKETCHPAD_DEVICE", "cpu")
    assert choose_device().type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        choose_device("tpu-9000")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            choose_device("cuda")


@pytest.mark.parametrize("family", ["clip", "dino"])
def test_photo_features_are_normalised_grids(family: str, request: pytest.FixtureRequest) -> None:
    bb: Backbone = request.getfixturevalue(family)
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (37, 91, 3), dtype=np.uint8) for _ in range(3)]
    feats = embed_photos(bb, photos)
    g = bb.spec.grid
    for f, im in zip(feats, photos, strict=True):
        assert f.grid_hw == (g, g) and f.patches.shape == (g * g, bb.embed_dim)
        assert f.photo_hw == im.shape[:2]
        np.testing.assert_allclose(
            np.linalg.norm(f.patches.astype(np.float32), axis=1), 1, atol=2e-3
        )
    # A batch gives what one photo at a time gives (no cross-talk between photos).
    one = embed_photos(bb, photos[1:2])[0]
    np.testing.assert_allclose(
        one.patches.astype(np.float32), feats[1].patches.astype(np.float32), atol=2e-3
    )
    # A larger input gives a finer grid.
    big = embed_photos(bb, photos[:1], input_size=2 * bb.spec.input_size)[0]
    assert big.grid_hw == (2 * g, 2 * g)


def test_part_queries_keep_the_whole_sketch_framing(clip: Backbone) -> None:
    sketch = two_part_sketch()
    whole = sketch_input(sketch, sketch, 64)
    left = sketch_input(sketch.subset([sketch.strokes[0].id]), sketch, 64)
    alone = sketch_input(sketch.subset([sketch.strokes[0].id]), None, 64)
    ink = lambda im: im[..., 0] < 128  # noqa: E731
    assert ink(left).any() and not (ink(left) & ~ink(whole)).any()  # same place as in the whole
    assert (ink(alone) & ~ink(whole)).any()  # re-framed alone it would move and grow
    assert ink(left)[:, :32].sum() > 5 * ink(left)[:, 32:].sum()


def test_lasso_and_sector_parts() -> None:
    sketch = two_part_sketch()
    poly = np.array([[0, 0], [50, 0], [50, 100], [0, 100]], dtype=float)
    part = lasso_part(sketch, poly, "whole")
    assert [s.id for s in part.strokes] == [sketch.strokes[0].id]
    # A vertical cut line (θ = 90°) through the centroid splits left from right.
    halves = [sector_part(sketch, 2, k, np.pi / 2) for k in (0, 1)]
    xs = [np.concatenate([s.points[:, 0] for s in h.strokes]) for h in halves]
    assert {bool((x <= 50).all()) for x in xs} == {True, False}
    with pytest.raises(ValueError, match="selects no stroke"):
        lasso_part(sketch, np.array([[200, 200], [210, 200], [210, 210]], dtype=float))
    with pytest.raises(ValueError, match="does not exist"):
        sector_part(sketch, 2, 2)


def test_text_embeddings_remove_the_empty_prompt(clip: Backbone) -> None:
    a = embed_texts(clip, ["cow", "frisbee"], PHOTO_TEMPLATES)
    raw = embed_texts(clip, ["cow", "frisbee"], PHOTO_TEMPLATES, remove_empty=False)
    assert a.shape == (2, clip.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    # Subtracting the shared part makes the two labels less alike.
    assert float(a[0] @ a[1]) < float(raw[0] @ raw[1])
    empty = embed_texts(clip, [""], PHOTO_TEMPLATES, remove_empty=False)[0]
    manual = raw - empty
    manual /= np.linalg.norm(manual, axis=1, keepdims=True)
    np.testing.assert_allclose(a, manual, atol=1e-5)


def test_text_needs_a_clip_backbone(dino: Backbone) -> None:
    with pytest.raises(ValueError, match="has no text encoder"):
        Segmenter(dino).text_query("a cow")


def test_sketch_plus_text_mixes_by_alpha(clip: Backbone) -> None:
    seg = Segmenter(clip)
    sketch = two_part_sketch()
    s = seg.sketch_query(sketch).embedding
    t = seg.text_query("a cow").embedding
    for alpha in (0.0, 0.3, 1.0):
        spec = QuerySpec(sketch=sketch, text="a cow", alpha=alpha)
        (q,) = (v.embedding for v in encode_query(seg, spec))
        expect = alpha * s + (1 - alpha) * t
        np.testing.assert_allclose(q, expect / np.linalg.norm(expect), atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        QuerySpec(sketch=sketch, text="a cow", alpha=1.5)


def test_end_to_end_on_tiny_models_gives_masks_of_photo_size(
    clip: Backbone, dino: Backbone
) -> None:
    rng = np.random.default_rng(1)
    photos = [rng.integers(0, 256, hw + (3,), dtype=np.uint8) for hw in [(40, 60), (70, 30)]]
    for bb in (clip, dino):
        seg = Segmenter(bb)
        bank = FeatureBank(seg.embed_photos(photos))
        scores = score_query(seg, seg.sketch_query(two_part_sketch()), bank)
        assert scores.photo_scores.shape == (2,)
        for i, im in enumerate(photos):
            m = photo_mask([scores], bank, i, threshold=seg.threshold, photo=im, crf=True)
            assert m.mask.shape == im.shape[:2] and m.prob.dtype == np.float32
            assert 0.0 <= m.score <= 1.0


def test_sketch_embeddings_batch_like_singles(dino: Backbone) -> None:
    sketch = two_part_sketch()
    parts = [sketch.subset([s.id]) for s in sketch.strokes]
    both = embed_sketches(dino, parts, sketch)
    one = embed_sketches(dino, parts[1:], sketch)
    np.testing.assert_allclose(both[1], one[0], atol=1e-5)


def test_cpu_bf16_query_encode_matches_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    from sketchpad.vision.backbone import cpu_bf16_available, create_backbone

    monkeypatch.setenv("SKETCHPAD_CPU_BF16", "0")
    assert cpu_bf16_available() is False
    monkeypatch.delenv("SKETCHPAD_CPU_BF16")
    if not cpu_bf16_available():
        pytest.skip("this CPU has no native bfloat16 (AVX-512 BF16 / AMX)")
    torch.manual_seed(0)
    bb = create_backbone("test-clip-tiny", pretrained=False, device="cpu")
    assert bb.cpu_bf16
    x = torch.randn(2, 3, 64, 64)
    fast = bb.encode_global(x)
    bb.cpu_bf16 = False
    exact = bb.encode_global(x)
    assert fast.dtype == exact.dtype == torch.float32
    assert not torch.equal(fast, exact)  # the bf16 path really ran
    cos = torch.nn.functional.cosine_similarity(fast, exact)
    assert float(cos.min()) > 0.999
