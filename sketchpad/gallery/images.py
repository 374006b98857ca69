"""Photo folders, read safely (DESIGN §5): which files are photos, and how one is decoded.

- ``scan_photos``: regular files only (a FIFO or a directory named ``x.jpg`` is skipped), no
  symlink loops (device + inode tracked), an extension allow-list, natural sort.
- ``load_photo``: Pillow only (mixing decoders disagrees about EXIF), formats restricted, the
  decompression-bomb warning made an error, EXIF orientation applied, 16-bit and float images
  scaled (not clipped), palette/alpha composited on white, first frame only. Every documented
  failure becomes a ``PhotoError`` naming the file and the reason.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: Extensions we open (lower case), and the Pillow formats they may contain.
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
PILLOW_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF", "TIFF", "WEBP")
#: Background for transparent photos.
BACKGROUND_RGB = (255, 255, 255)
#: Pillow's own limit (pixels) is kept; beyond it the bomb *warning* becomes an error here.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 178_956_970


class PhotoError(Exception):
    """A photo that cannot be read: ``path`` and a readable ``reason``."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def natural_key(name: str) -> list[object]:
    """Sort key: digits compare as numbers ("img2" < "img10"), case-insensitive."""
    return [int(t) if t.isdigit() else t.casefold() for t in re.split(r"(\d+)", name)]


def is_photo_name(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_EXTENSIONS


def scan_photos(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Photo files in ``folder`` (and below when ``recursive``), naturally sorted by their
    path relative to ``folder``. Symlinked files count once; symlink loops are not followed.

    Raises:
        PhotoError: the folder does not exist or cannot be listed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PhotoError(folder, "not a folder")
    seen: set[tuple[int, int]] = set()
    found: list[Path] = []

    def walk(d: Path) -> None:
        try:
            st = d.stat()
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen:
            return  # a loop, or a folder reached twice
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = list(os.scandir(d))
        except OSError as e:
            if d == folder:
                raise PhotoError(folder, f"cannot list the folder ({e.strerror})") from e
            return
        for entry in entries:
            p = Path(entry.path)
            try:
                st = entry.stat()  # follows symlinks
            except OSError:
                continue  # a dangling link
            if stat.S_ISDIR(st.st_mode):
                if recursive:
                    walk(p)
            elif stat.S_ISREG(st.st_mode) and is_photo_name(p):
                key = (st.st_dev, st.st_ino)
                if key not in seen:
                    seen.add(key)
                    found.append(p)

    walk(folder)
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def expand_photo_args(items: Iterable[str | Path]) -> tuple[list[Path], list[PhotoError]]:
    """Command-line photo arguments (folders and files) → photo files, plus the problems."""
    photos: list[Path] = []
    problems: list[PhotoError] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            try:
                photos += scan_photos(p)
            except PhotoError as e:
                problems.append(e)
        elif p.is_file():
            photos.append(p)
        else:
            problems.append(PhotoError(p, "no such file or folder"))
    return photos, problems


def _to_uint8_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode → (H, W, 3) uint8 RGB; deep images are scaled, not clipped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(im, dtype=np.float64) / 65535.0
        return _grey_to_rgb(a)
    if im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if im.mode == "I" and lo >= 0 and hi <= 65535:
            a = a / (65535.0 if hi > 255 else 255.0)
        elif im.mode == "F" and lo >= 0 and hi <= 1.0:
            pass
        else:
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        return _grey_to_rgb(np.nan_to_num(a))
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode in ("RGB", "L") and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (*BACKGROUND_RGB, 255))
        im = Image.alpha_composite(bg, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _grey_to_rgb(a: np.ndarray) -> np.ndarray:
    g = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def _formats() -> tuple[str, ...]:
    """The allowed formats this Pillow knows (MPO is part of JPEG in recent versions)."""
    Image.init()
    return tuple(f for f in PILLOW_FORMATS if f in Image.OPEN)


def load_photo(path: Path) -> np.ndarray:
    """Decode a photo as (H, W, 3) uint8 RGB, upright (EXIF orientation applied).

    Raises:
        PhotoError: not a readable image of an allowed format, too large, truncated …
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_formats()) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise PhotoError(path, f"too large ({w}×{h} pixels)")
                im.seek(0)
                im = ImageOps.exif_transpose(im)
                im.load()
                return _to_uint8_rgb(im)
    except PhotoError:
        raise
    except FileNotFoundError as e:
        raise PhotoError(path, "no such file") from e
    except PermissionError as e:
        raise PhotoError(path, "permission denied") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PhotoError(path, f"refused: decompression bomb ({e})") from e
    except Image.UnidentifiedImageError as e:
        raise PhotoError(path, "not an image of a supported format") from e
    except (OSError, SyntaxError, ValueError, NotImplementedError, OverflowError) as e:
        raise PhotoError(path, f"cannot decode ({e})") from e
    except MemoryError as e:
        raise PhotoError(path, "not enough memory to decode it") from e
