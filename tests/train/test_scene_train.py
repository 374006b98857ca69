"""The scene labeller's training (seed 001 §3): the encoder's prompts, v-v path, text
cross-attention and learnable threshold; the two-level trainer overfits a tiny batch, resumes
exactly, and saves weights the app loads.

Everything runs on the tiny random CLIP (``test-clip-tiny``, 2 blocks) on the CPU, on scene
sketches drawn here from simple shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from sketchpad.sketch.model import Sketch, sketch_from_polylines
from sketchpad.train.checkpoint import CheckpointError, read_metadata
from sketchpad.train.loop import LoopConfig, TrainingError
from sketchpad.train.scene_model import SceneEncoder, cross_attention_blocks
from sketchpad.train.scene_train import (
    CaptionedScene,
    SceneTrainConfig,
    SceneTrainer,
    extra_weights_path,
    read_extra_weights,
)
from sketchpad.vision import clip_vv
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.registry import build_model, get_spec
from sketchpad.vision.scene import SceneLabeller
from sketchpad.vision.weights import WeightsError, load_weights

TINY = "test-clip-tiny"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Our folders under tmp, offline; one torch thread (the tiny model is slower with more on a
    busy machine)."""
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _shape(name: str, cx: float, cy: float, r: float = 30.0) -> np.ndarray:
    if name == "circle":
        t = np.linspace(0.0, 2.0 * np.pi, 25)
        return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
    if name == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]]) * r + [cx, cy]
    if name == "triangle":
        return np.array([[0, -1], [1, 1], [-1, 1], [0, -1]]) * r + [cx, cy]
    return np.array([[-1, 0], [1, 0]]) * r + [cx, cy]  # line


SCENES = [
    (("circle", 50, 50), ("square", 150, 60)),
    (("triangle", 60, 140), ("circle", 150, 150)),
    (("square", 50, 60), ("line", 150, 150)),
    (("line", 60, 50), ("triangle", 140, 140)),
]


def scenes() -> list[CaptionedScene]:
    """Four 200×200 scene sketches of two shapes each, captioned "a circle and a square"…"""
    out = []
    for scene in SCENES:
        sketch = sketch_from_polylines(
            [_shape(n, x, y) for n, x, y in scene], width=200, height=200
        )
        names = tuple(n for n, _, _ in scene)
        out.append(CaptionedScene(sketch, f"a {names[0]} and a {names[1]}", names))
    return out


def trainer(
    steps: int = 5, out: Path | None = None, seed: int = 0, **config: object
) -> SceneTrainer:
    cfg = SceneTrainConfig(backbone=TINY, pretrained=False, **config)  # type: ignore[arg-type]
    loop = LoopConfig(steps=steps, batch_size=4, seed=seed, device="cpu", out=out, name="scene")
    return SceneTrainer(scenes(), cfg, loop)


# -- the encoder ------------------------------------------------------------------------------


def test_cross_attention_layers_map_proportionally_to_the_depth() -> None:
    assert cross_attention_blocks((7, 10, 12), 12) == (6, 9, 11)  # the paper's, 0-based
    assert cross_attention_blocks((7, 10, 12), 24) == (13, 19, 23)
    assert cross_attention_blocks((7, 10, 12), 2) == (0, 1)  # the tiny model: both blocks
    assert cross_attention_blocks((12,), 2) == (1,)
    with pytest.raises(ValueError, match="1..12"):
        cross_attention_blocks((0, 13), 12)


def test_without_prompts_the_encoder_is_the_apps_two_path_tower() -> None:
    backbone = create_backbone(TINY, pretrained=False, device="cpu")
    enc = SceneEncoder(backbone.spec, backbone.model, n_prompts=0)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        vst, patches = enc.encode_scene(x)
        pooled, ref_patches, grid = clip_vv.image_tokens(
            backbone.model.visual, enc.encoder.normalise(x)
        )
        vcts = enc.encode_category(x, None)  # no text: plain self-attention everywhere
    assert patches.shape == (3, *grid, 32)
    torch.testing.assert_close(vst, pooled)
    torch.testing.assert_close(patches.reshape(3, -1, 32), ref_patches)
    assert len(vcts) == 2
    torch.testing.assert_close(vcts[-1], pooled, atol=1e-5, rtol=1e-5)


