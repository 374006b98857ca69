"""With only the second CLIP backbone installed, scene labelling works in the CLI and the window,
and the window labels with the photo-search model itself (one model loaded, not two).

Two tiny CLIPs stand in for clip-vit-b16 (preferred, no weights here) and clip-vit-b32 (its
weights imported, in the real file format), through the real registry and weights code.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch

from sketchpad.cli import main
from sketchpad.sketch.io import write_sketch
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.ui.main_window import MainWindow
from sketchpad.vision import installed, registry
from sketchpad.vision.weights import import_weights
from sketchpad.workspace.preferences import Preferences

WAIT_MS = 60_000
PREFERRED, INSTALLED = "test-clip-tiny-b16", "test-clip-tiny-b32"


@pytest.fixture
def only_the_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = registry.get_spec("test-clip-tiny")
    for backbone_id in (PREFERRED, INSTALLED):
        repo = f"sketchpad-test/{backbone_id}"
        registry.register_backbone(
            dataclasses.replace(base, id=backbone_id, hf_repo=repo), replace=True
        )
    monkeypatch.setattr(installed, "CLIP_BACKBONES", (PREFERRED, INSTALLED))
    torch.manual_seed(0)
    spec = registry.get_spec(INSTALLED)
    weights = tmp_path / "b32.safetensors"
    state = registry.build_model(spec).state_dict()
    safetensors.torch.save_file({k: v.contiguous().clone() for k, v in state.items()}, weights)
    import_weights(spec, weights)
    assert installed.first_installed(installed.CLIP_BACKBONES) == INSTALLED
    yield
    for backbone_id in (PREFERRED, INSTALLED):
        registry._REGISTRY.pop(backbone_id, None)


def scene() -> Sketch:
    t = np.linspace(0, 2 * np.pi, 20)
    return Sketch(
        strokes=(
            Stroke(np.stack([30 + 10 * np.cos(t), 30 + 10 * np.sin(t)], 1), id="sun"),
            Stroke(np.array([[10.0, 80.0], [90.0, 80.0], [50.0, 50.0]]), id="house"),
        ),
        width=100,
        height=100,
    )


def test_label_on_the_command_line_uses_the_installed_clip(
    only_the_second: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_sketch(scene(), tmp_path / "scene.json")
    out = tmp_path / "labels"
    argv = ["label", "--sketch", str(tmp_path / "scene.json"), "--labels", "sun,house"]
    assert main([*argv, "--out", str(out), "--device", "cpu"]) == 0, capsys.readouterr().err
    meta = json.loads((out / "labelled.json").read_text(encoding="utf-8"))
    assert meta["metadata"]["scene_labels"]["backbone"] == INSTALLED


def test_the_window_labels_with_the_search_model_itself(
    only_the_second: None, tmp_path: Path, qtbot: Any
) -> None:
    prefs = Preferences.load(tmp_path / "prefs.json")
    prefs.backbone = PREFERRED  # what the user last chose; it has no weights here
    prefs.device = "cpu"
    window = MainWindow(
        autosave_dir=tmp_path / "autosave",
        photo_backbones=([PREFERRED, INSTALLED], []),
        preferences=prefs,
    )
    qtbot.addWidget(window)
    window.show()
    try:
        window.photos.start()
        qtbot.waitUntil(lambda: window.photos.model is not None, timeout=WAIT_MS)
        assert window.photos.model.backbone_id == INSTALLED
        window.document.reset(scene(), None)
        window.scene.add_labels(["sun", "house"])
        assert window.scene.label_now() is not None
        qtbot.waitUntil(lambda: not window.scene.is_busy, timeout=WAIT_MS)
        result = window.scene.result
        assert result is not None and result.backbone_id == INSTALLED
        assert {s.label for s in window.document.sketch.strokes} <= {"sun", "house"}
        worker = window.photos.engine.worker
        assert worker._labeller is not None
        assert worker._labeller[1].backbone is worker._segmenter.backbone  # one model
    finally:
        window.document.undo_stack.setClean()
        assert window.photos.shutdown()
