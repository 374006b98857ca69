"""Queries over a folder's feature cache: all its patch features as one matrix.

``load_bank`` reads a cache into a :class:`~sketchpad.vision.bank.FeatureBank`: the rows stay
in memory as float16 up to a memory budget (2 GiB by default; ``SKETCHPAD_QUERY_MEMORY`` or
the ``budget_bytes`` argument change it). Beyond the budget the remaining rows are streamed
from the cache for each query in chunks, so memory stays bounded whatever the folder's size,
at the price of reading those rows from disk every time.

**Large folders.** From :data:`~sketchpad.search.shortlist.MIN_PHOTOS` photos on (the
``min_photos`` argument; the search core's own rule), and unless the exact method is asked for
(``exact=True``, ``segment --exact``), the bank is read from the folder's compressed patch store
instead (:mod:`sketchpad.gallery.patch_store`, kept in step by indexing): its codes stay in a
memory-mapped file, its stored summaries let :class:`~sketchpad.search.core.SearchCore` run
the two-stage query. A store that lags the cache (a photo of the cache missing from it) is
not used: the float16 bank is read instead, which is always exact.

Such a bank keeps the feature cache open: the masks of the photos the user gets (thumbnails'
overlays, the large view, exports, ``segment``) are made from their exact float16 rows, one
cache row read per mask (:attr:`~sketchpad.vision.bank.FeatureBank.exact_patches`; a row
missing or damaged falls back to the store's codes, logged once). Scores and ranking stay on
the store: a photo's score is one number — the gallery badge, the large view and every
export show the shortlist's — even where its exact-row mask would put the maximum a hair
above or below it (see docs/large_libraries.md).

A query is then ``SearchCore.search(spec, bank)`` (:mod:`sketchpad.search.core`: one matrix
product over every photo, all photos ranked) and masks are made only for the photos asked for.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from sketchpad.gallery.cache import CacheError, FeatureCache, ModelKey, RowLayout
from sketchpad.gallery.patch_store import PatchStore, store_path
from sketchpad.gallery.store_bank import StoreBank
from sketchpad.names import display_name
from sketchpad.search.shortlist import MIN_PHOTOS
from sketchpad.vision.bank import BLOCK_ROWS, FeatureBank, PhotoLayout, TensorBlock

log = logging.getLogger(__name__)

#: Patch features kept in memory per gallery unless told otherwise.
DEFAULT_MEMORY_BUDGET = 2 * 2**30
#: Environment variable overriding the budget ("512M", "4G", "1.5GiB", bytes).
BUDGET_ENV = "SKETCHPAD_QUERY_MEMORY"
#: Largest chunk read from the cache per step when streaming.
MAX_STREAM_CHUNK = 64 * 2**20

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}

#: (photos loaded, photos) → None.
ProgressFn = Callable[[int, int], None]


def parse_bytes(text: str | int) -> int:
    """ "2G", "512M", "1.5GiB", "300k" or a plain number of bytes → bytes (binary units).

    Raises:
        ValueError: not a size, or not positive.
    """
    if isinstance(text, int):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
        if m is None:
            raise ValueError(f"not a memory size: {text!r} (examples: 512M, 2G, 1.5GiB)")
        value = float(m.group(1)) * _UNITS[m.group(2)]
    if value < 1:
        raise ValueError(f"a memory size must be positive, got {text!r}")
    return int(value)


def memory_budget(value: str | int | None = None) -> int:
    """The query memory budget in bytes: ``value``, else ``$SKETCHPAD_QUERY_MEMORY``, else
    :data:`DEFAULT_MEMORY_BUDGET`.

    Raises:
        ValueError: the value (or the environment variable, named in the message) is bad.
    """
    if value is not None:
        return parse_bytes(value)
    env = os.environ.get(BUDGET_ENV, "").strip()
    if env:
        try:
            return parse_bytes(env)
        except ValueError as e:
            raise ValueError(f"{BUDGET_ENV}: {e}") from e
    return DEFAULT_MEMORY_BUDGET


class CacheStreamBlock:
    """Rows streamed from a feature cache for every product, ``chunk_bytes`` at a time.

    Rows that disappear from the cache after loading (their photo was deleted and a writer
    removed them) score −1 (never a match) until the gallery is reloaded.
    """

    def __init__(
        self,
        cache: FeatureCache,
        names: Sequence[str],
        sizes: Sequence[int],
        dim: int,
        chunk_bytes: int,
    ) -> None:
        self.cache = cache
        self.names = list(names)
        self.sizes = [int(s) for s in sizes]
        self.dim = int(dim)
        self.chunk_rows = max(1, int(chunk_bytes) // (2 * self.dim))
        self._missing_logged = False

    @property
    def rows(self) -> int:
        return sum(self.sizes)

    @property
    def resident_bytes(self) -> int:
        return 0

    def matvec(self, q16: torch.Tensor, out: torch.Tensor) -> None:
        start = 0
        pending: list[np.ndarray] = []
        pending_rows = 0

        def flush() -> None:
            nonlocal start, pending_rows
            if pending:
                m = torch.from_numpy(np.concatenate(pending))  # a writable copy
                out[start : start + pending_rows].copy_(torch.mv(m, q16))
                start += pending_rows
                pending.clear()
                pending_rows = 0

        for (name, patches), size in zip(
            self.cache.patch_rows(self.names), self.sizes, strict=True
        ):
            if patches is None or patches.shape != (size, self.dim):
                self._log_missing(name)
                flush()
                out[start : start + size] = -1.0
                start += size
                continue
            pending.append(patches)
            pending_rows += size
            if pending_rows >= self.chunk_rows:
                flush()
        flush()

    def take(self, rows: np.ndarray) -> np.ndarray:
        """These rows read from the cache (rows of photos gone since loading are zeros)."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)])
        photo = np.searchsorted(starts, rows, side="right") - 1
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        wanted = np.unique(photo)
        got = dict(self.cache.patch_rows([self.names[i] for i in wanted]))
        for i in wanted:
            patches = got.get(self.names[i])
            if patches is None or patches.shape != (self.sizes[i], self.dim):
                self._log_missing(self.names[i])
                continue
            sel = photo == i
            out[sel] = patches[rows[sel] - starts[i]]
        return out

    def matvec_rows(self, q: torch.Tensor, rows: np.ndarray) -> np.ndarray:
        return self.take(rows) @ q.numpy()

    def photo(self, i: int) -> np.ndarray | None:
        """Photo ``i``'s (T, d) float16 rows read from the cache; None when its row is gone or
        damaged (a damaged row is reported by the cache, which marks it for repair)."""
        for _, patches in self.cache.patch_rows([self.names[i]]):
            if patches is not None and patches.shape == (self.sizes[i], self.dim):
                return patches
        return None

    def _log_missing(self, name: str) -> None:
        if not self._missing_logged:
            shown = display_name(name)
            log.warning("Feature cache %s: %s is gone; reload the gallery", self.cache.path, shown)
            self._missing_logged = True

    def close(self) -> None:
        self.cache.close()


