"""Export files: safe, collision-free names, the photo folder's protection, image bytes.

File names keep the photo's sub-folders (``trip/day 1/IMG 1.jpg`` → ``masks/trip/day 1/IMG
1.png``), each part made safe on every file system (no ``<>:"|?*\\`` or control characters,
no trailing dots or spaces, no device names such as ``CON``, at most :data:`MAX_STEM_BYTES`).
Stems that coincide, also on a case-insensitive disk (``a.jpg``, ``a.png``, ``A.jpg``), become
``a``, ``a-2``, ``a-3``; a folder named like one of our files (``x.png``) gets a trailing ``_``.
"""

from __future__ import annotations

import os
import re
import unicodedata
from io import BytesIO
from pathlib import Path, PurePath, PurePosixPath

import numpy as np
from PIL import Image

#: Sub-folders of an export that hold files per photo (the photo folder may never be one).
MASKS_DIR = "masks"
OVERLAYS_DIR = "overlays"
#: Longest stem (UTF-8 bytes) of an exported file: room for "-NNNN" and ".png" within the
#: 255 bytes most file systems allow per name.
MAX_STEM_BYTES = 200
#: JPEG quality of the overlays.
JPEG_QUALITY = 90

_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]|[\ud800-\udfff]')
_DEVICE = re.compile(r"(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?", re.IGNORECASE)
_FILE_SUFFIXES = (".png", ".jpg")


def is_inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it, through symbolic links and on
    case-insensitive disks (existing ancestors are compared by device and inode)."""
    p, f = path.expanduser().resolve(), folder.expanduser().resolve()
    try:
        folder_st = os.stat(f)
    except OSError:  # no folder: nothing in it to protect, but compare the names anyway
        return p == f or f in p.parents
    for a in (p, *p.parents):
        try:
            if os.path.samestat(os.stat(a), folder_st):
                return True
        except OSError:
            continue  # not created yet: look further up
    return False


def check_out_dir(out_dir: Path, photo_folder: Path, *, what: str = "The export folder") -> None:
    """Refuse an export folder that would write into the photo folder (DESIGN §7).

    Args:
        out_dir: where the export goes (need not exist).
        photo_folder: the photo folder (read-only to us).
        what: how the message names ``out_dir`` (e.g. ``"--out"``).

    Raises:
        ValueError: ``out_dir`` is the photo folder or inside it, or the photo folder sits
            where the export writes its ``masks/`` or ``overlays/``.
    """
    out, folder = Path(out_dir), Path(photo_folder)
    why = "is inside" if is_inside(out, folder) else None
    for sub in (MASKS_DIR, OVERLAYS_DIR):
        why = why or (f"would write its {sub}/ into" if is_inside(folder, out / sub) else None)
    if why:
        raise ValueError(
            f"{what} {out} {why} the photo folder {folder}; "
            "Sketchpad never writes into photo folders: choose another folder"
        )


def png_bytes(array: np.ndarray) -> bytes:
    """PNG of an (H, W) uint8 grey or (H, W, 3) uint8 RGB image."""
    buf = BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(array: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG of an (H, W, 3) uint8 RGB image."""
    buf = BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# -- file names -------------------------------------------------------------------------------
def _safe_part(part: str) -> str:
    """One path part made safe on Windows, macOS and Linux alike, at most MAX_STEM_BYTES."""
    s = _UNSAFE.sub("_", unicodedata.normalize("NFC", part)).rstrip(" .")
    if not s:
        return "_"
    if _DEVICE.fullmatch(s):
        s = "_" + s
    raw = s.encode("utf-8")
    if len(raw) > MAX_STEM_BYTES:
        s = raw[:MAX_STEM_BYTES].decode("utf-8", "ignore").rstrip(" .") or "_"
    return s


def _relative_parts(name: str) -> tuple[str, ...]:
    """The parts of a photo's name; ValueError for one that is absolute or leaves the folder."""
    p = PurePath(name)
    if not name or p.anchor or p.is_absolute():
        raise ValueError(f"photo name {name!r} must be relative to the photo folder")
    parts = tuple(x for x in p.parts if x != ".")
    if not parts or ".." in parts:
        raise ValueError(f"photo name {name!r} is not inside the photo folder")
    return parts


class UniqueStems:
    """Collision-free export stems: the photo's sub-folders, then its stem, made safe."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def stem_for(self, name: str) -> PurePosixPath:
        """``masks/`` + the result + ``.png`` is this photo's mask (never given twice)."""
        *dirs, file = _relative_parts(name)
        folders = []
        for d in dirs:
            safe = _safe_part(d)
            if safe.casefold().endswith(_FILE_SUFFIXES):
                safe += "_"  # a folder may never share a name with a file of ours
            folders.append(safe)
        base = _safe_part(PurePath(file).stem)
        parent = PurePosixPath(*folders)
        stem, k = base, 2
        while self._key(parent / stem) in self._taken:
            stem, k = f"{base}-{k}", k + 1
        self._taken.add(self._key(parent / stem))
        return parent / stem

    @staticmethod
    def _key(p: PurePosixPath) -> str:
        return str(p).casefold()  # the parts are NFC already
