"""Which segmenter to build, and building it: the one place that turns a checkpoint's metadata
(or the JSON beside imported weights) and the user's options into ``Segmenter`` settings.

The window's engine (``LoadModel``) and the command line (``segment``, ``eval segmenter``)
describe what they want as a :class:`ModelChoice` and call :func:`build_segmenter`.

Precedence: an explicit option (calibration, input size, patch path) wins over the
checkpoint's metadata, which wins over the defaults (zero-shot: gallery-relative calibration,
the v-v patch path, the backbone's input size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sketchpad.vision.maps import Calibration

if TYPE_CHECKING:
    from sketchpad.vision.segmenter import Segmenter

#: Download progress: (bytes done, bytes total or None).
DownloadFn = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class ModelChoice:
    """A segmenter to build.

    Attributes:
        backbone_id: a registry id (``sketchpad models list``); with ``checkpoint``, None or
            the checkpoint's own backbone.
        weights: a weights file or folder the user gave; None resolves as DESIGN §4.1 says.
        checkpoint: a segmenter checkpoint of ``sketchpad train`` (``DIR/name`` or any of its
            files): its backbone, weights and calibration.
        device: "auto"/None, "cpu", "cuda", "cuda:N" or "mps".
        fp16: half precision on a GPU.
        pretrained: False gives random weights (tests, benchmarks).
        offline: never download (None: the environment decides).
        calibration: "fixed", "gallery-relative", or None (from the weights).
        input_size: photo input side (None: the checkpoint's, else the backbone's).
        patch_path: "vv" or "plain" (None: the checkpoint's, else "vv").
        threshold: the default mask threshold.
    """

    backbone_id: str | None
    weights: Path | None = None
    checkpoint: Path | None = None
    device: str | None = None
    fp16: bool = True
    pretrained: bool = True
    offline: bool | None = None
    calibration: Calibration | None = None
    input_size: int | None = None
    patch_path: Literal["vv", "plain"] | None = None
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.checkpoint is not None and self.weights is not None:
            raise ValueError("give a checkpoint or a weights file, not both")
        if self.checkpoint is None and not self.backbone_id:
            raise ValueError("a model choice needs a backbone id or a checkpoint")


def resolve_choice(choice: ModelChoice) -> tuple[str, Path | None, dict[str, Any]]:
    """(backbone id, weights, Segmenter keyword arguments from the checkpoint) of ``choice``;
    reads only the checkpoint's JSON.

    Raises:
        ValueError: the checkpoint is of another backbone than the one named.
        sketchpad.vision.errors.WeightsError: the checkpoint cannot be used (why).
    """
    if choice.checkpoint is None:
        assert choice.backbone_id is not None
        return choice.backbone_id, choice.weights, {}
    from sketchpad.vision.checkpoints import read_segmenter_checkpoint

    ckpt = read_segmenter_checkpoint(choice.checkpoint)
    if choice.backbone_id not in (None, ckpt.backbone_id):
        raise ValueError(
            f"the backbone {choice.backbone_id} was asked for, but the checkpoint is of "
            f"{ckpt.backbone_id}: leave --backbone out (the checkpoint names its backbone)"
        )
    return ckpt.backbone_id, ckpt.weights, ckpt.segmenter_kwargs()


def segmenter_settings(
    choice: ModelChoice, weights_path: Path | None, checkpoint_options: dict[str, Any]
) -> dict[str, Any]:
    """The ``Segmenter`` keyword arguments of ``choice`` once its backbone is loaded from
    ``weights_path``: the named checkpoint's (``checkpoint_options``, from
    :func:`resolve_choice`) or those of the JSON beside imported weights, then the choice's
    explicit options on top."""
    from sketchpad.vision.checkpoints import segmenter_options

    options: dict[str, Any] = {"patch_path": "vv"}
    if choice.checkpoint is not None:
        options.update(checkpoint_options)
    else:
        options.update(segmenter_options(weights_path))
    for name in ("calibration", "input_size", "patch_path"):
        value = getattr(choice, name)
        if value is not None:
            options[name] = value
    options["threshold"] = choice.threshold
    return options


def build_segmenter(choice: ModelChoice, progress: DownloadFn | None = None) -> Segmenter:
    """Load the backbone ``choice`` names (resolving its weights, downloading with
    ``progress`` when allowed) and the segmenter on it.

    Raises:
        KeyError: unknown backbone id. ValueError: bad options, unavailable device.
        sketchpad.vision.errors.WeightsError: no usable weights or checkpoint.
    """
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.segmenter import Segmenter

    backbone_id, weights, checkpoint_options = resolve_choice(choice)
    backbone = create_backbone(
        backbone_id,
        weights=weights,
        device=choice.device,
        pretrained=choice.pretrained,
        offline=choice.offline,
        progress=progress,
        fp16=choice.fp16,
    )
    settings = segmenter_settings(choice, backbone.weights.path, checkpoint_options)
    return Segmenter(backbone, **settings)
