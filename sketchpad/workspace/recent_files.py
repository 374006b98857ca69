"""The File ▸ Open Recent list, kept in ``config_dir()/recent_files.json`` (no Qt).

A readable file instead of QSettings (DESIGN §6: QSettings only for window
geometry), written atomically. A damaged file is treated as an empty list.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sketchpad.atomic import SaveError, atomic_write_text
from sketchpad.paths import config_dir

log = logging.getLogger(__name__)

FILE_NAME = "recent_files.json"
MAX_ENTRIES = 10


class RecentFiles:
    """Most recently used first; at most ``max_entries`` absolute paths.

    Args:
        file: where the list is stored (default ``config_dir()/recent_files.json``).
    """

    def __init__(self, file: Path | None = None, max_entries: int = MAX_ENTRIES) -> None:
        self.file = file if file is not None else config_dir() / FILE_NAME
        self.max_entries = max_entries
        self._paths = self._load()

    @property
    def paths(self) -> list[Path]:
        return list(self._paths)

    def add(self, path: Path) -> None:
        p = Path(path).absolute()
        self._paths = [p, *(q for q in self._paths if q != p)][: self.max_entries]
        self._store()

    def remove(self, path: Path) -> None:
        p = Path(path).absolute()
        if p in self._paths:
            self._paths.remove(p)
            self._store()

    def clear(self) -> None:
        self._paths = []
        self._store()

    def _load(self) -> list[Path]:
        try:
            obj = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            log.warning("ignoring the damaged recent-files list %s: %s", self.file, e)
            return []
        items = obj.get("recent_files") if isinstance(obj, dict) else None
        if not isinstance(items, list):
            return []
        return [Path(p) for p in items if isinstance(p, str)][: self.max_entries]

    def _store(self) -> None:
        text = json.dumps({"recent_files": [str(p) for p in self._paths]}, indent=2)
        try:
            atomic_write_text(self.file, text + "\n")
        except SaveError as e:
            # Losing the list is an inconvenience, not lost work: log and carry on.
            log.warning("could not store the recent-files list: %s", e)
