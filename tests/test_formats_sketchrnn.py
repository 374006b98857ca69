"""Sketch-RNN .npz: real-layout files, sandboxed unpickling, refusal of anything but int16."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npformat

from sketchpad.sketch.formats.sketchrnn import MARGIN
from sketchpad.sketch.io import SketchFileError, count_drawings, read_sketch, write_sketch
from sketchpad.sketch.model import Sketch, Stroke


def stroke3(rng: np.random.Generator, n: int) -> np.ndarray:
    d = np.zeros((n, 3), dtype=np.int16)
    d[:, :2] = rng.integers(-20, 21, size=(n, 2))
    d[rng.choice(n, size=min(3, n), replace=False), 2] = 1
    d[-1, 2] = 1
    return d


def object_array(drawings: list[np.ndarray]) -> np.ndarray:
    a = np.empty(len(drawings), dtype=object)
    for i, d in enumerate(drawings):
        a[i] = d
    return a


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict[str, list[np.ndarray]]]:
    """A file laid out like the published ones: pickled object arrays per split."""
    rng = np.random.default_rng(0)
    splits = {
        "train": [stroke3(rng, n) for n in (12, 30, 7)],
        "valid": [stroke3(rng, n) for n in (5, 9)],
        "test": [stroke3(rng, 11)],
        "extra": [stroke3(rng, 4)],
    }
    path = tmp_path / "cat.npz"
    # key order in the zip deliberately differs from the reading order
    keys = ("test", "extra", "valid", "train")
    np.savez_compressed(path, **{k: object_array(splits[k]) for k in keys})
    return path, splits


def test_count_and_order(dataset: tuple[Path, dict[str, list[np.ndarray]]]) -> None:
    path, splits = dataset
    assert count_drawings(path) == 7
    order = [(k, i) for k in ("train", "valid", "test", "extra") for i in range(len(splits[k]))]
    for index, (key, i) in enumerate(order):
        s = read_sketch(path, index)
        d = splits[key][i].astype(np.int64)
        assert (s.metadata["split"], s.metadata["split_index"]) == (key, i)
        # absolute coordinates, shifted so the bounding box starts at the margin
        xy = np.cumsum(d[:, :2], axis=0)
        xy = xy - xy.min(axis=0) + MARGIN
        np.testing.assert_array_equal(s.all_points(), xy)
        assert len(s.strokes) == int(d[:, 2].sum())
        ends = np.cumsum([len(st) for st in s.strokes]) - 1
        assert np.all(d[ends, 2] == 1)
        extent = xy.max(axis=0) - MARGIN
        assert (s.width, s.height) == (extent[0] + 2 * MARGIN, extent[1] + 2 * MARGIN)
    with pytest.raises(SketchFileError, match="has 7 drawings; drawing index 7"):
        read_sketch(path, 7)


def test_legacy_numpy_core_pickles_are_accepted(tmp_path: Path) -> None:
    """Files written by NumPy 1.x name numpy.core.multiarray, not numpy._core."""
    d = stroke3(np.random.default_rng(1), 6)
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    pickled = pickle.dumps(object_array([d]), protocol=3)  # as np.save writes it
    pickled = pickled.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in pickled
    path = tmp_path / "legacy.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train.npy", buf.getvalue() + pickled)
    s = read_sketch(path)
    assert s.num_points == 6


def test_plain_int16_arrays_are_drawings(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = tmp_path / "plain.npz"
    np.savez(path, train=stroke3(rng, 5), valid=np.stack([stroke3(rng, 4), stroke3(rng, 4)]))
    assert count_drawings(path) == 3
    assert read_sketch(path, 2).num_points == 4


def test_round_trip(tmp_path: Path) -> None:
    sketch = Sketch(strokes=(Stroke(points=[[10, 10], [20.4, 30.6], [25, 5]]),
                             Stroke(points=[[300, 200]]),
                             Stroke(points=[[0, 0], [1, 1]])))
    path = tmp_path / "out.npz"
    write_sketch(sketch, path)
    with np.load(path, allow_pickle=True) as z:  # our own file: safe to load normally
        assert list(z.keys()) == ["train"] and z["train"].shape == (1,)
        assert z["train"][0].dtype == np.int16 and z["train"][0].shape == (6, 3)
    back = read_sketch(path)
    # lossy: rounded, shifted to the margin; same strokes
    want = np.round(sketch.all_points()) - np.round(sketch.all_points()).min(axis=0) + MARGIN
    np.testing.assert_array_equal(back.all_points(), want)
    assert [len(s) for s in back.strokes] == [3, 1, 2]
    # a second trip is exact
    write_sketch(back, path)
    np.testing.assert_array_equal(read_sketch(path).all_points(), back.all_points())


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def npz_with_member(path: Path, payload: bytes, shape: tuple = (1,), descr: str = "|O") -> Path:
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train.npy", buf.getvalue() + payload)
    return path


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = npz_with_member(tmp_path / "evil.npz", pickle.dumps([Evil(marker)], protocol=2))
    with pytest.raises(SketchFileError) as info:
        read_sketch(path)
    assert not marker.exists()
    msg = str(info.value)
    assert "evil.npz" in msg and "refused" in msg and "system" in msg
    # np.load with allow_pickle=True would have run it: the test's payload is real
    with np.load(path, allow_pickle=True) as z:
        z["train"]
    assert marker.exists()


def test_pickle_of_other_objects_is_refused(tmp_path: Path) -> None:
    path = npz_with_member(tmp_path / "obj.npz", pickle.dumps(object_array([{"a": 1}])))
    with pytest.raises(SketchFileError, match=r"obj.npz: array 'train'\[0\] is a dict"):
        read_sketch(path)
    path = npz_with_member(tmp_path / "garbage.npz", b"\x80\x04not a pickle")
    with pytest.raises(SketchFileError, match="garbage.npz: .*pickled data could not be read"):
        read_sketch(path)


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"train": object_array([np.zeros((4, 3), np.float32)])}, "float32 array of shape (4, 3)"),
        ({"train": object_array([np.zeros((4, 2), np.int16)])}, "shape (4, 2)"),
        ({"train": object_array([np.zeros((4, 3), np.int32)])}, "int32"),
        ({"train": np.zeros((4, 3), np.float64)}, "float64 array of shape (4, 3)"),
        ({"train": np.zeros((4, 5), np.int16)}, "int16 array of shape (4, 5)"),
        ({"train": object_array([np.zeros((0, 3), np.int16)])}, "has no points"),
        ({"train": object_array([np.array([[1, 1, 5]], np.int16)])}, "pen values must be 0 or 1"),
        ({}, "holds no arrays"),
    ],
)
def test_wrong_arrays_are_refused(tmp_path: Path, arrays: dict, words: str) -> None:
    path = tmp_path / "wrong.npz"
    np.savez(path, **arrays)
    with pytest.raises(SketchFileError) as info:
        read_sketch(path)
    assert "wrong.npz" in str(info.value) and words in str(info.value)


def test_truncated_and_damaged_files(tmp_path: Path, dataset: tuple[Path, dict]) -> None:
    path, _ = dataset
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SketchFileError, match="cut.npz: is not a valid .npz"):
        count_drawings(cut)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(SketchFileError, match="text.npz: is not a valid .npz"):
        read_sketch(text)
    # a header that promises more data than the member holds
    short = npz_with_member(tmp_path / "short.npz", b"\x00" * 10, shape=(5, 3), descr="<i2")
    with pytest.raises(SketchFileError, match="short.npz: array 'train' is truncated"):
        read_sketch(short)
    stray = tmp_path / "stray.npz"
    with zipfile.ZipFile(stray, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(SketchFileError, match="'readme.txt', which is not a NumPy array"):
        read_sketch(stray)


def test_writer_refuses_raster_and_huge_steps(tmp_path: Path) -> None:
    raster = Sketch(raster=np.zeros((2, 2), np.uint8), width=2, height=2)
    with pytest.raises(SketchFileError, match="no strokes"):
        write_sketch(raster, tmp_path / "r.npz")
    far = Sketch(strokes=(Stroke(points=[[0, 0], [40000, 0]]),))
    with pytest.raises(SketchFileError, match="int16"):
        write_sketch(far, tmp_path / "far.npz")


def test_protocol_2_pickles_written_by_python3_are_accepted(tmp_path: Path) -> None:
    # Python 3 protocol 2 rebuilds the array bytes with _codecs.encode; it must be allowed.
    drawing = stroke3(np.random.default_rng(3), 9)
    arr = object_array([drawing])
    payload = pickle.dumps(arr, protocol=2)
    assert b"_codecs" in payload
    path = npz_with_member(tmp_path / "p2.npz", payload)
    sketch = read_sketch(path)
    assert sketch.num_points == 9
