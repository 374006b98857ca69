"""The Scene Labels panel in the main window, with the planted stand-in CLIP of tests/scene (its
labels are exact: each quadrant of the drawing is one word)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PySide6.QtCore import QEvent, QPointF, QSettings, Qt, QTimer
from PySide6.QtGui import QColor, QMouseEvent
from PySide6.QtWidgets import QApplication
from qtevents import deliver_posted_events
from scene.scene_planted import SceneBackbone, quadrant_sketch, ring

from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.ui.app import set_application_names
from sketchpad.ui.canvas.canvas import Canvas
from sketchpad.ui.canvas.painter import DIM_ALPHA
from sketchpad.ui.canvas.tools.relabel import RASTER_NOTE
from sketchpad.ui.main_window import MainWindow
from sketchpad.ui.scene.edits import UNPIN
from sketchpad.vision.errors import WeightsNotFoundError
from sketchpad.vision.segmenter import Segmenter
from sketchpad.workspace import scene_label_table as T

QUADRANTS = ["cat", "dog", "tree", "sun"]
TRUTH = ["cat", "dog", "tree", "sun", "cat"]  # quadrant_sketch's strokes tl, tr, bl, br, tl2
ON_TL = (52.0, 42.0)  # a point on stroke "tl" (a ring of radius 10 about (42, 42))


class GatedBackbone(SceneBackbone):
    """The planted stand-in, counting forwards; each waits for ``gate`` (set by default) and
    the first ``fail`` of them raise."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0
        self.fail = fail

    def encode_patches(self, x: torch.Tensor, **kw: object) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        assert self.gate.wait(10), "the test never opened the gate"
        if self.calls <= self.fail:
            raise RuntimeError("planted failure")
        return super().encode_patches(x, **kw)


