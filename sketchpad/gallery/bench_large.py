"""The large-library part of ``sketchpad bench gallery``: the two-stage query over a compressed,
memory-mapped patch store against the exact method, at 1,000 … 100,000 photos.

Features come from :mod:`sketchpad.gallery.synthetic_library` (clustered concepts, objects on
1–30 % of the patches, near-duplicates), written into a :class:`PatchStore` directly (no model:
100,000 photos in minutes). While they are generated, the *exact* method's answer is computed
from the float16 features in the same pass (each photo's maximum valid cosine per query, and the
cosines at the fixed whole-gallery sample the calibration uses), so recall is measured against
the exact method at every size, also where its float16 matrix (20 GB at 100,000) would not fit.
Up to ``exact_max`` photos the exact method also runs as the app runs it today (float16 in
memory, one product), timed side by side with the two-stage query, alternating.

Measured per size: p50/p95 of the search (query vector → every photo scored and ranked), the
process's peak resident memory while querying (the exact float16 bank dropped first), store
bytes per photo, shortlist size, and recall: the exact top-100 photos kept (ties at the 100th
score count as kept) and over the exact matches at threshold 0.5, how many stay matches and
the mask-pixel IoU of theirs (masks at 128 px long side, up to 8 matches per query).

Masks are measured the way the product makes them: from each photo's exact float16 rows
(``FeatureBank.exact_patches``; the app's store bank reads them from the folder's feature
cache, here they are the generator's own float16 features, regenerated per photo) with the
two-stage query's statistics — and, for comparison, from the store's decoded codes alone.
The reference mask is the exact method's, laid out as the store (and the exact top-100 and
matches) lay the photo out.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sketchpad.gallery import synthetic_library as sl
from sketchpad.gallery.bench import rss_mb
from sketchpad.gallery.bench_library import child_env
from sketchpad.gallery.patch_store import PatchStore, StoreRow
from sketchpad.search.masks import prob_hw
from sketchpad.search.scoring import GalleryScores, score_query
from sketchpad.search.shortlist import calibrated, score_photo, score_query_shortlist
from sketchpad.vision import maps
from sketchpad.vision.bank import FeatureBank, PhotoLayout, TensorBlock, sample_rows
from sketchpad.vision.quant import Codec
from sketchpad.vision.segmenter import Query, Segmenter

Report = Callable[[str], None]
THRESHOLD = 0.5
TOP = 100
MASK_SIDE = 128
MASKS_PER_QUERY = 8


@dataclass(frozen=True)
class LargeRow:
    n: int
    codec: str
    p50: float
    p95: float
    exact_p50: float | None
    exact_p95: float | None
    peak_mb: float | None
    bytes_per_photo: float
    shortlist: float
    top_recall: float
    match_recall: float
    mask_iou: float
    pixel_iou: float
    gen_s: float
    code_mask_iou: float = 1.0
    code_pixel_iou: float = 1.0
    cache_bytes_per_photo: float = 0.0
    split: int = 0
    model_mb: float | None = None
    loaded_mb: float | None = None


def query_process(folder: Path, setup: dict[str, object]) -> dict[str, float | None]:
    """What a process querying the store holds, measured in a fresh process of its own (run by
    :func:`_query_process_in_child`): the segmenter's model with random weights (as the app
    holds one), then the store opened as the app opens it, then the benchmark's queries.
    Returns MiB: resident after the model (``model``), after the bank and its in-memory
    matrices (``loaded``), and the process's peak over its whole life (``peak``, VmHWM: per
    process image, not carried over from the parent as ``ru_maxrss`` is)."""
    from sketchpad.vision.backbone import create_backbone

    threads = setup.get("threads")
    if isinstance(threads, int):
        torch.set_num_threads(threads)
    seg = Segmenter(
        create_backbone(str(setup["backbone"]), pretrained=False, device="cpu"),
        calibration=setup["calibration"],  # type: ignore[arg-type]
        tau=float(setup["tau"]),  # type: ignore[arg-type]
        z_offset=float(setup["z_offset"]),  # type: ignore[arg-type]
        z_temperature=float(setup["z_temperature"]),  # type: ignore[arg-type]
    )
    gc.collect()
    model = rss_mb()
    with PatchStore.open(folder, writer=False) as store:
        bank = store.load_bank()
    bank.summary_matrix()
    bank.sample_matrix()
    loaded = rss_mb()
    for q in np.load(folder.parent / f"{folder.name}-queries.npy"):
        score_query_shortlist(seg, Query(q, "q"), bank, top_n=TOP, threshold=THRESHOLD)
    end = rss_mb()
    return {
        "model": model[0] if model else None,
        "loaded": loaded[0] if loaded else None,
        "peak": end[1] if end else None,
    }


def _query_process_in_child(
    seg: Segmenter, folder: Path, qs: np.ndarray, threads: int | None
) -> dict[str, float | None]:
    """:func:`query_process` in a child process.

    Raises:
        RuntimeError: the child failed (its last line of error output in the message).
    """
    np.save(folder.parent / f"{folder.name}-queries.npy", qs)
    setup = {
        "backbone": seg.backbone.spec.id,
        "calibration": seg.calibration,
        "tau": seg.tau,
        "z_offset": seg.z_offset,
        "z_temperature": seg.z_temperature,
        "threads": threads if threads is not None else torch.get_num_threads(),
    }
    code = (
        "import json, sys; from pathlib import Path; "
        "from sketchpad.gallery.bench_large import query_process; "
        "print(json.dumps(query_process(Path(sys.argv[1]), json.loads(sys.argv[2]))))"
    )
    argv = [sys.executable, "-c", code, str(folder), json.dumps(setup)]
    done = subprocess.run(argv, env=child_env(), capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"the query process failed (exit {done.returncode}): {last}")
    got: dict[str, float | None] = json.loads(done.stdout.splitlines()[-1])
    return got


def _layouts(world: sl.World, lb: np.ndarray) -> list[PhotoLayout]:
    lays = [PhotoLayout((world.grid, world.grid), b, world.patch_size) for b in world.letterboxes]
    return [lays[int(i)] for i in lb]


def build(
    world: sl.World,
    n: int,
    qs: np.ndarray,
    folder: Path,
    codec: Codec,
    keep_exact: bool,
) -> tuple[np.ndarray, np.ndarray, FeatureBank | None]:
    """Write ``n`` photos into a store in ``folder``; returns (exact maximum valid cosine per
    photo and query (n, Q), exact cosines at the stats sample (S, Q), the float16 bank when
    ``keep_exact``)."""
    lb_all = sl.letterbox_indices(n)
    layouts = _layouts(world, lb_all)
    valid = np.concatenate([lay.valid_patches().ravel() for lay in layouts])
    sample = sample_rows(valid)
    t = world.grid**2
    best = np.empty((n, len(qs)), dtype=np.float32)
    sample_cos = np.empty((len(sample), len(qs)), dtype=np.float32)
    q32 = torch.from_numpy(qs.T.copy())
    exact = FeatureBank() if keep_exact else None
    with PatchStore.open(folder, codec=codec, dim=world.dim) as store:
        for b in sl.batches(world, n):
            k = len(b.patches)
            flat = torch.from_numpy(b.patches.reshape(-1, world.dim))
            cos = torch.mm(flat.float(), q32).numpy()  # (k·T, Q): float16 features, exactly
            v = valid[b.start * t : (b.start + k) * t]
            masked = np.where(v[:, None], cos, -np.inf).reshape(k, t, -1)
            best[b.start : b.start + k] = masked.max(axis=1)
            lo, hi = np.searchsorted(sample, [b.start * t, (b.start + k) * t])
            sample_cos[lo:hi] = cos[sample[lo:hi] - b.start * t]
            lays = layouts[b.start : b.start + k]
            store.put(
                [
                    StoreRow(f"p{b.start + i:07d}.jpg", 1, 1, b.patches[i], (world.grid,) * 2,
                             b.globals_[i], lays[i].letterbox, world.patch_size)
                    for i in range(k)
                ]
            )  # fmt: skip
            if exact is not None:
                exact.add_block_rows(lays, b.globals_, [TensorBlock(flat.numpy())])
    return best, sample_cos, exact


def _exact_scores(
    seg: Segmenter, best: np.ndarray, sample_cos: np.ndarray
) -> list[tuple[np.ndarray, maps.GalleryStats | None]]:
    out = []
    for j in range(best.shape[1]):
        stats = maps.gallery_stats(sample_cos[:, j]) if seg.calibration != "fixed" else None
        out.append((maps.sigmoid(calibrated(seg, best[:, j], stats)), stats))
    return out


def _top_kept(exact: np.ndarray, got: np.ndarray) -> float:
    top = np.argsort(-exact, kind="stable")[:TOP]
    cut = np.sort(got)[::-1][min(TOP, len(got)) - 1]
    return float(np.mean(got[top] >= cut))


class _ExactRows:
    """Photo index → its exact float16 features (T, d), regenerated as the library's batches
    (the last batch regenerated kept): the bench's stand-in for the feature cache."""

    def __init__(self, world: sl.World, n: int) -> None:
        self.world, self.n = world, n
        self._kept: tuple[int, np.ndarray] | None = None

    def __call__(self, i: int) -> np.ndarray:
        start = i - i % sl.BATCH
        if self._kept is None or self._kept[0] != start:
            b = sl.make_batch(self.world, start, min(sl.BATCH, self.n - start))
            self._kept = (start, b.patches)
        return self._kept[1][i - start]


