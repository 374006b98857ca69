"""Where Sketchpad keeps its files (DESIGN §6): standard per-user folders.

Set ``SKETCHPAD_HOME`` to put everything under one folder instead (tests, portable
installs): ``$SKETCHPAD_HOME/{config,data,cache,logs}``.
"""

from __future__ import annotations

import os
import stat
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


def autosave_location() -> Path:
    """Where autosaves live, without creating anything (for messages when it cannot be)."""
    return _base("data") / "autosave"


def autosave_dir() -> Path:
    """Autosaves (private, created if missing)."""
    return _ensure(data_dir() / "autosave")


def user_folders() -> list[Path]:
    """Sketchpad's own folders that exist: preferences, data (autosaves, imported weights,
    logs), caches. Not created here."""
    seen: list[Path] = []
    for kind in ("config", "data", "cache", "logs"):
        p = _base(kind)
        if p.is_dir() and not any(p == q or q in p.parents for q in seen):
            seen.append(p)
    return seen


def make_private(folders: list[Path], *, max_depth: int = 4) -> int:
    """Tighten what earlier versions created with the umask: folders to 0700, files to 0600
    (links are not followed; files not ours to change are skipped).

    Returns:
        How many modes were changed.
    """
    if os.name != "posix":
        return 0
    changed = 0

    def tighten(path: str, mode: int) -> None:
        nonlocal changed
        try:
            st = os.lstat(path)
            if (
                not stat.S_ISLNK(st.st_mode)
                and st.st_mode & 0o777 != mode
                and st.st_uid == os.getuid()
            ):
                os.chmod(path, mode)
                changed += 1
        except OSError:
            pass

    for top in folders:
        tighten(str(top), PRIVATE_DIR_MODE)
        for folder, dirs, files in os.walk(top):
            if len(Path(folder).relative_to(top).parts) >= max_depth:
                dirs.clear()
            for name in dirs:
                tighten(os.path.join(folder, name), PRIVATE_DIR_MODE)
            for name in files:
                tighten(os.path.join(folder, name), PRIVATE_FILE_MODE)
    return changed


def tidy_user_folders() -> tuple[list[Path], int]:
    """At start: remove our stale temporary files
    (:func:`sketchpad.atomic.remove_stale_temporaries`) and make Sketchpad's folders and files
    private (:func:`make_private`).

    Returns:
        The temporary files removed, and how many modes were tightened.
    """
    from sketchpad.atomic import remove_stale_temporaries

    folders = user_folders()
    return remove_stale_temporaries(folders), make_private(folders)
