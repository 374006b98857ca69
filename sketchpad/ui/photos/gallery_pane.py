"""The gallery pane beside the canvas: a folder's photos with the query's masks and scores.

Layout: a header (folder, sort, "Matches only", a busy indicator, skipped files), a
``QListView`` in icon mode over ``GalleryProxy`` ← ``GalleryModel`` painted by
``GalleryDelegate``, an empty-state text, and a footer with the indexing progress, its ETA and a
Cancel button (shown only while indexing).

The pane does not talk to the engine: the main window feeds it (``apply_result``,
``set_index_progress`` …) and listens to it (``folderDropped``, ``cancelIndexing``,
``visibleNamesChanged`` to ask masks for the photos on screen). ``set_folder`` scans the folder
on a pool thread (``gallery.images.scan_folder``); the photos show as soon as the scan lands.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QMimeData,
    QModelIndex,
    QObject,
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QAction,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from sketchpad.gallery.images import PhotoError, ScanResult
from sketchpad.ui.photos.gallery_delegate import GalleryDelegate
from sketchpad.ui.photos.gallery_model import GalleryModel
from sketchpad.ui.photos.gallery_proxy import GalleryProxy
from sketchpad.ui.photos.gallery_view import GalleryView, ScanBridge, ScanJob
from sketchpad.ui.photos.thumbnails import ThumbnailCache
from sketchpad.workspace.preferences import THUMBNAIL_SIZES

if TYPE_CHECKING:
    from sketchpad.engine.requests import MaskResult, QueryResult

log = logging.getLogger(__name__)

EMPTY_TEXT = "Open a folder of photos (Photos ▸ Open Folder… or drop it here)"
#: Delay between the last scroll, resize or model change and ``visibleNamesChanged``.
VISIBLE_DEBOUNCE_MS = 100
#: How long ``index_finished``'s text stays in the footer.
NOTICE_MS = 5000
#: Cells laid out per batch (``QListView.setBatchSize``).
LAYOUT_BATCH = 500
#: Bounds of the thumbnail-size slider (pixels): the preferences'.
THUMB_SIZES = THUMBNAIL_SIZES
#: Skipped files listed in the tooltip.
SKIPPED_SHOWN = 20


#: The busy indicator's fixed size (logical pixels).
BUSY_BAR_SIZE = QSize(60, 12)


def _keep_size_when_hidden(widget: QWidget) -> None:
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)


class ElidedLabel(QLabel):
    """A one-line label that ends in "…" when its text is wider than the label (a plain QLabel
    cuts it mid-letter); ``text()`` and the tooltip keep the whole text."""

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        rect = self.contentsRect()
        painter = QPainter(self)
        self.style().drawItemText(
            painter, rect, int(self.alignment()), self.palette(), self.isEnabled(),
            self.shown_text(),
            self.foregroundRole(),
        )  # fmt: skip

    def shown_text(self) -> str:
        """What the label paints at its present width."""
        width = self.contentsRect().width()
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, width)


def format_eta(seconds: float) -> str:
    """A duration in words for the indexing footer: "25 s", "3 min", "1 h 5 min"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {round((s % 3600) / 60)} min"


def folder_from_mime(mime: QMimeData) -> Path | None:
    """The folder a drop names: one local folder, or the folder of the local file(s) dropped
    (all in the same folder); None for anything else."""
    if not mime.hasUrls():
        return None
    paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    if not paths or len(paths) != len(mime.urls()):
        return None
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0]
    parents = {p.parent for p in paths if p.is_file()}
    return parents.pop() if len(parents) == 1 and all(p.is_file() for p in paths) else None


