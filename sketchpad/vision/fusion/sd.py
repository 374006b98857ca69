"""Stable Diffusion in diffusers' own layout: find the folder, load the VAE, UNet and noise
schedule strictly, and compute the null-prompt embedding.

The layout (a Hugging Face repo such as ``stabilityai/stable-diffusion-2-1-base``, or a local
copy of one)::

    unet/config.json            unet/diffusion_pytorch_model.safetensors
    vae/config.json             vae/diffusion_pytorch_model.safetensors
    scheduler/scheduler_config.json
    text_encoder/config.json    text_encoder/model.safetensors

Resolution follows every other backbone (DESIGN §4.1): a folder the user gave; a folder
imported earlier (``data_dir()/weights/<id>/``); the Hugging Face cache, offline; a download
of each missing file with progress (:mod:`sketchpad.vision.hub`), only when online. Only
safetensors are read, keys and shapes must match exactly.

The null prompt: SD's UNet attends to the text encoder's output for the empty prompt. It is
computed here from ``text_encoder/`` (transformers' ``CLIPTextModel`` key layout) by a short
functional forward (causal pre-LN transformer, final LayerNorm, as ``CLIPTextModel`` returns
``last_hidden_state``), so Sketchpad needs neither ``transformers`` nor a tokenizer: the empty
prompt is ``<start> <end>`` then padding, and CLIP's vocabulary ends with those two ids
(49406, 49407 of 49408). SD 2.x pads with id 0 ("!"), SD 1.x with ``<end>``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from sketchpad import paths
from sketchpad.vision import hub
from sketchpad.vision.errors import WeightsError, WeightsNotFoundError
from sketchpad.vision.registry import BackboneSpec

log = logging.getLogger(__name__)

UNET_CONFIG = "unet/config.json"
UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
VAE_CONFIG = "vae/config.json"
VAE_WEIGHTS = "vae/diffusion_pytorch_model.safetensors"
SCHEDULER_CONFIG = "scheduler/scheduler_config.json"
TEXT_CONFIG = "text_encoder/config.json"
TEXT_WEIGHTS = "text_encoder/model.safetensors"
#: Every file of the layout, weights first (the large ones show progress first).
SD_FILES = (
    UNET_WEIGHTS,
    VAE_WEIGHTS,
    TEXT_WEIGHTS,
    UNET_CONFIG,
    VAE_CONFIG,
    SCHEDULER_CONFIG,
    TEXT_CONFIG,
)
_WEIGHT_FILES = (UNET_WEIGHTS, VAE_WEIGHTS, TEXT_WEIGHTS)

#: Architectures for random initialisation (``pretrained=False``: benchmarks, tests); with
#: weights, the folder's own config files are used. ``sd21-base`` is stable-diffusion-2-1-base.
SD_ARCHS: dict[str, dict[str, Any]] = {
    "sd21-base": {
        "unet": {
            "sample_size": 64,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
            "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
            "block_out_channels": [320, 640, 1280, 1280],
            "layers_per_block": 2,
            "attention_head_dim": [5, 10, 20, 20],
            "cross_attention_dim": 1024,
            "use_linear_projection": True,
            "norm_num_groups": 32,
        },
        "vae": {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "block_out_channels": [128, 256, 512, 512],
            "layers_per_block": 2,
            "latent_channels": 4,
            "norm_num_groups": 32,
            "sample_size": 512,
            "scaling_factor": 0.18215,
        },
        "scheduler": {
            "num_train_timesteps": 1000,
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
        },
        "text_len": 77,
        "pad_id": 0,
    },
    "test-sd-tiny": {
        "unet": {
            "sample_size": 8,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
            "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
            "block_out_channels": [8, 16, 16, 16],
            "layers_per_block": 1,
            "attention_head_dim": 2,
            "cross_attention_dim": 16,
            "use_linear_projection": True,
            "norm_num_groups": 4,
        },
        "vae": {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "block_out_channels": [8, 8, 8, 8],
            "layers_per_block": 1,
            "latent_channels": 4,
            "norm_num_groups": 4,
            "sample_size": 64,
            "scaling_factor": 0.18215,
        },
        "scheduler": {
            "num_train_timesteps": 100,
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
        },
        "text_len": 8,
        "pad_id": 0,
    },
}


@dataclass(frozen=True)
class ResolvedSD:
    """A Stable Diffusion folder in diffusers' layout, where it came from, and one SHA-256
    over its three weights files (part of every feature-cache key)."""

    folder: Path
    source: str
    sha256: str


def sd_arch(spec: BackboneSpec) -> dict[str, Any]:
    name = str(spec.arch_overrides["sd"])
    try:
        return SD_ARCHS[name]
    except KeyError:
        raise ValueError(f"{spec.id}: unknown Stable Diffusion architecture {name!r}") from None


# --- where the folder can be ------------------------------------------------------------------


def missing_files(folder: Path) -> list[str]:
    """The files of :data:`SD_FILES` that ``folder`` lacks."""
    return [name for name in SD_FILES if not (folder / name).is_file()]


def imported_sd_dir(spec: BackboneSpec) -> Path:
    return paths.data_dir() / "weights" / spec.id


def _file_spec(spec: BackboneSpec, name: str) -> BackboneSpec:
    return replace(spec, hf_files=(name,))


def _hf_cached_folder(spec: BackboneSpec) -> Path | None:
    """The snapshot folder of ``spec.hf_repo`` in the HF cache, when it holds every file."""
    folder: Path | None = None
    for name in SD_FILES:
        found = hub.hf_cached(_file_spec(spec, name))
        if found is None:
            return None
        root = Path(str(found)[: -len(name)])
        if folder is not None and root != folder:
            return None  # files from different snapshots
        folder = root
    return folder


def _download(spec: BackboneSpec, progress: hub.ProgressFn | None) -> Path:
    """Each file of the layout into the HF cache (cached ones are not fetched again);
    ``progress`` sees the bytes of all files together."""
    done_before = 0
    folder: Path | None = None
    for name in SD_FILES:
        cached = hub.hf_cached(_file_spec(spec, name))
        if cached is None:

            def one(done: int, total: int | None, base: int = done_before) -> None:
                if progress is not None:
                    progress(base + done, None if total is None else base + total)

            cached = hub.download(_file_spec(spec, name), one)
        done_before += cached.stat().st_size
        folder = Path(str(cached)[: -len(name)])
    assert folder is not None
    return folder


def resolve_sd(
    spec: BackboneSpec,
    given: str | Path | None = None,
    *,
    offline: bool | None = None,
    progress: hub.ProgressFn | None = None,
) -> ResolvedSD:
    """Find ``spec``'s Stable Diffusion folder (order in the module docstring).

    Raises:
        WeightsError: ``given`` is not a folder in diffusers' layout (the message lists what
            is missing).
        WeightsNotFoundError: nothing found, and offline or the download failed.
    """
    from sketchpad.vision.weights import file_sha256

    def done(folder: Path, source: str) -> ResolvedSD:
        h = hashlib.sha256()
        for name in _WEIGHT_FILES:
            h.update(f"{name}:{file_sha256(folder / name)}\n".encode())
        return ResolvedSD(folder, source, h.hexdigest())

    if given is not None:
        folder = Path(given).expanduser()
        if not folder.is_dir():
            raise WeightsError(
                folder, "is not a folder: Stable Diffusion needs diffusers' folder layout"
            )
        missing = missing_files(folder)
        if missing:
            raise WeightsError(
                folder,
                f"is not a Stable Diffusion folder in diffusers' layout: no {', '.join(missing)}",
            )
        return done(folder, "given")
    imported = imported_sd_dir(spec)
    if imported.is_dir() and not missing_files(imported):
        return done(imported, "imported")
    cached = _hf_cached_folder(spec)
    if cached is not None:
        return done(cached, "hf-cache")
    if hub.is_offline(offline):
        reason = "not tried: offline (HF_HUB_OFFLINE or SKETCHPAD_OFFLINE is set, or offline=True)"
    else:
        try:
            return done(_download(spec, progress), "download")
        except hub.DownloadFailed as e:
            reason = f"failed: {e}"
    looked = [
        f"imported: {imported}",
        f"Hugging Face cache: {hub.hf_repo_folder(spec)} ({', '.join(SD_FILES)})",
        f"download: {hub.download_url(spec)} (online only)",
    ]
    raise WeightsNotFoundError(spec.id, looked, reason)


def import_sd(spec: BackboneSpec, source: Path, *, pad_id: int | None = None) -> ResolvedSD:
    """Check a diffusers folder (every file present, the weights load strictly into their
    configs) and copy it into ``data_dir()/weights/<id>/``, file by file, atomically.

    Raises:
        WeightsError: a file is missing, does not load, or the copy failed.
    """
    from sketchpad.vision.weights import _copy_to_temp

    source = Path(source).expanduser()
    resolved = resolve_sd(spec, source)  # checks the layout
    load_sd(source, pad_id=int(sd_arch(spec)["pad_id"]) if pad_id is None else pad_id)
    target = imported_sd_dir(spec)
    for name in SD_FILES:
        dst = target / name
        try:
            dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp, _sha = _copy_to_temp(source / name, dst)
            try:
                os.replace(tmp, dst)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as e:
            raise WeightsError(dst, f"could not copy {source / name} there ({e})") from e
    return ResolvedSD(target, "imported", resolved.sha256)


# --- loading ----------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WeightsError(path, f"is not a readable JSON config ({e})") from e
    if not isinstance(data, dict):
        raise WeightsError(path, "is not a JSON object")
    return data


def load_strict(module: nn.Module, path: Path, what: str) -> None:
    """Load a safetensors file into ``module``: every key and shape must match."""
    from sketchpad.vision.weights import read_state_dict

    sd = read_state_dict(path)
    expected = module.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [k for k, v in expected.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise WeightsError(
            path,
            f"does not fit the {what} of its config.json: {len(missing)} missing keys "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, {len(shapes)} "
            f"shape mismatches {shapes[:3]}",
        )
    module.load_state_dict(sd, strict=True)


def build_unet(config: Mapping[str, Any]) -> nn.Module:
    from diffusers import UNet2DConditionModel

    cls: Any = UNet2DConditionModel  # diffusers is untyped
    model: nn.Module = cls.from_config(dict(config))
    return model.eval()


def build_vae(config: Mapping[str, Any]) -> nn.Module:
    from diffusers import AutoencoderKL

    cls: Any = AutoencoderKL
    model: nn.Module = cls.from_config(dict(config))
    return model.eval()


def alphas_cumprod(config: Mapping[str, Any]) -> torch.Tensor:
    """ᾱ_t of the schedule (DDPMScheduler's own computation)."""
    from diffusers import DDPMScheduler

    keep = {k: v for k, v in config.items() if not k.startswith("_")}
    cls: Any = DDPMScheduler
    sched = cls.from_config(keep)
    return torch.as_tensor(sched.alphas_cumprod, dtype=torch.float32)


@dataclass
class StableDiffusionParts:
    vae: nn.Module
    unet: nn.Module
    alphas_cumprod: torch.Tensor
    null_embedding: torch.Tensor  # (1, L, C)


def load_sd(folder: Path, *, pad_id: int) -> StableDiffusionParts:
    """The VAE, UNet, schedule and null-prompt embedding from a folder in diffusers' layout."""
    missing = missing_files(folder)
    if missing:
        raise WeightsError(folder, f"is not a complete diffusers folder: no {', '.join(missing)}")
    unet = build_unet(_read_json(folder / UNET_CONFIG))
    load_strict(unet, folder / UNET_WEIGHTS, "UNet2DConditionModel")
    vae = build_vae(_read_json(folder / VAE_CONFIG))
    load_strict(vae, folder / VAE_WEIGHTS, "AutoencoderKL")
    alphas = alphas_cumprod(_read_json(folder / SCHEDULER_CONFIG))
    null = null_prompt_embedding(folder / "text_encoder", pad_id=pad_id)
    unet_config: Any = cast(Any, unet).config  # diffusers' FrozenDict
    cross = int(unet_config.cross_attention_dim)
    if null.shape[-1] != cross:
        raise WeightsError(
            folder / TEXT_CONFIG,
            f"gives {null.shape[-1]}-wide text features; the UNet attends to {cross}",
        )
    return StableDiffusionParts(vae, unet, alphas, null)


def random_sd(spec: BackboneSpec, seed: int = 0) -> StableDiffusionParts:
    """Randomly initialised parts of ``spec``'s architecture (benchmarks, tests)."""
    arch = sd_arch(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = build_unet(arch["unet"])
        vae = build_vae(arch["vae"])
        null = torch.randn(1, int(arch["text_len"]), int(arch["unet"]["cross_attention_dim"]))
    return StableDiffusionParts(vae, unet, alphas_cumprod(arch["scheduler"]), null)


# --- the null prompt --------------------------------------------------------------------------


def null_prompt_embedding(folder: Path, *, pad_id: int) -> torch.Tensor:
    """(1, L, C) ``CLIPTextModel(...).last_hidden_state`` for the empty prompt, from
    ``folder/config.json`` and ``folder/model.safetensors`` (transformers' layout)."""
    from sketchpad.vision.weights import read_state_dict

    cfg = _read_json(folder / "config.json")
    path = folder / "model.safetensors"
    sd = read_state_dict(path)
    try:
        vocab = int(cfg["vocab_size"])
        length = int(cfg.get("max_position_embeddings", 77))
        layers = int(cfg["num_hidden_layers"])
        heads = int(cfg["num_attention_heads"])
        eps = float(cfg.get("layer_norm_eps", 1e-5))
        act = str(cfg.get("hidden_act", "quick_gelu"))
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(folder / "config.json", f"lacks a CLIP text config field ({e})") from e
    if act not in ("gelu", "quick_gelu"):
        raise WeightsError(folder / "config.json", f"unsupported hidden_act {act!r}")
    ids = torch.tensor([vocab - 2, vocab - 1] + [pad_id] * (length - 2))

    # transformers 4 saved CLIPTextModel under "text_model."; transformers 5 without it
    prefix = "text_model." if any(k.startswith("text_model.") for k in sd) else ""

    def w(name: str) -> torch.Tensor:
        try:
            return sd[prefix + name].float()
        except KeyError:
            raise WeightsError(path, f"has no {prefix}{name}: not a CLIPTextModel") from None

    def ln(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], w(name + ".weight"), w(name + ".bias"), eps)

    def lin(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, w(name + ".weight"), w(name + ".bias"))

    with torch.no_grad():
        x = (
            w("embeddings.token_embedding.weight")[ids]
            + w("embeddings.position_embedding.weight")[:length]
        )
        x = x[None]  # (1, L, C)
        for i in range(layers):
            p = f"encoder.layers.{i}."
            h = ln(x, p + "layer_norm1")
            q, k, v = (
                lin(h, p + f"self_attn.{n}_proj").reshape(1, length, heads, -1).transpose(1, 2)
                for n in ("q", "k", "v")
            )
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + lin(a.transpose(1, 2).reshape(1, length, -1), p + "self_attn.out_proj")
            h = lin(ln(x, p + "layer_norm2"), p + "mlp.fc1")
            h = F.gelu(h) if act == "gelu" else h * torch.sigmoid(1.702 * h)
            x = x + lin(h, p + "mlp.fc2")
        return ln(x, "final_layer_norm")
