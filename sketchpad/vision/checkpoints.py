"""Our own fine-tuned segmenter checkpoints, as the app and the commands load them.

A training run (``sketchpad.train.checkpoint``) writes checkpoint ``DIR/<name>`` as three
files: ``<name>.safetensors`` (the backbone's full state dict, in its library's key layout),
``<name>.json`` (metadata) and ``<name>.state.pt`` (resume state, not needed here). This module
reads only the JSON, with plain :mod:`json`: the vision layer does not import the training
code, and nothing here imports torch, so the Model Manager can look at a file on the GUI thread.

The fields read (written by the trainers)::

    "format": "sketchpad-checkpoint"    marks our checkpoints
    "kind": "segmenter"                 or "sbir" / "scene" (other trainers' models)
    "backbone": "<registry id>"         the architecture the weights are for
    "tau": 0.05                         temperature of the 'fixed' calibration
    "calibration": "fixed"              (optional; 'fixed' when absent)
    "input_size": 224                   (optional) photo input side it was trained at
    "patch_path": "vv" | "plain"        (optional) CLIP patch tokens it was trained on

:func:`read_segmenter_checkpoint` gives the backbone id, the weights file and the
:class:`~sketchpad.vision.segmenter.Segmenter` keyword arguments of a checkpoint;
:func:`segmenter_options` gives those arguments for whatever weights a backbone was loaded
from (an imported checkpoint keeps its JSON beside it), so the engine's loader and the commands
build the same segmenter from the same files.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sketchpad.vision.errors import WeightsError

log = logging.getLogger(__name__)

FORMAT = "sketchpad-checkpoint"
SEGMENTER_KIND = "segmenter"
#: What the other kinds of checkpoint are, for messages.
OTHER_KINDS = {
    "sbir": "the SBIR critic used while training a segmenter",
    "scene": "a scene-labelling model",
}
#: Larger JSON files are not checkpoint metadata.
MAX_METADATA_BYTES = 4 << 20
_SUFFIXES = (".safetensors", ".json", ".state.pt")


@dataclass(frozen=True)
class SegmenterCheckpoint:
    """A segmenter checkpoint found on disk.

    Attributes:
        weights: the ``.safetensors`` file (strictly loadable into ``backbone_id``'s model).
        metadata_path: the ``.json`` file.
        backbone_id: the registry id of the backbone the weights are for.
        calibration: "fixed" (maps trained to cross 0.5 at object edges).
        tau: temperature of the 'fixed' calibration, or None for the segmenter's default.
        input_size: photo input side it was trained at, or None.
        patch_path: "vv" or "plain", or None.
        step: the training step it was saved at, or None.
        metadata: the whole JSON.
    """

    weights: Path
    metadata_path: Path
    backbone_id: str
    calibration: str = "fixed"
    tau: float | None = None
    input_size: int | None = None
    patch_path: str | None = None
    step: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def segmenter_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Segmenter(backbone, **kwargs)``: the calibration, and the
        tau, input size and patch path when the checkpoint names them."""
        out: dict[str, Any] = {"calibration": self.calibration}
        if self.tau is not None:
            out["tau"] = self.tau
        if self.input_size is not None:
            out["input_size"] = self.input_size
        if self.patch_path is not None:
            out["patch_path"] = self.patch_path
        return out


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) of checkpoint ``path``: ``DIR/name`` or any of its three files."""
    path = Path(path).expanduser()
    name = path.name
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.parent / f"{name}.safetensors", path.parent / f"{name}.json"


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        OSError, ValueError: unreadable, too large, not JSON, or not an object.
    """
    with open(path, "rb") as f:
        data = f.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise ValueError(f"larger than {MAX_METADATA_BYTES >> 20} MB")
    meta = json.loads(data.decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"holds a JSON {type(meta).__name__}, not an object")
    return meta


def sidecar_metadata(weights: str | Path) -> dict[str, Any] | None:
    """The metadata of our checkpoint whose weights (or JSON) file is ``weights``, or None
    when there is no such JSON beside it, or it is not one of our checkpoints (a warning is
    logged when it cannot be read)."""
    meta_path = checkpoint_files(weights)[1]
    if not meta_path.is_file():
        return None
    try:
        meta = _read_json(meta_path)
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        log.warning("ignoring unreadable checkpoint metadata %s (%s)", meta_path, e)
        return None
    return meta if meta.get("format") == FORMAT else None


def checkpoint_backbone(path: str | Path) -> str | None:
    """The backbone id a segmenter checkpoint file (any of its files) is for; None for a
    plain weights file or another kind of checkpoint. Cheap: reads only the JSON."""
    meta = sidecar_metadata(path)
    if meta is None or meta.get("kind") != SEGMENTER_KIND:
        return None
    backbone = meta.get("backbone")
    return backbone if isinstance(backbone, str) and backbone else None


