"""Part names and label files (issue 18, item 8): ``label --labels-file``, the sketch's own part
names by default, and part names (commas and all) carried through every export that holds them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sketchpad.cli import main
from sketchpad.sketch.io import SketchFileError, read_sketch, write_sketch
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.sketch.parts import part_names, read_label_file

SPG = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "spg"
TINY = ["--backbone", "test-clip-tiny", "--device", "cpu", "--random-weights"]
# Five of SPG's part names hold commas; these are three of them.
NAMES = ["clock leg,base", "scale,number", "hands"]


@pytest.fixture
def spg(tmp_path: Path) -> Path:
    """An SPG-style alarm clock: point labels 0-based into alarm_clock.txt."""
    rec = {
        "key_id": "1",
        "drawing": [
            [[10, 60, 110], [10, 60, 10], [0, 0, 0]],
            [[20, 80], [100, 100], [1, 1]],
            [[50, 50], [20, 80], [2, 2]],
        ],
    }
    (tmp_path / "alarm_clock_valid.ndjson").write_text(json.dumps(rec) + "\n")
    (tmp_path / "alarm_clock.txt").write_text("\n".join(NAMES) + "\n")
    return tmp_path / "alarm_clock_valid.ndjson"


# ---------------------------------------------------------------- label files


def test_label_file_keeps_commas_and_skips_blanks_and_comments(tmp_path: Path) -> None:
    f = tmp_path / "labels.txt"
    f.write_bytes(
        "\ufeff# labels for the clock\nscale,number\n\n  clock   leg,base \nHands\nhands\n".encode()
    )
    assert read_label_file(f) == ("scale,number", "clock leg,base", "Hands")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"ok\ncaf\xe9\n", "line 2 is not UTF-8 text"),
        (b"# only a comment\n\n", "holds no label"),
        (b"", "holds no label"),
    ],
)
def test_label_file_errors_name_the_file(tmp_path: Path, data: bytes, words: str) -> None:
    f = tmp_path / "labels.txt"
    f.write_bytes(data)
    with pytest.raises(SketchFileError) as info:
        read_label_file(f)
    assert "labels.txt" in str(info.value) and words in str(info.value)


def test_missing_label_file(tmp_path: Path) -> None:
    with pytest.raises(SketchFileError, match="file not found"):
        read_label_file(tmp_path / "nope.txt")


# ---------------------------------------------------------------- part names travel


def test_spg_part_names_with_commas_are_read(spg: Path) -> None:
    s = read_sketch(spg)
    assert s.metadata["part_names"] == NAMES and part_names(s) == tuple(NAMES)


def test_spg_names_are_index_aligned_so_no_line_is_a_comment(spg: Path) -> None:
    (spg.parent / "alarm_clock.txt").write_text("#1 leg\nscale,number\nhands\n")
    assert read_sketch(spg).metadata["part_names"] == ["#1 leg", "scale,number", "hands"]


@pytest.mark.skipif(not (SPG / "alarm_clock.txt").exists(), reason="no shared SPG data")
def test_real_spg_alarm_clock_names_keep_their_comma() -> None:
    s = read_sketch(SPG / "alarm_clock_valid.ndjson")
    assert "scale,number" in part_names(s)


@pytest.mark.parametrize("ext", [".json", ".ndjson", ".svg"])
def test_part_names_survive_every_export_that_holds_them(
    spg: Path, tmp_path: Path, ext: str
) -> None:
    """Re-exported under a name with no SPG .txt beside it, the names still come back."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    out = other / f"renamed{ext}"
    write_sketch(read_sketch(spg), out)
    back = read_sketch(out)
    assert back.metadata["part_names"] == NAMES and part_names(back) == tuple(NAMES)
    again = other / f"again{ext}"
    write_sketch(back, again)
    assert read_sketch(again).metadata["part_names"] == NAMES


