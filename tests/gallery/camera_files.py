"""Photo files as phones and cameras write them, generated for tests: HEIC, AVIF and a camera
RAW (DNG) with or without its embedded preview.

The DNG is written by hand (no library here writes DNG): a little-endian TIFF whose first IFD
is the preview (a baseline JPEG, compression 7, or uncompressed RGB) with the DNG tags and a
SubIFD holding 16-bit Bayer (CFA) sensor data, which is how cameras and Adobe's converter lay
DNGs out; LibRaw (rawpy) reads it like a camera's file. Without a preview, the sensor data is
the first IFD itself.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

_SHORT, _LONG, _BYTE, _ASCII, _SRATIONAL = 3, 4, 1, 2, 10

Entry = tuple[int, int, int, bytes]  # tag, type, count, value bytes


def _short(tag: int, *v: int) -> Entry:
    return (tag, _SHORT, len(v), struct.pack(f"<{len(v)}H", *v))


def _long(tag: int, *v: int) -> Entry:
    return (tag, _LONG, len(v), struct.pack(f"<{len(v)}I", *v))


def _bytes(tag: int, *v: int) -> Entry:
    return (tag, _BYTE, len(v), bytes(v))


def _ascii(tag: int, s: str) -> Entry:
    b = s.encode() + b"\0"
    return (tag, _ASCII, len(b), b)


def _identity_matrix(tag: int) -> Entry:
    flat = [x for i in range(9) for x in ((1, 1) if i % 4 == 0 else (0, 1))]
    return (tag, _SRATIONAL, 9, struct.pack("<18i", *flat))


def _ifd(entries: list[Entry], at: int) -> bytes:
    """One IFD placed at offset ``at``, its out-of-line values right after it."""
    entries = sorted(entries)
    size = 2 + 12 * len(entries) + 4
    out, extra = struct.pack("<H", len(entries)), b""
    for tag, typ, count, data in entries:
        if len(data) <= 4:
            out += struct.pack("<HHI", tag, typ, count) + data.ljust(4, b"\0")
        else:
            out += struct.pack("<HHII", tag, typ, count, at + size + len(extra))
            extra += data + b"\0" * (len(data) % 2)
    return out + struct.pack("<I", 0) + extra


def _cfa_entries(w: int, h: int, data_at: int, nbytes: int, subfile: int) -> list[Entry]:
    return [
        _long(254, subfile), _long(256, w), _long(257, h), _short(258, 16), _short(259, 1),
        _short(262, 32803), _long(273, data_at), _short(277, 1), _long(278, h),
        _long(279, nbytes), _short(284, 1), _short(33421, 2, 2), _bytes(33422, 0, 1, 1, 2),
        _long(50717, 4095),
    ]  # fmt: skip


def _dng_tags(orientation: int) -> list[Entry]:
    return [
        _ascii(271, "Canon"), _ascii(272, "Canon EOS 5D Mark II"), _short(274, orientation),
        _bytes(50706, 1, 4, 0, 0), _bytes(50707, 1, 1, 0, 0),
        _ascii(50708, "Canon EOS 5D Mark II"), _identity_matrix(50721), _short(50778, 21),
    ]  # fmt: skip


def dng_bytes(
    preview: np.ndarray | None,
    *,
    orientation: int = 1,
    jpeg: bool = True,
    sensor_hw: tuple[int, int] = (64, 96),
) -> bytes:
    """A DNG with ``preview`` ((h, w, 3) uint8; None: no preview) and noise as sensor data."""
    rh, rw = sensor_hw
    cfa = np.random.default_rng(0).integers(0, 4096, (rh, rw)).astype("<u2").tobytes()
    if preview is None:
        # header | IFD0 (the sensor data) | data
        first = _ifd(_cfa_entries(rw, rh, 0, len(cfa), 0) + _dng_tags(orientation), 8)
        at = 8 + len(first)
        first = _ifd(_cfa_entries(rw, rh, at, len(cfa), 0) + _dng_tags(orientation), 8)
        return b"II*\0" + struct.pack("<I", 8) + first + cfa
    ph, pw = preview.shape[:2]
    if jpeg:
        buf = io.BytesIO()
        Image.fromarray(preview).save(buf, "JPEG", quality=95)
        data = buf.getvalue()
    else:
        data = np.ascontiguousarray(preview, dtype=np.uint8).tobytes()

    def first_ifd(data_at: int, sub_at: int) -> list[Entry]:
        return [
            _long(254, 1), _long(256, pw), _long(257, ph), _short(258, 8, 8, 8),
            _short(259, 7 if jpeg else 1), _short(262, 6 if jpeg else 2), _long(273, data_at),
            _short(277, 3), _long(278, ph), _long(279, len(data)), _short(284, 1),
            _long(330, sub_at),
        ] + _dng_tags(orientation)  # fmt: skip

    # header | IFD0 (preview) | SubIFD (sensor) | preview data | sensor data
    size0 = len(_ifd(first_ifd(0, 0), 8))
    sub_at = 8 + size0
    size1 = len(_ifd(_cfa_entries(rw, rh, 0, len(cfa), 0), sub_at))
    data_at = sub_at + size1
    cfa_at = data_at + len(data) + len(data) % 2
    ifd0 = _ifd(first_ifd(data_at, sub_at), 8)
    ifd1 = _ifd(_cfa_entries(rw, rh, cfa_at, len(cfa), 0), sub_at)
    pad = b"\0" * (len(data) % 2)
    return b"II*\0" + struct.pack("<I", 8) + ifd0 + ifd1 + data + pad + cfa


def exif_with_orientation(value: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = value
    return ex.tobytes()


def save_heic(path: Path, rgb: np.ndarray, orientation: int = 1) -> Path:
    """An HEIC written by pillow-heif (x265), with an EXIF orientation when not 1."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    kw = {"exif": exif_with_orientation(orientation)} if orientation != 1 else {}
    Image.fromarray(rgb).save(path, "HEIF", quality=95, **kw)
    return path


def save_avif(path: Path, rgb: np.ndarray, orientation: int = 1) -> Path:
    """An AVIF written by Pillow's own plugin, with an EXIF orientation when not 1."""
    kw = {"exif": exif_with_orientation(orientation)} if orientation != 1 else {}
    Image.fromarray(rgb).save(path, "AVIF", quality=95, **kw)
    return path
