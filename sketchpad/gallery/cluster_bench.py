"""``sketchpad bench cluster``: ``index --cluster local`` with N Ray workers against the plain
local index, on the same photos, side by side in one run; and whether the caches are equal.

The photos are generated JPEGs (384×512, photo-like); the model has random weights (the
arithmetic is that of real ones). Order: local, cluster, local again; the local throughput is
the mean of the two local runs, so a drift of the machine's load between them cancels.

Reported, never asserted:

- **end to end**: photos / wall time of the whole ``index_folder`` call, the cluster's
  including starting Ray and its actors (each imports torch and builds the model);
- **steady state**: photos / time between the commit by which every worker has delivered a
  batch (the ``workers``-th commit; the first for the local run) and the last, i.e. once every
  actor is up (the figure that grows with the cluster; keep the run long against a batch);
- **equality**: the two caches row by row: the same names, letterboxes and grids, and the
  largest difference of any patch or global value (0 when byte-identical).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchpad.gallery.cache import FeatureCache, ModelKey
from sketchpad.gallery.index import index_folder, model_key

Report = Callable[[str], None]


@dataclass(frozen=True)
class Timing:
    """One indexing run: photos, total seconds, and (time, photos done) at each commit."""

    photos: int
    seconds: float
    commits: tuple[tuple[float, int], ...]  # seconds since the start, photos done

    @property
    def rate(self) -> float:
        return self.photos / self.seconds

    def steady_rate(self, skip: int) -> float:
        """Photos per second between the ``skip``-th commit and the last: with ``skip`` = the
        number of workers, once every worker has delivered its first batch (each one's
        start-up excluded; the batches in flight then were partly computed before, so keep
        the run long against one batch)."""
        if len(self.commits) <= skip:
            return float("nan")
        (t0, n0), (t1, n1) = self.commits[skip - 1], self.commits[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")


@dataclass(frozen=True)
class CacheDiff:
    """Two caches of one folder compared row by row."""

    rows_a: int
    rows_b: int
    same_names: bool
    same_layouts: int  # rows whose grid, letterbox and patch size agree
    identical: int  # rows whose patches and global embedding are byte-identical
    max_abs: float  # the largest |a − b| of any patch or global value

    @property
    def equal(self) -> bool:
        return self.same_names and self.identical == self.rows_a == self.rows_b


def compare_caches(folder: Path, key: ModelKey, a: Path, b: Path) -> CacheDiff:
    """Cache files ``a`` and ``b`` of ``folder`` under ``key``, row by row."""
    with (
        FeatureCache.open(folder, key, writer=False, path=a) as ca,
        FeatureCache.open(folder, key, writer=False, path=b) as cb,
    ):
        ra, rb = dict(ca.items()), dict(cb.items())
    same_layouts = identical = 0
    worst = 0.0
    for name in ra.keys() & rb.keys():
        x, y = ra[name], rb[name]
        if (x.grid_hw, x.letterbox, x.patch_size) != (y.grid_hw, y.letterbox, y.patch_size):
            continue
        same_layouts += 1
        dp = np.abs(x.patches.astype(np.float32) - y.patches.astype(np.float32)).max()
        dg = np.abs(x.global_embedding - y.global_embedding).max()
        worst = max(worst, float(dp), float(dg))
        identical += int(
            x.patches.tobytes() == y.patches.tobytes()
            and x.global_embedding.tobytes() == y.global_embedding.tobytes()
        )
    return CacheDiff(len(ra), len(rb), ra.keys() == rb.keys(), same_layouts, identical, worst)


def _photo_folder(folder: Path, n: int) -> None:
    """``n`` photo-like 384×512 JPEGs."""
    from PIL import Image

    from sketchpad.search.bench_vision import bench_photo

    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(bench_photo((384, 512), seed=i)).save(folder / f"p{i:05d}.jpg", quality=90)


def _timed(run: Callable[[Callable[[int, int], None]], object], photos: int) -> Timing:
    commits: list[tuple[float, int]] = []
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done:
            commits.append((time.perf_counter() - t0, done))

    run(progress)
    return Timing(photos, time.perf_counter() - t0, tuple(commits))


def run(
    backbone_id: str,
    report: Report,
    *,
    photos: int = 64,
    workers: int = 2,
    batch: int = 8,
    workdir: Path | None = None,
) -> int:
    """Measure and report; returns an exit code (1 when Ray is missing)."""
    import torch

    from sketchpad.gallery.cluster import ClusterError, RayEncoder
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.segmenter import Segmenter

    seg = Segmenter(create_backbone(backbone_id, pretrained=False, device="cpu"))
    key = model_key(seg)
    report(
        f"sketchpad bench cluster: {backbone_id} (random weights), {photos} photos, batches of "
        f"{batch}; local: {torch.get_num_threads()} torch threads; cluster: Ray on this machine, "
        f"{workers} CPU workers; {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="sketchpad-bench-", dir=workdir) as tmp:
        work = Path(tmp)
        folder = work / "photos"
        _photo_folder(folder, photos)
        local_a, local_b, remote = work / "a.sqlite", work / "b.sqlite", work / "c.sqlite"

        def local(path: Path) -> Callable[[Callable[[int, int], None]], object]:
            return lambda p: index_folder(folder, seg, batch_size=batch, cache_path=path,
                                          progress=p)  # fmt: skip

        def cluster(p: Callable[[int, int], None]) -> object:
            enc = RayEncoder(seg, "local", workers=workers, cpus=workers)
            return index_folder(folder, seg, batch_size=batch, cache_path=remote, progress=p,
                                encoder=enc)  # fmt: skip

        report("local index …")
        before = _timed(local(local_a), photos)
        report(f"cluster index ({workers} workers, starting Ray) …")
        try:
            ray_run = _timed(cluster, photos)
        except ClusterError as e:
            report(f"  {e}")
            return 1
        report("local index again …")
        after = _timed(local(local_b), photos)
        diff = compare_caches(folder, key, local_a, remote)
        drift = compare_caches(folder, key, local_a, local_b)

    loc_rate = (before.rate + after.rate) / 2
    loc_steady = (before.steady_rate(1) + after.steady_rate(1)) / 2
    ray_steady = ray_run.steady_rate(workers)
    report("")
    report(f"{'':>14} {'photos/s':>9} {'steady photos/s':>16} {'wall s':>8}")
    runs = (("local", before, 1), (f"cluster ×{workers}", ray_run, workers),
            ("local again", after, 1))  # fmt: skip
    for name, t, skip in runs:
        report(f"{name:>14} {t.rate:>9.2f} {t.steady_rate(skip):>16.2f} {t.seconds:>8.1f}")
    report(
        f"cluster / local throughput: end to end {ray_run.rate / loc_rate:.2f}×, steady state "
        f"{ray_steady / loc_steady:.2f}× (local: mean of the runs before and after; steady: "
        "from each worker's first committed batch to the last)"
    )
    report(
        f"cache equality, cluster vs local: {diff.identical}/{diff.rows_a} rows byte-identical, "
        f"{diff.same_layouts} same layout, names {'equal' if diff.same_names else 'DIFFER'}, "
        f"largest difference {diff.max_abs:.3g} → {'EQUAL' if diff.equal else 'NOT EQUAL'} "
        f"(two local runs: {drift.identical}/{drift.rows_a} identical)"
    )
    return 0
