"""A training checkpoint used for segmentation: read by `sketchpad.vision.checkpoints`, loaded by
`sketchpad segment --checkpoint`, imported (JSON and all) into the app, and picked up by the
engine's loader with 'fixed' calibration and the checkpoint's tau; the Model Manager imports
it for the backbone it was trained on.

Checkpoints are written by the trainers' own `save_checkpoint` from the tiny random CLIP.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sketchpad.cli import main
from sketchpad.sketch.io import write_sketch
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.train.checkpoint import CheckpointPaths, save_checkpoint
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.checkpoints import (
    checkpoint_backbone,
    read_segmenter_checkpoint,
    segmenter_options,
)
from sketchpad.vision.errors import WeightsError
from sketchpad.vision.registry import get_spec
from sketchpad.vision.segmenter import Segmenter
from sketchpad.vision.weights import import_weights, imported_dir

TINY = "test-clip-tiny"
TAU = 0.07


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our folders and the HF cache under tmp, offline."""
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("SKETCHPAD_DEVICE", raising=False)


def tiny_state(backbone_id: str = TINY, seed: int = 0) -> dict[str, torch.Tensor]:
    model = create_backbone(backbone_id, pretrained=False, device="cpu", seed=seed).model
    return model.state_dict()


def make_checkpoint(base: Path, **meta: Any) -> CheckpointPaths:
    metadata = {
        "kind": "segmenter",
        "backbone": TINY,
        "sketchpad_fine_tuned": True,
        "calibration": "fixed",
        "tau": TAU,
        "step": 12,
        **meta,
    }
    return save_checkpoint(base, tiny_state(metadata["backbone"]), metadata, resume_state={})


@pytest.fixture
def ckpt(tmp_path: Path) -> CheckpointPaths:
    return make_checkpoint(tmp_path / "run" / "seg")


# -- reading ---------------------------------------------------------------------------------
def test_any_of_the_three_files_or_the_base_names_the_checkpoint(ckpt: CheckpointPaths) -> None:
    base = ckpt.weights.with_suffix("")
    found = [read_segmenter_checkpoint(p) for p in (base, ckpt.weights, ckpt.metadata, ckpt.state)]
    assert {(c.weights, c.backbone_id, c.tau, c.step) for c in found} == {
        (ckpt.weights, TINY, TAU, 12)
    }
    assert found[0].segmenter_kwargs() == {"calibration": "fixed", "tau": TAU}
    assert checkpoint_backbone(ckpt.weights) == TINY == checkpoint_backbone(ckpt.state)


def test_input_size_and_patch_path_travel(tmp_path: Path) -> None:
    paths = make_checkpoint(tmp_path / "c", input_size=96, patch_path="plain")
    kwargs = read_segmenter_checkpoint(paths.weights).segmenter_kwargs()
    assert kwargs == {"calibration": "fixed", "tau": TAU, "input_size": 96, "patch_path": "plain"}
    assert segmenter_options(paths.weights) == kwargs


def test_the_checkpoint_builds_a_fine_tuned_fixed_segmenter(ckpt: CheckpointPaths) -> None:
    c = read_segmenter_checkpoint(ckpt.metadata)
    backbone = create_backbone(c.backbone_id, weights=c.weights, device="cpu")
    assert backbone.weights.fine_tuned and backbone.weights.source == "given"
    seg = Segmenter(backbone, **c.segmenter_kwargs())
    assert (seg.calibration, seg.tau) == ("fixed", TAU)
    ref = tiny_state()
    got = backbone.model.state_dict()
    assert all(torch.equal(ref[k], got[k].cpu()) for k in ref)


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({"kind": "sbir"}, ["'sbir' checkpoint", "SBIR critic", "not a segmenter checkpoint"]),
        ({"kind": "scene"}, ["'scene' checkpoint", "scene-labelling", "not a segmenter"]),
        ({"backbone": "clip-vit-h14-from-the-future"}, ["clip-vit-h14-from-the-future", "known:"]),
        ({"tau": -1}, ["invalid 'tau'"]),
    ],
)
def test_what_is_not_a_usable_segmenter_checkpoint_is_named(
    tmp_path: Path, meta: dict[str, Any], words: list[str]
) -> None:
    paths = make_checkpoint(tmp_path / "c")
    doc = json.loads(paths.metadata.read_text())
    paths.metadata.write_text(json.dumps({**doc, **meta}))
    with pytest.raises(WeightsError) as e:
        read_segmenter_checkpoint(paths.weights)
    assert all(w in str(e.value) for w in words), str(e.value)
    assert str(paths.metadata) in str(e.value)


