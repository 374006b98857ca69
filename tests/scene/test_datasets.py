"""Dataset readers on small fixtures in the real layouts (SPG ndjson, FS-COCO-style folders)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scene_fixtures import write_fscoco, write_spg

from sketchpad.train.datasets_scene import (
    DatasetError,
    detect_layout,
    read_fscoco_labelled,
    read_scene_dataset,
    read_spg,
)


def test_spg_reader(tmp_path: Path) -> None:
    root = write_spg(tmp_path / "spg")
    assert detect_layout(root) == "spg"
    warnings: list[str] = []
    samples = list(read_spg(root, warn=warnings.append))
    assert [s.group for s in samples] == ["cup", "cup", "sun"]
    assert samples[0].labels == ("handle", "body", "steam")
    assert samples[0].stroke_labels.tolist() == [1, 0]
    assert samples[1].stroke_labels.tolist() == [2]
    assert samples[2].labels == ("disc", "rays") and samples[2].stroke_labels.tolist() == [0]
    assert samples[0].source.endswith("cup_valid.ndjson#0")
    assert (
        len(warnings) == 1 and "cup_valid.ndjson#2" in warnings[0] and "part labels" in warnings[0]
    )
    assert [s.group for s in read_spg(root, limit=1)] == ["cup", "sun"]


def test_spg_without_part_names_numbers_the_parts(tmp_path: Path) -> None:
    root = write_spg(tmp_path / "spg")
    (root / "sun.txt").unlink()
    warnings: list[str] = []
    sun = [s for s in read_spg(root, warn=warnings.append) if s.group == "sun"]
    assert sun[0].labels == ("part 1",)
    assert any("no sun.txt" in w for w in warnings)


def test_fscoco_reader(tmp_path: Path) -> None:
    write_fscoco(tmp_path / "fscoco" / "test")
    assert detect_layout(tmp_path / "fscoco") == "fscoco"
    warnings: list[str] = []
    samples = list(read_scene_dataset(tmp_path / "fscoco", warn=warnings.append))
    assert [Path(s.source).stem for s in samples] == ["100", "101"]
    assert samples[0].labels == ("tree", "dog") and samples[0].stroke_labels.tolist() == [0, 1, 0]
    assert samples[1].labels == ("sky", "giraffe") and samples[1].stroke_labels.tolist() == [
        0,
        1,
        1,
    ]
    assert [s.group for s in samples] == ["3", "3"]
    assert len(samples[0].sketch.strokes) == 3
    assert any("201.npy" in w and "no label file" in w for w in warnings)
    assert any("200.npy" in w and "3 strokes but 2 labels" in w for w in warnings)
    assert len(list(read_fscoco_labelled(tmp_path / "fscoco" / "test", limit=1))) == 1


def test_fscoco_pairs_in_sorted_order_when_names_differ(tmp_path: Path) -> None:
    split = tmp_path / "val"
    (split / "vector_sketches").mkdir(parents=True)
    (split / "classes").mkdir()
    pts = np.array([[0, 0, 0], [9, 9, 1]], dtype=np.float64)
    for i, label in enumerate(["cat", "dog"]):
        np.save(split / "vector_sketches" / f"sketch_{i}.npy", pts)
        (split / "classes" / f"labels_{i}.json").write_text(json.dumps([label]))
    warnings: list[str] = []
    samples = list(read_fscoco_labelled(split, warn=warnings.append))
    assert [s.labels for s in samples] == [("cat",), ("dog",)]
    assert [s.group for s in samples] == ["val", "val"]
    assert "sorted order" in warnings[0]


def test_unknown_layouts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        detect_layout(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DatasetError, match="neither SPG"):
        detect_layout(tmp_path)
