"""Reading ``.npy`` data that nobody vouches for: headers first, sizes checked, no pickle.

Used by the Sketch-RNN (``.npz`` members) and FS-COCO (``.npy``) readers.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npformat

from ._common import SketchFileError


@dataclass(frozen=True)
class NpyHeader:
    """What an ``.npy`` header promises: shape, memory order and dtype."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        return f"a {self.dtype} array of shape {self.shape}"


def read_header(f: IO[bytes], path: Path, what: str) -> NpyHeader:
    """Read the magic string and header of ``f`` (left at the start of the data)."""
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(f)
        else:
            raise SketchFileError(path, f"{what} uses .npy format version {version}, not supported")
    except SketchFileError:
        raise
    except Exception as e:  # noqa: BLE001 - NumPy parses the header with tokenize and
        # ast.literal_eval, whose failures on damaged text include TokenError, MemoryError...
        raise SketchFileError(
            path, f"{what} is not a valid NumPy array (damaged or truncated?): {e}"
        ) from e
    return NpyHeader(tuple(int(n) for n in shape), bool(fortran), np.dtype(dtype))


def read_plain_array(data: bytes, path: Path, what: str) -> tuple[NpyHeader, np.ndarray]:
    """Parse a whole ``.npy`` (non-object dtype) held in ``data``; never unpickles.

    The data length is checked against the header before anything is allocated, so a
    header that promises a huge array costs nothing.
    """
    f = io.BytesIO(data)
    header = read_header(f, path, what)
    if header.dtype.hasobject:
        raise SketchFileError(
            path, f"{what} holds Python objects (pickled data), not plain numbers; refused"
        )
    have = len(data) - f.tell()
    if have < header.nbytes:
        raise SketchFileError(
            path,
            f"{what} is truncated: its header promises {header.nbytes:,} bytes of data "
            f"but only {have:,} are there",
        )
    f.seek(0)
    try:
        array = npformat.read_array(f, allow_pickle=False)
    except (ValueError, EOFError, OSError, TypeError, MemoryError) as e:
        raise SketchFileError(path, f"{what} could not be read (damaged?): {e}") from e
    return header, array
