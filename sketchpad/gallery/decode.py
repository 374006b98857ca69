"""Decoding for ``images.load_photo`` (DESIGN §5, "Load"): Pillow images → (H, W, 3) uint8 RGB.

Nothing here opens a path or raises ``PhotoError``: ``images.load_photo`` opens the file and
turns the errors into ``PhotoError`` with one of the reason codes defined here. Deep images
are *scaled* (16-bit: 65535 → 255, float: [0, 1] → ×255, otherwise min–max), never clipped;
alpha, palette transparency and colour keys are composited on a fixed background (white);
the EXIF orientation is applied as ``ImageOps.exif_transpose`` applies it.

Formats: Pillow's JPEG, PNG, BMP, GIF, TIFF, WebP and AVIF (Pillow ≥ 11.3 reads AVIF itself),
and HEIF/HEIC through the pillow-heif plugin (libheif applies the file's rotation and mirror
while decoding and pillow-heif then reports orientation 1, so nothing is turned twice). Camera
RAW files go through ``sketchpad.gallery.raw`` (their embedded preview) before reaching here.

Size policy, all from the header before anything large is allocated:

- more than ``MAX_PIXELS`` (2²⁸ ≈ 268 Mpx: 200-megapixel camera photos pass) is refused;
- above ``DENSE_PIXELS`` (Pillow's own 89.5 Mpx warning level) a file must also hold at least
  one byte per ``MAX_PIXELS_PER_BYTE`` pixels: real photos of that size are tens of megabytes
  (a noisy 200 Mpx JPEG ≈ 60 MB: < 4 px per byte), a decompression bomb is a huge declared size
  in a small file (a PNG header claiming 100000² in 1 kB);
- a JPEG asked for at a smaller size (indexing, thumbnails) is decoded small by the DCT
  (``Image.draft``), other formats are reduced by whole factors right after decoding
  (``Image.reduce``), so a 200 Mpx JPEG never exists in memory at full size;
- a decode that still needs more than ``BIG_DECODE_BYTES`` runs one at a time (a lock), so
  parallel decoders cannot multiply the peak.
"""

from __future__ import annotations

import contextlib
import math
import re
import stat
import struct
import threading
import unicodedata
import warnings
from collections.abc import Callable
from typing import IO

import numpy as np
from PIL import Image

#: The Pillow formats a photo may be (MPO only where this Pillow still has it apart from JPEG;
#: AVIF where Pillow was built with libavif; HEIF where pillow-heif is installed).
PILLOW_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF", "TIFF", "WEBP", "AVIF", "HEIF")
#: Background under transparent pixels.
BACKGROUND_RGB = (255, 255, 255)
#: EXIF tag of the orientation (1–8).
ORIENTATION_TAG = 0x0112

#: Pixel limit of one photo, checked on the declared size before decoding (2²⁸ ≈ 268 Mpx).
MAX_PIXELS = 2**28
#: Above this many pixels (Pillow's default ``MAX_IMAGE_PIXELS``) the file size is checked too.
DENSE_PIXELS = 1024 * 1024 * 1024 // 4 // 3
#: At most this many declared pixels per byte of file above ``DENSE_PIXELS``.
MAX_PIXELS_PER_BYTE = 64
#: A decode needing more memory than this waits for any other such decode to finish.
BIG_DECODE_BYTES = 256 * 2**20

# Reason codes of PhotoError.code.
NOT_FOUND = "not-found"  #: no such file or folder, or a symbolic link to nothing
VANISHED = "vanished"  #: listed, then gone before it could be looked at
PERMISSION = "permission"  #: not allowed to read it (or to list the folder)
NOT_REGULAR = "not-regular"  #: a folder, FIFO, socket or device with a photo's name
NOT_A_FOLDER = "not-a-folder"  #: a folder was expected
LOOP = "loop"  #: a symbolic link leading back to a folder being scanned, or to itself
DUPLICATE = "duplicate"  #: the same file (or folder) as one already listed
IO_ERROR = "io-error"  #: the system failed to read it (EIO, …)
EMPTY = "empty"  #: zero bytes
UNSUPPORTED = "unsupported"  #: an image, but not of an allowed format or variant
TRUNCATED = "truncated"  #: the data ends early
CORRUPT = "corrupt"  #: not an image, or a damaged one
BOMB = "bomb"  #: more pixels than MAX_PIXELS (a possible decompression bomb)
MEMORY = "memory"  #: not enough memory to decode it
REASON_CODES = frozenset(
    {NOT_FOUND, VANISHED, PERMISSION, NOT_REGULAR, NOT_A_FOLDER, LOOP, DUPLICATE, IO_ERROR}
    | {EMPTY, UNSUPPORTED, TRUNCATED, CORRUPT, BOMB, MEMORY}
)

