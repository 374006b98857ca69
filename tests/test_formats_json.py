"""Sketchpad JSON: lossless round trips, versioning and refusal of bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sketchpad.sketch.formats import json_format
from sketchpad.sketch.io import (
    MAX_POINTS,
    SketchFileError,
    read_sketch,
    sketch_from_json_bytes,
    sketch_to_json_bytes,
    write_sketch,
)
from sketchpad.sketch.model import Sketch, Stroke


def full_sketch() -> Sketch:
    """Every field of a vector sketch set, with floats that print with many digits."""
    rng = np.random.default_rng(0)
    strokes = (
        Stroke(
            points=rng.uniform(-50, 900, size=(40, 2)),
            times=np.cumsum(rng.uniform(0, 17, size=40)),
            pressure=rng.uniform(0, 1, size=40),
            point_labels=rng.integers(0, 5, size=40),
            width=2.5,
            color="#12ab34",
            id="first",
            label="dog",
        ),
        Stroke(points=[[0.1, 0.2]], id="dot", label='näme ✓ "quoted"', color="#00000080"),
        Stroke(points=[[1, 2], [3, 4], [1e-300, 987654321.0123457]], width=0.01),
    )
    metadata = {"category": "dog", "n": 3, "x": 1.5, "ok": True, "nested": {"a": [1, 2.0, None]}}
    return Sketch(strokes=strokes, width=1024.5, height=768, metadata=metadata)


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    sketch = full_sketch()
    path = tmp_path / "drawing.json"
    write_sketch(sketch, path)
    back = read_sketch(path)
    assert back == sketch  # Stroke/Sketch equality compares arrays exactly, dtypes included
    assert back.strokes[0].point_labels.dtype == np.int64
    # ints stay ints and floats floats in the metadata
    assert type(back.metadata["n"]) is int and type(back.metadata["x"]) is float
    assert back.metadata["nested"] == {"a": [1, 2.0, None]}


def test_bytes_api_round_trip_and_layout() -> None:
    sketch = full_sketch()
    data = sketch_to_json_bytes(sketch)
    assert sketch_from_json_bytes(data) == sketch
    doc = json.loads(data)
    assert doc["format"] == "sketchpad-sketch" and doc["version"] == 1
    assert list(doc) == ["format", "version", "canvas", "metadata", "strokes"]
    assert b"NaN" not in data
    # one stroke per line, compact points
    assert len(data.decode().splitlines()) == 2 + len(sketch.strokes)


def test_raster_sketch_round_trip(tmp_path: Path) -> None:
    ink = np.random.default_rng(1).integers(0, 256, size=(30, 41), dtype=np.uint8)
    sketch = Sketch(raster=ink, width=41, height=30, metadata={"source": "scan"})
    path = tmp_path / "raster.json"
    write_sketch(sketch, path)
    back = read_sketch(path)
    assert back == sketch and back.is_raster


def test_empty_sketch_round_trip() -> None:
    sketch = Sketch(width=10, height=20)
    assert sketch_from_json_bytes(sketch_to_json_bytes(sketch)) == sketch


def test_metadata_with_nan_is_refused_on_write(tmp_path: Path) -> None:
    sketch = Sketch(metadata={"bad": float("nan")})
    with pytest.raises(SketchFileError, match="metadata"):
        write_sketch(sketch, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def doc(**changes: object) -> dict:
    d = {
        "format": "sketchpad-sketch",
        "version": 1,
        "canvas": {"width": 100, "height": 80},
        "metadata": {},
        "strokes": [{"id": "a", "width": 3, "color": "#000000", "points": [[1, 2], [3, 4]]}],
    }
    d.update(changes)
    return d


def write_raw(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def read_error(path: Path) -> str:
    with pytest.raises(SketchFileError) as info:
        read_sketch(path)
    message = str(info.value)
    assert path.name in message and info.value.path == path
    return message


def test_valid_minimal_document(tmp_path: Path) -> None:
    s = read_sketch(write_raw(tmp_path / "ok.json", json.dumps(doc())))
    assert s.width == 100 and s.strokes[0].points.tolist() == [[1, 2], [3, 4]]


def test_newer_version_is_refused_with_update_hint(tmp_path: Path) -> None:
    msg = read_error(write_raw(tmp_path / "future.json", json.dumps(doc(version=7))))
    assert "newer Sketchpad" in msg and "version 7" in msg and "update" in msg


def test_migrations_upgrade_older_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the current version is 2 and version 1 stored the canvas as a list.
    monkeypatch.setattr(json_format, "CURRENT_VERSION", 2)

    def v1_to_v2(d: dict) -> dict:
        d = dict(d)
        w, h = d.pop("size")
        d["canvas"] = {"width": w, "height": h}
        return d

    monkeypatch.setitem(json_format._MIGRATIONS, 1, v1_to_v2)
    old = doc(size=[50, 60])
    del old["canvas"]
    s = sketch_from_json_bytes(json.dumps(old).encode())
    assert (s.width, s.height) == (50, 60)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"format": "sketchpad-sketch", "version": 1, "canvas": {', "not valid JSON"),
        ("not json at all", "not valid JSON"),
        (json.dumps(doc())[:-30], "truncated"),
        (json.dumps({"version": 1}), 'no "format"'),
        (json.dumps(doc(format="something-else")), "something-else"),
        (json.dumps(doc(version="1")), "invalid format version"),
        (json.dumps(doc(canvas={"width": 0, "height": 5})), "width"),
        (json.dumps(doc(canvas=[1, 2])), "canvas"),
        (json.dumps(doc(strokes=[{"id": "a", "points": []}])), "no points"),
        (json.dumps(doc(strokes=[{"id": "a", "points": [[1, 2, 3]]}])), "[x, y] pairs"),
        (json.dumps(doc(strokes=[{"id": "a", "points": [["1", "2"]]}])), "only numbers"),
        (json.dumps(doc(strokes=[{"id": "a", "points": [[1, 2]], "times": [1, 2]}])), "times"),
        (json.dumps(doc(strokes=[{"id": "a", "points": [[1, 2]], "color": "red"}])), "color"),
        (
            json.dumps(doc(strokes=[{"id": "a", "points": [[1, 2]], "point_labels": [0.5]}])),
            "integers",
        ),
        (json.dumps(doc(strokes=[{"id": "a", "points": [[1, 2]]}] * 2)), "duplicate stroke id"),
        (json.dumps(doc(strokes=[{"points": [[1, 2]]}])).replace("2]", "1e999]"), "infinite"),
        (json.dumps(doc(metadata=[])), "metadata"),
        (json.dumps(doc(raster={"png": "!!!"})), "base64"),
        (json.dumps(doc(strokes=[], raster={"png": "aGVsbG8="})), "raster"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ],
)
def test_bad_documents_are_refused(tmp_path: Path, text: str, words: str) -> None:
    msg = read_error(write_raw(tmp_path / "bad.json", text))
    assert words in msg


def test_nan_literal_is_refused(tmp_path: Path) -> None:
    text = json.dumps(doc(strokes=[{"id": "a", "points": [[float("nan"), 1]]}]))
    assert "NaN" in text  # Python's json writes the non-standard literal
    assert "NaN" in read_error(write_raw(tmp_path / "nan.json", text))
    text = json.dumps(doc(strokes=[{"id": "a", "points": [[float("inf"), 1]]}]))
    assert "Infinity" in read_error(write_raw(tmp_path / "inf.json", text))


def test_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"format": "sketchpad-sketch", "x": "\xff"}')
    assert "UTF-8" in read_error(path)


def test_too_many_points_is_refused(tmp_path: Path) -> None:
    n = MAX_POINTS + 1
    text = (
        '{"format": "sketchpad-sketch", "version": 1, "canvas": {"width": 9, "height": 9},'
        ' "strokes": [{"id": "a", "points": [' + ",".join(["[1,2]"] * n) + "]}]}"
    )
    msg = read_error(write_raw(tmp_path / "huge.json", text))
    assert "1,000,001 points" in msg and "1,000,000" in msg


def test_memory_errors_name_memory_as_the_path() -> None:
    with pytest.raises(SketchFileError, match="<memory>: is not valid JSON"):
        sketch_from_json_bytes(b"{")
