"""Planted features: a stand-in backbone whose patch features a test chooses (shared by the
vision and gallery tests).

Patches that are mostly pure red in the model input get the sketch's embedding E0; every
other patch gets an orthogonal E1.
"""

from __future__ import annotations

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


def photo(hw: tuple[int, int], boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """A grey photo with pure red rectangles (x0, y0, x1, y1), x1/y1 exclusive."""
    im = np.full((*hw, 3), 90, dtype=np.uint8)
    im[..., 1] = 140
    for x0, y0, x1, y1 in boxes:
        im[y0:y1, x0:x1] = (255, 0, 0)
    return im


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
