"""The missing-weights banner and ``missing_weights``: what the banner says for a backbone
without weights, its signals, and the headless check that it has become unnecessary."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import huggingface_hub.constants as hf_constants
import pytest
import safetensors.torch
import torch

from sketchpad.engine.downloads import missing_weights
from sketchpad.ui.models.banner import WeightsBanner
from sketchpad.vision.registry import build_model, get_spec
from sketchpad.vision.weights import import_weights, imported_dir

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our folders and the HF cache under tmp, offline."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("SKETCHPAD_OFFLINE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    return cache


def tiny_weights(spec_id: str) -> bytes:
    torch.manual_seed(0)
    model = build_model(get_spec(spec_id))
    return safetensors.torch.save(
        {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    )


@pytest.fixture
def banner(qtbot: Any) -> WeightsBanner:
    b = WeightsBanner()
    qtbot.addWidget(b)
    b.resize(900, 40)
    return b


def test_the_banner_says_what_is_missing_and_how_to_get_it(banner: WeightsBanner) -> None:
    assert banner.isHidden()
    banner.show_missing("clip-vit-b16", "No weights for CLIP … looked at …")
    assert banner.isVisible()
    assert banner.message == (
        "The active model, CLIP ViT-B/16 (OpenAI), has no weights: drawing works, but photos "
        "cannot be searched. No other model of its kind is installed."
    )
    assert banner.use_button.isHidden()
    assert banner.message_label.toolTip() == banner.detail == "No weights for CLIP … looked at …"
    assert banner.download_button.text() == "Download (≈ 599 MB)"
    assert banner.import_button.text() == "Import…"
    assert banner.manager_button.text() == "Model Manager…"
    banner.show_missing("dinov2-vitl14", "")
    assert "DINOv2 ViT-L/14 (timm)" in banner.message and banner.backbone_id == "dinov2-vitl14"
    assert banner.download_button.text() == "Download (≈ 1.2 GB)"
    banner.show_missing("my-own-model", "unknown")  # not registered: named as given, no size
    assert "The active model, my-own-model, has no weights" in banner.message
    assert banner.download_button.text() == "Download"


def test_the_banner_emits_its_requests(banner: WeightsBanner, qtbot: Any) -> None:
    banner.show_missing("dinov2-vits14", "detail")
    with qtbot.waitSignal(banner.downloadRequested) as download:
        banner.download_button.click()
    assert download.args == ["dinov2-vits14"]
    with qtbot.waitSignal(banner.importRequested) as imported:
        banner.import_button.click()
    assert imported.args == ["dinov2-vits14"]
    with qtbot.waitSignal(banner.managerRequested):
        banner.manager_button.click()
    assert banner.isVisible()
    with qtbot.waitSignal(banner.dismissed):
        banner.close_button.click()
    assert banner.isHidden()
    banner.show_missing("dinov2-vits14", "again")
    assert banner.isVisible()
    banner.hide_message()
    assert banner.isHidden()


@pytest.mark.parametrize("spec_id", ["test-clip-tiny", "test-dinov2-tiny"])
def test_missing_weights_until_imported(
    banner: WeightsBanner, tmp_path: Path, spec_id: str
) -> None:
    spec = get_spec(spec_id)
    detail = missing_weights(spec_id)
    assert detail is not None
    assert detail.startswith(f"No weights for {spec.description} ({spec_id}).")
    assert str(imported_dir(spec)) in detail
    assert "models--sketchpad-test--tiny" in detail  # the HF cache folder looked at
    assert spec.hf_files[0] in detail
    banner.show_missing(spec_id, detail)
    assert banner.isVisible() and banner.detail == detail

    source = tmp_path / "w.safetensors"
    source.write_bytes(tiny_weights(spec_id))
    import_weights(spec, source)
    assert missing_weights(spec_id) is None


def test_missing_weights_sees_the_hf_cache_and_names_unknown_ids(isolated: Path) -> None:
    spec = get_spec("test-dinov2-tiny")
    assert "about 88 MB" in (missing_weights("dinov2-vits14") or "")
    data = tiny_weights(spec.id)
    folder = isolated / ("models--" + spec.hf_repo.replace("/", "--"))
    blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    pointer = folder / "snapshots" / COMMIT / spec.hf_files[0]
    pointer.parent.mkdir(parents=True)
    pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    assert missing_weights(spec.id) is None
    unknown = missing_weights("no-such-model")
    assert unknown is not None and "unknown backbone 'no-such-model'" in unknown
