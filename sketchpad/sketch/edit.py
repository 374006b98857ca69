"""Edits as deltas: what the undo stack stores (DESIGN §6: deltas, not snapshots).

A :class:`SketchEdit` removes some strokes and inserts others, by position. It is
pure data: ``edit.apply(sketch)`` gives the new sketch and ``edit.inverse()``
undoes it. The Qt undo commands in ``sketchpad.ui`` are thin wrappers around it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .model import Sketch, Stroke


class EditConflict(ValueError):
    """The edit does not fit the sketch it is applied to (a programming error)."""


@dataclass(frozen=True)
class SketchEdit:
    """Remove ``removed`` then insert ``added``.

    Attributes:
        removed: (index in the sketch before the edit, stroke), ascending index.
        added: (index in the sketch after the edit, stroke), ascending index.
    """

    removed: tuple[tuple[int, Stroke], ...] = ()
    added: tuple[tuple[int, Stroke], ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.removed and not self.added

    def inverse(self) -> SketchEdit:
        return SketchEdit(removed=self.added, added=self.removed)

    def apply(self, sketch: Sketch) -> Sketch:
        strokes = list(sketch.strokes)
        for index, stroke in reversed(self.removed):
            if index >= len(strokes) or strokes[index].id != stroke.id:
                raise EditConflict(f"edit expected stroke {stroke.id!r} at position {index}")
            del strokes[index]
        for index, stroke in self.added:
            if index > len(strokes):
                raise EditConflict(
                    f"edit inserts at position {index} past the end ({len(strokes)})"
                )
            strokes.insert(index, stroke)
        return sketch.with_strokes(strokes)

    # -- constructors --------------------------------------------------------------------
    @staticmethod
    def add(sketch: Sketch, strokes: Sequence[Stroke], at: int | None = None) -> SketchEdit:
        """Insert ``strokes`` at position ``at`` (default: on top, at the end)."""
        start = len(sketch.strokes) if at is None else at
        return SketchEdit(added=tuple((start + i, s) for i, s in enumerate(strokes)))

    @staticmethod
    def remove(sketch: Sketch, stroke_ids: Iterable[str]) -> SketchEdit:
        ids = set(stroke_ids)
        return SketchEdit(
            removed=tuple((i, s) for i, s in enumerate(sketch.strokes) if s.id in ids)
        )

    @staticmethod
    def replace(sketch: Sketch, replacements: Mapping[str, Sequence[Stroke]]) -> SketchEdit:
        """Replace each stroke named in ``replacements`` by zero or more strokes, in place.

        Used for cuts (one stroke → pieces), erasing (→ fewer pieces or none), moves and
        relabels (→ one changed stroke).
        """
        removed: list[tuple[int, Stroke]] = []
        added: list[tuple[int, Stroke]] = []
        offset = 0  # position shift in the new sketch caused by earlier replacements
        for i, s in enumerate(sketch.strokes):
            if s.id not in replacements:
                continue
            new = list(replacements[s.id])
            removed.append((i, s))
            for k, t in enumerate(new):
                added.append((i + offset + k, t))
            offset += len(new) - 1
        return SketchEdit(removed=tuple(removed), added=tuple(added))
