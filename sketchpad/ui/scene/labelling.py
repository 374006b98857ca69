"""Scene labelling in the window: the label table, labelling runs, isolation, hand relabels and
exports, for one :class:`~sketchpad.ui.canvas.document.Document` shown on one canvas. No
widgets: the panel (:mod:`sketchpad.ui.scene.panel`) is a view of this controller.

Every change of the drawing is one undoable step on the document's stack and is saved with the
drawing (:mod:`sketchpad.ui.scene.edits` makes them;
:mod:`sketchpad.workspace.scene_label_table` says how they are stored):

- adding, removing, renaming and recolouring labels edit ``metadata["labels"]``; removing or
  renaming a label also relabels its strokes, in the same step;
- a labelling result sets ``Stroke.label`` of every stroke whose label changes ("Label
  strokes"), except strokes labelled by hand;
- a hand relabel sets one stroke's label and marks it hand-labelled ("Relabel stroke").

Runs go to a :class:`~sketchpad.engine.labelling.LabellingService` (requests on the one
inference engine, which labels with the CLIP model the user chose). A
result is applied only if the drawing's geometry and the label names are still those it was
asked for; otherwise it is dropped (and asked again when re-labelling after edits is on).
**Suggest** adds the labels :func:`~sketchpad.vision.scene_suggest.suggest_labels` proposes
(one step), as ``sketchpad label --suggest`` does: zero-shot with the labelling model, or by the
trained recognition head the user loaded (:attr:`SceneLabelling.recognition_head`, kept in the
preferences); a head that cannot be used is named in the status and zero-shot answers.
Re-labelling after edits waits for a pause (``AUTO_DELAY_MS``) after any
change of the strokes' geometry (a pen-up, an erase, an undo); label-only changes do not
trigger it, and its result is not applied while Redo is available (a new step would drop the
redo history; after an undo the strokes have the labels of that state already). Its labels join
the step that caused them (the user's stroke, erase …): one Ctrl+Z undoes both.

A bitmap sketch is labelled per ink component: its labels are not stroke fields, so they live
in the current result only, shown as an overlay (:mod:`sketchpad.ui.scene.overlay`) and
exported; hand relabelling is for drawings made of strokes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from PySide6.QtCore import QObject, QTimer, Signal

from sketchpad.engine.labelling import LabellingService
from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.model import Sketch
from sketchpad.ui.canvas.canvas import Canvas
from sketchpad.ui.canvas.document import Document
from sketchpad.ui.canvas.tools.relabel import RelabelTool
from sketchpad.ui.scene.edits import EditRefused, LabelEdits
from sketchpad.ui.scene.label_export import write_label_export
from sketchpad.ui.scene.overlay import label_overlay
from sketchpad.workspace import scene_label_table as T
from sketchpad.workspace.scene_label_table import GeometryKey, geometry_key

if TYPE_CHECKING:  # the engine's requests import OpenCV: not at start-up
    from sketchpad.engine.requests import LabelResult, SuggestResult

log = logging.getLogger(__name__)

AUTO_DELAY_MS = 600  # re-label after edits: this long after the last change
Trigger = Literal["user", "auto"]


class SceneLabelling(QObject):
    """See the module docstring.

    Args:
        document, canvas: the drawing and where it is shown.
        service: runs the labeller in the background.

    Signals: ``entriesChanged()`` (the table), ``countsChanged()`` (stroke labels),
    ``isolationChanged(object)`` (a label or None), ``resultChanged()``,
    ``busyChanged(bool)``, ``status(str)``, ``error(str title, str text)``,
    ``weightsError(str title, str text)`` (no usable CLIP weights: the window's dialog offers
    Import…, Download and Model Manager… buttons),
    ``exported(list)`` (the paths written), ``autoChanged(bool)``.
    """

    entriesChanged = Signal()
    countsChanged = Signal()
    isolationChanged = Signal(object)
    resultChanged = Signal()
    busyChanged = Signal(bool)
    status = Signal(str)
    error = Signal(str, str)
    weightsError = Signal(str, str)  # (title, text): the window offers buttons
    exported = Signal(list)
    autoChanged = Signal(bool)

    def __init__(
        self,
        document: Document,
        canvas: Canvas,
        service: LabellingService,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.canvas = canvas
        self.service = service
        self.edits = LabelEdits(document)
        self._entries: tuple[T.LabelEntry, ...] = T.effective_entries(document.sketch)
        self._result: LabelResult | None = None
        self._pending: dict[int, tuple[Trigger, GeometryKey]] = {}
        self._requested_key: GeometryKey | None = None
        self._epoch_generation = 0  # requests before the last document reset are dropped
        self._isolated: str | None = None
        self._threshold: float | None = None
        self._color_by_label = True
        self._auto = False
        self._keys: list[tuple[Sketch, GeometryKey]] = []
        self.ask_label: Callable[[str, float, float], str | None] | None = None
        #: a trained recognition head for Suggest (None: zero-shot)
        self.recognition_head: Path | None = None
        self.last_suggestions: SuggestResult | None = None
        self._suggest_wanted = False  # a suggestion asked for this drawing is on its way
        self._debounce = QTimer(self, singleShot=True, interval=AUTO_DELAY_MS)
        self._debounce.timeout.connect(lambda: self._request("auto"))
        document.sketchChanged.connect(self._on_sketch_changed)
        document.documentReset.connect(self._on_document_reset)
        service.resultReady.connect(self._on_result)
        service.failed.connect(self._on_failed)
        service.status.connect(self.status)
        service.busyChanged.connect(self.busyChanged)
        service.suggestionsReady.connect(self._on_suggestions)
        service.suggestFailed.connect(self._on_suggest_failed)
        tool = canvas.tool_object("relabel")
        assert isinstance(tool, RelabelTool)
        tool.on_click = self.stroke_clicked
        self._update_canvas()

    # -- state -------------------------------------------------------------------------------
    @property
    def entries(self) -> tuple[T.LabelEntry, ...]:
        """The effective label table, in order."""
        return self._entries

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self._entries)

    @property
    def isolated(self) -> str | None:
        return self._isolated

    @property
    def threshold(self) -> float | None:
        """The isolation threshold (bitmap overlay, exported masks); None: the default rule."""
        return self._threshold

    @property
    def is_busy(self) -> bool:
        return self.service.is_busy

    @property
    def result(self) -> LabelResult | None:
        """The last labelling applied (it may predate later edits: see :meth:`fresh_result`)."""
        return self._result

    def _key(self, sketch: Sketch) -> GeometryKey:
        """``geometry_key(sketch)``, remembered for the last two sketches asked about."""
        for known, key in self._keys:
            if known is sketch:
                return key
        key = geometry_key(sketch)
        self._keys = [(sketch, key), *self._keys[:1]]
        return key

    def fresh_result(self) -> LabelResult | None:
        """The last labelling if it still fits the drawing's geometry and label names."""
        r = self._result
        if r is None or r.request.labels != self.names:
            return None
        if self._key(r.request.sketch) != self._key(self.document.sketch):
            return None
        return r

    def count(self, name: str) -> int:
        """Strokes carrying label ``name`` (ink components, for a bitmap's fresh result)."""
        sketch = self.document.sketch
        if sketch.is_raster:
            r = self.fresh_result()
            return 0 if r is None else r.labels.stroke_label_names().count(name)
        return sum(1 for s in sketch.strokes if s.label == name)

    def unit(self, n: int) -> str:
        word = "ink component" if self.document.sketch.is_raster else "stroke"
        return word if n == 1 else word + "s"

    # -- the table and hand relabels (undoable, see LabelEdits) ------------------------------
    def _refusable(self, edit: Callable[[], bool]) -> bool:
        try:
            return edit()
        except EditRefused as e:
            self.status.emit(str(e))
            return False

    def add_labels(self, names: Iterable[str], text: str | None = None) -> list[str]:
        """Add the names not in the table yet (one step); the names added."""
        return self.edits.add_labels(names, text)

    def add_label(self, name: str | None = None) -> str | None:
        """Add one label (default: an unused "label N"); None if it is already there."""
        try:
            return self.edits.add_label(name)
        except EditRefused as e:
            self.status.emit(str(e))
            return None

    def remove_label(self, name: str) -> bool:
        """Remove a label; its strokes become unlabelled (one step)."""
        return self.edits.remove_label(name)

    def rename_label(self, old: str, new: str) -> bool:
        """Rename a label and its strokes (one step); refused with a message when ``new`` is
        another label's name."""
        was_isolated = self._isolated is not None and self._isolated == old
        done = self._refusable(lambda: self.edits.rename_label(old, new))
        if done and was_isolated:
            self.isolate(T.clean_name(new))
        return done

    def set_label_color(self, name: str, color: str) -> bool:
        """Give a label another colour (``#rrggbb``, one step)."""
        return self.edits.set_label_color(name, color)

    def propose_from_caption(self, caption: str) -> list[str]:
        """Add the vocabulary names ``caption`` mentions (one step); the names added."""
        from sketchpad.vision.scene_vocab import load_vocabulary

        found = load_vocabulary().labels_from_caption(caption)
        if not found:
            self.status.emit(
                "The caption names nothing in the vocabulary (COCO and Quick, Draw! categories):"
                " type the labels instead."
            )
            return []
        added = self.add_labels(found, "Propose labels from the caption")
        if not added:
            self.status.emit(f"Already in the list: {', '.join(found)}.")
        return added

    def suggest(self) -> int | None:
        """Ask for label suggestions for the drawing (in the background); the request's
        number, or None when there is nothing to suggest for (``status`` says why). The best
        name of each stroke group joins the list (one step) when they come."""
        sketch = self.document.sketch
        if sketch.bbox() is None:
            self.status.emit("Nothing to suggest labels for yet: draw or import a sketch.")
            return None
        head = self.recognition_head
        by = f"the recognition head {head.name}" if head is not None else "zero-shot"
        self.status.emit(f"Suggesting labels ({by})…")
        try:
            number = self.service.suggest(sketch, head)
        except RuntimeError as e:
            self.status.emit(str(e))
            return None
        self._suggest_wanted = True
        return number

    def _on_suggestions(self, result: SuggestResult) -> None:
        if not self._suggest_wanted:
            return  # asked for the drawing that was open before
        self._suggest_wanted = False
        self.last_suggestions = result
        sug = result.suggestions
        proposed = sug.proposed_labels()
        added = self.add_labels(proposed, "Suggest labels") if proposed else []
        by = "" if sug.source == "zero-shot" else f" by {Path(sug.source).name}"
        best = ", ".join(f"{s.label} ({s.probability:.0%})" for s in sug.whole)
        text = f"Suggested{by}: {best}."
        if proposed and not added:
            text += " Already in the list."
        if result.note:
            text += f" ({result.note})"
        self.status.emit(text)

    def _on_suggest_failed(self, kind: str, message: str) -> None:
        if not self._suggest_wanted:
            return
        self._suggest_wanted = False
        if kind == "weights":
            from sketchpad.ui.models.banner import for_window

            title = "Suggestion model not available"
            text = (
                "Zero-shot suggestions need the weights of a CLIP model, which could not be "
                f"used.\n\n{for_window(message)}"
            )
            self.status.emit(title)
            self.weightsError.emit(title, text)
            return
        title = "Cannot suggest labels" if kind == "input" else "Suggesting labels failed"
        self.status.emit(f"{title}: {message}")
        if kind != "input":
            self.error.emit(title, message)

    def relabel_stroke(self, stroke_id: str, label: str | None) -> bool:
        """Give one stroke ``label`` by hand (None: unlabelled; ``UNPIN``: back to the
        labeller, with its label from the current result), one step."""
        r = self.fresh_result()
        return self._refusable(
            lambda: self.edits.relabel_stroke(stroke_id, label, r.labels if r else None)
        )

    def stroke_clicked(self, stroke_id: str, x: float, y: float) -> None:
        """The relabel tool's click: the isolated label if there is one, else ask."""
        if self._isolated is not None:
            self.relabel_stroke(stroke_id, self._isolated)
            return
        if self.ask_label is None:
            self.status.emit("Click a label in the list first, then click strokes to relabel.")
            return
        choice = self.ask_label(stroke_id, x, y)
        if choice is not None:
            self.relabel_stroke(stroke_id, None if choice == "" else choice)

    # -- isolation and display ---------------------------------------------------------------
    def isolate(self, name: str | None) -> None:
        """Show only label ``name`` (others faint); None shows all."""
        if name is not None and T.find(self._entries, name) is None:
            name = None
        if name != self._isolated:
            self._isolated = name
            self._update_canvas()
            self.isolationChanged.emit(name)

    def toggle_isolation(self, name: str) -> None:
        """A click on a legend entry: isolate it, or show all if it already is."""
        self.isolate(None if self._isolated == name else name)

    def set_threshold(self, threshold: float | None) -> None:
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1] or None, got {threshold!r}")
        if threshold != self._threshold:
            self._threshold = threshold
            self._update_canvas()

    @property
    def color_by_label(self) -> bool:
        return self._color_by_label

    def set_color_by_label(self, on: bool) -> None:
        if on != self._color_by_label:
            self._color_by_label = on
            self._update_canvas()

    def _update_canvas(self) -> None:
        colors = T.color_map(self._entries)
        self.canvas.set_label_style(colors if self._color_by_label else None, self._isolated)
        r = self.fresh_result()
        if (
            self.document.sketch.is_raster
            and r is not None
            and (self._color_by_label or self._isolated is not None)
        ):
            palette = [colors.get(n, T.DEFAULT_PALETTE[0]) for n in r.labels.labels]
            image, rect = label_overlay(r.labels, palette, self._isolated, self._threshold)
            self.canvas.set_overlay(image, rect)
        else:
            self.canvas.set_overlay(None)

    # -- runs --------------------------------------------------------------------------------
    @property
    def auto_relabel(self) -> bool:
        return self._auto

    def set_auto_relabel(self, on: bool) -> None:
        """Re-label after every edit of the strokes (after a short pause)."""
        if on == self._auto:
            return
        self._auto = on
        self.autoChanged.emit(on)
        if on and self._key(self.document.sketch) != self._requested_key:
            self._debounce.start()
        elif not on:
            self._debounce.stop()

    def label_now(self) -> int | None:
        """Label the drawing with the table's labels in the background; the request's
        generation, or None when there is nothing to do (the reason goes to ``status``)."""
        return self._request("user")

    def _request(self, trigger: Trigger) -> int | None:
        self._debounce.stop()
        sketch, names = self.document.sketch, self.names
        if not names:
            self.status.emit(
                "Add labels first: type them in the list or propose them from a caption."
            )
            return None
        if sketch.bbox() is None:
            self.status.emit("Nothing to label yet: draw or import a scene sketch.")
            return None
        key = self._key(sketch)
        self._requested_key = key
        gen = self.service.request(sketch, names)
        self._pending[gen] = (trigger, key)
        return gen

    def _on_result(self, result: LabelResult) -> None:
        unasked: tuple[Trigger, GeometryKey | None] = ("user", None)
        trigger, key = self._pending.pop(result.request.generation, unasked)
        self._pending.clear()
        if result.request.generation <= self._epoch_generation:
            return  # asked for the drawing that was open before
        sketch = self.document.sketch
        if key != self._key(sketch) or result.request.labels != self.names:
            if self._auto:
                self._debounce.start()
            else:
                self.status.emit(
                    "The drawing or its labels changed while it was being "
                    "labelled: press Label again."
                )
            return
        labels = result.labels
        if not sketch.is_raster:
            new = dict(zip(labels.stroke_ids, labels.stroke_label_names(), strict=True))
            repl = T.relabelled(sketch, new, keep=T.hand_labelled(sketch))
            if repl and trigger == "auto" and self.document.undo_stack.canRedo():
                # A step pushed now would drop the redo history; after an undo the strokes
                # already have the labels they had in that state.
                self.status.emit(
                    "Labels left as they were, so that Redo stays available: "
                    "press Label to update them."
                )
                return
            edit = SketchEdit.replace(sketch, repl)
            # Automatic labels belong to the edit that caused them: one undo step.
            if trigger != "auto" or not self.document.amend_last(edit):
                self.document.apply(edit, "Label strokes")
        self._result = result
        self._update_canvas()
        self.countsChanged.emit()
        self.resultChanged.emit()
        n = len(labels.stroke_ids)
        self.status.emit(
            f"Labelled {n} {self.unit(n)} with {len(labels.labels)} labels in "
            f"{result.seconds:.1f} s ({result.backbone_id})."
        )

    def _on_failed(self, generation: int, kind: str, message: str) -> None:
        trigger, _ = self._pending.pop(generation, ("user", None))
        self._pending.clear()
        if generation <= self._epoch_generation:
            return
        if kind == "weights":
            from sketchpad.ui.models.banner import for_window

            title = "Labelling model not available"
            text = (
                "Scene labelling needs the weights of a CLIP model, which could not be "
                f"used.\n\n{for_window(message)}\n\nThen press Label again."
            )
        elif kind == "input":
            title, text = "Cannot label the drawing", message
        else:
            title = "Labelling failed"
            text = f"The labeller stopped with an error:\n\n{message}\n\nThe log has the details."
        if self._auto:
            self.set_auto_relabel(False)
            text += "\n\nRe-labelling after edits is now off."
        self.status.emit(title)
        (self.weightsError if kind == "weights" else self.error).emit(title, text)

    # -- document signals --------------------------------------------------------------------
    def _on_sketch_changed(self) -> None:
        sketch = self.document.sketch
        entries = T.effective_entries(sketch)
        if entries != self._entries:
            self._entries = entries
            self.entriesChanged.emit()
            if self._isolated is not None and T.find(entries, self._isolated) is None:
                self._isolated = None
                self.isolationChanged.emit(None)
        self.countsChanged.emit()
        self._update_canvas()
        if self._auto and self._key(sketch) != self._requested_key:
            self._debounce.start()

    def _on_document_reset(self) -> None:
        self._debounce.stop()
        self._suggest_wanted = False
        self._pending.clear()
        self._epoch_generation = self.service.latest_generation
        self._result = None
        self._requested_key = None
        self._isolated = None
        self._on_sketch_changed()
        self.isolationChanged.emit(None)
        self.resultChanged.emit()

    # -- export ------------------------------------------------------------------------------
    def export_labels(self, folder: Path) -> bool:
        """Write the labelled drawing as it is shown into ``folder``, created if needed (JSON,
        SVG, label map, CSV, isolation masks; each atomically). It never runs the labeller:
        with a labelling that fits the drawing, that one (with the hand relabels); otherwise
        the strokes' own labels (imported, or given by hand). True when written."""
        return self._write_export(Path(folder))

    def _write_export(self, folder: Path) -> bool:
        from sketchpad.atomic import SaveError

        sketch = self.document.sketch
        r = self.fresh_result()
        if r is None and (sketch.is_raster or not any(s.label for s in sketch.strokes)):
            self.status.emit("Nothing is labelled yet: press Label first, then export.")
            return False
        try:
            written = write_label_export(folder, sketch, r, self._entries, self._threshold)
        except SaveError as e:
            log.warning("label export failed: %s", e)
            self.error.emit(
                "Cannot export labels",
                f"The labels could not be written to\n{e.path}\n\nReason: {e.reason}.\n\n"
                "Files written before it are complete; the drawing is unchanged.",
            )
            return False
        except ValueError as e:
            self.error.emit("Cannot export labels", f"{e}\n\nFolder: {folder}")
            return False
        self.status.emit(f"Exported {len(written)} files to {folder}")
        log.info("exported labels to %s", folder)
        self.exported.emit(written)
        return True

    def shutdown(self) -> bool:
        """Stop background labelling (the window is closing; the engine is joined by the
        photo search that owns it)."""
        self._debounce.stop()
        return self.service.shutdown()
