"""Quick, Draw! ndjson, including the real SPG part-labelled files in shared/data/spg."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sketchpad.sketch.formats.quickdraw import encode_ndjson
from sketchpad.sketch.io import (
    MAX_POINTS,
    SketchFileError,
    count_drawings,
    read_sketch,
    sketch_from_json_bytes,
    sketch_to_json_bytes,
    write_sketch,
)
from sketchpad.sketch.model import Sketch, Stroke

SPG = Path(__file__).resolve().parents[2] / "shared" / "data" / "spg"
needs_spg = pytest.mark.skipif(not SPG.is_dir(), reason=f"SPG data folder {SPG} is missing")


def spg_files() -> list[Path]:
    return sorted(SPG.glob("*_valid.ndjson"))


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@needs_spg
def test_spg_counts() -> None:
    files = spg_files()
    assert len(files) == 20
    total = 0
    for f in files:
        non_empty = sum(1 for line in f.read_bytes().splitlines() if line.strip())
        assert count_drawings(f) == non_empty == 50
        total += non_empty
    assert total == 1000  # `wc -l` says 980: the files lack a trailing newline


@needs_spg
def test_spg_all_drawings_import_with_labels_on_the_right_points() -> None:
    for f in spg_files():
        category = f.name.removesuffix("_valid.ndjson")
        names = [n.strip() for n in (SPG / f"{category}.txt").read_text().splitlines() if n.strip()]
        for i, rec in enumerate(records(f)):
            s = read_sketch(f, i)
            md = s.metadata
            assert md["key_id"] == rec["key_id"] and md["category"] == category
            assert md["part_names"] == names and md["label_base"] == 0
            assert "import_warnings" not in md, md.get("import_warnings")
            assert (s.width, s.height) == (256, 256)
            assert len(s.strokes) == len(rec["drawing"])
            for stroke, (xs, ys, labels) in zip(s.strokes, rec["drawing"], strict=False):
                assert stroke.points[:, 0].tolist() == xs and stroke.points[:, 1].tolist() == ys
                assert stroke.point_labels.tolist() == labels
                assert stroke.times is None
                assert 0 <= min(labels) and max(labels) < len(names)


@needs_spg
def test_spg_ndjson_to_json_to_ndjson_is_exact(tmp_path: Path) -> None:
    for f in spg_files():
        originals = records(f)
        for i, rec in enumerate(originals):
            s = read_sketch(f, i)
            if i == 0:  # through real files once per category (atomic writes fsync: slow)
                write_sketch(s, tmp_path / "s.json")
                write_sketch(read_sketch(tmp_path / "s.json"), tmp_path / "s.ndjson")
                back = json.loads((tmp_path / "s.ndjson").read_text())
            else:
                again = sketch_from_json_bytes(sketch_to_json_bytes(s))
                assert again == s
                back = json.loads(encode_ndjson(again, tmp_path / "s.ndjson"))
            # the part names travel in the record (the .txt stays behind on a re-export)
            assert back.pop("part_names") == s.metadata["part_names"]
            assert back.pop("label_base") == 0
            assert back == rec  # drawing (int types included) and key_id, nothing else
            assert all(type(v) is int for st in back["drawing"] for lst in st for v in lst)


@needs_spg
def test_index_out_of_range_names_the_count() -> None:
    f = spg_files()[0]
    with pytest.raises(SketchFileError, match=r"has 50 drawings; drawing index 50"):
        read_sketch(f, 50)
    with pytest.raises(SketchFileError, match="index -1"):
        read_sketch(f, -1)


def write_lines(path: Path, *recs: object) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in recs))
    return path


def test_simplified_and_raw_records(tmp_path: Path) -> None:
    simplified = {"word": "cat", "countrycode": "DE", "recognized": True, "key_id": "1",
                  "timestamp": "2017-03-01 20:41:36.70725 UTC",
                  "drawing": [[[0, 10, 255], [5, 6, 7]], [[1], [2]]]}
    raw = {"word": "cat", "countrycode": "US", "recognized": False, "key_id": "2",
           "drawing": [[[100.5, 600, 700], [5, 6, 900], [0, 17, 34]], [[], [], []]]}
    f = write_lines(tmp_path / "cat.ndjson", simplified, "", raw, "   ")
    assert count_drawings(f) == 2
    a, b = read_sketch(f, 0), read_sketch(f, 1)
    assert (a.width, a.height) == (256, 256) and len(a.strokes) == 2
    assert {k: a.metadata[k] for k in ("word", "countrycode", "recognized", "timestamp")} == {
        k: simplified[k] for k in ("word", "countrycode", "recognized", "timestamp")}
    assert a.strokes[0].times is None and a.strokes[0].point_labels is None
    # raw: third list = times, canvas = extent + 1, the empty stroke skipped and noted
    assert b.strokes[0].times.tolist() == [0, 17, 34] and b.strokes[0].point_labels is None
    assert (b.width, b.height) == (701, 901)
    assert b.metadata["import_warnings"] == ["skipped 1 empty stroke (no points)"]
    # written back: the same record minus the empty stroke
    out = tmp_path / "out.ndjson"
    write_sketch(b, out)
    back = json.loads(out.read_text())
    assert back["drawing"] == [[[100.5, 600.0, 700.0], [5.0, 6.0, 900.0], [0, 17, 34]]]
    assert {k: back[k] for k in ("word", "countrycode", "recognized", "key_id")} == {
        "word": "cat", "countrycode": "US", "recognized": False, "key_id": "2"}


def test_times_survive_a_round_trip_without_quickdraw_fields(tmp_path: Path) -> None:
    s = Sketch(strokes=(Stroke(points=[[1, 2], [3, 4]], times=[0, 16]),), width=10, height=10)
    path = tmp_path / "t.ndjson"
    write_sketch(s, path)
    back = read_sketch(path)
    assert back.strokes[0].times.tolist() == [0, 16] and back.strokes[0].point_labels is None


def test_part_names_from_word_file(tmp_path: Path) -> None:
    (tmp_path / "cat.txt").write_text("head\nbody\n")
    f = write_lines(tmp_path / "mixed.ndjson", {"drawing": [[[1, 2], [3, 4], [0, 2]]]})
    s = read_sketch(f)
    assert "part_names" not in s.metadata  # no mixed.txt
    f = write_lines(tmp_path / "cat_train.ndjson", {"drawing": [[[1, 2], [3, 4], [0, 2]]]})
    s = read_sketch(f)
    assert s.metadata["part_names"] == ["head", "body"] and s.metadata["category"] == "cat"
    assert "labels go up to 2" in s.metadata["import_warnings"][0]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"drawing": [[[1, 2], [3, 4]]', "line 2 is not valid JSON"),
        ("[1, 2, 3]", "line 2 is not a JSON object"),
        ('{"key_id": "x"}', 'no "drawing"'),
        ('{"drawing": [[[1, 2]]]}', "line 2, stroke 0 must be"),
        ('{"drawing": [[[1, 2], [3]]]}', "different lengths"),
        ('{"drawing": [[[1, "a"], [3, 4]]]}', "numbers"),
        ('{"drawing": [[[1, NaN], [3, 4]]]}', "NaN"),
        ('{"drawing": [[[1, 1e999], [3, 4]]]}', "infinite"),
        ('{"drawing": [[[], []]]}', "no strokes"),
        ('{"drawing": []}', "no strokes"),
    ],
)
def test_bad_lines_are_refused(tmp_path: Path, line: str, words: str) -> None:
    f = write_lines(tmp_path / "bad.ndjson", {"drawing": [[[1], [1]]]}, line)
    assert read_sketch(f, 0).strokes[0].points.tolist() == [[1, 1]]  # line 1 is fine
    with pytest.raises(SketchFileError) as info:
        read_sketch(f, 1)
    assert "bad.ndjson" in str(info.value) and words in str(info.value)


def test_not_utf8_line(tmp_path: Path) -> None:
    f = tmp_path / "bin.ndjson"
    f.write_bytes(b'{"drawing": "\xff\xfe"}\n')
    with pytest.raises(SketchFileError, match="bin.ndjson: line 1 is not UTF-8"):
        read_sketch(f)


def test_too_many_points(tmp_path: Path) -> None:
    xs = list(range(MAX_POINTS + 1))
    f = write_lines(tmp_path / "big.ndjson", {"drawing": [[xs, xs]]})
    with pytest.raises(SketchFileError, match=r"big.ndjson: has 1,000,001 points"):
        read_sketch(f)


def test_writer_refuses_raster_sketches(tmp_path: Path) -> None:
    s = Sketch(raster=np.zeros((4, 5), np.uint8), width=5, height=4)
    with pytest.raises(SketchFileError, match="raster image with no strokes"):
        write_sketch(s, tmp_path / "r.ndjson")
    assert not (tmp_path / "r.ndjson").exists()


def test_floats_are_written_when_coordinates_are_not_integral(tmp_path: Path) -> None:
    s = Sketch(strokes=(Stroke(points=[[1.25, 2], [3, 4]], point_labels=[1, 2]),))
    f = tmp_path / "f.ndjson"
    write_sketch(s, f)
    rec = json.loads(f.read_text())
    assert rec == {"drawing": [[[1.25, 3.0], [2.0, 4.0], [1, 2]]]}
    assert read_sketch(f).strokes[0].points.tolist() == [[1.25, 2], [3, 4]]
