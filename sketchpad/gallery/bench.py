"""``sketchpad bench gallery``: indexing throughput, query latency over cached photos, the
speed-up over re-encoding, cache size and query memory, measured side by side in one run.

Random weights (the arithmetic is the same as with real ones). Photos for indexing are
generated files; the caches for the latency runs hold synthetic feature rows of the
backbone's exact shape (unit vectors), written and read through the real cache. Reported,
never asserted. ``--large-sizes`` adds the large-library part (:mod:`.bench_large`: the
two-stage query over the compressed patch store against the exact method, synthetic libraries
of 1,000 … 100,000 photos).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sketchpad.gallery.cache import FeatureCache
from sketchpad.gallery.images import load_photo
from sketchpad.gallery.index import index_folder, model_key
from sketchpad.gallery.query import load_bank
from sketchpad.search.core import SearchCore
from sketchpad.search.spec import QuerySpec
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.vision.bank import FeatureBank, TensorBlock
from sketchpad.vision.segmenter import Segmenter

Report = Callable[[str], None]


@dataclass(frozen=True)
class LatencyRow:
    """Query latency over ``n`` cached photos (milliseconds unless said)."""

    n: int
    p50: float
    p95: float
    paired_p95: float
    sketch_ms: float
    product_ms: float
    load_s: float
    bytes_per_photo: float
    resident_mb: float
    peak_mb: float | None

    @property
    def reference_ms(self) -> float:
        """Sketch encode + one matrix product over the cache (medians)."""
        return self.sketch_ms + self.product_ms


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _clock() -> float:
    """Milliseconds, after the device has finished its queued work."""
    _sync()
    return time.perf_counter() * 1000.0


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def query_sketch(k: int) -> Sketch:
    """A different drawing per query (a wobbly loop and a stroke): nothing can be reused."""
    rng = np.random.default_rng(k)
    t = np.linspace(0, 2 * np.pi, 80)
    r = 120 + 20 * np.sin(3 * t + rng.uniform(0, 6))
    loop = np.stack([320 + r * np.cos(t), 240 + 0.7 * r * np.sin(t)], axis=1)
    line = np.array([[rng.uniform(50, 200), 400.0], [rng.uniform(400, 600), 420.0]])
    return Sketch(strokes=(Stroke(loop), Stroke(line)), width=640, height=480)


def rss_mb() -> tuple[float, float] | None:
    """(current, peak) resident memory of this process in MiB (Linux), else None."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    vals = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            vals[line[:5]] = int(line.split()[1]) / 1024.0
    return (vals["VmRSS"], vals["VmHWM"]) if len(vals) == 2 else None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ≥ 4.0), so the next peak is this step's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def write_synthetic_cache(
    folder: Path, seg: Segmenter, n: int, cache_path: Path, report: Report, seed: int = 0
) -> None:
    """``n`` synthetic rows of the segmenter's exact shapes, through ``FeatureCache.put``."""
    from sketchpad.vision.features import PhotoFeatures, normalize
    from sketchpad.vision.letterbox import fit_letterbox

    bb = seg.backbone
    size = seg.input_size
    g = size // bb.spec.patch_size
    d = bb.embed_dim
    rng = np.random.default_rng(seed)
    box = fit_letterbox((384, 512), size)
    with FeatureCache.open(folder, model_key(seg), path=cache_path) as cache:
        for start in range(0, n, 250):
            k = min(250, n - start)
            patches = normalize(rng.standard_normal((k, g * g, d), dtype=np.float32))
            globs = normalize(rng.standard_normal((k, d), dtype=np.float32))
            rows = [
                (f"photo{start + i:06d}.jpg", 1000 + start + i, 1, PhotoFeatures(
                    patches[i].astype(np.float16), (g, g), globs[i], box, bb.spec.patch_size))
                for i in range(k)
            ]  # fmt: skip
            cache.put(rows)
        report(f"  wrote {n} synthetic rows: {cache.nbytes() / 2**20:.0f} MiB on disk")