def describe_kind(meta: dict[str, Any]) -> str:
    """ "a Sketchpad sbir checkpoint (the SBIR critic …)" for messages."""
    kind = str(meta.get("kind", "unknown"))
    what = OTHER_KINDS.get(kind)
    return f"a Sketchpad {kind!r} checkpoint" + (f" ({what})" if what else "")


def _number(meta: dict[str, Any], key: str, where: Path, *, integer: bool) -> Any:
    value = meta.get(key)
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0 or (integer and int(value) != value):
        raise WeightsError(where, f"has an invalid {key!r} ({value!r}): a positive number expected")
    return int(value) if integer else float(value)


def parse_segmenter_metadata(meta: dict[str, Any], where: Path) -> dict[str, Any]:
    """The Segmenter-relevant fields of a segmenter checkpoint's JSON, checked.

    Returns:
        ``backbone_id``, ``calibration``, ``tau``, ``input_size``, ``patch_path``, ``step``.

    Raises:
        WeightsError: not our checkpoint, another kind, no backbone, or an invalid field.
    """
    if meta.get("format") != FORMAT:
        raise WeightsError(where, "is not Sketchpad checkpoint metadata (no 'format' marker)")
    if meta.get("kind") != SEGMENTER_KIND:
        raise WeightsError(
            where,
            f"is {describe_kind(meta)}, not a segmenter checkpoint: only checkpoints of "
            "`sketchpad train segmenter` segment photos",
        )
    backbone = meta.get("backbone")
    if not isinstance(backbone, str) or not backbone:
        raise WeightsError(where, "names no 'backbone': the checkpoint metadata is damaged")
    calibration = meta.get("calibration") or "fixed"
    if calibration not in ("fixed", "gallery-relative"):
        raise WeightsError(where, f"has an unknown calibration {calibration!r}")
    patch_path = meta.get("patch_path")
    if patch_path is not None and patch_path not in ("vv", "plain"):
        raise WeightsError(where, f"has an unknown patch_path {patch_path!r} (vv or plain)")
    step = meta.get("step")
    return {
        "backbone_id": backbone,
        "calibration": calibration,
        "tau": _number(meta, "tau", where, integer=False),
        "input_size": _number(meta, "input_size", where, integer=True),
        "patch_path": patch_path,
        "step": int(step) if isinstance(step, int) and not isinstance(step, bool) else None,
    }


def read_segmenter_checkpoint(path: str | Path) -> SegmenterCheckpoint:
    """Checkpoint ``path`` (``DIR/name``, or its ``.safetensors``, ``.json`` or ``.state.pt``).

    The backbone id is checked against the registry; the weights are not read here
    (``create_backbone(ckpt.backbone_id, weights=ckpt.weights)`` loads them strictly).

    Raises:
        WeightsError: a file is missing or unreadable, it is not a segmenter checkpoint (the
            message says what it is), or its backbone is not registered.
    """
    from sketchpad.vision.registry import get_spec, list_backbones

    weights, meta_path = checkpoint_files(path)
    if not meta_path.is_file():
        if Path(path).expanduser().is_file() and not str(path).endswith(_SUFFIXES):
            raise WeightsError(path, "is not a checkpoint: expected DIR/name or its files")
        raise WeightsError(
            meta_path,
            "no such checkpoint metadata file (a checkpoint is <name>.safetensors + "
            "<name>.json, as `sketchpad train` writes them)",
        )
    try:
        meta = _read_json(meta_path)
    except (OSError, ValueError) as e:
        raise WeightsError(meta_path, f"unreadable checkpoint metadata ({e})") from e
    fields = parse_segmenter_metadata(meta, meta_path)
    try:
        get_spec(fields["backbone_id"])
    except KeyError:
        known = ", ".join(s.id for s in list_backbones(include_testing=True))
        raise WeightsError(
            meta_path,
            f"is for backbone {fields['backbone_id']!r}, which this Sketchpad does not know "
            f"(known: {known}); was it trained by a newer version?",
        ) from None
    if not weights.is_file():
        raise WeightsError(weights, "no such checkpoint weights file (next to its JSON)")
    return SegmenterCheckpoint(weights=weights, metadata_path=meta_path, metadata=meta, **fields)


def segmenter_options(weights: str | Path | None) -> dict[str, Any]:
    """``Segmenter`` keyword arguments for a backbone loaded from ``weights``: those of the
    segmenter checkpoint whose JSON lies beside it, else ``{}`` (plain weights; also when the
    JSON is damaged, with a warning logged)."""
    if weights is None:
        return {}
    meta = sidecar_metadata(weights)
    if meta is None or meta.get("kind") != SEGMENTER_KIND:
        return {}
    meta_path = checkpoint_files(weights)[1]
    try:
        fields = parse_segmenter_metadata(meta, meta_path)
    except WeightsError as e:
        log.warning("ignoring the checkpoint metadata: %s", e)
        return {}
    ckpt = SegmenterCheckpoint(Path(weights), meta_path, metadata=meta, **fields)
    return ckpt.segmenter_kwargs()
