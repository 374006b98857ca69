"""The vocabulary's text embeddings are computed once per model and kept on disk: a second
``label --suggest`` (or a second labeller) runs the text encoder zero times."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scene_planted import quadrant_sketch

from sketchpad.cli import main
from sketchpad.sketch.io import write_sketch
from sketchpad.vision import features, text_cache
from sketchpad.vision import weights as W
from sketchpad.vision.backbone import Backbone, create_backbone
from sketchpad.vision.features import SKETCH_TEMPLATES, embed_texts
from sketchpad.vision.registry import build_model, get_spec
from sketchpad.vision.scene import SceneLabeller
from sketchpad.vision.scene_suggest import suggest_labels
from sketchpad.vision.scene_vocab import Vocabulary

TINY = "test-clip-tiny"
VOCAB = Vocabulary(names=("cat", "dog", "tree", "sun", "house", "car", "boat"))


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "home"


@pytest.fixture
def text_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many prompts each call of the text encoder got."""
    calls: list[int] = []
    real = Backbone.encode_text

    def counting(self: Backbone, texts: list[str]) -> object:
        calls.append(len(texts))
        return real(self, texts)

    monkeypatch.setattr(Backbone, "encode_text", counting)
    return calls


def labeller(seed: int = 0) -> SceneLabeller:
    return SceneLabeller(create_backbone(TINY, device="cpu", pretrained=False, seed=seed))


def cached_files(home: Path) -> list[Path]:
    folder = home / "cache" / text_cache.FOLDER
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_computed_once_per_model_then_read_from_disk(home: Path, text_calls: list[int]) -> None:
    sketch, _ = quadrant_sketch()
    first = suggest_labels(labeller(), sketch, vocabulary=VOCAB)
    assert sum(text_calls) == (len(VOCAB) + 1) * len(SKETCH_TEMPLATES)
    [file] = cached_files(home)
    assert file.stat().st_mode & 0o777 == 0o600
    assert file.parent.stat().st_mode & 0o777 == 0o700

    text_calls.clear()
    again = labeller()  # a new process would start here: nothing in memory
    assert suggest_labels(again, sketch, vocabulary=VOCAB) == first
    assert text_calls == []
    again.label(sketch, first.proposed_labels())  # vocabulary names: already embedded
    assert text_calls == []

    suggest_labels(labeller(seed=1), sketch, vocabulary=VOCAB)  # other weights: computed
    assert text_calls and len(cached_files(home)) == 2
    text_calls.clear()
    other = Vocabulary(names=(*VOCAB.names, "moon"))
    suggest_labels(labeller(), sketch, vocabulary=other)  # another vocabulary: computed
    assert text_calls and len(cached_files(home)) == 3


def test_the_key_names_templates_and_labels() -> None:
    backbone = create_backbone(TINY, device="cpu", pretrained=False)
    key = text_cache.cache_key(backbone, ["a", "b"], SKETCH_TEMPLATES, True)
    assert key != text_cache.cache_key(backbone, ["a", "b"], SKETCH_TEMPLATES[:-1], True)
    assert key != text_cache.cache_key(backbone, ["a", "b"], SKETCH_TEMPLATES, False)
    assert key != text_cache.cache_key(backbone, ["a", "c"], SKETCH_TEMPLATES, True)
    assert key != text_cache.cache_key(backbone, ["b", "a"], SKETCH_TEMPLATES, True)
    other = create_backbone(TINY, device="cpu", pretrained=False, seed=3)
    assert key != text_cache.cache_key(other, ["a", "b"], SKETCH_TEMPLATES, True)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"\x93NUMPY garbage"),
        lambda p: p.write_bytes(p.read_bytes()[:100]),
        lambda p: np.save(p, np.zeros((2, 2), dtype=np.float32)),
        lambda p: np.save(p, np.full((len(VOCAB), 32), np.nan, dtype=np.float32)),
        lambda p: np.save(p, np.array([{"x": 1}], dtype=object), allow_pickle=True),
    ],
)
def test_a_damaged_cache_is_recomputed(home: Path, text_calls: list[int], damage: object) -> None:
    backbone = create_backbone(TINY, device="cpu", pretrained=False)
    good = text_cache.cached_text_embeddings(backbone, VOCAB.names, SKETCH_TEMPLATES)
    [file] = cached_files(home)
    damage(file)  # type: ignore[operator]
    text_calls.clear()
    got = text_cache.cached_text_embeddings(backbone, VOCAB.names, SKETCH_TEMPLATES)
    assert text_calls, "a damaged cache was used"
    np.testing.assert_array_equal(got, good)
    text_calls.clear()
    text_cache.cached_text_embeddings(backbone, VOCAB.names, SKETCH_TEMPLATES)
    assert text_calls == []  # rewritten


