"""Strokes on the system clipboard: our JSON under a private MIME type.

Copied strokes travel as a whole sketch file (``sketchpad.sketch.io`` JSON) holding just
the selected strokes, so a paste into another Sketchpad window keeps widths, colours,
times, pressure and labels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QClipboard

from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.io import sketch_from_json_bytes, sketch_to_json_bytes
from sketchpad.sketch.model import Sketch, Stroke, new_stroke_id
from sketchpad.ui.document import Document

STROKES_MIME = "application/x-sketchpad-strokes"
PASTE_OFFSET = 10.0  # canvas pixels right and down, per paste of the same clipboard

log = logging.getLogger(__name__)


def strokes_to_mime(sketch: Sketch, stroke_ids: Iterable[str]) -> QMimeData:
    """MIME data holding the strokes ``stroke_ids`` of ``sketch`` (drawing order kept)."""
    mime = QMimeData()
    mime.setData(STROKES_MIME, sketch_to_json_bytes(sketch.subset(stroke_ids)))
    return mime


def has_strokes(mime: QMimeData | None) -> bool:
    """True when ``mime`` offers our strokes (cheap: the data is not parsed)."""
    return mime is not None and mime.hasFormat(STROKES_MIME)


def strokes_from_mime(mime: QMimeData | None) -> tuple[Stroke, ...]:
    """The strokes in ``mime``; empty when it holds none of ours or cannot be read."""
    if mime is None or not has_strokes(mime):
        return ()
    try:
        return sketch_from_json_bytes(bytes(mime.data(STROKES_MIME).data())).strokes
    except ValueError as e:  # SketchFileError: foreign data under our type, a newer version
        log.warning("clipboard strokes could not be read: %s", e)
        return ()


def pasted_copies(strokes: Sequence[Stroke], dx: float, dy: float) -> tuple[Stroke, ...]:
    """Copies of ``strokes`` with fresh ids, moved by (dx, dy) canvas pixels."""
    return tuple(s.translated(dx, dy).replace(id=new_stroke_id()) for s in strokes)


def copy_selection(document: Document, clipboard: QClipboard) -> bool:
    """Put the document's selected strokes on ``clipboard``; False when nothing is selected."""
    if not document.selection:
        return False
    clipboard.setMimeData(strokes_to_mime(document.sketch, document.selection))
    return True


def paste_strokes(document: Document, clipboard: QClipboard, offset: float) -> tuple[str, ...]:
    """Add copies of the clipboard's strokes (new ids, moved by ``offset`` right and down)
    as one "Paste" step and select them. Returns their ids; empty when there was nothing
    to paste or the sketch is a bitmap (it cannot hold strokes)."""
    strokes = strokes_from_mime(clipboard.mimeData())
    if not strokes or document.sketch.is_raster:
        return ()
    copies = pasted_copies(strokes, offset, offset)
    document.apply(SketchEdit.add(document.sketch, copies), "Paste")
    ids = tuple(s.id for s in copies)
    document.set_selection(ids)
    return ids
