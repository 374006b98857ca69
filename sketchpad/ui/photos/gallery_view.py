"""The gallery pane's grid view and its folder scan job (see
:mod:`sketchpad.ui.photos.gallery_pane`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QRunnable, Signal
from PySide6.QtWidgets import QListView

from sketchpad.gallery.images import PhotoError, scan_folder

log = logging.getLogger(__name__)


class ScanBridge(QObject):
    done = Signal(int, object, object, object)  # token, folder, (ScanResult, names) | None, error


class ScanJob(QRunnable):
    """``scan_folder`` on a pool thread; names relative to the folder, in the scan's order."""

    def __init__(self, bridge: ScanBridge, token: int, folder: Path) -> None:
        super().__init__()
        self._bridge, self._token, self._folder = bridge, token, folder

    def run(self) -> None:
        try:
            result = scan_folder(self._folder)
        except PhotoError as e:
            self._bridge.done.emit(self._token, self._folder, None, e)
        except Exception as e:  # a bug of ours: report it rather than leave the pane waiting
            log.exception("scanning %s failed", self._folder)
            self._bridge.done.emit(self._token, self._folder, None, e)
        else:  # names here, not on the GUI thread (10,000 relpaths take ~50 ms)
            names = [os.path.relpath(p, self._folder) for p in result.photos]
            self._bridge.done.emit(self._token, self._folder, (result, names), None)


class GalleryView(QListView):
    """The grid. Cells have one size (``uniformItemSizes``), so changed data never move a
    cell: a change of many rows (every score of a new result) repaints the viewport instead
    of QListView's per-row bookkeeping, which called into the Python model for each of
    10,000 rows (~30 ms per result, ``sketchpad bench ui``)."""

    def dataChanged(  # noqa: N802 (Qt API)
        self,
        top_left: QModelIndex | QPersistentModelIndex,
        bottom_right: QModelIndex | QPersistentModelIndex,
        roles: Sequence[int] = (),
    ) -> None:
        if bottom_right.row() - top_left.row() > 64:
            self.viewport().update()
            return
        super().dataChanged(top_left, bottom_right, roles)
