"""A convolutional patch stem for small ViTs (Xiao et al. 2021, "Early convolutions help
transformers see better"): a 3×3 convolution at full resolution, then per halving a stride-2
and a stride-1 3×3 convolution (each with a GroupNorm and GELU) down to the patch grid, then a
1×1 projection, in place of the single patch-sized convolution.

Only the tiny benchmark backbone (``bench-vit-tiny``) uses it: a ViT trained from scratch on a
CPU in minutes needs the locality a few convolutions give. It is a drop-in ``embed_layer`` for
timm's ``VisionTransformer``: timm's ``PatchEmbed`` does the bookkeeping (grid size, dynamic
image sizes, output format), only ``proj`` differs.
"""

from __future__ import annotations

import math
from typing import Any

from timm.layers.patch_embed import PatchEmbed
from torch import nn


class ConvStemPatchEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` whose projection is a stack of stride-2 convolutions."""

    def __init__(self, *args: Any, stem_width: int = 32, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(*args, **kwargs)
        patch = self.patch_size[0]
        if self.patch_size[0] != self.patch_size[1] or patch < 2 or patch & (patch - 1):
            raise ValueError(f"the convolutional stem needs a square power-of-two patch, {patch}")
        in_chans = self.proj.in_channels
        embed_dim = self.proj.out_channels
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, stem_width // 2, 3, padding=1),
            nn.GroupNorm(1, stem_width // 2),
            nn.GELU(),
        ]
        width, c_in = stem_width, stem_width // 2
        for _ in range(int(math.log2(patch))):
            layers += [
                nn.Conv2d(c_in, width, 3, stride=2, padding=1),
                nn.GroupNorm(1, width),
                nn.GELU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.GroupNorm(1, width),
                nn.GELU(),
            ]
            c_in, width = width, min(width * 2, embed_dim)
        layers.append(nn.Conv2d(c_in, embed_dim, 1))
        # timm declares proj a Conv2d; its forward only calls proj(x), which any module fits.
        self.proj = nn.Sequential(*layers)  # type: ignore[assignment]
