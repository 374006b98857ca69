"""Planted features: stand-in backbones whose features a test chooses (shared by the vision,
gallery, search, engine and window tests).

- :class:`PlantedBackbone`: patches that are mostly pure red in the model input get the
  sketch's embedding E0; every other patch gets an orthogonal E1; every sketch is E0.
- :class:`ReactiveBackbone`: what is drawn matters. Photo patches get the basis vector of their
  colour (pure red E0, pure green E2, pure blue E3, anything else E1); a sketch's embedding is
  where its ink lies in the model's view (ink left of the centre line → E0 "red", right of it
  → E2 "green", normalised); words name colours ("red", "green", "blue"). So a part query, a
  composed query or words are told apart by the photos they find, not by request fields.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.vision.backbone import Backbone, WeightsInfo
from sketchpad.vision.registry import OPENAI_MEAN, OPENAI_STD, BackboneSpec

D = 8
E0, E1 = np.eye(D, dtype=np.float32)[0], np.eye(D, dtype=np.float32)[1]


def stand_in_spec(spec_id: str, dim: int, description: str, **extra: object) -> BackboneSpec:
    """The spec of a test stand-in: a 64 px input, 16 px patches, features of ``dim``."""
    return BackboneSpec(
        id=spec_id,
        family="open_clip",
        arch="stand-in",
        description=description,
        use="tests",
        pretrained_tag="none",
        hf_repo="none/none",
        hf_files=("none.safetensors",),
        input_size=64,
        patch_size=16,
        width=dim,
        embed_dim=dim,
        depth=1,
        mean=OPENAI_MEAN,
        std=OPENAI_STD,
        testing=True,
        **extra,  # type: ignore[arg-type]
    )


SPEC = stand_in_spec("planted", D, "planted features")
#: The reactive stand-in's spec: the same id (tests load "planted"), with a text tower.
REACTIVE_SPEC = stand_in_spec("planted", D, "planted features that react", has_text=True)
E2, E3, E_TEXT = np.eye(D, dtype=np.float32)[2], np.eye(D, dtype=np.float32)[3], np.eye(D)[7]
#: Pure colours of planted objects → their feature direction.
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
COLOUR_WORDS = {"red": E0, "green": E2, "blue": E3}


class PlantedBackbone(Backbone):
    """Sketch → e0. Photo patch → e0 if at least half its pixels are pure red, else e1."""

    def __init__(self, fine_tuned: bool = False) -> None:
        super().__init__(
            SPEC,
            nn.Identity(),
            WeightsInfo("planted", None, "random", fine_tuned),
            torch.device("cpu"),
        )
        self.photo_batches: list[int] = []

    def _rgb(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(SPEC.mean).view(1, 3, 1, 1)
        std = torch.tensor(SPEC.std).view(1, 3, 1, 1)
        return x * std + mean  # (B, 3, H, W) in [0, 1]

    def encode_global(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.tile(E0, (x.shape[0], 1)))

    def encode_patches(self, x: torch.Tensor, **_: object) -> tuple[torch.Tensor, torch.Tensor]:
        self.photo_batches.append(x.shape[0])
        rgb = self._rgb(x)
        red = ((rgb[:, 0] > 0.8) & (rgb[:, 1] < 0.2) & (rgb[:, 2] < 0.2)).float()
        p = SPEC.patch_size
        frac = nn.functional.avg_pool2d(red[:, None], p)[:, 0]  # (B, gh, gw)
        obj = (frac >= 0.5)[..., None].float()
        patches = obj * torch.from_numpy(E0) + (1 - obj) * torch.from_numpy(E1)
        return torch.from_numpy(np.tile(E1, (x.shape[0], 1))), patches


class ReactiveBackbone(PlantedBackbone):
    """See the module docstring. Counts its forwards: ``sketch_calls`` (sketch encoder),
    ``text_calls`` (text encoder)."""

    def __init__(self, fine_tuned: bool = False) -> None:
        super().__init__(fine_tuned)
        self.spec = REACTIVE_SPEC
        self.sketch_calls = 0
        self.text_calls = 0

    def encode_patches(self, x: torch.Tensor, **_: object) -> tuple[torch.Tensor, torch.Tensor]:
        """A patch: the mix of its colours' directions by the fraction of its pixels of each
        (a patch half covered by a red object points half-way between E0 and E1), so objects
        that cover a patch partly score lower than those that fill one."""
        self.photo_batches.append(x.shape[0])
        rgb = self._rgb(x)
        r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        p = SPEC.patch_size
        pure = {
            0: (r > 0.8) & (g < 0.2) & (b < 0.2),
            2: (g > 0.8) & (r < 0.2) & (b < 0.2),
            3: (b > 0.8) & (r < 0.2) & (g < 0.2),
        }
        eye = torch.eye(D)
        rest = torch.ones(x.shape[0], x.shape[2] // p, x.shape[3] // p)
        patches = torch.zeros(*rest.shape, D)
        for k, mask in pure.items():
            frac = nn.functional.avg_pool2d(mask[:, None].float(), p)[:, 0]  # (B, gh, gw)
            patches += frac[..., None] * eye[k]
            rest -= frac
        patches += rest.clamp(min=0.0)[..., None] * eye[1]
        return torch.from_numpy(np.tile(E1, (x.shape[0], 1))), patches

    def encode_global(self, x: torch.Tensor) -> torch.Tensor:
        self.sketch_calls += 1
        return self.sketch_embedding(x)

    def sketch_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """A sketch: its ink left of the view's centre line pulls towards E0, right of it
        towards E2."""
        ink = 1.0 - self._rgb(x).mean(dim=1)  # (B, S, S), 0 = paper
        half = ink.shape[2] // 2
        left, right = ink[:, :, :half].sum((1, 2)), ink[:, :, half:].sum((1, 2))
        emb = left[:, None] * torch.from_numpy(E0) + right[:, None] * torch.from_numpy(E2)
        empty = (left + right) <= 0
        emb[empty] = torch.from_numpy(E1)
        return emb

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """A prompt: a direction every prompt shares plus the colours it names."""
        self.text_calls += 1
        rows = []
        for t in texts:
            v = E_TEXT.astype(np.float32).copy()
            for word in re.findall(r"[a-z]+", t.lower()):
                v = v + COLOUR_WORDS.get(word, 0.0)
            rows.append(v)
        return torch.from_numpy(np.stack(rows).astype(np.float32))


def photo(
    hw: tuple[int, int],
    boxes: list[tuple[int, int, int, int]],
    colour: tuple[int, int, int] = RED,
) -> np.ndarray:
    """A grey photo with pure ``colour`` rectangles (x0, y0, x1, y1), x1/y1 exclusive."""
    im = np.full((*hw, 3), 90, dtype=np.uint8)
    im[..., 1] = 140
    for x0, y0, x1, y1 in boxes:
        im[y0:y1, x0:x1] = colour
    return im


def coloured_photo(
    hw: tuple[int, int], objects: dict[tuple[int, int, int], list[tuple[int, int, int, int]]]
) -> np.ndarray:
    """A grey photo with rectangles of several pure colours: {colour: boxes}."""
    im = photo(hw, [])
    for colour, boxes in objects.items():
        for x0, y0, x1, y1 in boxes:
            im[y0:y1, x0:x1] = colour
    return im


#: A gallery for queries told apart by their results: name → {colour: boxes} (128 × 128).
COLOUR_GALLERY = {
    "red.png": {RED: [(32, 32, 96, 96)]},
    "green.png": {GREEN: [(32, 32, 96, 96)]},
    "blue.png": {BLUE: [(32, 32, 96, 96)]},
    "red_green.png": {RED: [(0, 32, 32, 96)], GREEN: [(96, 32, 128, 96)]},
    "none.png": {},
}

#: A sketch of two strokes: one on the left of the drawing (→ "red"), one on the right
#: (→ "green"), each an L so its own bounding box is not a line.
LEFT = Stroke(np.array([[0.0, 0.0], [0.0, 40.0], [20.0, 40.0]]), id="left")
RIGHT = Stroke(np.array([[80.0, 0.0], [80.0, 40.0], [100.0, 40.0]]), id="right")
TWO_SIDES = Sketch(strokes=(LEFT, RIGHT), width=100, height=100)


def box_mask(hw: tuple[int, int], boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    m = np.zeros(hw, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


SKETCH = Sketch(strokes=(Stroke(np.array([[0.0, 0.0], [10.0, 10.0]])),), width=100, height=100)

# (photo size, red boxes): boxes sit on the photo's patch grid (the photo maps onto the 4×4
# grid of the 64 px input: 32 px photo patches for 128 px photos).
GALLERY = [
    ((128, 128), [(32, 32, 96, 96)]),  # one square object
    ((128, 128), []),  # nothing
    ((128, 128), [(0, 0, 32, 32), (64, 64, 128, 128)]),  # two instances
    ((64, 128), [(32, 0, 64, 32)]),  # landscape: content rows 1–2 of the grid
    ((128, 64), [(0, 64, 32, 128)]),  # portrait
    ((128, 128), []),
    ((128, 128), []),
]


def corner_zones(hw: tuple[int, int], boxes: list[tuple[int, int, int, int]], r: int) -> np.ndarray:
    """Pixels within ``r`` (in x and in y) of a box corner: bilinear upsampling rounds a
    rectangle's corners off (the map there is a product of two ramps), nothing else."""
    z = np.zeros(hw, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        for cx in (x0, x1):
            for cy in (y0, y1):
                z[max(0, cy - r) : cy + r, max(0, cx - r) : cx + r] = True
    return z
