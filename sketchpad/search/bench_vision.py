"""``sketchpad bench vision``: encoder and mask timings per backbone, side by side in one run.

Random weights are fine for timing (the arithmetic is the same). Reported, not asserted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sketchpad.sketch.model import Sketch, Stroke


@dataclass(frozen=True)
class VisionTimings:
    """Milliseconds (medians) for one backbone at its default input size."""

    backbone: str
    device: str
    grid: str
    sketch_ms: float
    photo_b1_ms: float
    photo_b8_ms: float
    plain_ms: float
    vv_ms: float
    mask_ms: float
    mask_crf_ms: float

    @property
    def vv_ratio(self) -> float | None:
        """v-v path time / plain forward time (None for DINOv2: no v-v path)."""
        return self.vv_ms / self.plain_ms if self.plain_ms > 0 else None


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocations, kernels, lazy imports)
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


def bench_sketch() -> Sketch:
    """A deterministic test drawing (a cow-ish outline and some detail strokes)."""
    t = np.linspace(0, 2 * np.pi, 120)
    body = np.stack([300 + 160 * np.cos(t), 250 + 90 * np.sin(t)], axis=1)
    head = np.stack([470 + 50 * np.cos(t), 170 + 40 * np.sin(t)], axis=1)
    legs = [np.array([[x, 320.0], [x + 5, 420.0]]) for x in (200, 250, 350, 400)]
    strokes = [Stroke(body), Stroke(head), *(Stroke(leg) for leg in legs)]
    return Sketch(strokes=tuple(strokes), width=640, height=480)


def bench_photo(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A deterministic photo-like image (H, W, 3) uint8: a smooth sky-to-ground gradient, a few
    solid shapes and sensor-like noise. (The dense CRF's cost grows with the number of distinct
    colours, so pure noise would overstate it.)"""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = hw
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    top, bottom = rng.uniform(60, 220, 3), rng.uniform(30, 160, 3)
    im = np.broadcast_to((1 - t) * top + t * bottom, (h, w, 3)).copy()
    for _ in range(4):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(w // 10, w // 4)), int(rng.integers(h // 10, h // 4)))
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.ellipse(im, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    im += rng.normal(0.0, 6.0, im.shape)
    return np.clip(np.round(im), 0, 255).astype(np.uint8)


def time_backbone(
    backbone_id: str, *, device: str | None = None, repeats: int = 3
) -> VisionTimings:
    """Time one backbone (random weights) end to end."""
    from sketchpad.search.core import SearchCore
    from sketchpad.search.spec import QuerySpec
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.bank import FeatureBank
    from sketchpad.vision.features import embed_photos, embed_sketches
    from sketchpad.vision.segmenter import Segmenter

    bb = create_backbone(backbone_id, pretrained=False, device=device)
    spec = bb.spec
    sketch = bench_sketch()
    photos = [bench_photo((384, 512), seed=i) for i in range(8)]
    sketch_ms = _median_ms(lambda: embed_sketches(bb, [sketch]), repeats)
    b1 = _median_ms(lambda: embed_photos(bb, photos[:1]), repeats)
    b8 = _median_ms(lambda: embed_photos(bb, photos), max(1, repeats - 1))
    x = torch.randn(1, 3, spec.input_size, spec.input_size)
    plain = _median_ms(lambda: bb.encode_patches(x, path="plain"), repeats)
    vv = _median_ms(lambda: bb.encode_patches(x, path="vv"), repeats)
    seg = Segmenter(bb, calibration="gallery-relative", z_offset=1.0)
    feats = embed_photos(bb, photos)
    bank = FeatureBank(feats)
    core = SearchCore(seg)
    result = core.search(QuerySpec(sketch=sketch), bank)
    mask_ms = _median_ms(lambda: core.mask(result, bank, 0, threshold=0.5), repeats)
    crf_ms = _median_ms(
        lambda: core.mask(result, bank, 0, threshold=0.5, photo=photos[0], crf=True), repeats
    )
    return VisionTimings(
        backbone=backbone_id,
        device=str(bb.device),
        grid=f"{spec.grid}×{spec.grid}",
        sketch_ms=sketch_ms,
        photo_b1_ms=b1,
        photo_b8_ms=b8,
        plain_ms=plain if spec.family == "open_clip" else 0.0,
        vv_ms=vv if spec.family == "open_clip" else 0.0,
        mask_ms=mask_ms,
        mask_crf_ms=crf_ms,
    )


@dataclass(frozen=True)
class FusionTimings:
    """SketchFusion per photo at one input side: each stage's milliseconds (medians, batch 1),
    peak memory, and the dense map's size against CLIP ViT-B/16's."""

    backbone: str
    device: str
    size: int
    grid: str
    clip_ms: float
    vae_ms: float
    unet_ms: float
    aggregator_ms: float
    total_ms: float
    peak_mb: float
    map_kb: float
    clip_map_kb: float


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def time_fusion(
    backbone_id: str,
    sizes: Sequence[int] = (256, 512),
    *,
    device: str | None = None,
    repeats: int = 2,
) -> list[FusionTimings]:
    """Time a SketchFusion backbone (random weights) stage by stage at each input side."""
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.fusion.backbone import FusionBackbone
    from sketchpad.vision.registry import get_spec

    bb = create_backbone(backbone_id, pretrained=False, device=device)
    if not isinstance(bb, FusionBackbone):
        raise ValueError(f"{backbone_id} is not a SketchFusion backbone")
    m = bb.extractor
    clip_b16 = get_spec("clip-vit-b16")
    clip_kb = clip_b16.grid**2 * clip_b16.embed_dim * 2 / 1024  # fp16 rows in the cache
    out = []
    for size in sizes:
        if size % bb.size_multiple:
            raise ValueError(f"size {size} is not a multiple of {bb.size_multiple}")
        x = torch.rand(1, 3, size, size, device=bb.device, dtype=bb.dtype) * 2 - 1
        if bb.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(bb.device)
        tokens, grid = m.clip_tokens(x)
        feats = m.unet_features(x, tokens, grid)
        hw = (size // m.config.map_stride, size // m.config.map_stride)
        clip_ms = _median_ms(lambda: m.clip_tokens(x), repeats)  # noqa: B023 - called here
        vae_ms = _median_ms(lambda: m.noisy_latents(x), repeats)  # noqa: B023
        unet_ms = _median_ms(lambda: m.unet_features(x, tokens, grid), repeats) - vae_ms  # noqa: B023
        agg_ms = _median_ms(lambda: m.aggregate_map(feats, hw), repeats)  # noqa: B023
        total = _median_ms(lambda: bb.encode_patches(x), repeats)  # noqa: B023
        out.append(
            FusionTimings(
                backbone=backbone_id,
                device=str(bb.device),
                size=size,
                grid=f"{hw[0]}×{hw[1]}",
                clip_ms=clip_ms,
                vae_ms=vae_ms,
                unet_ms=max(unet_ms, 0.0),
                aggregator_ms=agg_ms,
                total_ms=total,
                peak_mb=_peak_mb(bb.device),
                map_kb=hw[0] * hw[1] * m.out_dim * 2 / 1024,
                clip_map_kb=clip_kb,
            )
        )
    return out


def format_fusion_table(rows: Sequence[FusionTimings]) -> list[str]:
    head = (
        f"{'backbone':<22} {'device':<6} {'size':>5} {'grid':<6} {'CLIP':>8} {'VAE':>8} "
        f"{'UNet':>9} {'aggr':>7} {'total':>9} {'peak MB':>8} {'map KB':>7} {'CLIP B/16':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.backbone:<22} {r.device:<6} {r.size:>5} {r.grid:<6} {r.clip_ms:>6.0f}ms "
            f"{r.vae_ms:>6.0f}ms {r.unet_ms:>7.0f}ms {r.aggregator_ms:>5.0f}ms "
            f"{r.total_ms:>7.0f}ms {r.peak_mb:>8.0f} {r.map_kb:>7.0f} {r.clip_map_kb:>9.0f}"
        )
    lines.append(
        "per photo, batch 1, random weights: CLIP = penultimate tokens; VAE = encode + noise; "
        "UNet = the pass up to the third up-block (injection included); aggr = aggregation "
        "network; total = the whole map + max pool. peak MB: process RSS (CPU) or CUDA peak. "
        "map KB: one photo's cached fp16 map against CLIP ViT-B/16's 14×14×512."
    )
    return lines


def format_table(rows: Sequence[VisionTimings]) -> list[str]:
    """The table the CLI prints."""
    head = (
        f"{'backbone':<16} {'device':<6} {'grid':<6} {'sketch':>8} {'photo b1':>9} "
        f"{'photo b8':>9} {'per photo':>9} {'v-v/plain':>9} {'mask':>7} {'mask+CRF':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = f"{r.vv_ratio:.2f}×" if r.vv_ratio is not None else "n/a"
        lines.append(
            f"{r.backbone:<16} {r.device:<6} {r.grid:<6} {r.sketch_ms:>6.1f}ms "
            f"{r.photo_b1_ms:>7.1f}ms {r.photo_b8_ms:>7.1f}ms {r.photo_b8_ms / 8:>7.1f}ms "
            f"{ratio:>9} {r.mask_ms:>5.1f}ms {r.mask_crf_ms:>7.1f}ms"
        )
    lines.append(
        "sketch: render + encode one sketch; photo b1/b8: letterbox + v-v encode of 1/8 photos "
        "(384×512); v-v/plain: v-v forward time over the plain forward; mask: one photo's map "
        "→ mask at long side 512 (upsample, threshold, instances), +CRF: with dense-CRF."
    )
    return lines


def run(
    backbones: Sequence[str],
    report: Callable[[str], None],
    *,
    device: str | None = None,
    repeats: int = 3,
) -> int:
    """Time each backbone and report the table line by line; returns an exit code."""
    from sketchpad.vision.registry import get_spec

    rows = []
    fused: list[FusionTimings] = []
    torch.set_grad_enabled(False)
    report(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for bid in backbones:
        report(f"timing {bid} …")
        if get_spec(bid).family == "sketchfusion":
            spec = get_spec(bid)
            sizes = (256, 512) if spec.input_size >= 256 else (spec.input_size,)
            fused += time_fusion(bid, sizes, device=device, repeats=max(1, repeats - 1))
            continue
        rows.append(time_backbone(bid, device=device, repeats=repeats))
    if rows:
        for line in format_table(rows):
            report(line)
    if fused:
        for line in format_fusion_table(fused):
            report(line)
    return 0
