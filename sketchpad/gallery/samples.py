"""Photo files as people have them, generated: what phones and cameras write (HEIC, AVIF, a
camera RAW with or without its embedded preview, 100-200-megapixel noisy JPEGs), names as old
media give them, and a corpus of bad input (empty, random, truncated, bombs, FIFOs, loops…).

For ``sketchpad bench library`` and the tests: one implementation of each generator.

The DNG is written by hand (no library here writes DNG): a little-endian TIFF whose first IFD
is the preview (a baseline JPEG, compression 7, or uncompressed RGB) with the DNG tags and a
SubIFD holding 16-bit Bayer (CFA) sensor data, which is how cameras and Adobe's converter lay
DNGs out; LibRaw (rawpy) reads it like a camera's file. Without a preview, the sensor data is
the first IFD itself.
"""

from __future__ import annotations

import io
import os
import struct
import unicodedata
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

_SHORT, _LONG, _BYTE, _ASCII, _SRATIONAL = 3, 4, 1, 2, 10

#: One TIFF tag: (tag, type, count, value bytes).
Entry = tuple[int, int, int, bytes]


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
    """An EXIF block holding only the orientation tag."""
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


def png_declaring(w: int, h: int) -> bytes:
    """A tiny PNG whose header declares w × h (its pixel data is a few bytes): a bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_declaring(w: int, h: int) -> bytes:
    """A tiny JPEG (8×8 of noise) whose frame header declares w × h: a bomb."""
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def noisy_jpeg(path: Path, hw: tuple[int, int], quality: int = 85, seed: int = 0) -> Path:
    """A big JPEG of noise (tiles of 512² random pixels), which compresses like a real photo's
    texture: ~0.35 bytes per pixel at quality 85 (a 200 Mpx file of ~70 MB). Encoded by OpenCV
    straight from the array (Pillow would copy the 600 MB first)."""
    import cv2

    h, w = hw
    tile = np.random.default_rng(seed).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    big = np.tile(tile, (-(-h // 512), -(-w // 512), 1))[:h, :w]
    if not cv2.imwrite(str(path), np.ascontiguousarray(big), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"cannot write {path}")
    return path


def _rgb(h: int = 24, w: int = 32, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def bad_corpus(f: Path) -> set[str]:
    """Every kind of bad input the scan and decoder meet, next to good photos, written into
    the new folder ``f`` (read recursively); returns the names (relative, "/"-separated) that
    must be indexed, each exactly once (``truncated.jpg`` may be read or reported)."""
    (f / "sub").mkdir(parents=True)
    rgb = _rgb()

    def img(name: str, a: np.ndarray, **kw: object) -> None:
        Image.fromarray(a).save(f / name, **kw)  # type: ignore[arg-type]

    img("good.jpg", rgb)
    img("1x1.png", rgb[:1, :1])
    img("10000x10.png", np.zeros((10, 10000, 3), np.uint8))
    deep = np.random.default_rng(1).integers(0, 65536, (16, 16)).astype(np.uint16)
    Image.fromarray(deep).save(f / "deep16.png")
    Image.fromarray(rgb).convert("CMYK").save(f / "cmyk.jpg")
    Image.fromarray(rgb).convert("P").save(f / "palette.png", transparency=0)
    Image.fromarray(rgb).convert("LA").save(f / "grey_alpha.png")
    Image.fromarray(rgb).convert("RGBA").save(f / "rgba.png")
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(f / "anim.gif", save_all=True, append_images=frames[1:])
    img("ünï cödé 🐄.png", rgb)
    img("sub/deep.png", rgb)
    Image.fromarray(rgb).save(f / "really_png.jpg", format="PNG")  # wrong extension
    (f / "zero.jpg").write_bytes(b"")
    (f / "random.png").write_bytes(np.random.default_rng(1).bytes(500))
    whole = (f / "good.jpg").read_bytes()
    (f / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (f / "bomb.png").write_bytes(png_declaring(100000, 100000))
    (f / "bomb.jpg").write_bytes(jpeg_declaring(60000, 60000))
    (f / "dir.jpg").mkdir()  # recursive: a folder with a photo's name is a folder
    img("dir.jpg/inside.png", rgb)
    os.mkfifo(f / "fifo.jpg")
    os.symlink(f / "missing.png", f / "dangling.png")
    os.symlink(f, f / "sub" / "loop")  # a symlink loop back to the top
    os.link(f / "good.jpg", f / "hardlink.jpg")  # the same file twice
    os.symlink(f / "rgba.png", f / "alias.png")
    return {
        "good.jpg", "1x1.png", "10000x10.png", "deep16.png", "cmyk.jpg", "palette.png",
        "grey_alpha.png", "rgba.png", "anim.gif", "ünï cödé 🐄.png", "sub/deep.png",
        "really_png.jpg", "truncated.jpg", "dir.jpg/inside.png",
    }  # fmt: skip


def real_library(f: Path, *, big: bool = True) -> dict[str, str | None]:
    """A photo folder as people have them, written into the new folder ``f``: names from old
    media (undecodable bytes), macOS (NFD), emoji; HEIC, AVIF, camera RAW with and without a
    preview; 108 and 200 Mpx noisy JPEGs (``big``); the bad-input corpus in ``bad/``.

    Returns:
        Expected outcome per file name (relative, "/"-separated, as ``str``): None for a photo
        that must be indexed, else the ``PhotoError`` code of its skip (files the scan skips
        for what they are — FIFOs, links, duplicates — are not listed).
    """
    f.mkdir(parents=True)
    expect: dict[str, str | None] = {}
    raw_names = [b"caf\xe9 (latin-1).jpg", b"\xff\xfe\xfd.jpg", "🐄🌻 summer.jpg".encode()]
    raw_names += [
        unicodedata.normalize(form, "Crème brûlée.jpg").encode() for form in ("NFC", "NFD")
    ]
    for i, raw in enumerate(raw_names):
        Image.fromarray(_rgb(60, 80, i)).save(os.path.join(os.fsencode(f), raw), "JPEG")
        expect[os.fsdecode(raw)] = None
    save_heic(f / "IMG_0001.HEIC", _rgb(96, 128), orientation=6)
    save_avif(f / "IMG_0002.avif", _rgb(96, 128, 2), orientation=8)
    (f / "DSC_0003.DNG").write_bytes(dng_bytes(_rgb(120, 160, 3), orientation=6))
    (f / "IMG_0004.CR2").write_bytes(dng_bytes(_rgb(120, 160, 4)))  # TIFF-based, as CR2s are
    (f / "no_preview.dng").write_bytes(dng_bytes(None))
    expect.update({"IMG_0001.HEIC": None, "IMG_0002.avif": None, "DSC_0003.DNG": None})
    expect.update({"IMG_0004.CR2": None, "no_preview.dng": "unsupported"})
    if big:
        noisy_jpeg(f / "108mpx.jpg", (9000, 12000))
        noisy_jpeg(f / "200mpx.jpg", (12240, 16320), seed=1)
        expect.update({"108mpx.jpg": None, "200mpx.jpg": None})
    ok = bad_corpus(f / "bad")
    codes = {"zero.jpg": "empty", "random.png": "corrupt", "bomb.png": "bomb", "bomb.jpg": "bomb"}
    expect.update({f"bad/{n}": None for n in ok if n != "truncated.jpg"})
    expect.update({f"bad/{n}": code for n, code in codes.items()})
    return expect
