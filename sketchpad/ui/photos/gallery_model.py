"""The gallery's list model: one row per photo, with the latest query's score and mask.

Rows stay in the order photos were added (the scan's order, then photos joining while the
folder is indexed); scores are one numpy array aligned with them (one assignment per result).

Scores are the photo scores of :mod:`sketchpad.search.scoring` (``QueryResult.photo_scores``):
they do not depend on the threshold. A photo *matches* when its score is ≥ the threshold shown;
photos without a score yet (still being indexed, or no query) do not match.

``set_threshold`` re-cuts the stored masks locally (``sketchpad.search.masks.rethreshold``: no
model), lazily: a mask is recomputed when first asked for under the new threshold (the delegate
asks only for cells on screen). Scores and ranking do not change; which photos match does.

The gallery as shown (sorted, filtered) is :class:`sketchpad.ui.photos.gallery_proxy.GalleryProxy`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)

from sketchpad.gallery.decode import natural_key
from sketchpad.names import display_name

if TYPE_CHECKING:  # at run time only duck-typed: importing them would import torch
    from sketchpad.engine.requests import MaskResult, QueryResult
    from sketchpad.gallery.review import FolderReview
    from sketchpad.search.masks import PhotoMask

log = logging.getLogger(__name__)

ModelIndex = QModelIndex | QPersistentModelIndex
SortKey = Literal["score", "name"]

NameRole = Qt.ItemDataRole.UserRole + 1  #: str: the name relative to the folder
PathRole = Qt.ItemDataRole.UserRole + 2  #: Path: the photo file
ScoreRole = Qt.ItemDataRole.UserRole + 3  #: float | None: the photo score in [0, 1]
MaskRole = Qt.ItemDataRole.UserRole + 4  #: PhotoMask | None, at the current threshold
MatchRole = Qt.ItemDataRole.UserRole + 5  #: bool: score ≥ the threshold shown
#: Hashable identity of the mask's current pixels (name, query generation, threshold, serial)
#: for caches of things drawn from it; None without a mask.
MaskKeyRole = Qt.ItemDataRole.UserRole + 6

#: Cell: everything the delegate paints, in one call (each ``data`` call through the proxy
#: costs two Python round trips, and a cell would otherwise need six).
CellRole = Qt.ItemDataRole.UserRole + 7
#: "accepted" | "rejected" | None: the photo's review state (``set_review``).
ReviewRole = Qt.ItemDataRole.UserRole + 8


@dataclass(frozen=True)
class Cell:
    """What one gallery cell shows (``CellRole``): the values of the roles of the same names."""

    name: str
    path: Path | None  # None without a folder
    score: float | None
    match: bool
    mask: PhotoMask | None  # at the current threshold; the user's correction where made
    mask_key: tuple[str, int, float, int] | None
    review: str | None = None  # "accepted", "rejected" or None
    corrected: bool = False  # the user corrected this photo's mask


_RESULT_ROLES = [ScoreRole, MatchRole, MaskRole, MaskKeyRole, CellRole, Qt.ItemDataRole.ToolTipRole]
_REVIEW_ROLES = [ReviewRole, MaskRole, MaskKeyRole, CellRole, Qt.ItemDataRole.ToolTipRole]
_MASK_ROLES = [MaskRole, MaskKeyRole, CellRole, Qt.ItemDataRole.ToolTipRole]


_DIGITS = re.compile(r"([0-9]+)")


def name_sort_key(name: str) -> tuple[str, ...]:
    """Natural order of a name relative to the folder, folder by folder (as the scan sorts):
    per part, a string that sorts as ``decode.natural_key(part)`` does, then the part itself
    (natural_key's tie-break). Strings, not nested tuples: half the time for 10,000 names."""
    if os.altsep:
        name = name.replace(os.altsep, os.sep)
    key: list[str] = []
    for part in name.split(os.sep):
        key += (_part_key(part), part)
    return tuple(key)


def _part_key(part: str) -> str:
    """``natural_key(part)``'s order as one string: text tokens as they are, each digit run as
    NUL + its 4-digit length + its digits (NUL sorts before any text, as a shorter tuple
    does). ASCII names skip natural_key: there NFC is the identity and casefold is lower."""
    if part.isascii():
        tokens = _DIGITS.split(part.lower())
        for i in range(1, len(tokens), 2):
            digits = tokens[i].lstrip("0")
            tokens[i] = f"\0{len(digits):04d}{digits}"
        return "".join(tokens)
    parts = natural_key(part)[0]
    return "".join(f"\0{t[0]:04d}{t[1]}" if i % 2 else str(t) for i, t in enumerate(parts))


class GalleryModel(QAbstractListModel):
    """Photos of one folder and the latest query's scores and masks (see the module docstring).

    Args:
        parent: Qt parent.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._folder: Path | None = None
        self._names: list[str] = []
        self._rows: dict[str, int] = {}
        self._scores = np.zeros(0, dtype=np.float32)  # NaN: no score
        self._rank: np.ndarray | None = None  # natural-order position of each row, lazily
        # (the result names tuple, the row count then, their rows): see apply_result
        self._result_rows: tuple[tuple[str, ...], int, np.ndarray] | None = None
        self._keys: dict[str, tuple[str, ...]] = {}
        self._base_masks: dict[str, PhotoMask] = {}  # as the engine sent them
        self._derived: dict[str, PhotoMask] = {}  # re-thresholded, at self._threshold
        self._serial: dict[str, int] = {}
        self._next_serial = 0
        self._generation: int | None = None
        self._threshold: float | None = None
        self._review: FolderReview | None = None

    # -- photos ------------------------------------------------------------------------------
    @property
    def folder(self) -> Path | None:
        """The photo folder, or None."""
        return self._folder

    def names(self) -> tuple[str, ...]:
        """Every photo name, in row order."""
        return tuple(self._names)

    def set_folder(
        self, folder: Path, names: Sequence[str], *, natural_order: bool = False
    ) -> None:
        """Show ``folder``'s photos ``names`` (relative to it); results are cleared.

        Args:
            natural_order: ``names`` are already in natural order (as ``scan_folder`` lists
                them), so sorting them by name needs no sort keys (≈ 40 ms for 10,000).
        """
        self.beginResetModel()
        self._folder = Path(folder)
        self._names = []
        self._rows = {}
        self._keys = {}
        for name in names:
            if name not in self._rows:
                self._rows[name] = len(self._names)
                self._names.append(name)
        self._scores = np.full(len(self._names), np.nan, dtype=np.float32)
        self._rank = np.arange(len(self._names), dtype=np.int64) if natural_order else None
        self._result_rows = None
        self._drop_results()
        self.endResetModel()

    def add_names(self, names: Iterable[str]) -> int:
        """Append photos not shown yet (they join while the folder is indexed); returns how
        many were added."""
        new: list[str] = []
        seen = set(self._rows)
        for name in names:
            if name not in seen:
                seen.add(name)
                new.append(name)
        if not new:
            return 0
        first = len(self._names)
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        for name in new:
            self._rows[name] = len(self._names)
            self._names.append(name)
        self._scores = np.concatenate([self._scores, np.full(len(new), np.nan, np.float32)])
        self._rank = None
        self.endInsertRows()
        return len(new)

    def row_of(self, name: str) -> int | None:
        """The row of photo ``name``, or None."""
        return self._rows.get(name)

    def path_of(self, name: str) -> Path | None:
        """The file of photo ``name`` (whether or not it is shown), or None without a folder."""
        return None if self._folder is None else self._folder / name

    def name_ranks(self) -> np.ndarray:
        """(N,) int64: each row's position in natural name order (computed once per change)."""
        if self._rank is None:
            for name in self._names:
                if name not in self._keys:
                    self._keys[name] = name_sort_key(name)
            keys = self._keys
            order = sorted(range(len(self._names)), key=lambda r: keys[self._names[r]])
            rank = np.empty(len(order), dtype=np.int64)
            rank[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
            self._rank = rank
        return self._rank

    # -- results -----------------------------------------------------------------------------
    @property
    def has_query(self) -> bool:
        """Whether a query result is shown."""
        return self._generation is not None

    @property
    def generation(self) -> int | None:
        """The generation of the query shown, or None."""
        return self._generation

    @property
    def threshold(self) -> float | None:
        """The mask threshold shown (the result's, or the last ``set_threshold``), or None."""
        return self._threshold

    def scores(self) -> np.ndarray:
        """(N,) float32 ranking scores by row, NaN where there is none (read-only view)."""
        view = self._scores.view()
        view.flags.writeable = False
        return view

    def matches(self) -> np.ndarray:
        """(N,) bool by row: the photo's score reaches the threshold shown."""
        if self._threshold is None:
            return np.zeros(len(self._names), dtype=bool)
        with np.errstate(invalid="ignore"):
            return self._scores >= self._threshold  # NaN (no score) never matches

    def is_match(self, name: str) -> bool:
        """Whether photo ``name``'s score reaches the threshold shown."""
        s = self.score_for(name)
        return s is not None and self._threshold is not None and s >= self._threshold

    def score_for(self, name: str) -> float | None:
        """Photo ``name``'s photo score, or None."""
        row = self._rows.get(name)
        if row is None or np.isnan(self._scores[row]):
            return None
        return float(self._scores[row])

    def mask_for(self, name: str) -> PhotoMask | None:
        """Photo ``name``'s mask at the current threshold, or None (not asked for yet); the
        user's corrected mask instead where there is one (at the thumbnail mask's size)."""
        base = self._base_masks.get(name)
        if base is None:
            return None
        t = self._threshold
        derived = self._derived.get(name)
        if derived is not None:
            return derived
        review = self._review
        if review is not None and review.has_correction(name):
            derived = review.mask_for(name, base if t is None else replace(base, threshold=t))
            self._derived[name] = derived
            return derived
        if t is None or t == base.threshold:
            return base
        if derived is None:
            from sketchpad.search.masks import rethreshold  # cv2: on first use, not at start

            derived = rethreshold(base, t)
            self._derived[name] = derived
        return derived

    # -- review ------------------------------------------------------------------------------
    @property
    def review(self) -> FolderReview | None:
        return self._review

    def set_review(self, review: FolderReview | None) -> None:
        """The folder's review (accepted / rejected, corrected masks), shown in every cell."""
        self._review = review
        self._derived = {}
        self._changed(_REVIEW_ROLES)

    def review_state(self, name: str) -> str | None:
        return self._review.state(name) if self._review is not None else None

    def review_states(self) -> np.ndarray:
        """(N,) int8 by row: 0 not reviewed, 1 accepted, 2 rejected."""
        out = np.zeros(len(self._names), dtype=np.int8)
        if self._review is not None:
            for state, code in (("accepted", 1), ("rejected", 2)):
                for name in self._review.names(state):  # type: ignore[arg-type]
                    row = self._rows.get(name)
                    if row is not None:
                        out[row] = code
        return out

    def set_review_state(self, names: Sequence[str], state: str | None) -> None:
        """Accept, reject or un-review photos (saved at once by the review).

        Raises:
            RuntimeError: no review (no folder open). sketchpad.atomic.SaveError.
        """
        if self._review is None:
            raise RuntimeError("no folder is open: nothing to review")
        self._review.set_states(names, state)  # type: ignore[arg-type]
        self._rows_changed(names, _REVIEW_ROLES)

    def review_changed(self, name: str) -> None:
        """``name``'s corrected mask changed (set or reset in the large view): repaint it."""
        self._derived.pop(name, None)
        if name in self._serial:
            self._serial[name] = self._next_serial
            self._next_serial += 1
        self._rows_changed([name], _REVIEW_ROLES)

    def _rows_changed(self, names: Iterable[str], roles: list[int]) -> None:
        rows = [r for n in names if (r := self._rows.get(n)) is not None]
        if rows:
            self.dataChanged.emit(self.index(min(rows)), self.index(max(rows)), roles)

    def mask_key(self, name: str) -> tuple[str, int, float, int] | None:
        """Identity of ``name``'s current mask pixels (see ``MaskKeyRole``), or None."""
        serial = self._serial.get(name)
        if serial is None:
            return None
        t = self._threshold if self._threshold is not None else -1.0
        return (name, -1 if self._generation is None else self._generation, t, serial)

    def apply_result(self, result: QueryResult) -> bool:
        """Show a query's scores and masks; photos of the result not shown yet are added.
        A result for another folder is ignored (returns False)."""
        if self._folder is None:
            self.set_folder(result.folder, result.names)
        elif Path(result.folder) != self._folder:
            log.info("query result for %s ignored: %s is shown", result.folder, self._folder)
            return False
        cached = self._result_rows
        if cached is not None and cached[0] is result.names and cached[1] == len(self._names):
            rows = cached[2]  # the engine's names tuple is the same until the gallery changes
        else:
            self.add_names(result.names)
            rows = np.fromiter(
                (self._rows[n] for n in result.names), dtype=np.int64, count=len(result.names)
            )
            self._result_rows = (result.names, len(self._names), rows)
        scores = np.full(len(self._names), np.nan, dtype=np.float32)
        scores[rows] = np.asarray(result.photo_scores, dtype=np.float32)
        self._scores = scores
        self._generation = int(result.generation)
        self._threshold = float(result.threshold)
        self._base_masks, self._derived, self._serial = {}, {}, {}
        self._store_masks(result.masks)
        self._changed(_RESULT_ROLES)
        return True

    def apply_masks(self, result: MaskResult) -> bool:
        """Add masks of more photos for the query shown (masks of another query, or of photos
        not shown, are ignored). Returns whether any were stored."""
        if result.query_generation != self._generation:
            log.debug(
                "masks of query %d ignored (shown: %s)", result.query_generation, self._generation
            )
            return False
        known = {n: m for n, m in result.masks.items() if n in self._rows}
        if not known:
            return False
        self._store_masks(known)
        rows = [self._rows[n] for n in known]
        self.dataChanged.emit(self.index(min(rows)), self.index(max(rows)), _MASK_ROLES)
        return True

    def clear_results(self) -> None:
        """Forget the query's scores and masks (the photos stay)."""
        self._drop_results()
        self._changed(_RESULT_ROLES)

    def set_threshold(self, threshold: float) -> None:
        """Re-threshold the stored masks at ``threshold`` in (0, 1), locally (no model)."""
        t = float(threshold)
        if not 0.0 < t < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if t == self._threshold:
            return
        self._threshold = t
        self._derived = {}
        if self._generation is not None:  # which photos match changes, and their masks
            self._changed(_RESULT_ROLES)

    def _store_masks(self, masks: Mapping[str, PhotoMask]) -> None:
        for name, mask in masks.items():
            self._base_masks[name] = mask
            self._derived.pop(name, None)
            self._serial[name] = self._next_serial
            self._next_serial += 1

    def _drop_results(self) -> None:
        self._scores = np.full(len(self._names), np.nan, dtype=np.float32)
        self._base_masks, self._derived, self._serial = {}, {}, {}
        self._generation = None

    def _changed(self, roles: list[int]) -> None:
        if self._names:
            self.dataChanged.emit(self.index(0), self.index(len(self._names) - 1), roles)

    # -- Qt model ----------------------------------------------------------------------------
    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008, N802 (Qt API)
        return 0 if parent.isValid() else len(self._names)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = index.row()
        if not index.isValid() or not 0 <= row < len(self._names):
            return None
        name = self._names[row]
        if role == NameRole:
            return name  # the exact name (it may hold undecodable bytes as surrogates)
        if role == Qt.ItemDataRole.DisplayRole:
            return display_name(name)  # Qt would silently drop undecodable bytes
        if role == PathRole:
            return self.path_of(name)
        if role == ScoreRole:
            s = float(self._scores[row])
            return None if np.isnan(s) else s
        if role == MatchRole:
            return self._is_match_row(row)
        if role == MaskRole:
            return self.mask_for(name)
        if role == MaskKeyRole:
            return self.mask_key(name)
        if role == CellRole:
            s = float(self._scores[row])
            score = None if np.isnan(s) else s
            mask, key = self.mask_for(name), self.mask_key(name)
            review = self._review
            state = review.state(name) if review is not None else None
            corrected = review is not None and review.has_correction(name)
            return Cell(
                name,
                self.path_of(name),
                score,
                self._is_match_row(row),
                mask,
                key,
                state,
                corrected,
            )
        if role == ReviewRole:
            return self.review_state(name)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, name)
        return None

    def _is_match_row(self, row: int) -> bool:
        t = self._threshold
        return t is not None and bool(self._scores[row] >= t)  # NaN >= t is False

    def _tooltip(self, row: int, name: str) -> str:
        s = float(self._scores[row])
        shown = display_name(name)
        if np.isnan(s):
            return shown
        text = f"{shown}\nscore {s:.2f}" + ("" if self._is_match_row(row) else " (no match)")
        if (state := self.review_state(name)) is not None:
            text += f" · {state}"
        if self._review is not None and self._review.has_correction(name):
            text += " · mask corrected"
        mask = self.mask_for(name)
        n = len(mask.instances) if mask is not None else 0
        return text + (f" · {n} region{'s' if n != 1 else ''}" if n else "")

    def flags(self, index: ModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | (Qt.ItemFlag.ItemNeverHasChildren)
        )
