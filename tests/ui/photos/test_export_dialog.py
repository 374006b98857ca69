"""Export Masks… dialog: the folder (never inside the photo folder) and the options."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QDialog

from sketchpad.gallery.export import ExportOptions
from sketchpad.ui.photos.export_dialog import ExportDialog


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    return folder


@pytest.fixture
def dialog(qtbot, photos: Path) -> ExportDialog:
    d = ExportDialog(photos)
    qtbot.addWidget(d)
    return d


def test_defaults_and_a_folder_beside_the_photos(dialog: ExportDialog, tmp_path: Path) -> None:
    assert not dialog.ok_button.isEnabled()  # no folder yet
    assert dialog.message_label.text() == "Choose a folder for the export."
    assert not dialog.message_is_error()
    assert dialog.options() == ExportOptions(class_names=("sketch",)) and dialog.crf() is False
    dialog.set_out_dir(tmp_path / "exports")
    assert dialog.ok_button.isEnabled() and dialog.message_label.text() == ""
    assert dialog.out_dir() == tmp_path / "exports"


@pytest.mark.parametrize("where", ["photos", "photos/sub", "photos/new/deeper", "photos/../photos"])
def test_a_folder_inside_the_photo_folder_disables_ok_in_red(
    dialog: ExportDialog, tmp_path: Path, where: str
) -> None:
    dialog.set_out_dir(tmp_path / "exports")
    assert dialog.ok_button.isEnabled()
    dialog.set_out_dir(tmp_path / where)
    assert not dialog.ok_button.isEnabled()
    assert "inside the photo folder" in dialog.message_label.text()
    assert dialog.message_is_error()
    dialog.accept()  # Enter in the field: still refused
    assert dialog.result() != QDialog.DialogCode.Accepted and not (tmp_path / "photos/new").exists()


def test_a_folder_whose_masks_would_be_the_photos_is_refused(qtbot, tmp_path: Path) -> None:
    photos = tmp_path / "masks"
    photos.mkdir()
    d = ExportDialog(photos, out_dir=tmp_path)
    qtbot.addWidget(d)
    assert not d.ok_button.isEnabled() and "would write its masks/" in d.message_label.text()


def test_other_reasons_are_named(dialog: ExportDialog, tmp_path: Path) -> None:
    dialog.set_out_dir("relative/folder")
    assert not dialog.ok_button.isEnabled() and "not a full path" in dialog.message_label.text()
    (tmp_path / "file.txt").write_text("x")
    dialog.set_out_dir(tmp_path / "file.txt")
    assert not dialog.ok_button.isEnabled() and "is a file" in dialog.message_label.text()
    dialog.set_out_dir(tmp_path / "exports")
    for box in (dialog.binary_box, dialog.overlay_box, dialog.coco_box, dialog.sketch_box):
        box.setChecked(False)
    assert not dialog.ok_button.isEnabled() and dialog.message_is_error()
    assert "at least one" in dialog.message_label.text()
    dialog.coco_box.setChecked(True)
    assert dialog.ok_button.isEnabled()


def test_an_earlier_export_is_a_note_not_an_error(dialog: ExportDialog, tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "annotations.json").write_text("{}")
    dialog.set_out_dir(tmp_path / "old")
    assert dialog.ok_button.isEnabled() and not dialog.message_is_error()
    assert "will be replaced" in dialog.message_label.text()


def test_the_checkboxes_are_the_options(qtbot, dialog: ExportDialog, tmp_path: Path) -> None:
    dialog.set_out_dir(tmp_path / "exports")
    dialog.show()
    qtbot.waitExposed(dialog)
    for box in (dialog.overlay_box, dialog.only_matches_box, dialog.crf_box):
        # on the indicator: a check box's label ends before the middle of its row
        qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    assert dialog.options() == ExportOptions(
        overlay=False, only_matches=False, class_names=("sketch",)
    )
    assert dialog.crf() is True
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)


def test_starting_values_round_trip_and_text_queries_have_no_sketch(
    qtbot, photos: Path, tmp_path: Path
) -> None:
    given = ExportOptions(
        binary_png=False,
        coco=False,
        only_matches=False,
        color=(1, 2, 3),
        labelme=True,
        yolo=True,
        accepted_only=True,
        class_names=("cow", "calf"),
    )
    d = ExportDialog(photos, out_dir=tmp_path / "last", options=given, crf=True)
    qtbot.addWidget(d)
    assert d.options() == given and d.crf() and d.out_dir() == tmp_path / "last"
    t = ExportDialog(photos, out_dir=tmp_path / "last", has_sketch=False)
    qtbot.addWidget(t)
    assert not t.sketch_box.isEnabled() and t.options().sketch is False


def test_browse_fills_the_folder(dialog: ExportDialog, tmp_path: Path) -> None:
    asked: list[str] = []
    answers = [tmp_path / "picked", None]

    def ask(start: str) -> Path | None:
        asked.append(start)
        return answers.pop(0)

    dialog._ask_folder = ask  # type: ignore[method-assign]
    dialog.browse_button.click()
    assert dialog.out_dir() == tmp_path / "picked" and dialog.ok_button.isEnabled()
    dialog.browse_button.click()  # cancelled: the folder stays
    assert dialog.out_dir() == tmp_path / "picked"
    assert asked[1] == str(tmp_path / "picked")


def test_formats_class_names_and_accepted_only(qtbot, photos: Path, tmp_path: Path) -> None:
    """The formats annotators use, the class names typed once (a composed query's groups get
    their own), and "accepted only" with the count of accepted photos."""
    d = ExportDialog(photos, default_class="brown cow", groups=3, reviewed=4)
    qtbot.addWidget(d)
    d.set_out_dir(tmp_path / "out")
    assert d.class_edit.text() == "brown cow, brown cow 1, brown cow 2"
    assert "4 so far" in d.accepted_only_box.text()
    for box in (d.labelme_box, d.yolo_box, d.accepted_only_box):
        box.setChecked(True)
    d.class_edit.setText("cow, calf , dog")
    opts = d.options()
    assert opts.labelme and opts.yolo and opts.accepted_only and opts.coco_polygons
    assert opts.class_names == ("cow", "calf", "dog")
    d.class_edit.setText(" , ")
    assert not d.ok_button.isEnabled() and "class name" in d.message_label.text()
    d.class_edit.setText("cow, cow")
    assert not d.ok_button.isEnabled() and "own name" in d.message_label.text()
    d.class_edit.setText("cow")
    for box in (d.binary_box, d.overlay_box, d.coco_box, d.sketch_box, d.labelme_box):
        box.setChecked(False)
    assert d.ok_button.isEnabled()  # YOLO alone is something to write
    d.yolo_box.setChecked(False)
    assert not d.ok_button.isEnabled() and not d.polygons_box.isEnabled()
