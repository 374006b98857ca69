"""Correcting a photo's mask in the large view, and reviewing the photo (accept / reject).

Tools (keys in the large view): **P** brush adds to the mask, **E** eraser removes from it,
**G** scribbles re-segment the photo (left button: "this is the object", right button or
Shift: "this is background"; OpenCV's GrabCut from the query's map, see
:func:`sketchpad.search.correct.refine_with_scribbles`), **V** or Esc back to moving the photo.
**[** and **]** change the tool's size (screen pixels, so it feels the same at any zoom).
Every edit is one undo step (Ctrl+Z, Ctrl+Shift+Z) of the photo it was made on; **Reset Mask**
returns to the model's mask (undoable too). **A** accepts and **X** rejects the photo and shows
the next one; **U** clears its review.

A corrected mask is kept in the folder's review (:class:`sketchpad.gallery.review.FolderReview`,
in the user data folder, never the photo folder): it survives re-queries, threshold changes and
restarts, the gallery marks it, and every export writes it, until the user resets it.

The photo is edited at its own size. GrabCut runs on a worker thread; its answer is dropped when
the photo changed meanwhile.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QImage,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainterPath,
    QPen,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsView

from sketchpad.ui.shortcuts import describe

if TYPE_CHECKING:
    from sketchpad.gallery.review import FolderReview, ReviewState
    from sketchpad.ui.viewer.large_view import PhotoViewer

log = logging.getLogger(__name__)

Tool = Literal["view", "brush", "eraser", "scribble"]
TOOLS: tuple[Tool, ...] = ("view", "brush", "eraser", "scribble")
#: Tool size (radius, screen pixels): default, bounds, and the factor of one [ or ] press.
DEFAULT_RADIUS, MIN_RADIUS, MAX_RADIUS, RADIUS_STEP = 12.0, 1.0, 200.0, 1.25
_PREVIEW = {  # colour of a stroke while it is drawn
    "brush": QColor(255, 64, 64, 140),
    "eraser": QColor(255, 255, 255, 140),
    "object": QColor(46, 160, 67, 170),
    "background": QColor(30, 100, 220, 170),
}


def qimage_rgb(image: QImage) -> np.ndarray:
    """A QImage → (H, W, 3) uint8 RGB (a copy)."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w = rgb.height(), rgb.width()
    row = np.frombuffer(rgb.constBits(), np.uint8, count=rgb.bytesPerLine() * h)
    return row.reshape(h, rgb.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()


class _SetCorrection(QUndoCommand):
    """One edit of a photo's corrected mask (None: the model's mask)."""

    def __init__(
        self,
        editor: MaskEditor,
        name: str,
        before: np.ndarray | None,
        after: np.ndarray | None,
        text: str,
    ) -> None:
        super().__init__(text)
        self._editor, self._name, self._before, self._after = editor, name, before, after

    def redo(self) -> None:
        self._editor._store(self._name, self._after)

    def undo(self) -> None:
        self._editor._store(self._name, self._before)


class _Relay(QObject):
    """GrabCut's answer, carried to the GUI thread."""

    refined = Signal(int, object, str)  # token, (H, W) bool | None, error


class MaskEditor(QObject):
    """The large view's mask tools and review keys (see the module docstring).

    Args:
        viewer: the large view it edits in.

    Signals:
        correctionChanged(object): a photo's corrected mask was set, changed or reset (its
            name, an object so Qt keeps names with undecodable bytes whole).
        reviewChanged(object): a photo was accepted, rejected or cleared (its name).
        toolChanged(str): the tool now in use.
        message(str): a line for the status (what happened, or why it could not).
    """

    correctionChanged = Signal(object)
    reviewChanged = Signal(object)
    toolChanged = Signal(str)
    message = Signal(str)

    def __init__(self, viewer: PhotoViewer) -> None:
        super().__init__(viewer)
        self._viewer = viewer
        self._review: FolderReview | None = None
        self._tool: Tool = "view"
        self.radius = DEFAULT_RADIUS
        self._stacks: dict[str, QUndoStack] = {}
        self._stroke: list[QPointF] = []
        self._stroke_kind = ""
        self._preview = QGraphicsPathItem()
        self._preview.setZValue(10)
        self._preview.setVisible(False)
        viewer.view.scene().addItem(self._preview)
        # GrabCut: the scribbles of the current session (reset by another tool or photo).
        self._scribbles: dict[str, list[np.ndarray]] = {"object": [], "background": []}
        self._scribble_start: tuple[str, np.ndarray] | None = None  # (photo, prob at start)
        self._token = 0
        self._busy = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sketchpad-grabcut")
        self._relay = _Relay(self)
        self._relay.refined.connect(self._on_refined)
        viewer.view.viewport().installEventFilter(self)
        viewer.currentChanged.connect(lambda _name: self._new_photo())
        self.actions_by_name = self._build_actions()

    # -- set-up --------------------------------------------------------------------------------
    def _build_actions(self) -> dict[str, QAction]:
        parent = self._viewer

        def action(
            text: str, what: str, icon: str, keys: str, slot: object, checkable: bool = False
        ) -> QAction:
            # handle_key reads the keys; describe() names them in the tooltip and for
            # Help ▸ Keyboard Shortcuts.
            a = QAction(text, parent)
            describe(a, what, icon, keys)
            a.setCheckable(checkable)
            a.triggered.connect(slot)
            return a

        out = {
            "brush": action(
                "Brush", "paint onto the mask", "brush", "P",
                lambda: self.set_tool("brush"), True,
            ),
            "eraser": action(
                "Eraser", "erase from the mask", "eraser", "E",
                lambda: self.set_tool("eraser"), True,
            ),
            "scribble": action(
                "Scribble",
                "re-segment: scribble over the object (left button) and the background "
                "(right button or Shift)",
                "scribble",
                "G",
                lambda: self.set_tool("scribble"),
                True,
            ),
            "view": action(
                "Move", "move and zoom the photo", "pan", "V",
                lambda: self.set_tool("view"), True,
            ),
            "undo": action(
                "Undo Edit", "undo the last mask edit of this photo", "undo", "Ctrl+Z",
                self.undo,
            ),
            "redo": action("Redo Edit", "redo the mask edit", "redo", "Ctrl+Shift+Z", self.redo),
            "reset": action("Reset Mask", "go back to the model's mask", "reset", "", self.reset),
            "accept": action(
                "Accept",
                "accept this photo's mask and show the next",
                "accept",
                "A",
                lambda: self.review("accepted"),
            ),
            "reject": action(
                "Reject",
                "reject this photo (never exported) and show the next",
                "reject",
                "X",
                lambda: self.review("rejected"),
            ),
            "unreview": action(
                "Clear Review", "mark this photo not reviewed", "unreview", "U",
                lambda: self.review(None),
            ),
        }  # fmt: skip
        out["view"].setChecked(True)
        return out

    def set_review(self, review: FolderReview | None) -> None:
        """The open folder's review: where corrections and accept/reject go."""
        self._review = review
        for stack in self._stacks.values():
            stack.blockSignals(True)
        self._stacks.clear()
        self._new_photo()
        self._update_actions()

    @property
    def review_store(self) -> FolderReview | None:
        return self._review

    @property
    def tool(self) -> Tool:
        return self._tool

    def set_tool(self, tool: Tool) -> None:
        """Use ``tool``: "view" (move and zoom), "brush", "eraser" or "scribble"."""
        if tool not in TOOLS:
            raise ValueError(f"tool must be one of {TOOLS}, got {tool!r}")
        if tool != "scribble":
            self._end_scribbles()
        self._tool = tool
        for name in TOOLS:
            self.actions_by_name[name].setChecked(name == tool)
        view = self._viewer.view
        view.setDragMode(
            QGraphicsView.DragMode.ScrollHandDrag
            if tool == "view"
            else QGraphicsView.DragMode.NoDrag
        )
        view.viewport().setCursor(
            Qt.CursorShape.OpenHandCursor if tool == "view" else Qt.CursorShape.CrossCursor
        )
        self.toolChanged.emit(tool)
        self._update_actions()

    def set_radius(self, radius: float) -> None:
        self.radius = float(min(MAX_RADIUS, max(MIN_RADIUS, radius)))
        self.message.emit(f"tool size {self.radius:.0f} px")

    # -- state ---------------------------------------------------------------------------------
    def _stack(self, name: str) -> QUndoStack:
        stack = self._stacks.get(name)
        if stack is None:
            stack = self._stacks[name] = QUndoStack()  # Python-owned: dropped with the dict
            stack.indexChanged.connect(lambda _i: self._update_actions())
        return stack

    def current_pixels(self) -> np.ndarray | None:
        """The mask being edited, (H, W) bool at the photo's size: the correction if there is
        one, else the mask shown (scaled up from a quick mask), else empty. None without a
        photo."""
        viewer = self._viewer
        name, size = viewer.name, viewer.photo_size
        if name is None or size is None:
            return None
        hw = (size[1], size[0])
        if self._review is not None and (px := self._review.corrected(name)) is not None:
            if px.shape == hw:
                return px.copy()
        mask = viewer.model_mask
        if mask is None:
            return np.zeros(hw, bool)
        if mask.mask.shape == hw:
            return mask.mask.copy()
        import cv2

        big = cv2.resize(
            mask.mask.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST
        )
        return big.astype(bool)

    def _store(self, name: str, pixels: np.ndarray | None) -> None:
        """Keep ``pixels`` as ``name``'s corrected mask (None: reset), show and announce it."""
        from sketchpad.atomic import SaveError

        if self._review is None:
            return
        try:
            self._review.set_corrected(name, pixels)
        except SaveError as e:
            self.message.emit(f"The corrected mask was not saved: {e}")
            return
        if self._viewer.name == name:
            self._viewer.show_correction()
        self.correctionChanged.emit(name)

    def _edit(self, pixels: np.ndarray, text: str) -> None:
        name = self._viewer.name
        if name is None or self._review is None:
            return
        before = self._review.corrected(name)
        self._stack(name).push(
            _SetCorrection(self, name, None if before is None else before.copy(), pixels, text)
        )

    # -- commands ------------------------------------------------------------------------------
    def can_edit(self) -> str:
        """ "" when the photo shown can be edited, else why not."""
        if self._review is None:
            return "open a folder first"
        if self._viewer.name is None or self._viewer.photo_size is None:
            return "no photo is shown yet"
        return ""

    def undo(self) -> None:
        if (name := self._viewer.name) is not None and name in self._stacks:
            self._end_scribbles()
            self._stacks[name].undo()

    def redo(self) -> None:
        if (name := self._viewer.name) is not None and name in self._stacks:
            self._end_scribbles()
            self._stacks[name].redo()

    def reset(self) -> None:
        """Back to the model's mask (one undo step)."""
        name = self._viewer.name
        if name is None or self._review is None or not self._review.has_correction(name):
            return
        self._end_scribbles()
        before = self._review.corrected(name)
        self._stack(name).push(
            _SetCorrection(
                self, name, None if before is None else before.copy(), None, "Reset Mask"
            )
        )

    def review(self, state: ReviewState | None) -> bool:
        """Accept ("accepted"), reject ("rejected") or clear (None) the photo shown; after
        accepting or rejecting, the next photo is shown. Returns whether it was recorded."""
        from sketchpad.atomic import SaveError

        name = self._viewer.name
        if name is None or self._review is None:
            self.message.emit("Nothing to review: open a folder and a photo")
            return False
        try:
            self._review.set_state(name, state)
        except SaveError as e:
            self.message.emit(f"Review not saved: {e}")
            return False
        self.reviewChanged.emit(name)
        self._viewer.update_status()
        if state is not None:
            self._viewer.next_photo()
        return True

    def _update_actions(self) -> None:
        try:
            self._update_actions_now()
        except RuntimeError:  # the window is being torn down: nothing left to update
            pass

    def _update_actions_now(self) -> None:
        name = self._viewer.name
        stack = self._stacks.get(name) if name is not None else None
        self.actions_by_name["undo"].setEnabled(stack is not None and stack.canUndo())
        self.actions_by_name["redo"].setEnabled(stack is not None and stack.canRedo())
        corrected = (
            name is not None and self._review is not None and self._review.has_correction(name)
        )
        self.actions_by_name["reset"].setEnabled(corrected)

    def _new_photo(self) -> None:
        self._end_scribbles()
        self._stroke.clear()
        self._preview.setVisible(False)
        self._update_actions()

    # -- keys ----------------------------------------------------------------------------------
    # Keys handle_key reads that belong to no toolbar action: (keys, what), for Help.
    EXTRA_KEYS: tuple[tuple[str, str], ...] = (
        ("Esc", "Back to moving the photo"),
        ("[ / ]", "Smaller / larger brush"),
        ("Shift+drag", "Scribble over the background"),
    )

    def handle_key(self, event: QKeyEvent) -> bool:
        """The editor's keys (see the module docstring); True when used."""
        K, M = Qt.Key, Qt.KeyboardModifier
        key, mods = event.key(), event.modifiers() & ~M.KeypadModifier
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undo()
            return True
        if event.matches(QKeySequence.StandardKey.Redo):
            self.redo()
            return True
        if mods & ~M.ShiftModifier:
            return False
        plain: dict[int, object] = {
            K.Key_P.value: lambda: self.set_tool("brush"),
            K.Key_E.value: lambda: self.set_tool("eraser"),
            K.Key_G.value: lambda: self.set_tool("scribble"),
            K.Key_V.value: lambda: self.set_tool("view"),
            K.Key_Escape.value: lambda: self.set_tool("view"),
            K.Key_BracketLeft.value: lambda: self.set_radius(self.radius / RADIUS_STEP),
            K.Key_BracketRight.value: lambda: self.set_radius(self.radius * RADIUS_STEP),
            K.Key_A.value: lambda: self.review("accepted"),
            K.Key_X.value: lambda: self.review("rejected"),
            K.Key_U.value: lambda: self.review(None),
        }
        slot = plain.get(key)
        if slot is None:
            return False
        slot()  # type: ignore[operator]
        return True

    # -- strokes -------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if self._tool == "view" or not isinstance(event, QMouseEvent):
            return False
        t = event.type()
        if t == QEvent.Type.MouseButtonPress:
            return self._press(event)
        if t == QEvent.Type.MouseMove and self._stroke:
            self._extend(event)
            return True
        if t == QEvent.Type.MouseButtonRelease and self._stroke:
            self._extend(event)
            self._finish()
            return True
        return False

    def _photo_point(self, event: QMouseEvent) -> QPointF:
        return self._viewer.view.mapToScene(event.position().toPoint())

    def _press(self, event: QMouseEvent) -> bool:
        button = event.button()
        if button not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return False
        why = self.can_edit()
        if why:
            self.message.emit(f"Cannot edit the mask: {why}")
            return True
        if self._tool == "scribble":
            negative = button == Qt.MouseButton.RightButton or bool(
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier
            )
            self._stroke_kind = "background" if negative else "object"
        elif button != Qt.MouseButton.LeftButton:
            return True
        else:
            self._stroke_kind = self._tool
        self._stroke = [self._photo_point(event)]
        pen = QPen(_PREVIEW[self._stroke_kind], 2 * self._photo_radius())
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        self._preview.setPen(pen)
        self._update_preview()
        self._preview.setVisible(True)
        return True

    def _extend(self, event: QMouseEvent) -> None:
        p = self._photo_point(event)
        if not self._stroke or p != self._stroke[-1]:
            self._stroke.append(p)
        self._update_preview()

    def _update_preview(self) -> None:
        path = QPainterPath(self._stroke[0])
        for p in self._stroke[1:]:
            path.lineTo(p)
        if len(self._stroke) == 1:
            path.lineTo(self._stroke[0] + QPointF(0.01, 0))
        self._preview.setPath(path)

    def _photo_radius(self) -> float:
        """The tool's radius in photo pixels (it is set in screen pixels)."""
        return max(0.5, self.radius / max(1e-6, self._viewer.zoom()))

    def _finish(self) -> None:
        points = np.array([[p.x(), p.y()] for p in self._stroke], dtype=np.float64)
        kind = self._stroke_kind
        self._stroke = []
        self._preview.setVisible(False)
        current = self.current_pixels()
        if current is None:
            return
        from sketchpad.search.correct import paint

        radius = self._photo_radius()
        if kind in ("brush", "eraser"):
            self._edit(paint(current, points, radius, kind == "brush"), kind.capitalize())
            return
        self._scribble(points, kind, radius)

    # -- scribbles (GrabCut) -------------------------------------------------------------------
    def _end_scribbles(self) -> None:
        self._scribbles = {"object": [], "background": []}
        self._scribble_start = None
        self._token += 1  # a refinement still running is not wanted any more

    def _scribble(self, points: np.ndarray, kind: str, radius: float) -> None:
        from sketchpad.search.correct import refine_with_scribbles

        viewer, name = self._viewer, self._viewer.name
        image = viewer.view.photo_image()
        if name is None or image is None or image.isNull():
            return
        if self._scribble_start is None or self._scribble_start[0] != name:
            self._scribbles = {"object": [], "background": []}
            self._scribble_start = (name, self._start_prob())
        self._scribbles[kind].append(points)
        prob = self._scribble_start[1]
        threshold = viewer.threshold
        positive, negative = list(self._scribbles["object"]), list(self._scribbles["background"])
        self._token += 1
        token, relay = self._token, self._relay
        photo = qimage_rgb(image)
        self._busy = True
        self.message.emit("Re-segmenting from your scribbles…")

        def run() -> None:
            try:
                out = refine_with_scribbles(
                    photo, prob, threshold, positive=positive, negative=negative, radius=radius
                )
            except ValueError as e:
                relay.refined.emit(token, None, str(e))
                return
            except Exception as e:  # our bug: said, never lost in a worker thread
                log.exception("scribble refinement failed")
                relay.refined.emit(token, None, f"{type(e).__name__}: {e}")
                return
            try:
                relay.refined.emit(token, out, "")
            except RuntimeError:  # the window closed meanwhile
                pass

        self._pool.submit(run)

    def _start_prob(self) -> np.ndarray:
        """Where GrabCut starts: the correction as 0/1 if there is one, else the query's map at
        the photo's size (or the mask shown, scaled up)."""
        viewer, name = self._viewer, self._viewer.name
        size = viewer.photo_size
        assert name is not None and size is not None
        hw = (size[1], size[0])
        if self._review is not None and (px := self._review.corrected(name)) is not None:
            if px.shape == hw:
                return px.astype(np.float32)
        mask = viewer.model_mask
        if mask is not None and mask.prob.shape == hw:
            return mask.prob.astype(np.float32)
        current = self.current_pixels()
        assert current is not None
        return current.astype(np.float32)

    def _on_refined(self, token: int, pixels: np.ndarray | None, error: str) -> None:
        if token != self._token:
            return  # another photo, tool or newer scribble since
        self._busy = False
        if pixels is None:
            self.message.emit(f"Cannot re-segment: {error}")
            return
        self._edit(pixels, "Scribble")
        self.message.emit("Re-segmented from your scribbles")

    @property
    def busy(self) -> bool:
        """A scribble refinement is running."""
        return self._busy

    def wait_until_idle(self, timeout_s: float = 10.0) -> bool:
        """Test hook: wait for a running refinement (its answer arrives through the event loop
        afterwards)."""
        done = self._pool.submit(lambda: None)
        try:
            done.result(timeout=timeout_s)
        except TimeoutError:
            return False
        return True

    def shutdown(self) -> None:
        self._token += 1
        self._pool.shutdown(wait=True, cancel_futures=True)
