"""Sketch-RNN ``.npz``: stroke-3 drawings (REFERENCE §3, Quick, Draw!).

Each drawing is an int16 array of shape (n, 3): (Δx, Δy, p), where p = 1 means the
pen lifts after this point. A file holds ``train``, ``valid`` and ``test`` arrays of
drawings; drawing ``index`` counts through train, valid, test, then any other keys
sorted by name.

The published files store each split as a *pickled* object array, and ``np.load(...,
allow_pickle=True)`` on a file from the internet would run whatever the pickle says.
So the reader opens the zip itself, reads each member's ``.npy`` header, and unpickles
object arrays with an unpickler that can build nothing but NumPy arrays and dtypes;
anything else (``os.system``, ...) is refused before it is called. Only int16 (n, 3)
drawings are accepted.

Coordinates become absolute (cumulative sums), shifted so the drawing's bounding box
starts at ``MARGIN``; the canvas is the extent plus a margin on each side.

Writing is lossy: coordinates are rounded to integers, times, pressure, labels,
widths, colours and metadata are dropped. The file holds one drawing, stored as
Sketch-RNN does, in a ``train`` key: a 1-element object array holding the int16
stroke-3 array (written with ``np.savez_compressed``).
"""

from __future__ import annotations

import codecs
import io
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..model import Sketch, Stroke
from ._common import (
    MAX_FILE_BYTES,
    SketchFileError,
    check_index,
    check_point_count,
    make_sketch,
    make_stroke,
    read_file_bytes,
    require_strokes,
)
from ._npy import NpyHeader, read_header, read_plain_array

EXTENSIONS = (".npz",)

#: Canvas pixels left free around an imported drawing.
MARGIN = 8
#: Largest uncompressed member read from a zip (guards against zip bombs).
MAX_MEMBER_BYTES = 4 * MAX_FILE_BYTES
_SPLITS = ("train", "valid", "test")
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)

# The only callables a pickled object array of int16 drawings needs, under the module
# names NumPy 1.x (numpy.core) and 2.x (numpy._core) write. Taken from NumPy's own
# reducers so that the deprecated ``numpy.core`` is never imported.
_RECONSTRUCT = np.ndarray.__reduce__(np.empty(0))[0]
_SCALAR = np.int16(0).__reduce__()[0]
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Protocol-2 pickles written by Python 3 rebuild raw bytes with codecs.encode(str, enc):
    # a pure conversion, safe to allow.
    ("_codecs", "encode"): codecs.encode,
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else; ``find_class`` refuses every other global."""

    def __init__(self, data: bytes, path: Path, what: str) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")
        self._path = path
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise SketchFileError(
                self._path,
                f"{self._what}: refused to load pickled data that calls {module}.{name} "
                "(only NumPy int16 stroke-3 arrays are accepted; the file may be malicious)",
            ) from None


# ---------------------------------------------------------------- reading


def count_npz(path: Path) -> int:
    """Number of drawings in all keys, from the members' headers only (nothing unpickled)."""
    with _open_zip(path) as zf:
        return sum(n for _, _, n in _members(path, zf))


def read_npz(path: Path, index: int = 0) -> Sketch:
    """The ``index``-th drawing (train, valid, test, then other keys sorted)."""
    with _open_zip(path) as zf:
        members = _members(path, zf)
        check_index(path, index, sum(n for _, _, n in members))
        start = 0
        for key, info, n in members:
            if index < start + n:
                drawings = _read_member(path, zf, key, info)
                i = index - start
                return _drawing_to_sketch(path, drawings[i], key, i, index)
            start += n
    raise AssertionError("unreachable")  # check_index raised


def _open_zip(path: Path) -> zipfile.ZipFile:
    data = read_file_bytes(path)
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as e:
        raise SketchFileError(
            path, f"is not a valid .npz (zip) file (damaged or truncated?): {e}"
        ) from e


def _members(path: Path, zf: zipfile.ZipFile) -> list[tuple[str, zipfile.ZipInfo, int]]:
    """(key, zip entry, number of drawings) in reading order; headers checked."""
    found: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        if info.is_dir():
            continue
        if not info.filename.endswith(".npy"):
            raise SketchFileError(path, f"holds {info.filename!r}, which is not a NumPy array")
        found[info.filename[:-4]] = info
    order = [k for k in _SPLITS if k in found] + sorted(k for k in found if k not in _SPLITS)
    members = []
    for key in order:
        info = found[key]
        what = f"array {key!r}"
        try:
            with zf.open(info) as f:
                header = read_header(f, path, what)
        except _ZIP_ERRORS as e:
            raise SketchFileError(
                path, f"{what} could not be read from the zip (damaged?): {e}"
            ) from e
        members.append((key, info, _drawings_in(path, what, header)))
    if not members:
        raise SketchFileError(path, "holds no arrays (an empty .npz file)")
    return members


def _is_int16(dtype: np.dtype) -> bool:
    return dtype.kind == "i" and dtype.itemsize == 2


