"""Guard against the Qt binding release we exclude in pyproject.toml.

PySide6-Essentials 6.12.0 on CPython < 3.12 drops a reference to ``True`` on every
``Signal.emit()`` and to ``None`` on calls returning void; after a few thousand calls (seconds
of drawing) the interpreter aborts with "bool_dealloc". This test fails on such a binding
(in a child process, so the abort cannot take the test run down with it).
"""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import sys
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
class O(QObject):
    s = Signal()
o = O(); o.s.connect(lambda: None); w = QWidget()
before = sys.getrefcount(True), sys.getrefcount(None)
for _ in range(2000):
    o.s.emit()
    w.setMinimumWidth(3)
after = sys.getrefcount(True), sys.getrefcount(None)
print(before[0] - after[0], before[1] - after[1])
"""


def test_qt_binding_keeps_singleton_refcounts() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lost_true, lost_none = (int(v) for v in out.stdout.split())
    assert lost_true < 100 and lost_none < 100, (
        f"this PySide6 loses references to True ({lost_true}) / None ({lost_none}) per 2000 "
        "calls and will crash the app: exclude its version in pyproject.toml"
    )
