"""Photos ▸ Export Masks…: full-resolution masks of the query shown, written in the background.

The engine makes the masks (at each photo's own size, CRF-refined when asked) a few photos
at a time on the "export" channel; a single writer thread (never the GUI thread) writes each
photo's files through :class:`~sketchpad.gallery.export.GalleryExporter` while the engine
makes the next ones. A progress dialog counts photos and can cancel; queries are held while
it runs, because the masks must belong to the query that is on screen.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QProgressDialog

from sketchpad.gallery.export import ExportOptions, GalleryExporter
from sketchpad.gallery.images import PhotoError, load_photo

if TYPE_CHECKING:
    from sketchpad.engine.client import Engine
    from sketchpad.engine.requests import MaskResult, QueryResult
    from sketchpad.gallery.review import FolderReview
    from sketchpad.search.masks import PhotoMask
    from sketchpad.sketch.model import Sketch
    from sketchpad.ui.photos.search import PhotoSearch

log = logging.getLogger(__name__)

#: Photos per mask request (full-size masks: keep the memory in flight small).
CHUNK = 4
CHANNEL = "export"


def query_description(
    result: QueryResult, threshold: float, options: dict[str, object]
) -> dict[str, object]:
    """What the COCO file's ``info`` says about the query."""
    return {
        "query_generation": result.generation,
        "threshold": threshold,
        "photos_in_gallery": len(result.names),
        **options,
    }


class MaskExportJob(QObject):
    """Exports the photos ``names`` of ``result``'s query.

    Signals:
        progress(int, int): photos written, photos to write.
        finished(object): the ExportSummary.
        failed(str): a readable reason (the export stopped; what was written stays).
    """

    progress = Signal(int, int)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        engine: Engine,
        exporter: GalleryExporter,
        folder: Path,
        names: list[str],
        *,
        crf: bool,
        threshold: float,
        sketch: Sketch | None,
        review: FolderReview | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self.exporter = exporter
        self.folder = folder
        self.names = names
        self.crf = crf
        self.threshold = threshold
        self.sketch = sketch
        self.review = review  # corrected masks replace the model's
        self.written = 0
        self.problems: list[str] = []
        self._next = 0
        self._cancelled = False
        self._done = False
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sketchpad-export")
        self._writes: list[Future[None]] = []
        self._wanted = exporter.options.overlay
        engine.masksFinished.connect(self._on_masks)
        engine.failed.connect(self._on_failed)

    def start(self) -> None:
        self._request_next()

    def cancel(self) -> None:
        self._cancelled = True

    def _request_next(self) -> None:
        if self._cancelled or self._next >= len(self.names):
            self._finish()
            return
        chunk = tuple(self.names[self._next : self._next + CHUNK])
        self._next += len(chunk)
        self._gen = self.engine.request_masks(
            chunk, side=None, crf=self.crf, channel=CHANNEL, threshold=self.threshold
        )

    @Slot(object)
    def _on_masks(self, result: MaskResult) -> None:
        if self._done or result.channel != CHANNEL or result.generation != self._gen:
            return
        for name, mask in result.masks.items():
            self._writes.append(self._writer.submit(self._write, name, mask))
        self._request_next()  # the engine makes the next masks while these are written
        QTimer.singleShot(0, self._report)

    def _write(self, name: str, mask: PhotoMask) -> None:
        if self.review is not None:
            mask = self.review.mask_for(name, mask)
        photo: np.ndarray | None = None
        if self._wanted:
            try:
                photo = load_photo(self.folder / name)
            except PhotoError as e:
                self.problems.append(str(e))
        self.exporter.add(name, mask.mask.shape, mask, photo=photo)

    def _report(self) -> None:
        done = sum(1 for f in self._writes if f.done())
        self.progress.emit(done, len(self.names))

    @Slot(int, str)
    def _on_failed(self, generation: int, message: str) -> None:
        if not self._done and generation == getattr(self, "_gen", -1):
            self._cancelled = True
            self._finish(error=message)

    def _finish(self, error: str | None = None) -> None:
        if self._done:
            return
        self._done = True
        self.engine.masksFinished.disconnect(self._on_masks)
        self.engine.failed.disconnect(self._on_failed)

        def close() -> object:
            for f in self._writes:
                f.result()
            return self.exporter.finish(self.sketch)

        future = self._writer.submit(close)
        self._writer.shutdown(wait=False)

        def poll() -> None:
            if not future.done():
                QTimer.singleShot(50, poll)
                return
            try:
                summary = future.result()
            except Exception as e:  # a disk error: what was written stays, say why
                log.exception("export failed")
                self.failed.emit(f"The export failed: {e}")
                return
            if error:
                self.failed.emit(error)
            else:
                self.progress.emit(len(self.names), len(self.names))
                self.finished.emit(summary)

        poll()


