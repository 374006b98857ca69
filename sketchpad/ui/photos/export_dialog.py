"""Export Masks…: where to write a gallery's masks and what to write (a small options dialog).

The dialog only asks; the window runs :func:`sketchpad.gallery.export.export_gallery` off the
GUI thread with full-resolution masks from the engine. OK stays disabled, with the reason in
red, while the folder would write into the photo folder (DESIGN §7), is not a full path, is a
file, or while nothing is chosen to export. A folder that already holds an export is allowed,
with a note that files of the same names will be replaced.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sketchpad.gallery.export import ANNOTATIONS_NAME, ExportOptions
from sketchpad.gallery.export_names import check_out_dir

log = logging.getLogger(__name__)

#: Colour of the reason OK is disabled.
ERROR_COLOR = QColor("#c62828")


class ExportDialog(QDialog):
    """Choose the export folder and options for a gallery's masks.

    Args:
        photo_folder: the open photo folder (the export may not write into it).
        parent: the window.
        out_dir: the folder to start with (e.g. the last export's); None leaves it empty.
        options: the options to start with (their ``color`` is kept as it is).
        crf: whether "refine edges with CRF" starts checked.
        has_sketch: False for a text-only query: there is no sketch to save.
        default_class: the class name offered (the query's words, or the sketch's label).
        groups: stroke groups of a composed query: each is a class of its own after the first.
        reviewed: photos the user accepted (the "accepted only" box says how many).
    """

    def __init__(
        self,
        photo_folder: Path,
        parent: QWidget | None = None,
        *,
        out_dir: Path | None = None,
        options: ExportOptions | None = None,
        crf: bool = False,
        has_sketch: bool = True,
        default_class: str = "sketch",
        groups: int = 0,
        reviewed: int = 0,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export Masks — Sketchpad")
        self._photo_folder = Path(photo_folder)
        opts = options or ExportOptions()
        self._color = opts.color

        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("a folder outside the photo folder")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse)
        folder_label = QLabel("Export &to:")
        folder_label.setBuddy(self.folder_edit)
        row = QHBoxLayout()
        row.addWidget(folder_label)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.browse_button)

        self.binary_box = QCheckBox("Masks as PNG (black and white, at the photo's size)")
        self.overlay_box = QCheckBox("Colour overlays (the photo with its mask and boxes, JPEG)")
        self.coco_box = QCheckBox("COCO annotations (RLE masks, boxes and scores)")
        self.polygons_box = QCheckBox("COCO polygons too (annotations_polygons.json)")
        self.labelme_box = QCheckBox("LabelMe JSON, one file per photo (labelme/)")
        self.yolo_box = QCheckBox("YOLO segmentation labels with data.yaml (yolo/)")
        self.class_edit = QLineEdit()
        self.class_edit.setToolTip(
            "The class name written in every format; a composed query's groups: one name "
            "per group, separated by commas"
        )
        names = [default_class] + [f"{default_class} {k}" for k in range(1, groups)]
        if opts.class_names:
            names = list(opts.class_names)
        self.class_edit.setText(", ".join(names))
        self.sketch_box = QCheckBox("The sketch (sketch.json)")
        self.only_matches_box = QCheckBox("Only photos that match")
        self.only_matches_box.setToolTip("Leave out photos in which nothing was found")
        self.accepted_only_box = QCheckBox(f"Only photos I accepted ({reviewed} so far)")
        self.accepted_only_box.setToolTip(
            "Review photos with A (accept) and X (reject) in the gallery or the large view; "
            "rejected photos are never exported"
        )
        self.accepted_only_box.setChecked(opts.accepted_only)
        self.crf_box = QCheckBox("Refine edges with CRF (slower)")
        self.crf_box.setToolTip("Dense-CRF refinement of every mask along the photo's edges")
        self.binary_box.setChecked(opts.binary_png)
        self.overlay_box.setChecked(opts.overlay)
        self.coco_box.setChecked(opts.coco)
        self.polygons_box.setChecked(opts.coco_polygons)
        self.labelme_box.setChecked(opts.labelme)
        self.yolo_box.setChecked(opts.yolo)
        self.sketch_box.setChecked(opts.sketch and has_sketch)
        self.sketch_box.setEnabled(has_sketch)
        if not has_sketch:
            self.sketch_box.setToolTip("This query has no sketch (words only)")
        self.only_matches_box.setChecked(opts.only_matches)
        self.crf_box.setChecked(crf)

        what = QGroupBox("Write")
        what_layout = QVBoxLayout(what)
        for box in self._format_boxes():
            what_layout.addWidget(box)
        class_label = QLabel("&Class name:")
        class_label.setBuddy(self.class_edit)
        class_row = QHBoxLayout()
        class_row.addWidget(class_label)
        class_row.addWidget(self.class_edit, 1)
        what_layout.addLayout(class_row)
        which = QGroupBox("Photos")
        which_layout = QVBoxLayout(which)
        which_layout.addWidget(self.only_matches_box)
        which_layout.addWidget(self.accepted_only_box)
        which_layout.addWidget(self.crf_box)

        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self._default_palette = QPalette(self.message_label.palette())
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(what)
        layout.addWidget(which)
        layout.addWidget(self.message_label)
        layout.addWidget(self.buttons)

        self.folder_edit.textChanged.connect(self._validate)
        self.class_edit.textChanged.connect(self._validate)
        self.coco_box.toggled.connect(self.polygons_box.setEnabled)
        for box in self._format_boxes():
            box.toggled.connect(self._validate)
        if out_dir is not None:
            self.folder_edit.setText(str(out_dir))
        self._validate()

    def _format_boxes(self) -> tuple[QCheckBox, ...]:
        return (
            self.binary_box,
            self.overlay_box,
            self.coco_box,
            self.polygons_box,
            self.labelme_box,
            self.yolo_box,
            self.sketch_box,
        )

    def class_names(self) -> tuple[str, ...]:
        """The class names typed (comma-separated; blanks dropped)."""
        return tuple(n.strip() for n in self.class_edit.text().split(",") if n.strip())

    # -- answers ----------------------------------------------------------------------------
    def out_dir(self) -> Path:
        """The export folder as typed or chosen (``~`` expanded)."""
        return Path(self.folder_edit.text().strip()).expanduser()

    def options(self) -> ExportOptions:
        """The chosen options (the colour is the one the dialog was given)."""
        return ExportOptions(
            binary_png=self.binary_box.isChecked(),
            overlay=self.overlay_box.isChecked(),
            coco=self.coco_box.isChecked(),
            coco_polygons=self.polygons_box.isChecked(),  # written only with COCO
            labelme=self.labelme_box.isChecked(),
            yolo=self.yolo_box.isChecked(),
            sketch=self.sketch_box.isChecked(),
            only_matches=self.only_matches_box.isChecked(),
            accepted_only=self.accepted_only_box.isChecked(),
            color=self._color,
            class_names=self.class_names(),
        )

    def crf(self) -> bool:
        """Whether the masks are to be refined with a dense CRF first."""
        return self.crf_box.isChecked()

    def set_out_dir(self, path: Path | str) -> None:
        """Put ``path`` in the folder field (as Browse… does)."""
        self.folder_edit.setText(str(path))

    def problem(self) -> str | None:
        """Why the export cannot start now, or None."""
        text = self.folder_edit.text().strip()
        if not text:
            return "Choose a folder for the export."
        out = self.out_dir()
        if not out.is_absolute():
            return f"“{text}” is not a full path: choose the folder with Browse…"
        try:
            check_out_dir(out, self._photo_folder)
        except ValueError as e:
            return str(e)
        if out.exists() and not out.is_dir():
            return f"{out} is a file, not a folder."
        if not any(b.isChecked() for b in self._format_boxes() if b is not self.polygons_box):
            return "Choose at least one thing to write."
        names = self.class_names()
        if not names:
            return "Type a class name."
        if len(set(names)) != len(names):
            return "Each class needs its own name."
        return None

    # -- internals ---------------------------------------------------------------------------
    def _validate(self) -> None:
        problem = self.problem()
        self.ok_button.setEnabled(problem is None)
        if problem is not None:
            self._show(problem, error=bool(self.folder_edit.text().strip()))
        elif (self.out_dir() / ANNOTATIONS_NAME).exists():
            self._show(
                "This folder already holds an export: files with the same names will be replaced.",
                error=False,
            )
        else:
            self._show("", error=False)

    def _show(self, text: str, *, error: bool) -> None:
        palette = QPalette(self._default_palette)
        if error:
            palette.setColor(QPalette.ColorRole.WindowText, ERROR_COLOR)
        self.message_label.setPalette(palette)
        self.message_label.setText(text)

    def message_is_error(self) -> bool:
        """Whether the message under the options is shown as an error (red)."""
        role = QPalette.ColorRole.WindowText
        return self.message_label.palette().color(role) == ERROR_COLOR

    def _browse(self) -> None:
        folder = self._ask_folder(self.folder_edit.text().strip() or str(Path.home()))
        if folder is not None:
            self.set_out_dir(folder)

    def _ask_folder(self, start: str) -> Path | None:
        """The folder the user picks, or None (tests replace this: no modal dialog)."""
        name = QFileDialog.getExistingDirectory(self, "Export to — Sketchpad", start)
        return Path(name) if name else None

    def accept(self) -> None:
        """Close with OK only while the choice is valid (Enter in the field included)."""
        if self.problem() is None:
            log.debug("export to %s with %s", self.out_dir(), self.options())
            super().accept()
