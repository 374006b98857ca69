"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, …) read through their embedded preview.

Every camera stores a rendered preview (usually a full-size or near full-size JPEG) next to the
sensor data; LibRaw, through ``rawpy``, extracts it without demosaicing anything, in a fraction
of a RAW development's time and memory. That preview is what the camera showed, which is what
a search needs. A JPEG preview is decoded like any JPEG (``decode.decode_photo``: draft
scaling, size checks, EXIF orientation: LibRaw writes the RAW's orientation into a preview that
has no EXIF of its own, as dcraw does); an uncompressed preview is turned by the RAW's
orientation (LibRaw's ``flip``).

Files without a usable preview, RAW variants LibRaw cannot read, or a missing ``rawpy`` are
skipped with a ``PhotoError`` whose reason says which; nothing here raises anything else.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO, BinaryIO, cast

import numpy as np

from sketchpad.gallery import decode
from sketchpad.gallery.decode import CORRUPT, MEMORY, TRUNCATED, UNSUPPORTED

#: RAW extensions (lower case) read through rawpy.
RAW_EXTENSIONS = (
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2",
    ".raf", ".orf", ".rw2", ".pef", ".srw",
)  # fmt: skip

#: LibRaw's ``flip`` → the EXIF orientation that turns the image the same way.
_FLIP_TO_EXIF = {0: 1, 3: 3, 5: 8, 6: 6}


class RawError(Exception):
    """Why a RAW file cannot be read: ``reason`` in words and a ``decode`` reason ``code``."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def is_raw_name(path: Path | str) -> bool:
    """Whether a file name has one of ``RAW_EXTENSIONS`` (any case)."""
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def is_raw_header(header: bytes) -> bool:
    """Whether a file's first bytes are a RAW that Pillow would misread (Canon CR3; the
    TIFF-based RAWs are recognised by their extension, as Pillow reads them as TIFF)."""
    return header[4:12] == b"ftypcrx "


def decode_raw(
    fp: IO[bytes], limit: int, side: int | None, file_size: int | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """The embedded preview of the RAW in ``fp`` as ``decode.decode_photo`` returns a photo.

    Raises:
        RawError: no rawpy, not a RAW LibRaw reads, no preview, a preview of an unknown kind,
            damaged data, out of memory.
        Image.DecompressionBombError, ...: as ``decode.decode_photo`` for the preview JPEG.
    """
    try:
        import rawpy
    except ImportError as e:
        raise RawError(
            "a camera RAW file; reading RAW files needs the rawpy package (pip install rawpy)",
            UNSUPPORTED,
        ) from e
    try:
        with rawpy.imread(cast(BinaryIO, fp)) as raw:
            flip = int(raw.sizes.flip)
            thumb = raw.extract_thumb()
    except rawpy.LibRawNoThumbnailError as e:
        raise RawError(
            "a camera RAW file without an embedded preview (Sketchpad reads RAW files through "
            "their preview: export a JPEG from your RAW software)",
            UNSUPPORTED,
        ) from e
    except rawpy.LibRawUnsupportedThumbnailError as e:
        raise RawError(
            f"a camera RAW file whose embedded preview is of a kind LibRaw cannot extract ({e})",
            UNSUPPORTED,
        ) from e
    except rawpy.LibRawFileUnsupportedError as e:
        raise RawError(
            f"not a camera RAW file LibRaw can read, or a damaged one ({_text(e)})", CORRUPT
        ) from e
    except (rawpy.LibRawUnsufficientMemoryError, rawpy.LibRawMemPoolOverflowError, MemoryError):
        raise RawError("not enough memory to read its preview", MEMORY) from None
    except rawpy.LibRawIOError as e:
        raise RawError(f"the file is truncated or unreadable ({_text(e)})", TRUNCATED) from e
    except (rawpy.LibRawError, ValueError, OSError) as e:
        raise RawError(f"damaged camera RAW data ({_text(e)})", CORRUPT) from e
    if thumb.format == rawpy.ThumbFormat.JPEG:
        # LibRaw gives a preview without EXIF one holding the RAW's orientation: turned by it.
        data = bytes(thumb.data)
        return decode.decode_photo(io.BytesIO(data), limit, side, len(data))
    upright = _FLIP_TO_EXIF.get(flip, 1)
    bitmap = np.asarray(thumb.data)
    if bitmap.ndim != 3 or bitmap.shape[2] != 3 or bitmap.dtype != np.uint8:
        raise RawError(f"an embedded preview of an unexpected shape {bitmap.shape}", UNSUPPORTED)
    h, w = bitmap.shape[:2]
    decode.check_declared_size(w, h, limit, file_size)
    target = decode.thumbnail_size(w, h, side) if side is not None else (w, h)
    if target != (w, h):
        from PIL import Image

        bitmap = np.asarray(
            Image.fromarray(bitmap).resize(
                target, Image.Resampling.BICUBIC, reducing_gap=decode.REDUCING_GAP
            )
        )
    full_hw = (w, h) if upright in (5, 6, 7, 8) else (h, w)
    return np.ascontiguousarray(decode.apply_orientation(bitmap, upright)), full_hw


def _text(e: BaseException) -> str:
    text = e.args[0] if e.args else str(e)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
