"""Start-up: the probe reports the first paint, nothing heavy is imported, the bench runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sketchpad import cli
from sketchpad.workspace import startup_bench

_PROBE = "import sys; from sketchpad.cli import main; sys.exit(main(['--startup-probe']))"


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "SKETCHPAD_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}


def test_probe_is_the_real_start_and_reports_paint_then_engine(sketchpad_home: Path) -> None:
    """The probe starts as a user's start does, background engine import included (before,
    it skipped it and flattered the figure): it reports the first paint, then the engine."""
    check = (
        _PROBE.replace("sys.exit(main(['--startup-probe']))", "rc = main(['--startup-probe'])")
        + "; print('HEAVY', sorted(m for m in ('torch', 'open_clip') if m in sys.modules))"
        + "; sys.exit(rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", check],
        env=_env(sketchpad_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    paint = [i for i, ln in enumerate(lines) if ln.startswith("SKETCHPAD_FIRST_PAINT ")]
    engine = [i for i, ln in enumerate(lines) if ln.startswith("SKETCHPAD_ENGINE ")]
    assert len(paint) == 1 and float(lines[paint[0]].split()[1]) > 0
    assert len(engine) == 1 and lines[engine[0]] == "SKETCHPAD_ENGINE ready", out.stderr
    assert "HEAVY ['torch']" in lines  # the engine (torch) really was imported
    # A clean exit leaves no autosave or lock behind, and the log file exists.
    assert list((sketchpad_home / "data" / "autosave").iterdir()) == []
    assert (sketchpad_home / "logs" / "sketchpad.log").exists()


def test_the_window_paints_without_importing_heavy_modules(sketchpad_home: Path) -> None:
    """What the GUI thread runs up to the first paint imports no torch, open_clip or cv2 (the
    engine's import runs in the background afterwards)."""
    script = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from sketchpad.ui.main_window import MainWindow\n"
        "w = MainWindow(); w.show(); w.repaint(); app.processEvents()\n"
        "print('HEAVY', sorted(m for m in ('torch', 'open_clip', 'cv2') if m in sys.modules))\n"
        "w.document.undo_stack.setClean(); w.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=_env(sketchpad_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout.splitlines()


def test_bench_prints_cold_and_warm_runs_and_verdicts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(startup_bench, "DROP_CACHES", "/nonexistent/drop_caches")
    assert cli.main(["bench", "startup", "--runs", "1"]) == 0  # spawns the real probe twice
    out = capsys.readouterr().out
    assert "the first run is not cold: cannot drop the page cache" in out  # said, not hidden
    assert "run 1 (first): first paint" in out and "run 2 (warm): first paint" in out
    assert out.count("engine ready") >= 2 and "target < 2000 ms" in out
    assert ("PASS" in out) or ("FAIL" in out)
    assert "at first paint:" in out and "of 2 runs" in out


def test_bench_reports_a_probe_that_never_paints() -> None:
    lines: list[str] = []
    command = (sys.executable, "-c", "print('hello')")
    assert startup_bench.run(runs=1, command=command, report=lines.append) == 1
    assert any("without reporting a paint" in line for line in lines)


def test_headless_bench_uses_offscreen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert startup_bench.probe_environment()["QT_QPA_PLATFORM"] == "offscreen"


def test_the_real_start_keeps_every_pointer_move(sketchpad_home: Path) -> None:
    """run_app turns off Qt's merging of queued mouse moves: a stroke drawn while the GUI
    thread is busy keeps every point the hand made (merged, it arrives as chords)."""
    script = (
        "import sys\n"
        "from PySide6.QtCore import QCoreApplication, Qt, QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "merge = Qt.ApplicationAttribute.AA_CompressHighFrequencyEvents\n"
        "class XcbLikeApp(QApplication):  # xcb turns merging on while the app is built\n"
        "    def __init__(self, *a):\n"
        "        super().__init__(*a)\n"
        "        QCoreApplication.setAttribute(merge, True)\n"
        "import sketchpad.ui.app\n"
        "sketchpad.ui.app.QApplication = XcbLikeApp\n"
        "import sketchpad.ui.main_window as mw\n"
        "class Window(mw.MainWindow):\n"
        "    def __init__(self, *a, **k):\n"
        "        super().__init__(*a, **k)\n"
        "        QTimer.singleShot(0, self.report)\n"
        "    def report(self):\n"
        "        print('MERGED', QCoreApplication.testAttribute(merge), flush=True)\n"
        "        self.document.undo_stack.setClean(); self.close()\n"
        "mw.MainWindow = Window\n"
        "from sketchpad.ui.app import run_app\n"
        "sys.exit(run_app([]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=_env(sketchpad_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "MERGED False" in out.stdout.splitlines()
