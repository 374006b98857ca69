"""Indexing a photo folder: features computed once, kept in the feature cache.

Incremental (only new or changed files are encoded; rows of deleted files are removed) and
resumable (each batch is committed before the next starts, so an interruption, even kill -9,
loses at most the batch in flight). Photos are decoded in a thread pool while the model runs,
so indexing goes at the model's speed, and at the size the model needs (a 200-megapixel JPEG
is decoded by the DCT at 1/8 scale, never in full): the cached letterbox still records the
photo's full upright size, so masks map back onto the real photo.

Encoding is pluggable (``index_folder(encoder=…)``): the default, :func:`encode_locally`, runs
the model in this process; :mod:`sketchpad.gallery.cluster` runs the same function on a pool
of Ray actors. Either way this module scans, skips, commits each batch, reports progress and
stops on a cancel, so a cluster run writes the very cache a local run writes.

Beside the feature cache, every run keeps the folder's compressed patch store
(:mod:`sketchpad.gallery.patch_store`, ``<cache>.store``) in step: each committed batch is
stored there too (after the cache's commit), rows of deleted or re-encoded photos are removed
or replaced, and before encoding anything the run makes the store hold exactly the cache's
current rows, filling any gap from the cache's float16 rows (no model needed): a run killed
between the two commits, a store deleted or damaged, a cache indexed by an older version.
Large folders are queried from the store (:func:`sketchpad.gallery.query.load_bank`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sketchpad.gallery.cache import CacheError, CacheLockedError, FeatureCache, ModelKey
from sketchpad.gallery.cache import cache_path as default_cache_path
from sketchpad.gallery.images import PhotoError, load_photo_at, scan_folder
from sketchpad.gallery.patch_store import PatchStore, StoreRow, store_path
from sketchpad.gallery.store_bank import CHECK_MARK
from sketchpad.vision.letterbox import Letterbox
from sketchpad.vision.quant import codec_for

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
        repairs: what opening the cache found and repaired, in words (a damaged file moved
            aside and its sound rows salvaged, damaged rows removed and re-encoded, lost
            writes, a format conversion; with ``verify``, the check's verdict).
    """

    folder: Path
    cache_path: Path
    indexed: int
    up_to_date: int
    removed: int
    skipped: tuple[tuple[Path, str, str], ...] = field(default_factory=tuple)
    seconds: float = 0.0
    repairs: tuple[str, ...] = field(default_factory=tuple)

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
    full_hw: tuple[int, int]
    error: PhotoError | None


def _decode(folder: Path, path: Path, side: int | None) -> _Decoded:
    rel = relative_name(folder, path)
    try:
        st = os.stat(path)
    except OSError as e:
        err = PhotoError(path, f"vanished before it was read ({e.strerror})", "vanished")
        return _Decoded(rel, path, 0, 0, None, (0, 0), err)
    try:
        image, full_hw = load_photo_at(path, side)
    except PhotoError as e:
        return _Decoded(rel, path, st.st_size, st.st_mtime_ns, None, (0, 0), e)
    return _Decoded(rel, path, st.st_size, st.st_mtime_ns, image, full_hw, None)


def _at_full_size(f: PhotoFeatures, full_hw: tuple[int, int]) -> PhotoFeatures:
    """Features of a photo decoded small, recorded against its full size: the content box is
    where the decoded image sat in the model input (the same box the full photo gets, as the
    small decode keeps the aspect ratio the letterbox rounds), the photo size the real one."""
    lb = f.letterbox
    if tuple(lb.photo_hw) == tuple(full_hw):
        return f
    return dataclasses.replace(f, letterbox=Letterbox(full_hw, lb.input_size, lb.content_xyxy))


