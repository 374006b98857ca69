"""A loaded backbone: one interface over open_clip CLIP and timm DINOv2.

``create_backbone(id)`` builds the architecture, resolves and strictly loads its weights, moves
it to the chosen device (fp16 on a GPU) and returns a ``Backbone`` whose methods take
normalised image tensors and return features:

- ``encode_global(x)``: (B, d) global embedding (sketches; also each photo's global vector);
- ``encode_patches(x)``: (B, d) global and (B, gh, gw, d) patch features (photos);
- ``encode_text(texts)``: (n, d), CLIP only.

Images are prepared by ``sketchpad.vision.features``; the backbone knows only tensors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from sketchpad.vision import clip_vv
from sketchpad.vision.hub import ProgressFn
from sketchpad.vision.protocols import clip_model, clip_tower, timm_vit
from sketchpad.vision.registry import BackboneSpec, build_model, get_spec

log = logging.getLogger(__name__)

PatchPath = Literal["vv", "plain"]


def choose_device(preference: str | None = None) -> torch.device:
    """CUDA if present, else Apple MPS, else the CPU; ``preference`` (or the environment
    variable ``SKETCHPAD_DEVICE``) overrides: "auto", "cpu", "cuda", "cuda:1", "mps".

    Raises:
        ValueError: the requested device is not available here.
    """
    want = (preference or os.environ.get("SKETCHPAD_DEVICE") or "auto").strip().lower()
    if want == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(want)
    except RuntimeError as e:
        raise ValueError(f"unknown device {want!r} (use auto, cpu, cuda, cuda:N or mps)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {want!r} was asked for, but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {want!r}: only {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not (torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for, but MPS is not available here")
    return dev


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a backbone carries: part of every feature-cache key.

    Attributes:
        sha256: hex digest of the weights file, or "random-init-<seed>" for untrained models.
        path: the file, or None.
        source: where it was found ("given", "imported", "hf-cache", "download", "random").
        fine_tuned: our own fine-tuned checkpoint (its maps are calibrated: threshold 0.5).
    """

    sha256: str
    path: Path | None
    source: str
    fine_tuned: bool = False


def cpu_bf16_available() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's check: AVX-512 BF16 or AMX), and
    ``SKETCHPAD_CPU_BF16`` does not say 0/off/false."""
    if os.environ.get("SKETCHPAD_CPU_BF16", "").strip().lower() in ("0", "off", "false", "no"):
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


class Backbone:
    """A model of ``spec`` with loaded weights, on a device, in eval mode."""

    def __init__(
        self,
        spec: BackboneSpec,
        model: nn.Module,
        weights: WeightsInfo,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.spec = spec
        self.model = model.to(device=device, dtype=dtype).eval()
        self.weights = weights
        self.device = device
        self.dtype = dtype
        self._tokenizer: Callable[[list[str]], torch.Tensor] | None = None
        #: Query encodes (``encode_global``: sketches) in bfloat16 on CPUs that compute it
        #: natively (AMX / AVX-512 BF16): ~2.5× faster for ViT-B/16, the embedding's cosine
        #: with the float32 one ≥ 0.9999. ``SKETCHPAD_CPU_BF16=0`` turns it off.
        self.cpu_bf16 = cpu_bf16_available() if device.type == "cpu" else False

    @property
    def embed_dim(self) -> int:
        """Dimension d of every feature this backbone returns."""
        return self.spec.embed_dim

    @property
    def has_text(self) -> bool:
        return self.spec.has_text

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) images, got {tuple(x.shape)}")
        p = self.spec.patch_size
        if x.shape[2] % p or x.shape[3] % p:
            raise ValueError(f"image sides {tuple(x.shape[2:])} must be multiples of {p}")
        return x.to(device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def encode_global(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images → (B, d) float32 global embeddings (not normalised):
        CLIP's projected CLS (original path), DINOv2's CLS after the final norm."""
        x = self._to_input(x)
        fast = self.cpu_bf16 and self.device.type == "cpu" and self.dtype == torch.float32
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            if self.spec.family == "open_clip":
                out = clip_vv.encode_image_pooled(clip_tower(self.model), x)
            else:
                out = timm_vit(self.model).forward_features(x)[:, 0]
        return out.float()

    @torch.no_grad()
    def encode_patches(
        self, x: torch.Tensor, *, path: PatchPath = "vv", n_vv: int = 6
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) normalised images → global (B, d) and patches (B, gh, gw, d), float32,
        not normalised, patch (0, 0) at the top left.

        CLIP: ``path="vv"`` uses the v-v stream for the patches (DESIGN §4.2), ``"plain"`` the
        ordinary tokens; either way projected into the joint space. DINOv2: the patch tokens
        after the final norm (``path`` is ignored: there is no v-v variant).
        """
        x = self._to_input(x)
        if self.spec.family == "open_clip":
            pooled, patches, (gh, gw) = clip_vv.encode_image_tokens(
                clip_tower(self.model), x, n_vv=n_vv if path == "vv" else 0
            )
        else:
            vit = timm_vit(self.model)
            out = vit.forward_features(x)  # (B, P + gh·gw, D)
            p = self.spec.patch_size
            gh, gw = x.shape[2] // p, x.shape[3] // p
            pooled, patches = out[:, 0], out[:, vit.num_prefix_tokens :]
        b = patches.shape[0]
        return pooled.float(), patches.reshape(b, gh, gw, -1).float()

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, context_length) int64 tokens for the text tower."""
        if not self.has_text:
            raise ValueError(
                f"{self.spec.id} has no text encoder: use a CLIP backbone for text queries"
            )
        if self._tokenizer is None:
            import open_clip

            self._tokenizer = open_clip.get_tokenizer(self.spec.arch)
        return self._tokenizer(list(texts))

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """n strings → (n, d) float32 text embeddings (projected, not normalised)."""
        tokens = self.tokenize(texts).to(self.device)
        return clip_model(self.model).encode_text(tokens, normalize=False).float()


