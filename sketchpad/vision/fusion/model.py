"""SketchFusion's feature extractor (seed 003 §5.1), as a torch module.

The image goes two ways:

- Stable Diffusion: the VAE encoder's latent mean (× the VAE's scaling factor), noised to
  timestep ``t`` by the scheduler's ``add_noise`` with a fixed-seed noise image, one pass of
  the UNet with the null-prompt embedding. Forward hooks on the first three up-blocks capture
  their outputs; the pass stops after the third (the rest of the UNet is never run).
- CLIP: the vision tower's penultimate-layer patch tokens (no projection), through one small
  learnable 1-D convolution per captured block (kernel 1 over the token sequence: CLIP's width
  → that block's channels), laid out on CLIP's grid, resized bilinearly to the block's grid
  and *added to the block's output inside the UNet*, so later blocks see the injected features
  (the paper: "influencing the denoising process").

Each captured block is resized to the output grid (the image side ÷ ``map_stride``) and goes
through one bottleneck ResNet block of the aggregation network (its channels → ``out_dim``);
the branches are summed with softmax-normalised learnable branch weights (logits start at 0:
equal weights). The sketch's vector is the global max pool of the map.

SD and CLIP are frozen (``requires_grad`` off, eval mode); only the injection convolutions,
the aggregator and the branch logits train (:meth:`FusedExtractor.trainable_state_dict`).
The ablations of the seed's Table 6 are configuration: ``injection`` "none" (plain SD
features), "interpolate" (CLIP's channels resampled linearly to the block's, no
convolution), ``aggregation`` "interpolate" (no ResNet blocks: each branch's channels
resampled to ``out_dim``), ``branch_weights`` "fixed" (equal, not learnt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from sketchpad.vision.clip_vv import penultimate_patch_tokens
from sketchpad.vision.protocols import ClipVisionTower

Injection = Literal["conv", "interpolate", "none"]
Aggregation = Literal["resnet", "interpolate"]
BranchWeights = Literal["softmax", "fixed"]

#: The up-blocks whose outputs are captured (the seed: "the first three upsampling layers").
CAPTURED_BLOCKS = (0, 1, 2)


@dataclass(frozen=True)
class FusionConfig:
    """What the extractor computes, apart from the weights.

    Attributes:
        timestep: the diffusion timestep ``t`` the latent is noised to (0 … T−1). The seed's
            text lost its best value (§7 [v]: "we find that t = … produces the best results",
            robust over a wide range). 261 is DIFT's value measured for SD 2.1 semantic
            correspondence; it was not re-measured here (no pretrained weights offline): choose
            it with ``sketchpad bench fusion --timesteps …`` (validation pairs pick, held-out
            pairs report) once the weights are in place.
        noise_seed: seed of the noise image added to the latent (the same for every image).
        clip_size: CLIP's input side (pixels); the photo is resized to it.
        map_stride: image pixels per cell of the output map (the map is side ÷ stride).
        out_dim: channels of the output map (the feature dimension d).
        injection: "conv" (the paper), "interpolate" or "none" (ablations).
        aggregation: "resnet" (the paper) or "interpolate" (ablation).
        branch_weights: "softmax" over learnable logits (the paper's learnable weights) or
            "fixed" (equal weights, ablation).
        clip_only: no Stable Diffusion at all: each branch is the injected CLIP features alone
            at that block's grid (the CLIP-only baseline, trained the same way).
    """

    timestep: int = 261
    noise_seed: int = 0
    clip_size: int = 224
    map_stride: int = 16
    out_dim: int = 384
    injection: Injection = "conv"
    aggregation: Aggregation = "resnet"
    branch_weights: BranchWeights = "softmax"
    clip_only: bool = False

    def __post_init__(self) -> None:
        if self.clip_only and self.injection == "none":
            raise ValueError("clip_only needs an injection (conv or interpolate)")
        if self.timestep < 0:
            raise ValueError(f"timestep must be ≥ 0, got {self.timestep}")
        if self.map_stride < 1 or self.out_dim < 1 or self.clip_size < 1:
            raise ValueError("map_stride, out_dim and clip_size must be positive")
        for name, value, allowed in (
            ("injection", self.injection, ("conv", "interpolate", "none")),
            ("aggregation", self.aggregation, ("resnet", "interpolate")),
            ("branch_weights", self.branch_weights, ("softmax", "fixed")),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


class BottleneckBlock(nn.Module):
    """A ResNet bottleneck block (1×1 → 3×3 → 1×1, GroupNorm, ReLU) with a 1×1 projection
    shortcut: ``in_ch`` → ``out_ch`` at the same resolution (as the aggregation network of
    Diffusion Hyperfeatures, which the seed follows)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = max(out_ch // 4, 1)
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(mid), mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(mid), mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.norm3 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = F.relu(self.norm2(self.conv2(h)))
        h = self.norm3(self.conv3(h))
        return F.relu(h + self.shortcut(x))


def _groups(ch: int) -> int:
    for g in (32, 16, 8, 4, 2):
        if ch % g == 0 and ch // g >= 2:
            return g
    return 1


def _resample_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, H, W) → (B, channels, H, W) by linear interpolation along the channel axis."""
    b, c, h, w = x.shape
    if c == channels:
        return x
    flat = x.permute(0, 2, 3, 1).reshape(b * h * w, 1, c)
    out = F.interpolate(flat, size=channels, mode="linear", align_corners=True)
    return out.reshape(b, h, w, channels).permute(0, 3, 1, 2)


class _StopUNet(Exception):
    """Raised by the last capture hook: the remaining UNet blocks are not needed."""


class FusedExtractor(nn.Module):
    """SD + CLIP → one dense feature map (module docstring).

    Args:
        vae: a diffusers ``AutoencoderKL``.
        unet: a diffusers ``UNet2DConditionModel`` (with ≥ 3 up-blocks).
        alphas_cumprod: the noise schedule's ᾱ (T,) from the scheduler (``add_noise`` of
            DDPMScheduler computes ``√ᾱ_t·x + √(1−ᾱ_t)·ε`` from it; kept as a buffer so it
            follows the module's device and dtype).
        clip_visual: an open_clip vision tower (``protocols.clip_tower(model)``).
        null_embedding: (1, L, C) the UNet's cross-attention input for the empty prompt.
        config: what to compute.
        clip_mean, clip_std: CLIP's input normalisation (0–1 RGB scale).
    """

    alphas_cumprod: torch.Tensor
    null_embedding: torch.Tensor
    clip_mean: torch.Tensor
    clip_std: torch.Tensor

    def __init__(
        self,
        vae: nn.Module,
        unet: nn.Module,
        alphas_cumprod: torch.Tensor,
        clip_visual: nn.Module,
        null_embedding: torch.Tensor,
        config: FusionConfig,
        *,
        clip_mean: Sequence[float],
        clip_std: Sequence[float],
    ) -> None:
        super().__init__()
        if config.timestep >= alphas_cumprod.shape[0]:
            raise ValueError(
                f"timestep {config.timestep} is beyond the schedule's "
                f"{alphas_cumprod.shape[0]} steps"
            )
        self.config = config
        self.vae = vae
        self.unet = unet
        self.clip = clip_visual
        for frozen in (vae, unet, clip_visual):
            frozen.requires_grad_(False)
            frozen.eval()
        self.register_buffer("alphas_cumprod", alphas_cumprod.detach().float().clone())
        self.register_buffer("null_embedding", null_embedding.detach().float().clone())
        self.register_buffer("clip_mean", torch.tensor(list(clip_mean)).view(1, 3, 1, 1))
        self.register_buffer("clip_std", torch.tensor(list(clip_std)).view(1, 3, 1, 1))
        unet_cfg = cast(Any, unet).config
        up_channels = list(reversed(list(unet_cfg.block_out_channels)))
        if len(up_channels) < len(CAPTURED_BLOCKS):
            raise ValueError(f"the UNet has {len(up_channels)} up-blocks; 3 are needed")
        self.block_channels = tuple(up_channels[i] for i in CAPTURED_BLOCKS)
        self.vae_scale = float(cast(Any, vae).config.scaling_factor)
        self.vae_factor = 2 ** (len(cast(Any, vae).config.block_out_channels) - 1)
        clip_width = int(self._clip_tower.class_embedding.shape[-1])
        self.clip_width = clip_width
        self.inject = nn.ModuleList(
            [nn.Conv1d(clip_width, c, kernel_size=1) for c in self.block_channels]
            if config.injection == "conv"
            else []
        )
        self.aggregate = nn.ModuleList(
            [BottleneckBlock(c, config.out_dim) for c in self.block_channels]
            if config.aggregation == "resnet"
            else []
        )
        self.branch_logits = nn.Parameter(
            torch.zeros(len(CAPTURED_BLOCKS)), requires_grad=config.branch_weights == "softmax"
        )

    # -- parts ------------------------------------------------------------------------------
    @property
    def _clip_tower(self) -> ClipVisionTower:
        return cast(ClipVisionTower, self.clip)

    @property
    def out_dim(self) -> int:
        return self.config.out_dim

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained parts only: injection convolutions, aggregator, branch logits."""
        keep = ("inject.", "aggregate.", "branch_logits")
        return {k: v for k, v in self.state_dict().items() if k.startswith(keep)}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> FusedExtractor:
        """Train mode for the trained parts; SD and CLIP stay in eval mode."""
        super().train(mode)
        for frozen in (self.vae, self.unet, self.clip):
            frozen.eval()
        return self

    def branch_weights(self) -> torch.Tensor:
        """(3,) the weights the branches are summed with."""
        if self.config.branch_weights == "fixed":
            return torch.full_like(self.branch_logits, 1.0 / len(CAPTURED_BLOCKS))
        return torch.softmax(self.branch_logits, dim=0)

    # -- the two streams ----------------------------------------------------------------------
    def clip_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, 3, H, W) images in [−1, 1] → CLIP's penultimate patch tokens (B, T, D) and
        their grid."""
        x01 = (x + 1) / 2
        size = self.config.clip_size
        if x01.shape[-2:] != (size, size):
            x01 = F.interpolate(x01, size=(size, size), mode="bicubic", align_corners=False)
        x_clip = (x01 - self.clip_mean.to(x.dtype)) / self.clip_std.to(x.dtype)
        return penultimate_patch_tokens(self._clip_tower, x_clip)

    def noisy_latents(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [−1, 1] → the VAE latent mean, scaled, noised to ``timestep``
        with the fixed-seed noise (DDPMScheduler.add_noise's formula)."""
        vae = cast(Any, self.vae)
        with torch.no_grad():  # frozen, and nothing trained lies before it
            latents = vae.encode(x).latent_dist.mean * self.vae_scale
        gen = torch.Generator(device="cpu").manual_seed(self.config.noise_seed)
        noise = torch.randn((1, *latents.shape[1:]), generator=gen).to(latents)
        a = self.alphas_cumprod[self.config.timestep].to(latents.dtype)
        return a.sqrt() * latents + (1 - a).sqrt() * noise.expand_as(latents)

    def _injection(
        self, tokens: torch.Tensor | None, grid: tuple[int, int], k: int, hw: tuple[int, int]
    ) -> torch.Tensor | None:
        if tokens is None or self.config.injection == "none":
            return None
        b = tokens.shape[0]
        if self.config.injection == "conv":
            conv = cast(nn.Conv1d, self.inject[k])
            feat = conv(tokens.transpose(1, 2).to(conv.weight.dtype))  # (B, C_k, T)
            feat = feat.reshape(b, -1, *grid)
        else:
            feat = tokens.transpose(1, 2).reshape(b, -1, *grid)
            feat = _resample_channels(feat, self.block_channels[k])
        if feat.shape[-2:] != hw:
            feat = F.interpolate(feat, size=hw, mode="bilinear", align_corners=False)
        return feat

    def unet_features(
        self,
        x: torch.Tensor,
        clip_tokens: torch.Tensor | None = None,
        grid: tuple[int, int] = (0, 0),
    ) -> list[torch.Tensor]:
        """The outputs of the first three up-blocks (B, C_k, h_k, w_k), with the injected CLIP
        features added to each (none when ``clip_tokens`` is None)."""
        if self.config.clip_only:
            if clip_tokens is None:
                raise ValueError("clip_only needs CLIP's tokens")
            return self._clip_branches(x, clip_tokens, grid)
        latents = self.noisy_latents(x)
        b = latents.shape[0]
        t = torch.full((b,), self.config.timestep, device=latents.device, dtype=torch.long)
        context = self.null_embedding.to(latents.dtype).expand(b, -1, -1)
        captured: list[torch.Tensor] = []
        handles = []
        unet = cast(Any, self.unet)

        def hook(k: int) -> Any:
            def fn(_m: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
                add = self._injection(clip_tokens, grid, k, (out.shape[-2], out.shape[-1]))
                if add is not None:
                    out = out + add.to(out.dtype)
                captured.append(out)
                if k == CAPTURED_BLOCKS[-1]:
                    raise _StopUNet
                return out

            return fn

        try:
            for k in CAPTURED_BLOCKS:
                handles.append(unet.up_blocks[k].register_forward_hook(hook(k)))
            unet(latents, t, encoder_hidden_states=context)
        except _StopUNet:
            pass
        finally:
            for h in handles:
                h.remove()
        if len(captured) != len(CAPTURED_BLOCKS):
            raise RuntimeError(f"captured {len(captured)} up-block outputs, expected 3")
        return captured

    def _clip_branches(
        self, x: torch.Tensor, tokens: torch.Tensor, grid: tuple[int, int]
    ) -> list[torch.Tensor]:
        """The CLIP-only baseline's branches: the injections at each captured block's grid."""
        n_up = len(cast(Any, self.unet).config.block_out_channels)
        lat_h, lat_w = x.shape[-2] // self.vae_factor, x.shape[-1] // self.vae_factor
        out = []
        for k in CAPTURED_BLOCKS:
            f = 2 ** (n_up - 1 - k)
            feat = self._injection(tokens, grid, k, (lat_h // f, lat_w // f))
            assert feat is not None  # clip_only implies an injection
            out.append(feat)
        return out

    def aggregate_map(self, feats: Sequence[torch.Tensor], hw: tuple[int, int]) -> torch.Tensor:
        """The aggregation network: each branch resized to ``hw``, through its ResNet block
        (or channel-resampled), summed with the branch weights → (B, out_dim, h, w)."""
        weights = self.branch_weights()
        total: torch.Tensor | None = None
        for k, f in enumerate(feats):
            if f.shape[-2:] != hw:
                f = F.interpolate(f, size=hw, mode="bilinear", align_corners=False)
            if self.config.aggregation == "resnet":
                block = cast(BottleneckBlock, self.aggregate[k])
                f = block(f.to(block.conv1.weight.dtype))
            else:
                f = _resample_channels(f, self.config.out_dim)
            term = weights[k].to(f.dtype) * f
            total = term if total is None else total + term
        assert total is not None
        return total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [−1, 1] (H, W multiples of ``map_stride`` and of the VAE ×
        UNet downsampling) → the fused map (B, out_dim, H/stride, W/stride)."""
        tokens: torch.Tensor | None = None
        grid = (0, 0)
        if self.config.injection != "none":
            with torch.no_grad():
                tokens, grid = self.clip_tokens(x)
        feats = self.unet_features(x, tokens, grid)
        s = self.config.map_stride
        return self.aggregate_map(feats, (x.shape[-2] // s, x.shape[-1] // s))

    @staticmethod
    def global_vector(fmap: torch.Tensor) -> torch.Tensor:
        """(B, d, h, w) → (B, d): global max pooling (the sketch's vector)."""
        return fmap.amax(dim=(-2, -1))
