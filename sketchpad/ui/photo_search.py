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

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu

from sketchpad.ui.document import Document
from sketchpad.ui.engine_host import EngineHost
from sketchpad.ui.gallery_pane import GalleryPane
from sketchpad.ui.query_controls import QueryControls
from sketchpad.ui.weights_banner import WeightsBanner
from sketchpad.vision.installed import CLIP_BACKBONES, DINO_BACKBONES

if TYPE_CHECKING:
    from sketchpad.engine.client import Engine
    from sketchpad.engine.requests import FolderSummary, MaskResult, ModelInfo, QueryResult
    from sketchpad.engine.worker import Loader
    from sketchpad.search.model import ModelChoice
    from sketchpad.search.spec import QuerySpec
    from sketchpad.ui.model_manager import ModelManagerDialog
    from sketchpad.ui.photo_viewer import PhotoViewerDialog
    from sketchpad.ui.preferences import Preferences

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
        from sketchpad.ui.preferences import Preferences

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
        self.viewer: PhotoViewerDialog | None = None
        self.model_manager: ModelManagerDialog | None = None
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

        self.actions = self._build_actions()
        document.sketch_changed.connect(lambda: self.request_query("sketch"))
        document.selection_changed.connect(self._on_selection_changed)
        self.controls.changed.connect(self._on_control_changed)
        self.pane.folderDropped.connect(self.open_folder)
        self.pane.cancelIndexing.connect(self.cancel_indexing)
        self.pane.visibleNamesChanged.connect(self._request_visible_masks)
        self.pane.photoActivated.connect(self.show_photo)
        self.pane.message.connect(self._status)
        self.banner.managerRequested.connect(self.show_model_manager)
        self.banner.downloadRequested.connect(self.download_weights)
        self.banner.importRequested.connect(self.import_weights)
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
            "large_view": action("&Large View", self.show_current_photo, "Space"),
            "models": action("&Model Manager…", self.show_model_manager),
        }
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
        menu.addAction(a["models"])

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
            self._prefer_installed()
            self.load_model()

        self.host.when_ready(go)

    def _prefer_installed(self) -> None:
        """For each family, if the chosen backbone has no weights here and another has, choose
        that one (the disk only; the engine's import has loaded what the lookup needs)."""
        from sketchpad.vision.installed import first_installed, has_weights

        for family in ("category", "fine"):
            chosen = self.controls.chosen(family)
            if not chosen or has_weights(chosen):
                continue
            other = first_installed(self.controls.backbones(family), default=chosen)
            if other != chosen:
                self.controls.preselect(family, other)
                self._status(f"{chosen} has no weights here: using {other}")

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop and join the engine (the window's closeEvent)."""
        self._requery.stop()
        if self.viewer is not None:
            self.viewer.close()
        return self.host.shutdown(timeout_s)

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
        self._status(f"{info.backbone_id} ready on {info.device} ({info.seconds:.1f} s)")
        self._epoch += 1
        self.request_query("model")

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
        self.pane.set_folder(self.folder)
        self._remember(self.folder)
        self.host.when_ready(self._open_in_engine)
        self.actions["cancel_indexing"].setEnabled(True)
        return True

    def _open_in_engine(self, engine: Engine) -> None:
        """Open the folder shown when the engine is ready (the latest one, if several)."""
        if self.folder is not None:
            engine.open_folder(self.folder)

    def _remember(self, folder: Path) -> None:
        prefs = self.preferences
        prefs.add_recent_folder(folder)
        try:
            prefs.save()
        except Exception as e:  # the list is a convenience: never stop the user for it
            log.warning("cannot store the recent folders: %s", e)

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
        self.pane.set_index_progress(done, total, eta_s)

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
        from sketchpad.search.spec import QuerySpec, StrokesPart

        opts = self.controls.options()
        sketch = self.document.sketch
        empty = not sketch.strokes and sketch.raster is None
        text = opts.text or None
        if empty and not text:
            return None
        part = None
        if opts.mode == "part" and not empty and self.document.selection:
            part = StrokesPart(tuple(sorted(self.document.selection)))
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
        if self.controls.mode == "part":
            self.request_query("selection")

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
            self.request_query(what)

    # -- errors ------------------------------------------------------------------------------
    @Slot(int, str)
    def _on_failed(self, generation: int, message: str) -> None:
        if generation == self._load_generation:
            from sketchpad.ui.weights_banner import missing_weights

            backbone = self._loading or self.controls.backbone
            self._loading = None
            if missing_weights(backbone) is not None:
                self.banner.show_missing(backbone, message)
                self._status(f"No weights for {backbone}: photo search is off until you get them")
                return
        self._show_error(message)

    def _show_error(self, message: str) -> None:
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
        from sketchpad.ui.photo_viewer import PhotoViewerDialog

        if self.folder is None:
            return
        if self.viewer is None:
            self.viewer = PhotoViewerDialog(self.engine, self.window)
        v = self.viewer
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

    def _model_manager(self) -> ModelManagerDialog:
        from PySide6.QtCore import Qt

        from sketchpad.ui.model_manager import ModelManagerDialog

        dialog = ModelManagerDialog(self.window, preferences=self.preferences)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.weightsChanged.connect(self._on_weights_changed)
        dialog.preferencesChanged.connect(lambda: self.load_model())
        self.model_manager = dialog
        return dialog

    def show_model_manager(self) -> None:
        self._model_manager().open()

    def _on_weights_changed(self, backbone_id: str) -> None:
        if backbone_id == self.controls.backbone:
            self.load_model(backbone_id)

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
        from sketchpad.ui.mask_export import run_export_dialog

        if self.engine is not None and self.last_result is not None and self.folder:
            run_export_dialog(self)

    def suspend_queries(self, suspended: bool) -> None:
        """While an export runs its masks belong to the query shown: no new query."""
        self._suspended = suspended
        if not suspended:
            self.request_query("after export")
