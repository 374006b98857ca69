"""Reading and writing sketch files; the format is chosen by the file extension.

==================  ==============  =====  =====  =========================================
format              extensions      read   write  notes
==================  ==============  =====  =====  =========================================
Sketchpad JSON      .json           yes    yes    lossless, versioned (``formats.json_format``)
SVG                 .svg            yes    yes    strokes only, exact points
PNG image           .png            yes    yes    raster-only sketch on reading
Quick, Draw!        .ndjson         yes    yes    one drawing per line; SPG part labels
Sketch-RNN          .npz            yes    yes    stroke-3 int16, sandboxed unpickling
FS-COCO vector      .npy            yes    yes    (N, 3) absolute x, y, pen
JPEG image          .jpg .jpeg      yes    no     raster-only sketch
==================  ==============  =====  =====  =========================================

Every failure to read, and every sketch a format cannot hold, raises
:class:`SketchFileError` naming the file and the problem. Writes are atomic
(:func:`sketchpad.atomic.atomic_write_bytes`); a failed write raises
:class:`sketchpad.atomic.SaveError` and leaves any previous file intact.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write_bytes
from .formats import bitmap, fscoco, json_format, quickdraw, sketchrnn, svg
from .formats._common import MAX_FILE_BYTES, MAX_POINTS, SketchFileError, open_for_reading
from .formats.json_format import sketch_from_json_bytes, sketch_to_json_bytes
from .model import Sketch

__all__ = [
    "FORMATS",
    "MAX_FILE_BYTES",
    "MAX_POINTS",
    "SUPPORTED_READ",
    "SUPPORTED_WRITE",
    "SketchFileError",
    "SketchFormat",
    "count_drawings",
    "file_dialog_filter",
    "read_sketch",
    "sketch_from_json_bytes",
    "sketch_to_json_bytes",
    "write_sketch",
]


@dataclass(frozen=True)
class SketchFormat:
    """One file format: how to read, count and write it."""

    name: str  # shown in file dialogs
    extensions: tuple[str, ...]  # lower case, with the dot
    read: Callable[[Path, int], Sketch]  # (path, drawing index) → sketch
    count: Callable[[Path], int] | None = None  # None: one drawing per file
    encode: Callable[[Sketch, Path], bytes] | None = None  # None: read-only format


#: In the order file dialogs list them (the first writable one is the default).
FORMATS: tuple[SketchFormat, ...] = (
    SketchFormat(
        "Sketchpad JSON",
        json_format.EXTENSIONS,
        json_format.read_json,
        encode=json_format.encode_json,
    ),
    SketchFormat("SVG", svg.EXTENSIONS, svg.read_svg, encode=svg.encode_svg),
    SketchFormat("PNG image", (".png",), bitmap.read_bitmap, encode=bitmap.encode_png),
    SketchFormat(
        "Quick, Draw!",
        quickdraw.EXTENSIONS,
        quickdraw.read_ndjson,
        count=quickdraw.count_ndjson,
        encode=quickdraw.encode_ndjson,
    ),
    SketchFormat(
        "Sketch-RNN",
        sketchrnn.EXTENSIONS,
        sketchrnn.read_npz,
        count=sketchrnn.count_npz,
        encode=sketchrnn.encode_npz,
    ),
    SketchFormat(
        "FS-COCO vector", fscoco.EXTENSIONS, fscoco.read_fscoco, encode=fscoco.encode_fscoco
    ),
    SketchFormat("JPEG image", (".jpg", ".jpeg"), bitmap.read_bitmap),
)

SUPPORTED_READ: tuple[str, ...] = tuple(e for f in FORMATS for e in f.extensions)
SUPPORTED_WRITE: tuple[str, ...] = tuple(
    e for f in FORMATS if f.encode is not None for e in f.extensions
)


def _format_for(path: Path, *, for_write: bool) -> SketchFormat:
    ext = path.suffix.lower()
    for fmt in FORMATS:
        if ext in fmt.extensions and (fmt.encode is not None or not for_write):
            return fmt
    supported = SUPPORTED_WRITE if for_write else SUPPORTED_READ
    what = f"the file type {ext!r}" if ext else "a file without an extension"
    verb = "write" if for_write else "read"
    raise SketchFileError(
        path, f"Sketchpad cannot {verb} {what}; use one of {', '.join(supported)}"
    )


def read_sketch(path: str | os.PathLike[str], index: int = 0) -> Sketch:
    """Read drawing ``index`` of a sketch file.

    Args:
        path: a file with one of the extensions in ``SUPPORTED_READ`` (any case).
        index: which drawing of a multi-drawing file (ndjson lines; npz drawings in
            the order train, valid, test, then other keys sorted); 0 otherwise.

    Returns:
        The sketch, in canvas coordinates (pixels, y down). Foreign formats note what
        was skipped in ``metadata["import_warnings"]`` (a list of str).

    Raises:
        SketchFileError: any problem: missing, unreadable or damaged file, invalid
            data, an index out of range (the message names the count), ...
    """
    p = Path(path)
    fmt = _format_for(p, for_write=False)
    try:
        return fmt.read(p, index)
    except MemoryError as e:
        raise SketchFileError(p, "is too large to read into memory") from e
    except RecursionError as e:
        raise SketchFileError(p, "is nested too deeply to read") from e


def count_drawings(path: str | os.PathLike[str]) -> int:
    """How many drawings the file holds, without decoding them all.

    Raises:
        SketchFileError: the file is missing, unreadable or not in a known format.
    """
    p = Path(path)
    fmt = _format_for(p, for_write=False)
    if fmt.count is not None:
        return fmt.count(p)
    open_for_reading(p).close()  # the same errors as read_sketch for a missing file
    return 1


def write_sketch(sketch: Sketch, path: str | os.PathLike[str]) -> None:
    """Write ``sketch`` in the format of ``path``'s extension (``SUPPORTED_WRITE``), atomically.

    Raises:
        SketchFileError: the extension is not writable, or the format cannot hold this
            sketch (e.g. a raster-only sketch as SVG); nothing was written.
        SaveError: the write itself failed (disk full, read-only, ...); the old file
            is intact.
    """
    p = Path(path)
    fmt = _format_for(p, for_write=True)
    assert fmt.encode is not None
    atomic_write_bytes(p, fmt.encode(sketch, p))


def file_dialog_filter(for_write: bool) -> str:
    """A Qt file-dialog filter string, e.g. ``"Sketches (*.json *.svg ...);;SVG (*.svg);;..."``.

    Reading lists every supported file first, then each format, then all files;
    writing lists the writable formats, Sketchpad JSON first.
    """
    formats = [f for f in FORMATS if f.encode is not None or not for_write]

    def globs(exts: tuple[str, ...]) -> str:
        return " ".join(f"*{e}" for e in exts)

    entries = [f"{f.name} ({globs(f.extensions)})" for f in formats]
    if not for_write:
        entries = [f"Sketches ({globs(SUPPORTED_READ)})", *entries, "All files (*)"]
    return ";;".join(entries)