_OPEN_LOCK = threading.Lock()
_BIG_LOCK = threading.Lock()
_PLUGINS_LOCK = threading.Lock()
_plugins_registered = False
_ROWS_PIXELS = 1 << 20  # deep images are converted in blocks of about this many pixels
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_UINT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

# Magic numbers: (offset, bytes, format name, allowed). Only used to word an error message.
_SIGNATURES: tuple[tuple[int, bytes, str, bool], ...] = (
    (0, b"\xff\xd8\xff", "JPEG", True),
    (0, b"\x89PNG\r\n\x1a\n", "PNG", True),
    (0, b"GIF87a", "GIF", True),
    (0, b"GIF89a", "GIF", True),
    (0, b"BM", "BMP", True),
    (0, b"II*\x00", "TIFF", True),
    (0, b"MM\x00*", "TIFF", True),
    (0, b"II+\x00", "TIFF", True),
    (0, b"MM\x00+", "TIFF", True),
    (0, b"8BPS", "Photoshop (PSD)", False),
    (0, b"%!PS", "PostScript (EPS)", False),
    (0, b"\xc5\xd0\xd3\xc6", "PostScript (EPS)", False),
    (0, b"%PDF", "PDF", False),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000", False),
    (0, b"\xffO\xffQ", "JPEG 2000", False),
    (0, b"\xff\x0a", "JPEG XL", False),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL", False),
    (4, b"ftypheic", "HEIF", False),
    (4, b"ftypheix", "HEIF", False),
    (4, b"ftyphevc", "HEIF", False),
    (4, b"ftyphevx", "HEIF", False),
    (4, b"ftypheim", "HEIF", False),
    (4, b"ftypheis", "HEIF", False),
    (4, b"ftypmif1", "HEIF", False),
    (4, b"ftypmsf1", "HEIF", False),
    (4, b"ftypavif", "AVIF", False),
    (4, b"ftypavis", "AVIF", False),
    (4, b"ftypcrx ", "Canon CR3 (camera RAW)", False),
    (0, b"\x00\x00\x01\x00", "Windows icon (ICO)", False),
    (0, b"icns", "Apple icon (ICNS)", False),
    (0, b"qoif", "QOI", False),
    (0, b"DDS ", "DirectDraw surface (DDS)", False),
    (0, b"\xd7\xcd\xc6\x9a", "Windows metafile (WMF)", False),
    (0, b"gimp xcf", "GIMP (XCF)", False),
    (0, b"<?xml", "XML or SVG", False),
    (0, b"<svg", "SVG", False),
    (0, b"PK\x03\x04", "ZIP archive", False),
    (0, b"\x1f\x8b", "gzip archive", False),
)


