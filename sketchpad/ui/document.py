"""The open drawing: a Sketch, its file, its undo stack and the current selection.

Views subscribe to :class:`Document` signals; every change of the sketch goes
through an undo command on ``undo_stack``: :class:`EditCommand` for strokes,
:class:`MetadataCommand` for one entry of ``Sketch.metadata`` (the scene-label table). The
selection (a set of stroke ids) is view state: it is not on the undo stack.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.model import Sketch

_merge_ids = itertools.count(1)


def new_merge_key() -> int:
    """A fresh key: commands pushed with the same key merge into one undo step (one drag)."""
    return next(_merge_ids)


class EditCommand(QUndoCommand):
    """One undoable change of the document's sketch; consecutive commands with the same
    ``merge_key`` (one mouse drag) merge into a single step."""

    ID = 1001

    def __init__(self, document: Document, edit: SketchEdit, text: str, merge_key: int = 0) -> None:
        super().__init__(text)
        self._document = document
        self._edits: list[SketchEdit] = [edit]
        self.merge_key = merge_key

    def id(self) -> int:  # noqa: A003 (Qt API)
        return self.ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 (Qt API)
        if not isinstance(other, EditCommand) or other.merge_key != self.merge_key:
            return False
        self._edits.extend(other._edits)
        return True

    def redo(self) -> None:
        # The first redo() happens in QUndoStack.push(); a merged command has already
        # been applied by its own push, so only the first edit list runs here then.
        sketch = self._document.sketch
        for e in self._edits:
            sketch = e.apply(sketch)
        self._document._set_sketch(sketch)

    def undo(self) -> None:
        sketch = self._document.sketch
        for e in reversed(self._edits):
            sketch = e.inverse().apply(sketch)
        self._document._set_sketch(sketch)


_MISSING = object()  # a metadata key that was not there


class MetadataCommand(QUndoCommand):
    """One undoable change of ``Sketch.metadata[key]`` (``_MISSING`` removes the key); the
    strokes are untouched."""

    def __init__(self, document: Document, key: str, value: Any, text: str) -> None:
        super().__init__(text)
        self._document = document
        self._key = key
        self._new = value
        self._old = document.sketch.metadata.get(key, _MISSING)

    def _put(self, value: Any) -> None:
        sketch = self._document.sketch
        metadata = dict(sketch.metadata)
        if value is _MISSING:
            metadata.pop(self._key, None)
        else:
            metadata[self._key] = value
        self._document._set_sketch(sketch.replace(metadata=metadata))

    def redo(self) -> None:
        self._put(self._new)

    def undo(self) -> None:
        self._put(self._old)


class Document(QObject):
    """Signals: ``sketch_changed()`` after any change of the strokes or canvas,
    ``selection_changed()``, ``path_changed()``; ``undo_stack.cleanChanged`` tells the
    modified state; ``document_reset()`` after :meth:`reset` (a new drawing: views refit)."""

    sketch_changed = Signal()
    selection_changed = Signal()
    path_changed = Signal()
    document_reset = Signal()

    def __init__(
        self, sketch: Sketch | None = None, path: Path | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._sketch = sketch if sketch is not None else Sketch()
        self._path = path
        self._selection: frozenset[str] = frozenset()
        self.undo_stack = QUndoStack(self)  # no undo limit: deltas are small

    # -- state ---------------------------------------------------------------------------
    @property
    def sketch(self) -> Sketch:
        return self._sketch

    @property
    def path(self) -> Path | None:
        return self._path

    def set_path(self, path: Path | None) -> None:
        self._path = path
        self.path_changed.emit()

    @property
    def is_modified(self) -> bool:
        return not self.undo_stack.isClean()

    def mark_saved(self, path: Path) -> None:
        self.set_path(path)
        self.undo_stack.setClean()

    def reset(self, sketch: Sketch, path: Path | None, *, modified: bool = False) -> None:
        """Replace the whole document (open, new, restore): history and selection cleared."""
        self.undo_stack.clear()
        self._selection = frozenset()
        self._sketch = sketch
        self._path = path
        if modified:
            # A restored autosave differs from what is on disk: make it "dirty" without
            # an undo step, so the user is asked before closing it.
            self.undo_stack.resetClean()
        self.sketch_changed.emit()
        self.selection_changed.emit()
        self.path_changed.emit()
        self.document_reset.emit()

    def _set_sketch(self, sketch: Sketch) -> None:
        self._sketch = sketch
        live = {s.id for s in sketch.strokes}
        if not self._selection <= live:
            self._selection = self._selection & live
            self.selection_changed.emit()
        self.sketch_changed.emit()

    # -- selection -----------------------------------------------------------------------
    @property
    def selection(self) -> frozenset[str]:
        return self._selection

    def set_selection(self, stroke_ids: Iterable[str]) -> None:
        live = {s.id for s in self._sketch.strokes}
        sel = frozenset(i for i in stroke_ids if i in live)
        if sel != self._selection:
            self._selection = sel
            self.selection_changed.emit()

    def selected_sketch(self) -> Sketch:
        """The selected strokes as a sketch on the same canvas (the part query)."""
        return self._sketch.subset(self._selection)

    # -- editing -------------------------------------------------------------------------
    def apply(self, edit: SketchEdit, text: str, merge_key: int = 0) -> None:
        """Push ``edit`` as an undoable command; an empty edit does nothing."""
        if edit.is_empty:
            return
        self.undo_stack.push(EditCommand(self, edit, text, merge_key))

    def set_metadata(self, key: str, value: Any, text: str) -> None:
        """Push ``metadata[key] = value`` as an undoable command (``value`` None removes the
        key); nothing happens when the value is already that. ``value`` must be
        JSON-serialisable (it is saved with the drawing) and is not copied: never mutate it."""
        old = self._sketch.metadata.get(key, _MISSING)
        new = _MISSING if value is None else value
        if old is new or (old is not _MISSING and new is not _MISSING and old == new):
            return
        self.undo_stack.push(MetadataCommand(self, key, new, text))
