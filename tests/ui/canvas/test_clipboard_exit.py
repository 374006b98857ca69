"""Copying strokes must not crash the process when it exits (it did: a Python-made
QMimeData left on the clipboard called back into a finalising interpreter, exit code 139)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
from PySide6.QtWidgets import QApplication
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.ui.canvas.clipboard import copy_selection
from sketchpad.ui.canvas.document import Document
app = QApplication([])
doc = Document(Sketch(strokes=(Stroke(points=[[1, 2], [3, 4]], id="a"),)))
doc.set_selection(["a"])
assert copy_selection(doc, QApplication.clipboard())
print("copied")
"""


def test_process_exits_cleanly_after_copy(tmp_path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SKETCHPAD_HOME=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.stdout.strip() == "copied"
    assert out.returncode == 0, f"exit status {out.returncode}: {out.stderr[-1000:]}"


def test_strokes_survive_the_hand_over_as_text(qapp) -> None:
    from sketchpad.sketch.model import Sketch, Stroke
    from sketchpad.ui.canvas.clipboard import (
        _replace_with_qt_owned_data,
        copy_selection,
        strokes_from_mime,
    )
    from sketchpad.ui.canvas.document import Document

    doc = Document(Sketch(strokes=(Stroke(points=[[1, 2], [3, 4]], id="a"),)))
    doc.set_selection(["a"])
    clipboard = qapp.clipboard()
    copy_selection(doc, clipboard)
    _replace_with_qt_owned_data()
    assert not clipboard.mimeData().hasFormat("application/x-sketchpad-strokes")
    (stroke,) = strokes_from_mime(clipboard.mimeData())
    assert stroke.points.tolist() == [[1, 2], [3, 4]]
