"""SketchFusion's extractor (seed 003 §5.1): loaded offline from tiny SD and CLIP saved in
diffusers' and open_clip's real layouts; with the injection convolutions at zero it gives
plain SD features exactly; CLIP reaches the features only through the convolutions; the
trained parts get gradients and SD and CLIP none; the search core answers a query with it."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fusion_fixtures import (
    FUSION_ID,
    TEXT_CONFIG,
    cache_clip,
    cache_sd,
    isolate,
    write_sd_folder,
)
from planted import GALLERY, SKETCH, photo
from test_weights import _Hub
from test_weights import hub as stand_in_hub

from sketchpad.search.core import SearchCore
from sketchpad.search.spec import QuerySpec
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.errors import WeightsError, WeightsNotFoundError
from sketchpad.vision.fusion import sd as SD
from sketchpad.vision.fusion.backbone import FusionBackbone
from sketchpad.vision.fusion.model import FusedExtractor
from sketchpad.vision.registry import get_spec
from sketchpad.vision.segmenter import Segmenter


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny convolutions run ~10× faster on one thread than on two contended cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


hub = stand_in_hub  # the stand-in Hub of test_weights (a local HTTP server), as a fixture here


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(tmp_path, monkeypatch)


@functools.cache
def random_backbone() -> FusionBackbone:
    bb = create_backbone(FUSION_ID, pretrained=False, device="cpu", seed=1)
    assert isinstance(bb, FusionBackbone)
    return bb


def images(seed: int, n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 64, 64, generator=g) * 2 - 1


def set_injection(model: FusedExtractor, value: float | None, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in model.inject:
            for p in conv.parameters():
                p.copy_(torch.zeros_like(p) if value is None else torch.randn(p.shape, generator=g))


# --- loading ----------------------------------------------------------------------------------


def test_loaded_offline_from_the_hf_cache_in_the_real_layouts(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = cache_sd(cache, tmp_path)
    clip_state = cache_clip(cache)
    monkeypatch.setattr("sketchpad.vision.hub.download", no_network)
    bb = create_backbone(FUSION_ID, device="cpu")
    assert isinstance(bb, FusionBackbone) and bb.weights.source == "hf-cache"
    m = bb.extractor
    from sketchpad.vision.weights import read_state_dict

    unet_file = read_state_dict(src / SD.UNET_WEIGHTS)
    for k, v in m.unet.state_dict().items():
        assert torch.equal(v, unet_file[k]), k
    vae_file = read_state_dict(src / SD.VAE_WEIGHTS)
    assert all(torch.equal(v, vae_file[k]) for k, v in m.vae.state_dict().items())
    visual = {k[len("visual.") :]: v for k, v in clip_state.items() if k.startswith("visual.")}
    assert all(torch.equal(v, visual[k]) for k, v in m.clip.state_dict().items())
    assert m.null_embedding.shape == (1, TEXT_CONFIG["max_position_embeddings"], 16)
    # the schedule is the scheduler's own
    from diffusers import DDPMScheduler

    ref = DDPMScheduler.from_pretrained(src / "scheduler").alphas_cumprod
    torch.testing.assert_close(m.alphas_cumprod, ref.float(), rtol=0, atol=0)
    # a given folder wins; its weights differ
    other = write_sd_folder(tmp_path / "given", seed=5)
    given = create_backbone(FUSION_ID, device="cpu", weights=other)
    assert given.weights.source == "given" and given.weights.sha256 != bb.weights.sha256
    g, p = bb.encode_patches(images(0))
    assert g.shape == (2, 16) and p.shape == (2, 4, 4, 16)


def no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("the network was asked")


def test_a_folder_missing_a_file_is_named_and_offline_fails_at_once(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_sd_folder(tmp_path / "sd")
    (folder / SD.VAE_WEIGHTS).unlink()
    with pytest.raises(WeightsError, match="vae/diffusion_pytorch_model.safetensors"):
        SD.resolve_sd(get_spec(FUSION_ID), folder)
    asked: list[object] = []

    def unreachable(*args: object, **kwargs: object) -> None:
        asked.append(args)
        raise OSError("the network was asked")

    monkeypatch.setattr("sketchpad.vision.hub.download", unreachable)
    with pytest.raises(WeightsNotFoundError, match="test-sketchfusion-tiny"):
        SD.resolve_sd(get_spec(FUSION_ID))
    assert asked == []  # offline: no download attempt


def test_null_prompt_is_the_text_encoders_causal_forward(tmp_path: Path) -> None:
    """Against a plain re-statement of CLIPTextModel (nn.MultiheadAttention, nn.LayerNorm):
    <start> <end> then padding, causal attention, final LayerNorm."""
    folder = write_sd_folder(tmp_path / "sd")
    got = SD.null_prompt_embedding(folder / "text_encoder", pad_id=0)
    sd = {k[len("text_model.") :]: v for k, v in SD_state(folder).items()}
    c = TEXT_CONFIG
    d, n = int(c["hidden_size"]), int(c["max_position_embeddings"])
    ids = torch.tensor([38, 39] + [0] * (n - 2))
    x = sd["embeddings.token_embedding.weight"][ids] + sd["embeddings.position_embedding.weight"]
    x = x[None]
    mask = torch.triu(torch.full((n, n), float("-inf")), 1)
    for i in range(int(c["num_hidden_layers"])):
        p = f"encoder.layers.{i}."
        mha = torch.nn.MultiheadAttention(d, int(c["num_attention_heads"]), batch_first=True)
        w = [sd[p + f"self_attn.{k}_proj.weight"] for k in "qkv"]
        b = [sd[p + f"self_attn.{k}_proj.bias"] for k in "qkv"]
        mha.in_proj_weight.data, mha.in_proj_bias.data = torch.cat(w), torch.cat(b)
        mha.out_proj.weight.data = sd[p + "self_attn.out_proj.weight"]
        mha.out_proj.bias.data = sd[p + "self_attn.out_proj.bias"]
        ln1 = torch.nn.LayerNorm(d)
        ln1.weight.data, ln1.bias.data = sd[p + "layer_norm1.weight"], sd[p + "layer_norm1.bias"]
        ln2 = torch.nn.LayerNorm(d)
        ln2.weight.data, ln2.bias.data = sd[p + "layer_norm2.weight"], sd[p + "layer_norm2.bias"]
        h = ln1(x)
        x = x + mha(h, h, h, attn_mask=mask, need_weights=False)[0]
        h = torch.nn.functional.linear(ln2(x), sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])
        h = torch.nn.functional.gelu(h)
        x = x + torch.nn.functional.linear(h, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
    lnf = torch.nn.LayerNorm(d)
    lnf.weight.data, lnf.bias.data = sd["final_layer_norm.weight"], sd["final_layer_norm.bias"]
    with torch.no_grad():
        torch.testing.assert_close(got, lnf(x), rtol=1e-5, atol=1e-5)
    # transformers 5 saves the same model without the "text_model." prefix
    import safetensors.torch

    bare = {k[len("text_model.") :]: v for k, v in SD_state(folder).items()}
    safetensors.torch.save_file(bare, str(folder / SD.TEXT_WEIGHTS))
    torch.testing.assert_close(
        SD.null_prompt_embedding(folder / "text_encoder", pad_id=0), got, rtol=0, atol=0
    )


def SD_state(folder: Path) -> dict[str, torch.Tensor]:  # noqa: N802
    from sketchpad.vision.weights import read_state_dict

    return read_state_dict(folder / SD.TEXT_WEIGHTS)


# --- injection --------------------------------------------------------------------------------


def test_zero_injection_gives_plain_sd_features_exactly() -> None:
    m = random_backbone().extractor
    x = images(0)
    with torch.no_grad():
        tokens, grid = m.clip_tokens(x)
        plain = m.unet_features(x)  # no CLIP at all
        set_injection(m, None)
        zero = m.unet_features(x, tokens, grid)
        assert all(torch.equal(a, b) for a, b in zip(plain, zero, strict=True))
        hw = (4, 4)
        assert torch.equal(m.aggregate_map(plain, hw), m(x))
        set_injection(m, 1.0)
        live = m.unet_features(x, tokens, grid)
    assert not torch.allclose(plain[2], live[2])  # the injection does reach the features
    set_injection(m, None)


def test_clip_changes_the_features_only_through_the_convolutions() -> None:
    m = random_backbone().extractor
    x = images(0)
    with torch.no_grad():
        t1, grid = m.clip_tokens(x)
        t2, _ = m.clip_tokens(images(7))
        assert not torch.allclose(t1, t2)
        set_injection(m, None)
        a, b = m.unet_features(x, t1, grid), m.unet_features(x, t2, grid)
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
        set_injection(m, 1.0)
        a, b = m.unet_features(x, t1, grid), m.unet_features(x, t2, grid)
        assert all(not torch.allclose(u, v) for u, v in zip(a, b, strict=True))
    # and through nothing else: with zero convolutions no gradient reaches CLIP's tokens
    set_injection(m, None)
    tokens = t1.clone().requires_grad_(True)
    m.aggregate_map(m.unet_features(x, tokens, grid), (4, 4)).square().mean().backward()
    assert tokens.grad is not None and float(tokens.grad.abs().max()) == 0.0
    conv_grad = m.inject[0].weight.grad
    assert conv_grad is not None and float(conv_grad.abs().max()) > 0
    m.zero_grad(set_to_none=True)


def test_trained_parts_get_gradients_and_sd_and_clip_none() -> None:
    m = random_backbone().extractor
    set_injection(m, 1.0, seed=3)
    m.train()
    assert not m.unet.training and not m.clip.training and not m.vae.training
    fmap = m(images(1))
    target = torch.randn_like(fmap)
    (fmap - target).square().mean().backward()
    assert m.branch_logits.grad is not None and float(m.branch_logits.grad.abs().max()) > 0
    for name in ("inject", "aggregate"):
        grads = [p.grad for p in getattr(m, name).parameters()]
        assert all(g is not None and float(g.abs().max()) > 0 for g in grads), name
    for frozen in (m.unet, m.vae, m.clip):
        assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())
    keys = set(m.trainable_state_dict())
    assert keys and all(k.startswith(("inject.", "aggregate.", "branch_logits")) for k in keys)
    m.eval()
    m.zero_grad(set_to_none=True)
    set_injection(m, None)


def test_branch_weights_are_a_softmax_and_fixed_in_the_ablation() -> None:
    m = random_backbone().extractor
    torch.testing.assert_close(m.branch_weights(), torch.full((3,), 1 / 3))
    with torch.no_grad():
        m.branch_logits.copy_(torch.tensor([0.0, 1.0, 2.0]))
    w = m.branch_weights()
    torch.testing.assert_close(w, torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0))
    with torch.no_grad():
        m.branch_logits.zero_()


# --- the search core --------------------------------------------------------------------------


def test_the_search_core_answers_a_query_with_the_fused_map() -> None:
    bb = random_backbone()
    seg = Segmenter(bb)
    assert seg.input_size == 64
    bank = FeatureBank(seg.embed_photos([photo(hw, boxes) for hw, boxes in GALLERY[:3]]))
    result = SearchCore(seg).search(QuerySpec(sketch=SKETCH), bank)
    assert len(result.names) == 3 and result.photo_scores.shape == (3,)
    assert np.isfinite(result.photo_scores).all()
    assert result.scores[0].logits.shape == (3 * 16,)  # three photos × the 4×4 fused map
    hw = GALLERY[0][0]
    mask = SearchCore(seg).mask(result, bank, 0, threshold=0.5)
    assert mask.mask.shape == hw


def test_bench_vision_times_each_stage_of_the_fused_backbone() -> None:
    from sketchpad.search import bench_vision

    lines: list[str] = []
    assert bench_vision.run([FUSION_ID], lines.append, device="cpu", repeats=1) == 0
    (row,) = bench_vision.time_fusion(FUSION_ID, (64,), device="cpu", repeats=1)
    assert row.grid == "4×4" and row.map_kb == 4 * 4 * 16 * 2 / 1024
    assert min(row.clip_ms, row.vae_ms, row.aggregator_ms, row.total_ms) > 0
    assert any(line.startswith(FUSION_ID) and " 64 " in line for line in lines)


def test_models_import_keeps_a_checked_copy_that_is_found_later(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sketchpad.cli import main

    src = write_sd_folder(tmp_path / "mine", seed=2)
    assert main(["models", "import", FUSION_ID, str(src)]) == 0
    assert "imported to" in capsys.readouterr().out
    resolved = SD.resolve_sd(get_spec(FUSION_ID))
    assert resolved.source == "imported" and not SD.missing_files(resolved.folder)
    assert resolved.sha256 == SD.resolve_sd(get_spec(FUSION_ID), src).sha256
    capsys.readouterr()
    assert main(["models", "list", "--all"]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(FUSION_ID))
    assert "imported" in row
    (src / SD.UNET_WEIGHTS).write_bytes(b"not safetensors")
    assert main(["models", "import", FUSION_ID, str(src)]) == 1
    assert "diffusion_pytorch_model.safetensors" in capsys.readouterr().err


def test_downloaded_file_by_file_with_one_progress(cache: Path, tmp_path: Path, hub: _Hub) -> None:
    src = write_sd_folder(tmp_path / "remote")
    spec = get_spec(FUSION_ID)
    sizes = 0
    for name in SD.SD_FILES:
        data = (src / name).read_bytes()
        hub.files[f"/{spec.hf_repo}/resolve/main/{name}"] = data
        sizes += len(data)
    calls: list[tuple[int, int | None]] = []
    resolved = SD.resolve_sd(spec, progress=lambda d, t: calls.append((d, t)))
    assert resolved.source == "download" and not SD.missing_files(resolved.folder)
    assert resolved.sha256 == SD.resolve_sd(spec, src).sha256
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1] == (sizes, sizes)
    served = len(hub.requests)
    assert SD.resolve_sd(spec, offline=True).source == "hf-cache"
    assert len(hub.requests) == served
