"""The scene labeller's trainable encoder (seed 001 §3, DESIGN §4.5), over an open_clip CLIP.

What the paper adds to CLIP's vision tower, and how it is done here:

- **Visual prompts** (§3.1.1): ``n_prompts`` learnable tokens appended after the positional
  embedding, so the tower's input is ``[VST, P_1…P_K, V_1…V_S]``; they have no position and go
  through ``ln_pre`` like the other tokens.
- **The two-path (v-v) tower in training** (§3.1.1): :meth:`SceneEncoder.encode_scene` runs
  the last ``n_vv`` blocks with CLIP Surgery's second stream (``clip_vv.surgery_block``); the
  VST comes from the original stream, the patch features from the v-v stream, both through
  ``ln_post`` and ``proj``.
- **Text cross-attention** (§3.2) in the category pass (:meth:`SceneEncoder.encode_category`):
  in each cross-attention block the category's text token CCT (L2-normalised, mapped to the
  tower's width by a learnable ``text_in`` linear layer, then the block's ``ln_1``) goes
  through the block's own query projection, and that query *replaces the VCT's query*. The
  VCT's attention then pools the sketch's values with weights chosen by the text: the text
  decides what is gathered, the sketch provides it (the update is a mixture of the sketch's
  values, so the text cannot simply be copied into the anchor). The released code's
  cross-attention ignores the text (REFERENCE §4); this one cannot. Patches keep their usual
  self-attention. The VCT after each of these blocks is read out (``ln_post``, ``proj``).
- **Which blocks**: the paper's layers 7, 10 and 12 (1-based, of 12) are mapped to a tower of
  depth L by ``max(1, floor(l·L/12 + 0.5))``, duplicates dropped (:func:`cross_attention_blocks`):
  12 blocks → 7, 10, 12; 24 (ViT-L) → 14, 20, 24; the 2-block test model → 1, 2.
- **Learnable threshold** (§3.2): the per-patch cosine map of a category is min-max normalised
  over the patches (per map: the axis the released code got wrong), upsampled bicubically,
  and thresholded softly, ``σ((m − θ)/τ)``, so ``θ`` (:attr:`SceneEncoder.threshold`) gets a
  gradient (the released code's hard threshold gets none).
- **What is tuned** (§3.3): the vision tower's LayerNorms, the prompts, the linear layers of the
  cross-attention (``text_in`` and the query/key/value and output projections of the
  cross-attention blocks), and θ (:meth:`SceneEncoder.tuned_parameters`).

Saving: :meth:`SceneEncoder.clip_state_dict` is the open_clip model's own state dict, which the
app's strict loader reads like any CLIP weights (inference uses the plain model, without
prompts or cross-attention); :meth:`SceneEncoder.extra_state_dict` holds the rest (``prompts``,
``text_in.<block>.weight/bias``, ``threshold``).

Images come in as (B, 3, H, W) float tensors in [0, 1] (normalised here, so masks can be
applied before); H and W are multiples of the patch size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sketchpad.train.encoders import TrainableEncoder
from sketchpad.vision import clip_vv
from sketchpad.vision.protocols import ClipVisionTower, clip_tower
from sketchpad.vision.registry import BackboneSpec

#: The paper's cross-attention layers (1-based) and the depth they refer to (ViT-B).
PAPER_CROSS_ATTENTION_LAYERS = (7, 10, 12)
PAPER_DEPTH = 12


def cross_attention_blocks(
    layers: Sequence[int], depth: int, reference_depth: int = PAPER_DEPTH
) -> tuple[int, ...]:
    """0-based indices of the blocks that get text cross-attention in a tower of ``depth`` blocks.

    Args:
        layers: 1-based layers of a ``reference_depth``-block tower (the paper: 7, 10, 12).
        depth: blocks of this tower.
        reference_depth: the depth ``layers`` refer to.

    Returns:
        Sorted, distinct indices; layer ``l`` maps to block ``max(1, floor(l·depth/ref + ½))``
        (1-based), so a 12-block tower keeps the paper's layers exactly.

    Raises:
        ValueError: no layer, or one outside ``1..reference_depth``.
    """
    if not layers:
        raise ValueError("cross-attention needs at least one layer")
    bad = [lay for lay in layers if not 1 <= int(lay) <= reference_depth]
    if bad or depth < 1:
        raise ValueError(
            f"cross-attention layers must be in 1..{reference_depth} (1-based), got {list(layers)}"
        )
    mapped = {max(1, math.floor(int(lay) * depth / reference_depth + 0.5)) for lay in layers}
    return tuple(sorted(b - 1 for b in mapped))


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = t.shape
    return t.reshape(b, n, heads, d // heads).transpose(1, 2)  # (B, nh, N, hd)


def _merge(t: torch.Tensor) -> torch.Tensor:
    b, nh, n, hd = t.shape
    return t.transpose(1, 2).reshape(b, n, nh * hd)  # (B, N, D)


def _check_tower(visual: ClipVisionTower) -> None:
    block = visual.transformer.resblocks[0]
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != (
        "tok"
    ):
        raise ValueError("the scene encoder needs a CLS-token ViT tower (no attention pooling)")
    if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
        raise ValueError("the scene encoder needs nn.MultiheadAttention blocks")


def minmax_maps(maps: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(P, gh, gw) → the same, each map scaled to [0, 1] over its own patches (differentiable)."""
    flat = maps.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(eps)).view_as(maps)


