"""Training checkpoints: three files written atomically, read back, and refused when they do
not belong together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sketchpad.train.checkpoint import (
    CheckpointError,
    CheckpointPaths,
    read_metadata,
    read_resume_state,
    read_weights,
    save_checkpoint,
)


def _save(base: Path, step: int, value: float = 1.0) -> CheckpointPaths:
    sd = {"w": torch.full((2, 2), value), "b": torch.zeros(3)}
    return save_checkpoint(
        base, sd, {"kind": "segmenter", "backbone": "test-clip-tiny", "step": step},
        resume_state={"optimizer": {"lr": 0.1}, "torch_rng": torch.get_rng_state()},
    )  # fmt: skip


def test_round_trip_and_any_file_name_names_the_checkpoint(tmp_path: Path) -> None:
    paths = _save(tmp_path / "run" / "seg", 3, 2.5)
    assert paths.weights.name == "seg.safetensors" and paths.exists()
    for name in ("seg", "seg.json", "seg.safetensors", "seg.state.pt"):
        meta = read_metadata(tmp_path / "run" / name)
        assert meta["kind"] == "segmenter" and meta["step"] == 3
    assert torch.equal(read_weights(paths.weights)["w"], torch.full((2, 2), 2.5))
    meta, weights, state = read_resume_state(paths.metadata)
    assert state["step"] == 3 and state["optimizer"] == {"lr": 0.1}
    assert sorted(weights) == ["b", "w"]
    # No temporary files are left next to it.
    assert sorted(p.name for p in paths.weights.parent.iterdir()) == [
        "seg.json", "seg.safetensors", "seg.state.pt"
    ]  # fmt: skip


def test_a_save_interrupted_between_files_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "seg"
    _save(base, 1)
    meta_before = (tmp_path / "seg.json").read_text()
    state_before = (tmp_path / "seg.state.pt").read_bytes()
    _save(base, 2)
    # As if the run died after writing the weights of step 2 but before the rest.
    (tmp_path / "seg.json").write_text(meta_before)
    (tmp_path / "seg.state.pt").write_bytes(state_before)
    with pytest.raises(CheckpointError, match="stopped while saving"):
        read_resume_state(base)


def test_resume_state_of_another_step_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "seg"
    _save(base, 2)
    state = torch.load(tmp_path / "seg.state.pt", weights_only=True)
    state["step"] = 1
    torch.save(state, tmp_path / "seg.state.pt")
    with pytest.raises(CheckpointError, match="step 1"):
        read_resume_state(base)


def test_damaged_or_foreign_files_are_named(tmp_path: Path) -> None:
    base = tmp_path / "seg"
    with pytest.raises(CheckpointError, match="no such checkpoint metadata"):
        read_metadata(base)
    paths = _save(base, 1)
    paths.weights.write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="seg.safetensors.*corrupt"):
        read_weights(base)
    paths.metadata.write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="not a Sketchpad checkpoint"):
        read_metadata(base)
    paths.metadata.write_text(json.dumps({"format": "sketchpad-checkpoint", "format_version": 99}))
    with pytest.raises(CheckpointError, match="newer"):
        read_metadata(base)
    paths.metadata.write_text("{")
    with pytest.raises(CheckpointError, match="unreadable"):
        read_metadata(base)


def test_shared_storage_tensors_are_saved(tmp_path: Path) -> None:
    w = torch.arange(6.0)
    paths = save_checkpoint(tmp_path / "x", {"a": w, "b": w[:3]}, {"kind": "sbir", "step": 0})
    got = read_weights(paths.weights)
    assert torch.equal(got["a"], w) and torch.equal(got["b"], w[:3])