def test_missing_and_foreign_files_are_named(tmp_path: Path, ckpt: CheckpointPaths) -> None:
    with pytest.raises(WeightsError, match="no such checkpoint metadata file"):
        read_segmenter_checkpoint(tmp_path / "nothing" / "here")
    ckpt.weights.unlink()
    with pytest.raises(WeightsError, match="no such checkpoint weights file"):
        read_segmenter_checkpoint(ckpt.metadata)
    foreign = tmp_path / "other.json"
    foreign.write_text('{"hello": 1}')
    with pytest.raises(WeightsError, match="not Sketchpad checkpoint metadata"):
        read_segmenter_checkpoint(foreign)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(WeightsError, match="unreadable checkpoint metadata"):
        read_segmenter_checkpoint(tmp_path / "bad.safetensors")
    assert segmenter_options(tmp_path / "bad.safetensors") == {}
    assert segmenter_options(None) == {}


# -- sketchpad segment --checkpoint ----------------------------------------------------------
@pytest.fixture
def segment_inputs(tmp_path: Path) -> tuple[Path, Path]:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photos / name)
    t = np.linspace(0, 2 * np.pi, 30)
    ring = np.stack([50 + 30 * np.cos(t), 50 + 30 * np.sin(t)], axis=1)
    write_sketch(Sketch(strokes=(Stroke(ring),), width=100, height=100), tmp_path / "s.json")
    return tmp_path / "s.json", photos


def segment(sketch: Path, photos: Path, out: Path, *extra: str) -> int:
    return main(["segment", "--sketch", str(sketch), "--photos", str(photos), "--out", str(out),
                 "--no-cache", *extra])  # fmt: skip


def test_segment_with_a_checkpoint(
    tmp_path: Path, ckpt: CheckpointPaths, segment_inputs: tuple[Path, Path]
) -> None:
    out = tmp_path / "out"
    assert segment(*segment_inputs, out, "--checkpoint", str(ckpt.weights.with_suffix(""))) == 0
    opts = json.loads((out / "results.json").read_text())["options"]
    assert (opts["backbone"], opts["calibration"], opts["tau"]) == (TINY, "fixed", TAU)
    assert opts["weights"] == str(ckpt.weights)
    assert opts["checkpoint"] == str(ckpt.weights.with_suffix(""))
    # The options still win over the checkpoint's calibration.
    out2 = tmp_path / "out2"
    argv = ["--checkpoint", str(ckpt.metadata), "--calibration", "gallery-relative"]
    assert segment(*segment_inputs, out2, *argv) == 0
    opts = json.loads((out2 / "results.json").read_text())["options"]
    assert (opts["calibration"], opts["tau"]) == ("gallery-relative", None)