def create_backbone(
    backbone_id: str,
    *,
    weights: str | Path | None = None,
    device: str | torch.device | None = None,
    pretrained: bool = True,
    offline: bool | None = None,
    progress: ProgressFn | None = None,
    fine_tuned: bool | None = None,
    seed: int = 0,
    fp16: bool = True,
) -> Backbone:
    """Build a registered backbone with its weights.

    Args:
        backbone_id: a registry id (``list_backbones()``).
        weights: a weights file or folder the user gave; None resolves as DESIGN §4.1 says
            (imported weights, the Hugging Face cache offline, then a download).
        device: "auto"/None (CUDA, else MPS, else CPU), or an explicit device.
        pretrained: False gives random weights (seeded; benchmarks and tests).
        offline: never download (default: the HF_HUB_OFFLINE / SKETCHPAD_OFFLINE variables).
        progress: download progress callback ``(bytes_done, bytes_total | None) -> None``.
        fine_tuned: the weights are our own fine-tuned segmenter (maps calibrated at 0.5);
            default: a JSON sidecar next to the weights file says so.
        seed: random-init seed when ``pretrained`` is False.
        fp16: half precision on a GPU (CUDA, MPS); False keeps float32 there. The CPU always
            computes in float32 (sketch queries in bfloat16 where the CPU has it natively).

    Raises:
        KeyError: unknown id. ValueError: unavailable device.
        sketchpad.vision.weights.WeightsError: weights missing, unsafe or of another model.
    """
    spec = get_spec(backbone_id)
    dev = device if isinstance(device, torch.device) else choose_device(device)
    if spec.family == "sketchfusion":  # SD + CLIP, in diffusers' and open_clip's layouts
        from sketchpad.vision.fusion.backbone import create_fusion_backbone

        return create_fusion_backbone(
            spec,
            weights=weights,
            device=dev,
            pretrained=pretrained,
            offline=offline,
            progress=progress,
            seed=seed,
            fp16=fp16,
        )
    if pretrained:
        from sketchpad.vision import weights as W

        resolved = W.resolve_weights(spec, weights, offline=offline, progress=progress)
        model = W.load_model(spec, resolved.path)  # built on meta: weights held once
        tuned = _is_fine_tuned(resolved.path) if fine_tuned is None else fine_tuned
        info = WeightsInfo(resolved.sha256, resolved.path, resolved.source, tuned)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(spec)
        info = WeightsInfo(f"random-init-{seed}", None, "random", bool(fine_tuned))
    dtype = torch.float16 if fp16 and dev.type in ("cuda", "mps") else torch.float32
    log.info("backbone %s on %s (%s), weights %s", spec.id, dev, dtype, info.source)
    return Backbone(spec, model, info, dev, dtype)


def _is_fine_tuned(path: Path) -> bool:
    """Our fine-tuned checkpoints are safetensors plus ``<name>.json`` with
    ``{"sketchpad_fine_tuned": true, ...}`` (DESIGN §4.1)."""
    import json

    meta = path.with_suffix(".json")
    if not meta.is_file():
        return False
    try:
        return bool(json.loads(meta.read_text(encoding="utf-8")).get("sketchpad_fine_tuned"))
    except (OSError, ValueError, AttributeError):
        log.warning("ignoring unreadable metadata %s", meta)
        return False
