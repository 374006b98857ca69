"""The main window: canvas, menus, status bar, files, autosave and restore.

The window owns one :class:`~sketchpad.ui.canvas.document.Document` for its whole life;
New, Open, Import and Restore replace its contents with ``Document.reset``.

File semantics:
    Open: a single-drawing ``.json`` of ours becomes the document's file.
    Import (and Open of any other format, or of one drawing out of several): a new
        untitled document, marked modified, so Save asks where to put it.
    Save: to the document's file; without one, Save As (``.json``).
    Export: any writable format; the document's file and saved state are unchanged.

Every question and message goes through a ``_ask_*`` / ``_show_error`` method so
tests can answer it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QUndoView,
    QVBoxLayout,
    QWidget,
)

import sketchpad
from sketchpad import paths as user_paths
from sketchpad.atomic import SaveError
from sketchpad.engine.labelling import LabellingService
from sketchpad.sketch.io import (
    SUPPORTED_READ,
    SUPPORTED_WRITE,
    SketchFileError,
    count_drawings,
    file_dialog_filter,
    read_sketch,
    write_sketch,
)
from sketchpad.sketch.model import Sketch
from sketchpad.ui import dialogs
from sketchpad.ui.autosave import (
    RETRY_MS,
    Autosaver,
    OrphanedSession,
    claim_orphaned_sessions,
)
from sketchpad.ui.canvas.actions import CANVAS_KEYS
from sketchpad.ui.canvas.canvas import Canvas
from sketchpad.ui.canvas.document import Document
from sketchpad.ui.canvas.toolbar import CanvasToolBar
from sketchpad.ui.errors import show_error
from sketchpad.ui.icons import follow_palette
from sketchpad.ui.photos.search import PhotoSearch
from sketchpad.ui.scene.labelling import SceneLabelling
from sketchpad.ui.scene.panel import ScenePanel
from sketchpad.ui.shortcuts import (
    Shortcut,
    ShortcutsDialog,
    action_rows,
    describe,
    menu_actions,
    pair_rows,
    plain_text,
)
from sketchpad.workspace.recent_files import RecentFiles
from sketchpad.workspace.scene_label_table import with_part_labels

if TYPE_CHECKING:
    from sketchpad.engine.worker import Loader
    from sketchpad.workspace.preferences import Preferences

log = logging.getLogger(__name__)

NATIVE_SUFFIX = ".json"
UNTITLED = "Untitled"
_SETTINGS_GEOMETRY = "main_window/geometry"
_SETTINGS_STATE = "main_window/state"
_SETTINGS_SPLITTER = "main_window/splitter"


_tidy_thread: threading.Thread | None = None


def tidy_user_folders_once() -> threading.Thread:
    """Start, once per process, a background sweep of Sketchpad's folders: temporary files
    that killed saves left behind are removed and modes made private
    (:func:`sketchpad.paths.tidy_user_folders`). Returns the thread (tests join it)."""
    global _tidy_thread
    if _tidy_thread is None:

        def tidy() -> None:
            try:
                removed, tightened = user_paths.tidy_user_folders()
            except Exception:  # noqa: BLE001 - housekeeping must never stop the app
                log.exception("tidying Sketchpad's folders failed")
                return
            if removed or tightened:
                log.info(
                    "tidied Sketchpad's folders: %d leftover temporary files removed, "
                    "%d modes made private",
                    len(removed),
                    tightened,
                )

        _tidy_thread = threading.Thread(target=tidy, name="sketchpad-tidy", daemon=True)
        _tidy_thread.start()
    return _tidy_thread


class MainWindow(QMainWindow):
    """Sketchpad's main window.

    Args:
        autosave_delay_ms: quiet time after an edit before the autosave is written (default:
            the preferences', :data:`DEFAULT_DELAY_MS` until set there).
        autosave_dir: where autosaves live (default: the standard one).
        photo_loader: the engine's model loader, for photo search and scene labelling alike
            (tests and the screenshot: a stand-in; None: the registry).
        photo_backbones: (category ids, fine-grained ids) offered for photo search.
        preferences: device, fp16, backbone, recent folders (default: the config file).
    """

    def __init__(
        self,
        *,
        autosave_delay_ms: int | None = None,
        autosave_dir: Path | None = None,
        photo_loader: Loader | None = None,
        photo_backbones: tuple[list[str], list[str]] | None = None,
        preferences: Preferences | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("MainWindow")
        self.document = Document(parent=self)
        self.canvas = Canvas(self.document)
        self.photos = PhotoSearch(
            self,
            self.document,
            loader=photo_loader,
            backbones=photo_backbones,
            preferences=preferences,
        )
        self.splitter = QSplitter(Qt.Orientation.Horizontal)  # canvas | photo gallery
        self.splitter.setObjectName("central_splitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.canvas)
        self.splitter.addWidget(self.photos.pane)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.photos.banner)  # "no weights yet": what to do
        column.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self.toolbar = CanvasToolBar(self.canvas, self)
        self.toolbar.setObjectName("canvas_toolbar")
        self.addToolBar(self.toolbar)

        self.search_dock = QDockWidget("Photo Search", self)
        self.search_dock.setObjectName("photo_search_dock")
        self.search_dock.setWidget(self.photos.controls)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.search_dock)

        self.undo_dock = QDockWidget("Undo History", self)
        self.undo_dock.setObjectName("undo_history_dock")
        self.undo_dock.setWidget(QUndoView(self.document.undo_stack))
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.undo_dock)
        self.undo_dock.hide()

        # Scene labelling runs on the same engine as photo search: one model host.
        labelling = LabellingService(self.photos.host, self.photos.labelling_model, self)
        self.photos.host.failed.connect(labelling.engine_failed)
        self.scene = SceneLabelling(self.document, self.canvas, labelling, self)
        self.scene_panel = ScenePanel(self.scene, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.scene_panel)
        self.tabifyDockWidget(self.search_dock, self.scene_panel)
        self.search_dock.raise_()
        self.scene.error.connect(lambda title, text: self._show_error(title, text))
        self.scene.weightsError.connect(self.photos.show_weights_error)  # with buttons
        self.scene.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.scene.recognition_head = self.photos.preferences.recognition_head

        self.recent_files = RecentFiles()
        self._autosave_given = autosave_delay_ms is not None
        delay = autosave_delay_ms or int(self.photos.preferences.autosave_seconds * 1000)
        self.autosaver = Autosaver(
            self.document, delay_ms=delay, directory=autosave_dir, parent=self
        )
        tidy_user_folders_once()
        self.autosaver.failed.connect(self._on_autosave_failed)
        self.autosaver.unavailable.connect(self._show_autosave_problem)
        self.autosaver.available.connect(self._show_autosave_problem)
        self._suggested_name: str | None = None  # Save As name for imported drawings
        self._last_folder = str(Path.home())

        self.file_actions = self._build_file_actions()
        self._shortcuts_dialog: ShortcutsDialog | None = None
        follow_palette()  # icons re-drawn in the new text colour when the palette changes
        self._build_menus()
        self._build_status_bar()

        self.document.pathChanged.connect(self._update_title)
        self.document.undo_stack.cleanChanged.connect(self._update_title)
        self.document.sketchChanged.connect(self._update_counts)
        self.canvas.cursorMoved.connect(self._update_cursor)
        self.canvas.zoomChanged.connect(self._update_zoom)
        self.canvas.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        # After Cancel on the indexing footer the keyboard is the canvas's again (tool keys).
        self.photos.pane.cancelIndexing.connect(self._focus_canvas)
        self.setAcceptDrops(True)
        self._update_title()
        self._update_counts()
        self._update_zoom(self.canvas.zoom)
        self.resize(1200, 800)
        self._restore_geometry()
        self._apply_session()

    # -- building ----------------------------------------------------------------------------
    def _action(
        self,
        text: str,
        slot: Callable[[], object],
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def _build_file_actions(self) -> dict[str, QAction]:
        Key = QKeySequence.StandardKey
        actions = {
            "new": self._action("&New", self.new_document, Key.New),
            "open": self._action("&Open…", self.open_dialog, Key.Open),
            "import": self._action("&Import…", self.import_dialog, "Ctrl+I"),
            "save": self._action("&Save", self.save, Key.Save),
            "save_as": self._action("Save &As…", self.save_as, "Ctrl+Shift+S"),
            "export": self._action("&Export…", self.export_dialog, "Ctrl+E"),
            "quit": self._action("&Quit", self.close, "Ctrl+Q"),
        }
        actions["quit"].setMenuRole(QAction.MenuRole.QuitRole)
        return actions

    def _build_menus(self) -> None:
        bar = self.menuBar()
        fa = self.file_actions
        file_menu = bar.addMenu("&File")
        file_menu.addActions([fa["new"], fa["open"]])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(fa["import"])
        file_menu.addSeparator()
        file_menu.addActions([fa["save"], fa["save_as"], fa["export"]])
        file_menu.addAction(self.scene_panel.actions_by_name["export"])
        file_menu.addSeparator()
        file_menu.addAction(fa["quit"])

        edit = self.canvas.edit_actions()
        edit_menu = bar.addMenu("&Edit")
        groups = (("undo", "redo"), ("cut", "copy", "paste", "delete"), ("select_all", "deselect"))
        for group in groups:
            edit_menu.addActions([edit[k] for k in group if k in edit])
            edit_menu.addSeparator()

        tools_menu = bar.addMenu("&Tools")
        tools_menu.addActions(list(self.canvas.tool_actions().values()))

        view_menu = bar.addMenu("&View")
        view_menu.addActions([edit[k] for k in ("zoom_in", "zoom_out", "fit") if k in edit])
        view_menu.addSeparator()
        history = self.undo_dock.toggleViewAction()
        history.setText("&Undo History")
        view_menu.addAction(history)
        view_menu.addAction(self.toolbar.toggleViewAction())

        photos_menu = bar.addMenu("&Photos")
        self.photos.fill_menu(photos_menu)
        search = self.search_dock.toggleViewAction()
        search.setText("Photo &Search Panel")
        photos_menu.addAction(search)

        sa = self.scene_panel.actions_by_name
        labels_menu = bar.addMenu("&Labels")
        labels_menu.addActions([sa["label"], sa["auto"]])
        labels_menu.addSeparator()
        labels_menu.addAction(sa["suggest"])
        head = self._action("&Recognition Head…", self.choose_recognition_head)
        describe(head, "suggest labels with a trained recognition head (train fusion)")
        zero = self._action("&Zero-Shot Suggestions", lambda: self.set_recognition_head(None))
        describe(zero, "suggest labels zero-shot with the CLIP model (no recognition head)")
        self.recognition_actions = {"choose": head, "zero_shot": zero}
        labels_menu.addActions([head, zero])
        self._show_recognition_head()
        labels_menu.addSeparator()
        labels_menu.addActions([self.canvas.tool_actions()["relabel"], sa["show_all"]])
        labels_menu.addSeparator()
        labels_menu.addAction(sa["export"])
        panel = self.scene_panel.toggleViewAction()
        panel.setText("Scene &Labels Panel")
        labels_menu.addAction(panel)

        edit_menu.addSeparator()
        prefs = self._action("&Preferences…", self.show_preferences, "Ctrl+,")
        prefs.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.preferences_action = prefs
        edit_menu.addAction(prefs)

        help_menu = bar.addMenu("&Help")
        keys = self._action(
            "&Keyboard Shortcuts…", self.show_shortcuts, QKeySequence.StandardKey.HelpContents
        )
        describe(keys, "list every key, grouped by where it works", "keyboard")
        self.actions_by_name = {"shortcuts": keys}
        help_menu.addAction(keys)
        about = self._action("&About Sketchpad", self._show_about)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        help_menu.addAction(about)

    def _build_status_bar(self) -> None:
        self.cursor_label = QLabel()
        self.count_label = QLabel()
        self.zoom_label = QLabel("100%")
        # Stays visible while autosave cannot run (the autosaver retries); gone once it works.
        self.autosave_warning = QLabel()
        self.autosave_warning.setStyleSheet("color: #b00020; font-weight: bold")
        for label in (self.autosave_warning, self.cursor_label, self.count_label, self.zoom_label):
            label.setContentsMargins(8, 0, 8, 0)
            self.statusBar().addPermanentWidget(label)
        self._show_autosave_problem()

    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        paths = self.recent_files.paths
        for i, path in enumerate(paths, start=1):
            action = menu.addAction(f"&{i % 10}  {path.name}")
            action.setToolTip(str(path))
            action.setStatusTip(str(path))
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        if paths:
            menu.addSeparator()
        clear = menu.addAction("Clear Menu")
        clear.setEnabled(bool(paths))
        clear.triggered.connect(self.recent_files.clear)

    # -- status and title --------------------------------------------------------------------
    def display_name(self) -> str:
        path = self.document.path
        return path.name if path is not None else UNTITLED

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.display_name()}[*] — Sketchpad")
        self.setWindowModified(self.document.is_modified)

    def _update_counts(self) -> None:
        sketch = self.document.sketch
        if sketch.is_raster:
            self.count_label.setText(f"raster {sketch.width:g}×{sketch.height:g}")
            return
        n = len(sketch.strokes)
        self.count_label.setText(f"{n} stroke{'s' if n != 1 else ''} · {sketch.num_points} points")

    def _update_cursor(self, x: float, y: float) -> None:
        self.cursor_label.setText(f"x {x:.0f}  y {y:.0f}")

    def _update_zoom(self, scale: float) -> None:
        self.zoom_label.setText(f"{scale * 100:.0f}%")

    def _focus_canvas(self) -> None:
        self.canvas.setFocus(Qt.FocusReason.OtherFocusReason)

    def _on_autosave_failed(self, reason: str) -> None:
        self.statusBar().showMessage(f"Autosave failed: {reason}", 10_000)

    def _show_autosave_problem(self, *_: object) -> None:
        """The status bar's autosave warning, from the autosaver's current problem."""
        problem = self.autosaver.problem
        self.autosave_warning.setVisible(problem is not None)
        short = problem.rsplit(": ", 1)[-1] if problem else ""
        self.autosave_warning.setText(f"⚠ Autosave is off ({short}) — retrying" if problem else "")
        self.autosave_warning.setToolTip(
            f"Autosave cannot run: {problem}. Your drawing is not protected against a "
            "crash until this goes away; Sketchpad tries again every "
            f"{RETRY_MS // 1000} s. Free some disk space or make the folder writable."
            if problem
            else ""
        )

    # -- questions (replaced in tests) -------------------------------------------------------
    def _ask_save_changes(self) -> dialogs.SaveChoice:
        return dialogs.ask_save_changes(self, self.display_name())

    def _ask_open_path(self, title: str) -> Path | None:
        return dialogs.ask_open_path(self, title, file_dialog_filter(False), self._last_folder)

    def _ask_save_path(
        self, title: str, suggested: Path, name_filter: str, suffix: str
    ) -> Path | None:
        return dialogs.ask_save_path(self, title, suggested, name_filter, suffix)

    def _ask_drawing_index(self, path: Path, count: int) -> int | None:
        return dialogs.ask_drawing_index(self, path, count)

    def _ask_restore(self, orphan: OrphanedSession) -> dialogs.RestoreChoice:
        saved_at = orphan.contents.saved_at.strftime("%Y-%m-%d %H:%M")
        return dialogs.ask_restore(self, orphan.contents.file_name, saved_at)

    def _show_error(self, title: str, text: str) -> None:
        show_error(self, title, text)

    # -- label suggestions -------------------------------------------------------------------
    def _ask_recognition_head(self) -> Path | None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Recognition Head",
            str(self.scene.recognition_head.parent) if self.scene.recognition_head else "",
            "Recognition heads (*.safetensors)",
        )
        return Path(path) if path else None

    def choose_recognition_head(self) -> bool:
        """Labels ▸ Recognition Head…: a ``train fusion --task recognition`` checkpoint that
        Suggest uses from now on (kept in the preferences). A file that is not one is refused
        with a message naming it; the suggestions stay as they were."""
        path = self._ask_recognition_head()
        if path is None:
            return False
        from sketchpad.vision.errors import WeightsError
        from sketchpad.vision.fusion.recognise import read_recognition_head

        try:
            head = read_recognition_head(path)
        except WeightsError as e:
            self._show_error("Not a recognition head", f"{e}\n\nSuggestions stay as they were.")
            return False
        self.set_recognition_head(path)
        self.statusBar().showMessage(
            f"Suggestions now use {path.name} ({len(head.classes)} classes, {head.backbone_id})",
            8000,
        )
        return True

    def set_recognition_head(self, path: Path | None) -> None:
        """The recognition head Suggest uses (None: zero-shot), saved in the preferences."""
        self.scene.recognition_head = path
        prefs = self.photos.preferences
        prefs.recognition_head = path
        try:
            prefs.save()
        except SaveError as e:  # the choice still holds for this session
            log.warning("the preferences were not saved: %s", e)
        self._show_recognition_head()

    def _show_recognition_head(self) -> None:
        head = self.scene.recognition_head
        zero = self.recognition_actions["zero_shot"]
        zero.setCheckable(True)
        zero.setChecked(head is None)
        choose = self.recognition_actions["choose"]
        choose.setText("&Recognition Head…" if head is None else f"&Recognition Head: {head.name}…")

    def shortcut_rows(self) -> list[Shortcut]:
        """Every key, read from the actions: the menus' actions with shortcuts (grouped by
        menu), the canvas's own keys, the gallery's and the large view's (mask correction
        and review included)."""
        from sketchpad.ui.viewer.large_view import large_view_rows  # loaded with the large view

        rows: list[Shortcut] = []
        for top in self.menuBar().actions():
            menu = top.menu()
            if isinstance(menu, QMenu):
                rows += action_rows(plain_text(top), menu_actions(menu))
        rows += pair_rows("Canvas", CANVAS_KEYS)
        photos = self.photos
        gallery = [*photos.pane.review_actions.values(), photos.actions["large_view"]]
        rows += action_rows("Gallery", gallery)
        rows += large_view_rows(photos.viewer.viewer if photos.viewer is not None else None)
        return rows

    def show_shortcuts(self) -> ShortcutsDialog:
        """Help ▸ Keyboard Shortcuts (non-modal; one at a time)."""
        dialog = self._shortcuts_dialog
        if dialog is None:
            dialog = self._shortcuts_dialog = ShortcutsDialog(self.shortcut_rows(), self)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _show_about(self) -> None:
        QMessageBox.about(
            self,
            "About Sketchpad",
            f"<b>Sketchpad {sketchpad.__version__}</b><p>Draw what you want to find: "
            "sketch-driven segmentation of photo folders and labelling of scene sketches.</p>",
        )

    # -- unsaved changes ---------------------------------------------------------------------
    def maybe_save(self) -> bool:
        """Before the document is replaced or the window closes: True to go on.

        Asks Save / Discard / Cancel when there are unsaved changes. Discard removes
        the autosave; a failed or cancelled save answers False.
        """
        if not self.document.is_modified:
            return True
        choice = self._ask_save_changes()
        if choice == "save":
            return self.save()
        if choice == "discard":
            self.autosaver.discard()
            return True
        return False

    # -- file commands -----------------------------------------------------------------------
    def new_document(self) -> bool:
        if not self.maybe_save():
            return False
        self._suggested_name = None
        self.document.reset(Sketch(), None)  # the canvas refits on reset
        return True

    def open_dialog(self) -> bool:
        path = self._ask_open_path("Open Drawing")
        return self.open_path(path) if path is not None else False

    def import_dialog(self) -> bool:
        path = self._ask_open_path("Import Drawing")
        return self.open_path(path, as_import=True) if path is not None else False

    def open_path(self, path: Path, index: int | None = None, *, as_import: bool = False) -> bool:
        """Open (or import) ``path``; on any problem the open document is left as it was.

        Args:
            path: a sketch file in one of ``SUPPORTED_READ``.
            index: which drawing of a multi-drawing file; asked when None.
            as_import: always make an untitled copy, even of our own ``.json``.

        Returns:
            True if the document now shows the file's drawing.
        """
        path = Path(path)
        try:
            count = count_drawings(path)
            if index is None:
                index = 0
                if count > 1:
                    chosen = self._ask_drawing_index(path, count)
                    if chosen is None:
                        return False
                    index = chosen
            read = read_sketch(path, index)
        except SketchFileError as e:
            log.warning("cannot open %s: %s", path, e.reason)
            self._show_error(
                "Cannot open drawing",
                f"“{path.name}” could not be opened.\n\n{e.reason}\n\nFile: {path}",
            )
            if not path.exists():
                self.recent_files.remove(path)
            return False
        if not self.maybe_save():
            return False
        sketch = with_part_labels(read)  # SPG parts: shown as labels with colours
        keeps_file = not as_import and path.suffix.lower() == NATIVE_SUFFIX and count == 1
        if keeps_file:
            self._suggested_name = None
            self.document.reset(sketch, path.absolute(), modified=sketch is not read)
        else:
            self._suggested_name = f"{path.stem}{NATIVE_SUFFIX}"
            self.document.reset(sketch, None, modified=True)
        self._last_folder = str(path.absolute().parent)
        self.recent_files.add(path)
        log.info(
            "%s %s (drawing %d of %d)",
            "opened" if keeps_file else "imported",
            path,
            index + 1,
            count,
        )
        return True

    def save(self) -> bool:
        """Save to the document's file (Save As if it has none); True on success."""
        path = self.document.path
        if path is None or path.suffix.lower() != NATIVE_SUFFIX:
            return self.save_as()
        return self.save_to(path)

    def save_as(self) -> bool:
        name = self._suggested_name or f"{Path(self.display_name()).stem}{NATIVE_SUFFIX}"
        folder = self.document.path.parent if self.document.path else Path(self._last_folder)
        path = self._ask_save_path(
            "Save Drawing As", folder / name, dialogs.JSON_FILTER, NATIVE_SUFFIX
        )
        if path is None:
            return False
        if path.suffix.lower() != NATIVE_SUFFIX:
            path = path.with_name(path.name + NATIVE_SUFFIX)
        return self.save_to(path)

    def save_to(self, path: Path) -> bool:
        """Write the drawing as our JSON to ``path`` and make it the document's file.

        On failure the document stays modified, the old file is intact (atomic write)
        and a dialog names the path and the reason.
        """
        path = Path(path).absolute()
        try:
            write_sketch(self.document.sketch, path)
        except SaveError as e:
            self._report_save_error("Cannot save drawing", e)
            return False
        self.document.mark_saved(path)
        self.autosaver.discard()
        self._suggested_name = None
        self._last_folder = str(path.parent)
        self.recent_files.add(path)
        self.statusBar().showMessage(f"Saved {path}", 5000)
        log.info("saved %s", path)
        return True

    def export_dialog(self) -> bool:
        stem = Path(self._suggested_name or self.display_name()).stem
        folder = self.document.path.parent if self.document.path else Path(self._last_folder)
        path = self._ask_save_path(
            "Export Drawing", folder / f"{stem}.svg", file_dialog_filter(True), ".svg"
        )
        return self.export_to(path) if path is not None else False

    def export_to(self, path: Path) -> bool:
        """Write the drawing in the format of ``path``'s extension; the document's own
        file and saved state do not change."""
        path = Path(path).absolute()
        if path.suffix.lower() not in SUPPORTED_WRITE:
            self._show_error(
                "Cannot export drawing",
                f"“{path.name}” has an extension Sketchpad cannot write.\n\n"
                f"Use one of: {', '.join(sorted(SUPPORTED_WRITE))}",
            )
            return False
        try:
            write_sketch(self.document.sketch, path)
        except SaveError as e:
            self._report_save_error("Cannot export drawing", e)
            return False
        except SketchFileError as e:  # e.g. a raster drawing to a vector format
            self._show_error("Cannot export drawing", f"{e.reason}\n\nFile: {path}")
            return False
        self.statusBar().showMessage(f"Exported {path}", 5000)
        log.info("exported %s", path)
        return True

    def _report_save_error(self, title: str, e: SaveError) -> None:
        log.warning("%s: %s", title, e)
        self._show_error(
            title,
            f"The drawing could not be written to\n{e.path}\n\nReason: {e.reason}.\n\n"
            "It is still open with its changes; any earlier version of the file is unchanged.",
        )

    # -- restore after a crash ---------------------------------------------------------------
    def offer_restore(self) -> bool:
        """Offer autosaves of sessions that did not close properly; True if one was restored.

        Restoring makes the drawing this session's (modified) document; the old autosave
        is deleted only once this session's autosave of it is on disk.
        """
        orphans = claim_orphaned_sessions(self.autosaver.file.parent)
        restored = False
        for orphan in orphans:
            if restored:
                orphan.release()  # one drawing per window; offer the rest next time
                continue
            choice = self._ask_restore(orphan)
            if choice == "restore":
                restored = self._adopt(orphan)
            elif choice == "discard":
                orphan.discard()
            else:
                orphan.release()
        return restored

    def _adopt(self, orphan: OrphanedSession) -> bool:
        if not self.maybe_save():
            orphan.release()
            return False
        contents = orphan.contents
        self._suggested_name = None
        self.document.reset(contents.sketch, contents.original_path, modified=True)
        if self.autosaver.save_now():
            orphan.discard()
        else:
            orphan.release()  # keep the old copy until ours exists
        log.info("restored the autosave %s", orphan.file)
        return True

    # -- drag and drop -----------------------------------------------------------------------
    @staticmethod
    def _dropped_file(event: QDragEnterEvent | QDropEvent) -> Path | None:
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile():
                path = Path(url.toLocalFile())
                if path.suffix.lower() in SUPPORTED_READ:
                    return path
        return None

    @staticmethod
    def _dropped_folder(event: QDragEnterEvent | QDropEvent) -> Path | None:
        mime = event.mimeData()
        for url in mime.urls() if mime.hasUrls() else []:
            if url.isLocalFile() and Path(url.toLocalFile()).is_dir():
                return Path(url.toLocalFile())
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        if self._dropped_file(event) is not None or self._dropped_folder(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt API)
        path = self._dropped_file(event)
        folder = self._dropped_folder(event) if path is None else None
        if folder is not None:  # a photo folder: the gallery
            event.acceptProposedAction()
            self.photos.open_folder(folder)
            return
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_path(path)

    # -- window state ------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        settings = QSettings()
        geometry = settings.value(_SETTINGS_GEOMETRY)
        state = settings.value(_SETTINGS_STATE)
        splitter = settings.value(_SETTINGS_SPLITTER)
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.restoreState(state)
        if isinstance(splitter, QByteArray):
            self.splitter.restoreState(splitter)

    def _store_geometry(self) -> None:
        settings = QSettings()
        settings.setValue(_SETTINGS_GEOMETRY, self.saveGeometry())
        settings.setValue(_SETTINGS_STATE, self.saveState())
        settings.setValue(_SETTINGS_SPLITTER, self.splitter.saveState())

    # -- session and preferences -------------------------------------------------------------
    def _apply_session(self) -> None:
        """The last session's threshold and mode, and the preferences that shape the window
        (theme, thumbnail size, autosave delay). The last folder is reopened by the app at
        start (``restore_last_folder``), not here."""
        prefs = self.photos.preferences
        controls = self.photos.controls
        controls.set_threshold(prefs.threshold)
        if prefs.mode is not None:
            try:
                controls.set_mode(prefs.mode)  # type: ignore[arg-type]
            except (KeyError, ValueError):
                log.info("the last search mode %r is not offered any more", prefs.mode)
        self._apply_preferences_to_window(prefs, autosave=not self._autosave_given)

    def _apply_preferences_to_window(self, prefs: Preferences, *, autosave: bool = True) -> None:
        from sketchpad.ui.preferences_dialog import apply_theme

        if prefs.theme != "system":
            apply_theme(prefs.theme)
        self.photos.pane.set_thumbnail_size(prefs.thumbnail_size)
        if autosave:
            self.autosaver.set_delay_ms(int(prefs.autosave_seconds * 1000))

    def restore_last_folder(self) -> bool:
        """Open the photo folder of the last session, if it still exists."""
        folder = self.photos.preferences.last_folder
        if folder is None or not Path(folder).is_dir():
            return False
        return self.photos.open_folder(Path(folder))

    def _store_session(self) -> None:
        prefs = self.photos.preferences
        options = self.photos.controls.options()
        prefs.threshold = options.threshold
        prefs.mode = options.mode
        prefs.last_folder = self.photos.folder
        try:
            prefs.save()
        except Exception as e:  # a convenience: never stop the window closing for it
            log.warning("cannot store the session in the preferences: %s", e)

    def show_preferences(self) -> bool:
        """Edit ▸ Preferences…: returns whether new preferences were applied."""
        from sketchpad.ui.preferences_dialog import PreferencesDialog

        photos = self.photos
        ids = list(dict.fromkeys(photos.controls.backbones("category")
                                 + photos.controls.backbones("fine")))  # fmt: skip
        dialog = PreferencesDialog(photos.preferences, [(i, i) for i in ids], self)
        if not self._run_dialog(dialog):
            return False
        return self.apply_preferences(dialog.chosen())

    def _run_dialog(self, dialog: QDialog) -> bool:
        """Run a modal dialog (tests replace this)."""
        return bool(dialog.exec())

    def apply_preferences(self, new: Preferences) -> bool:
        """Keep and apply ``new`` preferences: saved at once; the model is loaded again when
        the model, device or fp16 changed. Returns False when they could not be saved."""
        from sketchpad.atomic import SaveError
        from sketchpad.ui.preferences_dialog import apply_theme

        prefs = self.photos.preferences
        reload = (new.backbone, new.device, new.fp16) != (prefs.backbone, prefs.device, prefs.fp16)
        theme_changed = new.theme != prefs.theme
        for f in ("backbone", "device", "fp16", "autosave_seconds", "thumbnail_size", "theme"):
            setattr(prefs, f, getattr(new, f))
        try:
            prefs.save()
        except SaveError as e:
            self._show_error("Preferences", f"The preferences could not be saved: {e}")
            return False
        if theme_changed:
            apply_theme(prefs.theme)
        self._apply_preferences_to_window(prefs)
        if reload:
            self.photos.controls.set_backbone(prefs.backbone)
            self.photos.load_model()
        self.statusBar().showMessage("Preferences saved", 4000)
        return True

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        if not self.maybe_save():
            event.ignore()
            return
        self._store_geometry()
        self._store_session()
        self.photos.shutdown()  # stops and joins the inference worker
        self.autosaver.close()
        self.scene.shutdown()  # drops outstanding labelling (the engine is joined above)
        event.accept()
