"""Exports parse back: SVG (xml.etree), label-map PNG (Pillow), CSV (csv), our JSON."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scene_planted import SceneBackbone, quadrant_sketch

from sketchpad.atomic import SaveError
from sketchpad.sketch.io import read_sketch
from sketchpad.sketch.model import Sketch
from sketchpad.sketch.raster import canvas_frame, rasterize
from sketchpad.vision.scene import SceneLabeller
from sketchpad.vision.scene_export import (
    CSV_COLUMNS,
    export_scene,
    label_color,
    scene_svg_bytes,
)
from sketchpad.vision.scene_labels import SceneLabels

LABELS = ["cat", "dog", "tree", "sun"]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def labelled() -> tuple[Sketch, SceneLabels]:
    sketch, _ = quadrant_sketch()
    return sketch, SceneLabeller(SceneBackbone()).label(sketch, LABELS)


def test_vector_exports_parse_back(tmp_path: Path, labelled: tuple[Sketch, SceneLabels]) -> None:
    sketch, r = labelled
    paths = export_scene(tmp_path / "out", sketch, r, info={"backbone": "planted-scene"})
    names = [p.name for p in paths]
    assert names == [
        "labelled.json",
        "labelled.svg",
        "label_map.png",
        "strokes.csv",
        "isolated-cat.png",
        "isolated-dog.png",
        "isolated-tree.png",
        "isolated-sun.png",
    ]
    truth = ["cat", "dog", "tree", "sun", "cat"]

    # SVG: one path per stroke with class, data-label and the label's colour.
    root = ET.fromstring((tmp_path / "out" / "labelled.svg").read_bytes())
    paths_el = root.findall(f"{SVG}path")
    assert [p.get("data-label") for p in paths_el] == truth
    assert [p.get("class") for p in paths_el] == [f"label-{t}" for t in truth]
    assert [p.get("stroke") for p in paths_el] == [label_color(LABELS.index(t)) for t in truth]
    style = root.find(f"{SVG}style").text
    assert f".label-sun {{ stroke: {label_color(3)}; }}" in style
    back = read_sketch(tmp_path / "out" / "labelled.svg")
    assert [s.label for s in back.strokes] == truth
    np.testing.assert_array_equal(back.strokes[0].points, sketch.strokes[0].points)

    # Label map: palette PNG, 0 = paper, k + 1 = label k, in the label's colour.
    im = Image.open(tmp_path / "out" / "label_map.png")
    assert im.mode == "P" and im.size == (300, 200)
    index = np.asarray(im)
    np.testing.assert_array_equal(index.astype(int) - 1, r.pixel_labels)
    pal = im.getpalette()
    for k in range(4):
        rgb = "#" + "".join(f"{v:02x}" for v in pal[3 * (k + 1) : 3 * (k + 2)])
        assert rgb == label_color(k)
    assert pal[:3] == [255, 255, 255]

    # CSV: one row per stroke.
    with open(tmp_path / "out" / "strokes.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [row["stroke_id"] for row in rows] == ["tl", "tr", "bl", "br", "tl2"]
    assert [row["label"] for row in rows] == truth
    assert [int(row["pixels"]) for row in rows] == [p.size for p in r.pixels.pixels]
    assert all(float(row["agreement"]) == 1.0 for row in rows)
    x0, y0, x1, y1 = (float(rows[0][c]) for c in ("x0", "y0", "x1", "y1"))
    assert (x0, y0, x1, y1) == pytest.approx((30.5, 30.5, 53.5, 53.5), abs=1.01)

    # Our JSON: the labels on the strokes, the legend and the options in the metadata.
    back = read_sketch(tmp_path / "out" / "labelled.json")
    assert [s.label for s in back.strokes] == truth
    meta = back.metadata["scene_labels"]
    assert meta["labels"] == LABELS and meta["backbone"] == "planted-scene"
    assert meta["colors"] == [label_color(k) for k in range(4)]
    assert set(meta["thresholds"]) == set(LABELS)

    # Isolation masks at the threshold asked for.
    cat = np.asarray(Image.open(tmp_path / "out" / "isolated-cat.png"))
    np.testing.assert_array_equal(cat == 255, r.isolate("cat"))
    export_scene(tmp_path / "out2", sketch, r, threshold=0.0)
    everything = np.asarray(Image.open(tmp_path / "out2" / "isolated-dog.png"))
    np.testing.assert_array_equal(everything == 255, r.ink)
    meta2 = json.loads((tmp_path / "out2" / "labelled.json").read_text())["metadata"]
    assert meta2["scene_labels"]["thresholds"]["dog"] == 0.0


def test_raster_only_exports(tmp_path: Path) -> None:
    sketch, _ = quadrant_sketch()
    ink = 255 - rasterize(
        sketch, (200, 300), frame=canvas_frame(sketch, (200, 300)), line_width=None
    )
    raster = Sketch(raster=ink, width=300, height=200)
    r = SceneLabeller(SceneBackbone()).label(raster, LABELS)
    names = [p.name for p in export_scene(tmp_path, raster, r)]
    assert "labelled.svg" not in names and "label_map.png" in names
    with pytest.raises(ValueError, match="raster-only"):
        scene_svg_bytes(raster, r)
    back = read_sketch(tmp_path / "labelled.json")
    assert back.is_raster
    comps = back.metadata["scene_labels"]["components"]
    assert [c["id"] for c in comps] == ["c1", "c2", "c3", "c4"]
    assert [c["label"] for c in comps] == list(r.stroke_label_names())
    with open(tmp_path / "strokes.csv", newline="", encoding="utf-8") as f:
        assert [row["stroke_id"] for row in csv.DictReader(f)] == ["c1", "c2", "c3", "c4"]


def test_unwritable_output_is_a_save_error(
    tmp_path: Path, labelled: tuple[Sketch, SceneLabels]
) -> None:
    sketch, r = labelled
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SaveError):
        export_scene(blocker / "out", sketch, r)


def test_exports_use_the_users_colours(
    tmp_path: Path, labelled: tuple[Sketch, SceneLabels]
) -> None:
    sketch, r = labelled
    mine = ["#FF0000", "#00ff00", "not a colour"]  # the last two labels fall back
    export_scene(tmp_path / "out", sketch, r, colors=mine)
    expect = ["#ff0000", "#00ff00", label_color(2), label_color(3)]
    root = ET.fromstring((tmp_path / "out" / "labelled.svg").read_bytes())
    strokes = {p.get("data-label"): p.get("stroke") for p in root.findall(f"{SVG}path")}
    assert strokes == dict(zip(LABELS, expect, strict=True))
    im = Image.open(tmp_path / "out" / "label_map.png")
    pal = im.getpalette()[3 : 3 * (len(LABELS) + 1)]
    assert pal == [int(c[i : i + 2], 16) for c in expect for i in (1, 3, 5)]
    meta = json.loads((tmp_path / "out" / "labelled.json").read_text())["metadata"]
    assert meta["scene_labels"]["colors"] == expect
