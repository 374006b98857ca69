"""Where Sketchpad keeps its files (DESIGN §6): standard per-user folders.

Set ``SKETCHPAD_HOME`` to put everything under one folder instead (tests, portable
installs): ``$SKETCHPAD_HOME/{config,data,cache,logs}``.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "sketchpad"


def _base(kind: str) -> Path:
    home = os.environ.get("SKETCHPAD_HOME")
    if home:
        return Path(home) / kind
    if kind == "config":
        return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    if kind == "cache":
        return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    data = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return data if kind == "data" else data / kind


def _ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def config_dir() -> Path:
    """Preferences (readable files)."""
    return _ensure(_base("config"))


def data_dir() -> Path:
    """User data: autosaves, imported weights."""
    return _ensure(_base("data"))


def cache_dir() -> Path:
    """Rebuildable caches (photo features)."""
    return _ensure(_base("cache"))


def log_dir() -> Path:
    """Log files (inside the user data directory)."""
    return _ensure(_base("logs"))


def autosave_dir() -> Path:
    return _ensure(data_dir() / "autosave")
