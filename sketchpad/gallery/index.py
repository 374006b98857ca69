"""Indexing a photo folder: features computed once, kept in the feature cache.

Incremental (only new or changed files are encoded; rows of deleted files are removed) and
resumable (each batch is committed before the next starts, so an interruption, even kill -9,
loses at most the batch in flight). Photos are decoded in a thread pool while the model runs,
so indexing goes at the model's speed.

Encoding is pluggable (``index_folder(encoder=…)``): the default, :func:`encode_locally`, runs
the model in this process; :mod:`sketchpad.gallery.cluster` runs the same function on a pool
of Ray actors. Either way this module scans, skips, commits each batch, reports progress and
stops on a cancel, so a cluster run writes the very cache a local run writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sketchpad.gallery.cache import FeatureCache, ModelKey
from sketchpad.gallery.cache import cache_path as default_cache_path
from sketchpad.gallery.images import PhotoError, load_photo, scan_folder

if TYPE_CHECKING:
    from sketchpad.vision.features import PhotoFeatures
    from sketchpad.vision.protocols import PhotoEncoder

log = logging.getLogger(__name__)

#: (photos done, photos to do) → None. May raise to cancel (after the batch in flight).
ProgressFn = Callable[[int, int], None]
#: [(rel_path, features), …] of one committed batch → None.
BatchFn = Callable[[list[tuple[str, "PhotoFeatures"]]], None]


@dataclass(frozen=True)
class Encoded:
    """One photo after encoding: its features, or why it was skipped (plain data: it crosses
    process boundaries).

    Attributes:
        rel: the cache's name of the photo (:func:`relative_name`).
        path: the photo's path.
        size: bytes, as stat'ed just before it was read.
        mtime_ns: modification time, as stat'ed just before it was read.
        features: the features, or None when the photo was skipped.
        error: (reason code, message) when it was skipped (``PhotoError.code`` / ``.reason``).
    """

    rel: str
    path: Path
    size: int
    mtime_ns: int
    features: PhotoFeatures | None
    error: tuple[str, str] | None = None


#: ``encoder(folder, paths, batch_size)`` → batches of :class:`Encoded`, each committed whole
#: as it arrives, in any order. Closing the iterator must stop the work (a cancel).
Encoder = Callable[[Path, Sequence[Path], int], Generator[list[Encoded], None, None]]


def model_key(segmenter: PhotoEncoder) -> ModelKey:
    """The cache key of a segmenter's photo features: backbone, weights, preprocessing."""
    bb = segmenter.backbone
    prep = f"{bb.spec.preprocess_key(segmenter.input_size)}|{segmenter.patch_path}"
    return ModelKey(bb.spec.id, bb.weights.sha256, prep)


