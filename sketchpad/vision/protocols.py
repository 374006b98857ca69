"""The parts of open_clip's and timm's models that Sketchpad reaches into, as Protocols.

open_clip ships no types, and ``nn.Module.__getattr__`` types every submodule, parameter and
buffer as ``Tensor | Module``; without these, each ``model.visual.transformer.resblocks[i]``
would be unchecked. A model is viewed through a protocol once, by :func:`clip_model`,
:func:`clip_tower` or :func:`timm_vit` (the only casts), after which every attribute the code
touches is checked against what is declared here. The declarations follow open_clip 2.x
(``CLIP``, ``VisionTransformer``, ``Transformer``, ``ResidualAttentionBlock``) and timm 1.x
(``VisionTransformer``); the registry builds only those.

:class:`PhotoEncoder` is the seam between the gallery's indexing and a segmenter.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:  # both import this module
    from sketchpad.vision.backbone import Backbone, PatchPath
    from sketchpad.vision.features import PhotoFeatures


class ResidualBlock(Protocol):
    """open_clip's ``ResidualAttentionBlock``: ``x + ls_1(attn(ln_1 x))``, then
    ``x + ls_2(mlp(ln_2 x))``, on (B, N, D) tokens."""

    attn: nn.MultiheadAttention
    ln_1: nn.Module
    ln_2: nn.Module
    ls_1: nn.Module
    ls_2: nn.Module
    mlp: nn.Module

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class BlockStack(Protocol):
    """open_clip's ``Transformer``: its blocks (an ``nn.ModuleList``) run in order."""

    resblocks: Sequence[ResidualBlock]

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class ClipVisionTower(Protocol):
    """open_clip's ``VisionTransformer`` (``CLIP.visual``), a CLS-token ViT of width D."""

    conv1: nn.Module  # the patch embedding: (B, 3, H, W) → (B, D, gh, gw)
    class_embedding: torch.Tensor  # (D,)
    positional_embedding: torch.Tensor  # (1 + g0², D), g0 the trained grid side
    patch_dropout: nn.Module
    ln_pre: nn.Module
    transformer: BlockStack
    ln_post: nn.Module
    proj: torch.Tensor | None  # (D, E) into the joint space

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def modules(self) -> Iterator[nn.Module]: ...


class ClipModel(Protocol):
    """open_clip's ``CLIP``: the vision tower and the text encoder."""

    visual: ClipVisionTower

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor: ...


class TimmViT(Protocol):
    """timm's ``VisionTransformer`` (DINOv2): ``forward_features`` gives (B, P + gh·gw, D)
    tokens after the final norm, the first ``num_prefix_tokens`` being CLS (and registers)."""

    num_prefix_tokens: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...


class PhotoEncoder(Protocol):
    """What indexing a folder needs of a segmenter (``vision.segmenter.Segmenter``, or the
    engine's out-of-memory-adaptive wrapper): the parts of the feature-cache key
    (``gallery.index.model_key``) and the photo encoder."""

    @property
    def backbone(self) -> Backbone: ...

    @property
    def input_size(self) -> int: ...

    @property
    def patch_path(self) -> PatchPath: ...

    def embed_photos(
        self, images: Sequence[np.ndarray], *, batch_size: int = 8
    ) -> list[PhotoFeatures]:
        """Features of (H, W, 3) uint8 RGB photos, in forwards of at most ``batch_size``."""
        ...


def clip_model(model: nn.Module) -> ClipModel:
    """``model`` (an open_clip ``CLIP``) seen through :class:`ClipModel`."""
    return cast(ClipModel, model)  # open_clip is untyped; the registry built a CLIP


def clip_tower(model: nn.Module) -> ClipVisionTower:
    """The vision tower of ``model`` (an open_clip ``CLIP``)."""
    return clip_model(model).visual


def timm_vit(model: nn.Module) -> TimmViT:
    """``model`` (a timm ``VisionTransformer``) seen through :class:`TimmViT`."""
    return cast(TimmViT, model)  # nn.Module's __getattr__ hides timm's own annotations
