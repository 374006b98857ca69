"""Compressed patch features and a photo's compact summary (issue 19, the large-library path).

**Codecs.** A patch vector ``x`` (d,) is stored as small integers and one float16 scale,
``x ≈ scale · code``, the scale chosen per vector (``max |x| / L``): a per-vector scale keeps
the relative error the same for every patch, and a cosine ``q · x`` is then
``scale · (q · code)``: the product runs on the codes, the scale multiplies one number.

- ``"q8"``: int8 codes in [−127, 127], d bytes + 2 per patch (ViT-B/16: 196 × 514 B ≈ 98 KiB
  per photo). Cosine error ≈ 0.0003 (std, unit vectors, d = 512).
- ``"q4"``: int4 codes in [−7, 7], two per byte, d / 2 bytes + 2 per patch (≈ 49 KiB per
  photo). Cosine error ≈ 0.005 (std).
- ``"q4r"``: q4 of the *residual* ``x − c`` from the nearest of the photo's summary vectors
  ``c`` (below; stored anyway), plus that vector's index (1 byte per patch): the same bytes as
  q4 but the residual is about half as long as ``x``, so the error is about half as large.
  The product adds ``q · c``, which the first stage of a query has computed already.
- ``"q5r"``: the same residual in 5 bits (levels [−15, 15]): the low four bits as q4 stores
  them, the fifth bit of every coordinate in a bit plane after them, d · 5 / 8 bytes + 2 per
  patch; half q4r's error for a quarter more bytes, which the store pays for by keeping codes
  of valid patches only (letterbox padding is never scored).

Which one a store uses is chosen by measurement (``sketchpad bench gallery``, docs/
large_libraries.md): q5r (62.5 KiB per 4:3 photo with the store's valid-patches-only codes:
the best mask and match recall within 64 KiB); q4r, q4 and q8 are measured side by side.

**Summary.** :func:`summarize` gives each photo ``k`` unit vectors (default 8) that stand for
its valid patches in the first stage of a query (:mod:`sketchpad.search.shortlist`): the
centroids of a few rounds of spherical k-means started by farthest-point (k-centre) seeding, so
that a small distinctive object — two patches of 196 — gets a centroid of its own instead of
being averaged into the background.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

Codec = Literal["q8", "q4", "q4r", "q5r"]
CODECS: tuple[Codec, ...] = ("q8", "q4", "q4r", "q5r")
#: The codec a new patch store uses (chosen by measurement: docs/large_libraries.md).
DEFAULT_CODEC: Codec = "q5r"
#: Codecs that store the residual from each patch's nearest summary vector.
RESIDUAL: tuple[Codec, ...] = ("q4r", "q5r")
_LEVELS = {"q8": 127, "q4": 7, "q4r": 7, "q5r": 15}
#: q4 clips each vector at this many RMS of its coordinates (the step that minimises the
#: squared error of Gaussian-like coordinates at 15 levels; the peak would waste levels).
CLIP_SIGMAS = 2.5
#: The same for the 31 levels of q5r (measured on the synthetic library's residuals: 2.9).
CLIP_SIGMAS_Q5 = 2.9
#: Summary vectors per photo.
SUMMARY_K = 8
#: Whether the summary vectors are the clusters' means (True) or their unit directions.
SUMMARY_MEANS = False
#: Rounds of spherical k-means after the k-centre seeding.
SUMMARY_ROUNDS = 3


def row_bytes(codec: Codec, d: int) -> int:
    """Bytes of one patch's codes (its scale not counted)."""
    check_codec(codec, d)
    if codec == "q8":
        return d
    return d // 2 + d // 8 if codec == "q5r" else d // 2


def check_codec(codec: str, d: int) -> Codec:
    """``codec`` when it can store ``d``-dimensional vectors.

    Raises:
        ValueError: an unknown codec, or q4 with an odd dimension.
    """
    if codec not in CODECS:
        raise ValueError(f"unknown patch codec {codec!r} (known: {', '.join(CODECS)})")
    if codec != "q8" and d % 2:
        raise ValueError(f"the {codec} codec needs an even feature dimension, got {d}")
    if codec == "q5r" and d % 8:
        raise ValueError(f"the {codec} codec needs a feature dimension divisible by 8, got {d}")
    return codec


def codec_for(d: int) -> Codec:
    """The codec a new store of ``d``-dimensional features uses: :data:`DEFAULT_CODEC`, or
    q8 (any dimension) where the default cannot store them."""
    try:
        return check_codec(DEFAULT_CODEC, d)
    except ValueError:
        return "q8"


