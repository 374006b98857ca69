"""Photo folders, read safely (DESIGN §5): which files are photos, and how one is decoded.

- ``scan_folder`` / ``scan_photos``: regular files only (a FIFO or a folder named ``x.jpg`` is
  skipped, and never opened), no symlink loops (device + inode tracked), each file listed once
  however many links lead to it, an extension allow-list, natural sort.
- ``load_photo``: Pillow only (mixing decoders disagrees about EXIF), formats restricted (JPEG,
  PNG, BMP, GIF, TIFF, WebP, AVIF, HEIF/HEIC; camera RAW through its embedded preview, see
  ``raw``), the declared size checked before decoding (see ``decode``: up to 268 Mpx, bombs
  refused from the header), EXIF orientation applied, 16-bit and float images scaled (not
  clipped), palette/alpha composited on white, first frame only; ``load_photo_at`` decodes at
  the size needed and says the photo's full size. Truncated files stay errors
  (``LOAD_TRUNCATED_IMAGES`` is never set). Pillow's documented failures (``OSError,
  SyntaxError, MemoryError, ValueError, NotImplementedError, OverflowError``, the bomb error)
  become a ``PhotoError``; anything else is a bug of ours and propagates. OpenCV is not used
  here, so there is no ``cv2.error``.

Every file skipped is a ``PhotoError`` with a reason ``code`` (one of ``REASON_CODES``) and a
message naming the file (as ``sketchpad.names.display_name`` shows it: any name prints).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sketchpad.gallery import decode, raw
from sketchpad.gallery.decode import (
    BACKGROUND_RGB,
    BOMB,
    CORRUPT,
    DUPLICATE,
    EMPTY,
    IO_ERROR,
    LOOP,
    MAX_PIXELS,
    MEMORY,
    NOT_A_FOLDER,
    NOT_FOUND,
    NOT_REGULAR,
    PERMISSION,
    PILLOW_FORMATS,
    REASON_CODES,
    TRUNCATED,
    UNSUPPORTED,
    VANISHED,
    kind,
    natural_key,
)
from sketchpad.names import display_name

__all__ = [
    "BACKGROUND_RGB",
    "BOMB",
    "CORRUPT",
    "DUPLICATE",
    "EMPTY",
    "IO_ERROR",
    "LOOP",
    "MAX_PIXELS",
    "MEMORY",
    "NOT_A_FOLDER",
    "NOT_FOUND",
    "NOT_REGULAR",
    "PERMISSION",
    "TRUNCATED",
    "UNSUPPORTED",
    "VANISHED",
    "PHOTO_EXTENSIONS",
    "PILLOW_FORMATS",
    "REASON_CODES",
    "PhotoError",
    "ScanResult",
    "expand_photo_args",
    "is_photo_name",
    "load_photo",
    "load_photo_at",
    "natural_key",
    "scan_folder",
    "scan_photos",
]

#: Extensions we open (lower case): Pillow's formats, then HEIF/AVIF, then camera RAW.
PHOTO_EXTENSIONS = (
    (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
    + (".heic", ".heif", ".hif", ".avif")
    + raw.RAW_EXTENSIONS
)

_O_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
_O_FLAGS |= getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _shown(path: Path | str) -> str:
    """A path as text that can always be printed (``sketchpad.names.display_name``)."""
    return display_name(path)


class PhotoError(Exception):
    """A photo (or folder) that cannot be read.

    Attributes:
        path: The file or folder, as given or found.
        reason: What is wrong, in words.
        code: One of ``REASON_CODES`` (e.g. ``"truncated"``), for programs.
    """

    def __init__(self, path: Path | str, reason: str, code: str = CORRUPT) -> None:
        if code not in REASON_CODES:
            raise ValueError(f"unknown PhotoError code {code!r}")
        super().__init__(f"{_shown(path)}: {reason}")
        self.path = Path(path)
        self.reason = reason
        self.code = code

    def __reduce__(self) -> tuple[type[PhotoError], tuple[Path, str, str]]:
        return (type(self), (self.path, self.reason, self.code))


@dataclass(frozen=True)
class ScanResult:
    """What a folder scan found.

    Attributes:
        photos: Photo files, naturally sorted by their path below the folder, each file once.
        skipped: Files (and folders) with a photo's name that were left out, with the reason;
            naturally sorted by path.
    """

    photos: tuple[Path, ...]
    skipped: tuple[PhotoError, ...]


def is_photo_name(path: Path | str) -> bool:
    """Whether a file name has one of ``PHOTO_EXTENSIONS`` (any case)."""
    name = path.name if isinstance(path, Path) else os.path.basename(path)
    i = name.rfind(".")  # Path.suffix's rule, without building a Path (a scan asks per file)
    return 0 < i < len(name) - 1 and name[i:].lower() in PHOTO_EXTENSIONS


def _os_problem(path: Path, e: OSError, *, listed: bool = False, link: bool = False) -> PhotoError:
    """An OSError from stat/open/scandir → a PhotoError with its code.

    Args:
        listed: ``path`` was just listed by its folder (so "no such file" means it vanished).
        link: ``path`` is a symbolic link (so "no such file" may mean its target is missing).
    """
    why = e.strerror or str(e)
    if isinstance(e, FileNotFoundError):
        if link or (not listed and os.path.islink(path)):
            try:
                return PhotoError(
                    path, f"a broken symbolic link (to {os.readlink(path)})", NOT_FOUND
                )
            except OSError:
                pass
        if listed:
            return PhotoError(path, "vanished while the folder was being scanned", VANISHED)
        return PhotoError(path, "no such file or folder", NOT_FOUND)
    if isinstance(e, PermissionError):
        return PhotoError(path, f"cannot read it: permission denied ({why})", PERMISSION)
    if e.errno == errno.ELOOP:
        return PhotoError(path, "a loop of symbolic links", LOOP)
    if isinstance(e, NotADirectoryError) and listed:
        return PhotoError(path, "changed while the folder was being scanned", VANISHED)
    return PhotoError(path, f"cannot read it ({why})", IO_ERROR)


def _folder_key(folder: Path) -> tuple[int, int]:
    """Device and inode of the folder to scan.

    Raises:
        PhotoError: it does not exist, cannot be looked at, or is not a folder.
    """
    try:
        st = os.stat(folder)
    except OSError as e:
        raise _os_problem(folder, e) from e
    if not stat.S_ISDIR(st.st_mode):
        raise PhotoError(folder, f"not a folder ({kind(st.st_mode)})", NOT_A_FOLDER)
    return st.st_dev, st.st_ino


@dataclass(frozen=True)
class _Candidate:
    path: Path
    key: tuple[int, int]  # device, inode
    via_link: bool
    order: tuple[object, ...]  # natural order below the root (computed once)


class _Scan:
    """One folder scan. Real folders are walked before symlinked ones, so a file or folder
    reachable both ways is listed under its real path; each (device, inode) is visited once."""

    def __init__(self, root: Path, recursive: bool) -> None:
        self.root = root
        self.recursive = recursive
        self.folders: dict[tuple[int, int], Path] = {}
        self.candidates: list[_Candidate] = []
        self.skipped: list[PhotoError] = []
        self._orders: dict[Path, tuple[object, ...]] = {}  # folders' and skipped files' keys

    def run(self) -> list[_Candidate]:
        """Walk; the photos found (each file once, natural order), problems in ``skipped``."""
        real: deque[tuple[Path, tuple[int, int], bool]] = deque()
        linked: deque[tuple[Path, tuple[int, int], bool]] = deque()
        real.append((self.root, _folder_key(self.root), False))
        while real or linked:
            folder, key, via_link = real.popleft() if real else linked.popleft()
            seen = self.folders.get(key)
            if seen is not None:
                if folder.is_relative_to(seen):
                    why = f"a symbolic link back to {_shown(seen)} (a loop): not followed"
                    self.skipped.append(PhotoError(folder, why, LOOP))
                else:
                    why = f"the same folder as {_shown(seen)}: scanned once"
                    self.skipped.append(PhotoError(folder, why, DUPLICATE))
                continue
            self.folders[key] = folder
            for sub in self._list(folder, via_link):
                (linked if sub[2] else real).append(sub)
        return self._unique()

    def _list(self, folder: Path, via_link: bool) -> list[tuple[Path, tuple[int, int], bool]]:
        """Look at one folder's entries; returns the subfolders to walk."""
        try:
            with os.scandir(folder) as it:
                entries = sorted(((natural_key(e.name), e) for e in it), key=lambda t: t[0])
        except OSError as e:
            if folder == self.root:
                raise _os_problem(folder, e) from e
            self.skipped.append(_os_problem(folder, e, listed=True))
            return []
        subfolders = []
        prefix = self._order(folder)
        for name_key, entry in entries:
            photo = is_photo_name(entry.name)
            if not photo and not (self.recursive and _is_dir(entry)):
                continue  # only photo names, and folders to recurse into, are looked at
            path = Path(entry.path)
            link = _is_link(entry)
            try:
                st = entry.stat()  # follows links; stat never opens the file
            except OSError as e:
                self.skipped.append(_os_problem(path, e, listed=True, link=link))
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISDIR(st.st_mode):
                if self.recursive:
                    subfolders.append((path, key, via_link or link))
                else:
                    self.skipped.append(PhotoError(path, "a folder, not a photo", NOT_REGULAR))
            elif not stat.S_ISREG(st.st_mode):
                why = f"{kind(st.st_mode)}, not a photo file: not opened"
                self.skipped.append(PhotoError(path, why, NOT_REGULAR))
            elif st.st_size == 0:
                self.skipped.append(PhotoError(path, "an empty file (0 bytes)", EMPTY))
            else:
                self.candidates.append(_Candidate(path, key, via_link or link, (*prefix, name_key)))
        return subfolders

    def _unique(self) -> list[_Candidate]:
        """Each file once: a real path wins over a symlinked one, then the natural order."""
        kept: dict[tuple[int, int], Path] = {}
        photos: list[_Candidate] = []
        for c in sorted(self.candidates, key=lambda c: (c.via_link, c.order)):
            if c.key in kept:
                why = f"the same file as {_shown(kept[c.key])}: listed once"
                self.skipped.append(PhotoError(c.path, why, DUPLICATE))
            else:
                kept[c.key] = c.path
                photos.append(c)
        photos.sort(key=lambda c: c.order)
        return photos

    def _order(self, path: Path) -> tuple[object, ...]:
        """Natural order of the path below the root, component by component (remembered)."""
        key = self._orders.get(path)
        if key is None:
            key = self._orders[path] = tuple(
                natural_key(p) for p in path.relative_to(self.root).parts
            )
        return key


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # pragma: no cover (DirEntry.is_dir swallows most errors itself)
        return False


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:  # pragma: no cover (only where the file system gives no file types)
        return False