@pytest.fixture(autouse=True)
def isolated_qsettings(tmp_path: Path, qapp: Any) -> None:
    """Window geometry goes to an INI file under tmp, never the user's settings."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings")
    )
    set_application_names()


@pytest.fixture
def backbone() -> GatedBackbone:
    return GatedBackbone()


@pytest.fixture
def make_window(qtbot: Any, backbone: GatedBackbone) -> Iterator[Callable[..., MainWindow]]:
    """make_window(factory=None) → a shown MainWindow labelling with ``backbone`` (or the
    factory); errors land in ``window.errors``. Closing must join the labelling thread."""
    windows: list[MainWindow] = []

    def make(factory: Callable[[object], Any] | None = None) -> MainWindow:
        build = factory or (lambda progress: backbone)

        def loader(choice: object, progress: Any) -> Segmenter:  # the one engine's models
            return Segmenter(build(progress))

        window = MainWindow(autosave_delay_ms=20, photo_loader=loader)
        window.errors = []  # type: ignore[attr-defined]
        window._show_error = lambda title, text: window.errors.append((title, text))  # type: ignore[method-assign]
        window.scene._debounce.setInterval(20)
        window.resize(1100, 700)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    backbone.gate.set()
    for window in windows:
        window.document.undo_stack.setClean()
        window.close()
        assert not window.scene.service.is_running, "closing did not join the labelling thread"
        window.deleteLater()
    deliver_posted_events()


@pytest.fixture
def window(make_window: Callable[..., MainWindow]) -> MainWindow:
    w = make_window()
    w.document.reset(quadrant_sketch()[0], None)
    return w


def labels_of(window: MainWindow) -> list[str | None]:
    return [s.label for s in window.document.sketch.strokes]


def run_labelling(window: MainWindow, qtbot: Any) -> None:
    assert window.scene.label_now() is not None
    qtbot.waitUntil(lambda: not window.scene.is_busy, timeout=10_000)


def click_canvas(canvas: Canvas, x: float, y: float) -> None:
    """A left click at canvas point (x, y)."""
    pos = QPointF(*canvas.view.to_view(x, y))
    left = Qt.MouseButton.LeftButton
    for kind, buttons in (
        (QEvent.Type.MouseButtonPress, left),
        (QEvent.Type.MouseButtonRelease, Qt.MouseButton.NoButton),
    ):
        event = QMouseEvent(
            kind, pos, canvas.mapToGlobal(pos), left, buttons, Qt.KeyboardModifier.NoModifier
        )
        QApplication.sendEvent(canvas, event)


def canvas_rgb(canvas: Canvas, x: float, y: float) -> tuple[int, int, int]:
    image = canvas.grab().toImage()
    vx, vy = canvas.view.to_view(x, y)
    c = QColor(
        image.pixel(round(vx * image.devicePixelRatio()), round(vy * image.devicePixelRatio()))
    )
    return (c.red(), c.green(), c.blue())


# -- the label table ---------------------------------------------------------------------------
def test_add_rename_colour_remove_are_undoable(window: MainWindow, qtbot: Any) -> None:
    scene, panel, stack = window.scene, window.scene_panel, window.document.undo_stack
    panel.add_button.click()  # "label", being renamed in place
    assert scene.names == ("label",)
    assert window.document.sketch.metadata["labels"] == [{"name": "label", "color": "#1f77b4"}]
    panel.list_view.closePersistentEditor(panel.list_view.currentIndex())
    scene.add_label("dog")
    scene.relabel_stroke("tl", "label")
    assert panel.model.index(0).data() == "label (1)"

    # Rename in place (the list's edit role): the strokes follow, in one step.
    steps = stack.count()
    assert panel.model.setData(panel.model.index(0), "  cat ")
    assert scene.names == ("cat", "dog") and labels_of(window)[0] == "cat"
    assert stack.count() == steps + 1
    assert not panel.model.setData(panel.model.index(0), "DOG")  # another label's name
    assert scene.names == ("cat", "dog")

    # Colour through the dialog hook.
    panel._ask_color = lambda initial, name: "#123456"  # type: ignore[method-assign]
    panel.list_view.setCurrentIndex(panel.model.index(1))
    panel.color_button.click()
    assert scene.entries[1] == T.LabelEntry("dog", "#123456")

    # Remove: its strokes lose the label, in one step.
    panel.list_view.setCurrentIndex(panel.model.index(0))
    panel.remove_button.click()
    assert scene.names == ("dog",) and labels_of(window)[0] is None
    assert "tl" not in T.hand_labelled(window.document.sketch)

    stack.undo()  # remove
    assert scene.names == ("cat", "dog") and labels_of(window)[0] == "cat"
    assert "tl" in T.hand_labelled(window.document.sketch)
    stack.undo()  # colour
    assert scene.entries[1].color == T.DEFAULT_PALETTE[1]
    stack.undo()  # rename
    assert scene.names == ("label", "dog") and labels_of(window)[0] == "label"
    for _ in range(3):
        stack.redo()
    assert scene.names == ("dog",) and scene.entries[0].color == "#123456"
    assert labels_of(window)[0] is None


def test_caption_proposes_labels_from_the_vocabulary(window: MainWindow) -> None:
    panel, scene = window.scene_panel, window.scene
    panel.caption_edit.setText("Two cats chase a dog past the trees.")
    panel.propose_button.click()
    assert scene.names == ("cat", "dog", "tree")
    assert window.document.undo_stack.count() == 1
    panel.caption_edit.setText("A cat and the sun")
    panel.propose_button.click()
    assert scene.names == ("cat", "dog", "tree", "sun")
    panel.caption_edit.setText("zzz qqq")
    panel.propose_button.click()
    assert scene.names == ("cat", "dog", "tree", "sun")
    assert "names nothing in the vocabulary" in panel.status_label.text()


# -- running the labeller ----------------------------------------------------------------------
def test_label_runs_in_the_background_and_applies_exact_labels(
    window: MainWindow, backbone: GatedBackbone, qtbot: Any
) -> None:
    scene = window.scene
    scene.add_labels(QUADRANTS)
    backbone.gate.clear()  # the model cannot answer until the gate opens
    window.scene_panel.actions_by_name["label"].trigger()  # so this returns before the result
    assert scene.is_busy and window.scene_panel.busy_bar.isVisible()
    ran: list[bool] = []
    QTimer.singleShot(0, lambda: ran.append(scene.is_busy))
    qtbot.waitUntil(lambda: bool(ran), timeout=10_000)  # the GUI thread runs meanwhile
    assert ran == [True] and labels_of(window) == [None] * 5 and scene.is_busy
    backbone.gate.set()
    qtbot.waitUntil(lambda: not scene.is_busy, timeout=10_000)
    assert labels_of(window) == TRUTH
    assert not window.scene_panel.busy_bar.isVisible()
    assert window.document.undo_stack.undoText() == "Label strokes"
    assert window.scene_panel.model.index(0).data() == "cat (2)"
    window.document.undo_stack.undo()
    assert labels_of(window) == [None] * 5


def test_a_newer_request_wins_and_stale_results_are_dropped(
    window: MainWindow, backbone: GatedBackbone, qtbot: Any
) -> None:
    scene, service = window.scene, window.scene.service
    scene.add_labels(QUADRANTS)
    backbone.gate.clear()
    first = scene.label_now()
    qtbot.waitUntil(lambda: backbone.calls == 1)  # the first is running (held at the gate)
    scene.label_now()  # waits, then is superseded before it starts
    third = scene.label_now()
    assert first is not None and third == first + 2
    backbone.gate.set()
    qtbot.waitUntil(lambda: not scene.is_busy, timeout=10_000)
    assert service.wait_until_idle(10.0)
    deliver_posted_events()
    assert backbone.calls == 2  # the second never ran; the first's result was never applied
    assert service.latest_generation == third
    assert scene.result is not None and scene.result.request.generation == third
    assert labels_of(window) == TRUTH
    steps = [window.document.undo_stack.text(i) for i in range(window.document.undo_stack.count())]
    assert steps.count("Label strokes") == 1


def test_result_for_a_drawing_that_changed_meanwhile_is_not_applied(
    window: MainWindow, backbone: GatedBackbone, qtbot: Any
) -> None:
    scene = window.scene
    scene.add_labels(QUADRANTS)
    backbone.gate.clear()
    scene.label_now()
    qtbot.waitUntil(lambda: backbone.calls == 1)
    doc = window.document
    doc.apply(SketchEdit.add(doc.sketch, [Stroke(ring(98, 98, 4), id="new")]), "Draw")
    backbone.gate.set()
    qtbot.waitUntil(lambda: not scene.is_busy, timeout=10_000)
    assert labels_of(window) == [None] * 6 and scene.fresh_result() is None
    assert "press Label again" in window.scene_panel.status_label.text()


def test_auto_relabel_after_pen_up_and_undo_keeps_redo(
    window: MainWindow, backbone: GatedBackbone, qtbot: Any
) -> None:
    scene, doc, stack = window.scene, window.document, window.document.undo_stack
    scene.add_labels(QUADRANTS)
    window.scene_panel.auto_check.setChecked(True)
    assert window.scene_panel.actions_by_name["auto"].isChecked() and scene.auto_relabel
    qtbot.waitUntil(lambda: labels_of(window) == TRUTH, timeout=10_000)  # the drawing as is
    steps = stack.count()
    doc.apply(SketchEdit.add(doc.sketch, [Stroke(ring(98, 42, 4), id="new")]), "Draw")
    qtbot.waitUntil(lambda: labels_of(window)[-1] == "dog", timeout=10_000)
    # The automatic labels joined the stroke's step: one Ctrl+Z undoes both.
    assert stack.undoText() == "Draw" and stack.count() == steps + 1
    calls = backbone.calls
    stack.undo()  # the stroke and its labels: the geometry changed, a run (not applied)
    assert labels_of(window) == TRUTH
    qtbot.waitUntil(lambda: backbone.calls == calls + 1 and not scene.is_busy, timeout=10_000)
    assert stack.canRedo() and labels_of(window) == TRUTH
    stack.redo()
    assert labels_of(window)[-1] == "dog"


def test_auto_relabel_never_drops_the_redo_history(
    window: MainWindow, backbone: GatedBackbone, qtbot: Any
) -> None:
    scene, doc, stack = window.scene, window.document, window.document.undo_stack
    scene.add_labels(QUADRANTS)
    doc.apply(SketchEdit.add(doc.sketch, [Stroke(ring(98, 42, 4), id="new")]), "Draw")
    scene.set_auto_relabel(True)
    qtbot.waitUntil(lambda: labels_of(window)[-1] == "dog", timeout=10_000)
    stack.undo()  # the stroke with its labels: a run whose labels differ from the strokes'
    calls = backbone.calls
    qtbot.waitUntil(lambda: backbone.calls == calls + 1 and not scene.is_busy, timeout=10_000)
    assert labels_of(window) == [None] * 5 and stack.canRedo()
    assert "Redo stays available" in window.scene_panel.status_label.text()
    stack.redo()
    assert labels_of(window) == [*TRUTH, "dog"]


def test_a_pen_stroke_and_its_automatic_labels_are_one_undo_step(
    window: MainWindow, qtbot: Any
) -> None:
    scene, doc = window.scene, window.document
    scene.add_labels(QUADRANTS)
    scene.set_auto_relabel(True)
    qtbot.waitUntil(lambda: labels_of(window) == TRUTH, timeout=10_000)
    canvas = window.canvas
    canvas.set_tool("pen")
    pts = ring(98, 42, 4)
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    for i, (x, y) in enumerate(pts):
        kind = QEvent.Type.MouseButtonPress if i == 0 else QEvent.Type.MouseMove
        pos = QPointF(*canvas.view.to_view(x, y))
        QApplication.sendEvent(
            canvas, QMouseEvent(kind, pos, canvas.mapToGlobal(pos), left, left, none)
        )
    QApplication.sendEvent(
        canvas,
        QMouseEvent(
            QEvent.Type.MouseButtonRelease,
            pos,
            canvas.mapToGlobal(pos),
            left,
            Qt.MouseButton.NoButton,
            none,
        ),
    )
    assert len(doc.sketch.strokes) == 6
    qtbot.waitUntil(lambda: labels_of(window)[-1] == "dog", timeout=10_000)
    window.canvas.edit_actions()["undo"].trigger()  # the first Ctrl+Z
    assert len(doc.sketch.strokes) == 5 and labels_of(window) == TRUTH


def test_labeller_exception_shows_an_error_and_the_next_run_works(
    make_window: Callable[..., MainWindow], qtbot: Any
) -> None:
    failing = GatedBackbone(fail=1)
    window = make_window(lambda progress: failing)
    window.document.reset(quadrant_sketch()[0], None)
    window.scene.add_labels(QUADRANTS)
    run_labelling(window, qtbot)
    assert len(window.errors) == 1
    title, text = window.errors[0]
    assert title == "Labelling failed" and "RuntimeError: planted failure" in text
    assert labels_of(window) == [None] * 5
    run_labelling(window, qtbot)
    assert labels_of(window) == TRUTH and len(window.errors) == 1


def test_missing_weights_offer_buttons_to_get_them(
    make_window: Callable[..., MainWindow], backbone: GatedBackbone, qtbot: Any
) -> None:
    loads: list[int] = []

    def factory(progress: object) -> SceneBackbone:
        loads.append(1)
        if len(loads) == 1:
            raise WeightsNotFoundError("clip-vit-b16", ["/nowhere/weights"], "offline")
        return backbone

    window = make_window(factory)
    window.document.reset(quadrant_sketch()[0], None)
    window.scene.add_labels(QUADRANTS)
    window.scene_panel.auto_check.setChecked(True)
    qtbot.waitUntil(lambda: window.photos.weights_box is not None, timeout=10_000)
    box = window.photos.weights_box
    assert not window.errors  # not the plain error dialog: one with buttons that do the fix
    title, text = box.windowTitle(), box.text()
    assert title == "Labelling model not available"
    assert "sketchpad models" not in text and "/nowhere/weights" in text  # no command to type
    assert "Import…" in text and "Model Manager…" in text  # names buttons that exist:
    names = [b.text() for b in box.buttons()]
    assert {"Import…", "Download", "Model Manager…"} <= set(names)
    assert "Re-labelling after edits is now off" in text and not window.scene.auto_relabel
    assert not window.scene_panel.auto_check.isChecked()
    opened: list[bool] = []
    window.photos.show_model_manager = lambda: opened.append(True)  # type: ignore[method-assign]
    box.buttons()[names.index("Model Manager…")].click()
    assert opened == [True]
    run_labelling(window, qtbot)  # weights imported meanwhile: the load is tried again
    assert labels_of(window) == TRUTH and len(loads) == 2


# -- isolation, hand relabels, colours ---------------------------------------------------------
def test_legend_click_isolates_a_label_and_again_shows_all(window: MainWindow, qtbot: Any) -> None:
    scene, panel = window.scene, window.scene_panel
    scene.add_labels(QUADRANTS)
    run_labelling(window, qtbot)
    view = panel.list_view
    rect = view.visualRect(panel.model.index(1))  # dog
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert scene.isolated == "dog"
    painter = window.canvas.painter
    strokes = window.document.sketch.strokes
    assert painter.stroke_color(strokes[1]).alpha() == 255  # dog
    assert all(painter.stroke_color(strokes[i]).alpha() == DIM_ALPHA for i in (0, 2, 3, 4))
    assert panel.model.index(0).data(Qt.ItemDataRole.ForegroundRole) is not None
    assert panel.actions_by_name["show_all"].isEnabled()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert scene.isolated is None
    assert all(painter.stroke_color(s).alpha() == 255 for s in strokes)


def test_clicking_a_stroke_relabels_it_and_undo_restores_it(window: MainWindow, qtbot: Any) -> None:
    scene, canvas, stack = window.scene, window.canvas, window.document.undo_stack
    scene.add_labels(QUADRANTS)
    run_labelling(window, qtbot)
    asked: list[str] = []

    def ask(stroke_id: str, pos: object) -> str:
        asked.append(stroke_id)
        return "sun"

    window.scene_panel._ask_label = ask  # type: ignore[method-assign]
    window.canvas.tool_actions()["relabel"].trigger()
    assert canvas.tool == "relabel"
    click_canvas(canvas, *ON_TL)
    assert asked == ["tl"] and labels_of(window)[0] == "sun"
    assert stack.undoText() == "Relabel stroke as “sun”"
    assert T.hand_labelled(window.document.sketch) == {"tl"}
    stack.undo()
    assert labels_of(window)[0] == "cat" and T.hand_labelled(window.document.sketch) == set()
    stack.redo()
    assert labels_of(window)[0] == "sun"

    # A hand label survives the next labelling run.
    run_labelling(window, qtbot)
    assert labels_of(window) == ["sun", *TRUTH[1:]]
    # With a label isolated, a click gives that label without asking.
    scene.isolate("tree")
    click_canvas(canvas, 108.0, 42.0)  # on "tr"
    assert asked == ["tl"] and labels_of(window)[1] == "tree"
    # "Let the labeller decide" gives the stroke back to the labeller.
    scene.isolate(None)
    window.scene_panel._ask_label = lambda sid, pos: UNPIN  # type: ignore[method-assign]
    click_canvas(canvas, *ON_TL)
    assert labels_of(window)[0] == "cat" and "tl" not in T.hand_labelled(window.document.sketch)
    # A click on paper changes nothing.
    steps = stack.count()
    click_canvas(canvas, 250.0, 180.0)
    assert stack.count() == steps


def test_strokes_are_painted_in_their_label_colour(window: MainWindow, qtbot: Any) -> None:
    scene, canvas = window.scene, window.canvas
    doc = window.document
    thick = Stroke(np.array([[150.0, 100.0], [280.0, 100.0]]), width=12.0, id="thick")
    doc.reset(Sketch(strokes=(thick,), width=300, height=200), None)
    assert canvas_rgb(canvas, 200, 100) == (0, 0, 0)
    scene.add_labels(["tree"])
    scene.set_label_color("tree", "#2ca02c")
    scene.relabel_stroke("thick", "tree")
    deliver_posted_events()
    assert canvas_rgb(canvas, 200, 100) == (0x2C, 0xA0, 0x2C)
    assert doc.sketch.strokes[0].color == "#000000"  # the stroke's own colour is kept
    window.scene_panel.color_check.setChecked(False)
    assert canvas_rgb(canvas, 200, 100) == (0, 0, 0)
    window.scene_panel.color_check.setChecked(True)
    scene.add_labels(["sun"])
    scene.isolate("sun")  # the tree is faint
    r, g, b = canvas_rgb(canvas, 200, 100)
    assert min(r, g, b) > 180


def test_bitmap_sketch_shows_its_label_map(window: MainWindow, qtbot: Any) -> None:
    ink = np.zeros((200, 300), dtype=np.uint8)
    for cy, cx in ((40, 40), (40, 100), (100, 40), (100, 100)):  # a blob per quadrant
        ink[cy - 8 : cy + 8, cx - 8 : cx + 8] = 255
    window.document.reset(Sketch(raster=ink, width=300, height=200), None)
    scene = window.scene
    scene.add_labels(QUADRANTS)
    run_labelling(window, qtbot)
    assert [scene.count(n) for n in QUADRANTS] == [1, 1, 1, 1]
    assert "Bitmap sketch" in window.scene_panel.hint_label.text()
    colors = T.color_map(scene.entries)
    assert canvas_rgb(window.canvas, 100, 100) == QColor(colors["sun"]).getRgb()[:3]
    scene.isolate("cat")
    assert canvas_rgb(window.canvas, 100, 100) == (215, 215, 218)  # faint
    assert canvas_rgb(window.canvas, 40, 40) == QColor(colors["cat"]).getRgb()[:3]
    messages: list[str] = []
    window.canvas.message.connect(messages.append)
    window.canvas.set_tool("relabel")
    click_canvas(window.canvas, 40, 40)
    assert messages == [RASTER_NOTE] and window.document.undo_stack.count() == 1


# -- persistence and export --------------------------------------------------------------------
def test_labels_survive_save_open_and_autosave(
    window: MainWindow, make_window: Callable[..., MainWindow], qtbot: Any, tmp_path: Path
) -> None:
    scene = window.scene
    scene.add_labels(QUADRANTS)
    scene.set_label_color("sun", "#abcdef")
    run_labelling(window, qtbot)
    scene.relabel_stroke("tl", "dog")
    assert window.autosaver.save_now()
    saved = json.loads(window.autosaver.file.read_text(encoding="utf-8"))["sketch"]
    assert saved["metadata"]["labels"][3] == {"name": "sun", "color": "#abcdef"}
    path = tmp_path / "scene.json"
    assert window.save_to(path)

    other = make_window()
    assert other.open_path(path)
    assert other.scene.entries == scene.entries
    assert labels_of(other) == ["dog", *TRUTH[1:]]
    assert T.hand_labelled(other.document.sketch) == {"tl"}
    assert other.scene_panel.model.index(1).data() == "dog (2)"


def test_export_writes_the_files(
    window: MainWindow, backbone: GatedBackbone, qtbot: Any, tmp_path: Path
) -> None:
    scene, panel = window.scene, window.scene_panel
    scene.add_labels(QUADRANTS)
    out = tmp_path / "new" / "out"  # not there yet: the export makes it
    panel._ask_export_folder = lambda start: out  # type: ignore[method-assign]
    written: list[list[Path]] = []
    scene.exported.connect(written.append)
    calls = backbone.calls
    panel.actions_by_name["export"].trigger()  # nothing labelled: nothing run, nothing written
    assert not written and backbone.calls == calls and not scene.is_busy
    assert "press Label first" in panel.status_label.text()
    run_labelling(window, qtbot)
    calls = backbone.calls
    panel.actions_by_name["export"].trigger()
    assert len(written) == 1 and backbone.calls == calls
    names = {p.name for p in written[0]}
    assert {"labelled.json", "labelled.svg", "label_map.png", "strokes.csv"} <= names
    assert {f"isolated-{n}.png" for n in QUADRANTS} <= names
    assert all((out / n).is_file() for n in names)

    scene.relabel_stroke("tl", "dog")  # a hand label is exported as it is shown
    scene.set_label_color("dog", "#010203")
    panel.actions_by_name["export"].trigger()  # the labelling still fits: written at once
    assert len(written) == 2
    doc = json.loads((out / "labelled.json").read_text(encoding="utf-8"))
    assert [s["label"] for s in doc["strokes"]] == ["dog", *TRUTH[1:]]
    meta = doc["metadata"]["scene_labels"]
    assert meta["labels"] == QUADRANTS and meta["colors"][1] == "#010203"
    assert meta["hand_labelled"] == ["tl"]
    rows = (out / "strokes.csv").read_text(encoding="utf-8").splitlines()
    assert rows[1].split(",")[1:3] == ["tl", "dog"]

    # An edit after the labelling: the export writes what is shown, the labeller is not run.
    shown = window.document.sketch
    window.document.apply(SketchEdit.add(shown, [Stroke(ring(98, 42, 4), id="new")]), "Draw")
    calls = backbone.calls
    panel.actions_by_name["export"].trigger()
    assert len(written) == 3 and backbone.calls == calls and not scene.is_busy
    assert labels_of(window) == ["dog", *TRUTH[1:], None]  # the labels on screen unchanged
    doc = json.loads((out / "labelled.json").read_text(encoding="utf-8"))
    assert [s.get("label") for s in doc["strokes"]] == ["dog", *TRUTH[1:], None]
    assert doc["metadata"]["scene_labels"]["backbone"] is None


def test_spg_part_labels_show_as_coloured_labels_and_export(
    window: MainWindow, backbone: GatedBackbone, qtbot: Any, tmp_path: Path
) -> None:
    from PIL import Image

    parts = ["head", "body", "legs"]
    (tmp_path / "cat.txt").write_text("\n".join(parts) + "\n", encoding="utf-8")
    strokes = [
        [[10, 60, 110], [10, 20, 10], [0, 0, 0]],  # head
        [[20, 120, 120, 20], [60, 60, 140, 140], [1, 1, 1, 0]],  # body (mostly)
        [[40, 40], [150, 240], [2, 2]],  # legs
    ]
    line = json.dumps({"key_id": "1", "drawing": strokes})
    (tmp_path / "cat.ndjson").write_text(line + "\n", encoding="utf-8")
    assert window.open_path(tmp_path / "cat.ndjson")
    assert labels_of(window) == ["head", "body", "legs"]
    scene = window.scene
    assert scene.names == ("head", "body", "legs")
    assert [scene.count(n) for n in parts] == [1, 1, 1]
    legend = window.scene_panel.list_view.model()
    assert legend.rowCount() >= 3
    colors = [e.color for e in scene.entries]
    assert len(set(colors)) == 3
    assert canvas_rgb(window.canvas, 60, 20) == QColor(colors[0]).getRgb()[:3]  # head's colour
    out = tmp_path / "labels"
    calls = backbone.calls
    assert scene.export_labels(out) and backbone.calls == calls  # no labeller run
    doc = json.loads((out / "labelled.json").read_text(encoding="utf-8"))
    assert [s["label"] for s in doc["strokes"]] == parts
    legs = np.asarray(Image.open(out / "isolated-legs.png")) > 0
    head = np.asarray(Image.open(out / "isolated-head.png")) > 0
    assert legs.any() and head.any() and not (legs & head).any()


def test_export_failure_names_the_path_and_reason(
    window: MainWindow, qtbot: Any, tmp_path: Path
) -> None:
    window.scene.add_labels(QUADRANTS)
    run_labelling(window, qtbot)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert not window.scene.export_labels(blocker / "out")
    title, text = window.errors[-1]
    assert title == "Cannot export labels"
    assert str(blocker / "out") in text and "Reason:" in text


def test_label_swatch_border_lies_on_whole_pixels(qapp: QApplication) -> None:
    """The swatch's 1-px border sits on the outermost pixels, alike on all sides. (Drawn from
    four floats, PySide6 took the int overload: the square moved half a pixel up-left, with a
    half-covered left edge and a faint right one.)"""
    from sketchpad.ui.scene.labels_model import swatch

    size = 14
    image = swatch("#ff0000", size).pixmap(size, size).toImage()
    mid = size // 2
    edges = [
        image.pixelColor(0, mid), image.pixelColor(size - 1, mid),
        image.pixelColor(mid, 0), image.pixelColor(mid, size - 1),
    ]  # fmt: skip
    assert len({c.rgba() for c in edges}) == 1, [c.getRgb() for c in edges]
    assert edges[0].alpha() > 128 and edges[0].red() < 255  # the border: opaque-ish and dark
    assert image.pixelColor(1, mid).getRgb() == (255, 0, 0, 255)  # the fill, just inside
