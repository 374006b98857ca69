"""Many photos' patch features as one matrix: one matrix-vector product per query.

The matrix is kept in float16 (what the cache stores; half the memory of float32) as a list of
*blocks* of rows. A block is either resident (:class:`TensorBlock`, a torch tensor) or a source
that streams its rows from somewhere else each time (the gallery layer streams from the
feature cache when a folder exceeds the memory budget). ``correlate`` runs every block's
product into one (ΣT,) float32 vector, so a query over 10,000 photos is one pass over memory.

Layouts (grid, letterbox, patch size) and global embeddings stay in memory for every photo;
they are small (≈ 2 kB per photo).

A bank whose rows are an approximation (a patch store's compressed codes) may carry
:attr:`FeatureBank.exact_patches`, a source of each photo's exact float16 rows (the folder's
feature cache): masks are made from those (:func:`sketchpad.search.shortlist.score_photo`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from sketchpad.vision.features import PhotoFeatures, normalize
from sketchpad.vision.letterbox import Letterbox

#: Photo index → its (T, d) float16 patch features exactly as encoded, or None where they are
#: not at hand (missing or damaged): see :attr:`FeatureBank.exact_patches`.
ExactPatches = Callable[[int], "np.ndarray | None"]

#: Rows per resident block (16 MiB of float16 at d = 512): small enough to append cheaply.
BLOCK_ROWS = 16384
#: Valid patches the gallery statistics are estimated from, at most (a fixed random sample):
#: the median and MAD of 2^18 values are within ~0.003 σ of the full gallery's.
STATS_SAMPLE = 2**18


@dataclass(frozen=True)
class PhotoLayout:
    """Where a photo's patches came from, without the patches (enough to map and mask).

    Attributes:
        grid_hw: (gh, gw) patch grid.
        letterbox: where the photo sat in the model input.
        patch_size: the backbone's patch side (pixels).
    """

    grid_hw: tuple[int, int]
    letterbox: Letterbox
    patch_size: int

    @property
    def photo_hw(self) -> tuple[int, int]:
        return self.letterbox.photo_hw

    def valid_patches(self) -> np.ndarray:
        """(gh, gw) bool: patches that overlap the photo (not letterbox padding)."""
        return self.letterbox.valid_patches(self.patch_size)

    @classmethod
    def of(cls, f: PhotoFeatures) -> PhotoLayout:
        gh, gw = f.grid_hw
        return cls((int(gh), int(gw)), f.letterbox, int(f.patch_size))


class PatchBlock(Protocol):
    """Consecutive rows of the bank's matrix."""

    @property
    def rows(self) -> int: ...

    @property
    def resident_bytes(self) -> int:
        """Bytes this block keeps in memory."""
        ...

    def matvec(self, q16: torch.Tensor, out: torch.Tensor) -> None:
        """Write this block's rows · ``q16`` ((d,) float16) into ``out`` ((rows,) float32)."""
        ...

    def take(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), d) float32: these rows (indices within the block, ascending)."""
        ...

    def matvec_rows(self, q: torch.Tensor, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) float32: these rows (ascending, within the block) · ``q`` ((d,)
        float32)."""
        ...


class TensorBlock:
    """A resident block: a (rows, d) float16 CPU tensor."""

    def __init__(self, matrix: np.ndarray | torch.Tensor) -> None:
        if isinstance(matrix, np.ndarray):  # own a writable copy (cache rows are read-only)
            matrix = np.asarray(matrix, dtype=np.float16)
            if not matrix.flags.writeable:
                matrix = matrix.copy()
        t = torch.as_tensor(matrix)
        if t.ndim != 2:
            raise ValueError(f"a block must be (rows, d), got {tuple(t.shape)}")
        self.tensor = t.to(torch.float16).contiguous()

    @property
    def rows(self) -> int:
        return int(self.tensor.shape[0])

    @property
    def resident_bytes(self) -> int:
        return self.tensor.numel() * 2

    def matvec(self, q16: torch.Tensor, out: torch.Tensor) -> None:
        if self.rows:
            out.copy_(torch.mv(self.tensor, q16))

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.tensor[torch.from_numpy(np.asarray(rows, np.int64))].float().numpy()

    def matvec_rows(self, q: torch.Tensor, rows: np.ndarray) -> np.ndarray:
        picked = self.tensor.index_select(0, torch.from_numpy(np.asarray(rows, np.int64)))
        return torch.mv(picked, q.to(torch.float16)).float().numpy()


