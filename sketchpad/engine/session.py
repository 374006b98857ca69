"""The gallery of one open folder under one model: the bank that queries run against, growing
while the folder is indexed. No Qt; used by the worker thread only.

- :meth:`FolderSession.load` reads every cached photo (``sketchpad.gallery.query.load_bank``,
  within the memory budget, the rest streamed), in the folder's natural order — or, for a
  large folder, from its patch store (the search core's rule: ``exact`` and ``min_photos``
  are the worker's :class:`~sketchpad.search.core.SearchCore`'s), which then runs the
  two-stage query.
- :meth:`FolderSession.grow` appends the photos an indexing run has just committed, with the
  features ``index_folder`` hands to its ``on_batch`` callback (already in memory: nothing is
  read back, so a batch costs what it adds, not what the cache holds — reading every cached
  path per batch made indexing quadratic and starved the GUI thread of the GIL). Grown photos
  are held in memory; once the budget would be exceeded the session stops growing and asks
  for a reload. A bank read from the patch store does not grow: the photos indexed meanwhile
  join when indexing ends (a reload); a grown bank that reached the store's size is reloaded
  then too (:attr:`FolderSession.wants_store`).
- :attr:`FolderSession.needs_reload`: the bank no longer matches the cache exactly (a changed
  photo was re-indexed while its old features were loaded, or growth stopped at the budget);
  the worker then reloads when indexing ends. Otherwise the grown bank is kept as it is, so a
  large folder is not read twice; its order is then "cached photos, then photos in the order
  they were indexed". Results name their photos, so the order is never assumed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sketchpad.gallery.cache import ModelKey, cache_path
from sketchpad.gallery.query import CachedBank, load_bank
from sketchpad.search.shortlist import MIN_PHOTOS
from sketchpad.vision.features import PhotoFeatures

log = logging.getLogger(__name__)


class FolderSession:
    """One folder's gallery under one model.

    Args:
        folder: the photo folder.
        key: the model key of the features.
        budget_bytes: memory budget for patch features.
        exact: the search core's ``exact`` (True: never the patch store).
        min_photos: the search core's ``min_photos`` (the patch store from this size on).
    """

    def __init__(
        self,
        folder: Path,
        key: ModelKey,
        budget_bytes: int,
        *,
        exact: bool | None = None,
        min_photos: int = MIN_PHOTOS,
    ) -> None:
        self.folder = Path(folder)
        self.key = key
        self.budget_bytes = int(budget_bytes)
        self.exact = exact
        self.min_photos = int(min_photos)
        self.bank = CachedBank(self.folder, cache_path(self.folder, key))
        self.loaded = False
        self.needs_reload = False
        self._known: set[str] = set()
        self._names: tuple[str, ...] | None = None
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.bank)

    def load(self) -> None:
        """(Re)read the gallery from the cache."""
        old = self.bank
        self.bank = load_bank(
            self.folder,
            self.key,
            budget_bytes=self.budget_bytes,
            exact=self.exact,
            min_photos=self.min_photos,
        )
        old.close()
        self._known = set(self.bank.names)
        self.loaded = True
        self.needs_reload = False
        self._changed()
        log.debug("%s: %d photos loaded", self.folder, len(self.bank))

    def grow(self, committed: Sequence[tuple[str, PhotoFeatures]]) -> int:
        """Append photos just committed to the cache (``index_folder``'s ``on_batch`` items:
        folder-relative name, features); returns how many joined."""
        if self.needs_reload or not committed:
            return 0
        if self.bank.from_store:  # compressed rows with stored summaries: reload at the end
            self.needs_reload = True
            return 0
        if any(name in self._known for name, _ in committed):
            # re-indexed after a change: its old features stay in the bank until the reload
            log.debug("%s: changed photos re-indexed", self.folder)
            self.needs_reload = True
            return 0
        add_bytes = sum(f.patches.shape[0] * f.patches.shape[1] * 2 for _, f in committed)
        if self.bank.resident_bytes + add_bytes > self.budget_bytes:
            log.info(
                "%s: the memory budget is reached; the rest joins when indexing ends", self.folder
            )
            self.needs_reload = True
            return 0
        names = [name for name, _ in committed]
        self.bank.extend([f for _, f in committed], names=names)
        self._known.update(names)
        self._changed()
        return len(names)

    @property
    def wants_store(self) -> bool:
        """Whether the bank grew (float16, while indexing) past the size from which the
        folder is read from its patch store: the worker reloads when indexing ends."""
        return (
            self.exact is not True
            and not self.bank.from_store
            and len(self.bank) >= self.min_photos
        )

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

    def _changed(self) -> None:
        self._names = None
        self._index = None