def _prefetched(
    folder: Path, paths: Sequence[Path], batch_size: int, workers: int, side: int | None
) -> Iterator[list[_Decoded]]:
    """Batches of decoded photos (long side at most ``side``); the next batches decode in
    threads while one is encoded."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        ahead = 2 * max(1, batch_size)
        futures: list[Future[_Decoded]] = []
        it = iter(paths)
        for p in it:
            futures.append(pool.submit(_decode, folder, p, side))
            if len(futures) >= ahead:
                break
        while futures:
            batch = [f.result() for f in futures[:batch_size]]
            del futures[:batch_size]
            for p in it:
                futures.append(pool.submit(_decode, folder, p, side))
                if len(futures) >= ahead:
                    break
            yield batch


def encode_locally(
    segmenter: object, folder: Path, paths: Sequence[Path], batch_size: int, workers: int = 2
) -> Generator[list[Encoded], None, None]:
    """The local :data:`Encoder`: photos decoded (at the model's input size) in ``workers``
    threads while ``segmenter.embed_photos`` runs on the batch before, batches in ``paths``
    order; the features record each photo's full size."""
    side = _decode_side(segmenter)
    for batch in _prefetched(folder, paths, batch_size, workers, side):
        images = [d.image for d in batch if d.image is not None]
        embed = segmenter.embed_photos  # type: ignore[attr-defined]
        feats = iter(embed(images, batch_size=len(images)) if images else [])
        yield [
            Encoded(
                d.rel,
                d.path,
                d.size,
                d.mtime_ns,
                _at_full_size(next(feats), d.full_hw) if d.image is not None else None,
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
    verify: bool = False,
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
        verify: check the whole cache first (``FeatureCache.open(verify=True)``): damaged
            rows are removed and so re-encoded by this run.

    Raises:
        sketchpad.gallery.images.PhotoError: the folder cannot be listed.
        sketchpad.gallery.cache.CacheLockedError: another process is indexing this cache.
    """
    t0 = time.perf_counter()
    folder = Path(folder)
    scan = scan_folder(folder, recursive=recursive)
    skipped = [(e.path, e.code, e.reason) for e in scan.skipped]
    key = model_key(segmenter)
    with (
        FeatureCache.open(folder, key, writer=True, path=cache_path, verify=verify) as cache,
        _StoreWriter(store_path(cache.path)) as store,
    ):
        repairs = tuple(cache.notes) + tuple(store.notes)
        if verify or store.marked:
            repairs += store.verify()
        known = cache.paths()
        names = {relative_name(folder, p): p for p in scan.photos}
        if rebuild:
            removed = cache.remove(list(known))
            store.reset()  # rather than marking every row dead
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
        store.follow(cache, skip={relative_name(folder, p) for p in todo})
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
                    store.put(good)  # after the cache's commit: a kill between is followed up
                    indexed += len(good)
                    if on_batch is not None:
                        on_batch([(rel, f) for rel, _, _, f in good])
                done += len(batch)
                if progress is not None:
                    progress(done, len(todo))
        store.compact_if_worth_it()
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
        folder,
        path,
        indexed,
        up_to_date,
        removed,
        tuple(skipped),
        time.perf_counter() - t0,
        repairs,
    )


def _decode_side(segmenter: object) -> int | None:
    """The long side photos are decoded at: the model input's side (the letterbox shrinks
    every photo to fit it whole); None (full size) when the segmenter does not say."""
    size = getattr(segmenter, "input_size", None)
    return int(size) if isinstance(size, int) and size > 0 else None


#: The share of dead codes (replaced or removed photos') at which an indexing run compacts
#: the patch store.
COMPACT_AT = 0.25
#: Rows copied from the cache into the store per transaction when it follows the cache.
_FOLLOW_CHUNK = 64


def _store_row(rel: str, size: int, mtime_ns: int, f: PhotoFeatures) -> StoreRow:
    return StoreRow(
        rel, size, mtime_ns, f.patches, f.grid_hw, f.global_embedding, f.letterbox, f.patch_size
    )


class _StoreWriter:
    """The patch store beside a feature cache, written by the indexing run that holds the
    cache's lock (the store takes its own lock too). Created with the first rows stored (its
    dimension is theirs). A store that cannot be opened (damaged, of a format this version
    does not read) is deleted and rebuilt from the cache: it holds nothing the cache lacks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store: PatchStore | None = None
        self.notes: list[str] = []
        if (folder / "meta.sqlite").exists():
            try:
                self.store = PatchStore.open(folder)
            except CacheLockedError:
                raise
            except CacheError as e:
                log.warning("%s; rebuilding it from the feature cache", e)
                shutil.rmtree(folder, ignore_errors=True)
                self.notes.append(f"patch store unreadable ({e.reason}): rebuilt from the cache")

    @property
    def marked(self) -> bool:
        """Whether a reader met a damaged row (the store should be checked now)."""
        return (self.folder / CHECK_MARK).exists()

    def reset(self) -> None:
        """Delete the store (a rebuild writes it afresh)."""
        self.close()
        self.store = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def verify(self) -> tuple[str, ...]:
        if self.store is None:
            return ()
        bad = self.store.verify()
        if not bad:
            return ("patch store verified: sound",)
        return (f"patch store: {len(bad)} damaged rows removed, stored again from the cache",)

    def put(self, items: Sequence[tuple[str, int, int, PhotoFeatures]]) -> None:
        if not items:
            return
        if self.store is None:
            dim = int(items[0][3].patches.shape[1])
            self.store = PatchStore.open(self.folder, codec=codec_for(dim), dim=dim)
        self.store.put([_store_row(*it) for it in items])

    def follow(self, cache: FeatureCache, skip: set[str]) -> None:
        """Make the store hold exactly the cache's current rows: rows the cache no longer has
        are removed, rows it has that the store lacks (or holds of another identity) are
        copied from it — except ``skip``, the photos about to be encoded anyway."""
        want = cache.paths()
        have = self.store.paths() if self.store is not None else {}
        gone = [r for r in have if r not in want]
        if gone and self.store is not None:
            self.store.remove(gone)
        todo = [r for r, ident in want.items() if have.get(r) != ident and r not in skip]
        if todo:
            log.info("%s: %d photos copied from the feature cache", self.folder, len(todo))
        for i in range(0, len(todo), _FOLLOW_CHUNK):
            items = []
            for rel in todo[i : i + _FOLLOW_CHUNK]:
                f = cache.get(rel)
                if f is not None:
                    items.append((rel, *want[rel], f))
            self.put(items)

    def compact_if_worth_it(self) -> None:
        """Give back the codes of replaced and removed rows once they are a quarter of the
        codes file or more (:meth:`PatchStore.compact`); a failure is logged, the store stays
        as it was and readable."""
        if self.store is None or self.store.dead_fraction() < COMPACT_AT:
            return
        try:
            freed = self.store.compact()
        except CacheError as e:
            log.warning("%s; the codes of replaced photos stay until the next run", e)
            return
        log.info("%s: patch store compacted, %.1f MiB given back", self.folder, freed / 2**20)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> _StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
