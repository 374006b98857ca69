"""Suggest in the Scene Labels panel (issue 20 item 5): zero-shot by default (the labels
``suggest_labels`` proposes with the labelling model); with a recognition head loaded from
Labels ▸ Recognition Head… (kept in the preferences) the head's classes, as ``recognise`` gives
them; a bad head is named (refused when chosen; in the status when it cannot be used at
suggestion time) and zero-shot answers. One engine loads every model: the loader builds the
head's fused backbone too (random frozen weights here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PySide6.QtCore import QSettings
from qtevents import deliver_posted_events
from scene.recognition_head import CLASSES, trained_head
from scene.scene_planted import SceneBackbone, quadrant_sketch

from sketchpad.search.model import ModelChoice
from sketchpad.ui.app import set_application_names
from sketchpad.ui.main_window import MainWindow
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.fusion.recognise import load_recogniser
from sketchpad.vision.scene import SceneLabeller
from sketchpad.vision.scene_suggest import suggest_labels
from sketchpad.vision.segmenter import Segmenter
from sketchpad.workspace.preferences import Preferences

WAIT_MS = 60_000


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, qapp: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings")
    )
    set_application_names()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def head_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_head(str(tmp_path_factory.mktemp("head")))


@pytest.fixture
def loads() -> list[ModelChoice]:
    return []


@pytest.fixture
def window(qtbot: Any, loads: list[ModelChoice]) -> Iterator[MainWindow]:
    def loader(choice: ModelChoice, progress: Any) -> Segmenter:
        loads.append(choice)
        if choice.backbone_id == "test-sketchfusion-tiny":  # a recognition head's backbone
            return Segmenter(
                create_backbone(
                    choice.backbone_id, weights=choice.weights, device="cpu", pretrained=False
                )
            )
        return Segmenter(SceneBackbone())

    w = MainWindow(autosave_delay_ms=20, photo_loader=loader)
    w.errors = []  # type: ignore[attr-defined]
    w._show_error = lambda title, text: w.errors.append((title, text))  # type: ignore[method-assign]
    w.resize(1000, 700)
    w.show()
    qtbot.waitExposed(w)
    w.document.reset(quadrant_sketch()[0], None)
    yield w
    w.document.undo_stack.setClean()
    w.close()
    assert not w.scene.service.is_running
    w.deleteLater()
    deliver_posted_events()


def suggest(window: MainWindow, qtbot: Any) -> Any:
    service = window.scene.service
    with qtbot.waitSignal(service.suggestionsReady, timeout=WAIT_MS) as blocker:
        window.scene_panel.suggest_button.click()
    return blocker.args[0]


def names(window: MainWindow) -> list[str]:
    return list(window.scene.names)


def test_suggest_is_zero_shot_without_a_head(window: MainWindow, qtbot: Any) -> None:
    assert window.scene.recognition_head is None
    assert window.recognition_actions["zero_shot"].isChecked()
    result = suggest(window, qtbot)
    want = suggest_labels(SceneLabeller(SceneBackbone()), window.document.sketch)
    assert result.suggestions == want and result.note is None
    assert names(window) == list(want.proposed_labels())
    assert window.document.undo_stack.undoText() == "Suggest labels"


def test_a_loaded_head_answers_with_its_classes_and_is_kept(
    window: MainWindow, qtbot: Any, head_file: Path, loads: list[ModelChoice]
) -> None:
    window._ask_recognition_head = lambda: head_file  # type: ignore[method-assign]
    assert window.choose_recognition_head()
    assert window.scene.recognition_head == head_file
    assert not window.recognition_actions["zero_shot"].isChecked()
    assert Preferences.load().recognition_head == head_file  # saved
    result = suggest(window, qtbot)
    sug = result.suggestions
    assert sug.source == str(head_file) and result.note is None
    rec = load_recogniser(head_file, device="cpu", pretrained=False)
    sketch = window.document.sketch
    parts = [sketch.subset(g.stroke_ids) for g in sug.groups]
    direct = rec.suggest([sketch, *parts], top_k=5)
    assert sug.whole == direct[0] and [g.suggestions for g in sug.groups] == direct[1:]
    assert names(window) and set(names(window)) <= set(CLASSES)
    assert head_file.name in window.statusBar().currentMessage()
    fused = [c for c in loads if c.backbone_id == "test-sketchfusion-tiny"]
    assert len(fused) == 1 and fused[0].weights == head_file  # by the engine's loader
    suggest(window, qtbot)  # the head is kept: not loaded again
    assert len([c for c in loads if c.backbone_id == "test-sketchfusion-tiny"]) == 1
    window.recognition_actions["zero_shot"].trigger()
    assert window.scene.recognition_head is None and Preferences.load().recognition_head is None


def test_a_bad_head_is_named_and_zero_shot_answers(
    window: MainWindow, qtbot: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    window._ask_recognition_head = lambda: bad  # type: ignore[method-assign]
    assert not window.choose_recognition_head()  # refused when chosen
    (title, text), *_ = window.errors  # type: ignore[attr-defined]
    assert str(bad) in text and window.scene.recognition_head is None
    window.set_recognition_head(bad)  # e.g. from the preferences, spoilt since
    result = suggest(window, qtbot)
    want = suggest_labels(SceneLabeller(SceneBackbone()), window.document.sketch)
    assert result.suggestions == want
    assert result.note is not None and str(bad) in result.note
    status = window.statusBar().currentMessage()
    assert str(bad) in status and "suggesting zero-shot" in status
    assert names(window) == list(want.proposed_labels())
