"""The live loop: draw, and every photo's mask updates (issue 5, DESIGN §1 and §6).

:class:`PhotoSearch` connects the document and the canvas to the inference engine and the
gallery pane. A query is sent when what the model sees changes — the strokes' geometry, the
selection (in part mode), the words, α, compose, the mode or the model (its
:meth:`~sketchpad.search.spec.QuerySpec.key`) — or when the gallery gains photos; renaming a
label, recolouring or any metadata edit sends nothing. The threshold slider never reaches the
model: scores do not depend on it, so the gallery re-cuts the masks it holds and only asks the
engine for the masks of photos that start to match. The newest query wins; results arrive on
the GUI thread and only update the models, never block it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu

from sketchpad.ui.canvas.document import Document
from sketchpad.ui.engine_host import EngineHost
from sketchpad.ui.models.banner import WeightsBanner
from sketchpad.ui.photos.gallery_pane import GalleryPane
from sketchpad.ui.photos.query_controls import QueryControls
from sketchpad.vision.installed import CLIP_BACKBONES, DINO_BACKBONES

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMessageBox

    from sketchpad.engine.client import Engine
    from sketchpad.engine.downloads import BackgroundCall
    from sketchpad.engine.requests import FolderSummary, MaskResult, ModelInfo, QueryResult
    from sketchpad.engine.worker import Loader
    from sketchpad.gallery.export import ExportOptions
    from sketchpad.gallery.review import FolderReview
    from sketchpad.search.model import ModelChoice
    from sketchpad.search.spec import QuerySpec
    from sketchpad.ui.models.manager import ModelManagerDialog
    from sketchpad.ui.viewer.large_view import PhotoViewerDialog
    from sketchpad.workspace.preferences import Preferences

log = logging.getLogger(__name__)

#: Long side of the masks drawn on thumbnails (the gallery's cell size).
THUMB_SIDE = 160
#: While a folder is being indexed, the query is re-run at most this often (ms) so that the
#: photos just cached get their masks.
REQUERY_WHILE_INDEXING_MS = 1000
#: The default backbones of the two families, best first (those with weights win: see
#: ``PhotoSearch.start``).
CATEGORY_BACKBONES = list(CLIP_BACKBONES)
FINE_BACKBONES = list(DINO_BACKBONES)
TESTING_BACKBONES = (["test-clip-tiny"], ["test-dinov2-tiny"])


def _cuda_usable() -> bool:
    """Whether torch sees a CUDA device (torch is already imported once the engine exists)."""
    import torch

    return bool(torch.cuda.is_available())


def backbone_families(include_testing: bool = False) -> tuple[list[str], list[str]]:
    """(CLIP ids, DINOv2 ids) for the mode's model choice."""
    category, fine = list(CATEGORY_BACKBONES), list(FINE_BACKBONES)
    if include_testing:
        category += TESTING_BACKBONES[0]
        fine += TESTING_BACKBONES[1]
    return category, fine


