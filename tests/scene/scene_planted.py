"""A stand-in CLIP for scene labelling whose features the tests choose.

- Patch (i, j) of the 4×4 grid (64 px input, 16 px patches) gets the basis vector of its
  quadrant: top-left E[0] ("cat"), top-right E[1] ("dog"), bottom-left E[2] ("tree"),
  bottom-right E[3] ("sun").
- A prompt gets the basis vector of the vocabulary word it contains (cat, dog, tree, sun, car,
  boat, bird → E[0..6]); the empty prompt gets E[7]. After the empty prompt is removed a label's
  embedding is (E[k] − E[7]) / √2, so a patch of quadrant q has cosine 1/√2 with label q and 0
  with every other label.
- The CLS token is a fixed mix (it only sets CLIP Surgery's label weights w).
- The global embedding of a sketch (suggestions) is the basis vector of the quadrant with the
  most ink in the model input.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from planted import stand_in_spec  # tests/ is on sys.path
from torch import nn

from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.vision.backbone import Backbone, WeightsInfo

D = 10
E = np.eye(D, dtype=np.float32)
WORDS = {"cat": 0, "dog": 1, "tree": 2, "sun": 3, "car": 4, "boat": 5, "bird": 6}
QUADRANT_LABEL = ("cat", "dog", "tree", "sun")  # TL, TR, BL, BR
SPEC = stand_in_spec("planted-scene", D, "planted scene features", has_text=True)


class SceneBackbone(Backbone):
    """See the module notes. ``inputs`` records every model input (B, S, S) grey in [0, 1]."""

    def __init__(self, fine_tuned: bool = False, cls: np.ndarray | None = None) -> None:
        super().__init__(
            SPEC,
            nn.Identity(),
            WeightsInfo("planted", None, "random", fine_tuned),
            torch.device("cpu"),
        )
        mix = cls if cls is not None else E[0] + 0.6 * E[1] + 0.3 * E[2] + 0.1 * E[3] + E[8]
        self.cls = mix / np.linalg.norm(mix)
        self.inputs: list[np.ndarray] = []
        self.text_calls = 0

    def _grey(self, x: torch.Tensor) -> np.ndarray:
        mean = torch.tensor(SPEC.mean).view(1, 3, 1, 1)
        std = torch.tensor(SPEC.std).view(1, 3, 1, 1)
        return (x * std + mean).mean(dim=1).numpy()  # (B, S, S), 1 = paper

    def encode_patches(self, x: torch.Tensor, **_: object) -> tuple[torch.Tensor, torch.Tensor]:
        self.inputs.append(self._grey(x))
        b, g = x.shape[0], SPEC.input_size // SPEC.patch_size
        i, j = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        quadrant = 2 * (i >= g // 2) + (j >= g // 2)  # (g, g)
        patches = np.broadcast_to(E[quadrant], (b, g, g, D)).copy()
        return torch.from_numpy(np.tile(self.cls, (b, 1))), torch.from_numpy(patches)

    def encode_global(self, x: torch.Tensor) -> torch.Tensor:
        ink = 1.0 - self._grey(x)  # (B, S, S)
        h = SPEC.input_size // 2
        per_q = np.stack(
            [
                ink[:, :h, :h].sum((1, 2)),
                ink[:, :h, h:].sum((1, 2)),
                ink[:, h:, :h].sum((1, 2)),
                ink[:, h:, h:].sum((1, 2)),
            ],
            axis=1,
        )
        return torch.from_numpy(E[np.argmax(per_q, axis=1)])

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        self.text_calls += 1
        rows = []
        for t in texts:
            words = [WORDS[w] for w in re.findall(r"[a-z]+", t.lower()) if w in WORDS]
            rows.append(E[words[0]] if words else E[7])
        return torch.from_numpy(np.stack(rows))


def ring(cx: float, cy: float, r: float, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def quadrant_sketch() -> tuple[Sketch, list[str]]:
    """Five strokes on a 300×200 canvas, the drawing in its top-left part (so the model's framing
    and the canvas differ): a ring in each quadrant of the drawing's box and a short line in the
    top-left one. Returns the sketch and each stroke's true label."""
    strokes = (
        Stroke(ring(42, 42, 10), id="tl"),
        Stroke(ring(98, 42, 10), id="tr"),
        Stroke(ring(42, 98, 10), id="bl"),
        Stroke(ring(98, 98, 10), id="br"),
        Stroke(np.array([[35.0, 30.0], [48.0, 36.0]]), id="tl2"),
    )
    return Sketch(strokes=strokes, width=300, height=200), ["cat", "dog", "tree", "sun", "cat"]
