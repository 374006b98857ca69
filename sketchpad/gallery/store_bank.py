"""A patch store's codes as the rows of a :class:`~sketchpad.vision.bank.FeatureBank`: the
blocks a query reads (:class:`StoreBlock`: photo by photo with ``pread``, each photo's codes
checked the first time) and the bank they make (:class:`StoreBank`). The store's files, their
writing and their rules: :mod:`sketchpad.gallery.patch_store`."""

from __future__ import annotations

import contextlib
import mmap
import os
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import xxhash

from sketchpad.gallery.cache_file import CacheError
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.quant import RESIDUAL, Codec, QuantBlock

#: A file a reader leaves in the store when it met a damaged row: the next writer checks every
#: row (:meth:`PatchStore.verify`) and removes the marker.
CHECK_MARK = "check"


def mark_for_check(folder: Path) -> None:
    """Leave :data:`CHECK_MARK` in a store folder (a damaged row was met)."""
    with contextlib.suppress(OSError):
        (folder / CHECK_MARK).touch()


def digest(*parts: bytes | memoryview) -> int:
    """XXH3-64 of the parts one after another, as the signed integer SQLite stores."""
    h = xxhash.xxh3_64()
    for p in parts:
        h.update(p)
    v = h.intdigest()
    return v - (1 << 64) if v >= 1 << 63 else v


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Torch's intra-op threads set to one meanwhile: the second stage's operations on a few
    thousand rows each ran 2.5 times slower on two threads than on one (measured on this
    project's 2-core machine: handing each small operation to a second thread costs more than
    it saves)."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class CodesFile:
    """An open file descriptor of a store's codes file, closed when no block holds it."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        weakref.finalize(self, os.close, fd)


class StoreBlock(QuantBlock):
    """A store's codes as bank rows: each photo's codes are checked against ``check_codes``
    the first time they are read; a photo that fails scores −1 everywhere and is reported."""

    def __init__(
        self,
        codes: np.ndarray,
        scales: np.ndarray,
        codec: Codec,
        dim: int,
        *,
        photo_starts: np.ndarray,
        code_starts: np.ndarray,
        checks: Sequence[int],
        names: Sequence[str],
        damaged: dict[str, str],
        mm: mmap.mmap | None,
        folder: Path | None = None,
        row_map: np.ndarray | None = None,
        reader: CodesFile | None = None,
    ) -> None:
        super().__init__(codes, scales, codec, dim, row_map=row_map)
        self._reader = reader
        self.folder = folder
        self.photo_starts = np.asarray(photo_starts, np.int64)
        self.code_starts = np.asarray(code_starts, np.int64)
        self.checks = list(checks)
        self.names = list(names)
        self.damaged = damaged
        self._checked = np.zeros(len(self.names), dtype=bool)
        self._bad = np.zeros(len(self.names), dtype=bool)
        self._mm = mm
        # this block's bytes in the memory map (release drops only those pages)
        first = 0
        if mm is not None and len(codes):
            first = codes.__array_interface__["data"][0] - np.frombuffer(mm, np.uint8).ctypes.data
        self._byte_range = (int(first), int(first) + int(codes.nbytes))

    @property
    def photo_count(self) -> int:
        """Photos whose rows this block holds (whole photos, in bank order)."""
        return len(self.names)

    def _check(self, p: int, codes: np.ndarray) -> None:
        """Check photo ``p``'s codes (the first time), marking it bad when they fail."""
        if digest(np.ascontiguousarray(codes).data.cast("B")) != self.checks[p]:
            self._bad[p] = True
            self.damaged[self.names[p]] = "checksum mismatch in its patch codes"
            if self.folder is not None:
                mark_for_check(self.folder)
        self._checked[p] = True

    def photo_products(self, q: torch.Tensor, photos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cosines of these photos' rows with ``q`` (normalised, float32), for the second
        stage of a shortlist query: the codes are read with one ``pread`` per run of adjacent
        photos into a reused buffer, a few thousand rows at a time (no page of the memory map
        is touched, so nothing stays resident), checked the first time, decoded and multiplied.

        Args:
            photos: ascending indices of photos of this block.

        Returns:
            (their bank rows' cosines, photo after photo: letterbox padding 0, a damaged
            photo's rows −1; (len(photos),) each photo's best cosine over its valid patches,
            −inf where it has none).
        """
        if self._reader is None:
            raise ValueError("this block has no codes file to read from")
        photos = np.asarray(photos, np.int64)
        if self.codec in RESIDUAL and (self.base_index is None or self.base_products is None):
            raise ValueError(f"{self.codec} codes need their base vectors (base_index, …)")
        cs, ce = self.code_starts[photos], self.code_starts[photos + 1]
        bs, be = self.photo_starts[photos], self.photo_starts[photos + 1]
        cum = np.concatenate([[0], np.cumsum(ce - cs)]).astype(np.int64)
        out_at = np.concatenate([[0], np.cumsum(be - bs)]).astype(np.int64)
        out = np.zeros(int(out_at[-1]), dtype=np.float32)
        best = np.full(len(photos), -np.inf, dtype=np.float32)
        if not len(photos):
            return out, best
        rb = self.codes.shape[1]
        step = max(self.STEP, int((ce - cs).max()))
        raw = np.empty((step, rb), dtype=np.uint8)
        flat = raw.data.cast("B")
        buf = torch.empty((step, self.dim), dtype=torch.float32)
        scratch = self._scratch(step)
        qq, offset = self._query(q)
        base = self.base_products(q) if self.base_products is not None else None
        cos = np.empty(int(cum[-1]), dtype=np.float32)  # each code row's product
        # chunks of whole photos of up to `step` rows; within a chunk, each run of photos
        # stored one after another is read with one call (offsets worked out beforehand)
        chunks = [0]
        while chunks[-1] < len(photos):
            c0 = chunks[-1]
            chunks.append(max(c0 + 1, int(np.searchsorted(cum, cum[c0] + step, "right")) - 1))
        breaks = np.ones(len(photos), dtype=bool)
        breaks[1:] = cs[1:] != ce[:-1]
        breaks[chunks[:-1]] = True
        runs = np.flatnonzero(breaks)
        run_ends = np.append(runs[1:], len(photos))
        run_chunk = np.searchsorted(np.asarray(chunks), runs, "right") - 1
        run_lo = ((cum[runs] - cum[np.asarray(chunks)[run_chunk]]) * rb).tolist()
        run_len = ((cum[run_ends] - cum[runs]) * rb).tolist()
        run_at = (self._byte_range[0] + cs[runs] * rb).tolist()
        per_chunk = np.searchsorted(runs, chunks).tolist()
        fd = self._reader.fd
        with torch.inference_mode(), _one_thread():
            for c, (a, b) in enumerate(zip(chunks[:-1], chunks[1:], strict=True)):
                n = int(cum[b] - cum[a])
                for r in range(per_chunk[c], per_chunk[c + 1]):
                    lo, length = run_lo[r], run_len[r]
                    if os.preadv(fd, [flat[lo : lo + length]], run_at[r]) != length:
                        raise CacheError(
                            self._reader.path,
                            "the patch codes file is shorter than its rows say",
                        )
                chunk = raw[:n]
                for k in np.flatnonzero(~self._checked[photos[a:b]]).tolist():
                    i = a + k
                    self._check(int(photos[i]), chunk[cum[i] - cum[a] : cum[i + 1] - cum[a]])
                got = torch.mv(self._levels(chunk, buf, scratch), qq)
                cos[cum[a] : cum[b]] = got.numpy()
        # the rest once over all the photos' codes: scales, base vectors, damage, best, layout
        cos -= offset
        sizes = ce - cs
        code_rows = np.repeat(cs - cum[:-1], sizes) + np.arange(len(cos))
        cos *= self.scales[code_rows].astype(np.float32)
        if base is not None and self.base_index is not None:
            cos += base[self.base_index[code_rows]]
        del code_rows
        bad = self._bad[photos]
        if bad.any():
            cos[np.repeat(bad, sizes)] = -1.0
        has = sizes > 0
        best[has] = np.maximum.reduceat(cos, cum[:-1][has])
        if self.row_map is None:
            out[:] = cos
        else:
            width = be - bs
            bank_rows = np.repeat(bs - out_at[:-1], width) + np.arange(len(out))
            out[self.row_map[bank_rows] >= 0] = cos
            if bad.any():
                out[np.repeat(bad, width)] = -1.0
        return out, best

    def _verify(self, rows: np.ndarray) -> np.ndarray:
        """Check the photos these rows belong to (once each); (len(rows),) bool: row is bad."""
        photo = np.searchsorted(self.photo_starts, rows, side="right") - 1
        for p in np.unique(photo[~self._checked[photo]]).tolist():
            self._check(p, self.codes[self.code_starts[p] : self.code_starts[p + 1]])
        return self._bad[photo]

    def matvec_rows(self, q: torch.Tensor, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        bad = self._verify(rows)
        out = super().matvec_rows(q, rows)
        out[bad] = -1.0
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        bad = self._verify(rows)
        out = super().take(rows)
        out[bad] = 0.0
        return out

    def matvec(self, q16: torch.Tensor, out: torch.Tensor) -> None:
        bad = self._verify(np.arange(self.rows))
        super().matvec(q16, out)
        out[torch.from_numpy(bad)] = -1.0

    def release(self) -> None:
        """Let the kernel take back the pages read so far (they stay in the page cache): the
        process's resident memory does not grow with every photo ever scored."""
        if self._mm is not None and hasattr(mmap, "MADV_DONTNEED"):
            start, end = self._byte_range
            start -= start % mmap.PAGESIZE
            with contextlib.suppress(OSError, ValueError):
                self._mm.madvise(mmap.MADV_DONTNEED, start, end - start)


class StoreBank(FeatureBank):
    """A bank read from a :class:`PatchStore`; ``damaged``: rows failing their checks."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.damaged: dict[str, str] = {}

    @property
    def from_store(self) -> bool:
        """Whether the rows are a patch store's (compressed codes, stored summaries)."""
        return any(isinstance(b, StoreBlock) for b in self.blocks)

