"""The feature cache's row format (schema version 2): names as bytes, a checksum per row.

A row of ``features`` is one photo's features (see :mod:`sketchpad.gallery.cache`):

- ``rel_path`` BLOB: the photo's path relative to the folder, "/"-separated, as the bytes the
  OS gave (:func:`sketchpad.names.name_bytes`): any name is stored losslessly, including
  undecodable bytes (which SQLite could not take as text) and NFC/NFD twins.
- 13 integers: size, mtime_ns, the grid (gh, gw), d, the patch size, the photo's (h, w), the
  model input size and the letterbox (x0, y0, x1, y1).
- ``patches`` (gh·gw·d little-endian float16) and ``global_emb`` (d little-endian float32).
- Two checksums (XXH3, 64 bits, stored as signed SQLite integers), verified whenever the data
  they cover is read: ``check_meta`` over the name, the 13 integers (as little-endian int64)
  and ``global_emb`` (what :meth:`FeatureCache.layouts` reads), ``check_patches`` over the
  stored ``patches`` bytes (what :meth:`FeatureCache.patch_rows` reads). Two checksums rather
  than one so loading a gallery never reads a blob twice; a later storage of the patches
  (compressed, mapped) keeps ``check_patches`` over the bytes as stored.

Why XXH3 (the ``xxhash`` package): a checksum against accidental damage (bit rot, a torn page,
a bad copy), not an attacker, so a cryptographic hash would only cost time, and every byte of a
gallery's patches is checked on each load (2 GB for 10,000 ViT-B/16 photos). Measured on this
project's shared 2-core machine, on 200 kB rows: XXH3-64 4.2-6.6 GB/s, zlib.crc32 1.1-1.4 GB/s
(2.5 when the machine was quiet), SHA-1 1.5, BLAKE2b 0.6. With crc32, loading 10,000 rows took
1.5× as long as without checks on the loaded machine (11.5 s against 7.8 s); XXH3 costs a
quarter of that. A random damage goes unnoticed with probability 2⁻⁶⁴ per row.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import numpy as np
import xxhash

from sketchpad.names import name_bytes, name_from_bytes
from sketchpad.vision.letterbox import Letterbox

if TYPE_CHECKING:
    from sketchpad.vision.features import PhotoFeatures

#: The row format this module reads and writes.
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE features (
    rel_path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    gh INTEGER NOT NULL, gw INTEGER NOT NULL, d INTEGER NOT NULL, patch_size INTEGER NOT NULL,
    photo_h INTEGER NOT NULL, photo_w INTEGER NOT NULL, input_size INTEGER NOT NULL,
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    patches BLOB NOT NULL, global_emb BLOB NOT NULL,
    check_meta INTEGER NOT NULL, check_patches INTEGER NOT NULL
);
"""
#: Every column of a row, in :func:`encode`'s order.
COLS = (
    "rel_path, size, mtime_ns, gh, gw, d, patch_size, photo_h, photo_w, input_size, "
    "x0, y0, x1, y1, patches, global_emb, check_meta, check_patches"
)
#: The columns ``check_meta`` covers, then the checksum (``FeatureCache.layouts`` reads these).
META_COLS = (
    "rel_path, size, mtime_ns, gh, gw, d, patch_size, photo_h, photo_w, input_size, "
    "x0, y0, x1, y1, global_emb, check_meta"
)
#: Rows whose blob lengths fit their shape (``length()`` reads only the record header).
VALID = "length(patches) = gh * gw * d * 2 AND length(global_emb) = d * 4 AND d > 0"

_INTS = struct.Struct("<13q")


class RowDamage(ValueError):
    """A row that fails its checksum or does not fit its shape: never to be served."""


def db_name(rel_path: str) -> bytes:
    """A photo's name as the ``rel_path`` column holds it."""
    return name_bytes(rel_path)


def py_name(raw: bytes | str) -> str:
    """The ``rel_path`` column back to the ``str`` the folder scan gives."""
    return raw if isinstance(raw, str) else name_from_bytes(raw)


def _digest(data: bytes | memoryview) -> int:
    """XXH3-64 of ``data`` as a signed 64-bit integer (what an SQLite INTEGER holds)."""
    h = xxhash.xxh3_64_intdigest(data)
    return h - (1 << 64) if h >= 1 << 63 else h