def latency(
    seg: Segmenter,
    n: int,
    workdir: Path,
    *,
    queries: int,
    budget: int | None,
    report: Report,
) -> LatencyRow:
    """p50/p95 of sketch → ranked gallery over ``n`` cached photos, and its references."""
    folder = workdir / f"gallery{n}"
    folder.mkdir(exist_ok=True)
    path = workdir / f"cache{n}.sqlite"
    write_synthetic_cache(folder, seg, n, path, report)
    with FeatureCache.open(folder, model_key(seg), writer=False, path=path) as c:
        per_photo = c.nbytes() / max(1, len(c))
    t = time.perf_counter()
    bank = load_bank(folder, model_key(seg), budget_bytes=budget, cache_path=path)
    load_s = time.perf_counter() - t
    check_s = checksum_seconds(bank)
    report(
        f"  load {load_s:.2f} s, of which verifying the rows' checksums ≈ {check_s:.2f} s "
        f"({100 * check_s / load_s:.0f} %: the same checksum over the same bytes, timed alone)"
    )
    try:
        SearchCore(seg).search(QuerySpec(sketch=query_sketch(0)), bank)  # warm-up
        full, sk, prod = [], [], []
        before = rss_mb()
        peak_ok = _reset_peak()
        for k in range(1, queries + 1):
            sketch = query_sketch(k)
            core = SearchCore(seg)  # nothing kept from the last query
            t0 = _clock()
            core.search(QuerySpec(sketch=sketch), bank)
            full.append(_clock() - t0)
            q = core.encode(QuerySpec(sketch=sketch))[0]
            t0 = _clock()
            seg.sketch_query(sketch)
            sk.append(_clock() - t0)
            t0 = _clock()
            bank.correlate(q.embedding)
            prod.append(_clock() - t0)
        after = rss_mb()
        peak = after[1] - before[0] if (before and after and peak_ok) else None
        return LatencyRow(
            n=n,
            p50=_percentile(full, 50),
            p95=_percentile(full, 95),
            paired_p95=_percentile([a + b for a, b in zip(sk, prod, strict=True)], 95),
            sketch_ms=statistics.median(sk),
            product_ms=statistics.median(prod),
            load_s=load_s,
            bytes_per_photo=per_photo,
            resident_mb=bank.resident_bytes / 2**20,
            peak_mb=peak,
        )
    finally:
        bank.close()
        path.unlink(missing_ok=True)
        for side in ("-wal", "-shm", ".lock"):
            path.with_name(path.name + side).unlink(missing_ok=True)


def checksum_seconds(bank: FeatureBank) -> float:
    """Seconds the rows' patch checksum takes over a loaded bank's resident patch bytes: the
    share of ``load_bank`` spent verifying them (the layouts' small checksums left out)."""
    from sketchpad.gallery.cache_rows import check_patches

    t = time.perf_counter()
    for block in bank.blocks:
        if isinstance(block, TensorBlock):
            check_patches(block.tensor.numpy().data)  # no copy
    return time.perf_counter() - t


def make_photo_folder(folder: Path, n: int) -> list[Path]:
    """``n`` photo-like 384×512 JPEGs."""
    from PIL import Image

    from sketchpad.search.bench_vision import bench_photo

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"photo{i:05d}.jpg"
        Image.fromarray(bench_photo((384, 512), seed=i)).save(p, quality=90)
        paths.append(p)
    return paths


def indexing(
    seg: Segmenter, photos: list[Path], workdir: Path, batch: int
) -> tuple[float, float, float]:
    """(index seconds, raw forward seconds, cache bytes per photo) on the same photos. The raw
    forward (decoded, letterboxed batches, model only) runs before and after indexing and the
    two are averaged."""
    from sketchpad.vision.features import _to_tensor, photo_input

    bb = seg.backbone
    size = seg.input_size
    path = workdir / "index.sqlite"
    folder = photos[0].parent
    inputs = [photo_input(load_photo(p), bb, size)[0] for p in photos]
    batches = [
        _to_tensor(np.stack(inputs[i : i + batch]), bb) for i in range(0, len(inputs), batch)
    ]
    path_kind = seg.patch_path

    def raw() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for x in batches:
                bb.encode_patches(x.to(bb.device), path=path_kind)
        _sync()
        return time.perf_counter() - t

    bb.encode_patches(batches[0].to(bb.device), path=path_kind)  # warm-up
    raw_before = raw()
    t = time.perf_counter()
    summary = index_folder(folder, seg, batch_size=batch, cache_path=path)
    index_s = time.perf_counter() - t
    raw_after = raw()  # the raw forward brackets the indexing run: slow drift cancels
    raw_s = (raw_before + raw_after) / 2.0
    if summary.indexed != len(photos):  # the bench's own photos: all must be readable
        raise RuntimeError(f"indexed {summary.indexed} of {len(photos)}: {summary.skipped}")
    with FeatureCache.open(folder, model_key(seg), writer=False, path=path) as c:
        per_photo = c.nbytes() / max(1, len(c))
    return index_s, raw_s, per_photo


def naive_per_photo_ms(seg: Segmenter, photos: list[Path], batch: int) -> float:
    """What a tool without a cache pays per photo per query: decode, encode, correlate."""
    from sketchpad.vision.bank import FeatureBank

    spec = QuerySpec(sketch=query_sketch(99))
    core = SearchCore(seg)
    core.encode(spec)
    t = time.perf_counter()
    for i in range(0, len(photos), batch):
        images = [load_photo(p) for p in photos[i : i + batch]]
        bank = FeatureBank(seg.embed_photos(images, batch_size=batch))
        core.search(spec, bank)
    return (time.perf_counter() - t) * 1000.0 / len(photos)


