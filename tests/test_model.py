"""Stroke/Sketch validation and SketchEdit deltas."""

from __future__ import annotations

import numpy as np
import pytest

from sketchpad.sketch.edit import EditConflict, SketchEdit
from sketchpad.sketch.model import Sketch, Stroke, sketch_from_polylines


def test_stroke_normalises_and_freezes_arrays() -> None:
    s = Stroke(points=[[1, 2], [3, 4]], times=[0, 10], point_labels=[1, 2])
    assert s.points.dtype == np.float64 and s.points.shape == (2, 2)
    assert s.point_labels.dtype == np.int64
    with pytest.raises(ValueError):
        s.points[0, 0] = 5  # read-only


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"points": np.zeros((0, 2))}, "empty"),
        ({"points": [[0, np.nan]]}, "NaN"),
        ({"points": [[0, np.inf]]}, "infinite"),
        ({"points": [1, 2, 3]}, "shape"),
        ({"points": [[0, 0]], "times": [1, 2]}, "times"),
        ({"points": [[0, 0]], "pressure": [2.0]}, "pressure"),
        ({"points": [[0, 0]], "width": 0}, "width"),
        ({"points": [[0, 0]], "color": "red"}, "color"),
        ({"points": [["a", "b"]]}, "numeric"),
    ],
)
def test_stroke_validation_names_the_problem(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Stroke(**kwargs)


def test_sketch_validation() -> None:
    a = Stroke(points=[[0, 0]], id="x")
    with pytest.raises(ValueError, match="duplicate stroke id"):
        Sketch(strokes=(a, Stroke(points=[[1, 1]], id="x")))
    with pytest.raises(ValueError, match="width"):
        Sketch(width=-1)
    with pytest.raises(ValueError, match="raster"):
        Sketch(raster=np.zeros((3, 4), np.uint8), width=5, height=3)
    r = Sketch(raster=np.zeros((3, 4), np.uint8), width=4, height=3)
    assert r.is_raster and r.bbox() is None


def test_sketch_geometry_helpers() -> None:
    sk = sketch_from_polylines([[[0, 0], [2, 0]], [[2, 4]]])
    assert sk.centroid() == (4 / 3, 4 / 3)
    assert sk.bbox() == (0, 0, 2, 4)
    assert sk.subset([sk.strokes[1].id]).strokes == (sk.strokes[1],)


def _sk(n: int) -> Sketch:
    return Sketch(strokes=tuple(Stroke(points=[[i, i]], id=f"s{i}") for i in range(n)))


def test_edit_replace_apply_and_inverse() -> None:
    sk = _sk(4)
    pieces = (Stroke(points=[[9, 9]], id="p1"), Stroke(points=[[8, 8]], id="p2"))
    edit = SketchEdit.replace(sk, {"s1": pieces, "s3": ()})
    after = edit.apply(sk)
    assert [s.id for s in after.strokes] == ["s0", "p1", "p2", "s2"]
    assert edit.inverse().apply(after) == sk


def test_edit_add_remove() -> None:
    sk = _sk(3)
    add = SketchEdit.add(sk, [Stroke(points=[[5, 5]], id="n")], at=1)
    after = add.apply(sk)
    assert [s.id for s in after.strokes] == ["s0", "n", "s1", "s2"]
    rem = SketchEdit.remove(after, ["s0", "s2"])
    assert [s.id for s in rem.apply(after).strokes] == ["n", "s1"]
    assert rem.inverse().apply(rem.apply(after)) == after


def test_edit_conflict_is_detected() -> None:
    edit = SketchEdit.remove(_sk(3), ["s1"])
    with pytest.raises(EditConflict):
        edit.apply(_sk(1))
