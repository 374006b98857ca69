"""A backbone's encoders with gradients, exactly the paths the app uses at inference.

- sketch global: CLIP's projected CLS (original path), DINOv2's CLS after the final norm;
- photo patches: CLIP's v-v ("surgery") stream projected into the joint space (or the plain
  tokens), DINOv2's patch tokens after the final norm.

Images come in as (B, 3, H, W) float tensors in [0, 1]; normalisation with the backbone's
mean/std happens here, so losses can mask photos before it (``P ⊙ M``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sketchpad.vision import clip_vv
from sketchpad.vision.protocols import clip_tower, timm_vit
from sketchpad.vision.registry import BackboneSpec

Tune = Literal["layernorm", "all", "none"]


class TrainableEncoder(nn.Module):
    """``spec``'s model wrapped for training (the model keeps its own key layout)."""

    mean: torch.Tensor  # (1, 3, 1, 1) buffers
    std: torch.Tensor

    def __init__(self, spec: BackboneSpec, model: nn.Module, *, patch_path: str = "vv") -> None:
        super().__init__()
        self.spec = spec
        self.model = model
        self.patch_path = patch_path
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    @property
    def is_clip(self) -> bool:
        return self.spec.family == "open_clip"

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def encode_global(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] → (B, d) global embeddings (not normalised)."""
        x = self.normalise(x)
        if self.is_clip:
            return clip_vv.image_pooled(clip_tower(self.model), x)
        return timm_vit(self.model).forward_features(x)[:, 0]

    def encode_patches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) images in [0, 1] → global (B, d) and patches (B, gh, gw, d)."""
        x = self.normalise(x)
        p = self.spec.patch_size
        gh, gw = x.shape[2] // p, x.shape[3] // p
        if self.is_clip:
            n_vv = 6 if self.patch_path == "vv" else 0
            pooled, patches, (gh, gw) = clip_vv.image_tokens(clip_tower(self.model), x, n_vv=n_vv)
        else:
            vit = timm_vit(self.model)
            out = vit.forward_features(x)
            pooled, patches = out[:, 0], out[:, vit.num_prefix_tokens :]
        return pooled, patches.reshape(x.shape[0], gh, gw, -1)

    def tuned_parameters(self, tune: Tune) -> list[nn.Parameter]:
        """Which parameters a run trains; the others get ``requires_grad = False``.

        ``layernorm``: the LayerNorm weights and biases of the vision tower (CLIP, DESIGN
        §4.5); ``all``: the whole vision tower (DINOv2; a model trained from scratch);
        ``none``: nothing (a frozen critic).
        """
        tower = clip_tower(self.model) if self.is_clip else self.model
        chosen: list[nn.Parameter] = []
        if tune == "all":
            chosen = list(tower.parameters())
        elif tune == "layernorm":
            for module in tower.modules():
                if isinstance(module, nn.LayerNorm):
                    chosen += list(module.parameters(recurse=False))
        elif tune != "none":
            raise ValueError(f"tune must be 'layernorm', 'all' or 'none', got {tune!r}")
        ids = {id(p) for p in chosen}
        for p in self.model.parameters():
            p.requires_grad_(id(p) in ids)
        return chosen


def default_tuning(spec: BackboneSpec) -> tuple[Tune, float]:
    """DESIGN §4.5: CLIP trains its LayerNorms at lr 1e-5, DINOv2 everything at lr 1e-6."""
    return ("layernorm", 1e-5) if spec.family == "open_clip" else ("all", 1e-6)