def check_meta(name: bytes, ints: tuple[int, ...], global_emb: bytes) -> int:
    """Checksum of a row's name, its 13 integers and its global embedding bytes."""
    return _digest(b"".join((struct.pack("<I", len(name)), name, _INTS.pack(*ints), global_emb)))


def check_patches(patches: bytes | memoryview) -> int:
    """Checksum of a row's stored patch bytes."""
    return _digest(patches)


def encode(rel_path: str, size: int, mtime_ns: int, f: PhotoFeatures) -> tuple[Any, ...]:
    """A row to insert, in :data:`COLS` order (patches as float16, checksums computed).

    Raises:
        ValueError: the features are malformed or not finite.
    """
    gh, gw = (int(v) for v in f.grid_hw)
    patches = np.ascontiguousarray(f.patches, dtype="<f2")
    emb = np.ascontiguousarray(f.global_embedding, dtype="<f4")
    if patches.ndim != 2 or patches.shape[0] != gh * gw or emb.shape != (patches.shape[1],):
        raise ValueError(
            f"{rel_path}: features of shape {patches.shape} / {emb.shape} "
            f"do not match the grid {gh}×{gw}"
        )
    if not (np.isfinite(patches).all() and np.isfinite(emb).all()):
        raise ValueError(f"{rel_path}: features are not finite (as float16)")
    lb = f.letterbox
    fields = (size, mtime_ns, gh, gw, emb.shape[0], f.patch_size, *lb.photo_hw, lb.input_size)
    ints = tuple(int(v) for v in (*fields, *lb.content_xyxy))
    name = db_name(rel_path)
    pb, eb = patches.tobytes(), emb.tobytes()
    return (name, *ints, pb, eb, check_meta(name, ints, eb), check_patches(pb))


def verify_meta(row: tuple[Any, ...]) -> None:
    """Check a row read with :data:`META_COLS` (or :data:`COLS`: same leading columns).

    Raises:
        RowDamage: bad shape fields or a checksum mismatch.
    """
    name, ints, eb = row[0], tuple(row[1:14]), row[14]
    if not isinstance(name, bytes) or not isinstance(eb, bytes):
        raise RowDamage("a name or embedding of the wrong type")
    if not all(isinstance(v, int) for v in ints):
        raise RowDamage("a shape field of the wrong type")
    _, _, gh, gw, d, ps, h, w, size = ints[:9]
    if min(gh, gw, d, ps, h, w, size) <= 0 or len(eb) != d * 4:
        raise RowDamage(f"shape fields {(gh, gw, d, ps, h, w, size)} do not fit the data")
    try:
        expected = check_meta(name, ints, eb)
    except struct.error as e:  # an integer beyond int64: damaged
        raise RowDamage(f"a shape field out of range ({e})") from e
    if row[15] != expected:
        raise RowDamage("checksum mismatch in its layout or global embedding")


def verify_patches(patches: object, gh: int, gw: int, d: int, check: object) -> bytes:
    """The patch bytes of a row, checked against its shape and ``check_patches``.

    Raises:
        RowDamage: wrong type or length, or a checksum mismatch.
    """
    if not isinstance(patches, bytes) or len(patches) != gh * gw * d * 2:
        raise RowDamage("patch data of the wrong length")
    if check_patches(patches) != check:
        raise RowDamage("checksum mismatch in its patch features")
    return patches


def decode(row: tuple[Any, ...]) -> PhotoFeatures:
    """A full row (:data:`COLS`), verified, as features (read-only views of the bytes).

    Raises:
        RowDamage: the row fails a check.
    """
    from sketchpad.vision.features import PhotoFeatures  # loads torch: only when needed

    verify_meta(row[:14] + (row[15], row[16]))
    _, _, _, gh, gw, d, ps, h, w, size, x0, y0, x1, y1, pb, eb = row[:16]
    verify_patches(pb, gh, gw, d, row[17])
    return PhotoFeatures(
        patches=np.frombuffer(pb, dtype="<f2").reshape(gh * gw, d),
        grid_hw=(gh, gw),
        global_embedding=np.frombuffer(eb, dtype="<f4"),
        letterbox=Letterbox((h, w), size, (x0, y0, x1, y1)),
        patch_size=ps,
    )


def letterbox_of(row: tuple[Any, ...]) -> Letterbox:
    """The letterbox of a row read with :data:`META_COLS` or :data:`COLS`."""
    h, w, size, x0, y0, x1, y1 = row[7:14]
    return Letterbox((h, w), size, (x0, y0, x1, y1))