def _scan(folder: Path | str, recursive: bool) -> tuple[list[_Candidate], list[PhotoError]]:
    scan = _Scan(Path(folder), recursive)
    photos = scan.run()
    skipped = sorted(scan.skipped, key=lambda e: scan._order(e.path))
    return photos, skipped


def scan_folder(folder: Path | str, recursive: bool = False) -> ScanResult:
    """Photo files in ``folder`` (and below it when ``recursive``), and what was skipped.

    Only names with one of ``PHOTO_EXTENSIONS`` are considered (other files are ignored
    silently). Files are never opened: a FIFO named ``x.jpg`` cannot block the scan. Symbolic
    links are followed, but each folder and each file is visited once (device + inode), so
    loops end and two links to one photo list it once.

    Raises:
        PhotoError: ``folder`` itself does not exist, is not a folder, or cannot be listed.
    """
    photos, skipped = _scan(folder, recursive)
    return ScanResult(tuple(c.path for c in photos), tuple(skipped))


def scan_photos(folder: Path | str, recursive: bool = False) -> list[Path]:
    """The photo files of ``scan_folder`` (naturally sorted, each once), without the report.

    Raises:
        PhotoError: ``folder`` itself does not exist, is not a folder, or cannot be listed.
    """
    return list(scan_folder(folder, recursive).photos)


