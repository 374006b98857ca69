"""FS-COCO vector .npy: (N, 3) absolute x, y, pen; 1 ends a stroke, 2 ends the drawing."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npformat

from sketchpad.sketch.io import MAX_POINTS, SketchFileError, read_sketch, write_sketch
from sketchpad.sketch.model import Sketch, Stroke


def save(path: Path, a: np.ndarray) -> Path:
    np.save(path, a)
    return path


def test_reads_strokes_at_absolute_coordinates(tmp_path: Path) -> None:
    a = np.array([[10, 20, 0], [30.5, 40, 0], [50, 60, 1], [5, 5, 1], [70, 80, 0], [90, 100, 0]],
                 dtype=np.float32)
    s = read_sketch(save(tmp_path / "000000123.npy", a))
    assert [st.points.tolist() for st in s.strokes] == [
        [[10, 20], [30.5, 40], [50, 60]], [[5, 5]], [[70, 80], [90, 100]]]
    assert (s.width, s.height) == (91, 101)  # max + 1, no shift
    assert "import_warnings" not in s.metadata


def test_end_of_drawing_flag(tmp_path: Path) -> None:
    a = np.array([[1, 1, 0], [2, 2, 2], [3, 3, 0], [4, 4, 1]], dtype=np.float64)
    s = read_sketch(save(tmp_path / "kit.npy", a))
    assert len(s.strokes) == 1 and s.num_points == 2
    assert s.metadata["import_warnings"] == ["ignored 2 points after the end-of-drawing flag (2)"]


def test_round_trip_is_exact_float64(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sketch = Sketch(strokes=tuple(Stroke(points=rng.uniform(0, 500, (n, 2))) for n in (5, 1, 17)))
    path = tmp_path / "out.npy"
    write_sketch(sketch, path)
    a = np.load(path, allow_pickle=False)
    assert a.dtype == np.float64 and a.shape == (23, 3)
    assert a[:, 2].tolist().count(1.0) == 3 and a[-1, 2] == 1
    back = read_sketch(path)
    assert [len(s) for s in back.strokes] == [5, 1, 17]
    for s, t in zip(sketch.strokes, back.strokes, strict=False):
        np.testing.assert_array_equal(s.points, t.points)


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.array([[1, np.nan, 0]]), "NaN or infinite"),
        (np.array([[1, 2, 0], [np.inf, 2, 1]]), "row 1 contains NaN or infinite"),
        (np.zeros((3, 2)), "shape (3, 2)"),
        (np.zeros((0, 3)), "no points"),
        (np.array([[1, 2, 0.5]]), "pen flags must be 0, 1 or 2, found 0.5"),
        (np.array(["a", "b", "c"]).reshape(1, 3), "expected numbers"),
        (np.zeros((2, 3), dtype=object), "object"),
    ],
)
def test_bad_arrays(tmp_path: Path, array: np.ndarray, words: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(SketchFileError) as info:
        read_sketch(path)
    assert "bad.npy" in str(info.value) and words in str(info.value)


def test_truncated_and_garbage(tmp_path: Path) -> None:
    path = save(tmp_path / "cut.npy", np.zeros((100, 3)))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(SketchFileError, match="cut.npy: the array is truncated"):
        read_sketch(path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(SketchFileError, match="cut.npy: the array is not a valid NumPy array"):
        read_sketch(path)
    (tmp_path / "zip.npy").write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(SketchFileError, match="zip.npy: the array is not a valid NumPy array"):
        read_sketch(tmp_path / "zip.npy")


def test_too_many_points_refused_from_the_header(tmp_path: Path) -> None:
    """The header alone decides: a file promising 1,000,001 points is refused unread."""
    buf = io.BytesIO()
    npformat.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": (MAX_POINTS + 1, 3)})
    path = tmp_path / "big.npy"
    path.write_bytes(buf.getvalue())
    with pytest.raises(SketchFileError, match=r"big.npy: has 1,000,001 points"):
        read_sketch(path)


def test_writer_refuses_raster(tmp_path: Path) -> None:
    raster = Sketch(raster=np.zeros((2, 2), np.uint8), width=2, height=2)
    with pytest.raises(SketchFileError, match="raster image with no strokes"):
        write_sketch(raster, tmp_path / "r.npy")
