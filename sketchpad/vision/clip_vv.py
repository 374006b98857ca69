"""CLIP's vision tower with the v-v ("surgery") path of CLIP Surgery, functionally.

DESIGN §4.2: in each of the last ``n_vv`` blocks, ``h = ln_1(x_ori)`` gives the usual per-head
q, k, v (from ``attn.in_proj_weight/bias``). The original stream gets ``softmax(q kᵀ/√d) v``
then its MLP as usual; a second stream, started as the input of the first of those blocks,
adds ``softmax(v vᵀ/√d) v`` through the same ``out_proj`` and skips ``ln_2`` and the MLP.
After the last block the CLS token comes from the original stream, the patches from the new
one; both then go through ``ln_post`` and ``@ proj`` into the joint space. No parameters are
added and none is modified: positional embeddings for other input sizes are interpolated per
call, never written back into the model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sketchpad.vision.protocols import ClipVisionTower, ResidualBlock


def interpolated_pos_embed(visual: ClipVisionTower, grid_hw: tuple[int, int]) -> torch.Tensor:
    """The tower's positional embedding for a ``grid_hw`` patch grid: (1 + gh·gw, D).

    The patch part is resampled bicubically from the trained square grid; the class position
    is kept. The model's parameter is left as it is.
    """
    pos = visual.positional_embedding  # (1 + g0², D)
    n0 = pos.shape[0] - 1
    g0 = math.isqrt(n0)
    if g0 * g0 != n0:
        raise ValueError(f"positional embedding of {n0} patches is not a square grid")
    if tuple(grid_hw) == (g0, g0):
        return pos
    patch = pos[1:].reshape(1, g0, g0, -1).permute(0, 3, 1, 2).float()
    patch = F.interpolate(patch, size=grid_hw, mode="bicubic", align_corners=False)
    patch = patch.permute(0, 2, 3, 1).reshape(grid_hw[0] * grid_hw[1], -1).to(pos.dtype)
    return torch.cat([pos[:1], patch], dim=0)


def _embed(visual: ClipVisionTower, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """open_clip's ``_embeds`` with a positional embedding fitted to the input's grid."""
    x = visual.conv1(x)  # (B, D, gh, gw)
    gh, gw = x.shape[-2:]
    x = x.flatten(2).transpose(1, 2)  # (B, gh·gw, D)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1)  # (B, 1 + T, D)
    x = x + interpolated_pos_embed(visual, (gh, gw)).to(x.dtype)
    x = visual.patch_dropout(x)
    return visual.ln_pre(x), (int(gh), int(gw))


def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = t.shape
    return t.reshape(b, n, heads, d // heads).transpose(1, 2)  # (B, nh, N, hd)


def _merge_heads(t: torch.Tensor) -> torch.Tensor:
    b, nh, n, hd = t.shape
    return t.transpose(1, 2).reshape(b, n, nh * hd)  # (B, N, D)


def surgery_block(
    block: ResidualBlock, x_ori: torch.Tensor, x_vv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One residual block on both streams. Returns (x_ori, x_vv), each (B, N, D)."""
    attn: nn.MultiheadAttention = block.attn
    h = block.ln_1(x_ori)
    qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)  # (B, N, 3D)
    q, k, v = (_split_heads(t, attn.num_heads) for t in qkv.chunk(3, dim=-1))
    # Both use scale 1/√hd (scaled_dot_product_attention's default).
    qk = _merge_heads(F.scaled_dot_product_attention(q, k, v))
    vv = _merge_heads(F.scaled_dot_product_attention(v, v, v))
    x_ori = x_ori + block.ls_1(attn.out_proj(qk))
    x_ori = x_ori + block.ls_2(block.mlp(block.ln_2(x_ori)))
    x_vv = x_vv + block.ls_1(attn.out_proj(vv))
    return x_ori, x_vv


def _check_tower(visual: ClipVisionTower) -> None:
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != (
        "tok"
    ):
        raise ValueError("the v-v path needs a CLS-token ViT tower (no attention pooling)")
    if getattr(visual, "final_ln_after_pool", False):
        raise ValueError("the v-v path needs ln_post applied before pooling")
    block = visual.transformer.resblocks[0]
    if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
        raise ValueError("the v-v path needs nn.MultiheadAttention blocks")


def image_tokens(
    visual: ClipVisionTower, x: torch.Tensor, *, n_vv: int = 6
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Run the vision tower once with both streams (differentiable: training uses it; the
    app calls :func:`encode_image_tokens`, the same without gradients).

    Args:
        visual: an open_clip ``VisionTransformer`` (``protocols.clip_tower(model)``).
        x: (B, 3, H, W) normalised images; H, W multiples of the patch size (any size:
            positional embeddings are interpolated).
        n_vv: number of final blocks with the v-v stream; 0 gives the plain path (patches from
            the original stream).

    Returns:
        pooled: (B, E) projected CLS from the original stream (equals ``visual(x)``).
        patches: (B, gh·gw, E) projected patch tokens (v-v stream unless ``n_vv`` is 0).
        grid_hw: (gh, gw).
    """
    _check_tower(visual)
    blocks = visual.transformer.resblocks
    n_vv = max(0, min(int(n_vv), len(blocks)))
    x_ori, grid_hw = _embed(visual, x)
    first_vv = len(blocks) - n_vv
    for block in blocks[:first_vv]:
        x_ori = block(x_ori)
    x_vv = x_ori
    for block in blocks[first_vv:]:
        x_ori, x_vv = surgery_block(block, x_ori, x_vv)
    pooled = visual.ln_post(x_ori[:, 0])
    patches = visual.ln_post((x_vv if n_vv else x_ori)[:, 1:])
    if visual.proj is not None:
        pooled, patches = pooled @ visual.proj, patches @ visual.proj
    return pooled, patches, grid_hw


@torch.no_grad()
def encode_image_tokens(
    visual: ClipVisionTower, x: torch.Tensor, *, n_vv: int = 6
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """:func:`image_tokens` without gradients."""
    return image_tokens(visual, x, n_vv=n_vv)


def image_pooled(visual: ClipVisionTower, x: torch.Tensor) -> torch.Tensor:
    """(B, E) projected CLS for (B, 3, H, W) images of any patch-multiple size (plain path),
    differentiable."""
    x, _ = _embed(visual, x)
    x = visual.transformer(x)
    pooled = visual.ln_post(x[:, 0])
    return pooled @ visual.proj if visual.proj is not None else pooled


@torch.no_grad()
def encode_image_pooled(visual: ClipVisionTower, x: torch.Tensor) -> torch.Tensor:
    """:func:`image_pooled` without gradients."""
    return image_pooled(visual, x)


def penultimate_patch_tokens(
    visual: ClipVisionTower, x: torch.Tensor
) -> tuple[torch.Tensor, tuple[int, int]]:
    """The patch tokens after the second-to-last block, before ``ln_post`` and the projection
    (SketchFusion's CLIP features, seed 003 §5.1): (B, gh·gw, D) and the grid (gh, gw)."""
    x, grid_hw = _embed(visual, x)
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    return x[:, 1:], grid_hw