def expand_photo_args(items: Iterable[str | Path]) -> tuple[list[Path], list[PhotoError]]:
    """Command-line photo arguments (folders and files) → photo files, plus the problems.

    Folders are scanned (not recursively); files are taken whatever their extension (the
    decoder decides). A file reached twice (named twice, or named and inside a named folder)
    is listed once; the repeat is reported as ``"duplicate"``.
    """
    photos: list[Path] = []
    problems: list[PhotoError] = []
    kept: dict[tuple[int, int], Path] = {}

    def add(path: Path, key: tuple[int, int]) -> None:
        if key in kept:
            why = f"the same file as {_shown(kept[key])}: listed once"
            problems.append(PhotoError(path, why, DUPLICATE))
        else:
            kept[key] = path
            photos.append(path)

    for item in items:
        p = Path(item)
        try:
            st = os.stat(p)
        except OSError as e:
            problems.append(_os_problem(p, e))
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                found, skipped = _scan(p, recursive=False)
            except PhotoError as e:
                problems.append(e)
                continue
            problems += skipped
            for c in found:
                add(c.path, c.key)
        elif not stat.S_ISREG(st.st_mode):
            problems.append(PhotoError(p, f"{kind(st.st_mode)}, not a photo file", NOT_REGULAR))
        elif st.st_size == 0:
            problems.append(PhotoError(p, "an empty file (0 bytes)", EMPTY))
        else:
            add(p, (st.st_dev, st.st_ino))
    return photos, problems


