"""The gallery of one open folder under one model: the bank that queries run against, growing
while the folder is indexed. No Qt; used by the worker thread only.

- :meth:`FolderSession.load` reads every cached photo (``sketchpad.gallery.query.load_bank``,
  within the memory budget, the rest streamed), in the folder's natural order.
- :meth:`FolderSession.grow` appends the photos that an indexing run has committed since
  (read back through a read-only connection to the cache: WAL readers see committed rows
  while the writer goes on). Grown photos are held in memory; once the budget would be
  exceeded the session stops growing and asks for a reload.
- :attr:`FolderSession.needs_reload`: the bank no longer matches the cache exactly (a changed
  photo was re-indexed while its old features were loaded, or growth stopped at the budget);
  the worker then reloads when indexing ends. Otherwise the grown bank is kept as it is, so a
  large folder is not read twice; its order is then "cached photos, then photos in the order
  they were indexed". Results name their photos, so the order is never assumed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sketchpad.gallery.cache import FeatureCache, ModelKey, cache_path
from sketchpad.gallery.images import natural_key
from sketchpad.gallery.query import CachedBank, load_bank

log = logging.getLogger(__name__)


class FolderSession:
    """One folder's gallery under one model.

    Args:
        folder: the photo folder.
        key: the model key of the features.
        budget_bytes: memory budget for patch features.
    """

    def __init__(self, folder: Path, key: ModelKey, budget_bytes: int) -> None:
        self.folder = Path(folder)
        self.key = key
        self.budget_bytes = int(budget_bytes)
        self.bank = CachedBank(self.folder, cache_path(self.folder, key))
        self.loaded = False
        self.needs_reload = False
        self._identity: dict[str, tuple[int, int]] = {}
        self._names: tuple[str, ...] | None = None
        self._index: dict[str, int] | None = None
        self._reader: FeatureCache | None = None
        self._reader_saw_file = False

    def __len__(self) -> int:
        return len(self.bank)

    def load(self) -> None:
        """(Re)read the gallery from the cache."""
        old = self.bank
        self.bank = load_bank(self.folder, self.key, budget_bytes=self.budget_bytes)
        old.close()
        reader = self._open_reader()
        current = reader.paths() if reader is not None else {}
        self._identity = {n: current[n] for n in self.bank.names if n in current}
        self.loaded = True
        self.needs_reload = False
        self._changed()
        log.debug("%s: %d photos loaded", self.folder, len(self.bank))

    def grow(self) -> int:
        """Append photos committed to the cache since the last load or grow; returns how many."""
        if self.needs_reload:
            return 0
        reader = self._open_reader()
        if reader is None:
            return 0
        current = reader.paths()
        changed = [n for n, ident in self._identity.items() if current.get(n, ident) != ident]
        if changed:  # re-indexed: its old features stay in the bank until the reload
            log.debug("%s: %d changed photos re-indexed", self.folder, len(changed))
            self.needs_reload = True
            return 0
        new = sorted((n for n in current if n not in self._identity), key=natural_key)
        feats, names = [], []
        for name in new:
            f = reader.get(name)
            if f is not None:
                feats.append(f)
                names.append(name)
        if not feats:
            return 0
        add_bytes = sum(f.patches.shape[0] * f.patches.shape[1] * 2 for f in feats)
        if self.bank.resident_bytes + add_bytes > self.budget_bytes:
            log.info(
                "%s: the memory budget is reached; the rest joins when indexing ends", self.folder
            )
            self.needs_reload = True
            return 0
        self.bank.extend(feats, names=names)
        self._identity.update((n, current[n]) for n in names)
        self._changed()
        return len(names)

    def names(self) -> tuple[str, ...]:
        """The photos' names (relative to the folder) in bank order."""
        if self._names is None:
            self._names = tuple(self.bank.names)
        return self._names

    def index_of(self) -> dict[str, int]:
        """name → index in the bank."""
        if self._index is None:
            self._index = {n: i for i, n in enumerate(self.names())}
        return self._index

    def close(self) -> None:
        """Release the cache connections."""
        self.bank.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _changed(self) -> None:
        self._names = None
        self._index = None

    def _open_reader(self) -> FeatureCache | None:
        """A read-only connection to the cache, once the cache file exists (a reader opened
        earlier would read as empty forever)."""
        exists = self.bank.cache_path.exists()
        if self._reader is not None and (self._reader_saw_file or not exists):
            return self._reader
        if self._reader is not None:
            self._reader.close()
        self._reader = FeatureCache.open(self.folder, self.key, writer=False)
        self._reader_saw_file = exists
        return self._reader