def test_prompts_change_the_tokens_and_reach_the_patches() -> None:
    backbone = create_backbone(TINY, pretrained=False, device="cpu")
    enc = SceneEncoder(backbone.spec, backbone.model, n_prompts=3)
    x = torch.rand(2, 3, 64, 64)
    tokens, grid = enc._tokens(x)
    assert tokens.shape == (2, 1 + 16 + 3, 64) and grid == (4, 4)
    vst, patches = enc.encode_scene(x)
    (vst.sum() + patches.sum()).backward()
    assert enc.prompts.grad is not None and enc.prompts.grad.abs().sum() > 0


def test_cross_attention_uses_the_text() -> None:
    backbone = create_backbone(TINY, pretrained=False, device="cpu")
    enc = SceneEncoder(backbone.spec, backbone.model)
    x = torch.rand(2, 3, 64, 64)
    g = torch.Generator().manual_seed(1)
    t1, t2 = torch.randn(2, 32, generator=g), torch.randn(2, 32, generator=g)
    a, b, again = enc.encode_category(x, t1), enc.encode_category(x, t2), enc.encode_category(x, t1)
    for va, vb, vagain in zip(a, b, again, strict=True):
        assert (va - vb).abs().max() > 1e-3  # another category text, another VCT
        torch.testing.assert_close(va, vagain)
    sum(v.sum() for v in a).backward()
    for lin in enc.text_in.values():
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


# -- the trainer ------------------------------------------------------------------------------


def test_threshold_prompts_and_cross_attention_get_gradients() -> None:
    t = trainer()
    losses = t.compute_losses(0)
    assert set(losses) == {"total", "scene", "category", "threshold"}
    assert losses["scene"].item() > 0 and losses["category"].item() > 0
    losses["total"].backward()
    grad = t.model.threshold.grad
    assert grad is not None and torch.isfinite(grad) and float(grad.abs()) > 0
    assert t.model.prompts.grad is not None and t.model.prompts.grad.abs().sum() > 0
    for lin in t.model.text_in.values():
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_only_layernorms_prompts_and_cross_attention_are_trained() -> None:
    t = trainer()
    trained = {n for n, p in t.model.named_parameters() if p.requires_grad}
    ln = {
        f"encoder.model.visual.{m}.{w}"
        for m in (
            "ln_pre",
            "ln_post",
            *(f"transformer.resblocks.{b}.ln_{i}" for b in (0, 1) for i in (1, 2)),
        )
        for w in ("weight", "bias")
    }
    attn = {
        f"encoder.model.visual.transformer.resblocks.{b}.attn.{w}"
        for b in (0, 1)  # both blocks of the tiny tower carry cross-attention
        for w in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
    }
    extra = {"prompts", "threshold"} | {
        f"text_in.{b}.{w}" for b in (0, 1) for w in ("weight", "bias")
    }
    assert trained == ln | attn | extra
    count = sum(p.numel() for p in t.trainable_parameters())
    # LayerNorms 6×2×64, attention 2×(3·64·64 + 3·64 + 64·64 + 64), text_in 2×(64·32 + 64),
    # prompts 3×64, threshold 1.
    assert count == 768 + 33280 + 4224 + 192 + 1
    assert not any(p.requires_grad for p in t.model.clip.transformer.parameters())  # text


def test_overfits_one_tiny_batch() -> None:
    t = trainer(steps=50, lr=5e-3, threshold_lr=1e-2)
    losses = t.fit().losses
    first, last = losses["total"][0], float(np.mean(losses["total"][-5:]))
    assert last < 0.5 * first, (first, last)
    assert np.mean(losses["scene"][-5:]) < 0.5 * losses["scene"][0]
    assert np.mean(losses["category"][-5:]) < 0.8 * losses["category"][0]
    assert losses["threshold"][-1] != losses["threshold"][0]  # θ is learned