def default_class_name(search: PhotoSearch) -> str:
    """The class an export offers: the query's words, else the label most strokes carry
    (scene labels), else "sketch"."""
    words = search.controls.options().text.strip()
    if words:
        return words.replace(",", " ")
    from collections import Counter

    labels = Counter(s.label for s in search.document.sketch.strokes if s.label)
    return labels.most_common(1)[0][0].replace(",", " ") if labels else "sketch"


def run_export_dialog(search: PhotoSearch) -> MaskExportJob | None:
    """Ask where and what, then export with a progress dialog."""
    from sketchpad.ui.photos.export_dialog import ExportDialog

    result, folder, engine = search.last_result, search.folder, search.engine
    if result is None or folder is None or engine is None:
        return None
    sketch = search.document.sketch
    review = search.review
    dialog = ExportDialog(
        folder,
        search.window,
        out_dir=search.last_export_dir,
        options=search.last_export_options,
        crf=search.controls.options().crf,
        has_sketch=bool(sketch.strokes) or sketch.raster is not None,
        default_class=default_class_name(search),
        groups=len(result.scores) if search.controls.options().compose else 0,
        reviewed=len(review.names("accepted")) if review is not None else 0,
    )
    if not dialog.exec():
        return None
    search.last_export_dir, search.last_export_options = dialog.out_dir(), dialog.options()
    return start_export(search, dialog.out_dir(), dialog.options(), crf=dialog.crf())


def start_export(
    search: PhotoSearch, out_dir: Path, options: ExportOptions, *, crf: bool
) -> MaskExportJob | None:
    """Export the shown query's masks to ``out_dir`` (tests call this directly)."""
    result, folder, engine = search.last_result, search.folder, search.engine
    assert result is not None and folder is not None and engine is not None
    opts = search.controls.options()
    order = [result.names[i] for i in result.ranking]
    scores = dict(zip(result.names, result.photo_scores.tolist(), strict=True))
    review = search.review
    corrected = set(review.corrected_names()) if review is not None else set()
    if options.only_matches:  # a photo whose mask the user corrected counts as found
        names = [n for n in order if scores[n] >= opts.threshold or n in corrected]
    else:
        names = order
    if review is not None:
        names = review.export_names(names, accepted_only=options.accepted_only)
    elif options.accepted_only:
        names = []
    query = query_description(
        result,
        opts.threshold,
        {
            "backbone": search.model.backbone_id if search.model else None,
            "mode": opts.mode,
            "text": opts.text,
            "alpha": opts.alpha,
            "compose": opts.compose,
            "crf": crf,
        },
    )
    try:
        exporter = GalleryExporter(out_dir, folder, options, query=query)
    except (ValueError, OSError) as e:
        search.report_error("Export Masks", f"Cannot export to {out_dir}: {e}")
        return None
    sketch = search.document.sketch if options.sketch else None
    job = MaskExportJob(
        engine,
        exporter,
        folder,
        names,
        crf=crf,
        threshold=opts.threshold,
        sketch=sketch,
        review=review,
        parent=search,
    )
    bar = QProgressDialog("Exporting masks…", "Cancel", 0, max(1, len(names)), search.window)
    bar.setWindowTitle("Export Masks")
    bar.setWindowModality(Qt.WindowModality.WindowModal)
    bar.setMinimumDuration(300)
    bar.setAutoClose(False)
    bar.setAutoReset(False)
    bar.canceled.connect(job.cancel)
    job.progress.connect(lambda done, total: bar.setValue(done))
    search.suspend_queries(True)

    def done(summary: object) -> None:
        bar.close()
        search.suspend_queries(False)
        text = f"Exported {len(names)} photo{'s' if len(names) != 1 else ''} to {out_dir}"
        if job.problems:
            text += f" ({len(job.problems)} photo(s) without overlay: see the log)"
            for p in job.problems:
                log.warning("export: %s", p)
        search._status(text)
        show_export_done(search, out_dir, text)
        search.exportFinished.emit(summary)

    def failed(message: str) -> None:
        bar.close()
        search.suspend_queries(False)
        search.report_error("Export Masks", message)

    job.finished.connect(done)
    job.failed.connect(failed)
    job.start()
    return job


def show_export_done(search: PhotoSearch, out_dir: Path, text: str) -> QMessageBox:
    """Say the export is done, with an Open Folder button (non-modal: work goes on)."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    box = QMessageBox(
        QMessageBox.Icon.Information, "Export Masks", text + ".", parent=search.window
    )
    open_button = box.addButton("Open Folder", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Close)
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def clicked(button: object) -> None:
        if button is open_button and not QDesktopServices.openUrl(QUrl.fromLocalFile(str(out_dir))):
            search.report_error("Export Masks", f"Cannot open {out_dir} in the file manager.")

    box.buttonClicked.connect(clicked)
    box.open()
    search.export_done_box = box
    return box
