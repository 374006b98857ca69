"""The shipped vocabulary and labels proposed from captions."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest

from sketchpad.vision.scene_vocab import (
    RESOURCE,
    load_vocabulary,
    parse_label_list,
    parse_vocabulary,
    plural_forms,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_vocabulary_ships_with_the_package() -> None:
    assert importlib.resources.files("sketchpad").joinpath(RESOURCE).is_file()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"resources/*.txt"' in pyproject.split("[tool.setuptools.package-data]")[1]
    v = load_vocabulary()
    assert len(v.sections["coco"]) == 80
    # Quick, Draw!'s 345 names, less those COCO has already (airplane, ..., "teddy-bear").
    shared = 345 - len(v.sections["quickdraw"])
    assert 50 <= shared <= 60
    for name in ("person", "traffic light", "alarm clock", "The Eiffel Tower", "sky"):
        assert name in v.names
    assert "teddy-bear" not in v.names and "teddy bear" in v.names
    assert len(set(v.names)) == len(v.names)


@pytest.mark.parametrize(
    ("caption", "labels"),
    [
        ("Two men wait at traffic lights by a bus.", ("person", "traffic light", "bus")),
        (
            "Alarm clocks and teddy-bears on the dining table",
            ("alarm clock", "teddy bear", "dining table"),
        ),
        ("knives, mice and cookies", ("knife", "mouse", "cookie")),
        ("A house with houses behind it", ("house",)),
        ("a line of buses", ("bus",)),
        ("The dog's ball near the Eiffel Tower", ("dog", "sports ball", "The Eiffel Tower")),
        ("giraffes eating leaves from a tree", ("giraffe", "leaf", "tree")),
        ("an empty page", ()),
        ("", ()),
    ],
)
def test_labels_from_captions(caption: str, labels: tuple[str, ...]) -> None:
    assert load_vocabulary().labels_from_caption(caption) == labels


def test_plural_forms() -> None:
    assert plural_forms("knife") == ("knives", "knifes")
    assert plural_forms("bus") == ("buses",)
    assert plural_forms("strawberry") == ("strawberries",)
    assert plural_forms("key") == ("keys",)
    assert plural_forms("potato") == ("potatoes", "potatos")
    assert plural_forms("man") == ("men",)
    assert plural_forms("sheep") == ()


def test_parse_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"<text>:1: 'cat' is outside"):
        parse_vocabulary("cat\n")
    with pytest.raises(ValueError, match=r":2: unknown section \[animals\]"):
        parse_vocabulary("# names\n[animals]\ncat\n")
    with pytest.raises(ValueError, match=r":4: an alias line"):
        parse_vocabulary("[coco]\ncat\n[aliases]\nkitten cat\n")
    with pytest.raises(ValueError, match="points to 'dog'"):
        parse_vocabulary("[coco]\ncat\n[aliases]\npuppy = dog\n")
    f = tmp_path / "v.txt"
    f.write_text("[quickdraw]\ncat\nThe Cat\n[aliases]\nkitty = cat\n", encoding="utf-8")
    v = load_vocabulary(f)
    assert v.names == ("cat",)
    assert v.labels_from_caption("Kitties!") == ("cat",)


def test_typed_label_lists() -> None:
    assert parse_label_list(" tree,  house ,,Tree; blue  sky ") == ("tree", "house", "blue sky")
    assert parse_label_list(" , ") == ()
