"""The model manager: every backbone, whether its weights are here, and where models run.

- A table of the backbones (name, id, what it is for, download size, status, where the file
  lives). Statuses are read off the GUI thread (the first look imports huggingface_hub) and
  again after every download or import.
- Download (progress in bytes, Cancel: no partial file is left), Import… (a file or a folder;
  its header checked, then copied with progress in bytes and Cancel, off the GUI thread), Open
  Folder, Copy Path and Set as Default, for the selected backbone.
- Status colours are picked for the dialog's palette (readable on light and dark ones) and
  picked again when the palette changes.
- Device (Auto / CPU / GPU (CUDA)) and "fp16 on GPU", stored in
  :class:`~sketchpad.workspace.preferences.Preferences`. Whether CUDA is there is probed in the
  background, so opening the dialog does not import torch; the GPU entry is disabled, with a
  tooltip saying why, when there is none.

Errors (offline, an unreachable Hub, a corrupt or wrong file) are shown through
:meth:`ModelManagerDialog._show_error` and in the status line; none escapes. They offer what
to do next as buttons (Import…, Retry), never commands to type. Questions and the
file manager go through ``_ask_import_path`` and ``_open_folder`` so tests can answer them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QUrl, Signal, Slot
from PySide6.QtGui import (
    QBrush,
    QColor,
    QDesktopServices,
    QFont,
    QGuiApplication,
    QPalette,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sketchpad.atomic import SaveError
from sketchpad.engine.downloads import (
    BackgroundCall,
    DownloadJob,
    WeightsStatus,
    display_name,
    format_size,
    probe_cuda,
    weights_status,
)
from sketchpad.ui.models.banner import for_window
from sketchpad.vision.checkpoints import checkpoint_backbone
from sketchpad.vision.registry import BackboneSpec, list_backbones
from sketchpad.workspace.preferences import Device, Preferences

log = logging.getLogger(__name__)

#: Set to 1 to list the tiny test backbones too.
SHOW_TEST_MODELS_ENV = "SKETCHPAD_SHOW_TEST_MODELS"
COLUMNS = ("Backbone", "ID", "For", "Size", "Status", "Location")
COL_NAME, COL_ID, COL_KIND, COL_SIZE, COL_STATUS, COL_WHERE = range(len(COLUMNS))
DEVICE_CHOICES: tuple[tuple[Device, str], ...] = (
    ("auto", "Auto"),
    ("cpu", "CPU"),
    ("cuda", "GPU (CUDA)"),
)
STATUS_TEXT = {"downloaded": "Downloaded", "imported": "Imported", "missing": "Missing"}
#: (on a light background, on a dark one): green, blue, orange with a contrast of at least
#: 4.5:1 against white and light greys, and against the dark greys of dark palettes.
STATUS_COLOURS = {
    "downloaded": ("#17703a", "#7fdc9c"),
    "imported": ("#1b5f9e", "#8cc4ff"),
    "missing": ("#a35200", "#ffb366"),
}
#: The buttons an error offers, by what failed.
RETRY, IMPORT = "Retry", "Import…"
WEIGHT_FILTER = "Weights (*.safetensors *.bin *.pt *.pth);;All files (*)"


def _approx(n_bytes: float | None) -> str:
    return f"≈ {format_size(n_bytes)}" if n_bytes else "unknown"


def status_colour(state: str, palette: QPalette) -> QColor:
    """The colour of a status word on ``palette``'s table background (its Base role): the
    dark-background variant when Base is darker than mid-grey."""
    light, dark = STATUS_COLOURS[state]
    base = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Base)
    return QColor(dark if base.lightnessF() < 0.5 else light)


#: The "For" column per backbone family: what it is for, and what it is.
KINDS: dict[str, str] = {
    "open_clip": "Category · CLIP",
    "timm": "Fine-grained · DINOv2",
    "sketchfusion": "Dense · SketchFusion",
}


def _kind(spec: BackboneSpec) -> str:
    return KINDS.get(spec.family, spec.family)


class ModelManagerDialog(QDialog):
    """See the module docstring.

    Args:
        parent: the main window.
        preferences: device, fp16 and default backbone (default: ``Preferences.load()``);
            changes are saved at once.
        include_testing: list the tiny ``test-*`` backbones (default: the
            ``SKETCHPAD_SHOW_TEST_MODELS`` environment variable).
        job: the download job to use (the window's, shared with its banner); by default the
            dialog has its own, whose download is cancelled when the dialog closes.

    Signals:
        weightsChanged(str backbone_id): its weights became available (downloaded, imported).
        preferencesChanged(): device, fp16 or the default backbone changed (and was saved).
        statusesRefreshed(): the table shows freshly read statuses.
    """

    weightsChanged = Signal(str)
    preferencesChanged = Signal()
    statusesRefreshed = Signal()

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        preferences: Preferences | None = None,
        include_testing: bool | None = None,
        job: DownloadJob | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model Manager — Sketchpad")
        self.setObjectName("model_manager")
        if include_testing is None:
            include_testing = os.environ.get(SHOW_TEST_MODELS_ENV, "").strip() not in ("", "0")
        self.preferences = preferences if preferences is not None else Preferences.load()
        self.specs = list_backbones(include_testing=include_testing)
        self._owns_job = job is None
        self.job = job if job is not None else DownloadJob(parent=self)
        self._statuses: dict[str, WeightsStatus] = {}
        self._calls: list[BackgroundCall] = []
        self._scan_generation = 0
        self._cuda: tuple[bool, str] | None = None
        self._job_line = ""
        self._failed_id: str | None = None

        layout = QVBoxLayout(self)
        layout.addWidget(self._build_table(), 1)
        layout.addLayout(self._build_actions())
        layout.addLayout(self._build_progress())
        layout.addLayout(self._build_device_row())
        self.job.progress.connect(self._on_progress)
        self.job.finished.connect(self._on_finished)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self.job.busyChanged.connect(self._update_controls)
        self.resize(900, 420)
        self._set_status(
            "Imported weights live in Sketchpad's data folder, downloads in the Hugging Face "
            "cache; both are found without the internet."
        )
        if self.specs:
            self.table.selectRow(0)
        self._update_controls()
        self.refresh()
        self._probe_device()

    # -- building ------------------------------------------------------------------------------
    def _build_table(self) -> QTableWidget:
        table = QTableWidget(len(self.specs), len(COLUMNS), self)
        table.setObjectName("model_table")
        table.setHorizontalHeaderLabels(COLUMNS)
        table.verticalHeader().setVisible(False)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        table.setWordWrap(False)
        table.setAlternatingRowColors(True)
        header = table.horizontalHeader()
        for col in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_WHERE, QHeaderView.ResizeMode.Stretch)
        self.table = table
        for row, spec in enumerate(self.specs):
            for col in range(len(COLUMNS)):
                table.setItem(row, col, QTableWidgetItem())
            self._cell(row, COL_ID).setText(spec.id)
            self._cell(row, COL_KIND).setText(_kind(spec))
            self._cell(row, COL_KIND).setToolTip(spec.use)
            self._fill_row(row)
        table.itemSelectionChanged.connect(self._update_controls)
        return table

    def _build_actions(self) -> QHBoxLayout:
        self.download_button = QPushButton("Download", self)
        self.download_button.setToolTip("Download the weights from the Hugging Face Hub")
        self.download_button.clicked.connect(lambda: self.start_download(self.selected_id() or ""))
        self.import_button = QPushButton("Import…", self)
        menu = QMenu(self.import_button)
        menu.addAction("Weights File…", lambda: self.import_dialog(folder=False))
        menu.addAction("Folder…", lambda: self.import_dialog(folder=True))
        self.import_button.setMenu(menu)
        self.import_button.setToolTip(
            "Use weights you already have: a .safetensors/.bin/.pt/.pth file, or a folder "
            "holding one; it is checked, then copied into Sketchpad's data folder"
        )
        self.open_button = QPushButton("Open Folder", self)
        self.open_button.setToolTip("Show where this model's files live")
        self.open_button.clicked.connect(self.open_folder)
        self.copy_button = QPushButton("Copy Path", self)
        self.copy_button.clicked.connect(self.copy_path)
        self.default_button = QPushButton("Set as Default", self)
        self.default_button.setToolTip("Use this backbone for photo search by default")
        self.default_button.clicked.connect(self.set_default)
        row = QHBoxLayout()
        for button in (self.download_button, self.import_button, self.open_button):
            row.addWidget(button)
        row.addWidget(self.copy_button)
        row.addStretch(1)
        row.addWidget(self.default_button)
        return row

    def _build_progress(self) -> QHBoxLayout:
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFixedWidth(260)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop the download (nothing partial is kept)")
        self.cancel_button.clicked.connect(self.cancel)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("model_manager_status")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.progress_bar)
        row.addWidget(self.cancel_button)
        row.addWidget(self.status_label, 1)
        return row

    def _build_device_row(self) -> QHBoxLayout:
        self.device_combo = QComboBox(self)
        for value, text in DEVICE_CHOICES:
            self.device_combo.addItem(text, value)
        self.device_combo.setItemData(
            self.device_combo.findData("cuda"),
            "Checking for a CUDA GPU…",
            Qt.ItemDataRole.ToolTipRole,
        )
        self.device_combo.setCurrentIndex(
            max(0, self.device_combo.findData(self.preferences.device))
        )
        self.device_combo.currentIndexChanged.connect(self._on_device_chosen)
        self.fp16_box = QCheckBox("fp16 on GPU", self)
        self.fp16_box.setToolTip("Run models in half precision on a GPU: half the memory, faster")
        self.fp16_box.setChecked(self.preferences.fp16)
        self.fp16_box.toggled.connect(self._on_fp16_toggled)
        self.device_note = QLabel(self)
        self.device_note.setTextFormat(Qt.TextFormat.PlainText)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(QLabel("Device:", self))
        row.addWidget(self.device_combo)
        row.addWidget(self.fp16_box)
        row.addWidget(self.device_note, 1)
        row.addWidget(buttons)
        self._show_device_note()
        return row

    # -- the table -----------------------------------------------------------------------------
    def selected_id(self) -> str | None:
        """The selected backbone's id, or None."""
        rows = self.table.selectionModel().selectedRows()
        return self.specs[rows[0].row()].id if rows else None

    def select_backbone(self, backbone_id: str) -> bool:
        """Select ``backbone_id``'s row; False if it is not listed."""
        for row, spec in enumerate(self.specs):
            if spec.id == backbone_id:
                self.table.selectRow(row)
                return True
        return False

    def row_texts(self, backbone_id: str) -> dict[str, str]:
        """The cells of ``backbone_id``'s row, keyed by column title."""
        row = [s.id for s in self.specs].index(backbone_id)
        return {title: self._cell(row, col).text() for col, title in enumerate(COLUMNS)}

    def refresh(self) -> None:
        """Read every backbone's status again, off the GUI thread (``statusesRefreshed``)."""
        self._scan_generation += 1
        generation, specs = self._scan_generation, list(self.specs)
        call = BackgroundCall(
            lambda: {s.id: weights_status(s) for s in specs}, "sketchpad-weights-scan", self
        )
        call.done.connect(lambda statuses: self._on_scanned(call, generation, statuses))
        call.failed.connect(lambda message: self._on_scan_failed(call, message))
        self._calls.append(call)
        call.start()

    def _on_scanned(
        self, call: BackgroundCall, generation: int, statuses: dict[str, WeightsStatus]
    ) -> None:
        self._forget(call)
        if generation != self._scan_generation:
            return  # a newer scan is under way
        self._statuses = statuses
        for row in range(len(self.specs)):
            self._fill_row(row)
        self._update_controls()
        self.statusesRefreshed.emit()

    def _on_scan_failed(self, call: BackgroundCall, message: str) -> None:
        self._forget(call)
        self._set_status(f"Could not read where the weights are: {message}", error=True)

    def _forget(self, call: BackgroundCall) -> None:
        if call in self._calls:
            self._calls.remove(call)
        call.deleteLater()

    def _cell(self, row: int, col: int) -> QTableWidgetItem:
        """The item of a cell (``_build_table`` gives every cell one)."""
        item = self.table.item(row, col)
        if item is None:
            raise LookupError(f"the model table has no item at row {row}, column {col}")
        return item

    def _fill_row(self, row: int) -> None:
        spec = self.specs[row]
        status = self._statuses.get(spec.id)
        name = display_name(spec)
        is_default = spec.id == self.preferences.backbone
        item = self._cell(row, COL_NAME)
        item.setText(f"{name}  (default)" if is_default else name)
        item.setToolTip(spec.description)
        font = QFont(item.font())
        font.setBold(is_default)
        item.setFont(font)
        size, state = self._cell(row, COL_SIZE), self._cell(row, COL_STATUS)
        where = self._cell(row, COL_WHERE)
        if status is None:
            size.setText(_approx(spec.download_mb * 1e6))
            state.setText("Checking…")
            return
        if status.state == "missing":
            size.setText(_approx(status.size_bytes))
            size.setToolTip("download size" if status.size_bytes else "download size not known")
            where.setText("—")
            where.setToolTip("Not found. Looked at:\n" + "\n".join(status.looked))
        else:
            size.setText(format_size(status.size_bytes) if status.size_bytes else "unknown")
            size.setToolTip("size of the file here")
            where.setText(str(status.path))
            where.setToolTip(str(status.path))
        state.setText(STATUS_TEXT[status.state])
        state.setForeground(QBrush(status_colour(status.state, self.palette())))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "table"):
            for row in range(len(self.specs)):
                self._fill_row(row)

    def _update_controls(self) -> None:
        spec_id = self.selected_id()
        status = self._statuses.get(spec_id) if spec_id else None
        busy = self.job.busy
        spec = next((s for s in self.specs if s.id == spec_id), None)
        size = _approx(spec.download_mb * 1e6) if spec and spec.download_mb else ""
        here = status is not None and status.state != "missing"
        self.download_button.setText("Download" if here or not size else f"Download ({size})")
        self.download_button.setEnabled(status is not None and not here and not busy)
        self.import_button.setEnabled(bool(spec_id) and not busy)
        for button in (self.open_button, self.copy_button):
            button.setEnabled(status is not None)
        self.default_button.setEnabled(bool(spec_id) and spec_id != self.preferences.backbone)
        self.cancel_button.setVisible(busy)
        self.cancel_button.setToolTip(
            f"Stop the {self.job.kind} (nothing partial is kept)" if busy else ""
        )
        self.progress_bar.setVisible(busy)

    # -- download and import -------------------------------------------------------------------
    def start_download(self, backbone_id: str) -> None:
        """Download ``backbone_id``'s weights in the background (progress below the table)."""
        self._run("download", backbone_id, None)

    def import_from(self, backbone_id: str, path: str | Path) -> None:
        """Check ``path`` (a weights file, or a folder holding one) against ``backbone_id`` and
        import it, in the background; the file dialog of Import… calls this. A segmenter
        checkpoint of ours (its JSON beside it) is imported for the backbone it names."""
        path = Path(path)
        own = None if path.is_dir() else checkpoint_backbone(path)
        if own is not None and own != backbone_id and any(s.id == own for s in self.specs):
            backbone_id = own
        self._run("import", backbone_id, path)
        if own is not None and self.job.busy and self.job.current == own:
            self._job_line = f"Checking segmenter checkpoint {path.name} for {own}"
            self._set_status(f"{self._job_line}…")

    def cancel(self) -> None:
        """Cancel the running download or import."""
        if self.job.busy:
            self.job.cancel()
            self._set_status("Cancelling…")

    def _run(self, kind: str, backbone_id: str, path: Path | None) -> None:
        spec = next((s for s in self.specs if s.id == backbone_id), None)
        if spec is None:
            self._show_error("Unknown model", f"{backbone_id!r} is not a listed backbone.")
            return
        if self.job.busy:
            self._show_error(
                "Busy", f"Wait for the {self.job.kind} of {self.job.current} to end, or cancel it."
            )
            return
        self.select_backbone(spec.id)
        try:
            if path is None:
                self.job.start(spec.id)
                self._job_line = f"Downloading {display_name(spec)}"
            else:
                self.job.start_import(spec.id, path)
                self._job_line = f"Checking {path.name} for {display_name(spec)}"
        except (KeyError, RuntimeError) as e:
            self._show_error(f"Could not start the {kind}", str(e))
            return
        self.progress_bar.setRange(0, 1000)  # bytes, once the first are counted
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("checking…" if path is not None else "starting…")
        self._set_status(f"{self._job_line}…")
        self._update_controls()

    @Slot(str, int, object)
    def _on_progress(self, spec_id: str, done: int, total: object) -> None:
        if isinstance(total, int) and total > 0:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(min(1000, done * 1000 // total))
            self.progress_bar.setFormat(f"{format_size(done)} / {format_size(total)}")
        else:
            self.progress_bar.setRange(0, 0)
        verb = "copied" if self.job.kind == "import" else "received"
        self._set_status(f"{self._job_line}: {format_size(done)} {verb}")

    @Slot(str, str)
    def _on_finished(self, spec_id: str, path: str) -> None:
        verb = "Imported" if self.job.kind == "import" else "Downloaded"
        self._set_status(f"{verb} {spec_id}: {path}")
        self._update_controls()
        self.refresh()
        self.weightsChanged.emit(spec_id)

    @Slot(str, str)
    def _on_failed(self, spec_id: str, message: str) -> None:
        what = "import weights for" if self.job.kind == "import" else "download"
        self._set_status(f"Could not {what} {spec_id}: {message.splitlines()[0]}", error=True)
        self._update_controls()
        self.refresh()
        self._failed_id = spec_id
        offer = [IMPORT] if self.job.kind == "import" else [RETRY, IMPORT]
        self._show_error(f"Could not {what} {spec_id}", for_window(message), offer)

    @Slot(str)
    def _on_cancelled(self, spec_id: str) -> None:
        self._set_status(f"{self.job.kind.capitalize()} of {spec_id} cancelled; nothing was kept.")
        self._update_controls()
        self.refresh()

    def import_dialog(self, backbone_id: str | None = None, *, folder: bool = False) -> None:
        """Ask for a weights file (or folder) and import it for ``backbone_id`` (default: the
        selected backbone); nothing happens if the question is cancelled."""
        backbone_id = backbone_id or self.selected_id()
        if backbone_id is None:
            return
        self.select_backbone(backbone_id)
        path = self._ask_import_path(backbone_id, folder=folder)
        if path is not None:
            self.import_from(backbone_id, path)

    def _set_status(self, text: str, *, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #b00020;" if error else "")

    # -- where files live, the default ---------------------------------------------------------
    def _place(self) -> Path | None:
        spec_id = self.selected_id()
        status = self._statuses.get(spec_id) if spec_id else None
        if status is None:
            return None
        return status.path if status.path is not None else status.folder

    def open_folder(self) -> None:
        """Open the folder of the selected backbone's file (or where an import would go)."""
        place = self._place()
        if place is None:
            return
        folder = place if place.is_dir() or not place.suffix else place.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._show_error("Could not open the folder", f"{folder}: {e.strerror or e}")
            return
        self._open_folder(folder)

    def copy_path(self) -> None:
        """Put the selected backbone's file (or import folder) on the clipboard."""
        place = self._place()
        if place is not None:
            QGuiApplication.clipboard().setText(str(place))
            self._set_status(f"Copied {place}")

    def set_default(self) -> None:
        """Make the selected backbone the default for photo search (saved at once)."""
        spec_id = self.selected_id()
        if spec_id is None or spec_id == self.preferences.backbone:
            return
        self.preferences.backbone = spec_id
        for row in range(len(self.specs)):
            self._fill_row(row)
        self._update_controls()
        self._save_preferences()

    # -- device and precision ------------------------------------------------------------------
    def _probe_device(self) -> None:
        call = BackgroundCall(probe_cuda, "sketchpad-cuda-probe", self)
        call.done.connect(lambda result: self._on_probed(call, result))
        call.failed.connect(lambda message: self._on_probed(call, (False, message)))
        self._calls.append(call)
        call.start()

    def _on_probed(self, call: BackgroundCall, result: tuple[bool, str]) -> None:
        self._forget(call)
        self._cuda = result
        ok, detail = result
        index = self.device_combo.findData("cuda")
        model = self.device_combo.model()
        if isinstance(model, QStandardItemModel):
            model.item(index).setEnabled(ok)
        tip = f"Run on {detail}" if ok else f"Not available: {detail}"
        self.device_combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
        self._show_device_note()

    @property
    def cuda_available(self) -> bool | None:
        """Whether a CUDA GPU can be used (None until the background probe ends)."""
        return None if self._cuda is None else self._cuda[0]

    def _show_device_note(self) -> None:
        device = self.preferences.device
        self.fp16_box.setEnabled(device != "cpu")
        note = ""
        if self._cuda is not None and not self._cuda[0] and device == "cuda":
            note = "No CUDA GPU here: models run on the CPU."
        elif self._cuda is not None and self._cuda[0] and device != "cpu":
            note = f"GPU: {self._cuda[1]}"
        self.device_note.setText(note)

    @Slot(int)
    def _on_device_chosen(self, index: int) -> None:
        self.preferences.device = self.device_combo.itemData(index)
        self._show_device_note()
        self._save_preferences()

    @Slot(bool)
    def _on_fp16_toggled(self, checked: bool) -> None:
        self.preferences.fp16 = checked
        self._save_preferences()

    def set_device(self, device: Device) -> None:
        """Choose ``device`` as the combo box would (saved at once)."""
        self.device_combo.setCurrentIndex(self.device_combo.findData(device))

    def _save_preferences(self) -> None:
        try:
            self.preferences.save()
        except SaveError as e:
            self._show_error("Could not save the preferences", str(e))
        self.preferencesChanged.emit()

    # -- hooks for tests, closing --------------------------------------------------------------
    def _show_error(self, title: str, text: str, offer: Sequence[str] = ()) -> None:
        """Show an error without blocking, with a button for each of ``offer`` (:data:`RETRY`,
        :data:`IMPORT`: :meth:`error_action` runs it) and Close (tests replace this)."""
        box = QMessageBox(
            QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Close, self
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        for name in offer:
            button = box.addButton(name, QMessageBox.ButtonRole.ActionRole)
            button.clicked.connect(lambda _=False, n=name: self.error_action(n))
        box.open()

    def error_action(self, name: str) -> None:
        """What an error's button does, for the backbone that failed: :data:`RETRY` downloads
        again, :data:`IMPORT` asks for a file to import."""
        spec_id = self._failed_id or self.selected_id()
        if not spec_id:
            return
        if name == RETRY:
            self.start_download(spec_id)
        elif name == IMPORT:
            self.import_dialog(spec_id)

    def _ask_import_path(self, backbone_id: str, *, folder: bool) -> Path | None:
        """A weights file (or folder) to import for ``backbone_id``, or None if cancelled."""
        title = f"Choose weights for {backbone_id}"
        if folder:
            name = QFileDialog.getExistingDirectory(self, title, str(Path.home()))
        else:
            name, _ = QFileDialog.getOpenFileName(self, title, str(Path.home()), WEIGHT_FILTER)
        return Path(name) if name else None

    def _open_folder(self, folder: Path) -> None:
        """Show ``folder`` in the file manager (tests replace this)."""
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self._show_error("Could not open the folder", f"No file manager opened {folder}.")

    def wait_until_idle(self, timeout_s: float = 10.0) -> bool:
        """Process events until no download, import, scan or probe runs; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.job.busy or self._calls:
            if time.monotonic() >= deadline:
                return False
            QCoreApplication.processEvents()
            time.sleep(0.005)
        return True

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Cancel this dialog's download and join its threads; False if one did not end."""
        joined = self.job.shutdown(timeout_s) if self._owns_job else True
        return all([c.wait(timeout_s) for c in list(self._calls)]) and joined

    def done(self, result: int) -> None:
        if self._owns_job and self.job.busy:
            self.job.cancel()
        super().done(result)