@dataclass(frozen=True)
class IndexSummary:
    """What one indexing run did.

    Attributes:
        folder: the photo folder.
        cache_path: the cache file.
        indexed: photos encoded in this run.
        up_to_date: photos whose cached features were still current.
        removed: cached rows dropped because their file is gone.
        skipped: photos that could not be read, as (path, reason code, message).
        seconds: wall time of the run.
    """

    folder: Path
    cache_path: Path
    indexed: int
    up_to_date: int
    removed: int
    skipped: tuple[tuple[Path, str, str], ...] = field(default_factory=tuple)
    seconds: float = 0.0

    def skipped_by_code(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, code, _ in self.skipped:
            counts[code] = counts.get(code, 0) + 1
        return counts


def relative_name(folder: Path, path: Path) -> str:
    """The cache's name for a photo: its path relative to the folder, with forward slashes."""
    return path.relative_to(folder).as_posix()


@dataclass(frozen=True)
class _Decoded:
    rel: str
    path: Path
    size: int
    mtime_ns: int
    image: np.ndarray | None
    error: PhotoError | None


def _decode(folder: Path, path: Path) -> _Decoded:
    rel = relative_name(folder, path)
    try:
        st = os.stat(path)
    except OSError as e:
        err = PhotoError(path, f"vanished before it was read ({e.strerror})", "vanished")
        return _Decoded(rel, path, 0, 0, None, err)
    try:
        image = load_photo(path)
    except PhotoError as e:
        return _Decoded(rel, path, st.st_size, st.st_mtime_ns, None, e)
    return _Decoded(rel, path, st.st_size, st.st_mtime_ns, image, None)


def _prefetched(
    folder: Path, paths: Sequence[Path], batch_size: int, workers: int
) -> Iterator[list[_Decoded]]:
    """Batches of decoded photos; the next batches decode in threads while one is encoded."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        ahead = 2 * max(1, batch_size)
        futures: list[Future[_Decoded]] = []
        it = iter(paths)
        for p in it:
            futures.append(pool.submit(_decode, folder, p))
            if len(futures) >= ahead:
                break
        while futures:
            batch = [f.result() for f in futures[:batch_size]]
            del futures[:batch_size]
            for p in it:
                futures.append(pool.submit(_decode, folder, p))
                if len(futures) >= ahead:
                    break
            yield batch


def encode_locally(
    segmenter: object, folder: Path, paths: Sequence[Path], batch_size: int, workers: int = 2
) -> Generator[list[Encoded], None, None]:
    """The local :data:`Encoder`: photos decoded in ``workers`` threads while
    ``segmenter.embed_photos`` runs on the batch before, batches in ``paths`` order."""
    for batch in _prefetched(folder, paths, batch_size, workers):
        images = [d.image for d in batch if d.image is not None]
        embed = segmenter.embed_photos  # type: ignore[attr-defined]
        feats = iter(embed(images, batch_size=len(images)) if images else [])
        yield [
            Encoded(
                d.rel,
                d.path,
                d.size,
                d.mtime_ns,
                next(feats) if d.image is not None else None,
                (d.error.code, d.error.reason) if d.error is not None else None,
            )
            for d in batch
        ]


def index_folder(
    folder: Path,
    segmenter: PhotoEncoder,
    *,
    recursive: bool = False,
    rebuild: bool = False,
    batch_size: int = 8,
    workers: int = 2,
    progress: ProgressFn | None = None,
    cache_path: Path | None = None,
    on_batch: BatchFn | None = None,
    encoder: Encoder | None = None,
) -> IndexSummary:
    """Bring ``folder``'s feature cache up to date for ``segmenter``'s model.

    Args:
        folder: the photo folder (only read).
        segmenter: a ``sketchpad.vision.segmenter.Segmenter`` (its backbone, input size and
            patch path are the model key).
        recursive: include subfolders.
        rebuild: drop every cached row first.
        batch_size: photos per forward.
        workers: decoding threads.
        progress: called after each committed batch with (done, to do).
        cache_path: override the cache file (tests); default in the user cache folder.
        on_batch: called with each committed batch's ``[(rel_path, features), …]`` (e.g. to
            grow a live gallery's bank while indexing goes on).
        encoder: how photos become features (default :func:`encode_locally` with
            ``segmenter`` and ``workers``; e.g. a :class:`~sketchpad.gallery.cluster.RayEncoder`).

    Raises:
        sketchpad.gallery.images.PhotoError: the folder cannot be listed.
        sketchpad.gallery.cache.CacheLockedError: another process is indexing this cache.
    """
    t0 = time.perf_counter()
    folder = Path(folder)
    scan = scan_folder(folder, recursive=recursive)
    skipped = [(e.path, e.code, e.reason) for e in scan.skipped]
    key = model_key(segmenter)
    with FeatureCache.open(folder, key, writer=True, path=cache_path) as cache:
        known = cache.paths()
        names = {relative_name(folder, p): p for p in scan.photos}
        if rebuild:
            removed = cache.remove(list(known))
            known = {}
        else:
            removed = cache.remove([r for r in known if r not in names])
        todo: list[Path] = []
        up_to_date = 0
        for rel, p in names.items():
            try:
                st = os.stat(p)
            except OSError as e:
                skipped.append((p, "vanished", f"vanished during the scan ({e.strerror})"))
                continue
            if rel in known and cache.is_current(rel, st.st_size, st.st_mtime_ns):
                up_to_date += 1
            else:
                todo.append(p)
        done = indexed = 0
        if progress is not None:
            progress(0, len(todo))
        if encoder is None:
            stream = encode_locally(segmenter, folder, todo, batch_size, workers)
        else:
            stream = encoder(folder, todo, batch_size)
        with contextlib.closing(stream):  # a cancel (progress raising) stops the encoder
            for batch in stream:
                skipped += [(e.path, *e.error) for e in batch if e.error is not None]
                good = [
                    (e.rel, e.size, e.mtime_ns, e.features)
                    for e in batch
                    if e.features is not None
                ]
                if good:
                    cache.put(good)
                    indexed += len(good)
                    if on_batch is not None:
                        on_batch([(rel, f) for rel, _, _, f in good])
                done += len(batch)
                if progress is not None:
                    progress(done, len(todo))
        path = cache_path or default_cache_path(folder, key)
    log.info(
        "indexed %s: %d new, %d current, %d removed, %d skipped",
        folder,
        indexed,
        up_to_date,
        removed,
        len(skipped),
    )
    return IndexSummary(
        folder, path, indexed, up_to_date, removed, tuple(skipped), time.perf_counter() - t0
    )
