"""The fused extractor as a :class:`~sketchpad.vision.backbone.Backbone`, so the search core,
the segmenter and the sketch encoder use it like any other: ``encode_patches`` gives its dense
map as (B, h, w, d) "patches" (one per ``map_stride`` pixels), ``encode_global`` the global
max pool (the sketch's vector, seed 003 §6).

``create_fusion_backbone`` resolves both models' weights (Stable Diffusion in diffusers'
layout: :mod:`sketchpad.vision.fusion.sd`; CLIP as its own registry entry), and optionally
loads a trained head (the injection convolutions, aggregator and branch weights) written by
``sketchpad train fusion`` (safetensors + JSON with ``"kind": "fusion"``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, cast

import torch

from sketchpad.vision.backbone import Backbone, PatchPath, WeightsInfo
from sketchpad.vision.errors import WeightsError
from sketchpad.vision.fusion import sd as SD
from sketchpad.vision.fusion.model import FusedExtractor, FusionConfig
from sketchpad.vision.hub import ProgressFn
from sketchpad.vision.protocols import clip_tower
from sketchpad.vision.registry import BackboneSpec, build_model, get_spec

log = logging.getLogger(__name__)

FUSION_KIND = "fusion"
_CONFIG_KEYS = tuple(FusionConfig.__dataclass_fields__)


def fusion_config(spec: BackboneSpec, **changes: Any) -> FusionConfig:
    """The extractor configuration of a registered fused backbone, with ``changes``."""
    if spec.family != "sketchfusion":
        raise ValueError(f"{spec.id} is not a SketchFusion backbone")
    fields = {k: v for k, v in spec.arch_overrides.items() if k in _CONFIG_KEYS}
    fields.update(changes)
    return FusionConfig(**fields)


class FusionBackbone(Backbone):
    """A :class:`FusedExtractor` behind the backbone interface (float32 in, float32 out)."""

    model: FusedExtractor

    @property
    def extractor(self) -> FusedExtractor:
        return self.model

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this: the VAE's and UNet's downsampling, and the
        map's stride."""
        unet: Any = cast(Any, self.model.unet).config  # diffusers' FrozenDict
        unet_factor = 2 ** (len(unet.block_out_channels) - 1)
        m = self.model.vae_factor * unet_factor
        s = self.model.config.map_stride
        return m * s // _gcd(m, s)

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(x.shape)}")
        m = self.size_multiple
        if x.shape[2] % m or x.shape[3] % m:
            raise ValueError(f"image sides {tuple(x.shape[2:])} must be multiples of {m}")
        return x.to(device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def dense_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised with the spec's mean/std (i.e. in [−1, 1]) → (B, d, h, w)."""
        return self.model(self._to_input(x)).float()

    @torch.no_grad()
    def encode_global(self, x: torch.Tensor) -> torch.Tensor:
        return FusedExtractor.global_vector(self.dense_map(x))

    @torch.no_grad()
    def encode_patches(
        self, x: torch.Tensor, *, path: PatchPath = "vv", n_vv: int = 6
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Global max pool (B, d) and the dense map as (B, h, w, d); ``path`` is ignored."""
        fmap = self.dense_map(x)
        return FusedExtractor.global_vector(fmap), fmap.permute(0, 2, 3, 1).contiguous()

    def encode_text(self, texts: Any) -> torch.Tensor:
        raise ValueError(f"{self.spec.id} has no text encoder: use a CLIP backbone for text")


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def read_head_metadata(path: Path) -> dict[str, Any] | None:
    """The JSON beside ``path`` when it marks a trained fusion head, else None."""
    meta = Path(path).with_suffix(".json")
    if Path(path).suffix != ".safetensors" or not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WeightsError(meta, f"is not readable checkpoint metadata ({e})") from e
    return data if isinstance(data, dict) and data.get("kind") == FUSION_KIND else None


def build_extractor(
    spec: BackboneSpec,
    *,
    config: FusionConfig | None = None,
    pretrained: bool = True,
    sd_folder: str | Path | None = None,
    offline: bool | None = None,
    progress: ProgressFn | None = None,
    seed: int = 0,
) -> tuple[FusedExtractor, str, str]:
    """The extractor with frozen SD and CLIP (and a fresh head). Returns it, the SHA-256 of
    the frozen weights (SD and CLIP together) and where they came from."""
    cfg = config or fusion_config(spec)
    clip_spec = get_spec(str(spec.arch_overrides["clip"]))
    arch = SD.sd_arch(spec)
    if pretrained:
        from sketchpad.vision import weights as W

        resolved = SD.resolve_sd(spec, sd_folder, offline=offline, progress=progress)
        parts = SD.load_sd(resolved.folder, pad_id=int(arch["pad_id"]))
        clip_w = W.resolve_weights(clip_spec, offline=offline, progress=progress)
        clip = build_model(clip_spec)
        W.load_weights(clip, clip_spec, clip_w.path)
        digest = hashlib.sha256(f"{resolved.sha256}|{clip_w.sha256}".encode()).hexdigest()
        source = resolved.source
    else:
        parts = SD.random_sd(spec, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            clip = build_model(clip_spec)
        digest, source = f"random-init-{seed}", "random"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        extractor = FusedExtractor(
            parts.vae,
            parts.unet,
            parts.alphas_cumprod,
            clip_tower(clip),  # type: ignore[arg-type]  # the tower is an nn.Module
            parts.null_embedding,
            cfg,
            clip_mean=clip_spec.mean,
            clip_std=clip_spec.std,
        )
    return extractor, digest, source


def load_head(extractor: FusedExtractor, path: Path) -> None:
    """Load trained parts (``trainable_state_dict`` keys) strictly; a recognition head's
    classifier (``head.*``) is not part of the extractor and is left out."""
    from sketchpad.vision.weights import read_state_dict

    sd = {k: v for k, v in read_state_dict(path).items() if not k.startswith("head.")}
    expected = extractor.trainable_state_dict()
    bad = sorted(set(sd) ^ set(expected)) + [
        k for k in expected if k in sd and sd[k].shape != expected[k].shape
    ]
    if bad:
        raise WeightsError(path, f"does not fit this fused extractor's trained parts: {bad[:4]}")
    extractor.load_state_dict(sd, strict=False)


def create_fusion_backbone(
    spec: BackboneSpec,
    *,
    weights: str | Path | None = None,
    device: torch.device,
    pretrained: bool = True,
    offline: bool | None = None,
    progress: ProgressFn | None = None,
    seed: int = 0,
    fp16: bool = True,
) -> FusionBackbone:
    """Build ``spec`` (a ``sketchfusion`` entry) as a backbone.

    ``weights`` is either a Stable Diffusion folder in diffusers' layout, or a trained head
    (``<name>.safetensors`` with ``<name>.json`` of kind "fusion", whose configuration wins;
    SD and CLIP are then resolved as usual).
    """
    head: Path | None = None
    sd_folder: str | Path | None = weights
    config = fusion_config(spec)
    if weights is not None and Path(weights).is_file():
        meta = read_head_metadata(Path(weights))
        if meta is None:
            raise WeightsError(
                Path(weights),
                f"is neither a Stable Diffusion folder nor a trained {spec.id} head "
                "(safetensors with a JSON of kind 'fusion')",
            )
        if meta.get("backbone") != spec.id:
            raise WeightsError(Path(weights), f"is a head of {meta.get('backbone')}, not {spec.id}")
        saved = meta.get("config", {})
        config = FusionConfig(**{k: v for k, v in saved.items() if k in _CONFIG_KEYS})
        head, sd_folder = Path(weights), None
    extractor, digest, source = build_extractor(
        spec,
        config=config,
        pretrained=pretrained,
        sd_folder=sd_folder,
        offline=offline,
        progress=progress,
        seed=seed,
    )
    tuned = False
    if head is not None:
        from sketchpad.vision.weights import file_sha256

        load_head(extractor, head)
        digest = hashlib.sha256(f"{digest}|{file_sha256(head)}".encode()).hexdigest()
        tuned = bool((read_head_metadata(head) or {}).get("sketchpad_fine_tuned", False))
    dtype = torch.float16 if fp16 and device.type in ("cuda", "mps") else torch.float32
    info = WeightsInfo(digest, head, source, tuned)
    if device.type == "cpu":
        log.warning("%s runs on the CPU: expect seconds per photo", spec.id)
    return FusionBackbone(spec, extractor, info, device, dtype)
