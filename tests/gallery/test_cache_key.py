"""The feature-cache key: everything that changes a photo's features is in it, so a model
change never serves stale features (DESIGN §5, STYLE habit 5).

Each of backbone, weights SHA-256, input size, patch path (v-v or plain) and preprocessing
(mean/std) changes the key, its digest and the cache file; and indexing under a changed key
encodes every photo again instead of reading the other model's rows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketchpad.gallery.cache import FeatureCache, cache_path
from sketchpad.gallery.index import index_folder, model_key
from sketchpad.vision.backbone import Backbone, create_backbone
from sketchpad.vision.segmenter import Segmenter


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def clip() -> Backbone:
    return create_backbone("test-clip-tiny", pretrained=False, device="cpu", seed=0)


def variants(clip: Backbone) -> dict[str, Segmenter]:
    other_weights = create_backbone("test-clip-tiny", pretrained=False, device="cpu", seed=1)
    recoloured = Backbone(
        dataclasses.replace(clip.spec, mean=(0.5, 0.5, 0.5)), clip.model, clip.weights, clip.device
    )
    return {
        "base": Segmenter(clip),
        "backbone": Segmenter(create_backbone("test-dinov2-tiny", pretrained=False, device="cpu")),
        "weights": Segmenter(other_weights),
        "input size": Segmenter(clip, input_size=96),
        "patch path": Segmenter(clip, patch_path="plain"),
        "preprocessing": Segmenter(recoloured),
    }


def test_every_ingredient_changes_the_key_its_digest_and_the_file(
    clip: Backbone, tmp_path: Path
) -> None:
    keys = {name: model_key(seg) for name, seg in variants(clip).items()}
    assert keys["weights"].weights_sha256 != keys["base"].weights_sha256
    for field, values in {
        "key": list(keys.values()),
        "digest": [k.digest() for k in keys.values()],
        "file": [cache_path(tmp_path, k) for k in keys.values()],
    }.items():
        assert len(set(values)) == len(keys), f"two models share a cache {field}"
    # The same model twice: the same key (features are reused across runs).
    assert model_key(Segmenter(clip)) == keys["base"]
    assert model_key(Segmenter(clip, calibration="fixed")) == keys["base"]  # not a feature


def test_indexing_under_a_changed_key_never_reads_the_other_models_rows(
    clip: Backbone, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(
            folder / f"p{i}.png"
        )
    segs = variants(clip)
    base = index_folder(folder, segs["base"])
    assert base.indexed == 3
    for name, seg in segs.items():
        if name == "base":
            continue
        summary = index_folder(folder, seg)
        assert (summary.indexed, summary.up_to_date) == (3, 0), name
    again = index_folder(folder, segs["base"])  # the first model's rows are still there
    assert (again.indexed, again.up_to_date) == (0, 3)
    with FeatureCache.open(folder, model_key(segs["weights"]), writer=False) as other:
        with FeatureCache.open(folder, model_key(segs["base"]), writer=False) as mine:
            (_, a), (_, b) = (
                next(iter(mine.patch_rows(["p0.png"]))),
                next(iter(other.patch_rows(["p0.png"]))),
            )
            assert a is not None and b is not None and not np.array_equal(a, b)