def kind(mode: int) -> str:
    """A file type in words, from ``st_mode``."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def register_plugins() -> None:
    """Register the pillow-heif opener once (HEIF/HEIC), when pillow-heif is installed."""
    global _plugins_registered
    with _PLUGINS_LOCK:
        if _plugins_registered:
            return
        _plugins_registered = True
        try:
            import pillow_heif
        except ImportError:  # HEIF stays a clear "not an allowed format" skip
            return
        pillow_heif.register_heif_opener()


def allowed_formats() -> tuple[str, ...]:
    """The formats of ``PILLOW_FORMATS`` this Pillow can open (``Image.OPEN`` after init).

    ``Image.open(formats=...)`` must only name registered formats, and recent Pillow (13)
    reads MPO as part of JPEG: there is no separate ``"MPO"`` entry there.
    """
    register_plugins()
    Image.init()
    return tuple(f for f in PILLOW_FORMATS if f in Image.OPEN)


def sniff(header: bytes) -> tuple[str, bool] | None:
    """Name the format a file's first bytes announce, and whether it is allowed.

    Returns:
        ``(name, allowed)``, or ``None`` when the bytes match no known signature.
    """
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "WebP", True
    for offset, magic, name, allowed in _SIGNATURES:
        if header[offset : offset + len(magic)] == magic:
            return name, allowed or name in allowed_formats()
    return None


def riff_truncated(header: bytes, size: int) -> bool:
    """True when a RIFF (WebP) header declares more bytes than the file has."""
    if header[:4] != b"RIFF" or len(header) < 8:
        return False
    return struct.unpack("<I", header[4:8])[0] + 8 > size


def orientation(im: Image.Image) -> int:
    """The EXIF orientation (1–8) as ``ImageOps.exif_transpose`` reads it; 1 when absent,
    out of range or unreadable (a damaged EXIF block costs the orientation, not the photo)."""
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
        value = int(value)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error):
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(a: np.ndarray, value: int) -> np.ndarray:
    """Turn an (H, W, C) array upright for EXIF orientation ``value``, exactly as
    ``ImageOps.exif_transpose`` transposes the image. Returns a C-contiguous array."""
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda x: x[:, ::-1],  # FLIP_LEFT_RIGHT
        3: lambda x: x[::-1, ::-1],  # ROTATE_180
        4: lambda x: x[::-1],  # FLIP_TOP_BOTTOM
        5: lambda x: x.transpose(1, 0, 2),  # TRANSPOSE
        6: lambda x: np.rot90(x, -1),  # ROTATE_270 (counter-clockwise), i.e. 90° clockwise
        7: lambda x: x[::-1, ::-1].transpose(1, 0, 2),  # TRANSVERSE
        8: lambda x: np.rot90(x, 1),  # ROTATE_90 (counter-clockwise)
    }
    op = ops.get(value)
    return a if op is None else np.ascontiguousarray(op(a))


def to_rgb_array(im: Image.Image) -> np.ndarray:
    """A loaded Pillow image (any mode) → a new, writable (H, W, 3) uint8 RGB array.

    Raises:
        ValueError: Pillow cannot convert this mode to RGB.
        MemoryError: not enough memory for the result.
    """
    mode = im.mode
    if mode in _UINT16_MODES:
        a = np.asarray(im)
        grey = _blocks(a, lambda b: ((b.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8))
        return _grey_to_rgb(grey, _colour_key(a, im.info.get("transparency")))
    if mode == "I":
        return _grey_to_rgb(_minmax(np.asarray(im, dtype=np.int32)))
    if mode == "F":
        return _grey_to_rgb(_float_grey(np.asarray(im, dtype=np.float32)))
    if mode == "L" and "transparency" not in im.info:  # a shortcut: no RGB copy in Pillow
        return _grey_to_rgb(np.asarray(im, dtype=np.uint8))
    if mode == "P" or mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (*BACKGROUND_RGB, 255))
        im = Image.alpha_composite(background, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")
    out = np.array(im, dtype=np.uint8)
    if out.ndim != 3 or out.shape[2] != 3:  # pragma: no cover (Pillow's RGB is always 3 bands)
        raise ValueError(f"unexpected array shape {out.shape} for mode RGB")
    return out


#: natural_key's value: (text tokens and (length, digits) runs alternating, the exact name).
NaturalKey = tuple[tuple[str | tuple[int, str], ...], str]


def natural_key(name: str) -> NaturalKey:
    """Sort key for names: digit runs compare as numbers ("img2" < "img10"), letters without
    case (NFC-normalised, so macOS' decomposed names sort with the rest). Ties are broken by
    the exact name, so the order is total and deterministic."""
    s = unicodedata.normalize("NFC", name)
    parts: list[str | tuple[int, str]] = []
    for i, token in enumerate(_split_digits(s.casefold())):
        if i % 2:  # a digit run: by value, without int() (no digit-count limit)
            digits = "".join(str(unicodedata.digit(c)) for c in token).lstrip("0")
            parts.append((len(digits), digits))
        else:
            parts.append(token)
    return (tuple(parts), name)


_DIGIT_RUNS = re.compile(r"(\d+)")  # \d: Unicode category Nd, as str.isdecimal


def _split_digits(s: str) -> list[str]:
    """``s`` split into text and digit runs, alternating, starting (maybe empty) with text.
    (One regex split, not a loop per character: a folder scan sorts 10,000 names with it on a
    background thread that holds the GIL meanwhile.)"""
    out = _DIGIT_RUNS.split(s)
    if len(out) > 1 and not out[-1]:
        out.pop()  # a name ending in digits ends with its digit run
    return out


def _blocks(a: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` (→ uint8) to blocks of rows, so temporaries stay small for huge images."""
    out = np.empty(a.shape[:2], dtype=np.uint8)
    step = max(1, _ROWS_PIXELS // max(1, a.shape[1]))
    for y in range(0, a.shape[0], step):
        out[y : y + step] = fn(a[y : y + step])
    return out


def _minmax(a: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Stretch [lo, hi] (default: the data's range) to [0, 255], rounding; constant → 0."""
    lo = float(a.min()) if lo is None else lo
    hi = float(a.max()) if hi is None else hi
    if not hi > lo:
        return np.zeros(a.shape[:2], dtype=np.uint8)
    scale = 255.0 / (hi - lo)
    return _blocks(
        a, lambda b: np.clip(np.rint((b.astype(np.float64) - lo) * scale), 0, 255).astype(np.uint8)
    )


def _float_grey(a: np.ndarray) -> np.ndarray:
    """Float data: [0, 1] → ×255; any other range → min–max over the finite values.
    NaN becomes 0, +inf 255 and −inf 0."""
    finite = np.isfinite(a)
    if not finite.any():
        return np.where(a == np.inf, 255, 0).astype(np.uint8)
    lo, hi = float(a[finite].min()), float(a[finite].max())
    grey = _minmax(
        np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo),
        *((0.0, 1.0) if 0.0 <= lo and hi <= 1.0 else (lo, hi)),
    )
    grey[np.isnan(a)] = 0
    return grey


def _colour_key(a: np.ndarray, key: object) -> np.ndarray | None:
    """Pixels equal to a grey image's transparent value (PNG tRNS), or None."""
    if isinstance(key, int) and not isinstance(key, bool):
        mask = a == key
        return mask if mask.any() else None
    return None


def _grey_to_rgb(grey: np.ndarray, transparent: np.ndarray | None = None) -> np.ndarray:
    out = np.empty((*grey.shape, 3), dtype=np.uint8)
    out[...] = grey[:, :, None]
    if transparent is not None:
        out[transparent] = BACKGROUND_RGB
    return out


#: Formats whose decoder can scale while decoding (``Image.draft``).
DRAFT_FORMATS = frozenset({"JPEG", "MPO"})
#: ``reducing_gap`` of a shrink to a thumbnail (Pillow's thumbnail default): reduce by whole
#: factors while the image stays at least twice the target, then resample bicubically.
REDUCING_GAP = 2.0


def thumbnail_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) of a ``width`` × ``height`` image fitted in ``side`` × ``side``, aspect
    ratio kept, each at least 1 pixel; unchanged when it already fits (never enlarged)."""
    if width <= side and height <= side:
        return width, height
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_photo(
    fp: IO[bytes],
    limit: int,
    side: int | None = None,
    file_size: int | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Open ``fp`` (lazily), check the declared size, decode frame 0, convert, turn upright.

    Args:
        limit: the most pixels accepted (``MAX_PIXELS`` by default in ``load_photo``).
        side: shrink so that the long side is at most ``side`` (thumbnails, indexing): a JPEG
            is decoded at a reduced scale by the DCT itself (``Image.draft``, never smaller
            than the reducing gap asks), other formats are reduced by whole factors after
            decoding; then resampled bicubically, as ``Image.thumbnail`` does, before turning
            upright. None: full size.
        file_size: the file's size in bytes, for the density check above ``DENSE_PIXELS``.

    Returns:
        The (h, w, 3) uint8 RGB array, upright, and the photo's full upright (H, W).

    Raises:
        Image.DecompressionBombError: more than ``limit`` pixels, or too many for the file's
            size (checked on the header, before decoding).
        NotImplementedError: a mode that cannot be converted to RGB.
        ...: Pillow's own documented errors, unchanged.
    """
    # Pillow checks the size (and warns) while opening, frames included (GIF seeks to frame 0
    # there), against its process-wide MAX_IMAGE_PIXELS: set to our limit for this open, its
    # warning made an error. catch_warnings and the limit are process-wide state, so decoder
    # threads take turns here; opening reads headers only, the decoding below runs in parallel.
    # (Another thread's own Image.open in this instant sees our limit: Sketchpad's only other
    # Pillow reader, the bitmap-sketch importer, checks the size itself as well.)
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max(1, int(limit))
        try:
            opened = Image.open(fp, formats=allowed_formats())
        except Image.DecompressionBombError as e:  # Pillow's own: over twice its limit
            raise Image.DecompressionBombError(
                f"more than {2 * limit:,} pixels declared, over the limit of {limit:,}"
            ) from e
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with opened as im:
        w, h = im.size
        check_declared_size(w, h, limit, file_size)
        upright = orientation(im)
        full_hw = (w, h) if upright in _TRANSPOSING else (h, w)
        target = thumbnail_size(w, h, side) if side is not None else (w, h)
        if im.format in DRAFT_FORMATS and target != (w, h):
            tw, th = target
            im.draft(im.mode, (math.ceil(tw * REDUCING_GAP), math.ceil(th * REDUCING_GAP)))
        big = _decoded_bytes(im) > BIG_DECODE_BYTES
        with _BIG_LOCK if big else contextlib.nullcontext():
            im.load()  # the first frame only: no seek
            small = _reduced(im, target)
            try:
                rgb = to_rgb_array(small)
            except ValueError as e:
                raise NotImplementedError(f"cannot convert mode {im.mode} to RGB ({e})") from e
            del small
    if rgb.shape[1::-1] != target:
        resized = Image.fromarray(rgb).resize(
            target, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP
        )
        rgb = np.array(resized, dtype=np.uint8)
    return np.ascontiguousarray(apply_orientation(rgb, upright)), full_hw


#: EXIF orientations that swap width and height.
_TRANSPOSING = frozenset({5, 6, 7, 8})
#: Modes ``Image.reduce`` averages exactly like the resampling after it (no rescaling).
_REDUCE_MODES = frozenset({"RGB", "RGBA", "RGBX", "L", "LA"})


def check_declared_size(w: int, h: int, limit: int, file_size: int | None) -> None:
    """Refuse a declared size: not positive, over ``limit`` pixels, or, above
    ``DENSE_PIXELS``, more than ``MAX_PIXELS_PER_BYTE`` pixels per byte of the file.

    Raises:
        Image.DecompressionBombError: too many pixels (for the limit or for the file's size).
        ValueError: a zero or negative side.
    """
    if w * h > limit:
        raise Image.DecompressionBombError(f"{w}×{h} pixels, over the limit of {limit:,}")
    if w < 1 or h < 1:
        raise ValueError(f"an image of {w}×{h} pixels")
    if file_size is not None and w * h > DENSE_PIXELS and w * h > file_size * MAX_PIXELS_PER_BYTE:
        raise Image.DecompressionBombError(
            f"{w}×{h} pixels declared in a file of only {file_size:,} bytes (a real photo of "
            f"that size takes at least {w * h // MAX_PIXELS_PER_BYTE:,})"
        )


def _decoded_bytes(im: Image.Image) -> int:
    """Bytes Pillow allocates to decode ``im`` at its current (drafted) size."""
    w, h = im.size
    per_band = {"I": 4, "F": 4, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}.get(im.mode, 1)
    return w * h * max(1, len(im.getbands())) * per_band


def _reduced(im: Image.Image, target: tuple[int, int]) -> Image.Image:
    """``im`` reduced by the whole factor ``resize(reducing_gap=REDUCING_GAP)`` would use,
    so the full-size pixels are converted no further; ``im`` itself when there is none."""
    factor = int(min(im.size[0] / target[0], im.size[1] / target[1]) // REDUCING_GAP)
    if factor < 2 or im.mode not in _REDUCE_MODES or "transparency" in im.info:
        return im
    return im.reduce(factor)


def unidentified_reason(header: bytes) -> tuple[str, str]:
    """Reason and code for a file no allowed format recognised, from its first bytes."""
    found = sniff(header)
    if found is None:
        return "not an image (unknown or damaged data)", CORRUPT
    name, ok = found
    if ok:
        return f"a damaged or truncated {name} file (unreadable header)", CORRUPT
    allowed = ", ".join(allowed_formats())
    return f"a {name} file, not an allowed photo format ({allowed})", UNSUPPORTED


def decoder_error_reason(e: OSError, header: bytes, size: int) -> tuple[str, str]:
    """Reason and code for an OSError while decoding: truncated, unsupported, corrupt, I/O."""
    text = str(e)
    if e.errno is not None:
        return f"cannot read it ({e.strerror or text})", IO_ERROR
    if "truncated" in text.lower() or riff_truncated(header, size):
        return f"the file is truncated ({text})", TRUNCATED
    if "not available" in text or "not supported" in text or "unsupported" in text.lower():
        return f"a variant Pillow cannot decode ({text})", UNSUPPORTED
    return f"damaged image data ({text})", CORRUPT