def _exact_mask(
    seg: Segmenter,
    q: np.ndarray,
    patches: np.ndarray,
    layout: PhotoLayout,
    glob: np.ndarray,
    stats: maps.GalleryStats | None,
) -> np.ndarray:
    """The exact method's mask of one photo (its float16 features, the exact statistics)."""
    bank = FeatureBank()
    bank.add_block_rows([layout], glob[None], [TensorBlock(patches)])
    cos = torch.mv(torch.from_numpy(patches), torch.from_numpy(q).half()).float().numpy()
    logits = calibrated(seg, cos, stats)
    sc = GalleryScores(Query(q, "q"), cos, logits, stats, np.zeros(1, np.float32))
    hw = _mask_hw(bank.layouts[0].photo_hw)
    return prob_hw(sc, bank, 0, hw) >= THRESHOLD


def _mask_hw(hw: tuple[int, int]) -> tuple[int, int]:
    s = MASK_SIDE / max(hw)
    return (max(1, round(hw[0] * s)), max(1, round(hw[1] * s)))


def large(
    seg: Segmenter,
    n: int,
    work: Path,
    *,
    queries: int,
    codec: Codec,
    exact_max: int,
    report: Report,
) -> LargeRow:
    world = sl.make_world()
    qs = sl.queries(world, queries + 1)
    folder = work / f"store{n}-{codec}"
    t0 = time.perf_counter()
    best, sample_cos, exact_bank = build(world, n, qs, folder, codec, n <= exact_max)
    gen_s = time.perf_counter() - t0
    with PatchStore.open(folder, writer=False) as store:
        per_photo = store.nbytes() / max(1, len(store))
        bank = store.load_bank()
    bank.summary_matrix()
    bank.sample_matrix()
    cache_per_photo = 2.0 * world.grid**2 * world.dim  # the float16 rows the cache keeps
    report(
        f"  {n} photos generated and stored ({codec}) in {gen_s:.0f} s: "
        f"{per_photo / 1024:.1f} KiB per photo"
    )
    truth = _exact_scores(seg, best, sample_cos)
    score_query_shortlist(seg, Query(qs[0], "q"), bank)  # warm-up
    if exact_bank is not None:
        score_query(seg, Query(qs[0], "q"), exact_bank)
    two, ex, sizes, results = [], [], [], []
    for j in range(1, queries + 1):
        q = Query(qs[j], "q")
        t = time.perf_counter()
        r = score_query_shortlist(seg, q, bank, top_n=TOP, threshold=THRESHOLD)
        two.append((time.perf_counter() - t) * 1000)
        results.append(r)
        sizes.append(len(r.photos) if r.photos is not None else n)
        if exact_bank is not None:
            t = time.perf_counter()
            score_query(seg, q, exact_bank)
            ex.append((time.perf_counter() - t) * 1000)
    del exact_bank
    gc.collect()
    # memory: a fresh process that opens the store and runs the same queries, as the app does
    try:
        mem = _query_process_in_child(seg, folder, qs[1 : queries + 1], None)
    except (OSError, RuntimeError, ValueError) as e:
        mem = None
        report(f"  peak memory not measured: {e}")
    tops, mrec, ious, code_ious = [], [], [], []
    split = 0
    inter = union_px = code_inter = code_union = 0
    # the exact rows masks are made from: here the generator's, as the app's feature cache's
    source = _ExactRows(world, n)
    bank.exact_patches = source
    for j, r in enumerate(results, start=1):
        exact, stats = truth[j]
        tops.append(_top_kept(exact, r.photo_scores))
        if r.photos is not None:  # shortlisted photos whose badge (codes) and exact-row mask
            # grid (its best patch, with this query's statistics) fall on either side of 0.5
            grid = maps.sigmoid(calibrated(seg, best[r.photos, j], r.stats)) >= THRESHOLD
            split += int(np.count_nonzero(grid != (r.photo_scores[r.photos] >= THRESHOLD)))
        m = exact >= THRESHOLD
        if m.any():
            mrec.append(float(np.mean(r.photo_scores[m] >= THRESHOLD)))
        picks = np.flatnonzero(m)
        if len(picks) > MASKS_PER_QUERY:
            picks = np.random.default_rng(j).choice(picks, MASKS_PER_QUERY, replace=False)
        for i in picks.tolist():
            start = i - i % sl.BATCH  # the reference regenerates its own, apart from the bank
            patches = sl.make_batch(world, start, min(sl.BATCH, n - start)).patches[i - start]
            want = _exact_mask(seg, qs[j], patches, bank.layouts[i], bank.globals[i], stats)
            hw = (want.shape[0], want.shape[1])
            got = prob_hw(score_photo(seg, r, bank, i), bank, i, hw) >= THRESHOLD
            union = np.count_nonzero(want | got)
            inter += np.count_nonzero(want & got)
            union_px += union
            ious.append(np.count_nonzero(want & got) / union if union else 1.0)
            bank.exact_patches = None  # the codes alone
            coded = prob_hw(score_photo(seg, r, bank, i), bank, i, hw) >= THRESHOLD
            bank.exact_patches = source
            union = np.count_nonzero(want | coded)
            code_inter += np.count_nonzero(want & coded)
            code_union += union
            code_ious.append(np.count_nonzero(want & coded) / union if union else 1.0)
    shutil.rmtree(folder, ignore_errors=True)
    return LargeRow(
        n=n,
        codec=codec,
        p50=float(np.percentile(two, 50)),
        p95=float(np.percentile(two, 95)),
        exact_p50=float(np.percentile(ex, 50)) if ex else None,
        exact_p95=float(np.percentile(ex, 95)) if ex else None,
        peak_mb=mem["peak"] if mem else None,
        model_mb=mem["model"] if mem else None,
        loaded_mb=mem["loaded"] if mem else None,
        bytes_per_photo=per_photo,
        shortlist=float(statistics.median(sizes)),
        top_recall=float(np.mean(tops)),
        match_recall=float(np.mean(mrec)) if mrec else 1.0,
        mask_iou=float(np.mean(ious)) if ious else 1.0,
        pixel_iou=inter / union_px if union_px else 1.0,
        gen_s=gen_s,
        code_mask_iou=float(np.mean(code_ious)) if code_ious else 1.0,
        code_pixel_iou=code_inter / code_union if code_union else 1.0,
        cache_bytes_per_photo=cache_per_photo,
        split=split,
    )


