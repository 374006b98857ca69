"""QuerySpec: validation, parts, and the key (what the model sees, nothing else)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sketchpad.search.spec import LassoPart, QuerySpec, SectorPart, StrokesPart, resolve_part
from sketchpad.sketch.model import Sketch, Stroke


def sketch(**stroke_kw: object) -> Sketch:
    a = Stroke(np.array([[0.0, 0.0], [10.0, 20.0]]), id="a", **stroke_kw)  # type: ignore[arg-type]
    b = Stroke(np.array([[50.0, 5.0], [60.0, 25.0]]), id="b")
    return Sketch(strokes=(a, b), width=100, height=80)


BASE = sketch()


def key(**kw: object) -> str:
    return QuerySpec(**{"sketch": BASE, **kw}).key()  # type: ignore[arg-type]


def test_what_the_model_does_not_see_leaves_the_key_alone() -> None:
    same = [
        sketch(color="#ff0000"),
        sketch(label="cat"),
        sketch(width=9.0),
        sketch(times=np.array([0.0, 5.0]), pressure=np.array([0.2, 0.9])),
        dataclasses.replace(BASE, metadata={"labels": [{"name": "cat"}], "title": "x"}),
    ]
    for other in same:
        assert QuerySpec(sketch=other).key() == key()
    assert QuerySpec(sketch=BASE, text="  a cow ").key() == key(text="a cow")  # trimmed
    assert key(alpha=0.2) == key(alpha=0.7)  # α matters only with words


def test_what_the_model_sees_changes_the_key() -> None:
    moved = BASE.with_strokes(
        [dataclasses.replace(BASE.strokes[0], points=BASE.strokes[0].points + 1), BASE.strokes[1]]
    )
    renamed = BASE.with_strokes([dataclasses.replace(BASE.strokes[0], id="z"), BASE.strokes[1]])
    keys = [
        key(),
        QuerySpec(sketch=moved).key(),
        QuerySpec(sketch=renamed).key(),
        QuerySpec(sketch=dataclasses.replace(BASE, width=200)).key(),
        key(part=StrokesPart(("a",))),
        key(part=StrokesPart(("b",))),
        key(part=LassoPart(np.array([[0.0, 0], [30, 0], [30, 30]]), "cut")),
        key(part=LassoPart(np.array([[0.0, 0], [30, 0], [30, 30]]), "whole")),
        key(part=SectorPart(2, 0)),
        key(part=SectorPart(2, 1)),
        key(part=SectorPart(2, 0, 0.5)),
        key(text="a cow"),
        key(text="a cow", alpha=0.2),
        key(text="a dog"),
        key(compose=True),
        key(compose=True, groups=(("a",), ("b",))),
        key(compose=True, groups=(("a", "b"),)),
        QuerySpec(sketch=None, text="a cow").key(),
    ]
    assert len(set(keys)) == len(keys)


def test_raster_sketches_key_their_ink() -> None:
    ink = np.zeros((20, 20), np.uint8)
    ink[5:8, 5:15] = 255
    a = Sketch(raster=ink, width=20, height=20)
    moved = np.roll(ink, 2, axis=0)
    assert QuerySpec(sketch=a).key() != QuerySpec(sketch=dataclasses.replace(a, raster=moved)).key()


def test_specs_are_validated() -> None:
    with pytest.raises(ValueError, match="sketch or some words"):
        QuerySpec(sketch=None, text="   ")
    with pytest.raises(ValueError, match="empty"):
        QuerySpec(sketch=Sketch())
    with pytest.raises(ValueError, match="needs a sketch"):
        QuerySpec(sketch=None, text="x", compose=True)
    with pytest.raises(ValueError, match="cannot also be composed"):
        QuerySpec(sketch=BASE, part=StrokesPart(("a",)), compose=True)
    with pytest.raises(ValueError, match="alpha"):
        QuerySpec(sketch=BASE, alpha=-0.1)
    with pytest.raises(ValueError, match="K ≥ 3"):
        LassoPart(np.array([[0.0, 0], [1, 1]]))
    with pytest.raises(ValueError, match="non-finite"):
        LassoPart(np.array([[0.0, 0], [1, 1], [np.nan, 2]]))
    with pytest.raises(ValueError, match="does not exist"):
        SectorPart(2, 2)
    with pytest.raises(ValueError, match="empty"):
        StrokesPart(())


def test_parts_resolve_against_the_sketch() -> None:
    assert [s.id for s in resolve_part(BASE, StrokesPart(("b",))).strokes] == ["b"]
    with pytest.raises(ValueError, match="no longer in the sketch"):
        resolve_part(BASE, StrokesPart(("gone",)))
    lasso = LassoPart(np.array([[-1.0, -1], [15, -1], [15, 30], [-1, 30]]), "whole")
    assert [s.id for s in resolve_part(BASE, lasso).strokes] == ["a"]
    # A vertical partition line through the centroid parts the two strokes.
    halves = [resolve_part(BASE, SectorPart(2, k, math.pi / 2)) for k in (0, 1)]
    xs = sorted(float(h.all_points()[:, 0].mean()) for h in halves)
    assert xs[0] < 30 < xs[1]