def test_segment_checkpoint_errors_are_clear(
    tmp_path: Path,
    ckpt: CheckpointPaths,
    segment_inputs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    sbir = make_checkpoint(tmp_path / "critic" / "sbir", kind="sbir")
    cases = [
        (["--checkpoint", str(sbir.weights)], "not a segmenter checkpoint"),
        (["--checkpoint", str(ckpt.weights), "--weights", str(ckpt.weights)], "not both"),
        (["--checkpoint", str(ckpt.weights), "--backbone", "test-dinov2-tiny"], "leave --backbone"),
        (["--checkpoint", str(tmp_path / "nope")], "no such checkpoint metadata file"),
    ]
    for extra, words in cases:
        assert segment(*segment_inputs, out, *extra) == 1
        err = capsys.readouterr().err
        assert "sketchpad segment: error:" in err and words in err, err
    assert not out.exists()


# -- the app: import, engine, Model Manager --------------------------------------------------
def test_importing_a_checkpoint_keeps_its_json_and_the_app_loads_it_fixed(
    ckpt: CheckpointPaths, qtbot: Any
) -> None:
    from sketchpad.engine.client import Engine
    from sketchpad.engine.worker import default_loader
    from sketchpad.search.model import ModelChoice

    spec = get_spec(TINY)
    got = import_weights(spec, ckpt.metadata)  # any of its files: the weights are imported
    assert got.path == imported_dir(spec) / "seg.safetensors"
    assert got.path.read_bytes() == ckpt.weights.read_bytes()
    assert json.loads(got.path.with_suffix(".json").read_text())["tau"] == TAU

    built: list[Segmenter] = []

    def loader(choice: ModelChoice, progress: Any) -> Segmenter:
        built.append(default_loader(choice, progress))
        return built[-1]

    engine = Engine(loader=loader)
    try:
        with qtbot.waitSignal(engine.modelLoaded, timeout=60_000) as loaded:
            engine.load_model(TINY, device="cpu", offline=True)
    finally:
        assert engine.shutdown(10.0), "the inference thread did not stop"
    info = loaded.args[0]
    assert (info.backbone_id, info.weights_source) == (TINY, "imported")
    seg = built[0]
    assert seg.backbone.weights.fine_tuned and seg.backbone.weights.path == got.path
    assert (seg.calibration, seg.tau) == ("fixed", TAU)
    # The request's own calibration still wins.
    choice = ModelChoice(TINY, device="cpu", offline=True, calibration="gallery-relative")
    assert default_loader(choice, lambda *_: None).calibration == "gallery-relative"


def test_plain_weights_load_as_before(tmp_path: Path) -> None:
    import safetensors.torch

    from sketchpad.engine.worker import default_loader
    from sketchpad.search.model import ModelChoice

    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in tiny_state().items()}, plain)
    seg = default_loader(ModelChoice(TINY, weights=plain, device="cpu"), lambda *_: None)
    assert not seg.backbone.weights.fine_tuned
    assert (seg.calibration, seg.tau) == ("gallery-relative", 0.05)


def test_import_refuses_checkpoints_of_another_backbone_or_kind(
    tmp_path: Path, ckpt: CheckpointPaths
) -> None:
    with pytest.raises(WeightsError, match=f"segmenter checkpoint of {TINY}, not of test-dino"):
        import_weights(get_spec("test-dinov2-tiny"), ckpt.weights)
    sbir = make_checkpoint(tmp_path / "critic" / "sbir", kind="sbir")
    with pytest.raises(WeightsError, match="'sbir' checkpoint"):
        import_weights(get_spec(TINY), sbir.weights)
    assert not imported_dir(get_spec(TINY)).exists()
    assert not imported_dir(get_spec("test-dinov2-tiny")).exists()


def test_the_model_manager_imports_a_checkpoint_for_its_own_backbone(
    ckpt: CheckpointPaths, qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sketchpad.engine import threads
    from sketchpad.ui.models import manager as model_manager
    from sketchpad.workspace.preferences import Preferences

    monkeypatch.setattr(model_manager, "probe_cuda", lambda: (False, "no GPU in this test"))
    errors: list[tuple[str, str]] = []

    class Dialog(model_manager.ModelManagerDialog):
        def _show_error(self, title: str, text: str) -> None:
            errors.append((title, text))

    prefs = Preferences(path=tmp_path / "prefs.json")
    dialog = Dialog(include_testing=True, preferences=prefs)
    qtbot.addWidget(dialog)
    try:
        assert dialog.wait_until_idle(10)
        assert dialog.select_backbone("test-dinov2-tiny")  # the wrong row is selected
        with qtbot.waitSignal(dialog.weightsChanged, timeout=30_000) as changed:
            dialog.import_from(dialog.selected_id() or "", ckpt.weights)
            assert "segmenter checkpoint seg.safetensors" in dialog.status_label.text()
        assert changed.args == [TINY]
        assert dialog.selected_id() == TINY
        target = imported_dir(get_spec(TINY)) / "seg.safetensors"
        assert target.is_file() and target.with_suffix(".json").is_file()
        assert not imported_dir(get_spec("test-dinov2-tiny")).exists()
        assert not errors
        qtbot.waitUntil(lambda: dialog.row_texts(TINY)["Status"] == "Imported", timeout=10_000)
    finally:
        assert dialog.shutdown(10)
    assert threads.live_count() == 0, "a weights thread leaked"
