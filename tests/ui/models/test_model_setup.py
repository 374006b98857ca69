"""Model set-up in one place (issue 21 item 2), in the real window with the real registry,
weights and engine code: two tiny CLIPs stand in for clip-vit-b16 (preferred) and clip-vit-b32.

- A model that gains weights (imported through the Model Manager) becomes the active one when
  the active one has none; the banner goes at once; a user's choice with weights is kept.
- Photos ▸ Model and the model box show which models are installed and which is active.
- The banner names the active model and the installed ones, with a Use button; its message
  and tooltip name buttons, never commands to type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from sketchpad.ui.main_window import MainWindow
from sketchpad.ui.models.banner import WINDOW_FIX, for_window
from sketchpad.ui.models.manager import ModelManagerDialog
from sketchpad.vision import installed, registry
from sketchpad.vision.errors import WeightsNotFoundError
from sketchpad.vision.weights import import_weights
from sketchpad.workspace.preferences import Preferences

WAIT_MS = 60_000
PREFERRED, SECOND = "test-clip-tiny-b16", "test-clip-tiny-b32"


@pytest.fixture
def two_clips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """Two tiny CLIPs registered, neither installed; {id: a weights file for it}."""
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SKETCHPAD_OFFLINE", "1")
    monkeypatch.setenv("SKETCHPAD_SHOW_TEST_MODELS", "1")  # the manager lists the tiny ones
    base = registry.get_spec("test-clip-tiny")
    files = {}
    for backbone_id in (PREFERRED, SECOND):
        spec = dataclasses.replace(base, id=backbone_id, hf_repo=f"sketchpad-test/{backbone_id}")
        registry.register_backbone(spec, replace=True)
        torch.manual_seed(0)
        state = registry.build_model(spec).state_dict()
        files[backbone_id] = tmp_path / f"{backbone_id}.safetensors"
        safetensors.torch.save_file(
            {k: v.contiguous().clone() for k, v in state.items()}, files[backbone_id]
        )
    monkeypatch.setattr(installed, "CLIP_BACKBONES", (PREFERRED, SECOND))
    yield files
    for backbone_id in (PREFERRED, SECOND):
        registry._REGISTRY.pop(backbone_id, None)


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> Iterator[Any]:
    prefs = Preferences.load(tmp_path / "prefs.json")
    prefs.backbone = PREFERRED
    prefs.device = "cpu"
    w = MainWindow(
        autosave_dir=tmp_path / "autosave",
        photo_backbones=([PREFERRED, SECOND], ["test-dinov2-tiny"]),
        preferences=prefs,
    )
    qtbot.addWidget(w)
    w.show()
    yield w
    if w.photos.model_manager is not None:
        assert w.photos.model_manager.shutdown(10)
    w.document.undo_stack.setClean()
    assert w.photos.shutdown()


def menu_texts(window: Any) -> dict[str, tuple[str, bool]]:
    """Photos ▸ Model as the user sees it when opening it: {id: (text, checked)}."""
    photos = window.photos
    photos.model_menu.aboutToShow.emit()
    return {a.data(): (a.text(), a.isChecked()) for a in photos.model_menu.actions() if a.data()}


def combo_texts(window: Any) -> list[str]:
    combo = window.photos.controls.backbone_combo
    return [combo.itemText(i) for i in range(combo.count())]


def start_with_banner(window: Any, qtbot: Any) -> None:
    window.photos.start()
    qtbot.waitUntil(lambda: window.photos.banner.isVisible(), timeout=WAIT_MS)


def import_through_the_manager(
    window: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch, backbone_id: str, source: Path
) -> None:
    """The banner's Import… (or the manager's), the file dialog answered with ``source``."""
    monkeypatch.setattr(
        ModelManagerDialog, "_ask_import_path", lambda self, b, folder=False: source
    )
    photos = window.photos
    photos.import_weights(backbone_id)
    dialog = photos.model_manager
    assert dialog is not None and dialog.job.busy  # off the GUI thread
    seen = photos.seen_when_changed = []  # right after the window's own slot ran
    dialog.weightsChanged.connect(
        lambda _id: seen.append((photos.banner.isHidden(), photos.controls.backbone))
    )
    with qtbot.waitSignal(dialog.weightsChanged, timeout=WAIT_MS):
        pass


def test_an_imported_model_becomes_active_and_the_banner_goes_at_once(
    two_clips: dict[str, Path], window: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = window.photos
    start_with_banner(window, qtbot)
    banner = photos.banner
    assert banner.backbone_id == PREFERRED
    assert "The active model, " in banner.message and "has no weights" in banner.message
    assert "No other model of its kind is installed" in banner.message
    assert menu_texts(window) == {
        PREFERRED: (f"{PREFERRED}  (no weights) · active", True),
        SECOND: (f"{SECOND}  (no weights)", False),
        "test-dinov2-tiny": ("test-dinov2-tiny  (no weights)", True),
    }
    assert combo_texts(window) == [f"{PREFERRED}  (no weights)", f"{SECOND}  (no weights)"]

    import_through_the_manager(window, qtbot, monkeypatch, SECOND, two_clips[SECOND])
    # at the signal itself, before the model loads: the banner is gone, the new model chosen
    assert photos.seen_when_changed == [(True, SECOND)]
    qtbot.waitUntil(lambda: photos.model is not None, timeout=WAIT_MS)
    assert photos.model.backbone_id == SECOND and banner.isHidden()
    assert menu_texts(window)[SECOND] == (f"{SECOND}  ✓ installed · active", True)
    assert menu_texts(window)[PREFERRED] == (f"{PREFERRED}  (no weights)", False)
    assert combo_texts(window) == [f"{PREFERRED}  (no weights)", f"{SECOND}  ✓"]

    # now the preferred one gains weights: the user's working choice is kept
    import_through_the_manager(window, qtbot, monkeypatch, PREFERRED, two_clips[PREFERRED])
    assert photos.controls.backbone == SECOND and photos.model.backbone_id == SECOND
    assert menu_texts(window)[PREFERRED] == (f"{PREFERRED}  ✓ installed", False)


def test_the_banner_offers_the_installed_model_and_the_menu_switches(
    two_clips: dict[str, Path], window: Any, qtbot: Any
) -> None:
    import_weights(registry.get_spec(SECOND), two_clips[SECOND])
    photos = window.photos
    photos.start()  # the preferred one has no weights: the installed one is chosen
    qtbot.waitUntil(lambda: photos.model is not None, timeout=WAIT_MS)
    assert photos.model.backbone_id == SECOND
    # the user picks the one without weights in Photos ▸ Model
    menu_texts(window)
    act = next(a for a in photos.model_menu.actions() if a.data() == PREFERRED)
    act.trigger()
    qtbot.waitUntil(lambda: photos.banner.isVisible(), timeout=WAIT_MS)
    banner = photos.banner
    assert banner.backbone_id == PREFERRED and banner.installed == [SECOND]
    assert banner.message.endswith(f"Installed: {banner.use_button.text()[4:]}.")
    assert banner.use_button.isVisible() and banner.use_button.text().startswith("Use ")
    assert "sketchpad models" not in banner.detail and "sketchpad models" not in banner.message
    assert menu_texts(window)[PREFERRED] == (f"{PREFERRED}  (no weights) · active", True)
    photos.model = None
    banner.use_button.click()
    qtbot.waitUntil(lambda: photos.model is not None, timeout=WAIT_MS)
    assert photos.model.backbone_id == SECOND and banner.isHidden()
    assert photos.controls.backbone == SECOND


def test_messages_name_buttons_that_exist_never_commands(qtbot: Any) -> None:
    from sketchpad.ui.models.banner import WeightsBanner

    err = WeightsNotFoundError("clip-vit-b16", ["imported: /x", "HF cache: /y"], "offline")
    assert "sketchpad models download" in str(err)  # the command line's message says how
    text = for_window(str(err))
    assert "sketchpad models" not in text and "Import weights" not in text
    assert text.splitlines()[-1] == WINDOW_FIX
    banner = WeightsBanner()
    qtbot.addWidget(banner)
    buttons = {b.text() for b in (banner.import_button, banner.manager_button)}
    for named in ("Import…", "Model Manager…"):  # what the fix names is a real button
        assert named in WINDOW_FIX and named in buttons
    assert "Download" in WINDOW_FIX and banner.download_button.text().startswith("Download")
    banner.show_failed("clip-vit-b16", str(err), ["clip-vit-b32"])
    assert "sketchpad models" not in banner.detail
    assert "could not be loaded (No weights found for clip-vit-b16" in banner.message
    src = Path(__file__).resolve().parents[3] / "sketchpad"
    for path in [*(src / "ui").rglob("*.py"), src / "vision" / "errors.py"]:
        assert "Import weights" not in path.read_text(encoding="utf-8"), path


def test_the_weights_error_dialog_buttons_do_the_fix(
    two_clips: dict[str, Path], window: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(
        ModelManagerDialog,
        "_ask_import_path",
        lambda self, b, folder=False: asked.append(b),  # cancelled: returns None
    )
    photos = window.photos
    err = WeightsNotFoundError(PREFERRED, ["imported: /x"], "offline")
    box = photos.show_weights_error("Labelling model not available", str(err))
    assert "sketchpad models" not in box.text()
    buttons = {b.text(): b for b in box.buttons()}
    buttons["Import…"].click()
    assert asked == [PREFERRED] and photos.model_manager is not None
    assert photos.model_manager.selected_id() == PREFERRED
    manager = photos.model_manager
    box = photos.show_weights_error("again", str(err))
    with qtbot.waitSignal(manager.job.failed, timeout=WAIT_MS) as failed:
        next(b for b in box.buttons() if b.text() == "Download").click()
    assert failed.args[0] == PREFERRED  # offline here: the download was tried, and said why
    assert photos.model_manager is manager  # one Model Manager, however it is reached
    assert manager.wait_until_idle(10)
    manager.reject()  # closed: the next request opens a new one
    assert photos.model_manager is None
    photos.show_model_manager()
    assert photos.model_manager is not None and photos.model_manager is not manager


def test_the_start_up_lookup_runs_off_the_gui_thread(
    two_clips: dict[str, Path], window: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import_weights(registry.get_spec(SECOND), two_clips[SECOND])
    threads: set[str] = set()
    real = installed.has_weights

    def spy(backbone_id: str) -> bool:
        threads.add(threading.current_thread().name)
        return real(backbone_id)

    monkeypatch.setattr(installed, "has_weights", spy)
    photos = window.photos
    photos.start()
    qtbot.waitUntil(lambda: photos.model is not None, timeout=WAIT_MS)
    assert photos.model.backbone_id == SECOND
    assert threads and threading.main_thread().name not in threads
    assert photos.installed == {PREFERRED: False, SECOND: True, "test-dinov2-tiny": False}


def test_a_model_that_fails_to_load_shows_the_banner_with_its_buttons(
    two_clips: dict[str, Path], window: Any, qtbot: Any
) -> None:
    """Weights that are here but unusable (truncated after the import): the banner says the
    active model could not be loaded and why, with Download / Import… / Model Manager…."""
    resolved = import_weights(registry.get_spec(SECOND), two_clips[SECOND])
    resolved.path.write_bytes(resolved.path.read_bytes()[:4000])
    photos = window.photos
    start_with_banner(window, qtbot)
    banner = photos.banner
    assert banner.backbone_id == SECOND
    assert "could not be loaded (" in banner.message and str(resolved.path) in banner.detail
    assert banner.import_button.isVisible() and banner.manager_button.isVisible()
    assert "sketchpad models" not in photos.controls.error_label.text()
