"""Compressed patch features and a photo's compact summary (issue 19, the large-library path).

**Codecs.** A patch vector ``x`` (d,) is stored as small integers and one float16 scale,
``x ≈ scale · code``, the scale chosen per vector (``max |x| / L``): a per-vector scale keeps
the relative error the same for every patch, and a cosine ``q · x`` is then
``scale · (q · code)``: the product runs on the codes, the scale multiplies one number.

- ``"q8"``: int8 codes in [−127, 127], d bytes + 2 per patch (ViT-B/16: 196 × 514 B ≈ 98 KiB
  per photo). Cosine error ≈ 0.0003 (std, unit vectors, d = 512).
- ``"q4"``: int4 codes in [−7, 7], two per byte, d / 2 bytes + 2 per patch (≈ 49 KiB per
  photo). Cosine error ≈ 0.006 (std): a tenth of a robust sigma of a query's gallery
  distribution of CLIP cosines, which is what the calibration measures in.

Which one a store uses is chosen by measurement (``sketchpad bench gallery``, docs/
large_libraries.md): q4 is the default, it fits the 64 KiB-per-photo target with the compact
summary below, and its recall and mask IoU against float16 are reported side by side with q8's.

**Summary.** :func:`summarize` gives each photo ``k`` unit vectors (default 8) that stand for
its valid patches in the first stage of a query (:mod:`sketchpad.search.shortlist`): the
centroids of a few rounds of spherical k-means started by farthest-point (k-centre) seeding, so
that a small distinctive object — two patches of 196 — gets a centroid of its own instead of
being averaged into the background.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

Codec = Literal["q8", "q4"]
CODECS: tuple[Codec, ...] = ("q8", "q4")
_LEVELS = {"q8": 127, "q4": 7}
#: Summary vectors per photo.
SUMMARY_K = 8
#: Rounds of spherical k-means after the k-centre seeding.
SUMMARY_ROUNDS = 3


def row_bytes(codec: Codec, d: int) -> int:
    """Bytes of one patch's codes (its scale not counted)."""
    check_codec(codec, d)
    return d if codec == "q8" else d // 2


def check_codec(codec: str, d: int) -> Codec:
    """``codec`` when it can store ``d``-dimensional vectors.

    Raises:
        ValueError: an unknown codec, or q4 with an odd dimension.
    """
    if codec not in CODECS:
        raise ValueError(f"unknown patch codec {codec!r} (known: {', '.join(CODECS)})")
    if codec == "q4" and d % 2:
        raise ValueError(f"the q4 codec needs an even feature dimension, got {d}")
    return codec  # type: ignore[return-value]


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
    scale16 = (peak / levels).astype(np.float16)
    scale = scale16.astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)[:, None]
    q = np.clip(np.rint(a / safe), -levels, levels).astype(np.int8)
    if codec == "q8":
        return q.view(np.uint8), scale16
    u = (q + 8).astype(np.uint8)  # 1 … 15
    return (u[:, 0::2] | (u[:, 1::2] << 4)).astype(np.uint8), scale16


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
    out[has] = centres.numpy()
    return out
