"""What every sketch file format shares: the error type, limits and safe reading.

Readers never trust a file: every failure becomes a :class:`SketchFileError` that
names the file and the problem. Writers build the whole file in memory and hand
it to :func:`sketchpad.atomic.atomic_write_bytes` (DESIGN §7).
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import numpy as np

from ..model import Sketch, Stroke

#: Most points one drawing may hold (all strokes together); more is refused.
MAX_POINTS = 1_000_000
#: Largest file read into memory in one piece (ndjson is streamed, see MAX_LINE_BYTES).
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Longest single line of an ndjson file.
MAX_LINE_BYTES = 64 * 1024 * 1024

MEMORY_PATH = Path("<memory>")


class SketchFileError(ValueError):
    """Reading or writing a sketch file failed.

    Attributes:
        path: the file (``<memory>`` for bytes that came from no file).
        reason: a readable explanation, e.g. "is not valid JSON: ...".
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


def os_reason(e: OSError) -> str:
    """A short readable reason for an OSError met while reading."""
    if isinstance(e, FileNotFoundError) or e.errno == errno.ENOENT:
        return "file not found"
    if isinstance(e, IsADirectoryError) or e.errno == errno.EISDIR:
        return "is a folder, not a file"
    if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"could not be read: {e.strerror or e}"


def open_for_reading(path: Path) -> BinaryIO:
    """Open a regular file for binary reading, or raise SketchFileError.

    FIFOs and devices are refused up front: reading one could block forever.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        raise SketchFileError(path, os_reason(e)) from e
    if stat.S_ISDIR(st.st_mode):
        raise SketchFileError(path, "is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise SketchFileError(path, "is not a regular file")
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as e:
        raise SketchFileError(path, os_reason(e)) from e


def read_file_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole file, refusing folders, special files and files over ``limit`` bytes."""
    with open_for_reading(path) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise SketchFileError(path, f"is {_mib(size)}, over the {_mib(limit)} size limit")
            data = f.read(limit + 1)
        except OSError as e:
            raise SketchFileError(path, os_reason(e)) from e
    if len(data) > limit:  # the file grew while we read it
        raise SketchFileError(path, f"is over the {_mib(limit)} size limit")
    return data


def iter_lines(path: Path, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The file's lines (bytes, newline kept), streamed; a line over ``limit`` is an error."""
    with open_for_reading(path) as f:
        lineno = 0
        while True:
            try:
                line = f.readline(limit + 1)
            except OSError as e:
                raise SketchFileError(path, os_reason(e)) from e
            if not line:
                return
            lineno += 1
            if len(line) > limit:
                raise SketchFileError(path, f"line {lineno} is longer than {_mib(limit)}")
            yield line


def loads_strict(path: Path, data: bytes, where: str = "", bom: bool = True) -> Any:
    """Decode UTF-8 JSON, refusing NaN/Infinity; every failure is a SketchFileError.

    Args:
        where: prefix for messages about part of a file, e.g. "line 3 ".
        bom: accept a UTF-8 byte-order mark (only at the very start of a file).
    """
    try:
        text = data.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as e:
        raise SketchFileError(path, f"{where}is not UTF-8 text (byte {e.start})") from e

    def refuse_constant(name: str) -> NoReturn:
        raise SketchFileError(path, f"{where}contains {name}, which is not a valid number")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as e:
        raise SketchFileError(path, f"{where}is not valid JSON (damaged or truncated?): {e}") from e
    except RecursionError as e:
        raise SketchFileError(path, f"{where}has JSON nested too deeply") from e


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def check_point_count(path: Path, n: int) -> None:
    """Refuse drawings with more than MAX_POINTS points."""
    if n > MAX_POINTS:
        raise SketchFileError(
            path, f"has {n:,} points, more than the {MAX_POINTS:,} points a sketch may hold"
        )


def check_index(path: Path, index: int, count: int) -> None:
    """Refuse an out-of-range drawing index, naming how many drawings the file has."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise SketchFileError(path, f"drawing index must be an integer, got {index!r}")
    if not 0 <= index < count:
        noun = "drawing" if count == 1 else "drawings"
        raise SketchFileError(path, f"has {count} {noun}; drawing index {index} is out of range")


def make_stroke(path: Path, where: str, **fields: Any) -> Stroke:
    """A Stroke, with its validation error turned into a SketchFileError naming ``where``."""
    try:
        return Stroke(**fields)
    except (ValueError, TypeError, OverflowError) as e:
        raise SketchFileError(path, f"{where}: {e}") from e


def make_sketch(path: Path, **fields: Any) -> Sketch:
    """A Sketch, with its validation error turned into a SketchFileError."""
    try:
        return Sketch(**fields)
    except (ValueError, TypeError, OverflowError) as e:
        raise SketchFileError(path, str(e)) from e


def require_strokes(sketch: Sketch, path: Path, format_name: str) -> None:
    """Writers of vector formats refuse sketches they cannot represent."""
    if sketch.is_raster:
        raise SketchFileError(
            path,
            f"this sketch is a raster image with no strokes, so it cannot be saved as "
            f"{format_name}; save it as PNG or Sketchpad JSON instead",
        )
    if not sketch.strokes:
        raise SketchFileError(path, f"the sketch has no strokes to save as {format_name}")


def with_warnings(metadata: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """``metadata`` with ``import_warnings`` set when there are any."""
    if warnings:
        metadata["import_warnings"] = list(warnings)
    return metadata


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _is_exact_int(v: float) -> bool:
    """True when ``int(v)`` reads back as the same float64 (so not -0.0, not huge)."""
    return v.is_integer() and abs(v) < 2**53 and not (v == 0 and math.copysign(1.0, v) < 0)


def format_number(v: float) -> str:
    """Shortest text that reads back as exactly ``v``: ints without '.0', else repr."""
    if _is_exact_int(v):
        return str(int(v))
    if not math.isfinite(v):
        raise ValueError(f"cannot write the non-finite number {v!r}")
    return repr(v)


def json_number(v: float) -> int | float:
    """``v`` as a JSON value: an int when integral (compact, exact), else the float."""
    return int(v) if _is_exact_int(v) else v


def json_numbers(a: np.ndarray) -> list[Any]:
    """Nested lists of ``a``'s values for JSON: integral values as ints, others as floats."""
    a = np.asarray(a, dtype=np.float64)
    integral = (np.mod(a, 1) == 0) & (np.abs(a) < 2**53) & ~((a == 0) & np.signbit(a))
    if integral.all():
        return a.astype(np.int64).tolist()
    if not integral.any():
        return a.tolist()
    mixed = a.astype(object)
    mixed[integral] = a[integral].astype(np.int64).astype(object)
    return mixed.tolist()
