"""``sketchpad bench fusion``: sketch–photo correspondence on generated shapes with known
keypoints under random warps (``train.fusion_data.correspondence_pair``), CPU.

Each variant's head is trained the same way (the correspondence loss, the same steps, batches
and seed) and scored by PCK@5/PCK@10 on held-out pairs of the same classes: the full fused
model, the same model untrained, SD-only (no injection), CLIP-only (no SD: the injected CLIP
features alone), and the seed's Table 6 ablations (w/o aggregation network, w/o learnable
weights, w/o convolutions). Reported, not asserted.

Offline there are no pretrained weights: by default the tiny test backbone with random frozen
SD and CLIP is used, so the comparison measures what the trained parts can do on top of random
features, not what pretrained SD and CLIP bring. ``--backbones sketchfusion-sd21-l14`` with
weights in place runs the real thing (GPU advised).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from sketchpad.train.fusion_data import SyntheticFusionSource
from sketchpad.train.fusion_eval import score_matches
from sketchpad.train.fusion_train import FusionTrainer
from sketchpad.train.loop import LoopConfig
from sketchpad.vision.features import PhotoFeatures, normalize
from sketchpad.vision.fusion.correspond import match_features
from sketchpad.vision.fusion.model import FusedExtractor, FusionConfig
from sketchpad.vision.letterbox import fit_letterbox

#: (name, changes to the backbone's configuration, trained?)
VARIANTS: tuple[tuple[str, dict[str, object], bool], ...] = (
    ("fused, untrained", {}, False),
    ("fused (SketchFusion)", {}, True),
    ("SD only", {"injection": "none"}, True),
    ("CLIP only", {"clip_only": True}, True),
    ("w/o aggregation network", {"aggregation": "interpolate"}, True),
    ("w/o learnable weights", {"branch_weights": "fixed"}, True),
    ("w/o convolutions", {"injection": "interpolate"}, True),
)


@dataclass(frozen=True)
class VariantResult:
    name: str
    pck5: float
    pck10: float
    final_loss: float | None
    seconds: float


def evaluate(
    extractor: FusedExtractor, source: SyntheticFusionSource, pairs: int, seed: int
) -> tuple[float, float]:
    """PCK@5 and PCK@10 of sketch → photo keypoints on ``pairs`` generated pairs."""
    batch = source.batch("correspondence", np.random.default_rng([seed, 991]), pairs)
    assert batch.photo is not None and batch.kp_sketch is not None and batch.kp_photo is not None
    extractor.eval()
    s = source.size
    stride = extractor.config.map_stride
    box = fit_letterbox((s, s), s)
    with torch.no_grad():
        maps = [extractor(x) for x in (batch.sketch, batch.photo)]
    items = []
    for i in range(pairs):
        feats = []
        for m in maps:
            grid = normalize(m[i].permute(1, 2, 0).float().numpy())
            h, w, d = grid.shape
            feats.append(
                PhotoFeatures(grid.reshape(h * w, d), (h, w), grid.reshape(-1, d)[0], box, stride)
            )
        kp_s = np.clip(batch.kp_sketch[i].numpy().astype(np.float64), 0, s)
        res = match_features(feats[0], feats[1], kp_s)
        pred = np.array([mt.target for mt in res.matches])
        items.append((pred, batch.kp_photo[i].numpy().astype(np.float64), float(s)))
    scores = score_matches(items)
    return scores.pck[0.05], scores.pck[0.1]


#: Offset of the validation pairs' seed from the reported held-out pairs' seed: a setting chosen
#: by ``sweep_timesteps`` never sees the pairs it is reported on.
VALIDATION_SEED_OFFSET = 5000


def _train_and_score(
    base: FusedExtractor,
    cfg: FusionConfig,
    source: SyntheticFusionSource,
    *,
    backbone_id: str,
    trained: bool,
    steps: int,
    batch_size: int,
    eval_pairs: int,
    lr: float,
    seed: int,
    eval_seed: int,
    device: str,
) -> tuple[FusedExtractor, float, float, float | None]:
    """A fresh copy of ``base`` under ``cfg``, its trained parts seeded as every variant's,
    trained (when ``trained``) and scored on pairs drawn from ``eval_seed``."""
    ext = copy.deepcopy(base)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = FusedExtractor(
            ext.vae, ext.unet, ext.alphas_cumprod, ext.clip, ext.null_embedding, cfg,
            clip_mean=ext.clip_mean.flatten().tolist(),
            clip_std=ext.clip_std.flatten().tolist(),
        )  # fmt: skip
    loss = None
    if trained:
        loop = LoopConfig(steps=steps, batch_size=batch_size, seed=seed, device=device)
        trainer = FusionTrainer(
            backbone_id, fresh, "correspondence", source, loop, lr=lr, size=source.size
        )
        trainer.fit()
        loss = float(np.mean(trainer.history.losses["total"][-10:]))
    p5, p10 = evaluate(fresh, source, eval_pairs, eval_seed)
    return fresh, p5, p10, loss


def run(
    report: Callable[[str], None],
    *,
    backbone_id: str = "test-sketchfusion-tiny",
    steps: int = 150,
    batch_size: int = 4,
    eval_pairs: int = 48,
    lr: float = 3e-3,
    seed: int = 0,
    device: str = "cpu",
    pretrained: bool = False,
    only: tuple[str, ...] = (),
) -> int:
    """Train and score every variant (or those named in ``only``); report a table. Returns
    an exit code."""
    from sketchpad.vision.fusion.backbone import build_extractor, fusion_config
    from sketchpad.vision.registry import get_spec

    spec = get_spec(backbone_id)
    if spec.testing and device == "cpu":
        torch.set_num_threads(1)  # tiny convolutions: one thread is ~10× faster on busy cores
    base_cfg = fusion_config(spec)
    size = spec.input_size
    source = SyntheticFusionSource(size)
    t0 = time.perf_counter()
    base, _, origin = build_extractor(spec, pretrained=pretrained, seed=seed)
    report(
        f"bench fusion: {backbone_id} ({origin} weights), {size} px, {len(source.classes)} "
        f"shape classes, {steps} steps × batch {batch_size}, {eval_pairs} held-out pairs, "
        f"torch {torch.get_num_threads()} threads"
    )
    results = []
    for name, changes, trained in VARIANTS:
        if only and name not in only:
            continue
        t = time.perf_counter()
        cfg: FusionConfig = replace(base_cfg, **changes)  # type: ignore[arg-type]
        _, p5, p10, loss = _train_and_score(
            base, cfg, source, backbone_id=backbone_id, trained=trained, steps=steps,
            batch_size=batch_size, eval_pairs=eval_pairs, lr=lr, seed=seed, eval_seed=seed,
            device=device,
        )  # fmt: skip
        results.append(VariantResult(name, p5, p10, loss, time.perf_counter() - t))
        report(f"  {name:<26} PCK@5 {100 * p5:5.1f}  PCK@10 {100 * p10:5.1f}")
    report("")
    report(f"{'variant':<26} {'PCK@5':>6} {'PCK@10':>7} {'loss':>7} {'time':>7}")
    for r in results:
        shown = f"{r.final_loss:7.3f}" if r.final_loss is not None else "      -"
        report(f"{r.name:<26} {100 * r.pck5:6.1f} {100 * r.pck10:7.1f} {shown} {r.seconds:6.0f}s")
    report(f"total {time.perf_counter() - t0:.0f} s")
    return 0


def sweep_timesteps(
    report: Callable[[str], None],
    timesteps: tuple[int, ...],
    *,
    backbone_id: str = "test-sketchfusion-tiny",
    steps: int = 150,
    batch_size: int = 4,
    eval_pairs: int = 48,
    lr: float = 3e-3,
    seed: int = 0,
    device: str = "cpu",
    pretrained: bool = False,
) -> int:
    """Choose the diffusion timestep by measurement: the full fused model is trained the same
    way at each ``t``, scored by PCK@10 on *validation* pairs (their own seed), and the best
    is then scored on the held-out pairs ``run`` reports. Returns an exit code."""
    from sketchpad.vision.fusion.backbone import build_extractor, fusion_config
    from sketchpad.vision.registry import get_spec

    if not timesteps:
        raise ValueError("no timesteps to compare")
    spec = get_spec(backbone_id)
    if spec.testing and device == "cpu":
        torch.set_num_threads(1)
    base_cfg = fusion_config(spec)
    source = SyntheticFusionSource(spec.input_size)
    t0 = time.perf_counter()
    base, _, origin = build_extractor(spec, pretrained=pretrained, seed=seed)
    schedule = int(base.alphas_cumprod.shape[0])
    bad = [t for t in timesteps if not 0 <= t < schedule]
    if bad:
        raise ValueError(f"timesteps {bad} are outside the schedule's 0 … {schedule - 1}")
    report(
        f"bench fusion, timestep sweep: {backbone_id} ({origin} weights), {spec.input_size} px, "
        f"{steps} steps × batch {batch_size}; chosen on {eval_pairs} validation pairs "
        f"(seed {seed + VALIDATION_SEED_OFFSET}), reported on {eval_pairs} held-out pairs "
        f"(seed {seed})"
    )
    kw = dict(
        backbone_id=backbone_id, trained=True, steps=steps, batch_size=batch_size,
        eval_pairs=eval_pairs, lr=lr, seed=seed, device=device,
    )  # fmt: skip
    scored: list[tuple[int, float, float, FusedExtractor]] = []
    for t in timesteps:
        ext, p5, p10, _ = _train_and_score(
            base, replace(base_cfg, timestep=t), source,
            eval_seed=seed + VALIDATION_SEED_OFFSET, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        scored.append((t, p5, p10, ext))
        report(f"  t = {t:<4} validation PCK@5 {100 * p5:5.1f}  PCK@10 {100 * p10:5.1f}")
    best_t, _, _, best = max(scored, key=lambda r: (r[2], r[1], -abs(r[0] - base_cfg.timestep)))
    p5, p10 = evaluate(best, source, eval_pairs, seed)
    report(
        f"chosen on validation: t = {best_t} (configured default {base_cfg.timestep}); "
        f"held out: PCK@5 {100 * p5:.1f}, PCK@10 {100 * p10:.1f}; total "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return 0