class SceneEncoder(nn.Module):
    """CLIP's vision tower with prompts, the v-v path, text cross-attention and a threshold.

    Args:
        spec: an open_clip backbone's spec.
        clip_model: its open_clip ``CLIP`` (trained in place: its LayerNorms and the attention
            of the cross-attention blocks change).
        n_prompts: visual prompt tokens S (the paper: 3); 0 for none.
        cross_attention_layers: 1-based layers of a ``reference_depth`` tower
            (:func:`cross_attention_blocks` maps them to this tower).
        reference_depth: the depth those layers refer to.
        n_vv: final blocks with the v-v stream in :meth:`encode_scene` (CLIP Surgery: 6).
        threshold: θ's initial value, in units of the min-max normalised map.
        threshold_temperature: τ of the soft threshold ``σ((m − θ)/τ)``.
        seed: seed of the new parameters' initialisation (prompts, ``text_in``).
    """

    def __init__(
        self,
        spec: BackboneSpec,
        clip_model: nn.Module,
        *,
        n_prompts: int = 3,
        cross_attention_layers: Sequence[int] = PAPER_CROSS_ATTENTION_LAYERS,
        reference_depth: int = PAPER_DEPTH,
        n_vv: int = 6,
        threshold: float = 0.5,
        threshold_temperature: float = 0.05,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if spec.family != "open_clip" or not spec.has_text:
            raise ValueError(f"{spec.id} is not a CLIP backbone: the scene labeller needs one")
        if n_prompts < 0:
            raise ValueError(f"n_prompts must be ≥ 0, got {n_prompts}")
        if threshold_temperature <= 0:
            raise ValueError(f"threshold_temperature must be > 0, got {threshold_temperature}")
        self.encoder = TrainableEncoder(spec, clip_model, patch_path="vv")
        visual = clip_tower(clip_model)
        _check_tower(visual)
        depth = len(visual.transformer.resblocks)
        width = int(visual.class_embedding.shape[-1])
        embed = int(spec.embed_dim)
        self.n_vv = max(0, min(int(n_vv), depth))
        self.ca_blocks = cross_attention_blocks(cross_attention_layers, depth, reference_depth)
        self.temperature = float(threshold_temperature)
        gen = torch.Generator().manual_seed(int(seed))
        # VPT's initialisation: uniform in ±√(6 / (3·p² + D)) (Xavier over the patch embedding).
        p = spec.patch_size
        bound = math.sqrt(6.0 / (3 * p * p + width))
        prompts = (torch.rand(n_prompts, width, generator=gen) * 2 - 1) * bound
        self.prompts = nn.Parameter(prompts)  # (S, D)
        self.text_in = nn.ModuleDict()
        for b in self.ca_blocks:
            lin = nn.Linear(embed, width)
            with torch.no_grad():
                lin.weight.copy_(torch.randn(width, embed, generator=gen) / math.sqrt(embed))
                lin.bias.zero_()
            self.text_in[str(b)] = lin
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))
        dev = visual.class_embedding.device
        self.to(dev)

    # -- pieces ----------------------------------------------------------------------------
    @property
    def clip(self) -> nn.Module:
        """The open_clip model (what the app loads)."""
        return self.encoder.model

    @property
    def visual(self) -> ClipVisionTower:
        return clip_tower(self.encoder.model)

    @property
    def n_prompts(self) -> int:
        return int(self.prompts.shape[0])

    def _tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, 3, H, W) images in [0, 1] → ``ln_pre([VST, patches, prompts])`` (B, 1+T+S, D)."""
        visual = self.visual
        x = visual.conv1(self.encoder.normalise(images))  # (B, D, gh, gw)
        gh, gw = int(x.shape[-2]), int(x.shape[-1])
        x = x.flatten(2).transpose(1, 2)  # (B, T, D)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + clip_vv.interpolated_pos_embed(visual, (gh, gw)).to(x.dtype)
        # No patch dropout: the grid must stay whole (CLIP's is off anyway).
        prompts = self.prompts.to(x.dtype).expand(x.shape[0], -1, -1)  # (B, S, D)
        x = torch.cat([x, prompts], dim=1)
        return visual.ln_pre(x), (gh, gw)

    def _project(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tower tokens (..., D) → joint space (..., E): ``ln_post`` then ``proj``."""
        out = self.visual.ln_post(tokens)
        return out @ self.visual.proj if self.visual.proj is not None else out

    def _cross_attention_block(
        self, index: int, x: torch.Tensor, text: torch.Tensor | None
    ) -> torch.Tensor:
        """Block ``index`` on (B, N, D) tokens; with ``text`` (B, E) the VCT's query is the
        text's (module docstring). Without text it equals ``block(x)``."""
        block = self.visual.transformer.resblocks[index]
        attn: nn.MultiheadAttention = block.attn
        h = block.ln_1(x)
        qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)  # (B, N, 3D)
        q, k, v = (_heads(t, attn.num_heads) for t in qkv.chunk(3, dim=-1))
        if text is not None:
            d = x.shape[-1]
            t = block.ln_1(self.text_in[str(index)](F.normalize(text, dim=-1).to(x.dtype)))
            bias = attn.in_proj_bias[:d] if attn.in_proj_bias is not None else None
            q_text = F.linear(t, attn.in_proj_weight[:d], bias)  # (B, D): W_q · CCT
            q_text = _heads(q_text.unsqueeze(1), attn.num_heads)  # (B, nh, 1, hd)
            q = torch.cat([q_text, q[:, :, 1:]], dim=2)
        o = _merge(F.scaled_dot_product_attention(q, k, v))
        x = x + block.ls_1(attn.out_proj(o))
        return x + block.ls_2(block.mlp(block.ln_2(x)))

    # -- the two passes --------------------------------------------------------------------
    def encode_scene(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Level I: the whole sketch through the two-path tower.

        Args:
            images: (B, 3, H, W) float in [0, 1].

        Returns:
            vst: (B, E) the VST from the original stream, projected (not normalised).
            patches: (B, gh, gw, E) patch features from the v-v stream (the original stream
                when ``n_vv`` is 0), projected, not normalised; patch (0, 0) top left.
        """
        blocks = self.visual.transformer.resblocks
        x, (gh, gw) = self._tokens(images)
        first_vv = len(blocks) - self.n_vv
        for block in blocks[:first_vv]:
            x = block(x)
        x_vv = x
        for block in blocks[first_vv:]:
            x, x_vv = clip_vv.surgery_block(block, x, x_vv)
        t = gh * gw
        vst = self._project(x[:, 0])
        patches = self._project((x_vv if self.n_vv else x)[:, 1 : 1 + t])
        return vst, patches.reshape(x.shape[0], gh, gw, -1)

    def encode_category(
        self, images: torch.Tensor, text: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """Level II: category sketches through the original stream with text cross-attention.

        Args:
            images: (P, 3, H, W) float in [0, 1], one category's part of a sketch each.
            text: (P, E) each image's category text embedding CCT (any norm), or None for
                plain self-attention everywhere.

        Returns:
            One (P, E) projected VCT per cross-attention block, in block order.
        """
        blocks = self.visual.transformer.resblocks
        x, _ = self._tokens(images)
        out: list[torch.Tensor] = []
        for i, block in enumerate(blocks[: self.ca_blocks[-1] + 1]):
            if i in self.ca_blocks:
                x = self._cross_attention_block(i, x, text)
                out.append(self._project(x[:, 0]))
            else:
                x = block(x)
        return out

    # -- categories → soft masks -------------------------------------------------------------
    @staticmethod
    def category_maps(patches: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Seed 001 Eq. 3: per-patch cosine of each patch grid with its category text.

        Args:
            patches: (P, gh, gw, E); text: (P, E).

        Returns:
            (P, gh, gw) cosines.
        """
        return torch.einsum("phwe,pe->phw", F.normalize(patches, dim=-1), F.normalize(text, dim=-1))

    def soft_mask(self, maps: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
        """Category maps (P, gh, gw) → soft masks (P, H, W) in (0, 1): min-max over each map's
        patches, bicubic upsampling (clamped to [0, 1]), ``σ((m − θ)/τ)``."""
        m = minmax_maps(maps)[:, None]
        up = F.interpolate(m, size=size_hw, mode="bicubic", align_corners=False)[:, 0]
        return torch.sigmoid((up.clamp(0.0, 1.0) - self.threshold) / self.temperature)

    # -- training and saving ---------------------------------------------------------------
    def tuned_parameters(self) -> list[nn.Parameter]:
        """The parameters a run trains (module docstring); every other one is frozen here."""
        chosen = self.encoder.tuned_parameters("layernorm")
        for b in self.ca_blocks:
            chosen += list(self.visual.transformer.resblocks[b].attn.parameters())
        chosen += list(self.text_in.parameters())
        if self.prompts.numel():
            chosen.append(self.prompts)
        chosen.append(self.threshold)
        ids = {id(p) for p in chosen}
        for p in self.parameters():
            p.requires_grad_(id(p) in ids)
        return chosen

    def clip_state_dict(self) -> dict[str, torch.Tensor]:
        """The open_clip model's state dict, in open_clip's key layout (strictly loadable by
        ``vision.weights.load_weights`` for this backbone)."""
        return self.clip.state_dict()

    def extra_state_dict(self) -> dict[str, torch.Tensor]:
        """What the app's CLIP has no place for: ``prompts`` (S, D), ``text_in.<block>.weight``
        (D, E) and ``.bias`` (D,) per cross-attention block (0-based), ``threshold`` ()."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}

    def load_extra_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Load :meth:`extra_state_dict`'s tensors, strictly (keys and shapes).

        Raises:
            ValueError: missing, unexpected or misshapen tensors.
        """
        mine = self.extra_state_dict()
        missing = sorted(set(mine) - set(sd))
        unexpected = sorted(set(sd) - set(mine))
        shapes = [k for k in mine if k in sd and tuple(sd[k].shape) != tuple(mine[k].shape)]
        if missing or unexpected or shapes:
            raise ValueError(
                f"scene extras do not fit: missing {missing}, unexpected {unexpected}, "
                f"other shapes {shapes}"
            )
        with torch.no_grad():
            for k, v in mine.items():
                v.copy_(sd[k].to(v.device, v.dtype))
