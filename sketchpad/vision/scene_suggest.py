"""Zero-shot label suggestions for a scene sketch (DESIGN §4.4).

The whole sketch and each of its stroke groups are classified against the shipped vocabulary
(:mod:`sketchpad.vision.scene_vocab`): CLIP's global embedding of the sketch (or of the group,
drawn where it sits in the whole sketch) against the vocabulary's text embeddings, a softmax
at CLIP's logit scale. Groups: :func:`sketchpad.sketch.grouping.group_strokes` for a vector
sketch; for a raster-only sketch the ink components that come within the same gap (5 % of the
ink's bounding-box diagonal) of each other, found by dilating the ink.

With a trained recognition head loaded (:class:`~sketchpad.vision.fusion.recognise.Recogniser`,
``sketchpad train fusion --task recognition``), the whole sketch and each group are classified
by the head instead, over its own classes, in the same form; the zero-shot path stays the
default. :attr:`SceneSuggestions.source` says which answered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from sketchpad.sketch.grouping import DEFAULT_GAP_FRACTION, group_strokes
from sketchpad.sketch.model import Sketch
from sketchpad.sketch.raster import rasterize
from sketchpad.vision.scene import SceneLabeller
from sketchpad.vision.scene_pixels import StrokePixels, stroke_pixels
from sketchpad.vision.scene_vocab import Vocabulary, load_vocabulary

if TYPE_CHECKING:
    from sketchpad.vision.fusion.recognise import Recogniser

#: Softmax scale when the backbone does not carry CLIP's learnt one.
DEFAULT_LOGIT_SCALE = 100.0
#: :attr:`SceneSuggestions.source` of the zero-shot path.
ZERO_SHOT = "zero-shot"


@dataclass(frozen=True)
class Suggestion:
    """One vocabulary name proposed for a sketch or a stroke group.

    Attributes:
        label: the vocabulary name.
        probability: softmax over the whole vocabulary at CLIP's logit scale, in [0, 1].
        cosine: cosine between the sketch (or group) and the name's text embedding.
    """

    label: str
    probability: float
    cosine: float


@dataclass(frozen=True)
class GroupSuggestions:
    """Suggestions for one stroke group.

    Attributes:
        stroke_ids: the group's strokes (ink components ``c1``… for a raster-only sketch).
        suggestions: the best names, most likely first.
    """

    stroke_ids: tuple[str, ...]
    suggestions: tuple[Suggestion, ...]


@dataclass(frozen=True)
class SceneSuggestions:
    """Suggestions for the whole sketch and for each stroke group.

    Attributes:
        whole, groups: the suggestions.
        source: who answered: ``"zero-shot"`` (CLIP against the vocabulary) or the path of
            the recognition head.
    """

    whole: tuple[Suggestion, ...]
    groups: tuple[GroupSuggestions, ...]
    source: str = ZERO_SHOT

    def proposed_labels(self) -> tuple[str, ...]:
        """The best name of each group (each once, in group order), or the whole sketch's best
        name when there are no groups: a starting set of labels."""
        best = [g.suggestions[0].label for g in self.groups if g.suggestions]
        if not best and self.whole:
            best = [self.whole[0].label]
        return tuple(dict.fromkeys(best))


def _top(
    emb: np.ndarray, vocab_emb: np.ndarray, names: Sequence[str], scale: float, k: int
) -> list[tuple[Suggestion, ...]]:
    cos = emb.astype(np.float64) @ vocab_emb.astype(np.float64).T  # (n, V)
    z = scale * (cos - cos.max(axis=1, keepdims=True))
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    out = []
    for row_p, row_c in zip(prob, cos, strict=True):
        order = np.argsort(-row_p, kind="stable")[:k]
        out.append(tuple(Suggestion(names[j], float(row_p[j]), float(row_c[j])) for j in order))
    return out


def _logit_scale(labeller: SceneLabeller) -> float:
    scale = getattr(labeller.backbone.model, "logit_scale", None)
    if scale is None:
        return DEFAULT_LOGIT_SCALE
    value = float(scale.detach().float().exp().item())
    return value if math.isfinite(value) and value > 0 else DEFAULT_LOGIT_SCALE


def raster_groups(
    sketch: Sketch, pixels: StrokePixels, gap: float | None = None
) -> list[tuple[tuple[str, ...], Sketch]]:
    """Groups of ink components of a raster-only sketch and each group's ink as a sketch.

    Args:
        sketch: a raster-only sketch.
        pixels: its label raster (``stroke_pixels(sketch)``).
        gap: linking distance in canvas pixels; default 5 % of the ink's bbox diagonal.

    Returns:
        Per group (in the order of the first component): its component ids, and a raster-only
        sketch on the label raster's pixel grid holding only that group's ink.
    """
    h, w = pixels.raster_hw
    ink = 255 - rasterize(sketch, (h, w), frame=pixels.frame)  # (H, W) uint8 coverage
    box = sketch.bbox()
    if gap is None:
        gap = (
            0.0
            if box is None
            else DEFAULT_GAP_FRACTION * math.hypot(box[2] - box[0], box[3] - box[1])
        )
    radius = max(0, math.ceil(gap * pixels.frame.scale / 2.0))
    solid: np.ndarray = (pixels.owner >= 0).astype(np.uint8)
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        solid = cv2.dilate(solid, kernel)
    _, zones = cv2.connectedComponents(solid, connectivity=8, ltype=cv2.CV_32S)
    members: dict[int, list[int]] = {}
    for i, idx in enumerate(pixels.pixels):
        if idx.size:
            members.setdefault(int(zones.reshape(-1)[idx[0]]), []).append(i)
    groups = []
    for zone, comps in members.items():
        keep = zones == zone
        part = Sketch(raster=np.where(keep, ink, 0), width=w, height=h)
        groups.append((tuple(pixels.stroke_ids[i] for i in comps), part))
    return groups


def suggest_labels(
    labeller: SceneLabeller,
    sketch: Sketch,
    *,
    vocabulary: Vocabulary | None = None,
    top_k: int = 5,
    gap: float | None = None,
    recogniser: Recogniser | None = None,
) -> SceneSuggestions:
    """Suggestions for the whole sketch and each stroke group: zero-shot, or by a trained
    recognition head.

    Args:
        labeller: supplies the backbone, the model input size and the cached text embeddings
            (the zero-shot path).
        sketch: vector or raster-only, with some ink.
        vocabulary: the names to choose from; default the shipped vocabulary.
        top_k: names per sketch and per group, ≥ 1.
        gap: stroke-grouping distance in canvas pixels; default 5 % of the bbox diagonal.
        recogniser: a loaded recognition head: it names the sketch and each group, over its
            classes (``vocabulary`` is then not used); None: zero-shot.

    Raises:
        ValueError: the sketch has no ink, or ``top_k`` < 1.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if sketch.bbox() is None:
        raise ValueError("the sketch has no ink to suggest labels for")
    if sketch.is_raster:
        pixels = stroke_pixels(sketch)
        found = raster_groups(sketch, pixels, gap)
        whole = Sketch(
            raster=255 - rasterize(sketch, pixels.raster_hw, frame=pixels.frame),
            width=pixels.raster_hw[1],
            height=pixels.raster_hw[0],
        )
        ids = [g[0] for g in found]
        parts = [g[1] for g in found]
    else:
        whole = sketch
        ids = list(group_strokes(sketch, gap=gap))
        parts = [sketch.subset(g) for g in ids]
    if recogniser is not None:
        tops = recogniser.suggest([whole, *parts], top_k=top_k)
        source = str(recogniser.path)
    else:
        vocab = vocabulary or load_vocabulary()
        vocab_emb = labeller.text_embeddings(vocab.names, disk_cache=True)  # once per model
        # The whole sketch from the v-v forward pass that labelling it runs anyway (remembered
        # by the labeller: `label --suggest` encodes it once), its groups from the plain path.
        emb = np.concatenate(
            [labeller.view_embedding(whole)[None], labeller.global_embeddings(parts, whole)]
        )
        tops = _top(emb, vocab_emb, vocab.names, _logit_scale(labeller), top_k)
        source = ZERO_SHOT
    return SceneSuggestions(
        whole=tops[0],
        groups=tuple(GroupSuggestions(i, t) for i, t in zip(ids, tops[1:], strict=True)),
        source=source,
    )
