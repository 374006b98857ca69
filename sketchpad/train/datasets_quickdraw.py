"""Quick, Draw! ndjson, streamed drawing by drawing (REFERENCE §3).

A file is one line per drawing: ``{key_id, word, recognized, timestamp, countrycode,
drawing}`` with ``drawing`` one ``[xs, ys]`` (simplified) or ``[xs, ys, t_ms]`` (raw) per
stroke. A folder holds ``<category>.ndjson`` files (a ``full_raw_`` / ``full_simplified_``
prefix is dropped from the category). Files are read a line at a time, never whole (they can
be gigabytes), with the project's ndjson reader (:mod:`sketchpad.sketch.formats.quickdraw`);
a line that cannot be read is reported and the file goes on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sketchpad.sketch.formats._common import SketchFileError, iter_lines
from sketchpad.sketch.formats.quickdraw import _parse_line, _record_to_sketch
from sketchpad.sketch.model import Sketch
from sketchpad.train.datasets_common import DatasetError, Warn, class_key, log_warning


@dataclass(frozen=True, eq=False)
class QuickDrawSample:
    """One drawing.

    Attributes:
        sketch: the strokes on a 256² canvas (simplified) or the drawing's extent (raw; each
            stroke then has ``times`` in ms).
        category: the ``word`` field, else the file's category.
        key_id: the drawing's id (as text), if given.
        recognized: whether the game recognised it; None if the field is missing.
        countrycode: the player's country, if given.
        source: ``<file>#<line number>``.
    """

    sketch: Sketch
    category: str
    key_id: str | None
    recognized: bool | None
    countrycode: str | None
    source: str

    @property
    def is_raw(self) -> bool:
        """Raw data (per-point times) rather than simplified."""
        return any(s.times is not None for s in self.sketch.strokes)


def file_category(path: Path) -> str:
    """``cat`` for ``cat.ndjson``, ``full_simplified_cat.ndjson`` and ``full_raw_cat.ndjson``."""
    return re.sub(r"^full_(raw|simplified)_", "", path.stem)


def quickdraw_files(path: str | os.PathLike[str]) -> list[Path]:
    """The ``.ndjson`` files: ``path`` itself, or those in the folder, sorted by name.

    Raises:
        DatasetError: neither an ``.ndjson`` file nor a folder holding some.
    """
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".ndjson":
        return [p]
    files = sorted(f for f in p.glob("*.ndjson") if f.is_file()) if p.is_dir() else []
    if not files:
        raise DatasetError(f"{p}: not a Quick, Draw! folder: expected <category>.ndjson files")
    return files


def iter_quickdraw(
    path: str | os.PathLike[str],
    *,
    categories: Iterable[str] | None = None,
    recognized_only: bool = False,
    limit_per_class: int | None = None,
    warn: Warn = log_warning,
) -> Iterator[QuickDrawSample]:
    """The drawings of a Quick, Draw! file or folder, one at a time, files in name order.

    Args:
        path: an ``.ndjson`` file or a folder of them.
        categories: only these files' categories (any spelling, see ``class_key``).
        recognized_only: only drawings with ``"recognized": true`` (a drawing without the
            field is left out, reported once per file).
        limit_per_class: at most this many drawings per category; a file stops being read
            once its own category is full.
        warn: receives one line per line or file skipped.

    Raises:
        DatasetError: no ``.ndjson`` file at ``path``.
        ValueError: a negative limit.
    """
    if limit_per_class is not None and limit_per_class < 0:
        raise ValueError(f"limit_per_class must be >= 0, got {limit_per_class}")
    files = quickdraw_files(path)
    if categories is not None:
        wanted = {class_key(c) for c in categories}
        files = [f for f in files if class_key(file_category(f)) in wanted]
    taken: dict[str, int] = {}
    for f in files:
        yield from _read_file(f, recognized_only, limit_per_class, taken, warn)


def _full(category: str, limit: int | None, taken: dict[str, int]) -> bool:
    return limit is not None and taken.get(category, 0) >= limit


def _read_file(
    f: Path, recognized_only: bool, limit: int | None, taken: dict[str, int], warn: Warn
) -> Iterator[QuickDrawSample]:
    own = file_category(f)
    index = 0  # the drawing's index among the file's non-empty lines
    unknown = 0
    try:
        for lineno, line in enumerate(iter_lines(f), start=1):
            if _full(own, limit, taken):
                break
            if not line.strip():
                continue
            index += 1
            try:
                rec = _parse_line(f, line, lineno)
            except SketchFileError as e:
                warn(f"skipped {e}")
                continue
            recognized = rec.get("recognized")
            if recognized_only and recognized is not True:
                unknown += recognized is None
                continue
            word = rec.get("word")
            category = word if isinstance(word, str) and word else own
            if _full(category, limit, taken):
                continue
            try:
                sketch = _record_to_sketch(f, rec, lineno, index - 1)
            except SketchFileError as e:
                warn(f"skipped {e}")
                continue
            taken[category] = taken.get(category, 0) + 1
            key_id, country = rec.get("key_id"), rec.get("countrycode")
            yield QuickDrawSample(
                sketch=sketch,
                category=category,
                key_id=None if key_id is None else str(key_id),
                recognized=recognized if isinstance(recognized, bool) else None,
                countrycode=country if isinstance(country, str) else None,
                source=f"{f}#{lineno}",
            )
    except SketchFileError as e:  # the file itself: missing, unreadable, a line too long
        warn(f"skipped the rest of {e}")
    if unknown:
        warn(f"{f}: left out {unknown} drawing(s) without a 'recognized' field")
