"""Part, composed and word queries through the engine, checked by the photos they find.

The reactive stand-in (tests/planted.py) embeds a sketch by where its ink is (left of centre →
"red", right → "green") and words by the colours they name; photos have red, green or blue
objects. A query that lost its part, its groups or its words finds other photos, so these tests
fail when the search core drops any of them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from planted import LEFT, TWO_SIDES
from standins import StandInLoader, make_colour_photos

from sketchpad.engine.client import Engine
from sketchpad.engine.requests import QueryResult
from sketchpad.search.spec import LassoPart, SectorPart, StrokesPart
from sketchpad.sketch.model import Sketch, Stroke

WAIT_MS = 10_000
NAMES = ["blue.png", "green.png", "none.png", "red.png", "red_green.png"]


@pytest.fixture
def engine(make_engine: Any, loader: StandInLoader, qtbot: Any, tmp_path: Path) -> Engine:
    e = make_engine(loader)
    make_colour_photos(tmp_path / "colours")
    with qtbot.waitSignal(e.modelLoaded, timeout=WAIT_MS):
        e.load_model("planted")
    with qtbot.waitSignal(e.indexFinished, timeout=WAIT_MS):
        e.open_folder(tmp_path / "colours")
    return e


def ask(engine: Engine, qtbot: Any, **query: Any) -> QueryResult:
    with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as blocker:
        engine.query(mask_names=tuple(NAMES), mask_side=128, **query)
    result: QueryResult = blocker.args[0]
    assert sorted(result.names) == NAMES
    return result


def found(result: QueryResult) -> set[str]:
    """The photos that match (score ≥ the threshold)."""
    return {n for n, s in zip(result.names, result.photo_scores, strict=True) if s >= 0.5}


def columns(result: QueryResult, name: str) -> set[str]:
    """Which side of the two-object photo the mask covers: "left" (red), "right" (green)."""
    m = result.masks[name].mask
    return {side for side, cols in (("left", m[:, :32]), ("right", m[:, 96:])) if cols.any()}


def test_the_whole_sketch_finds_both_of_its_colours(engine: Engine, qtbot: Any) -> None:
    r = ask(engine, qtbot, sketch=TWO_SIDES)
    assert found(r) == {"red.png", "green.png", "red_green.png"}
    assert columns(r, "red_green.png") == {"left", "right"}


@pytest.mark.parametrize(
    ("part", "colour"),
    [
        (StrokesPart(("left",)), "red"),
        (StrokesPart(("right",)), "green"),
        (LassoPart(np.array([[-5.0, -5], [30, -5], [30, 45], [-5, 45]]), "whole"), "red"),
        (LassoPart(np.array([[70.0, -5], [110, -5], [110, 45], [70, 45]]), "cut"), "green"),
    ],
    ids=["strokes-left", "strokes-right", "lasso-left", "lasso-right-cut"],
)
def test_a_part_query_finds_only_what_the_part_shows(
    engine: Engine, qtbot: Any, part: Any, colour: str
) -> None:
    r = ask(engine, qtbot, sketch=TWO_SIDES, part=part)
    assert found(r) == {f"{colour}.png", "red_green.png"}
    assert columns(r, "red_green.png") == {"left" if colour == "red" else "right"}


def test_the_two_sectors_of_a_vertical_partition_are_the_two_sides(
    engine: Engine, qtbot: Any
) -> None:
    seen = []
    for k in (0, 1):
        r = ask(engine, qtbot, sketch=TWO_SIDES, part=SectorPart(2, k, math.pi / 2))
        seen.append(found(r) - {"red_green.png"})
    assert sorted(seen, key=sorted) == [{"green.png"}, {"red.png"}]


@pytest.mark.parametrize("groups", [(("left",), ("right",)), None], ids=["given", "automatic"])
def test_a_composed_query_masks_each_object_with_its_group(
    engine: Engine, qtbot: Any, groups: Any
) -> None:
    r = ask(engine, qtbot, sketch=TWO_SIDES, compose=True, groups=groups)
    assert [s.query.label for s in r.scores] == ["sketch", "group 1", "group 2"]
    assert found(r) == {"red.png", "green.png", "red_green.png"}
    m = r.masks["red_green.png"]
    assert m.group_map is not None
    left, right = m.group_map[:, :32][m.mask[:, :32]], m.group_map[:, 96:][m.mask[:, 96:]]
    (g_left,), (g_right,) = set(left.tolist()), set(right.tolist())
    # Each object is claimed by the group that drew it, not by the whole sketch (group 1).
    by_stroke = {s.query.stroke_ids: k + 1 for k, s in enumerate(r.scores)}
    assert g_left == by_stroke[("left",)] and g_right == by_stroke[("right",)]


@pytest.mark.parametrize(
    ("alpha", "expect"),
    [
        (1.0, {"red.png", "red_green.png"}),  # the sketch only
        (0.5, {"red.png", "red_green.png", "blue.png"}),
        (0.0, {"blue.png"}),  # the words only
    ],
)
def test_words_mix_into_the_sketch_by_alpha(
    engine: Engine, qtbot: Any, alpha: float, expect: set[str]
) -> None:
    r = ask(engine, qtbot, sketch=TWO_SIDES, part=StrokesPart((LEFT.id,)), text="blue", alpha=alpha)
    assert found(r) == expect


def test_words_alone_and_words_in_every_group(engine: Engine, qtbot: Any) -> None:
    assert found(ask(engine, qtbot, sketch=None, text="a green thing")) == {
        "green.png",
        "red_green.png",
    }
    r = ask(engine, qtbot, sketch=TWO_SIDES, compose=True, text="blue", alpha=0.5)
    assert [s.query.label for s in r.scores] == [
        "sketch + text",
        "group 1 + text",
        "group 2 + text",
    ]
    assert "blue.png" in found(r)  # the words reached the groups (the CLI once dropped them)
    per_group = [
        {n for n, s in zip(r.names, g.photo_scores, strict=True) if s >= 0.5} for g in r.scores
    ]
    assert per_group[1] == {"red.png", "red_green.png", "blue.png"}
    assert per_group[2] == {"green.png", "red_green.png", "blue.png"}


@pytest.mark.parametrize(("mode", "expect"), [("cut", {"red"}), ("whole", {"red", "green"})])
def test_a_lasso_through_a_stroke_cuts_it_or_takes_it_whole(
    engine: Engine, qtbot: Any, mode: str, expect: set[str]
) -> None:
    """An L whose foot runs across the whole drawing: a lasso around its left end takes only
    that end in "cut" mode (red), the whole L in "whole" mode (red and green)."""
    ell = Sketch(
        strokes=(Stroke(np.array([[0.0, 0.0], [0.0, 10.0], [100.0, 10.0]]), id="ell"),),
        width=100,
        height=100,
    )
    lasso = LassoPart(np.array([[-5.0, -5], [30, -5], [30, 45], [-5, 45]]), mode)  # type: ignore[arg-type]
    r = ask(engine, qtbot, sketch=ell, part=lasso)
    assert found(r) - {"red_green.png"} == {f"{c}.png" for c in expect}


def test_a_composed_query_unites_what_only_a_group_finds(engine: Engine, qtbot: Any) -> None:
    """A long stroke on the left and a short one on the right: the whole sketch is mostly
    "red" and misses the green object; the right group alone finds it, and the composed
    query's masks are the union of its vectors'."""
    long_left = Stroke(np.array([[0.0, 0.0], [0.0, 60.0], [30.0, 60.0], [30.0, 0.0]]), id="L")
    short_right = Stroke(np.array([[95.0, 55.0], [100.0, 60.0]]), id="R")
    sketch = Sketch(strokes=(long_left, short_right), width=100, height=100)
    whole = ask(engine, qtbot, sketch=sketch)
    assert "green.png" not in found(whole)
    r = ask(engine, qtbot, sketch=sketch, compose=True, groups=(("L",), ("R",)))
    assert {"red.png", "green.png"} <= found(r)
    assert columns(r, "red_green.png") == {"left", "right"}
    assert r.masks["green.png"].mask.any()
