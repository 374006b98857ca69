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


#: Permission bits of the folders and files Sketchpad makes for its user: they hold drawings,
#: photo names and preferences, which other local users must not read.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(p: Path) -> Path:
    """Make folder ``p`` (and missing parents) private to the user: created with mode 0700,
    and an existing one of ours tightened to it (failures to tighten are ignored: the folder
    may belong to someone else, e.g. a shared ``SKETCHPAD_HOME``).

    Raises:
        OSError: the folder cannot be created.
    """
    missing = []
    parent = p
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for folder in reversed(missing):  # each new folder is created private (mkdir's mode
        folder.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)  # is masked by the umask only)
    p.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    if os.name == "posix":
        try:
            if p.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
                os.chmod(p, PRIVATE_DIR_MODE)
        except OSError:
            pass
    return p


def _ensure(p: Path) -> Path:
    return private_dir(p)


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
