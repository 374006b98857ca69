"""Undoable edits of a drawing's scene labels: the label table and the strokes' labels.

Each public method of :class:`LabelEdits` is one step on the document's undo stack (a macro
when it changes both the table in ``metadata["labels"]`` and some strokes), so undo and redo
restore both together, and autosave and Save store them with the drawing (see
:mod:`sketchpad.workspace.scene_label_table` for the storage). Edits the person must be told about
(a name already taken) raise :class:`EditRefused` with the message to show.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sketchpad.sketch.edit import SketchEdit
from sketchpad.ui.canvas.document import Document
from sketchpad.ui.canvas.tools.relabel import RASTER_NOTE
from sketchpad.workspace import scene_label_table as T

if TYPE_CHECKING:
    from sketchpad.vision.scene_labels import SceneLabels

UNPIN = "\x00unpin"  # the hand-relabel choice "let the labeller decide"


class EditRefused(ValueError):
    """An edit that cannot be made; the message says why, for the person."""


class LabelEdits:
    """Undoable label edits of ``document`` (see the module docstring)."""

    def __init__(self, document: Document) -> None:
        self.document = document

    @property
    def entries(self) -> tuple[T.LabelEntry, ...]:
        return T.effective_entries(self.document.sketch)

    @contextmanager
    def _step(self, text: str) -> Iterator[None]:
        stack = self.document.undo_stack
        stack.beginMacro(text)
        try:
            yield
        finally:
            stack.endMacro()

    def _write_table(self, entries: Iterable[T.LabelEntry], text: str) -> None:
        self.document.set_metadata(T.LABELS_KEY, T.table_json(entries), text)

    def _set_hand_labelled(self, ids: Iterable[str]) -> None:
        self.document.set_metadata(
            T.HAND_LABELLED_KEY, T.hand_labelled_json(ids), "Hand-labelled strokes"
        )

    # -- the table ---------------------------------------------------------------------------
    def add_labels(self, names: Iterable[str], text: str | None = None) -> list[str]:
        """Add the names not in the table yet (one step), each with the next free colour;
        returns the names added."""
        entries = list(self.entries)
        new = T.proposed_names(entries, names)
        if not new:
            return []
        for name in new:
            entries.append(T.LabelEntry(name, T.next_color(e.color for e in entries)))
        quoted = ", ".join(f"“{n}”" for n in new)
        self._write_table(entries, text or f"Add label{'s' if len(new) > 1 else ''} {quoted}")
        return new

    def add_label(self, name: str | None = None) -> str | None:
        """Add one label (default: an unused "label N"); None for an empty name.

        Raises:
            EditRefused: the name is a label already.
        """
        name = T.clean_name(name) if name is not None else T.new_label_name(self.entries)
        if not name:
            return None
        if T.find(self.entries, name) is not None:
            raise EditRefused(f"“{name}” is already a label.")
        return self.add_labels([name])[0]

    def remove_label(self, name: str) -> bool:
        """Remove a label; its strokes become unlabelled and no longer hand-labelled."""
        entries = self.entries
        i = T.find(entries, name)
        if i is None:
            return False
        sketch = self.document.sketch
        repl = T.renamed(sketch, entries[i].name, None)
        with self._step(f"Remove label “{entries[i].name}”"):
            self._write_table(entries[:i] + entries[i + 1 :], "Remove label")
            self.document.apply(SketchEdit.replace(sketch, repl), "Unlabel strokes")
            self._set_hand_labelled(T.hand_labelled(self.document.sketch) - set(repl))
        return True

    def rename_label(self, old: str, new: str) -> bool:
        """Rename a label and its strokes (one step); False when there is nothing to do.

        Raises:
            EditRefused: ``new`` is another label's name.
        """
        entries = list(self.entries)
        i = T.find(entries, old)
        name = T.clean_name(new)
        if i is None or not name or name == entries[i].name:
            return False
        j = T.find(entries, name)
        if j is not None and j != i:
            raise EditRefused(f"“{name}” is already a label: choose another name.")
        before = entries[i].name
        entries[i] = T.LabelEntry(name, entries[i].color)
        sketch = self.document.sketch
        with self._step(f"Rename label “{before}” to “{name}”"):
            self._write_table(entries, "Rename label")
            repl = T.renamed(sketch, before, name)
            self.document.apply(SketchEdit.replace(sketch, repl), "Relabel strokes")
        return True

    def set_label_color(self, name: str, color: str) -> bool:
        """Give a label another colour (``#rrggbb``); False when nothing changes."""
        entries = list(self.entries)
        i = T.find(entries, name)
        if i is None or not T.is_color(color) or entries[i].color == color.lower():
            return False
        entries[i] = T.LabelEntry(entries[i].name, color)
        self._write_table(entries, f"Colour of label “{entries[i].name}”")
        return True

    # -- hand relabels -----------------------------------------------------------------------
    def relabel_stroke(
        self, stroke_id: str, label: str | None, result: SceneLabels | None = None
    ) -> bool:
        """Give one stroke ``label`` by hand (None: unlabelled), one step; it is then
        hand-labelled, so labelling runs keep it. A name not in the table joins it in the same
        step. ``UNPIN`` hands the stroke back to the labeller: its label becomes the one in
        ``result`` (a labelling of the drawing as it is), if given.

        Raises:
            EditRefused: a bitmap sketch (its ink components are not strokes).
        """
        sketch = self.document.sketch
        if sketch.is_raster:
            raise EditRefused(RASTER_NOTE)
        try:
            stroke = sketch.strokes[sketch.index_of(stroke_id)]
        except KeyError:
            return False
        pinned = T.hand_labelled(sketch)
        if label == UNPIN:
            if stroke_id not in pinned:
                return False
            new = result.label_of(stroke_id) if result is not None else stroke.label
            with self._step("Let the labeller label the stroke"):
                self._set_hand_labelled(pinned - {stroke_id})
                repl = T.relabelled(sketch, {stroke_id: new})
                self.document.apply(SketchEdit.replace(sketch, repl), "Relabel stroke")
            return True
        entries = self.entries
        known = None if label is None else T.find(entries, label)
        if known is not None:
            label = entries[known].name  # the table's spelling
        if stroke.label == label and stroke_id in pinned:
            return False
        with self._step(f"Relabel stroke as “{label}”" if label else "Unlabel stroke"):
            if label is not None and known is None:
                self.add_labels([label])
            repl = T.relabelled(sketch, {stroke_id: label})
            self.document.apply(SketchEdit.replace(sketch, repl), "Relabel stroke")
            self._set_hand_labelled(pinned | {stroke_id})
        return True