def run_large(
    seg: Segmenter,
    report: Report,
    *,
    sizes: Sequence[int] = (1000, 10000, 100000),
    queries: int = 40,
    codecs: Sequence[Codec] = ("q4",),
    exact_max: int = 10000,
    workdir: Path | None = None,
    threads: int | None = None,
) -> list[LargeRow]:
    """Measure every size (and codec), print the table; returns its rows. ``threads``: torch's
    intra-op threads for the measurements (both methods alike; None: as set)."""
    if threads is not None:
        torch.set_num_threads(threads)
    report(
        f"large libraries: synthetic CLIP-like features (d = 512, 14×14), two-stage query over "
        f"the patch store, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="sketchpad-large-", dir=workdir) as tmp:
        for codec in codecs:
            for n in sizes:
                report(f"library of {n} photos ({codec}), {queries} queries …")
                rows.append(
                    large(
                        seg, n, Path(tmp), queries=queries, codec=codec, exact_max=exact_max,
                        report=report,
                    )
                )  # fmt: skip
    report("")
    report(
        f"{'photos':>7} {'codec':>5} {'p50':>8} {'p95':>8} {'exact p50':>9} {'exact p95':>9} "
        f"{'peak RSS':>9} {'model':>6} {'bank':>6} {'KiB/photo':>9} {'cache KiB':>9} "
        f"{'shortlist':>9} {'top-100':>7} "
        f"{'matches':>7} {'mask IoU':>8} {'pixel IoU':>9} {'codes: mask':>11} {'pixel':>6} "
        f"{'split':>5}"
    )
    for r in rows:
        e50 = f"{r.exact_p50:.0f}ms" if r.exact_p50 is not None else "—"
        e95 = f"{r.exact_p95:.0f}ms" if r.exact_p95 is not None else "—"
        peak = f"{r.peak_mb:.0f}MiB" if r.peak_mb is not None else "n/a"
        model = f"{r.model_mb:.0f}" if r.model_mb is not None else "n/a"
        held = (
            f"{r.loaded_mb - r.model_mb:.0f}"
            if r.loaded_mb is not None and r.model_mb is not None
            else "n/a"
        )
        report(
            f"{r.n:>7} {r.codec:>5} {r.p50:>6.0f}ms {r.p95:>6.0f}ms {e50:>9} {e95:>9} "
            f"{peak:>9} {model:>6} {held:>6} {r.bytes_per_photo / 1024:>9.1f} "
            f"{r.cache_bytes_per_photo / 1024:>9.1f} "
            f"{r.shortlist:>9.0f} {r.top_recall:>7.3f} {r.match_recall:>7.3f} "
            f"{r.mask_iou:>8.3f} {r.pixel_iou:>9.3f} {r.code_mask_iou:>11.3f} "
            f"{r.code_pixel_iou:>6.3f} {r.split:>5d}"
        )
    report(
        "p50/p95: query vector → every photo scored and ranked (two-stage, store); exact: the "
        "float16 in-memory product of today, same queries, alternating (— : not run, its "
        "float16 matrix would be 200 KiB per photo); peak RSS: a fresh process that holds the "
        "model (random weights, as the app holds one), opens the store as the app does and runs "
        "the same queries — its peak over its whole life (MiB); model: its resident size with "
        "the model loaded, before the store; bank: what opening the store added (the bank, its "
        "summaries and statistics sample in memory); KiB/photo: the store on disk; cache KiB: "
        "the float16 feature cache kept beside it (its patch rows, computed; on disk ≈ 3 % "
        "more); top-100: exact top-100 photos kept; "
        "matches: exact matches at 0.5 still matches; mask IoU: their masks (from the exact "
        "float16 rows, as the app makes them) against the exact method's, the mean per match; "
        "pixel IoU: all their mask pixels together (intersection over union summed over the "
        "matches); codes: the same two with masks from the store's decoded codes alone; split: "
        "shortlisted photos (all queries) whose score (from the codes: the badge) and exact-row "
        "mask (its best patch) fall on either side of 0.5."
    )
    for r in rows:
        checks = [f"store ≤ 64 KiB/photo: {'PASS' if r.bytes_per_photo <= 65536 else 'FAIL'}"]
        if r.n >= 100000:
            checks.append(f"p95 ≤ 500 ms: {'PASS' if r.p95 <= 500 else 'FAIL'}")
            if r.peak_mb is None:  # no /proc here, or the query process failed
                checks.append("peak RSS ≤ 3 GB: not measured")
            else:
                checks.append(f"peak RSS ≤ 3 GB: {'PASS' if r.peak_mb <= 3 * 1024 else 'FAIL'}")
        if r.exact_p95 is not None and r.n >= 10000:
            checks.append(f"no slower than exact: {'PASS' if r.p95 <= r.exact_p95 else 'FAIL'}")
        rec = min(r.top_recall, r.match_recall, r.pixel_iou)
        checks.append(f"recall ≥ 0.95: {'PASS' if rec >= 0.95 else 'FAIL'}")
        report(f"  N = {r.n} ({r.codec}): " + "; ".join(checks))
    return rows
