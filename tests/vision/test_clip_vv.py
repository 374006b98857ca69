"""The v-v ("surgery") path: the original stream is open_clip's own forward, the new stream
is the hand-written formula, positional embeddings are interpolated without touching the
model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from sketchpad.vision import clip_vv
from sketchpad.vision.backbone import Backbone, create_backbone


@pytest.fixture(scope="module")
def tiny() -> Backbone:
    return create_backbone("test-clip-tiny", pretrained=False, device="cpu", seed=3)


def test_original_stream_reproduces_open_clip(tiny: Backbone) -> None:
    visual = tiny.model.visual
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    visual.output_tokens = True
    try:
        ref_pooled, ref_tokens = visual(x)
    finally:
        visual.output_tokens = False
    for n_vv in (0, 1, 6):
        pooled, patches, grid = clip_vv.encode_image_tokens(visual, x, n_vv=n_vv)
        assert grid == (4, 4)
        torch.testing.assert_close(pooled, ref_pooled, atol=1e-5, rtol=1e-5)
    # The plain path's patches are open_clip's tokens, projected.
    _, plain, _ = clip_vv.encode_image_tokens(visual, x, n_vv=0)
    torch.testing.assert_close(plain, ref_tokens @ visual.proj, atol=1e-5, rtol=1e-5)
    was, tiny.cpu_bf16 = tiny.cpu_bf16, False  # exact float32 (bfloat16: test_features)
    try:
        torch.testing.assert_close(tiny.encode_global(x), visual(x), atol=1e-5, rtol=1e-5)
    finally:
        tiny.cpu_bf16 = was


def _layer_norm(x: np.ndarray, ln: torch.nn.LayerNorm) -> np.ndarray:
    w, b = ln.weight.detach().double().numpy(), ln.bias.detach().double().numpy()
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + ln.eps) * w + b


def test_new_stream_matches_a_hand_computation(tiny: Backbone) -> None:
    """Two blocks, the last with the v-v stream: x_vv = x + out_proj(softmax(v vᵀ/√hd) v)
    per head, with v from ln_1(x); then ln_post and proj. Computed with explicit loops."""
    visual = tiny.model.visual
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    _, patches, _ = clip_vv.encode_image_tokens(visual, x, n_vv=1)

    with torch.no_grad():
        tokens, _ = clip_vv._embed(visual, x)
        x0 = visual.transformer.resblocks[0](tokens)[0].double().numpy()  # (N, D)
    block = visual.transformer.resblocks[1]
    attn = block.attn
    d = x0.shape[1]
    heads = attn.num_heads
    hd = d // heads
    w_in = attn.in_proj_weight.detach().double().numpy()
    b_in = attn.in_proj_bias.detach().double().numpy()
    h = _layer_norm(x0, block.ln_1)
    v = h @ w_in[2 * d :].T + b_in[2 * d :]
    out = np.zeros_like(v)
    for k in range(heads):
        vh = v[:, k * hd : (k + 1) * hd]
        for i in range(v.shape[0]):
            logits = np.array([vh[i] @ vh[j] / np.sqrt(hd) for j in range(v.shape[0])])
            a = np.exp(logits - logits.max())
            a /= a.sum()
            out[i, k * hd : (k + 1) * hd] = sum(a[j] * vh[j] for j in range(v.shape[0]))
    w_o = attn.out_proj.weight.detach().double().numpy()
    b_o = attn.out_proj.bias.detach().double().numpy()
    x_vv = x0 + out @ w_o.T + b_o
    expect = _layer_norm(x_vv[1:], visual.ln_post) @ visual.proj.detach().double().numpy()
    np.testing.assert_allclose(patches[0].double().numpy(), expect, atol=1e-4, rtol=1e-4)
    # And it differs from the plain path (the test can fail).
    _, plain, _ = clip_vv.encode_image_tokens(visual, x, n_vv=0)
    assert not torch.allclose(plain, patches, atol=1e-3)


def test_larger_input_interpolates_without_touching_the_model(tiny: Backbone) -> None:
    visual = tiny.model.visual
    before = visual.positional_embedding.detach().clone()
    x = torch.randn(2, 3, 96, 128)
    pooled, patches, grid = clip_vv.encode_image_tokens(visual, x)
    assert grid == (6, 8) and patches.shape == (2, 48, 32) and pooled.shape == (2, 32)
    assert torch.equal(visual.positional_embedding, before)
    pos = clip_vv.interpolated_pos_embed(visual, (4, 4))
    assert pos is visual.positional_embedding  # the trained size is used as is


def test_backbone_rejects_sizes_off_the_patch_grid(tiny: Backbone) -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        tiny.encode_patches(torch.zeros(1, 3, 60, 64))


@pytest.mark.parametrize("bid", ["test-clip-tiny", "test-dinov2-tiny"])
def test_every_family_gives_grids_for_any_patch_multiple(bid: str) -> None:
    bb = create_backbone(bid, pretrained=False, device="cpu")
    p = bb.spec.patch_size
    g, patches = bb.encode_patches(torch.randn(2, 3, 4 * p, 6 * p))
    assert g.shape == (2, bb.embed_dim) and patches.shape == (2, 4, 6, bb.embed_dim)
    assert bb.encode_global(torch.randn(1, 3, 4 * p, 4 * p)).shape == (1, bb.embed_dim)


def _vv_attention(x_ori: np.ndarray, block: Any) -> np.ndarray:
    """out_proj(softmax(v vᵀ/√hd) v) per head, v from ln_1(x_ori), by explicit loops (N, D)."""
    attn = block.attn
    d = x_ori.shape[1]
    heads = attn.num_heads
    hd = d // heads
    w_in = attn.in_proj_weight.detach().double().numpy()
    b_in = attn.in_proj_bias.detach().double().numpy()
    v = _layer_norm(x_ori, block.ln_1) @ w_in[2 * d :].T + b_in[2 * d :]
    out = np.zeros_like(v)
    for k in range(heads):
        vh = v[:, k * hd : (k + 1) * hd]
        for i in range(v.shape[0]):
            logits = np.array([vh[i] @ vh[j] / np.sqrt(hd) for j in range(v.shape[0])])
            a = np.exp(logits - logits.max())
            a /= a.sum()
            out[i, k * hd : (k + 1) * hd] = sum(a[j] * vh[j] for j in range(v.shape[0]))
    w_o = attn.out_proj.weight.detach().double().numpy()
    b_o = attn.out_proj.bias.detach().double().numpy()
    return out @ w_o.T + b_o


def test_the_new_stream_over_two_blocks_matches_a_hand_computation(tiny: Backbone) -> None:
    """Both blocks with the v-v stream (DESIGN §4.2): the new stream starts as the input of the
    first of them and accumulates each block's v-v attention, which every block computes from
    the *original* stream's ln_1; the original stream runs as open_clip's blocks do."""
    visual = tiny.model.visual
    blocks = visual.transformer.resblocks
    assert len(blocks) == 2
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    pooled, patches, _ = clip_vv.encode_image_tokens(visual, x, n_vv=2)

    with torch.no_grad():
        tokens, _ = clip_vv._embed(visual, x)
        x_ori = [tokens[0].double().numpy()]
        for block in blocks:  # the original stream: open_clip's own blocks
            x_ori.append(block(torch.from_numpy(x_ori[-1]).float()[None])[0].double().numpy())
    x_vv = x_ori[0].copy()
    for k, block in enumerate(blocks):
        x_vv = x_vv + _vv_attention(x_ori[k], block)
    proj = visual.proj.detach().double().numpy()
    expect = _layer_norm(x_vv[1:], visual.ln_post) @ proj
    np.testing.assert_allclose(patches[0].double().numpy(), expect, atol=1e-4, rtol=1e-4)
    cls = _layer_norm(x_ori[-1][:1], visual.ln_post) @ proj  # CLS from the original stream
    np.testing.assert_allclose(pooled.double().numpy(), cls, atol=1e-4, rtol=1e-4)
    _, one, _ = clip_vv.encode_image_tokens(visual, x, n_vv=1)
    assert not torch.allclose(one, patches, atol=1e-3)  # the second block's term matters
