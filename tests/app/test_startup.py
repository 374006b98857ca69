"""Start-up: the probe reports the first paint, nothing heavy is imported, the bench runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sketchpad import cli
from sketchpad.ui import startup_bench

_PROBE = "import sys; from sketchpad.cli import main; sys.exit(main(['--startup-probe']))"


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "SKETCHPAD_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}


def test_probe_reports_first_paint_without_heavy_imports(sketchpad_home: Path) -> None:
    check = (
        _PROBE.replace("sys.exit(main(['--startup-probe']))", "rc = main(['--startup-probe'])")
        + "; print('HEAVY', sorted(m for m in ('torch', 'open_clip', 'cv2') if m in sys.modules))"
        + "; sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", check], env=_env(sketchpad_home),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    paint = [ln for ln in lines if ln.startswith("SKETCHPAD_FIRST_PAINT ")]
    assert len(paint) == 1 and float(paint[0].split()[1]) > 0
    assert "SKETCHPAD_TORCH_IMPORTED no" in lines
    assert "HEAVY []" in lines
    # A clean exit leaves no autosave or lock behind, and the log file exists.
    assert list((sketchpad_home / "data" / "autosave").iterdir()) == []
    assert (sketchpad_home / "logs" / "sketchpad.log").exists()


def test_bench_prints_runs_median_and_verdict(sketchpad_home: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert cli.main(["bench", "startup", "--runs", "1"]) == 0  # spawns the real probe
    out = capsys.readouterr().out
    assert "run 1:" in out and "median" in out and "target < 2000 ms" in out
    assert ("PASS" in out) or ("FAIL" in out)
    assert "torch imported at startup: no" in out


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
