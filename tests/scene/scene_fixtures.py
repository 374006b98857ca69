"""Small datasets in the real layouts, written by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_spg(folder: Path) -> Path:
    """Two SPG categories; labels 0-based as in the real files."""
    folder.mkdir(parents=True, exist_ok=True)
    cup = [
        # stroke 0: points labelled 1, 1, 0 → "body"; stroke 1: all 0 → "handle"
        {
            "key_id": "1",
            "drawing": [[[10, 50, 90], [10, 60, 10], [1, 1, 0]], [[100, 120], [40, 60], [0, 0]]],
        },
        {"key_id": "2", "drawing": [[[5, 200], [5, 200], [2, 2]]]},  # "steam"
        {"key_id": "3", "drawing": [[[5, 200], [5, 200], [7, 7]]]},  # label 7: no such part
    ]
    (folder / "cup_valid.ndjson").write_text("\n".join(json.dumps(r) for r in cup) + "\n")
    (folder / "cup.txt").write_text("handle\nbody\nsteam\n")
    sun = [{"key_id": "9", "drawing": [[[0, 30, 60], [0, 30, 0], [0, 0, 1]]]}]  # tie → 0
    (folder / "sun_valid.ndjson").write_text(json.dumps(sun[0]) + "\n")
    (folder / "sun.txt").write_text("disc\nrays\n")
    return folder


def write_fscoco(split: Path) -> Path:
    """An FSCOCO-Seg-like split: vector_sketches/<participant>/<id>.npy + classes/… .json."""
    two = np.array(
        [
            [10, 10, 0],
            [50, 10, 1],
            [10, 50, 0],
            [50, 50, 0],
            [60, 60, 1],
            [100, 100, 0],
            [120, 110, 1],
        ],
        dtype=np.float64,
    )
    for rel, labels in [
        ("3/100", ["tree", "dog", "tree"]),
        ("3/101", [1, 2, 2]),  # class indices into all_classes.json
        ("4/200", ["tree", "dog"]),  # 3 strokes, 2 labels: skipped
    ]:
        npy = split / "vector_sketches" / f"{rel}.npy"
        npy.parent.mkdir(parents=True, exist_ok=True)
        np.save(npy, two)
        js = split / "classes" / f"{rel}.json"
        js.parent.mkdir(parents=True, exist_ok=True)
        js.write_text(json.dumps(labels))
    np.save(split / "vector_sketches" / "4" / "201.npy", two)  # no label file: skipped
    (split.parent / "all_classes.json").write_text(json.dumps(["blank_pixel", "sky", "giraffe"]))
    return split