def test_a_cache_that_cannot_be_written_costs_only_time(home: Path, text_calls: list[int]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    backbone = create_backbone(TINY, device="cpu", pretrained=False)
    (home / "cache" / text_cache.FOLDER).mkdir(parents=True)
    (home / "cache" / text_cache.FOLDER).chmod(0o500)
    got = text_cache.cached_text_embeddings(backbone, VOCAB.names, SKETCH_TEMPLATES)
    assert got.shape == (len(VOCAB), backbone.embed_dim)


def test_a_cache_path_that_is_a_folder_costs_only_time(home: Path, text_calls: list[int]) -> None:
    backbone = create_backbone(TINY, device="cpu", pretrained=False)
    key = text_cache.cache_key(backbone, list(VOCAB.names), SKETCH_TEMPLATES, True)
    text_cache.cache_path(key).mkdir(parents=True)  # unreadable and unwritable as a file
    got = text_cache.cached_text_embeddings(backbone, VOCAB.names, SKETCH_TEMPLATES)
    np.testing.assert_array_equal(got, embed_texts(backbone, VOCAB.names, SKETCH_TEMPLATES))


def test_text_is_encoded_in_batches_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    backbone = create_backbone(TINY, device="cpu", pretrained=False)
    whole = embed_texts(backbone, VOCAB.names, SKETCH_TEMPLATES)
    calls: list[int] = []
    real = backbone.encode_text
    monkeypatch.setattr(features, "TEXT_BATCH", 5)
    monkeypatch.setattr(backbone, "encode_text", lambda t: calls.append(len(t)) or real(t))
    batched = embed_texts(backbone, VOCAB.names, SKETCH_TEMPLATES)
    assert max(calls) == 5 and sum(calls) == (len(VOCAB) + 1) * len(SKETCH_TEMPLATES)
    np.testing.assert_allclose(batched, whole, atol=1e-5)


def test_label_suggest_twice_runs_the_text_encoder_once(
    tmp_path: Path, text_calls: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    sketch, _ = quadrant_sketch()
    write_sketch(sketch, tmp_path / "scene.json")
    argv = ["label", "--sketch", str(tmp_path / "scene.json"), "--backbone", TINY]
    argv += ["--device", "cpu", "--random-weights", "--suggest"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert text_calls
    text_calls.clear()
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert text_calls == []
    a = (tmp_path / "a" / "labelled.json").read_text()
    b = (tmp_path / "b" / "labelled.json").read_text()
    assert a.replace(str(tmp_path / "a"), "") == b.replace(str(tmp_path / "b"), "")
    capsys.readouterr()


def test_a_second_suggest_with_imported_weights_neither_hashes_nor_encodes_text(
    tmp_path: Path,
    text_calls: list[int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As a user runs it: weights imported with ``sketchpad models import``, then ``label
    --suggest`` twice. The second run reads the weights' SHA-256 from the memo (the file is
    not hashed again) and the vocabulary's embeddings from the disk cache (the text tower is
    not run); a changed weights file is hashed again and gets its own text cache."""
    import safetensors.torch
    import torch

    def save(path: Path, seed: int) -> None:
        torch.manual_seed(seed)
        model = build_model(get_spec(TINY))
        state = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
        safetensors.torch.save_file(state, str(path))

    hashed: list[Path] = []
    remember = W._remember_sha256
    monkeypatch.setattr(
        W, "_remember_sha256", lambda p, st, d: hashed.append(p) or remember(p, st, d)
    )
    save(tmp_path / "mine.safetensors", seed=0)
    assert main(["models", "import", TINY, str(tmp_path / "mine.safetensors")]) == 0
    sketch, _ = quadrant_sketch()
    write_sketch(sketch, tmp_path / "scene.json")
    argv = ["label", "--sketch", str(tmp_path / "scene.json"), "--backbone", TINY]
    argv += ["--device", "cpu", "--suggest"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert text_calls
    hashed.clear()
    text_calls.clear()
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert hashed == [] and text_calls == []

    imported = W.imported_dir(get_spec(TINY)) / "mine.safetensors"
    save(imported, seed=1)  # the imported file changes under us
    assert main([*argv, "--out", str(tmp_path / "c")]) == 0
    assert hashed == [imported.resolve()] and text_calls
    assert len(cached_files(tmp_path / "home")) == 2
    capsys.readouterr()
