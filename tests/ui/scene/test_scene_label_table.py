"""The label table in Sketch.metadata (pure functions) and Document's undoable metadata edits."""

from __future__ import annotations

import numpy as np
import pytest

from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.ui.canvas.document import Document
from sketchpad.workspace import scene_label_table as T


def _stroke(sid: str, label: str | None = None) -> Stroke:
    return Stroke(np.array([[0.0, 0.0], [10.0, 10.0]]), id=sid, label=label)


def test_palette_matches_the_exports() -> None:
    from sketchpad.vision.scene_export import LABEL_PALETTE

    assert T.DEFAULT_PALETTE == LABEL_PALETTE


def test_stored_entries_skip_malformed_rows_and_fill_colours() -> None:
    meta = {
        "labels": [
            {"name": "  big   tree ", "color": "#2CA02C"},
            {"name": "Big tree", "color": "#000000"},  # repeated (case and spaces ignored)
            {"name": "", "color": "#123456"},
            {"color": "#123456"},
            "dog",  # a bare name gets the next free colour
            {"name": "cat", "color": "red"},  # not #rrggbb: next free colour
            42,
        ]
    }
    entries = T.stored_entries(meta)
    assert entries == (
        T.LabelEntry("big tree", "#2ca02c"),
        T.LabelEntry("dog", T.DEFAULT_PALETTE[0]),
        T.LabelEntry("cat", T.DEFAULT_PALETTE[1]),
    )
    assert T.stored_entries({"labels": "tree"}) == ()
    assert T.stored_entries({}) == ()


def test_effective_entries_add_stroke_labels_missing_from_the_table() -> None:
    sketch = Sketch(
        strokes=(_stroke("a", "sun"), _stroke("b", "tree"), _stroke("c"), _stroke("d", "sun")),
        metadata={"labels": [{"name": "tree", "color": "#1f77b4"}]},
    )
    assert T.effective_entries(sketch) == (
        T.LabelEntry("tree", "#1f77b4"),
        T.LabelEntry("sun", T.DEFAULT_PALETTE[1]),  # the first palette colour is taken
    )
    assert T.stroke_counts(sketch) == {"sun": 2, "tree": 1}


def test_entry_validation_and_helpers() -> None:
    with pytest.raises(ValueError, match="name"):
        T.LabelEntry("  ", "#000000")
    with pytest.raises(ValueError, match="color"):
        T.LabelEntry("tree", "#12345")
    entries = (T.LabelEntry("label", "#1f77b4"), T.LabelEntry("label 2", "#ff7f0e"))
    assert T.new_label_name(entries) == "label 3"
    assert T.proposed_names(entries, ["Label", "dog", "dog", " Dog ", "cat"]) == ["dog", "cat"]
    assert T.next_color(T.DEFAULT_PALETTE) == T.DEFAULT_PALETTE[0]  # all used: least used
    assert T.next_color(list(T.DEFAULT_PALETTE) + [T.DEFAULT_PALETTE[0]]) == T.DEFAULT_PALETTE[1]


def test_relabelled_changes_only_what_differs_and_keeps_hand_labels() -> None:
    sketch = Sketch(
        strokes=(_stroke("a", "cat"), _stroke("b", "dog"), _stroke("c")),
        metadata={"hand_labelled": ["b", "gone"]},
    )
    assert T.hand_labelled(sketch) == {"b"}  # ids of erased strokes are ignored
    repl = T.relabelled(sketch, {"a": "cat", "b": "sun", "c": "sun", "x": "sun"}, keep={"b"})
    assert list(repl) == ["c"] and repl["c"][0].label == "sun" and repl["c"][0].id == "c"
    assert set(T.renamed(sketch, "cat", None)) == {"a"}


def test_document_metadata_edits_are_undoable() -> None:
    doc = Document(Sketch(metadata={"category": "cat"}))
    doc.set_metadata("labels", [{"name": "tree", "color": "#2ca02c"}], "Add label")
    assert doc.sketch.metadata["labels"] == [{"name": "tree", "color": "#2ca02c"}]
    doc.set_metadata("labels", [{"name": "tree", "color": "#2ca02c"}], "Same again")
    assert doc.undo_stack.count() == 1  # no step when nothing changes
    doc.set_metadata("labels", None, "Remove")
    assert "labels" not in doc.sketch.metadata and doc.sketch.metadata["category"] == "cat"
    doc.undo_stack.undo()
    assert doc.sketch.metadata["labels"] == [{"name": "tree", "color": "#2ca02c"}]
    doc.undo_stack.undo()
    assert dict(doc.sketch.metadata) == {"category": "cat"}
    doc.undo_stack.redo()
    assert doc.sketch.metadata["labels"][0]["name"] == "tree"
    assert doc.is_modified
