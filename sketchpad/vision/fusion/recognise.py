"""Sketch recognition with a trained SketchFusion head (seed 003 §6.2): the linear classifier
of ``sketchpad train fusion --task recognition`` on the fused map's global max pool.

Its answers take the zero-shot suggestions' form
(:class:`~sketchpad.vision.scene_suggest.Suggestion`), so label suggestions can use a loaded
head and fall back to the zero-shot path otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sketchpad.sketch.model import Sketch
from sketchpad.vision.errors import WeightsError
from sketchpad.vision.fusion.backbone import FusionBackbone, read_head_metadata
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


__all__ = ["RecognitionHead", "read_recognition_head", "recognise"]
