"""The dispatcher: extensions, counting, file-system errors, dialog filters, the error type."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from sketchpad.atomic import SaveError
from sketchpad.sketch import io as sketch_io
from sketchpad.sketch.formats import _common
from sketchpad.sketch.io import (
    SUPPORTED_READ,
    SUPPORTED_WRITE,
    SketchFileError,
    count_drawings,
    file_dialog_filter,
    read_sketch,
    write_sketch,
)
from sketchpad.sketch.model import Sketch, Stroke


def sketch() -> Sketch:
    return Sketch(
        strokes=(Stroke(points=[[1, 2], [30, 40]]), Stroke(points=[[5, 6]])), width=64, height=48
    )


def test_supported_extensions() -> None:
    assert set(SUPPORTED_READ) == {
        ".json",
        ".ndjson",
        ".npz",
        ".npy",
        ".svg",
        ".png",
        ".jpg",
        ".jpeg",
    }
    assert set(SUPPORTED_WRITE) == {".json", ".ndjson", ".npz", ".npy", ".svg", ".png"}


@pytest.mark.parametrize("ext", [e for e in SUPPORTED_WRITE])
def test_every_writable_format_reads_back(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"drawing{ext.upper()}"
    write_sketch(sketch(), path)
    assert count_drawings(path) == 1
    back = read_sketch(path)
    if ext == ".png":
        assert back.is_raster and back.raster.shape == (48, 64) and back.raster.max() > 0
    else:
        assert [len(s) for s in back.strokes] == [2, 1]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


def test_file_dialog_filters() -> None:
    read = file_dialog_filter(False).split(";;")
    assert read[0].startswith("Sketches (") and read[-1] == "All files (*)"
    assert all(f"*{e}" in read[0] for e in SUPPORTED_READ)
    assert "Sketchpad JSON (*.json)" in read and "JPEG image (*.jpg *.jpeg)" in read
    write = file_dialog_filter(True).split(";;")
    assert write[0] == "Sketchpad JSON (*.json)" and len(write) == len(SUPPORTED_WRITE)
    assert not any("jpg" in w for w in write)


def error_of(call: object, *args: object) -> SketchFileError:
    with pytest.raises(SketchFileError) as info:
        call(*args)  # type: ignore[operator]
    return info.value


@pytest.mark.parametrize("ext", SUPPORTED_READ)
def test_missing_file(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"gone{ext}"
    for call in (read_sketch, count_drawings):
        e = error_of(call, path)
        assert e.path == path and e.reason == "file not found"
        assert str(e) == f"{path}: file not found"


@pytest.mark.parametrize("ext", SUPPORTED_READ)
def test_directory(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"folder{ext}"
    path.mkdir()
    for call in (read_sketch, count_drawings):
        assert "is a folder" in str(error_of(call, path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_is_not_opened(tmp_path: Path) -> None:
    path = tmp_path / "pipe.ndjson"
    os.mkfifo(path)
    assert "not a regular file" in str(error_of(read_sketch, path))  # and does not block


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.json"
    write_sketch(sketch(), path)

    def deny(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    # chmod 000 does not stop root (CI), so refuse the open itself
    monkeypatch.setattr(_common, "open", deny, raising=False)
    e = error_of(read_sketch, path)
    assert "locked.json" in str(e) and e.reason == "permission denied"


def test_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.svg"
    path.write_bytes(b" " * 2048)
    monkeypatch.setattr(_common.read_file_bytes, "__defaults__", (1024,))
    monkeypatch.setattr(_common.iter_chunks, "__defaults__", (256, 1024))  # SVG streams
    assert "over the 1024 bytes size limit" in str(error_of(read_sketch, path))
    png = tmp_path / "big.png"
    png.write_bytes(b" " * 2048)
    assert "over the 1024 bytes size limit" in str(error_of(read_sketch, png))
    monkeypatch.setattr(_common.iter_lines, "__defaults__", (1024,))
    lines = tmp_path / "long.ndjson"
    lines.write_bytes(b" " * 2048)
    assert "line 1 is longer than 1024 bytes" in str(error_of(count_drawings, lines))


def test_unknown_extensions(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hi")
    e = error_of(read_sketch, path)
    assert "notes.txt" in str(e) and "cannot read the file type '.txt'" in str(e)
    e = error_of(write_sketch, sketch(), tmp_path / "photo.jpg")
    assert "cannot write the file type '.jpg'" in str(e) and not (tmp_path / "photo.jpg").exists()
    assert "without an extension" in str(error_of(read_sketch, tmp_path / "README"))


def test_single_drawing_formats_refuse_other_indices(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    write_sketch(sketch(), path)
    assert "has 1 drawing; drawing index 1 is out of range" in str(error_of(read_sketch, path, 1))
    assert "must be an integer" in str(error_of(read_sketch, path, "0"))


def test_failed_write_is_a_save_error_and_keeps_the_old_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "x.json"
    with pytest.raises(SaveError):
        write_sketch(sketch(), missing)


def test_error_type() -> None:
    e = SketchFileError(Path("/a/b.json"), "is broken")
    assert isinstance(e, ValueError) and str(e) == "/a/b.json: is broken"
    back = pickle.loads(pickle.dumps(e))
    assert (back.path, back.reason) == (Path("/a/b.json"), "is broken")
    assert sketch_io.SketchFileError is _common.SketchFileError


def test_truncated_files_of_every_format(tmp_path: Path) -> None:
    """Cut each written file in half: reading fails with a SketchFileError naming it."""
    s = Sketch(
        strokes=tuple(
            Stroke(points=np.random.default_rng(i).uniform(0, 60, (200, 2))) for i in range(3)
        ),
        width=64,
        height=64,
    )
    for ext in (".json", ".ndjson", ".npz", ".npy", ".png"):
        path = tmp_path / f"cut{ext}"
        write_sketch(s, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        assert f"cut{ext}" in str(error_of(read_sketch, path))
