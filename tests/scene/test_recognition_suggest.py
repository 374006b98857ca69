"""Sketch recognition feeds the label suggestions (issue 20 item 5): with a trained recognition
head (written by the real trainer and saver, ``sketchpad train fusion --task recognition``) the
suggestions for the whole sketch and each stroke group are the head's classes and
probabilities (as :func:`recognise` gives them); without one they are the zero-shot path's; a
head that cannot be used is named in the message and the suggestions stay zero-shot. Library
and ``sketchpad label --suggest --recognition-head`` (the one function both use)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from scene.recognition_head import CLASSES, trained_head
from scene.scene_planted import SceneBackbone, quadrant_sketch

from sketchpad.cli import main
from sketchpad.sketch.io import read_sketch, write_sketch
from sketchpad.vision.fusion.recognise import load_recogniser, recognise, try_load_recogniser
from sketchpad.vision.scene import SceneLabeller
from sketchpad.vision.scene_suggest import ZERO_SHOT, suggest_labels
from sketchpad.vision.scene_vocab import Vocabulary

VOCAB = Vocabulary(names=("cat", "dog", "tree", "sun", "car", "boat"))


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def head_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recognition head of test-sketchfusion-tiny written by FusionTrainer's own saver."""
    return trained_head(str(tmp_path_factory.mktemp("head")))


def copy_head(head: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy(head.with_suffix(suffix), folder / f"head{suffix}")
    return folder / "head.safetensors"


def test_a_head_names_the_sketch_and_each_group_with_its_classes(head_file: Path) -> None:
    sketch, _ = quadrant_sketch()
    labeller = SceneLabeller(SceneBackbone())
    rec = load_recogniser(head_file, device="cpu", pretrained=False)
    assert rec.head.classes == CLASSES
    sug = suggest_labels(labeller, sketch, vocabulary=VOCAB, top_k=2, recogniser=rec)
    zero = suggest_labels(labeller, sketch, vocabulary=VOCAB, top_k=2)
    assert sug.source == str(head_file) and zero.source == ZERO_SHOT
    assert [g.stroke_ids for g in sug.groups] == [g.stroke_ids for g in zero.groups]
    parts = [sketch.subset(g.stroke_ids) for g in sug.groups]
    direct = recognise(rec.backbone, rec.head, [sketch, *parts], top_k=2)
    assert sug.whole == direct[0]
    assert tuple(g.suggestions for g in sug.groups) == tuple(direct[1:])
    every = [s for top in (sug.whole, *(g.suggestions for g in sug.groups)) for s in top]
    assert {s.label for s in every} <= set(CLASSES) and len(sug.whole) == 2
    assert set(sug.proposed_labels()) <= set(CLASSES)
    assert not {s.label for s in every} & set(VOCAB.names)
    # without a head: the zero-shot path, unchanged
    assert {s.label for s in zero.whole} <= set(VOCAB.names)


def test_a_head_that_cannot_be_used_is_named_and_zero_shot_goes_on(
    head_file: Path, tmp_path: Path
) -> None:
    no_json = tmp_path / "lonely.safetensors"
    shutil.copy(head_file, no_json)
    other_task = copy_head(head_file, tmp_path / "seg")
    meta = json.loads(other_task.with_suffix(".json").read_text())
    other_task.with_suffix(".json").write_text(json.dumps({**meta, "task": "segmentation"}))
    broken = copy_head(head_file, tmp_path / "broken")
    broken.write_bytes(broken.read_bytes()[:100])
    for path, reason in (
        (tmp_path / "missing.safetensors", "does not exist"),
        (no_json, "is not a SketchFusion checkpoint"),
        (other_task, "not a recognition one"),
        (broken, "safetensors"),
    ):
        rec, why = try_load_recogniser(path, device="cpu", pretrained=False)
        assert rec is None and why is not None
        assert str(path) in why and reason in why and "suggesting zero-shot" in why, why


# -- the CLI ------------------------------------------------------------------------------------
TINY = ["--backbone", "test-clip-tiny", "--device", "cpu", "--random-weights"]


def label_suggest(tmp_path: Path, out: Path, *extra: str) -> int:
    return main(["label", "--sketch", str(tmp_path / "scene.json"), "--out", str(out), *TINY,
                 "--suggest", "--top-k", "2", *extra])  # fmt: skip


def suggestions(out: Path) -> dict[str, object]:
    meta = read_sketch(out / "labelled.json").metadata["scene_labels"]
    return dict(meta["suggestions"])


def test_label_suggest_with_a_recognition_head(
    head_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sketch, _ = quadrant_sketch()
    write_sketch(sketch, tmp_path / "scene.json")
    assert label_suggest(tmp_path, tmp_path / "zero") == 0
    zero = suggestions(tmp_path / "zero")
    assert zero["source"] == ZERO_SHOT
    assert label_suggest(tmp_path, tmp_path / "head", "--recognition-head", str(head_file)) == 0
    cap = capsys.readouterr()
    assert f"suggested by {head_file}:" in cap.out
    got = suggestions(tmp_path / "head")
    assert got["source"] == str(head_file)
    rec = load_recogniser(head_file, device="cpu", pretrained=False)
    back = read_sketch(tmp_path / "scene.json")  # as the CLI read it
    (whole,) = rec.suggest([back], top_k=2)
    assert got["whole"] == [[s.label, round(s.probability, 6)] for s in whole]
    labels = read_sketch(tmp_path / "head" / "labelled.json").metadata["scene_labels"]["labels"]
    assert set(labels) <= set(CLASSES)
    # a bad head: a warning naming it, then zero-shot as without one
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert label_suggest(tmp_path, tmp_path / "bad", "--recognition-head", str(bad)) == 0
    cap = capsys.readouterr()
    assert str(bad) in cap.err and "suggesting zero-shot" in cap.err
    assert suggestions(tmp_path / "bad") == zero


def test_recognition_head_needs_suggest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sketch, _ = quadrant_sketch()
    write_sketch(sketch, tmp_path / "scene.json")
    rc = main(["label", "--sketch", str(tmp_path / "scene.json"), "--out", str(tmp_path / "o"),
               *TINY, "--labels", "a,b", "--recognition-head", "x.safetensors"])  # fmt: skip
    assert rc == 1 and "give --suggest too" in capsys.readouterr().err
