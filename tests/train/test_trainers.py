"""The SBIR critic's and the segmenter's trainers (DESIGN §4.5) on tiny random models.

Each trainer must drive its loss down on one fixed batch (an overfit test: the gradients reach
what is trained, and only that); the CLIP segmenter tunes its LayerNorms only; a resumed run
is exactly the uninterrupted one; a saved segmenter loads in the app as a fine-tuned,
'fixed'-calibrated model; a NaN loss stops training with a message.

The batches are four classes of simple shapes drawn here: outline sketches (the app's own
renderer) and photos of filled shapes on a grey background.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from sketchpad.sketch.model import Sketch, sketch_from_polylines
from sketchpad.train.loop import LoopConfig, TrainingError
from sketchpad.train.sbir_train import SBIRConfig, SBIRCritic, SBIRTrainer, TripletBatch
from sketchpad.train.segmenter_train import (
    PairBatch,
    SegmenterConfig,
    SegmenterTrainer,
    choose_partitions,
)
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.checkpoints import read_segmenter_checkpoint
from sketchpad.vision.features import sketch_input
from sketchpad.vision.segmenter import Segmenter

CLIP = "test-clip-tiny"  # 64 px input
DINO = "test-dinov2-tiny"  # 56 px input
NAMES = ("circle", "square", "triangle", "diamond")
COLOURS = ((220, 40, 40), (40, 160, 40), (40, 40, 220), (200, 180, 30))


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Our folders under tmp, offline; one torch thread (the tiny models are slower with more
    on a busy machine, and results must not depend on the thread count)."""
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("SKETCHPAD_DEVICE", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- drawn data


def outline(cls: int, cx: float, cy: float, r: float) -> np.ndarray:
    """(N, 2) closed outline of shape class ``cls`` centred at (cx, cy), radius r."""
    if cls == 0:
        t = np.linspace(0.0, 2.0 * np.pi, 25)
        return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
    corners = {
        1: [[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]],
        2: [[0, -1], [1, 1], [-1, 1], [0, -1]],
        3: [[-1, 0], [0, -1], [1, 0], [0, 1], [-1, 0]],
    }[cls]
    return np.array(corners, dtype=np.float64) * r + [cx, cy]


def photo(cls: int, size: int, cx: float = 0.5, cy: float = 0.5) -> np.ndarray:
    """(size, size, 3) uint8: a filled shape (centre as fractions of the side) on grey."""
    im = Image.new("RGB", (size, size), (90, 90, 90))
    pts = outline(cls, cx * size, cy * size, 0.28 * size)
    ImageDraw.Draw(im).polygon([(float(x), float(y)) for x, y in pts], fill=COLOURS[cls])
    return np.asarray(im)


def drawing(cls: int) -> Sketch:
    """A one-stroke outline sketch of class ``cls`` on a 200×200 canvas."""
    return sketch_from_polylines([outline(cls, 100, 100, 60)], width=200, height=200)


class FixedTriplets:
    """The same four triplets every step: sketch, photo of its class, photo of the next."""

    classes = NAMES

    def __init__(self, size: int) -> None:
        sketches = np.stack([sketch_input(drawing(c), None, size) for c in range(4)])
        positives = np.stack([photo(c, size) for c in range(4)])
        self.batch = TripletBatch(sketches, positives, np.roll(positives, 1, axis=0), np.arange(4))

    def triplets(self, rng: np.random.Generator, k: int, level: str) -> TripletBatch:
        return self.batch


class FixedPairs:
    """The same four pairs every step (objects off-centre; the unpaired photo shows the next
    class), half of them with a partition."""

    def __init__(self, size: int) -> None:
        drawings = [drawing(c) for c in range(4)]
        parts, rows = choose_partitions(drawings, np.random.default_rng(0), size, 0.5)
        assert len(rows) == 2
        self.batch = PairBatch(
            sketches=np.stack([sketch_input(d, None, size) for d in drawings]),
            photos=np.stack([photo(c, size, 0.35 + 0.1 * c, 0.6 - 0.05 * c) for c in range(4)]),
            unpaired=np.stack([photo((c + 1) % 4, size) for c in range(4)]),
            parts=parts,
            part_rows=rows,
        )

    def pairs(self, rng: np.random.Generator, k: int, partition_fraction: float) -> PairBatch:
        return self.batch


class DrawnPairs:
    """Pairs drawn with the step's generator (classes, places, partition angles), so batches
    differ from step to step and a resumed run must reproduce them."""

    def __init__(self, size: int) -> None:
        self.size = size

    def pairs(self, rng: np.random.Generator, k: int, partition_fraction: float) -> PairBatch:
        labels = rng.integers(0, 4, k)
        drawings = [drawing(int(c)) for c in labels]
        places = rng.uniform(0.35, 0.65, (k, 2))
        parts, rows = choose_partitions(drawings, rng, self.size, partition_fraction)
        return PairBatch(
            sketches=np.stack([sketch_input(d, None, self.size) for d in drawings]),
            photos=np.stack(
                [photo(int(c), self.size, *xy) for c, xy in zip(labels, places, strict=True)]
            ),
            unpaired=np.stack([photo(int(c + 1) % 4, self.size) for c in labels]),
            parts=parts,
            part_rows=rows,
        )


def critic(seed: int = 0) -> SBIRCritic:
    """A random tiny critic (category-level: separate sketch and photo encoders)."""
    torch.manual_seed(seed)
    return SBIRCritic(CLIP, NAMES, shared=False)


def segmenter(
    source: object,
    *,
    backbone: str = CLIP,
    steps: int = 20,
    out: Path | None = None,
    **config: object,
) -> SegmenterTrainer:
    cfg = SegmenterConfig(backbone=backbone, pretrained=False, **config)  # type: ignore[arg-type]
    loop = LoopConfig(steps=steps, batch_size=4, device="cpu", out=out, name="segmenter")
    return SegmenterTrainer(cfg, source, critic(), loop)  # type: ignore[arg-type]


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- overfitting one batch


def test_the_sbir_critic_overfits_one_batch() -> None:
    cfg = SBIRConfig(backbone=CLIP, lr=1e-3, pretrained=False)
    trainer = SBIRTrainer(cfg, FixedTriplets(64), LoopConfig(steps=20, batch_size=4, device="cpu"))
    assert trainer.model.sketch is not None  # category level: two encoders
    losses = trainer.fit().losses
    assert losses["total"][-1] < 0.5 * losses["total"][0], losses["total"]
    assert losses["triplet"][-1] < losses["triplet"][0]
    assert losses["class"][-1] < 0.5 * losses["class"][0]


def test_the_critic_consistency_loss_compares_only_the_patches_erasing_left_alone() -> None:
    cfg = SBIRConfig(backbone=CLIP, lr=1e-3, pretrained=False, erase=1.0, consistency=1.0,
                     photo_pool="mean")  # fmt: skip
    trainer = SBIRTrainer(cfg, FixedTriplets(64), LoopConfig(steps=20, batch_size=4, device="cpu"))
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    erased = photos.copy()
    erased[0, :20] = 0  # rows 0…19: patches of rows 0…1 (16 px patches) change
    erased[1, 40:, 40:] = 0
    encoder = trainer.model.photo
    patch = encoder.spec.patch_size

    def local(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Strictly local tokens: each patch's mean colour (and a constant)."""
        p = nn.functional.avg_pool2d(x, patch).permute(0, 2, 3, 1)
        return p.mean(dim=(1, 2)), torch.cat([p, torch.ones_like(p[..., :1])], dim=-1)

    def leaky(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens that also carry the whole photo's mean."""
        g, p = local(x)
        return g, p + 3.0 * p.mean(dim=(1, 2), keepdim=True)

    for fn, expect_zero in ((local, True), (leaky, False)):
        encoder.encode_patches = fn  # type: ignore[method-assign]
        _, tokens = fn(torch.from_numpy(erased).permute(0, 3, 1, 2) / 255.0)
        value = float(trainer._consistency(photos, erased, tokens))
        assert (value < 1e-6) if expect_zero else (value > 1e-3), (fn.__name__, value)
    # Nothing erased: nothing to compare.
    assert float(trainer._consistency(photos, photos.copy(), tokens)) == 0.0


def test_the_critic_with_the_consistency_loss_overfits_one_batch() -> None:
    cfg = SBIRConfig(backbone=CLIP, lr=1e-3, pretrained=False, erase=0.5, consistency=1.0,
                     photo_pool="mean", shared=True, dim=0)  # fmt: skip
    trainer = SBIRTrainer(cfg, FixedTriplets(64), LoopConfig(steps=20, batch_size=4, device="cpu"))
    losses = trainer.fit().losses
    assert "consistency" in losses and all(v >= 0 for v in losses["consistency"])
    assert losses["total"][-1] < 0.5 * losses["total"][0], losses["total"]


def test_the_clip_segmenter_overfits_one_batch_tuning_only_its_layernorms() -> None:
    trainer = segmenter(FixedPairs(64), steps=30, tune="layernorm", lr=3e-2)
    visual = trainer.model.visual
    ln_ids = {
        id(p) for m in visual.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()
    }
    ln_keys = {f"visual.{n}" for n, p in visual.named_parameters() if id(p) in ln_ids}
    before = state(trainer.model)
    losses = trainer.fit().losses

    total = losses["total"]
    assert total[-1] < 0.6 * total[0], total
    assert losses["infonce"][-1] < 0.5 * math.log(4)  # the pairs are told apart
    assert losses["unpaired"][-1] < losses["unpaired"][0]
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= ln_keys, sorted(changed - ln_keys)
    assert any(k.startswith("visual.ln_post") for k in changed)


def test_the_dinov2_segmenter_overfits_one_batch_tuning_everything() -> None:
    trainer = segmenter(FixedPairs(56), backbone=DINO, tune="all", lr=3e-4)
    # A random DINOv2 starts its LayerScales at 1e-5, which mutes its blocks; open them up.
    for name, p in trainer.model.named_parameters():
        if name.endswith(".gamma"):
            p.data.fill_(1.0)
    before = state(trainer.model)
    losses = trainer.fit().losses

    total = losses["total"]
    assert total[-1] < 0.6 * total[0], total
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert {"cls_token", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight"} <= changed


# ---------------------------------------------------------------- resume, checkpoints, NaN


def test_a_resumed_segmenter_run_is_the_uninterrupted_one(tmp_path: Path) -> None:
    whole = segmenter(DrawnPairs(64), steps=6, out=tmp_path / "whole", tune="layernorm", lr=1e-2)
    whole_losses = whole.fit().losses

    first = segmenter(DrawnPairs(64), steps=3, out=tmp_path / "split", tune="layernorm", lr=1e-2)
    first_losses = first.fit().losses
    second = segmenter(DrawnPairs(64), steps=6, out=tmp_path / "split", tune="layernorm", lr=1e-2)
    assert second.resume() and second.step == 3
    second_losses = second.fit().losses

    for key, values in whole_losses.items():
        assert first_losses[key] + second_losses[key] == values, key
    a, b = whole.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_saved_segmenter_loads_in_the_app_as_fixed_calibrated(tmp_path: Path) -> None:
    trainer = segmenter(FixedPairs(64), steps=2, out=tmp_path / "run", tau=0.07)
    trainer.fit()
    paths = trainer.checkpoint
    assert paths is not None and paths.exists() and paths.state.is_file()

    ckpt = read_segmenter_checkpoint(paths.weights.with_suffix(""))
    assert ckpt.backbone_id == CLIP and ckpt.step == 2
    kwargs = ckpt.segmenter_kwargs()
    assert kwargs["calibration"] == "fixed" and kwargs["tau"] == pytest.approx(0.07)
    backbone = create_backbone(ckpt.backbone_id, weights=ckpt.weights, device="cpu")
    assert backbone.weights.fine_tuned
    seg = Segmenter(backbone, **kwargs)
    assert seg.calibration == "fixed"
    trained, loaded = trainer.model.state_dict(), backbone.model.state_dict()
    assert trained.keys() == loaded.keys()
    assert all(torch.equal(trained[k], loaded[k].cpu()) for k in trained)


def test_a_nan_loss_stops_training_with_a_message() -> None:
    trainer = segmenter(FixedPairs(64), steps=3)
    with torch.no_grad():
        trainer.model.visual.ln_post.weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match=r"the loss became nan at step 0 .*learning rate"):
        trainer.fit()
    assert trainer.step == 0