class GalleryPane(QWidget):
    """See the module docstring.

    Args:
        parent: Qt parent.
        thumbnails: the thumbnail cache (default: a new one of ``thumb_side``).
        thumb_side: thumbnail size in pixels when the cache is made here.

    Signals:
        photoActivated(object): a photo was double-clicked or Enter pressed on it (its name,
            a str that may hold surrogate escapes: passed as an object so Qt keeps it whole).
        cancelIndexing(): the Cancel button of the indexing footer.
        folderDropped(object): a folder (Path) was dropped on the pane.
        visibleNamesChanged(): the photos on screen changed (debounced); see ``visible_names``.
        scanFinished(object): ``set_folder``'s scan landed (the ScanResult) and is shown.
        scanFailed(str): ``set_folder``'s folder could not be listed (why).
        message(str): a line for the status bar.
    """

    photoActivated = Signal(object)
    thumbnailSizeChanged = Signal(int)
    cancelIndexing = Signal()
    folderDropped = Signal(object)
    visibleNamesChanged = Signal()
    scanFinished = Signal(object)
    scanFailed = Signal(str)
    message = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        thumbnails: ThumbnailCache | None = None,
        thumb_side: int = 160,
    ) -> None:
        super().__init__(parent)
        self._thumbnails = thumbnails or ThumbnailCache(thumb_side, parent=self)
        self._model = GalleryModel(self)
        self._proxy = GalleryProxy(self)
        self._proxy.setSourceModel(self._model)
        self._delegate = GalleryDelegate(self._thumbnails, self)
        self._scan_token = 0
        self._scan_pool = QThreadPool(self)
        self._scan_pool.setMaxThreadCount(1)
        self._scan_bridge = ScanBridge(self)
        self._scan_bridge.done.connect(self._on_scan_done)
        self._scanning: Path | None = None

        self._view = GalleryView(self)
        self._build_view()
        self._build_layout()
        self.setAcceptDrops(True)

        self._visible_timer = QTimer(self)
        self._visible_timer.setSingleShot(True)
        self._visible_timer.setInterval(VISIBLE_DEBOUNCE_MS)
        self._visible_timer.timeout.connect(self.visibleNamesChanged)
        self._notice_timer = QTimer(self)
        self._notice_timer.setSingleShot(True)
        self._notice_timer.timeout.connect(self._hide_notice)

        self._view.verticalScrollBar().valueChanged.connect(self._schedule_visible)
        self._view.viewport().installEventFilter(self)
        for signal in (
            self._proxy.modelReset,
            self._proxy.layoutChanged,
            self._proxy.rowsInserted,
            self._proxy.rowsRemoved,
        ):
            signal.connect(self._on_rows_changed)
        self._view.activated.connect(self._on_activated)
        self._thumbnails.ready.connect(self._on_thumbnail)
        self._thumbnails.failed.connect(self._on_thumbnail)
        self._update_empty()

    # -- building ----------------------------------------------------------------------------
    def _build_view(self) -> None:
        v = self._view
        v.setViewMode(QListView.ViewMode.IconMode)
        v.setUniformItemSizes(True)
        v.setLayoutMode(QListView.LayoutMode.Batched)
        v.setBatchSize(LAYOUT_BATCH)
        v.setResizeMode(QListView.ResizeMode.Adjust)
        v.setMovement(QListView.Movement.Static)
        v.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        v.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        v.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        v.setWrapping(True)
        v.setSpacing(2)
        v.setGridSize(self._delegate.cell_size + QSize(4, 4))
        v.setDragEnabled(False)
        v.setAcceptDrops(False)
        v.viewport().setAcceptDrops(False)
        v.setItemDelegate(self._delegate)
        v.setModel(self._proxy)
        v.verticalScrollBar().setSingleStep(self._delegate.cell_size.height() // 4)
        self.review_actions: dict[str, QAction] = {}
        for key, text, state, tip in (
            ("accept", "Accept", "accepted", "Accept the selected photos' masks (A)"),
            ("reject", "Reject", "rejected", "Reject the selected photos (X): never exported"),
            ("unreview", "Clear Review", None, "Mark the selected photos not reviewed (U)"),
        ):
            a = QAction(text, v)
            a.setShortcut(QKeySequence({"accept": "A", "reject": "X", "unreview": "U"}[key]))
            a.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            a.setToolTip(tip)
            a.triggered.connect(lambda _c=False, st=state: self.review_selected(st))
            v.addAction(a)
            self.review_actions[key] = a
        v.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

    def _build_layout(self) -> None:
        self._folder_label = QLabel("No folder", self)
        self._folder_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._skipped_label = QLabel(self)
        self._skipped_label.hide()
        self._sort_combo = QComboBox(self)
        self._sort_combo.addItem("Score", "score")
        self._sort_combo.addItem("Name", "name")
        self._sort_combo.setToolTip("Order of the photos: best match first, or by file name")
        self._sort_combo.currentIndexChanged.connect(self._on_sort_changed)
        self._matches_box = QCheckBox("Matches only", self)
        self._matches_box.setToolTip("Hide the photos where the sketch was not found")
        self._matches_box.toggled.connect(self._proxy.set_matches_only)
        self._review_combo = QComboBox(self)
        for text, which in (
            ("All photos", "all"),
            ("Not reviewed", "unreviewed"),
            ("Accepted", "accepted"),
            ("Rejected", "rejected"),
        ):
            self._review_combo.addItem(text, which)
        self._review_combo.setToolTip(
            "Show the photos by review: accept with A, reject with X, clear with U"
        )
        self._review_combo.currentIndexChanged.connect(
            lambda _i: self._proxy.set_review_filter(self._review_combo.currentData())
        )
        # Fixed sizes, kept in the layout while hidden: showing the busy bar, the indexing
        # footer or a notice never changes the pane's minimum width, so the splitter never
        # resizes the canvas for them. The folder's name has a row of its own.
        self._busy_bar = QProgressBar(self)
        self._busy_bar.setRange(0, 0)  # indeterminate
        self._busy_bar.setTextVisible(False)
        self._busy_bar.setFixedSize(BUSY_BAR_SIZE)
        self._busy_bar.setToolTip("A query is running")
        _keep_size_when_hidden(self._busy_bar)
        self._busy_bar.hide()
        title = QHBoxLayout()
        title.setContentsMargins(4, 2, 4, 0)
        title.addWidget(self._folder_label, 1)
        title.addWidget(self._skipped_label)
        title.addWidget(self._review_combo)
        self._size_slider = QSlider(Qt.Orientation.Horizontal, self)
        self._size_slider.setRange(*THUMB_SIZES)
        self._size_slider.setSingleStep(8)
        self._size_slider.setPageStep(32)
        self._size_slider.setValue(self._delegate.side)
        self._size_slider.setFixedWidth(72)
        self._size_slider.setToolTip("Thumbnail size")
        self._size_slider.valueChanged.connect(self.set_thumbnail_size)
        title.addWidget(self._size_slider)
        header = QHBoxLayout()
        header.setContentsMargins(4, 0, 4, 2)
        header.addWidget(self._busy_bar)
        header.addStretch(1)
        header.addWidget(self._sort_combo)
        header.addWidget(self._matches_box)

        self._empty_label = QLabel(EMPTY_TEXT, self)
        self._empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty_label.setWordWrap(True)
        self._stack = QStackedWidget(self)
        self._stack.addWidget(self._view)
        self._stack.addWidget(self._empty_label)

        self._progress = QProgressBar(self)
        self._progress.setTextVisible(False)
        self._progress.setMinimumWidth(0)
        self._progress.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._eta_label = ElidedLabel(self)
        self._eta_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._cancel_button = QPushButton("Cancel", self)
        # A click does not take the focus (tool keys keep working on the canvas); Tab does.
        self._cancel_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        cancelling = self._cancel_button.fontMetrics().horizontalAdvance("Cancelling…") + 24
        self._cancel_button.setFixedWidth(max(self._cancel_button.sizeHint().width(), cancelling))
        self._cancel_button.setToolTip("Stop indexing (the photos indexed so far stay searchable)")
        self._cancel_button.clicked.connect(self._on_cancel)
        self._footer = QWidget(self)
        footer = QHBoxLayout(self._footer)
        footer.setContentsMargins(4, 2, 4, 2)
        footer.addWidget(self._progress, 1)
        footer.addWidget(self._eta_label, 2)  # (Ignored policies: they share what is there)
        footer.addWidget(self._cancel_button)
        self._footer.hide()
        self._notice_label = QLabel(self)
        self._notice_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._notice_label.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(title)
        layout.addLayout(header)
        layout.addWidget(self._stack, 1)
        layout.addWidget(self._footer)
        layout.addWidget(self._notice_label)

    # -- properties --------------------------------------------------------------------------
    @property
    def model(self) -> GalleryModel:
        return self._model

    @property
    def proxy(self) -> GalleryProxy:
        return self._proxy

    @property
    def view(self) -> QListView:
        return self._view

    @property
    def thumbnails(self) -> ThumbnailCache:
        return self._thumbnails

    @property
    def delegate(self) -> GalleryDelegate:
        return self._delegate

    # -- folders -----------------------------------------------------------------------------
    def set_folder(self, folder: Path) -> None:
        """Show ``folder``: it is scanned on a pool thread and shown when the scan lands
        (``scanFinished``, or ``scanFailed`` when it cannot be listed)."""
        folder = Path(folder)
        self._scan_token += 1
        self._scanning = folder
        self._reset_folder(folder)
        self._model.set_folder(folder, ())
        self._empty_label.setText(f"Looking for photos in {folder} …")
        self._update_empty()
        self._scan_pool.start(ScanJob(self._scan_bridge, self._scan_token, folder))

    def set_names(self, folder: Path, names: Sequence[str]) -> None:
        """Show ``folder``'s photos ``names`` (relative to it, any order), without a scan."""
        self._scan_token += 1  # a scan still running is no longer wanted
        self._scanning = None
        if Path(folder) != self._model.folder:  # the same folder keeps its thumbnails
            self._reset_folder(Path(folder))
        self._model.set_folder(Path(folder), names)
        self._update_empty()

    def add_names(self, names: Sequence[str]) -> None:
        """Photos that joined the folder while it is indexed."""
        self._model.add_names(names)

    def wait_for_scan(self, timeout_ms: int = 10_000) -> bool:
        """Wait for a scan in flight and deliver it (tests). Returns False on timeout."""
        done = self._scan_pool.waitForDone(timeout_ms)
        QCoreApplication.processEvents()
        return done and self._scanning is None

    def _reset_folder(self, folder: Path) -> None:
        self._thumbnails.clear()
        self._delegate.clear_overlays()
        self._skipped_label.hide()
        self._folder_label.setText(folder.name or str(folder))
        self._folder_label.setToolTip(str(folder))

    @Slot(int, object, object, object)
    def _on_scan_done(
        self,
        token: int,
        folder: Path,
        scanned: tuple[ScanResult, list[str]] | None,
        error: Exception | None,
    ) -> None:
        if token != self._scan_token:
            return  # another folder was asked for since
        self._scanning = None
        if scanned is None:
            why = error.reason if isinstance(error, PhotoError) else f"{error}"
            text = f"Cannot open {folder}: {why}"
            self._empty_label.setText(text)
            self._update_empty()
            self.message.emit(text)
            self.scanFailed.emit(text)
            return
        result, names = scanned
        self._model.set_folder(folder, names, natural_order=True)
        self._show_skipped(result.skipped)
        n, k = len(names), len(result.skipped)
        text = f"{n} photo{'s' if n != 1 else ''} in {folder}"
        if k:
            text += f" · {k} file{'s' if k != 1 else ''} skipped (see the ⚠ tooltip)"
        self._empty_label.setText(f"No photos in {folder}" if not n else EMPTY_TEXT)
        self._update_empty()
        self.message.emit(text)
        self.scanFinished.emit(result)

    def _show_skipped(self, skipped: Sequence[PhotoError]) -> None:
        if not skipped:
            self._skipped_label.hide()
            return
        k = len(skipped)
        self._skipped_label.setText(f"⚠ {k} skipped")
        lines = [f"{e.path.name}: {e.reason}" for e in skipped[:SKIPPED_SHOWN]]
        if k > SKIPPED_SHOWN:
            lines.append(f"… and {k - SKIPPED_SHOWN} more")
        self._skipped_label.setToolTip(
            f"{k} file{'s' if k != 1 else ''} skipped:\n" + "\n".join(lines)
        )
        self._skipped_label.show()

    @property
    def skipped_text(self) -> str:
        """The skipped-files note of the header ("" when none): its text and tooltip."""
        if self._skipped_label.isHidden():
            return ""
        return f"{self._skipped_label.text()}\n{self._skipped_label.toolTip()}"

    # -- results -----------------------------------------------------------------------------
    def apply_result(self, result: QueryResult) -> None:
        """Show a query's scores and masks (see ``GalleryModel.apply_result``)."""
        self._model.apply_result(result)

    def apply_masks(self, result: MaskResult) -> None:
        """Show more masks of the query shown."""
        self._model.apply_masks(result)

    def clear_results(self) -> None:
        """Forget the query's scores and masks."""
        self._model.clear_results()

    def set_threshold(self, threshold: float) -> None:
        """Re-threshold the masks shown, without the model."""
        self._model.set_threshold(threshold)

    def set_busy(self, busy: bool) -> None:
        """Show or hide the busy indicator (a query is running)."""
        self._busy_bar.setVisible(bool(busy))

    @property
    def is_busy(self) -> bool:
        return not self._busy_bar.isHidden()

    # -- indexing footer ---------------------------------------------------------------------
    def set_index_progress(
        self, done: int, total: int, eta_s: float, slow_device: str | None = None
    ) -> None:
        """Show indexing progress: ``done`` of ``total`` photos, ``eta_s`` seconds left
        (< 0: unknown). ``slow_device`` names the device a model meant for a GPU runs on
        instead: the footer then gives the measured time per photo."""
        self._notice_timer.stop()
        self._notice_label.hide()
        self._progress.setRange(0, max(1, total))
        self._progress.setValue(min(done, max(1, total)))
        text = f"{done} / {total}"
        tip = text
        if slow_device and eta_s > 0 and total > done:
            per_photo = eta_s / (total - done)
            text += f" · {per_photo:.1f} s/photo on {slow_device.upper()}"
            tip += (
                f" · {per_photo:.1f} s per photo, measured on this folder: this model expects a "
                f"GPU and runs slowly on the {slow_device.upper()}"
            )
        if eta_s >= 0:
            text += f" · about {format_eta(eta_s)} left"
            tip += f" · about {format_eta(eta_s)} left"
        self._eta_label.setText(text)
        self._eta_label.setToolTip(tip)
        if self._footer.isHidden():
            self._cancel_button.setEnabled(True)
            self._cancel_button.setText("Cancel")
        self._footer.show()

    def index_finished(self, text: str) -> None:
        """Indexing ended: hide the footer and show ``text`` for a few seconds."""
        self._footer.hide()
        self._notice_label.setText(text)
        self._notice_label.setToolTip(text)  # a narrow pane cuts it: the whole text here
        self._notice_label.setVisible(bool(text))
        self._notice_timer.start(NOTICE_MS)
        if text:
            self.message.emit(text)

    @property
    def progress_text(self) -> str:
        """The footer's progress text ("" when hidden)."""
        return "" if self._footer.isHidden() else self._eta_label.text()

    @property
    def is_indexing_shown(self) -> bool:
        return not self._footer.isHidden()

    @property
    def cancel_button(self) -> QPushButton:
        return self._cancel_button

    @property
    def notice_text(self) -> str:
        return "" if self._notice_label.isHidden() else self._notice_label.text()

    def _hide_notice(self) -> None:
        self._notice_label.hide()

    def _on_cancel(self) -> None:
        self._cancel_button.setEnabled(False)
        self._cancel_button.setText("Cancelling…")
        self.cancelIndexing.emit()

    # -- sort and filter ---------------------------------------------------------------------
    def set_sort(self, key: str) -> None:
        """Sort by "score" or "name" (the combo box follows)."""
        i = self._sort_combo.findData(key)
        if i < 0:
            raise ValueError(f"sort key must be 'score' or 'name', got {key!r}")
        self._sort_combo.setCurrentIndex(i)

    def set_matches_only(self, on: bool) -> None:
        """Show only the photos that match the query (the check box follows)."""
        self._matches_box.setChecked(bool(on))

    @property
    def sort_combo(self) -> QComboBox:
        return self._sort_combo

    @property
    def matches_box(self) -> QCheckBox:
        return self._matches_box

    def _on_sort_changed(self, _i: int) -> None:
        self._proxy.set_sort(self._sort_combo.currentData())

    # -- what is on screen -------------------------------------------------------------------
    def ordered_names(self) -> list[str]:
        """Every shown photo's name in display order (the large view's previous/next)."""
        names = self._model.names()
        return [names[int(r)] for r in self._proxy.source_order()]

    def name_at(self, index: QModelIndex) -> str | None:
        """The photo name of a proxy index, exactly (read from the model: a name crossing Qt
        as a string loses bytes that are not valid UTF-8)."""
        if not index.isValid():
            return None
        row = self._proxy.mapToSource(index).row()
        names = self._model.names()
        return names[row] if 0 <= row < len(names) else None

    def selected_names(self) -> list[str]:
        """The selected photos' names in display order (else the current photo's)."""
        rows = sorted(i.row() for i in self._view.selectionModel().selectedIndexes())
        names = [n for r in rows if (n := self.name_at(self._proxy.index(r, 0)))]
        if not names and (current := self.current_name()) is not None:
            names = [current]
        return names

    def review_selected(self, state: str | None) -> int:
        """Accept ("accepted"), reject ("rejected") or clear (None) the selected photos' review;
        returns how many. Says why in ``message`` when it cannot (no folder, a disk error)."""
        names = self.selected_names()
        if not names:
            return 0
        from sketchpad.atomic import SaveError

        try:
            self._model.set_review_state(names, state)
        except (RuntimeError, SaveError) as e:
            self.message.emit(f"Review not saved: {e}")
            return 0
        what = {"accepted": "accepted", "rejected": "rejected", None: "not reviewed"}[state]
        self.message.emit(f"{len(names)} photo{'s' if len(names) != 1 else ''} {what}")
        return len(names)

    def set_thumbnail_size(self, side: int) -> None:
        """Show thumbnails of ``side`` pixels (the slider, Preferences): cells are laid out
        again; thumbnails are decoded again only when larger ones are needed."""
        side = int(min(THUMB_SIZES[1], max(THUMB_SIZES[0], side)))
        if side == self._delegate.side:
            return
        if side > self._thumbnails.side:
            self._thumbnails.side = side
            self._thumbnails.clear()
        self._delegate.set_side(side)
        self._view.setGridSize(self._delegate.cell_size + QSize(4, 4))
        self._view.verticalScrollBar().setSingleStep(self._delegate.cell_size.height() // 4)
        blocked = self._size_slider.blockSignals(True)
        self._size_slider.setValue(side)
        self._size_slider.blockSignals(blocked)
        self._view.doItemsLayout()
        self._schedule_visible()
        self.thumbnailSizeChanged.emit(side)

    @property
    def thumbnail_size(self) -> int:
        return self._delegate.side

    @property
    def size_slider(self) -> QSlider:
        return self._size_slider

    def set_review_filter(self, which: str) -> None:
        """Show all photos, or the "unreviewed", "accepted" or "rejected" ones."""
        i = self._review_combo.findData(which)
        if i < 0:
            raise ValueError(f"unknown review filter {which!r}")
        self._review_combo.setCurrentIndex(i)

    @property
    def review_combo(self) -> QComboBox:
        return self._review_combo

    def current_name(self) -> str | None:
        """The selected (or current) photo's name, or None."""
        return self.name_at(self._view.currentIndex())

    def visible_names(self) -> tuple[str, ...]:
        """Names of the cells that intersect the viewport, plus one row of cells above and
        below, in display order."""
        names = self._model.names()
        order = self._proxy.source_order()
        return tuple(names[int(order[r])] for r in self.visible_rows())

    def visible_rows(self) -> range:
        """Proxy rows of ``visible_names``. Cells sit on a regular grid (uniform sizes), so
        the first row's geometry gives every row's."""
        n = self._proxy.rowCount()
        if n == 0 or not self._view.isVisible():
            return range(0)
        first = self._view.visualRect(self._proxy.index(0, 0))
        if not first.isValid():
            return range(0)
        per_row = 1
        while per_row < n:
            r = self._view.visualRect(self._proxy.index(per_row, 0))
            if not r.isValid() or r.top() != first.top():
                break
            per_row += 1
        grid_h = self._view.gridSize().height()
        if per_row < n:
            grid_h = self._view.visualRect(self._proxy.index(per_row, 0)).top() - first.top()
        g = max(1, grid_h)
        top, cell_h = first.top(), first.height()
        height = self._view.viewport().height()
        # Grid row k spans [top + k·g, top + k·g + cell_h): the first and last rows that meet
        # [0, height), then one more row each side.
        k_first = (-top - cell_h) // g + 1
        k_last = -((top - height) // g) - 1
        start = max(0, k_first - 1) * per_row
        stop = (k_last + 2) * per_row
        return range(min(n, start), max(0, min(n, stop)))

    def _schedule_visible(self) -> None:
        self._visible_timer.start()

    def _on_rows_changed(self) -> None:
        self._update_empty()
        self._schedule_visible()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if watched is self._view.viewport() and event.type() in (
            QEvent.Type.Resize,
            QEvent.Type.Show,
        ):
            self._schedule_visible()
        return super().eventFilter(watched, event)

    def _update_empty(self) -> None:
        empty = self._proxy.rowCount() == 0
        if empty and self._model.rowCount() > 0 and self._proxy.review_filter != "all":
            self._empty_label.setText(
                {
                    "unreviewed": "Every photo shown is reviewed",
                    "accepted": "No photo is accepted yet (A accepts the selected photos)",
                    "rejected": "No photo is rejected (X rejects the selected photos)",
                }[self._proxy.review_filter]
                + " — choose “All photos” to see them all"
            )
        elif empty and self._model.rowCount() > 0:
            self._empty_label.setText("No photo matches the sketch (untick “Matches only”)")
        elif not empty and self._model.folder is None:
            self._empty_label.setText(EMPTY_TEXT)
        self._stack.setCurrentWidget(self._empty_label if empty else self._view)

    def _on_thumbnail(self, path: str, _reason: str = "") -> None:
        folder = self._model.folder
        if folder is None:
            return
        row = self._proxy.proxy_row_of(os.path.relpath(path, folder))
        if row is not None:
            self._view.update(self._proxy.index(row, 0))

    def _on_activated(self, index: QModelIndex) -> None:
        name = self.name_at(index)
        if name:
            self.photoActivated.emit(name)

    # -- drag and drop -----------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        if folder_from_mime(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 (Qt API)
        if folder_from_mime(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt API)
        folder = folder_from_mime(event.mimeData())
        if folder is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.folderDropped.emit(folder)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop the thumbnail decoders and wait for a scan in flight (closing the window)."""
        self._scan_token += 1
        ok = self._thumbnails.shutdown(timeout_ms)
        return self._scan_pool.waitForDone(timeout_ms) and ok
