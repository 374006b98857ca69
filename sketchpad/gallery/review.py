"""A folder's review: which photos the user accepted or rejected, and the masks they corrected.

Kept with the folder's session in the user data folder (``<data>/review/<folder id>/``), never
in the photo folder; every change is written at once, atomically, so it survives a crash and a
restart. Photo names are stored as the bytes the file system gave (hex), so any name — even
one that is not valid UTF-8 — comes back exactly.

- ``state.json``: ``{"format": "sketchpad-review", "version": 1, "folder": …, "photos":
  {"<name bytes, hex>": {"state": "accepted" | "rejected" | null, "corrected": "<file>" |
  null, "photo_hw": [H, W] | null}}}``.
- ``masks/<id>.png``: a corrected mask, 0/255 at the photo's size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from sketchpad.atomic import SaveError, atomic_write_bytes
from sketchpad.search.masks import PhotoMask, corrected_mask

log = logging.getLogger(__name__)

ReviewState = Literal["accepted", "rejected"]
FORMAT = "sketchpad-review"
VERSION = 1
_STATES = ("accepted", "rejected")


def review_dir(folder: Path, root: Path | None = None) -> Path:
    """Where ``folder``'s review lives (under ``root``, default the user data folder)."""
    from sketchpad.paths import data_dir

    resolved = os.fsencode(Path(folder).expanduser().resolve())
    ident = hashlib.sha1(resolved, usedforsecurity=False).hexdigest()[:16]
    return (root if root is not None else data_dir() / "review") / ident


def _key(name: str) -> str:
    return os.fsencode(name).hex()


def _name(key: str) -> str:
    return os.fsdecode(bytes.fromhex(key))