def load_photo(
    path: Path | str, *, max_pixels: int | None = None, side: int | None = None
) -> np.ndarray:
    """Decode a photo as a new (H, W, 3) uint8 RGB array, upright (EXIF orientation applied).

    Args:
        path: The file. Only JPEG, PNG, BMP, GIF, TIFF, WebP, AVIF and HEIF are decoded,
            whatever the extension says (of an animation or multi-page file, the first frame);
            a camera RAW (by its extension, or a CR3 by its header) through its preview.
        max_pixels: Refuse images declaring more pixels (default ``MAX_PIXELS``).
        side: Decode small, the long side at most ``side`` (thumbnails, indexing; see
            ``decode.decode_photo``). None: full size.

    Raises:
        PhotoError: with ``code`` one of ``REASON_CODES``: missing, not a regular file, empty,
            not an allowed format, truncated, corrupt, too many pixels, out of memory …
    """
    return load_photo_at(path, side, max_pixels=max_pixels)[0]


def load_photo_at(
    path: Path | str, side: int | None, *, max_pixels: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`load_photo` decoding at most ``side`` on the long side (None: full size), and
    the photo's full upright (H, W) (what a letterbox computed on the small image must be
    mapped back onto).

    Raises:
        PhotoError: as :func:`load_photo`.
    """
    path = Path(path)
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    try:
        st = os.stat(path)  # look before opening: never open a FIFO or a device
        if not stat.S_ISREG(st.st_mode):
            raise PhotoError(path, f"{kind(st.st_mode)}, not a photo file", NOT_REGULAR)
        fd = os.open(path, _O_FLAGS)
    except OSError as e:
        raise _os_problem(path, e) from e
    with open(fd, "rb", closefd=True) as fp:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # replaced between stat and open
                raise PhotoError(path, f"{kind(st.st_mode)}, not a photo file", NOT_REGULAR)
            if st.st_size == 0:
                raise PhotoError(path, "an empty file (0 bytes)", EMPTY)
            header = fp.read(32)
            fp.seek(0)
        except OSError as e:
            raise _os_problem(path, e) from e
        try:
            if raw.is_raw_name(path) or raw.is_raw_header(header):
                return raw.decode_raw(fp, limit, side, st.st_size)
            return decode.decode_photo(fp, limit, side, st.st_size)
        except raw.RawError as e:
            raise PhotoError(path, e.reason, e.code) from e
        except UnidentifiedImageError as e:
            raise PhotoError(path, *decode.unidentified_reason(header)) from e
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise PhotoError(path, f"refused as a possible decompression bomb ({e})", BOMB) from e
        except MemoryError as e:
            raise PhotoError(path, "not enough memory to decode it", MEMORY) from e
        except OSError as e:
            raise PhotoError(path, *decode.decoder_error_reason(e, header, st.st_size)) from e
        except (SyntaxError, ValueError, OverflowError) as e:
            raise PhotoError(path, f"damaged or not a valid image ({e})", CORRUPT) from e
        except NotImplementedError as e:
            raise PhotoError(path, f"a variant Pillow cannot decode ({e})", UNSUPPORTED) from e
