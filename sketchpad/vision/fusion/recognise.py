"""Sketch recognition with a trained SketchFusion head (seed 003 §6.2): the linear classifier
of ``sketchpad train fusion --task recognition`` on the fused map's global max pool.

Its answers take the zero-shot suggestions' form
(:class:`~sketchpad.vision.scene_suggest.Suggestion`), so label suggestions
(:func:`~sketchpad.vision.scene_suggest.suggest_labels`, ``sketchpad label --suggest
--recognition-head`` and the window's Suggest) use a loaded head (:class:`Recogniser`) and the
zero-shot path otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sketchpad.sketch.model import Sketch
from sketchpad.vision.errors import WeightsError
from sketchpad.vision.fusion.backbone import FusionBackbone, read_head_metadata
from sketchpad.vision.hub import ProgressFn
from sketchpad.vision.scene_suggest import Suggestion


@dataclass(frozen=True)
class RecognitionHead:
    """A trained classifier: (C, d) weights and (C,) biases over ``classes``."""

    backbone_id: str
    classes: tuple[str, ...]
    weight: torch.Tensor
    bias: torch.Tensor
    path: Path


def read_recognition_head(path: str | Path) -> RecognitionHead:
    """The classifier of a recognition checkpoint (``.safetensors`` + ``.json``).

    Raises:
        WeightsError: not a fusion checkpoint, not of the recognition task, or inconsistent.
    """
    from sketchpad.vision.weights import read_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsError(path, "does not exist (a recognition head is a .safetensors file)")
    meta = read_head_metadata(path)
    if meta is None:
        raise WeightsError(path, "is not a SketchFusion checkpoint (safetensors + JSON)")
    if meta.get("task") != "recognition":
        raise WeightsError(path, f"is a {meta.get('task')!r} head, not a recognition one")
    classes = tuple(str(c) for c in meta.get("classes", []))
    sd = read_state_dict(path)
    weight, bias = sd.get("head.weight"), sd.get("head.bias")
    n = len(classes)
    if weight is None or bias is None or weight.shape[0] != n or bias.shape[0] != n or n < 2:
        raise WeightsError(path, f"has no classifier for its {len(classes)} classes")
    return RecognitionHead(str(meta.get("backbone")), classes, weight.float(), bias.float(), path)


def recognise(
    backbone: FusionBackbone, head: RecognitionHead, sketches: Sequence[Sketch], *, top_k: int = 5
) -> list[tuple[Suggestion, ...]]:
    """The ``top_k`` classes of each sketch, most likely first (softmax over the head's
    classes; ``cosine`` is the cosine with the class's weight row)."""
    if head.backbone_id != backbone.spec.id:
        raise ValueError(f"the head is for {head.backbone_id}, the backbone is {backbone.spec.id}")
    if not sketches:
        return []
    size = backbone.spec.input_size
    from sketchpad.vision.features import sketch_input

    images = np.stack([sketch_input(s, None, size) for s in sketches])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    g = backbone.encode_global(x).cpu()  # (B, d), not normalised: the head saw max pools
    probs = torch.softmax(g @ head.weight.T + head.bias, dim=-1)
    cos = F.normalize(g, dim=-1) @ F.normalize(head.weight, dim=-1).T
    out = []
    k = min(top_k, len(head.classes))
    for p, c in zip(probs, cos, strict=True):
        top = torch.topk(p, k)
        out.append(
            tuple(
                Suggestion(head.classes[int(i)], float(v), float(c[int(i)]))
                for v, i in zip(top.values, top.indices, strict=True)
            )
        )
    return out


@dataclass(frozen=True)
class Recogniser:
    """A trained recognition head with the fused backbone it was trained on (its trained parts
    are read from the same checkpoint)."""

    backbone: FusionBackbone
    head: RecognitionHead

    @property
    def path(self) -> Path:
        return self.head.path

    def suggest(
        self, sketches: Sequence[Sketch], *, top_k: int = 5
    ) -> list[tuple[Suggestion, ...]]:
        """:func:`recognise` on the head's backbone."""
        return recognise(self.backbone, self.head, sketches, top_k=top_k)


def load_recogniser(
    path: str | Path,
    *,
    device: str | torch.device | None = None,
    pretrained: bool = True,
    offline: bool | None = None,
    progress: ProgressFn | None = None,
    fp16: bool = True,
) -> Recogniser:
    """The head of a recognition checkpoint and its backbone (Stable Diffusion and CLIP
    resolved as for any fused backbone; ``pretrained=False``: random frozen weights, tests).

    Raises:
        WeightsError: the file is not a usable recognition head (the message names it), or
            the backbone's weights are missing.
    """
    from sketchpad.vision.backbone import create_backbone

    head = read_recognition_head(path)
    try:
        backbone = create_backbone(
            head.backbone_id,
            weights=head.path,
            device=device,
            pretrained=pretrained,
            offline=offline,
            progress=progress,
            fp16=fp16,
        )
    except KeyError as e:
        raise WeightsError(head.path, f"names an unknown backbone {head.backbone_id!r}") from e
    if not isinstance(backbone, FusionBackbone):
        raise WeightsError(head.path, f"names {head.backbone_id}, not a SketchFusion backbone")
    return Recogniser(backbone, head)


def try_load_recogniser(
    path: str | Path, **options: Any
) -> tuple[Recogniser | None, str | None]:
    """:func:`load_recogniser`, or (None, why) when the head cannot be used: the message names
    the file and says that suggestions go on zero-shot (the CLI's warning, the window's
    status)."""
    try:
        return load_recogniser(path, **options), None
    except (WeightsError, ValueError, KeyError, OSError) as e:
        return None, not_used_note(path, e)


#: What the suggestions do when a recognition head cannot be used.
FALLBACK = "suggesting zero-shot"


def not_used_note(path: str | Path, error: Exception) -> str:
    """Why the head at ``path`` is not used, naming the file: ``"recognition head not used:
    <file>: <reason>; suggesting zero-shot"``."""
    reason = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if str(path) not in reason:
        reason = f"{path}: {reason}"
    return f"recognition head not used: {reason}; {FALLBACK}"


__all__ = [
    "RecognitionHead",
    "Recogniser",
    "load_recogniser",
    "not_used_note",
    "read_recognition_head",
    "recognise",
    "try_load_recogniser",
]