class PhotoSearch(QObject):
    """Photo search in the main window: gallery pane, controls, engine, viewer, exports.

    Args:
        window: the main window (dialogs' parent, status bar).
        document: the sketch being drawn.
        loader: the engine's model loader (tests: a stand-in; None: the registry).
        backbones: (category ids, fine-grained ids); None: the registry's real backbones.
        preferences: device, fp16, default backbone and recent folders (default: loaded
            from the config directory).

    Signals:
        resultShown(int): a query's result was applied to the gallery (its generation).
        errorShown(str): an error was shown to the user.
        exportFinished(object): an export ended (its ExportSummary).
    """

    resultShown = Signal(int)
    errorShown = Signal(str)
    exportFinished = Signal(object)

    def __init__(
        self,
        window: QMainWindow,
        document: Document,
        *,
        loader: Loader | None = None,
        backbones: tuple[list[str], list[str]] | None = None,
        preferences: Preferences | None = None,
    ) -> None:
        super().__init__(window)
        from sketchpad.workspace.preferences import Preferences

        self.window = window
        self.document = document
        self.preferences = preferences if preferences is not None else Preferences.load()
        category, fine = backbones or backbone_families()
        self.host = EngineHost(loader=loader, parent=self)
        self.pane = GalleryPane()
        self.controls = QueryControls(category, fine)
        preferred = self.preferences.backbone
        if preferred in category + fine:
            self.controls.set_backbone(preferred)
        self.banner = WeightsBanner()
        self.banner.hide()
        #: backbone id → whether its weights are here (read when the engine is ready and after
        #: every import or download); shown in the Model menu, the model box and the banner.
        self.installed: dict[str, bool] = {}
        self._installed_scan: BackgroundCall | None = None
        self.viewer: PhotoViewerDialog | None = None
        self.review: FolderReview | None = None  # the open folder's
        self.last_export_dir: Path | None = None  # the last export's choices, offered again
        self.last_export_options: ExportOptions | None = None
        self.export_done_box: QMessageBox | None = None
        self.model_manager: ModelManagerDialog | None = None
        self.weights_box: QMessageBox | None = None  # the last weights error shown
        self.folder: Path | None = None
        self.model: ModelInfo | None = None
        self.last_result: QueryResult | None = None
        self._load_generation = -1
        self._loading: str | None = None
        self._sent_at: dict[int, float] = {}
        self._sent: tuple[str, int] | None = None  # (query key, gallery epoch) last sent
        self._epoch = 0  # bumped when the model or the gallery's photos change
        self._suspended = False  # while an export runs
        self._requery = QTimer(self, singleShot=True, interval=REQUERY_WHILE_INDEXING_MS)
        self._requery.timeout.connect(lambda: self.request_query("new photos"))

        self._engine_waits_for_scan = False
        self._prefs_writer = QThreadPool(self)  # preference files, in order, off the GUI thread
        self._prefs_writer.setMaxThreadCount(1)
        self.actions = self._build_actions()
        document.sketchChanged.connect(lambda: self.request_query("sketch"))
        document.selectionChanged.connect(self._on_selection_changed)
        self.controls.changed.connect(self._on_control_changed)
        self.pane.folderDropped.connect(self.open_folder)
        self.pane.scanFinished.connect(self._on_scan_landed)
        self.pane.scanFailed.connect(self._on_scan_landed)
        self.pane.cancelIndexing.connect(self.cancel_indexing)
        self.pane.visibleNamesChanged.connect(self._request_visible_masks)
        self.pane.photoActivated.connect(self.show_photo)
        self.pane.message.connect(self._status)
        self.banner.managerRequested.connect(self.show_model_manager)
        self.banner.downloadRequested.connect(self.download_weights)
        self.banner.importRequested.connect(self.import_weights)
        self.banner.useRequested.connect(self.use_backbone)
        self.host.ready.connect(self._on_engine_ready)
        self.host.failed.connect(self._show_error)

    # -- actions and menus -------------------------------------------------------------------
    def _build_actions(self) -> dict[str, QAction]:
        def action(text: str, slot: Callable[[], object], shortcut: str | None = None) -> QAction:
            a = QAction(text, self)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
            a.triggered.connect(slot)
            return a

        actions = {
            "open_folder": action("Open &Folder…", self.open_folder_dialog, "Ctrl+Shift+O"),
            "export_masks": action("Export &Masks…", self.export_dialog, "Ctrl+Alt+E"),
            "cancel_indexing": action("&Cancel Indexing", self.cancel_indexing),
            "large_view": action("&Large View", self.show_current_photo, "Return"),
            "models": action("&Model Manager…", self.show_model_manager),
        }
        # Enter (or a double-click) on a photo opens the large view; only in the gallery, so
        # Enter still works in text boxes, and Space stays the canvas's (held, it pans).
        large = actions["large_view"]
        large.setShortcuts([QKeySequence("Return"), QKeySequence("Enter")])
        large.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.pane.addAction(large)
        actions["export_masks"].setEnabled(False)
        actions["cancel_indexing"].setEnabled(False)
        return actions

    def fill_menu(self, menu: QMenu) -> None:
        """The Photos menu."""
        a = self.actions
        menu.addAction(a["open_folder"])
        self.recent_menu = menu.addMenu("Open &Recent Folder")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        menu.addAction(a["cancel_indexing"])
        menu.addSeparator()
        menu.addActions([a["large_view"], a["export_masks"]])
        menu.addSeparator()
        self.model_menu = menu.addMenu("M&odel")
        self.model_menu.aboutToShow.connect(self._fill_model_menu)
        self._fill_model_menu()
        menu.addAction(a["models"])

    def _fill_model_menu(self) -> None:
        """Photos ▸ Model: every backbone of both families, installed or not, the active one
        checked and named; choosing one makes it active."""
        menu = self.model_menu
        menu.clear()
        active = self.controls.backbone
        titles = {"category": "Category search (CLIP)", "fine": "Fine-grained search (DINOv2)"}
        for family, title in titles.items():
            ids = self.controls.backbones(family)
            if not ids:
                continue
            menu.addSection(title)
            for backbone_id in ids:
                act = menu.addAction(self.backbone_label(backbone_id, active=active))
                act.setCheckable(True)
                act.setChecked(backbone_id == self.controls.chosen(family))
                act.setData(backbone_id)
                act.triggered.connect(lambda _=False, b=backbone_id: self.use_backbone(b))
        menu.addSeparator()
        menu.addAction(self.actions["models"])

    def backbone_label(self, backbone_id: str, *, active: str | None = None) -> str:
        """``backbone_id`` with its installed state, as the menu and the model box show it:
        "clip-vit-b32  ✓ installed · active", "clip-vit-b16  (no weights)"; "(checking…)"
        before the first look at the disk."""
        state = self.installed.get(backbone_id)
        text = "(checking…)" if state is None else "✓ installed" if state else "(no weights)"
        if backbone_id == (active or self.controls.backbone):
            text += " · active"
        return f"{backbone_id}  {text}"

    def use_backbone(self, backbone_id: str) -> None:
        """Make ``backbone_id`` the active model (the banner's Use, the Model menu)."""
        if backbone_id != self.controls.backbone:
            self.controls.set_backbone(backbone_id)  # changed("backbone") loads it

    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        folders = [Path(p) for p in self.preferences.recent_folders]
        for i, folder in enumerate(folders, start=1):
            act = menu.addAction(f"&{i % 10}  {folder.name or folder}")
            act.setToolTip(str(folder))
            act.triggered.connect(lambda _=False, p=folder: self.open_folder(p))
        if not folders:
            menu.addAction("No folders yet").setEnabled(False)

    # -- start and stop ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the engine in the background and load the chosen model (offline first: a
        missing model shows the banner instead of downloading unasked). A chosen backbone
        without weights gives way to an installed one of its family."""

        def go(_engine: Engine) -> None:
            self._scan_installed()

        self.host.when_ready(go)

    def _scan_installed(self) -> None:
        """Which backbones have weights, looked up off the GUI thread (the first lookup imports
        the weights code: ~0.1 s); then the start-up choice and the model load."""
        from sketchpad.engine.downloads import BackgroundCall
        from sketchpad.vision.installed import has_weights

        ids = self.controls.backbones("category") + self.controls.backbones("fine")
        call = BackgroundCall(lambda: {b: has_weights(b) for b in ids}, "sketchpad-installed", self)

        def done(states: dict[str, bool]) -> None:
            self._set_installed(states)
            self._prefer_installed()
            self.load_model()

        def failed(message: str) -> None:
            log.warning("cannot tell which models are installed: %s", message)
            self.load_model()

        call.done.connect(done)
        call.failed.connect(failed)
        self._installed_scan = call
        call.start()

    def _prefer_installed(self) -> None:
        """For each family, if the chosen backbone has no weights here and another has, choose
        that one (the disk only; the engine's import has loaded what the lookup needs)."""
        for family in ("category", "fine"):
            chosen = self.controls.chosen(family)
            if not chosen or self.installed.get(chosen):
                continue
            other = next(iter(self.installed_of(family)), chosen)
            if other != chosen:
                self.controls.preselect(family, other)
                self._status(f"{chosen} has no weights here: using {other}")

    def refresh_installed(self) -> None:
        """Look again (on the disk only, ~1 ms once the weights code is imported) which
        backbones have weights; the model box follows. After an import or a download, on the
        GUI thread, so that the banner and the choice change at once."""
        from sketchpad.vision.installed import has_weights

        ids = self.controls.backbones("category") + self.controls.backbones("fine")
        self._set_installed({b: has_weights(b) for b in ids})

    def _set_installed(self, states: dict[str, bool]) -> None:
        self.installed = dict(states)
        self.controls.set_installed(self.installed)

    def installed_of(self, family: str) -> list[str]:
        """The backbones of ``family`` with weights here, preferred first."""
        return [b for b in self.controls.backbones(family) if self.installed.get(b)]

    def _family_of(self, backbone_id: str) -> str | None:
        for family in ("category", "fine"):
            if backbone_id in self.controls.backbones(family):
                return family
        return None

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop and join the engine (the window's closeEvent)."""
        self._requery.stop()
        self._prefs_writer.waitForDone(int(timeout_s * 1000))
        if self.viewer is not None:
            self.viewer.close()
        scan = self._installed_scan
        scanned = scan is None or scan.wait(timeout_s)
        return self.host.shutdown(timeout_s) and scanned

    @property
    def engine(self) -> Engine | None:
        return self.host.engine

    @Slot(object)
    def _on_engine_ready(self, engine: Engine) -> None:
        engine.modelLoaded.connect(self._on_model_loaded)
        engine.bankChanged.connect(self._on_bank_changed)
        engine.indexProgress.connect(self._on_index_progress)
        engine.indexFinished.connect(self._on_index_finished)
        engine.queryFinished.connect(self._on_query_finished)
        engine.masksFinished.connect(self._on_masks_finished)
        engine.failed.connect(self._on_failed)
        engine.notice.connect(self._status)
        engine.busyChanged.connect(self.pane.set_busy)

    def labelling_model(self) -> ModelChoice:
        """The CLIP model scene labelling uses: the category backbone chosen here (the first
        installed one unless the user picked another), with the device and fp16 preferences;
        the same model as photo search in category mode, so one model serves both."""
        from sketchpad.search.model import ModelChoice

        return ModelChoice(
            backbone_id=self.controls.chosen("category"),
            device=self._device(),
            fp16=self.preferences.fp16,
            offline=True,  # never download unasked: the Model Manager does, with progress
        )

    def _device(self) -> str | None:
        device = self.preferences.device
        if device == "cuda" and not _cuda_usable():
            return None
        return None if device == "auto" else device

    # -- models ------------------------------------------------------------------------------
    def load_model(self, backbone_id: str | None = None, *, offline: bool | None = True) -> None:
        """Load ``backbone_id`` (default: the controls' choice) in the engine."""
        backbone_id = backbone_id or self.controls.backbone
        prefs = self.preferences

        def go(engine: Engine) -> None:
            device = self._device()
            if prefs.device == "cuda" and device is None:
                self._status("No usable GPU here: the model runs on the CPU")
            self._loading = backbone_id
            self._load_generation = engine.load_model(
                backbone_id, device=device, offline=offline, fp16=prefs.fp16
            )
            self._status(f"Loading {backbone_id}…")

        self.host.when_ready(go)

    @Slot(object)
    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.model = info
        self._loading = None
        self.banner.hide_message()
        self.controls.clear_error()
        self.controls.set_text_enabled(
            info.has_text, f"{info.backbone_id} has no text encoder: words need a CLIP model"
        )
        ready = f"{info.backbone_id} ready on {info.device} ({info.seconds:.1f} s)"
        if self._slow_device():
            ready += ": it expects a GPU and is slow here (indexing shows the time per photo)"
        self._status(ready)
        self._epoch += 1
        self.request_query("model")

    def _slow_device(self) -> str | None:
        """The device the loaded model runs on when it is meant for a GPU and has none."""
        from sketchpad.vision.registry import get_spec

        info = self.model
        if info is None or info.device.startswith(("cuda", "mps")):
            return None
        try:
            return info.device if get_spec(info.backbone_id).gpu_expected else None
        except KeyError:
            return None

    # -- folders -----------------------------------------------------------------------------
    def open_folder_dialog(self) -> None:
        start = str(self.folder or Path.home())
        chosen = QFileDialog.getExistingDirectory(self.window, "Open a folder of photos", start)
        if chosen:
            self.open_folder(Path(chosen))

    @Slot(object)
    def open_folder(self, folder: Path) -> bool:
        """Show ``folder``'s photos at once and index it in the background."""
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            self._show_error(f"Cannot open “{folder}”: it is not a folder (or it is gone).")
            return False
        self.folder = folder.resolve()
        self.last_result = None
        self._epoch += 1
        self.actions["export_masks"].setEnabled(False)
        # The gallery lists the folder on a pool thread; the engine lists it again to index
        # it, after the gallery's scan: two scans at once (pure Python, 10,000 names each)
        # starved the GUI thread of the GIL for 0.7 s on opening (bench ui).
        self._engine_waits_for_scan = True
        self.pane.set_folder(self.folder)
        self._open_review(self.folder)
        self._remember(self.folder)
        self.actions["cancel_indexing"].setEnabled(True)
        return True

    def _open_review(self, folder: Path) -> None:
        """The folder's review (accepted / rejected, corrected masks), kept in the user data
        folder; shown in the gallery and the large view."""
        from sketchpad.gallery.review import FolderReview

        self.review = FolderReview(folder)
        self.pane.model.set_review(self.review)
        if self.viewer is not None:
            self.viewer.viewer.set_review(self.review)

    def _on_review_changed(self, name: object) -> None:
        self.pane.model.review_changed(str(name))

    def _on_scan_landed(self, *_: object) -> None:
        """The gallery's scan of the folder landed (or failed): now the engine indexes it."""
        if self._engine_waits_for_scan:
            self._engine_waits_for_scan = False
            self.host.when_ready(self._open_in_engine)

    def _open_in_engine(self, engine: Engine) -> None:
        """Open the folder shown when the engine is ready (the latest one, if several)."""
        if self.folder is not None:
            engine.open_folder(self.folder)

    def _remember(self, folder: Path) -> None:
        """Put ``folder`` first in the recent folders and save the preferences, written on a
        thread of their own (an atomic write ends in fsync: never on the GUI thread)."""
        prefs = self.preferences
        prefs.add_recent_folder(folder)
        if prefs.path is None:
            prefs.path = prefs.default_path()
        path, text = prefs.path, prefs.to_json()

        def write() -> None:
            from sketchpad.atomic import atomic_write_text

            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, text)
            except Exception as e:  # the list is a convenience: never stop the user for it
                log.warning("cannot store the recent folders in %s: %s", path, e)

        self._prefs_writer.start(write)

    def cancel_indexing(self) -> None:
        if self.engine is not None:
            self.engine.cancel_indexing()
            self._status("Cancelling indexing after the current batch…")

    @Slot(int, int)
    def _on_bank_changed(self, _generation: int, _photos: int) -> None:
        self._epoch += 1
        if self.last_result is not None and not self._requery.isActive():
            self._requery.start()
        elif self.last_result is None:
            self.request_query("first photos")

    @Slot(int, int, int, float)
    def _on_index_progress(self, _generation: int, done: int, total: int, eta_s: float) -> None:
        self.pane.set_index_progress(done, total, eta_s, self._slow_device())

    @Slot(object)
    def _on_index_finished(self, summary: FolderSummary) -> None:
        self.actions["cancel_indexing"].setEnabled(False)
        if summary.error:
            self.pane.index_finished(summary.error)
            self._show_error(summary.error)
            return
        parts = [f"{summary.photos} photos ready"]
        idx = summary.index
        if idx is not None:
            parts.append(f"{idx.indexed} indexed now")
            skipped = len(getattr(idx, "skipped", ()) or ())
            if skipped:
                parts.append(f"{skipped} skipped (see the log)")
        if summary.cancelled:
            parts.append("indexing stopped: the rest is indexed next time")
        text = " · ".join(parts)
        self.pane.index_finished(text)
        self._status(text)
        self._epoch += 1
        self.request_query("indexed")

    # -- queries -----------------------------------------------------------------------------
    def current_spec(self) -> QuerySpec | None:
        """The query the sketch and the controls describe, or None (nothing to search for)."""
        from sketchpad.search.spec import QuerySpec

        opts = self.controls.options()
        sketch = self.document.sketch
        empty = not sketch.strokes and sketch.raster is None
        text = opts.text or None
        if empty and not text:
            return None
        part = None
        if opts.mode == "part" and not empty:
            part = self.document.search_part  # the selected strokes, a cut lasso or a sector
        return QuerySpec(
            sketch=None if empty else sketch,
            part=part,
            text=text,
            alpha=opts.alpha,
            compose=opts.compose and part is None and not empty,
        )

    def request_query(self, reason: str = "") -> int | None:
        """Send the query the sketch and the controls describe, unless the engine already has
        it for the current model and photos; returns its generation, or None when nothing was
        sent (no engine, model or folder; an empty sketch; nothing the model sees changed)."""
        engine = self.engine
        if engine is None or self.model is None or self.folder is None or self._suspended:
            return None
        opts = self.controls.options()
        spec = self.current_spec()
        if spec is None:
            self._sent = None
            if self.last_result is not None or self.pane.model.has_query:
                self.last_result = None
                self.pane.clear_results()  # every row changes: only when results are shown
                self.actions["export_masks"].setEnabled(False)
            self.controls.set_status("Draw something to search the photos.")
            return None
        if opts.mode == "part" and spec.part is None and spec.sketch is not None:
            self.controls.set_status(
                "Part mode: select strokes with the lasso or pick a partition sector; "
                "searching for the whole sketch meanwhile."
            )
        sent = (spec.key(), self._epoch)
        if sent == self._sent:
            log.debug("query unchanged (%s): nothing sent", reason)
            return None
        self._sent = sent
        self._requery.stop()
        gen = engine.search(
            spec,
            threshold=opts.threshold,
            mask_names=self.pane.visible_names(),
            mask_side=THUMB_SIDE,
        )
        self._sent_at[gen] = time.perf_counter()
        log.debug("query %d (%s)", gen, reason)
        return gen

    @Slot(object)
    def _on_query_finished(self, result: QueryResult) -> None:
        self.last_result = result
        self.pane.apply_result(result)
        threshold = self.controls.options().threshold
        if abs(threshold - result.threshold) > 1e-9:  # the slider moved meanwhile
            self.pane.set_threshold(threshold)
        self.controls.clear_error()
        self._show_matches()
        self._sent_at = {g: t for g, t in self._sent_at.items() if g > result.generation}
        self.resultShown.emit(result.generation)  # (the large view follows queries itself)

    def _show_matches(self) -> None:
        """ "N of M photos match" for the result shown, at the threshold shown."""
        result = self.last_result
        if result is None:
            return
        matches = int(self.pane.model.matches().sum())
        n = len(result.names)
        more = " (indexing…)" if result.indexing else ""
        self.controls.set_status(
            f"{matches} of {n} photo{'s' if n != 1 else ''} match{more} · "
            f"{result.seconds * 1000:.0f} ms"
        )
        self.actions["export_masks"].setEnabled(matches > 0)

    @Slot(object)
    def _on_masks_finished(self, result: MaskResult) -> None:
        if result.channel == "gallery":
            self.pane.apply_masks(result)

    def _request_visible_masks(self) -> None:
        engine, last = self.engine, self.last_result
        if engine is None or last is None or last.generation != engine.latest_query_generation:
            return
        model = self.pane.model
        missing = tuple(
            n for n in self.pane.visible_names() if model.mask_for(n) is None and model.is_match(n)
        )
        if missing:
            engine.request_masks(
                missing,
                side=THUMB_SIDE,
                channel="gallery",
                threshold=self.controls.options().threshold,
            )

    def _on_selection_changed(self) -> None:
        self._show_searching()
        if self.controls.mode == "part":
            self.request_query("selection")

    def _show_searching(self) -> None:
        """Part mode: say what is searched ("Searching: sector 1 of 3")."""
        if self.controls.mode != "part":
            self.controls.set_searching("")
            return
        what = self.document.describe_selection()
        self.controls.set_searching(f"Searching: {what or 'the whole sketch (nothing selected)'}")

    def _on_control_changed(self, what: str) -> None:
        if what == "threshold":  # no model, no product: re-cut what is shown
            self.pane.set_threshold(self.controls.options().threshold)
            if self.viewer is not None:
                self.viewer.viewer.set_threshold(self.controls.options().threshold)
            self._show_matches()
            self._request_visible_masks()
        elif what == "backbone":
            self.preferences.backbone = self.controls.backbone
            self.model = None  # queries wait for the new model
            self.load_model()
        elif what == "crf":
            if self.viewer is not None:
                self.viewer.refresh(crf=self.controls.options().crf)
        else:  # mode, text, alpha, compose
            if what == "mode":
                self._show_searching()
            self.request_query(what)

    # -- errors ------------------------------------------------------------------------------
    @Slot(int, str)
    def _on_failed(self, generation: int, message: str) -> None:
        if generation == self._load_generation:
            from sketchpad.ui.models.banner import missing_weights

            backbone = self._loading or self.controls.backbone
            self._loading = None
            family = self._family_of(backbone)
            others = self.installed_of(family) if family else []
            missing = missing_weights(backbone)
            if missing is not None:
                self.banner.show_missing(backbone, missing, others)
                self._status(f"No weights for {backbone}: photo search is off until you get them")
                return
            self.banner.show_failed(backbone, message, others)
        self._show_error(message)

    def _show_error(self, message: str) -> None:
        from sketchpad.ui.models.banner import for_window

        message = for_window(message)
        self.controls.show_error(message)
        self._status(message)
        self.errorShown.emit(message)

    def report_error(self, title: str, message: str) -> None:
        """An error the user must acknowledge (a failed export): the window's dialog."""
        self._show_error(message)
        show = getattr(self.window, "_show_error", None)
        if callable(show):
            show(title, message)

    def _status(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 8000)

    # -- large view, models, exports ---------------------------------------------------------
    def show_current_photo(self) -> None:
        name = self.pane.current_name()
        if name:
            self.show_photo(name)

    @Slot(object)
    def show_photo(self, name: str) -> None:
        """The large view of one photo: full-resolution (CRF-refined) mask, boxes, zoom."""
        from sketchpad.ui.viewer.large_view import PhotoViewerDialog

        if self.folder is None:
            return
        if self.viewer is None:
            self.viewer = PhotoViewerDialog(self.engine, self.window)
            editor = self.viewer.viewer.editor
            editor.correctionChanged.connect(self._on_review_changed)
            editor.reviewChanged.connect(self._on_review_changed)
            self.viewer.viewer.set_review(self.review)
            self.document.sketchChanged.connect(self._sketch_to_viewer)
        v = self.viewer
        v.viewer.set_sketch(self.document.sketch)  # for Match Points
        v.viewer.set_threshold(self.controls.options().threshold)
        v.viewer.set_sequence(self.pane.ordered_names())
        v.viewer.show_photo(
            self.folder,
            name,
            quick_mask=self.pane.model.mask_for(name),
            crf=self.controls.options().crf,
        )
        v.show()
        v.raise_()

    @Slot()
    def _sketch_to_viewer(self) -> None:
        if self.viewer is not None:
            self.viewer.viewer.set_sketch(self.document.sketch)

    def _model_manager(self) -> ModelManagerDialog:
        """The open Model Manager, or a new one: one place for models, however it is reached
        (the banner, Photos ▸ Model, an error's button)."""
        from sketchpad.ui.models.manager import ModelManagerDialog

        if self.model_manager is not None:
            return self.model_manager
        dialog = ModelManagerDialog(self.window, preferences=self.preferences)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.weightsChanged.connect(self._on_weights_changed)
        dialog.preferencesChanged.connect(lambda: self.load_model())
        dialog.finished.connect(lambda _result: self._forget_manager(dialog))
        self.model_manager = dialog
        return dialog

    def _forget_manager(self, dialog: ModelManagerDialog) -> None:
        if self.model_manager is dialog:
            self.model_manager = None

    def show_weights_error(self, title: str, text: str) -> QMessageBox:
        """An error about missing or unusable weights of the category model (scene labelling):
        a dialog whose buttons do the fix: Import…, Download, Model Manager…, Close."""
        from PySide6.QtWidgets import QMessageBox

        from sketchpad.ui.models.banner import for_window

        backbone_id = self.controls.chosen("category")
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            title,
            for_window(text),
            QMessageBox.StandardButton.Close,
            self.window,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        role = QMessageBox.ButtonRole.ActionRole
        for name, slot in (
            ("Import…", lambda: self.import_weights(backbone_id)),
            ("Download", lambda: self.download_weights(backbone_id)),
            ("Model Manager…", lambda: self.show_model_manager()),
        ):
            box.addButton(name, role).clicked.connect(slot)
        self.errorShown.emit(title)
        self.weights_box = box
        box.open()
        return box

    def show_model_manager(self) -> None:
        self._model_manager().open()

    def _on_weights_changed(self, backbone_id: str) -> None:
        """``backbone_id`` gained weights (imported, downloaded): it becomes its family's
        choice when that one has none (or is it), and is loaded when that family is the
        active one; the banner about the model it replaces goes at once."""
        self.refresh_installed()
        family = self._family_of(backbone_id)
        if family is None:
            return
        chosen = self.controls.chosen(family)
        if chosen != backbone_id and self.installed.get(chosen):
            return  # the user's choice has weights: keep it (the menu shows the new one)
        if family == self.controls.family:
            if self.banner.backbone_id in (chosen, backbone_id):
                self.banner.hide_message()
            if chosen == backbone_id:
                self.load_model(backbone_id)
            else:
                self._status(f"{chosen} has no weights here: using {backbone_id}")
                self.controls.set_backbone(backbone_id)  # changed("backbone") loads it
        else:
            self.controls.preselect(family, backbone_id)

    def download_weights(self, backbone_id: str) -> None:
        """The banner's Download: the Model Manager, downloading that backbone."""
        dialog = self._model_manager()
        dialog.open()
        dialog.start_download(backbone_id)

    def import_weights(self, backbone_id: str) -> None:
        dialog = self._model_manager()
        dialog.open()
        dialog.import_dialog(backbone_id)

    def export_dialog(self) -> None:
        from sketchpad.ui.photos.mask_export import run_export_dialog

        if self.engine is not None and self.last_result is not None and self.folder:
            run_export_dialog(self)

    def suspend_queries(self, suspended: bool) -> None:
        """While an export runs its masks belong to the query shown: no new query."""
        self._suspended = suspended
        if not suspended:
            self.request_query("after export")
