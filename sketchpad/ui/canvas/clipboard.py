"""Strokes on the system clipboard: our JSON under a private MIME type.

Copied strokes travel as a whole sketch file (``sketchpad.sketch.io`` JSON) holding just
the selected strokes, so a paste into another Sketchpad window keeps widths, colours,
times, pressure and labels. The same JSON is offered as plain text, and plain text holding
a Sketchpad sketch pastes as strokes.

At exit the strokes are handed over to a clipboard entry that Qt creates itself: a
``QMimeData`` made from Python calls back into Python when the clipboard releases it, and
doing that while the interpreter shuts down crashed the process (PySide6 6.11/6.12).
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Iterable, Sequence

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QClipboard, QGuiApplication

from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.io import sketch_from_json_bytes, sketch_to_json_bytes
from sketchpad.sketch.model import Sketch, Stroke, new_stroke_id
from sketchpad.ui.canvas.document import Document

STROKES_MIME = "application/x-sketchpad-strokes"
_TEXT_SIGNATURE = '"format": "sketchpad-sketch"'  # how our JSON starts (see json_format)
PASTE_OFFSET = 10.0  # canvas pixels right and down, per paste of the same clipboard

log = logging.getLogger(__name__)


def strokes_to_mime(sketch: Sketch, stroke_ids: Iterable[str]) -> QMimeData:
    """MIME data holding the strokes ``stroke_ids`` of ``sketch`` (drawing order kept)."""
    data = sketch_to_json_bytes(sketch.subset(stroke_ids))
    mime = QMimeData()
    mime.setData(STROKES_MIME, data)
    mime.setText(data.decode("utf-8"))
    return mime


def _sketch_text(mime: QMimeData) -> str | None:
    if not mime.hasText():
        return None
    text = mime.text()
    return text if _TEXT_SIGNATURE in text[:200] else None


def has_strokes(mime: QMimeData | None) -> bool:
    """True when ``mime`` offers our strokes (cheap: the data is not parsed)."""
    if mime is None:
        return False
    return mime.hasFormat(STROKES_MIME) or _sketch_text(mime) is not None


def strokes_from_mime(mime: QMimeData | None) -> tuple[Stroke, ...]:
    """The strokes in ``mime``; empty when it holds none of ours or cannot be read."""
    if mime is None or not has_strokes(mime):
        return ()
    if mime.hasFormat(STROKES_MIME):
        data = bytes(mime.data(STROKES_MIME).data())
    else:
        data = (_sketch_text(mime) or "").encode("utf-8")
    try:
        return sketch_from_json_bytes(data).strokes
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
    _hand_over_at_exit()
    return True


_handover_registered = False


def _hand_over_at_exit() -> None:
    global _handover_registered
    if not _handover_registered:
        atexit.register(_replace_with_qt_owned_data)
        _handover_registered = True


def _replace_with_qt_owned_data() -> None:
    """Swap our Python-made clipboard entry for the same JSON as text made by Qt."""
    if QGuiApplication.instance() is None:
        return
    clipboard = QGuiApplication.clipboard()
    mime = clipboard.mimeData()
    if mime is not None and mime.hasFormat(STROKES_MIME):
        clipboard.setText(bytes(mime.data(STROKES_MIME).data()).decode("utf-8"))


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
