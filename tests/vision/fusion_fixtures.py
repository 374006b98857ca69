"""Tiny Stable Diffusion and CLIP saved with random weights in their real layouts (diffusers'
``save_pretrained`` folders, transformers' text-encoder keys, open_clip safetensors), placed as
huggingface_hub lays out its cache, so SketchFusion's real resolution and loading runs offline.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pytest
import safetensors.torch
import torch

from sketchpad.vision.fusion import sd as SD
from sketchpad.vision.registry import build_model, get_spec

FUSION_ID = "test-sketchfusion-tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TEXT_CONFIG = {
    "architectures": ["CLIPTextModel"],
    "hidden_act": "gelu",
    "hidden_size": 16,
    "intermediate_size": 32,
    "layer_norm_eps": 1e-5,
    "max_position_embeddings": 8,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 40,
    "projection_dim": 16,
}


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our folders and the HF cache under tmp, offline; returns the HF cache."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("SKETCHPAD_OFFLINE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    return cache


def text_encoder_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under transformers' ``CLIPTextModel`` key names."""
    g = torch.Generator().manual_seed(seed)
    c = TEXT_CONFIG
    d, m = int(c["hidden_size"]), int(c["intermediate_size"])

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.2

    sd = {
        "text_model.embeddings.token_embedding.weight": r(int(c["vocab_size"]), d),
        "text_model.embeddings.position_embedding.weight": r(int(c["max_position_embeddings"]), d),
        "text_model.final_layer_norm.weight": 1 + r(d),
        "text_model.final_layer_norm.bias": r(d),
    }
    for i in range(int(c["num_hidden_layers"])):
        p = f"text_model.encoder.layers.{i}."
        for n in ("q", "k", "v", "out"):
            sd[p + f"self_attn.{n}_proj.weight"] = r(d, d)
            sd[p + f"self_attn.{n}_proj.bias"] = r(d)
        for n in ("layer_norm1", "layer_norm2"):
            sd[p + n + ".weight"] = 1 + r(d)
            sd[p + n + ".bias"] = r(d)
        sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"] = r(m, d), r(m)
        sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"] = r(d, m), r(d)
    return sd


def write_sd_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny SD in diffusers' layout, written by diffusers' own ``save_pretrained``."""
    from diffusers import DDPMScheduler

    arch = SD.SD_ARCHS["test-sd-tiny"]
    torch.manual_seed(seed)
    unet, vae = SD.build_unet(arch["unet"]), SD.build_vae(arch["vae"])
    unet.save_pretrained(folder / "unet", safe_serialization=True)  # type: ignore[operator]
    vae.save_pretrained(folder / "vae", safe_serialization=True)  # type: ignore[operator]
    DDPMScheduler(**arch["scheduler"]).save_pretrained(folder / "scheduler")
    (folder / "text_encoder").mkdir(parents=True, exist_ok=True)
    (folder / "text_encoder" / "config.json").write_text(json.dumps(TEXT_CONFIG))
    safetensors.torch.save_file(
        text_encoder_state(seed), str(folder / "text_encoder" / "model.safetensors")
    )
    return folder


def put_in_hf_cache(cache: Path, repo: str, filename: str, data: bytes) -> Path:
    """As huggingface_hub stores a download: blobs/<sha256>, snapshots/<commit>/<file> a
    relative symlink, refs/main the commit."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    pointer = folder / "snapshots" / COMMIT / filename
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    return pointer


def cache_sd(cache: Path, tmp: Path, seed: int = 0) -> Path:
    """The tiny SD folder copied file by file into the HF cache; returns the written folder."""
    folder = write_sd_folder(tmp / f"sd-src-{seed}", seed)
    repo = get_spec(FUSION_ID).hf_repo
    for name in SD.SD_FILES:
        put_in_hf_cache(cache, repo, name, (folder / name).read_bytes())
    return folder


def cache_clip(cache: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random open_clip weights of the tiny CLIP in the HF cache; returns the state."""
    spec = get_spec(str(get_spec(FUSION_ID).arch_overrides["clip"]))
    torch.manual_seed(seed)
    state = {k: v.contiguous().clone() for k, v in build_model(spec).state_dict().items()}
    put_in_hf_cache(cache, spec.hf_repo, spec.hf_files[0], safetensors.torch.save(state))
    return state