def _drawings_in(path: Path, what: str, h: NpyHeader) -> int:
    if h.dtype.hasobject and len(h.shape) == 1:
        return h.shape[0]  # the usual layout: one int16 (n, 3) array per element
    if _is_int16(h.dtype) and len(h.shape) == 2 and h.shape[1] == 3:
        return 1  # a single drawing stored as a plain array
    if _is_int16(h.dtype) and len(h.shape) == 3 and h.shape[2] == 3:
        return h.shape[0]  # equal-length drawings that NumPy stacked into one array
    raise SketchFileError(
        path, f"{what} is {h.describe()}; only int16 stroke-3 arrays (n, 3) are accepted"
    )


def _read_member(
    path: Path, zf: zipfile.ZipFile, key: str, info: zipfile.ZipInfo
) -> list[np.ndarray]:
    """The drawings of one member, each an int16 (n, 3) array (checked)."""
    what = f"array {key!r}"
    if info.file_size > MAX_MEMBER_BYTES:
        raise SketchFileError(path, f"{what} is too large to read ({info.file_size:,} bytes)")
    try:
        with zf.open(info) as f:
            data = f.read(MAX_MEMBER_BYTES + 1)
    except _ZIP_ERRORS as e:
        raise SketchFileError(path, f"{what} could not be read from the zip (damaged?): {e}") from e
    if len(data) > MAX_MEMBER_BYTES:
        raise SketchFileError(path, f"{what} is too large to read")
    f = io.BytesIO(data)
    header = read_header(f, path, what)
    if not header.dtype.hasobject:
        _, array = read_plain_array(data, path, what)
        return [array] if array.ndim == 2 else list(array)
    array = _unpickle(data[f.tell() :], path, what)
    if (
        not isinstance(array, np.ndarray)
        or array.shape != header.shape
        or not array.dtype.hasobject
    ):
        raise SketchFileError(path, f"{what}: the pickled data does not match its header")
    drawings = list(array)
    for i, d in enumerate(drawings):
        if not isinstance(d, np.ndarray):
            raise SketchFileError(
                path,
                f"{what}[{i}] is a {type(d).__name__}; only int16 stroke-3 arrays are accepted",
            )
        if not _is_int16(d.dtype) or d.ndim != 2 or d.shape[1] != 3:
            raise SketchFileError(
                path,
                f"{what}[{i}] is a {d.dtype} array of shape {d.shape}; "
                "only int16 stroke-3 arrays (n, 3) are accepted",
            )
    return drawings


def _unpickle(data: bytes, path: Path, what: str) -> Any:
    try:
        return _ArraysOnlyUnpickler(data, path, what).load()
    except SketchFileError:
        raise
    except Exception as e:  # noqa: BLE001 - untrusted pickle: any failure means a bad file
        raise SketchFileError(
            path, f"{what}: its pickled data could not be read (damaged?): {e}"
        ) from e


def _drawing_to_sketch(path: Path, d: np.ndarray, key: str, i: int, index: int) -> Sketch:
    where = f"drawing {index} ({key}[{i}])"
    if d.shape[0] == 0:
        raise SketchFileError(path, f"{where} has no points")
    check_point_count(path, d.shape[0])
    d = d.astype(np.int64)  # cumulative sums of int16 overflow
    pen = d[:, 2]
    bad = np.setdiff1d(np.unique(pen), [0, 1])
    if bad.size:
        raise SketchFileError(path, f"{where}: pen values must be 0 or 1, found {int(bad[0])}")
    xy = np.cumsum(d[:, :2], axis=0)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    xy = (xy - lo + MARGIN).astype(np.float64)
    pieces = np.split(xy, np.flatnonzero(pen == 1) + 1)
    strokes: list[Stroke] = [
        make_stroke(path, f"{where}, stroke {k}", points=p)
        for k, p in enumerate(q for q in pieces if len(q))
    ]
    extent = hi - lo
    metadata = {
        "source_format": "sketchrnn",
        "source_file": path.name,
        "source_index": index,
        "split": key,
        "split_index": i,
    }
    return make_sketch(
        path,
        strokes=tuple(strokes),
        width=float(extent[0]) + 2 * MARGIN,
        height=float(extent[1]) + 2 * MARGIN,
        metadata=metadata,
    )


# ---------------------------------------------------------------- writing


def to_stroke3(sketch: Sketch, path: Path) -> np.ndarray:
    """(n, 3) int16 stroke-3 of the sketch: rounded coordinates relative to the bbox corner."""
    require_strokes(sketch, path, "Sketch-RNN .npz")
    xy = np.round(sketch.all_points()).astype(np.int64)
    xy -= xy.min(axis=0)
    deltas = np.diff(xy, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    if np.abs(deltas).max() > np.iinfo(np.int16).max:
        raise SketchFileError(
            path, "the drawing is too large for Sketch-RNN stroke-3 (steps must fit in int16)"
        )
    pen = np.zeros(len(xy), dtype=np.int64)
    pen[np.cumsum([len(s) for s in sketch.strokes]) - 1] = 1
    return np.column_stack([deltas, pen]).astype(np.int16)


def encode_npz(sketch: Sketch, path: Path) -> bytes:
    """``.npz`` bytes with one drawing in ``train`` (lossy; see the module notes)."""
    drawings = np.empty(1, dtype=object)
    drawings[0] = to_stroke3(sketch, path)
    buf = io.BytesIO()
    np.savez_compressed(buf, train=drawings)  # pickles our own object array
    return buf.getvalue()
