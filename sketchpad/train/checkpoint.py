"""Checkpoints of our trainers: safetensors weights, a JSON of metadata, and a resume state.

A checkpoint ``DIR/<name>`` is three files, each written atomically:

- ``<name>.safetensors``: the trained model's full state dict, in the key layout its library
  uses, so the app's strict loader (``vision.weights.load_weights``) reads a segmenter
  checkpoint like any other weights file (DESIGN §4.1);
- ``<name>.json``: what it is (``kind``, ``backbone``, the configuration, the last losses,
  ``step``); ``"sketchpad_fine_tuned": true`` marks a segmenter whose maps are calibrated
  ('fixed' threshold 0.5);
- ``<name>.state.pt``: what resuming needs (optimizer, RNG, step), read back with
  ``torch.load(weights_only=True)``.

The weights are written first and the JSON last, and all three carry the same ``step``: a
run killed between two writes leaves files that disagree, which :func:`read_resume_state`
reports instead of resuming from a mixture.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sketchpad import __version__
from sketchpad.atomic import SaveError, atomic_write_bytes, atomic_write_text

FORMAT = "sketchpad-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be read or written; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class CheckpointPaths:
    """The three files of checkpoint ``folder/name``."""

    weights: Path
    metadata: Path
    state: Path

    @classmethod
    def of(cls, base: str | Path) -> CheckpointPaths:
        """``base`` is ``DIR/name`` or any of its three files."""
        base = Path(base)
        name = base.name
        for suffix in (".safetensors", ".json", ".state.pt"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        folder = base.parent
        return cls(
            folder / f"{name}.safetensors", folder / f"{name}.json", folder / f"{name}.state.pt"
        )

    def exists(self) -> bool:
        return self.weights.is_file() and self.metadata.is_file()


def _plain(value: Any) -> Any:  # noqa: ANN401 - JSON-able data of any shape
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def save_checkpoint(
    base: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
    *,
    resume_state: Mapping[str, Any] | None = None,
) -> CheckpointPaths:
    """Write checkpoint ``base`` (``DIR/name``); the folder is created.

    Args:
        base: the checkpoint's folder and name.
        state_dict: the weights (copied to contiguous CPU tensors; shared storage is fine).
        metadata: JSON-able facts; ``kind``, ``backbone`` and ``step`` are expected.
        resume_state: optimizer state, RNG states and anything else to resume from.

    Raises:
        CheckpointError: a file could not be written (the previous checkpoint, if any, is
            intact file by file).
    """
    from safetensors.torch import save as st_save

    paths = CheckpointPaths.of(base)
    step = int(metadata.get("step", 0))
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sketchpad_version": __version__,
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **_plain(dict(metadata)),
        "step": step,
    }
    try:
        paths.weights.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(
            paths.weights, st_save(tensors, metadata={"format": FORMAT, "step": str(step)})
        )
        if resume_state is not None:
            buf = io.BytesIO()
            torch.save({**dict(resume_state), "step": step}, buf)
            atomic_write_bytes(paths.state, buf.getvalue())
        atomic_write_text(paths.metadata, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    except (SaveError, OSError) as e:
        raise CheckpointError(paths.weights.parent, f"cannot write the checkpoint ({e})") from e
    return paths


def read_metadata(base: str | Path) -> dict[str, Any]:
    """The JSON of checkpoint ``base``.

    Raises:
        CheckpointError: missing, unreadable, or not one of our checkpoints.
    """
    path = CheckpointPaths.of(base).metadata
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(path, "no such checkpoint metadata file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(path, f"unreadable checkpoint metadata ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(path, "not a Sketchpad checkpoint (no 'format' marker)")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            path, f"written by a newer Sketchpad (format {meta.get('format_version')})"
        )
    return meta


def read_weights(base: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of checkpoint ``base``.

    Raises:
        CheckpointError: missing or corrupt.
    """
    from safetensors.torch import load_file

    path = CheckpointPaths.of(base).weights
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint weights file")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for bad files
        raise CheckpointError(path, f"truncated or corrupt safetensors file ({e})") from e


def read_resume_state(
    base: str | Path,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """(metadata, weights, resume state) of checkpoint ``base``, checked to be of one step.

    Raises:
        CheckpointError: a file is missing or corrupt, or the three disagree (a run stopped
            between two writes).
    """
    paths = CheckpointPaths.of(base)
    meta = read_metadata(base)
    weights = read_weights(base)
    if not paths.state.is_file():
        raise CheckpointError(paths.state, "no resume state next to the checkpoint")
    try:
        state = torch.load(paths.state, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling fails in many ways on a bad file
        raise CheckpointError(paths.state, f"unreadable resume state ({e})") from e
    try:
        from safetensors import safe_open

        with safe_open(str(paths.weights), framework="pt") as f:
            weights_step = int((f.metadata() or {}).get("step", meta["step"]))
    except (OSError, ValueError) as e:
        raise CheckpointError(paths.weights, f"unreadable safetensors header ({e})") from e
    if weights_step != int(meta["step"]):
        raise CheckpointError(
            paths.weights,
            f"weights of step {weights_step} but metadata of step {meta['step']}: the run "
            "stopped while saving; delete the folder's checkpoint files or train into a new "
            "folder",
        )
    if not isinstance(state, dict) or int(state.get("step", -1)) != int(meta["step"]):
        raise CheckpointError(
            paths.state,
            f"resume state is of step {state.get('step') if isinstance(state, dict) else '?'}"
            f" but the checkpoint of step {meta['step']}: the run stopped while saving; "
            "delete the folder's checkpoint files or train into a new folder",
        )
    return meta, weights, state