class CachedBank(StoreBank):
    """A :class:`FeatureBank` read from a folder's cache, or from its patch store
    (:attr:`from_store`); ``names`` are paths relative to ``folder``. Close it (or use it as a
    context manager) to release a streaming reader.

    Attributes:
        damaged: rows the cache or store held damaged (name → what failed its check), left out
            of the bank; the file is marked so the next indexing run re-encodes or re-stores
            them.
    """

    def __init__(self, folder: Path, cache_path: Path) -> None:
        super().__init__(Path(folder))
        self.cache_path = Path(cache_path)
        self._exact_reader: CacheStreamBlock | None = None

    def read_exact_from(self, cache: FeatureCache) -> None:
        """Make masks from ``cache``'s exact float16 rows (:attr:`exact_patches`; this bank's
        rows being a patch store's codes); the bank keeps ``cache`` open until closed."""
        sizes = [lay.grid_hw[0] * lay.grid_hw[1] for lay in self.layouts]
        reader = CacheStreamBlock(cache, self.names, sizes, self.dim or 0, 2 * (self.dim or 1))
        self._exact_reader = reader
        self.exact_patches = reader.photo

    def paths(self) -> list[Path]:
        """The photos' paths, in bank order."""
        return [self.folder / n for n in self.names]

    def close(self) -> None:
        for b in self.blocks:
            if isinstance(b, CacheStreamBlock):
                b.close()
        if self._exact_reader is not None:
            self._exact_reader.close()
            self._exact_reader = None
            self.exact_patches = None

    def __enter__(self) -> CachedBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_bank(
    folder: Path,
    key: ModelKey,
    *,
    budget_bytes: int | str | None = None,
    cache_path: Path | None = None,
    progress: ProgressFn | None = None,
    exact: bool | None = None,
    min_photos: int = MIN_PHOTOS,
) -> CachedBank:
    """Every photo cached for ``folder`` under ``key``, ready to query.

    Patch rows are held in memory (float16) while they fit ``budget_bytes`` (see
    :func:`memory_budget`); the rest are streamed from the cache per query. An absent cache
    gives an empty bank. A folder of ``min_photos`` or more (any size when ``exact`` is False)
    is read from its patch store instead, unless ``exact`` is True (see the module docstring):
    pass the search core's ``exact`` and ``min_photos``.

    Raises:
        ValueError: a bad budget.
        sketchpad.gallery.cache.CacheError: the cache cannot be read.
    """
    budget = memory_budget(budget_bytes)
    cache = FeatureCache.open(folder, key, writer=False, path=cache_path)
    if exact is not True:
        try:
            stored = _store_bank(folder, cache, exact, min_photos)
        except BaseException:
            cache.close()
            raise
        if stored is not None:
            stored.read_exact_from(cache)  # masks from the exact rows; the cache stays open
            if progress is not None:
                progress(len(stored), len(stored))
            return stored
    bank = CachedBank(folder, cache.path)
    keep_open = False
    try:
        rows = cache.layouts()
        dims = {r.dim for r in rows}
        if len(dims) > 1:
            raise ValueError(f"{cache.path}: rows of different dimensions {sorted(dims)}")
        if not rows:
            return bank
        dim = dims.pop()
        sizes = [r.grid_hw[0] * r.grid_hw[1] for r in rows]
        total = 2 * dim * sum(sizes)
        chunk = min(MAX_STREAM_CHUNK, max(budget // 4, 2 * dim))
        resident_budget = budget if total <= budget else max(0, budget - chunk)
        n_res, used = 0, 0
        while n_res < len(rows) and used + 2 * dim * sizes[n_res] <= resident_budget:
            used += 2 * dim * sizes[n_res]
            n_res += 1
        _load_resident(bank, cache, rows[:n_res], dim, progress, len(rows))
        if n_res < len(rows):
            rest = rows[n_res:]
            block = CacheStreamBlock(cache, [r.rel_path for r in rest], sizes[n_res:], dim, chunk)
            bank.add_block_rows(
                [PhotoLayout(r.grid_hw, r.letterbox, r.patch_size) for r in rest],
                np.stack([r.global_embedding for r in rest]),
                [block],
                names=[r.rel_path for r in rest],
            )
            keep_open = True
            log.info(
                "%s: %d of %d photos' features in memory (budget %d MiB), the rest streamed",
                folder,
                n_res,
                len(rows),
                budget // 2**20,
            )
        if progress is not None:
            progress(len(rows), len(rows))
        return bank
    finally:
        bank.damaged = cache.damaged
        if not keep_open:
            cache.close()


def _store_bank(
    folder: Path, cache: FeatureCache, exact: bool | None, min_photos: int
) -> CachedBank | None:
    """The folder's bank read from its patch store, or None: a small folder (under
    ``min_photos``, unless ``exact`` is False), no store, or one that lacks some of the
    cache's current rows (it is brought in step by the next indexing run)."""
    where = store_path(cache.path)
    if not (where / "meta.sqlite").exists():
        return None
    current = cache.paths()
    if exact is None and len(current) < min_photos:
        return None
    try:
        with PatchStore.open(where, writer=False) as store:
            bank = CachedBank(folder, cache.path)
            store.load_bank(bank, only=current)
    except CacheError as e:
        log.warning("%s; the float16 features are read instead", e)
        return None
    lacking = len(current) - len(bank) - len(bank.damaged)
    if lacking:
        log.info(
            "%s: the patch store lacks %d of %d photos (index the folder): float16 features "
            "read instead",
            folder,
            lacking,
            len(current),
        )
        return None
    log.info("%s: %d photos read from the patch store (%s)", folder, len(bank), store.codec)
    return bank


def _load_resident(
    bank: FeatureBank,
    cache: FeatureCache,
    rows: Sequence[RowLayout],
    dim: int,
    progress: ProgressFn | None,
    total: int,
) -> None:
    """Read ``rows``' patches into resident blocks of ~BLOCK_ROWS rows (rows gone meanwhile
    are left out)."""
    by_name = {r.rel_path: r for r in rows}
    layouts: list[PhotoLayout] = []
    globs: list[np.ndarray] = []
    names: list[str] = []
    mats: list[np.ndarray] = []
    n_rows = done = 0

    def flush() -> None:
        nonlocal n_rows
        if names:
            block = TensorBlock(np.concatenate(mats) if len(mats) > 1 else mats[0])
            bank.add_block_rows(layouts, np.stack(globs), [block], names=names)
            for lst in (layouts, globs, names, mats):
                lst.clear()
            n_rows = 0

    for name, patches in cache.patch_rows(list(by_name)):
        r = by_name[name]
        done += 1
        if patches is None or patches.shape != (r.grid_hw[0] * r.grid_hw[1], dim):
            if name not in cache.damaged:  # a damaged row was reported by the cache itself
                shown = display_name(name)
                log.warning("Feature cache %s: %s vanished while loading", cache.path, shown)
            continue
        layouts.append(PhotoLayout(r.grid_hw, r.letterbox, r.patch_size))
        globs.append(r.global_embedding)
        names.append(name)
        mats.append(patches)
        n_rows += len(patches)
        if n_rows >= BLOCK_ROWS:
            flush()
            if progress is not None:
                progress(done, total)
    flush()
