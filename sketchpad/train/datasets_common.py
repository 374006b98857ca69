"""What the training-dataset readers share: the ``warn`` callback, lazy decoding, small files.

Listing a dataset only looks at names (and reads the few small text files a sample needs);
sketches and photos are decoded when a sample is used. Every decoding function here returns
None after reporting the file and the reason through ``warn``, so a training loop skips a bad
file and goes on.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sketchpad.gallery.images import PhotoError, load_photo
from sketchpad.sketch.io import SketchFileError, read_sketch
from sketchpad.sketch.model import Sketch
from sketchpad.train.datasets_scene import DatasetError

__all__ = [
    "DatasetError",
    "Warn",
    "class_key",
    "load_photo_file",
    "load_sketch_file",
    "log_warning",
    "pair_by_name",
    "read_small_text",
    "subfolders",
]

Warn = Callable[[str], None]

_log = logging.getLogger("sketchpad.train.datasets")

#: Largest caption or list file read (bytes).
MAX_TEXT_BYTES = 64 * 1024 * 1024


def log_warning(message: str) -> None:
    """The default ``warn``: a WARNING on the ``sketchpad.train.datasets`` logger."""
    _log.warning("%s", message)


@functools.lru_cache(maxsize=4096)
def class_key(name: str) -> str:
    """A class name reduced to lower-case letters and digits, so that the spellings of one
    class match: ``car_(sedan)`` = ``car (sedan)``, ``hot-air_balloon`` = ``hot air balloon``."""
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def subfolders(folder: Path) -> list[Path]:
    """The folders directly in ``folder`` (hidden ones left out), sorted by name."""
    with os.scandir(folder) as it:
        return sorted(
            (Path(e.path) for e in it if e.is_dir() and not e.name.startswith(".")),
            key=lambda p: p.name,
        )


def read_small_text(path: Path, warn: Warn, *, what: str = "text") -> str | None:
    """The UTF-8 text of a small regular file, or None after reporting why it cannot be read."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            warn(f"skipped {path}: not a regular file")
            return None
        if st.st_size > MAX_TEXT_BYTES:
            warn(f"skipped {path}: {st.st_size} bytes is too large for a {what} file")
            return None
        with open(path, "rb") as f:
            data = f.read(MAX_TEXT_BYTES + 1)
    except OSError as e:
        warn(f"skipped {path}: cannot be read ({e.strerror or e})")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        warn(f"skipped {path}: the {what} is not UTF-8 (byte {e.start})")
        return None


def load_sketch_file(path: Path, warn: Warn) -> Sketch | None:
    """Decode a sketch file (any format ``sketchpad.sketch.io`` reads), or None.

    What the reader noted but coped with (e.g. a truncated SVG, read up to the damage) is
    passed on to ``warn`` too, and the sketch is returned.
    """
    try:
        sketch = read_sketch(path)
    except SketchFileError as e:
        warn(f"skipped {e}")
        return None
    for note in sketch.metadata.get("import_warnings", ()):
        warn(f"{path}: {note}")
    return sketch


def load_photo_file(path: Path, warn: Warn) -> np.ndarray | None:
    """Decode a photo as (H, W, 3) uint8 RGB with the gallery's safe loader, or None."""
    try:
        return load_photo(path)
    except PhotoError as e:
        warn(f"skipped {e}")
        return None


def pair_by_name(
    left: Sequence[Path], right: Sequence[Path], warn: Warn, *, by_order: bool, what: str
) -> list[tuple[Path, Path | None]]:
    """Pair each ``left`` path with the ``right`` path of the same stem.

    Args:
        left, right: sorted paths.
        by_order: when no stems match at all and the counts agree, pair in sorted order
            instead (the convention of the SSS code for FSCOCO-Seg folders).
        what: what ``right`` holds, for messages ("caption", "photo").

    Returns:
        One pair per ``left`` path; ``None`` where no partner was found (reported).
    """
    by_stem = {p.stem: p for p in right}
    matched = [(p, by_stem.get(p.stem)) for p in left]
    if by_order and left and not any(r is not None for _, r in matched):
        if len(left) == len(right):
            return list(zip(left, right, strict=True))
        warn(
            f"{left[0].parent}: {len(left)} files but {len(right)} {what} files in "
            f"{right[0].parent if right else 'the matching folder'}, and no names match"
        )
    for p, r in matched:
        if r is None:
            warn(f"{p}: no {what} file named {p.stem}.*")
    return matched