class FeatureBank:
    """Photos' patch features as one (ΣT, d) float16 matrix in blocks, with their layouts.

    Args:
        features: photos' features (their patches are copied into resident blocks).
        names: an identifier per photo (e.g. its path relative to the folder); default
            "0", "1", …
    """

    def __init__(
        self, features: Sequence[PhotoFeatures] = (), *, names: Sequence[str] | None = None
    ) -> None:
        self.layouts: list[PhotoLayout] = []
        self.names: list[str] = []
        self.blocks: list[PatchBlock] = []
        self.dim: int | None = None
        self._sizes: list[int] = []
        self._globals: list[np.ndarray] = []
        self._valid: list[np.ndarray] = []
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._sample: np.ndarray | None = None
        self._summary_parts: list[np.ndarray | None] = []
        self._part_sizes: list[int] = []
        self._summary: torch.Tensor | None = None
        self._summary_products: tuple[bytes, np.ndarray] | None = None
        self._sample_matrix: torch.Tensor | None = None
        #: Where the rows are an approximation (a patch store's codes): a source of each
        #: photo's exact float16 rows, which masks are made from; None: the rows are exact
        #: (or nothing better is at hand). Not carried over by :meth:`concat`.
        self.exact_patches: ExactPatches | None = None
        self.extend(features, names=names)

    # -- building ----------------------------------------------------------------------------
    def extend(
        self, features: Sequence[PhotoFeatures], *, names: Sequence[str] | None = None
    ) -> None:
        """Append photos (resident). ``names`` default to their running index."""
        if not features:
            return
        mats = [np.asarray(f.patches) for f in features]
        self._check_dim({m.shape[1] for m in mats})
        matrix = np.concatenate(mats) if len(mats) > 1 else mats[0]
        blocks = [
            TensorBlock(matrix[s : s + BLOCK_ROWS]) for s in range(0, len(matrix), BLOCK_ROWS)
        ]
        self.add_block_rows(
            [PhotoLayout.of(f) for f in features],
            np.stack([f.global_embedding for f in features]),
            blocks,
            names=names,
        )

    def add_block_rows(
        self,
        layouts: Sequence[PhotoLayout],
        globals_: np.ndarray,
        blocks: Sequence[PatchBlock],
        *,
        names: Sequence[str] | None = None,
        summaries: np.ndarray | None = None,
    ) -> None:
        """Append photos whose patches are the rows of ``blocks`` (in order; any block
        implementation, e.g. one that streams from disk). ``summaries`` ((n, k, d), see
        :func:`sketchpad.vision.quant.summarize`) when they were stored; otherwise they are
        computed from the patches the first time a shortlist needs them."""
        globals_ = np.asarray(globals_)
        if globals_.dtype != np.float16:  # float16 (a store's) is kept as it is
            globals_ = globals_.astype(np.float32, copy=False)
        if globals_.ndim != 2 or len(globals_) != len(layouts):
            raise ValueError(f"{len(layouts)} layouts but globals of shape {globals_.shape}")
        self._check_dim({globals_.shape[1]})
        sizes = [lay.grid_hw[0] * lay.grid_hw[1] for lay in layouts]
        if sum(sizes) != sum(b.rows for b in blocks):
            raise ValueError(
                f"the layouts have {sum(sizes)} patches, the blocks {sum(b.rows for b in blocks)}"
            )
        if names is None:
            names = [str(len(self.names) + k) for k in range(len(layouts))]
        if len(names) != len(layouts):
            raise ValueError(f"{len(names)} names for {len(layouts)} photos")
        if summaries is not None:
            summaries = np.asarray(summaries)
            if summaries.ndim != 3 or len(summaries) != len(layouts):
                raise ValueError(f"summaries of shape {summaries.shape} for {len(layouts)} photos")
            if self._summary_parts and any(
                p is not None and p.shape[1:] != summaries.shape[1:] for p in self._summary_parts
            ):
                raise ValueError("summaries of different shapes")
        self.layouts += list(layouts)
        self.names += [str(n) for n in names]
        self.blocks += list(blocks)
        self._sizes += sizes
        self._globals.append(globals_)
        self._valid += [lay.valid_patches().ravel() for lay in layouts]
        self._summary_parts.append(summaries)
        self._part_sizes.append(len(layouts))
        self._cache = None
        self._sample = None
        self._summary = None
        self._summary_products = None
        self._sample_matrix = None

    def _check_dim(self, dims: set[int]) -> None:
        if self.dim is not None:
            dims = dims | {self.dim}
        if len(dims) > 1:
            raise ValueError(f"photos have features of different dimensions {sorted(dims)}")
        if dims:
            self.dim = dims.pop()

    @classmethod
    def concat(cls, banks: Sequence[FeatureBank]) -> FeatureBank:
        """One bank over several (blocks are shared, not copied). Where any of them carries
        :attr:`exact_patches`, so does the result: photo by photo, its bank's source, or the
        bank's own rows where it has none (they are exact)."""
        out = cls()
        parts = [b for b in banks if len(b)]
        for b in parts:
            known = [p for p in b._summary_parts if p is not None]
            whole = len(known) == len(b._summary_parts)
            summ = np.concatenate(known) if whole else None
            out.add_block_rows(b.layouts, b.globals, b.blocks, names=b.names, summaries=summ)
        if any(b.exact_patches is not None for b in parts):
            out.exact_patches = _ConcatExact(parts)
        return out

    # -- views -------------------------------------------------------------------------------
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._cache is None:
            d = self.dim or 0
            offsets = np.concatenate([[0], np.cumsum(self._sizes, dtype=np.int64)])
            valid = np.concatenate(self._valid) if self._valid else np.zeros(0, dtype=bool)
            if len(self._globals) == 1:
                globs = self._globals[0]
            elif self._globals:
                globs = np.concatenate(self._globals)
            else:
                globs = np.zeros((0, d), np.float32)
            self._cache = (offsets.astype(np.int64), valid, globs)
        return self._cache

    @property
    def offsets(self) -> np.ndarray:
        """(N + 1,) int64: photo i's patches are rows offsets[i]:offsets[i + 1]."""
        return self._arrays()[0]

    @property
    def valid(self) -> np.ndarray:
        """(ΣT,) bool: patches that overlap their photo."""
        return self._arrays()[1]

    @property
    def globals(self) -> np.ndarray:
        """(N, d) global embeddings: float32, or float16 where every photo's was given so (a
        patch store's)."""
        return self._arrays()[2]

    def stats_rows(self) -> np.ndarray:
        """Row indices the gallery statistics are computed over: every valid patch, or a fixed
        (seeded, sorted) random sample of :data:`STATS_SAMPLE` of them in a large gallery —
        the median of 2 million cosines costs tens of milliseconds per query, the sample's
        one. All patches when none is valid."""
        if self._sample is None:
            self._sample = sample_rows(self.valid)
        return self._sample

    def __len__(self) -> int:
        return len(self.layouts)

    @property
    def rows(self) -> int:
        return int(sum(self._sizes))

    @property
    def resident_bytes(self) -> int:
        """Bytes of patch features held in memory (streamed blocks hold none)."""
        return int(sum(b.resident_bytes for b in self.blocks))

    def correlate(self, query: np.ndarray) -> np.ndarray:
        """(ΣT,) float32 cosines of every patch with ``query`` (d,), seed 000 Eq. 2: one
        float16 matrix-vector product per block into one output vector."""
        q = normalize(np.asarray(query, dtype=np.float32))
        if self.dim is not None and q.shape != (self.dim,):
            raise ValueError(f"query of shape {q.shape}, features of dimension {self.dim}")
        q16 = torch.from_numpy(q).to(torch.float16)
        out = torch.empty(self.rows, dtype=torch.float32)
        start = 0
        with torch.inference_mode():
            for b in self.blocks:
                b.matvec(q16, out[start : start + b.rows])
                start += b.rows
        return out.numpy()

    def grid(self, flat: np.ndarray, i: int) -> np.ndarray:
        """Photo i's slice of a per-patch array as its (gh, gw) grid."""
        gh, gw = self.layouts[i].grid_hw
        o = self.offsets
        return flat[o[i] : o[i + 1]].reshape(gh, gw)

    # -- the two-stage query's pieces (sketchpad.search.shortlist) ---------------------------
    def _block_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([b.rows for b in self.blocks], dtype=np.int64)])

    def correlate_rows(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) float32 cosines of these rows (bank row indices, ascending) with
        ``query``: the same numbers :meth:`correlate` gives at these rows, computed only there."""
        q = normalize(np.asarray(query, dtype=np.float32))
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty(len(rows), dtype=np.float32)
        if not len(rows):
            return out
        if np.any(np.diff(rows) < 0):
            raise ValueError("correlate_rows takes ascending row indices")
        qt = torch.from_numpy(q)
        starts = self._block_starts()
        cuts = np.searchsorted(rows, starts)
        with torch.inference_mode():
            for k, b in enumerate(self.blocks):
                lo, hi = int(cuts[k]), int(cuts[k + 1])
                for s in range(lo, hi, _ROWS_PER_STEP):
                    e = min(hi, s + _ROWS_PER_STEP)
                    out[s:e] = b.matvec_rows(qt, rows[s:e] - starts[k])
        return out

    def correlate_photos(
        self, query: np.ndarray, photos: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """These photos' cosines with ``query``: (their rows' cosines photo after photo, as
        :meth:`correlate_rows` gives them at :meth:`photo_rows`, the offsets of each photo's,
        (len(photos),) each photo's best cosine over its valid patches, −inf where none).

        Where every block holds whole photos and reads them itself (``photo_products``: a
        patch store's, :meth:`sketchpad.gallery.store_bank.StoreBlock.photo_products`),
        each block reads its photos' codes directly; otherwise through :meth:`correlate_rows`.

        Args:
            photos: ascending photo indices.
        """
        photos = np.asarray(photos, dtype=np.int64)
        firsts = self._photo_block_starts()
        if firsts is None:
            rows, offsets = self.photo_rows(photos)
            cos = self.correlate_rows(query, rows)
            masked = np.where(self.valid[rows], cos, -np.inf).astype(np.float32)
            best = np.full(len(photos), -np.inf, dtype=np.float32)
            nonempty = np.diff(offsets) > 0
            best[nonempty] = np.maximum.reduceat(masked, offsets[:-1][nonempty])
            return cos, offsets, best
        o = self.offsets
        offsets = np.concatenate([[0], np.cumsum(o[photos + 1] - o[photos])]).astype(np.int64)
        q = torch.from_numpy(normalize(np.asarray(query, dtype=np.float32)))
        cos = np.empty(int(offsets[-1]), dtype=np.float32)
        best = np.empty(len(photos), dtype=np.float32)
        cuts = np.searchsorted(photos, firsts)
        for k, b in enumerate(self.blocks):
            lo, hi = int(cuts[k]), int(cuts[k + 1])
            if hi > lo:
                got, best[lo:hi] = b.photo_products(q, photos[lo:hi] - firsts[k])  # type: ignore[attr-defined]
                cos[offsets[lo] : offsets[hi]] = got
        return cos, offsets, best

    def _photo_block_starts(self) -> np.ndarray | None:
        """(blocks + 1,) the first photo of each block, where every block holds whole photos
        and reads them itself (``photo_count``, ``photo_products``); else None."""
        counts = [getattr(b, "photo_count", None) for b in self.blocks]
        if not self.blocks or any(c is None for c in counts):
            return None
        if not all(hasattr(b, "photo_products") for b in self.blocks):
            return None
        return np.concatenate([[0], np.cumsum([int(c) for c in counts if c is not None])]).astype(
            np.int64
        )

    def take_rows(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), d) float32 patch vectors at these bank rows (ascending)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim or 0), dtype=np.float32)
        starts = self._block_starts()
        cuts = np.searchsorted(rows, starts)
        for k, b in enumerate(self.blocks):
            lo, hi = int(cuts[k]), int(cuts[k + 1])
            if hi > lo:
                out[lo:hi] = b.take(rows[lo:hi] - starts[k])
        return out

    def photo_rows(self, photos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, offsets): the bank rows of these photos (ascending photo indices), photo
        ``photos[j]``'s at ``rows[offsets[j]:offsets[j + 1]]``."""
        photos = np.asarray(photos, dtype=np.int64)
        o = self.offsets
        sizes = o[photos + 1] - o[photos]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        rows = np.repeat(o[photos] - offsets[:-1], sizes) + np.arange(offsets[-1])
        return rows.astype(np.int64), offsets

    @property
    def has_summaries(self) -> bool:
        """Whether every photo's summary was given (stored) rather than to be computed."""
        return bool(self._summary_parts) and all(p is not None for p in self._summary_parts)

    def summary_matrix(self) -> torch.Tensor:
        """(N·k, d) float16: every photo's summary vectors, photo i's at rows i·k … i·k + k − 1
        (kept in memory; computed from the patches for photos added without them)."""
        if self._summary is None:
            from sketchpad.vision.quant import SUMMARY_K

            known = [p for p in self._summary_parts if p is not None]
            k = known[0].shape[1] if known else SUMMARY_K
            d = self.dim or 0
            parts: list[np.ndarray] = []
            first = 0
            for part, n in zip(self._summary_parts, self._part_sizes, strict=True):
                if part is not None:
                    parts.append(np.asarray(part, dtype=np.float16))
                else:
                    parts.append(self._summarize(first, n, k))
                first += n
            if len(parts) == 1:
                mat = parts[0]  # no copy: a store's summaries are shared with its codes' base
            else:
                mat = np.concatenate(parts) if parts else np.zeros((0, k, d), np.float16)
            self._summary = torch.from_numpy(np.ascontiguousarray(mat.reshape(-1, d)))
        return self._summary

    def summary_products(self, query: torch.Tensor) -> np.ndarray:
        """(N·k,) float32: every summary vector · ``query`` ((d,), normalised), kept for the
        last query (the two stages and q4r codes need the same products)."""
        key = query.detach().to(torch.float32).numpy().tobytes()
        if self._summary_products is None or self._summary_products[0] != key:
            with torch.inference_mode():
                got = torch.mv(self.summary_matrix(), query.to(torch.float16)).float().numpy()
            self._summary_products = (key, got)
        return self._summary_products[1]

    def _summarize(self, first: int, n: int, k: int) -> np.ndarray:
        from sketchpad.vision.quant import summarize

        out = np.zeros((n, k, self.dim or 0), dtype=np.float16)
        o = self.offsets
        for s in range(first, first + n, _SUMMARY_BATCH):
            idx = np.arange(s, min(first + n, s + _SUMMARY_BATCH))
            sizes = o[idx + 1] - o[idx]
            for t in np.unique(sizes):  # photos of one grid size at a time
                same = idx[sizes == t]
                rows, _ = self.photo_rows(same)
                x = self.take_rows(rows).reshape(len(same), int(t), -1)
                valid = self.valid[rows].reshape(len(same), int(t))
                out[same - first] = summarize(x, valid, k).astype(np.float16)
        return out

    def sample_matrix(self) -> torch.Tensor:
        """(len(stats_rows()), d) float16: the patches the gallery statistics come from, kept
        in memory, so a shortlist query gets its statistics from the same fixed whole-gallery
        sample as the exact one without touching the rest of the gallery."""
        if self._sample_matrix is None:
            rows = self.stats_rows()
            mat = np.empty((len(rows), self.dim or 0), dtype=np.float16)
            for s in range(0, len(rows), _ROWS_PER_STEP):
                mat[s : s + _ROWS_PER_STEP] = self.take_rows(rows[s : s + _ROWS_PER_STEP])
                self.release()  # the sample spans the whole library: pages read, step by step
            self._sample_matrix = torch.from_numpy(mat)
        return self._sample_matrix

    def release(self) -> None:
        """Let go of what reading rows brought into this process's memory beyond the bank
        itself: a patch store's memory-mapped pages (``release`` of each block that has one,
        :meth:`sketchpad.gallery.store_bank.StoreBlock.release`)."""
        for b in self.blocks:
            release = getattr(b, "release", None)
            if release is not None:
                release()


class _ConcatExact:
    """:attr:`FeatureBank.exact_patches` of banks put one after another."""

    def __init__(self, banks: Sequence[FeatureBank]) -> None:
        self.banks = list(banks)
        self.starts = np.cumsum([0, *(len(b) for b in self.banks)])

    def __call__(self, i: int) -> np.ndarray | None:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        bank, j = self.banks[k], i - int(self.starts[k])
        if bank.exact_patches is not None:
            return bank.exact_patches(j)
        rows, _ = bank.photo_rows(np.array([j], np.int64))
        return bank.take_rows(rows).astype(np.float16)  # float16 rows: exact


def sample_rows(valid: np.ndarray) -> np.ndarray:
    """The rows :meth:`FeatureBank.stats_rows` picks from a bank's (ΣT,) ``valid`` mask."""
    rows = np.flatnonzero(valid)
    if rows.size == 0:
        rows = np.arange(len(valid))
    if rows.size > STATS_SAMPLE:
        pick = np.random.default_rng(0).choice(rows.size, STATS_SAMPLE, replace=False)
        rows = rows[np.sort(pick)]
    return rows


#: Rows per step when a subset of rows is read or correlated (8 MiB of float32 at d = 512).
_ROWS_PER_STEP = 4096
#: Photos summarised per step when summaries are computed from patches.
_SUMMARY_BATCH = 256
