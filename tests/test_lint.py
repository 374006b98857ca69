"""Style, annotation and type rules (pyproject.toml [tool.ruff], [tool.mypy]) hold for sketchpad."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "sketchpad", "tests", "packaging",
         "main.py"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_mypy_passes() -> None:
    """mypy, configured in pyproject.toml [tool.mypy] (files = sketchpad), finds no error."""
    out = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