def test_ndjson_export_keeps_label_base(spg: Path, tmp_path: Path) -> None:
    write_sketch(read_sketch(spg), tmp_path / "x.ndjson")
    rec = json.loads((tmp_path / "x.ndjson").read_text())
    assert rec["part_names"] == NAMES and rec["label_base"] == 0
    assert read_sketch(tmp_path / "x.ndjson").metadata["label_base"] == 0


@pytest.mark.parametrize("bad", ['"a,b"', "[1, 2]", '["ok", ""]', "{}"])
def test_bad_part_names_in_our_json_are_refused(tmp_path: Path, bad: str) -> None:
    f = tmp_path / "bad.json"
    f.write_text(
        '{"format": "sketchpad-sketch", "version": 1, "canvas": {"width": 10, "height": 10}, '
        f'"metadata": {{"part_names": {bad}}}, "strokes": [{{"id": "a", "points": [[1, 2]]}}]}}'
    )
    with pytest.raises(SketchFileError, match="part_names") as info:
        read_sketch(f)
    assert "bad.json" in str(info.value)


def test_part_names_fall_back_to_stroke_labels() -> None:
    s = Sketch(
        strokes=(
            Stroke(points=[[1.0, 1.0]], label="roof,left"),
            Stroke(points=[[2.0, 2.0]]),
            Stroke(points=[[3.0, 3.0]], label="door"),
            Stroke(points=[[4.0, 4.0]], label="roof,left"),
        ),
        width=10,
        height=10,
    )
    assert part_names(s) == ("roof,left", "door")
    assert part_names(s.replace(strokes=(Stroke(points=[[1.0, 1.0]]),))) == ()


# ---------------------------------------------------------------- sketchpad label


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def run_label(sketch: Path, out: Path, *extra: str) -> int:
    return main(["label", "--sketch", str(sketch), "--out", str(out), *TINY, *extra])


def labels_written(out: Path) -> list[str]:
    labels: list[str] = read_sketch(out / "labelled.json").metadata["scene_labels"]["labels"]
    root = ET.parse(out / "labelled.svg").getroot()
    assert json.loads(root.get("data-labels", "")) == labels
    return labels


def test_label_uses_the_files_own_part_names_by_default(
    env: Path, spg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = env / "out"
    assert run_label(spg, out) == 0
    assert '"scale,number"' in capsys.readouterr().out
    assert labels_written(out) == NAMES
    # the names ride along in both vector exports of the labelled sketch
    assert read_sketch(out / "labelled.json").metadata["part_names"] == NAMES
    assert read_sketch(out / "labelled.svg").metadata["part_names"] == NAMES


def test_label_uses_our_json_part_names_by_default(env: Path, spg: Path) -> None:
    write_sketch(read_sketch(spg), env / "clock.json")
    assert run_label(env / "clock.json", env / "out") == 0
    assert labels_written(env / "out") == NAMES


def test_label_with_a_labels_file(env: Path, spg: Path) -> None:
    f = env / "labels.txt"
    f.write_text("# mine\nscale,number\nbell\n")
    assert run_label(spg, env / "out", "--labels-file", str(f)) == 0
    assert labels_written(env / "out") == ["scale,number", "bell"]


def test_label_without_names_or_labels_says_what_to_give(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_sketch(
        Sketch(strokes=(Stroke(points=[[1.0, 1.0], [50.0, 50.0]]),), width=64, height=64),
        env / "plain.json",
    )
    assert run_label(env / "plain.json", env / "out") == 1
    err = capsys.readouterr().err
    assert "plain.json" in err and "no part names" in err and "--labels-file" in err
    assert not (env / "out").exists()


def test_label_file_errors_are_reported(
    env: Path, spg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = env / "labels.txt"
    f.write_bytes(b"\xff\xfe")
    assert run_label(spg, env / "out", "--labels-file", str(f)) == 1
    err = capsys.readouterr().err
    assert err.startswith("sketchpad label: error: --labels-file")
    assert "labels.txt" in err and "not UTF-8" in err
