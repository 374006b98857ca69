"""Quitting the application while a folder is being indexed exits with status 0: the engine
stops and joins its thread on ``aboutToQuit`` (a running QThread destroyed at exit would abort
the process), and the cache holds whole batches only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from standins import StandInLoader, make_photos

from sketchpad.gallery.cache import FeatureCache
from sketchpad.gallery.index import model_key
from sketchpad.vision.segmenter import Segmenter

HERE = Path(__file__).resolve().parent
N = 30

SCRIPT = """
import sys
from pathlib import Path

sys.path[:0] = [{here!r}, {tests!r}]
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
import pytest
from standins import StandInLoader

from sketchpad.engine.client import Engine

app = QApplication(sys.argv)
loader = StandInLoader()
loader.backbone.photo_delay_s = 0.05
engine = Engine(loader=loader)  # no explicit shutdown: quitting the app must be enough


def on_progress(generation, done, total, eta_s):
    if done > 0:
        print(f"quitting at {{done}}/{{total}}", flush=True)
        app.quit()


engine.indexProgress.connect(on_progress)
engine.indexFinished.connect(lambda s: print("indexing finished", flush=True))
engine.load_model("planted")
engine.open_folder(Path(sys.argv[1]), batch_size=2)
QTimer.singleShot(30_000, lambda: app.exit(3))  # a watchdog, never reached
status = app.exec()
print(f"thread running after exec: {{engine.is_running}}", flush=True)
sys.exit(status)
"""


def test_quitting_during_indexing_exits_with_status_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, N)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SKETCHPAD_HOME": str(tmp_path / "h")}
    code = SCRIPT.format(here=str(HERE), tests=str(HERE.parent))
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Destroyed while thread is still running" not in out.stderr
    assert "quitting at" in out.stdout and "indexing finished" not in out.stdout
    assert "thread running after exec: False" in out.stdout  # joined on aboutToQuit
    # The cache is consistent and unlocked: whole batches, each row readable.
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "h"))
    key = model_key(Segmenter(StandInLoader().backbone))
    with FeatureCache.open(folder, key, writer=True) as cache:
        rows = cache.paths()
        assert 0 < len(rows) < N and len(rows) % 2 == 0
        assert all(cache.get(name) is not None for name in rows)
