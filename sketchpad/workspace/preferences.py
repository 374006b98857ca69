"""The user's preferences, kept in ``config_dir()/preferences.json`` (no Qt).

A readable file instead of QSettings (DESIGN §6: QSettings only for window geometry), written
atomically. A missing file gives the defaults; a damaged file, or a damaged entry in it, gives
the defaults for what cannot be read, with a logged warning that names the file. Entries this
version does not know are kept and written back, so a newer version's settings survive.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from sketchpad.atomic import SaveError, atomic_write_text
from sketchpad.paths import config_dir
from sketchpad.vision.registry import DEFAULT_BACKBONE, get_spec

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[Device, ...] = get_args(Device)
Theme = Literal["system", "light", "dark"]
THEMES: tuple[Theme, ...] = get_args(Theme)
#: Bounds of the thumbnail size (pixels) and of the autosave's quiet time (seconds).
THUMBNAIL_SIZES = (64, 320)
AUTOSAVE_SECONDS = (1, 600)
DEFAULT_AUTOSAVE_SECONDS = 3.0
FILE_NAME = "preferences.json"
MAX_RECENT_FOLDERS = 10
FORMAT_VERSION = 1


@dataclass
class Preferences:
    """What the user chose; change the attributes, then :meth:`save`.

    Attributes:
        device: where models run: "auto" (a CUDA GPU when there is one), "cpu" or "cuda".
        fp16: run the models in float16 on a GPU (halves memory, ~2× faster); no effect on
            the CPU.
        backbone: the default backbone id (``sketchpad.vision.registry``).
        recent_folders: photo folders, most recent first, at most :data:`MAX_RECENT_FOLDERS`.
        theme: "system" (follow the desktop), "light" or "dark".
        thumbnail_size: the gallery's thumbnails, in pixels (:data:`THUMBNAIL_SIZES`).
        autosave_seconds: quiet time after an edit before the autosave is written.
        last_folder: the photo folder open when the window last closed (opened again at
            start), or None.
        threshold: the mask threshold last used.
        mode: the search mode last used (a ``query_controls.MODES`` key), or None.
        recognition_head: a trained recognition head (``sketchpad train fusion --task
            recognition``) that label suggestions use, or None (zero-shot).
        path: the file it was loaded from and is saved to.
    """

    device: Device = "auto"
    fp16: bool = True
    backbone: str = DEFAULT_BACKBONE
    recent_folders: list[Path] = field(default_factory=list)
    theme: Theme = "system"
    thumbnail_size: int = 160
    autosave_seconds: float = DEFAULT_AUTOSAVE_SECONDS
    last_folder: Path | None = None
    threshold: float = 0.5
    mode: str | None = None
    recognition_head: Path | None = None
    path: Path | None = field(default=None, repr=False, compare=False)
    _unknown: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def default_path(cls) -> Path:
        """``config_dir()/preferences.json``."""
        return config_dir() / FILE_NAME

    @classmethod
    def load(cls, path: Path | None = None) -> Preferences:
        """Read ``path`` (default :meth:`default_path`); never raises.

        Args:
            path: the preferences file; it need not exist yet.

        Returns:
            The preferences, with defaults for whatever is missing or unreadable.
        """
        file = Path(path) if path is not None else cls.default_path()
        prefs = cls(path=file)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return prefs
        except (OSError, ValueError) as e:
            log.warning("ignoring the damaged preferences file %s (defaults used): %s", file, e)
            return prefs
        if not isinstance(data, dict):
            log.warning(
                "ignoring the preferences file %s: it holds a %s, not an object (defaults used)",
                file,
                type(data).__name__,
            )
            return prefs
        prefs._read(data, file)
        return prefs

    def _read(self, data: dict[str, Any], file: Path) -> None:
        def bad(key: str, why: str) -> None:
            log.warning("preferences %s: ignoring %s=%r (%s)", file, key, data[key], why)

        known = {
            "version",
            "device",
            "fp16",
            "backbone",
            "recent_folders",
            "theme",
            "thumbnail_size",
            "autosave_seconds",
            "last_folder",
            "threshold",
            "mode",
            "recognition_head",
        }
        self._unknown = {k: v for k, v in data.items() if k not in known}
        if "device" in data:
            if data["device"] in DEVICES:
                self.device = cast(Device, data["device"])
            else:
                bad("device", f"expected one of {', '.join(DEVICES)}")
        if "fp16" in data:
            if isinstance(data["fp16"], bool):
                self.fp16 = data["fp16"]
            else:
                bad("fp16", "expected true or false")
        if "backbone" in data:
            try:
                self.backbone = get_spec(str(data["backbone"])).id
            except KeyError as e:
                bad("backbone", str(e.args[0]))
        if "recent_folders" in data:
            items = data["recent_folders"]
            if isinstance(items, list) and all(isinstance(p, str) and p for p in items):
                self.recent_folders = [Path(p) for p in items][:MAX_RECENT_FOLDERS]
            else:
                bad("recent_folders", "expected a list of folder paths")
        if "theme" in data:
            if data["theme"] in THEMES:
                self.theme = cast(Theme, data["theme"])
            else:
                bad("theme", f"expected one of {', '.join(THEMES)}")
        lo, hi = THUMBNAIL_SIZES
        if "thumbnail_size" in data:
            v = data["thumbnail_size"]
            if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi:
                self.thumbnail_size = v
            else:
                bad("thumbnail_size", f"expected a whole number of pixels in {lo}–{hi}")
        lo, hi = AUTOSAVE_SECONDS
        if "autosave_seconds" in data:
            v = data["autosave_seconds"]
            if isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi:
                self.autosave_seconds = float(v)
            else:
                bad("autosave_seconds", f"expected seconds in {lo}–{hi}")
        if "last_folder" in data:
            v = data["last_folder"]
            if v is None or (isinstance(v, str) and v):
                self.last_folder = Path(v) if v else None
            else:
                bad("last_folder", "expected a folder path or null")
        if "threshold" in data:
            v = data["threshold"]
            if isinstance(v, int | float) and not isinstance(v, bool) and 0.0 < v < 1.0:
                self.threshold = float(v)
            else:
                bad("threshold", "expected a number between 0 and 1")
        if "mode" in data:
            v = data["mode"]
            if v is None or isinstance(v, str):
                self.mode = v
            else:
                bad("mode", "expected a search mode name")
        if "recognition_head" in data:
            v = data["recognition_head"]
            if v is None or (isinstance(v, str) and v):
                self.recognition_head = Path(v) if v else None
            else:
                bad("recognition_head", "expected a checkpoint path or null")

    def to_json(self) -> str:
        """The file's text: the known entries (and any unknown ones kept from the file)."""
        data = {
            **self._unknown,
            "version": FORMAT_VERSION,
            "device": self.device,
            "fp16": self.fp16,
            "backbone": self.backbone,
            "recent_folders": [str(p) for p in self.recent_folders],
            "theme": self.theme,
            "thumbnail_size": self.thumbnail_size,
            "autosave_seconds": self.autosave_seconds,
            "last_folder": None if self.last_folder is None else str(self.last_folder),
            "threshold": self.threshold,
            "mode": self.mode,
            "recognition_head": (
                None if self.recognition_head is None else str(self.recognition_head)
            ),
        }
        return json.dumps(data, indent=2) + "\n"

    def save(self) -> None:
        """Write the file atomically (to :attr:`path`, default :meth:`default_path`).

        Raises:
            sketchpad.atomic.SaveError: the write failed (the message names the file and why);
                the previous file is intact.
        """
        if self.path is None:
            self.path = self.default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SaveError(self.path, f"cannot create its folder ({e.strerror or e})") from e
        atomic_write_text(self.path, self.to_json())

    def add_recent_folder(self, folder: str | Path) -> None:
        """Put ``folder`` (made absolute) first in :attr:`recent_folders`; not saved here."""
        p = Path(folder).absolute()
        rest = [Path(q) for q in self.recent_folders if Path(q) != p]  # str entries tolerated
        self.recent_folders = [p, *rest][:MAX_RECENT_FOLDERS]

    def remove_recent_folder(self, folder: str | Path) -> None:
        """Drop ``folder`` from :attr:`recent_folders` (e.g. it no longer exists); not saved."""
        p = Path(folder).absolute()
        self.recent_folders = [Path(q) for q in self.recent_folders if Path(q) != p]