@torch.no_grad()
def run(
    backbone_id: str,
    report: Report,
    *,
    device: str | None = None,
    sizes: Sequence[int] = (1000, 10000),
    index_photos: int = 64,
    naive_photos: int = 32,
    queries: int = 40,
    batch: int = 8,
    budget: int | None = None,
    workdir: Path | None = None,
    large_sizes: Sequence[int] = (),
    codecs: Sequence[str] = ("q5r",),
    large_queries: int = 20,
    threads: int | None = None,
    only_large: bool = False,
) -> int:
    """Run every measurement and report lines; returns an exit code. ``large_sizes``: also
    the large-library benchmark (:mod:`sketchpad.gallery.bench_large`) at these sizes;
    ``only_large``: that alone."""
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.segmenter import Segmenter

    bb = create_backbone(backbone_id, pretrained=False, device=device)
    seg = Segmenter(bb)
    report(
        f"sketchpad bench gallery: {backbone_id} (random weights), {bb.device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs; grid {bb.spec.grid}×{bb.spec.grid}, d = {bb.embed_dim}"
    )
    if only_large:
        _large(seg, report, large_sizes, codecs, large_queries, threads, workdir)
        return 0
    with tempfile.TemporaryDirectory(prefix="sketchpad-bench-", dir=workdir) as tmp:
        work = Path(tmp)
        report(f"generating {max(index_photos, naive_photos)} photos (384×512 JPEG) …")
        photos = make_photo_folder(work / "photos", max(index_photos, naive_photos))
        report(f"indexing {index_photos} photos, then the raw forward on the same images …")
        index_s, raw_s, index_bpp = indexing(seg, photos[:index_photos], work, batch)
        ratio = raw_s / index_s
        report(
            f"  indexing: {index_photos / index_s:.2f} photos/s; raw batched forward: "
            f"{index_photos / raw_s:.2f} photos/s → throughput ratio {ratio:.3f} "
            f"(target ≥ 0.9: {'PASS' if ratio >= 0.9 else 'FAIL'})"
        )
        report(f"  cache bytes per photo (real photos): {index_bpp / 1024:.1f} KiB")
        report(f"naive re-encoding, measured on {naive_photos} photos …")
        naive_ms = naive_per_photo_ms(seg, photos[:naive_photos], batch)
        report(f"  {naive_ms:.1f} ms per photo per query (decode + encode + score)")
        rows = []
        for n in sizes:
            report(f"query latency over {n} cached photos ({queries} queries) …")
            rows.append(latency(seg, n, work, queries=queries, budget=budget, report=report))
    report("")
    report(
        f"{'photos':>7} {'p50':>8} {'p95':>8} {'sketch':>8} {'product':>8} {'p95/ref':>8} "
        f"{'p95/p95ref':>10} "
        f"{'load':>7} {'KiB/photo':>9} {'resident':>9} {'peak':>9}"
    )
    for r in rows:
        peak = f"{r.peak_mb:.0f}MiB" if r.peak_mb is not None else "n/a"
        report(
            f"{r.n:>7} {r.p50:>6.1f}ms {r.p95:>6.1f}ms {r.sketch_ms:>6.1f}ms "
            f"{r.product_ms:>6.1f}ms {r.p95 / r.reference_ms:>7.2f}× "
            f"{r.p95 / r.paired_p95:>9.2f}× {r.load_s:>6.1f}s "
            f"{r.bytes_per_photo / 1024:>9.1f} {r.resident_mb:>6.0f}MiB {peak:>9}"
        )
    report(
        "p50/p95: sketch → every photo scored and ranked; ref = sketch encode + one matrix "
        "product (medians); p95ref: the p95 of that sum measured query by query, side by side "
        "(machine noise affects both alike); load: reading the cache into memory (once per "
        "folder); peak: resident memory added during the queries."
    )
    for r in rows:
        ok = r.p95 <= 1.2 * r.reference_ms
        report(
            f"  N = {r.n}: p95 {r.p95:.0f} ms ≤ 1.2 × ref {1.2 * r.reference_ms:.0f} ms: "
            f"{'PASS' if ok else 'FAIL'}"
            + (f"; ≤ 500 ms: {'PASS' if r.p95 <= 500 else 'FAIL'}" if r.n >= 10000 else "")
        )
    for r in rows:
        naive_total = naive_ms * r.n + r.sketch_ms
        speedup = naive_total / r.p50
        verdict = f" (target ≥ 500×: {'PASS' if speedup >= 500 else 'FAIL'})" if r.n == 1000 else ""
        report(
            f"  speed-up over re-encoding {r.n} photos per query: {naive_total / 1000:.1f} s "
            f"(measured per photo on {naive_photos}, × {r.n}) / p50 {r.p50:.0f} ms = "
            f"{speedup:.0f}×{verdict}"
        )
    if large_sizes:
        report("")
        _large(seg, report, large_sizes, codecs, large_queries, threads, workdir)
    return 0


def _large(
    seg: Segmenter,
    report: Report,
    sizes: Sequence[int],
    codecs: Sequence[str],
    queries: int,
    threads: int | None,
    workdir: Path | None,
) -> None:
    from sketchpad.gallery.bench_large import run_large
    from sketchpad.vision.quant import check_codec

    checked = [check_codec(c, seg.backbone.embed_dim) for c in codecs]
    run_large(
        seg, report, sizes=sizes, queries=queries, codecs=checked, workdir=workdir,
        threads=threads,
    )  # fmt: skip