def test_resume_continues_at_the_right_step_with_the_same_losses(tmp_path: Path) -> None:
    straight = trainer(steps=6, lr=5e-3).fit().losses

    first = trainer(steps=3, out=tmp_path / "ckpt", lr=5e-3)
    first.fit()
    prompts_at_3 = first.model.prompts.detach().clone()
    second = trainer(steps=6, out=tmp_path / "ckpt", lr=5e-3)
    assert second.resume() and second.step == 3
    torch.testing.assert_close(second.model.prompts.detach(), prompts_at_3, rtol=0, atol=0)
    assert second.model.threshold.item() == first.model.threshold.item()
    resumed = second.fit().losses
    for key in ("total", "scene", "category"):
        np.testing.assert_allclose(resumed[key], straight[key][3:], rtol=1e-5, atol=1e-6)
    assert read_metadata(tmp_path / "ckpt" / "scene")["step"] == 6


def test_saved_weights_load_into_the_app_and_label_a_scene(tmp_path: Path) -> None:
    t = trainer(steps=2, out=tmp_path / "ckpt", lr=5e-3)
    t.fit()
    paths = t.checkpoint
    assert paths is not None
    meta = read_metadata(paths.weights)
    assert meta["kind"] == "scene" and meta["backbone"] == TINY
    assert meta["extra_weights"] == "scene.extra.safetensors"
    assert meta["cross_attention_blocks"] == [1, 2]
    extras, step = read_extra_weights(paths.weights)
    assert step == 2 and extra_weights_path(paths.weights).name == "scene.extra.safetensors"
    assert set(extras) == {
        "prompts",
        "threshold",
        "text_in.0.weight",
        "text_in.0.bias",
        "text_in.1.weight",
        "text_in.1.bias",
    }

    backbone = create_backbone(TINY, weights=paths.weights, device="cpu")
    trained = t.model.clip.state_dict()
    for k, v in backbone.model.state_dict().items():
        torch.testing.assert_close(v, trained[k], rtol=0, atol=0)
    sample = scenes()[0]
    result = SceneLabeller(backbone).label(sample.sketch, list(sample.categories))
    assert result.labels == ("circle", "square")
    assert result.stroke_labels.shape == (2,)


def test_the_apps_loader_refuses_extra_keys_so_extras_get_their_own_file(tmp_path: Path) -> None:
    spec = get_spec(TINY)
    model = build_model(spec)
    sd = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    path = tmp_path / "with-extras.safetensors"
    safetensors.torch.save_file({**sd, "scene.prompts": torch.zeros(3, 64)}, str(path))
    with pytest.raises(WeightsError, match="1 unexpected"):
        load_weights(build_model(spec), spec, path)


def test_resume_refuses_extras_of_another_step(tmp_path: Path) -> None:
    t = trainer(steps=2, out=tmp_path / "ckpt")
    t.fit()
    extra = extra_weights_path(tmp_path / "ckpt" / "scene")
    tensors, _ = read_extra_weights(extra)
    safetensors.torch.save_file(tensors, str(extra), metadata={"step": "1"})
    with pytest.raises(CheckpointError, match="extras of step 1"):
        trainer(steps=4, out=tmp_path / "ckpt").resume()


def test_bad_training_sets_are_refused() -> None:
    cfg = SceneTrainConfig(backbone=TINY, pretrained=False)
    loop = LoopConfig(steps=1, batch_size=2, device="cpu")
    with pytest.raises(TrainingError, match="no training samples"):
        SceneTrainer([], cfg, loop)
    blank = CaptionedScene(Sketch(width=100, height=100), "nothing at all", ("nothing",))
    with pytest.raises(ValueError, match="sketch 1 has no ink"):
        SceneTrainer([scenes()[0], blank], cfg, loop)
    with pytest.raises(ValueError, match="not a CLIP backbone"):
        SceneTrainer(
            scenes(), SceneTrainConfig(backbone="test-dinov2-tiny", pretrained=False), loop
        )
    with pytest.raises(ValueError, match="caption"):
        CaptionedScene(scenes()[0].sketch, "  ")