class FolderReview:
    """The review of one photo folder (see the module docstring).

    Args:
        folder: the photo folder (only its path is used: nothing is written there).
        root: where reviews are kept (tests); default the user data folder.

    A damaged ``state.json`` is moved aside (``state.json.damaged``) and the review starts
    empty, with a warning in the log.
    """

    def __init__(self, folder: Path, *, root: Path | None = None) -> None:
        self.folder = Path(folder)
        self.dir = review_dir(self.folder, root)
        self._photos: dict[str, dict[str, Any]] = {}
        self._pixels: dict[str, np.ndarray] = {}  # corrected masks read or written, by key
        self._load()

    # -- reading -----------------------------------------------------------------------------
    def _load(self) -> None:
        path = self.dir / "state.json"
        if not path.exists():
            return
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT or not isinstance(doc.get("photos"), dict):
                raise ValueError("not a Sketchpad review")
            if int(doc.get("version", 0)) > VERSION:
                raise ValueError(f"written by a newer Sketchpad (version {doc['version']})")
            photos = {str(k): dict(v) for k, v in doc["photos"].items()}
            for k in photos:
                bytes.fromhex(k)
        except (OSError, ValueError, TypeError, AttributeError) as e:
            aside = path.with_name("state.json.damaged")
            log.warning("review of %s unreadable (%s): moved to %s", self.folder, e, aside)
            try:
                os.replace(path, aside)
            except OSError:
                pass
            return
        self._photos = photos

    def state(self, name: str) -> ReviewState | None:
        """``name``'s review state, or None (not reviewed)."""
        value = self._photos.get(_key(name), {}).get("state")
        return value if value in _STATES else None

    def names(self, state: ReviewState | None) -> list[str]:
        """The photos in ``state`` (None: those with a record but no state)."""
        return [_name(k) for k, v in self._photos.items() if v.get("state") == state]

    def corrected(self, name: str) -> np.ndarray | None:
        """``name``'s corrected mask, (H, W) bool, or None (none, or its file is unreadable)."""
        key = _key(name)
        rec = self._photos.get(key)
        if not rec or not rec.get("corrected"):
            return None
        if (cached := self._pixels.get(key)) is not None:
            return cached
        path = self.dir / "masks" / str(rec["corrected"])
        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("L")) > 127
        except (OSError, ValueError) as e:
            log.warning("corrected mask of %r unreadable (%s): ignored", name, e)
            return None
        hw = rec.get("photo_hw")
        if hw is not None and tuple(pixels.shape) != tuple(hw):
            log.warning("corrected mask of %r is not at the photo's size: ignored", name)
            return None
        pixels.flags.writeable = False
        self._pixels[key] = pixels
        return pixels

    def mask_for(self, name: str, mask: PhotoMask) -> PhotoMask:
        """What to show and export for ``name`` in place of the query's ``mask``: the corrected
        mask (with the photo's score, marked ``corrected``) when there is one, scaled with
        nearest neighbours to ``mask``'s size when that differs (a thumbnail); else ``mask``."""
        pixels = self.corrected(name)
        if pixels is None:
            return mask
        hw = tuple(int(v) for v in mask.mask.shape)
        if pixels.shape != hw:
            import cv2

            small = cv2.resize(
                pixels.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST
            )
            pixels = small.astype(bool)
        return corrected_mask(pixels, score=mask.score, threshold=mask.threshold)

    def export_names(self, names: Iterable[str], *, accepted_only: bool) -> list[str]:
        """``names`` an export writes: never a rejected photo; only accepted ones when asked."""
        keep = []
        for name in names:
            state = self.state(name)
            if state == "rejected" or (accepted_only and state != "accepted"):
                continue
            keep.append(name)
        return keep

    def has_correction(self, name: str) -> bool:
        return bool(self._photos.get(_key(name), {}).get("corrected"))

    def corrected_names(self) -> list[str]:
        return [_name(k) for k, v in self._photos.items() if v.get("corrected")]

    # -- writing -----------------------------------------------------------------------------
    def set_state(self, name: str, state: ReviewState | None) -> None:
        """Accept, reject or un-review ``name``; saved at once.

        Raises:
            ValueError: an unknown state. sketchpad.atomic.SaveError: it could not be saved.
        """
        if state is not None and state not in _STATES:
            raise ValueError(f"review state must be accepted, rejected or None, got {state!r}")
        self._record(name)["state"] = state
        self._save()

    def set_states(self, names: Iterable[str], state: ReviewState | None) -> None:
        """:meth:`set_state` for several photos, saved once."""
        if state is not None and state not in _STATES:
            raise ValueError(f"review state must be accepted, rejected or None, got {state!r}")
        for name in names:
            self._record(name)["state"] = state
        self._save()

    def set_corrected(self, name: str, pixels: np.ndarray | None) -> None:
        """Keep ``pixels`` ((H, W) bool at the photo's size) as ``name``'s mask; None resets
        it to the model's. Saved at once.

        Raises:
            ValueError: not a bool mask. sketchpad.atomic.SaveError: it could not be saved.
        """
        rec = self._record(name)
        self._pixels.pop(_key(name), None)
        if pixels is None:
            old = rec.get("corrected")
            rec["corrected"], rec["photo_hw"] = None, None
            self._save()
            if old:
                try:
                    (self.dir / "masks" / str(old)).unlink()
                except OSError:
                    pass
            return
        px = np.asarray(pixels)
        if px.ndim != 2 or px.dtype != np.bool_:
            raise ValueError(f"a corrected mask must be (H, W) bool, got {px.shape} {px.dtype}")
        file = hashlib.sha1(os.fsencode(name), usedforsecurity=False).hexdigest()[:24] + ".png"
        buf = BytesIO()
        Image.fromarray(px.astype(np.uint8) * 255).save(buf, format="PNG")
        self._mkdir(self.dir / "masks")
        atomic_write_bytes(self.dir / "masks" / file, buf.getvalue())
        rec["corrected"], rec["photo_hw"] = file, [int(px.shape[0]), int(px.shape[1])]
        self._save()
        kept = px.copy()
        kept.flags.writeable = False
        self._pixels[_key(name)] = kept

    def _record(self, name: str) -> dict[str, Any]:
        return self._photos.setdefault(_key(name), {"state": None, "corrected": None})

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise SaveError(path, f"cannot create the folder ({e.strerror or e})") from e

    def _save(self) -> None:
        self._mkdir(self.dir)
        photos = {k: v for k, v in self._photos.items() if v.get("state") or v.get("corrected")}
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "folder": os.fsencode(self.folder).decode("utf-8", "backslashreplace"),
            "photos": photos,
        }
        atomic_write_bytes(self.dir / "state.json", json.dumps(doc, indent=1).encode("utf-8"))