def quantize(x: np.ndarray, codec: Codec) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float vectors → ((n, row_bytes) uint8 codes, (n,) float16 scales).

    Raises:
        ValueError: not 2-D, not finite, or a codec that cannot store it.
    """
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"quantize takes (n, d) vectors, got shape {a.shape}")
    check_codec(codec, a.shape[1])
    if not np.isfinite(a).all():
        raise ValueError("cannot quantize vectors that are not finite")
    levels = _LEVELS[codec]
    peak = np.abs(a).max(axis=1) if a.size else np.zeros(len(a), np.float32)
    if codec != "q8":  # clip the rare tail: a finer step for every other coordinate
        rms = np.sqrt(np.mean(a * a, axis=1)) if a.size else peak
        peak = np.minimum(peak, (CLIP_SIGMAS_Q5 if codec == "q5r" else CLIP_SIGMAS) * rms)
    scale16 = (peak / levels).astype(np.float16)
    scale = scale16.astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)[:, None]
    q = np.clip(np.rint(a / safe), -levels, levels).astype(np.int8)
    if codec == "q8":
        return q.view(np.uint8), scale16
    if codec == "q4" or codec == "q4r":
        u = (q + 8).astype(np.uint8)  # 1 … 15
        return (u[:, 0::2] | (u[:, 1::2] << 4)).astype(np.uint8), scale16
    u = (q + 16).astype(np.uint8)  # 1 … 31
    low = (u[:, 0::2] & 15) | ((u[:, 1::2] & 15) << 4)
    # The fifth bits in the decoder's order (even dimensions, then odd ones: position p), in
    # d / 8 bytes: bit k of byte j is position k · d / 8 + j, so that a decoder adds each
    # bit k to one contiguous slice of its output.
    high = (np.concatenate([u[:, 0::2], u[:, 1::2]], axis=1) >> 4).reshape(len(u), 8, -1)
    plane = np.zeros((len(u), high.shape[2]), dtype=np.uint8)
    for k in range(8):
        plane |= (high[:, k] << k).astype(np.uint8)
    return np.concatenate([low.astype(np.uint8), plane], axis=1), scale16


def dequantize(codes: np.ndarray, scales: np.ndarray, codec: Codec, d: int) -> np.ndarray:
    """(n, row_bytes) codes and (n,) scales → (n, d) float32 vectors."""
    return unpack(codes, codec, d).astype(np.float32) * np.asarray(scales, np.float32)[:, None]


def unpack(codes: np.ndarray, codec: Codec, d: int) -> np.ndarray:
    """(n, row_bytes) uint8 codes → (n, d) int8 integer levels (no scale)."""
    c = np.asarray(codes, dtype=np.uint8)
    if c.ndim != 2 or c.shape[1] != row_bytes(codec, d):
        raise ValueError(f"{codec} codes of shape {c.shape} for dimension {d}")
    if codec == "q8":
        return c.view(np.int8)
    out = np.empty((len(c), d), dtype=np.int8)
    h = d // 2
    if codec == "q5r":
        plane = c[:, h:]
        high = np.concatenate([(plane >> k) & 1 for k in range(8)], axis=1).astype(np.int8) << 4
        out[:, 0::2] = (c[:, :h] & 0x0F).view(np.int8) + high[:, :h] - 16
        out[:, 1::2] = (c[:, :h] >> 4).view(np.int8) + high[:, h:] - 16
        return out
    out[:, 0::2] = (c & 0x0F).view(np.int8) - 8
    out[:, 1::2] = (c >> 4).view(np.int8) - 8
    return out


def summarize(
    patches: np.ndarray, valid: np.ndarray | None = None, k: int = SUMMARY_K
) -> np.ndarray:
    """Photos' compact summaries: ``k`` unit vectors per photo (see the module docstring).

    Args:
        patches: (B, T, d) patch vectors of B photos (any float dtype).
        valid: (B, T) or (T,) bool, patches to summarise (letterbox padding left out); None:
            all. A photo with fewer valid patches than ``k`` repeats some.
        k: vectors per photo.

    Returns:
        (B, k, d) float32 unit vectors; a photo without a valid patch gets zeros (it cannot
        match anything: its exact score is 0).
    """
    x = np.asarray(patches, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"summarize takes (B, T, d) patches, got shape {x.shape}")
    b, t, d = x.shape
    v = np.ones((b, t), bool) if valid is None else np.broadcast_to(np.asarray(valid, bool), (b, t))
    x = x / np.maximum(np.linalg.norm(x, axis=2, keepdims=True), 1e-12)
    out = np.zeros((b, k, d), dtype=np.float32)
    has = v.any(axis=1)
    if not has.any() or t == 0:
        return out
    xt = torch.from_numpy(np.ascontiguousarray(x[has]))
    vt = torch.from_numpy(np.ascontiguousarray(v[has]))
    n = len(xt)
    rows = torch.arange(n)
    neg = torch.tensor(-torch.inf)
    # k-centre seeding: start from the patch nearest the photo's mean, then repeatedly take the
    # valid patch least similar to every centre chosen so far.
    mean = (xt * vt[:, :, None]).sum(dim=1)
    first = torch.where(vt, torch.bmm(xt, mean[:, :, None])[:, :, 0], neg).argmax(dim=1)
    centres = torch.empty((n, k, d), dtype=torch.float32)
    centres[:, 0] = xt[rows, first]
    best = torch.bmm(xt, centres[:, 0, :, None])[:, :, 0]
    for j in range(1, k):
        pick = torch.where(vt, best, -neg).argmin(dim=1)
        centres[:, j] = xt[rows, pick]
        best = torch.maximum(best, torch.bmm(xt, centres[:, j, :, None])[:, :, 0])
    for _ in range(SUMMARY_ROUNDS):
        assign = torch.bmm(xt, centres.transpose(1, 2)).argmax(dim=2)  # (n, T)
        onehot = torch.nn.functional.one_hot(assign, k).float() * vt[:, :, None]
        sums = torch.bmm(onehot.transpose(1, 2), xt)  # (n, k, d)
        norms = sums.norm(dim=2, keepdim=True)
        centres = torch.where(norms > 1e-6, sums / norms.clamp_min(1e-12), centres)
    if SUMMARY_MEANS:  # the clusters' means: q · mean is the members' mean cosine
        counts = onehot.sum(dim=1)[:, :, None]
        means = sums / counts.clamp_min(1.0)
        centres = torch.where(counts > 0, means, centres)
    out[has] = centres.numpy()
    return out


#: Every byte's low nibble, in an int64 word.
_NIBBLES = 0x0F0F0F0F0F0F0F0F
#: Every byte's lowest bit, in an int64 word.
_LOW_BITS = 0x0101010101010101
#: Bits 0 … 7, shaped to shift a row of plane words once per bit.
_SHIFTS = torch.arange(8, dtype=torch.int64)[None, :, None]


class QuantBlock:
    """Bank rows stored compressed (a :class:`sketchpad.vision.bank.PatchBlock`): codes (any
    (rows, row_bytes) uint8 array, typically a memory map of the store's codes file, so only
    the pages a query touches are read) and their float16 scales (in memory, 2 B per patch).

    Products run on the codes, decoded a few thousand rows at a time into one reused float32
    buffer (a fresh array per step costs more in page faults than the product itself).

    Args:
        codes: (rows, row_bytes) uint8.
        scales: (rows,) float16 per-vector scales.
        codec: the codec.
        dim: the feature dimension d.
        row_map: (rows,) int32, the code row of each block row, −1 for rows without codes
            (letterbox padding: they read as zero vectors); None: code row = block row.
    """

    #: Rows decoded per step (4 MiB of float32 at d = 512).
    STEP = 2048

    def __init__(
        self,
        codes: np.ndarray,
        scales: np.ndarray,
        codec: Codec,
        dim: int,
        *,
        base_index: np.ndarray | None = None,
        base_products: Callable[[torch.Tensor], np.ndarray] | None = None,
        row_map: np.ndarray | None = None,
    ) -> None:
        self.codec = check_codec(codec, dim)
        self.row_map = None if row_map is None else np.asarray(row_map, np.int32)
        self.base_index = base_index
        self.base_products = base_products
        self.dim = int(dim)
        if codes.ndim != 2 or codes.shape[1] != row_bytes(codec, dim):
            raise ValueError(f"{codec} codes of shape {codes.shape} for dimension {dim}")
        if scales.shape != (len(codes),):
            raise ValueError(f"{len(codes)} rows of codes but {scales.shape} scales")
        self.codes = codes
        self.scales = np.ascontiguousarray(scales, dtype=np.float16)

    @property
    def rows(self) -> int:
        return int(len(self.codes) if self.row_map is None else len(self.row_map))

    @property
    def resident_bytes(self) -> int:
        return int(self.scales.nbytes + (0 if self.row_map is None else self.row_map.nbytes))

    def _scratch(self, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Work buffers for :meth:`_levels` of up to ``rows`` rows."""
        return (
            torch.empty((rows, self.dim), dtype=torch.uint8),
            torch.empty((rows, 8, max(1, self.dim // 64)), dtype=torch.int64),
        )

    def _levels(
        self,
        codes: np.ndarray,
        buf: torch.Tensor,
        scratch: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Codes → float32 integer levels in ``buf``; for q4 the even dimensions first, then
        the odd ones (the query is permuted to match), each offset by +8 (q5r: +16).

        The levels are put together in bytes (``scratch``: :meth:`_scratch`) and converted to
        float32 once. Where the dimension allows (q5r: d divisible by 64, q4: by 16), eight
        bytes at a time, as int64 words: a nibble is ``word & 0x0F0F…`` or ``(word >> 4) &
        0x0F0F…``, and bit k of every plane byte lands on its level's fifth bit with ``((word
        >> k) & 0x0101…) << 4`` — a tenth of the operations of a byte at a time, which is
        what decoding costs (:mod:`sketchpad.search.shortlist`'s second stage)."""
        c = torch.from_numpy(np.require(codes, requirements=["C", "W"]))  # mmap: read-only
        n = len(c)
        out = buf[:n]
        if self.codec == "q8":
            out.copy_(c.view(torch.int8))
            return out
        u, t = self._scratch(n) if scratch is None else (scratch[0][:n], scratch[1][:n])
        h = self.dim // 2
        five = self.codec == "q5r"
        if self.dim % (64 if five else 16) == 0:
            words = c.view(torch.int64)
            low, u64 = words[:, : h // 8], u.view(torch.int64)
            torch.bitwise_and(low, _NIBBLES, out=u64[:, : h // 8])
            torch.bitwise_right_shift(low, 4, out=u64[:, h // 8 :]).bitwise_and_(_NIBBLES)
            if five:  # bit k of plane byte j is the fifth bit of level k·d/8 + j
                plane = words[:, h // 8 :]
                torch.bitwise_right_shift(plane[:, None, :], _SHIFTS, out=t)
                t.bitwise_and_(_LOW_BITS).bitwise_left_shift_(4)
                u64.bitwise_or_(t.view(n, -1))
        else:
            low = c[:, :h]
            torch.bitwise_and(low, 15, out=u[:, :h])
            torch.bitwise_right_shift(low, 4, out=u[:, h:])
            if five:
                bits = torch.bitwise_right_shift(c[:, None, h:], _SHIFTS.to(torch.uint8))
                u.bitwise_or_(bits.bitwise_and_(1).reshape(n, self.dim).bitwise_left_shift_(4))
        out.copy_(u)
        return out

    def _query(self, q: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The query in the levels' layout, and what the q4 offset adds to each product."""
        q = q.to(torch.float32)
        if self.codec == "q8":
            return q, 0.0
        offset = 16.0 if self.codec == "q5r" else 8.0
        return torch.cat([q[0::2], q[1::2]]).contiguous(), offset * float(q.sum())

    def _products(
        self,
        q: torch.Tensor,
        codes_of: Callable[[int, int], np.ndarray],
        n: int,
        scales: np.ndarray,
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        if self.codec in RESIDUAL and (self.base_index is None or self.base_products is None):
            raise ValueError(f"{self.codec} codes need their base vectors (base_index, …)")
        qq, offset = self._query(q)
        buf = torch.empty((min(n, self.STEP), self.dim), dtype=torch.float32)
        scratch = self._scratch(len(buf))
        out = np.empty(n, dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, n, self.STEP):
                e = min(n, s + self.STEP)
                levels = self._levels(codes_of(s, e), buf, scratch)
                out[s:e] = torch.mv(levels, qq).numpy() - offset
        out *= scales.astype(np.float32)
        if self.base_index is not None and self.base_products is not None:
            base = self.base_products(q)
            out += base[self.base_index if rows is None else self.base_index[rows]]
        return out

    def matvec(self, q16: torch.Tensor, out: torch.Tensor) -> None:
        got = self._products(q16, lambda s, e: self.codes[s:e], len(self.codes), self.scales)
        if self.row_map is not None:
            full = np.zeros(self.rows, dtype=np.float32)
            full[self.row_map >= 0] = got  # code rows ascend with block rows
            got = full
        out.copy_(torch.from_numpy(got))

    def _code_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(code rows of ``rows`` that have codes, which of ``rows`` they are or None: all)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.row_map is None:
            return rows, None
        c = self.row_map[rows].astype(np.int64)
        has = c >= 0
        return c[has], has

    def matvec_rows(self, q: torch.Tensor, rows: np.ndarray) -> np.ndarray:
        c, has = self._code_rows(rows)
        got = self._products(q, lambda s, e: self.codes[c[s:e]], len(c), self.scales[c], c)
        if has is None:
            return got
        out = np.zeros(len(has), dtype=np.float32)
        out[has] = got
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        c, has = self._code_rows(rows)
        got = dequantize(self.codes[c], self.scales[c], self.codec, self.dim)
        if self.base_index is not None and self.base_vectors is not None:
            got += self.base_vectors[self.base_index[c]].astype(np.float32)
        if has is None:
            return got
        out = np.zeros((len(has), self.dim), dtype=np.float32)
        out[has] = got
        return out

    #: (N·k, d) the base vectors themselves (q4r), for :meth:`take`.
    base_vectors: np.ndarray | None = None
