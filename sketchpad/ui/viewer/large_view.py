"""The large view of one photo: the photo at full resolution, the query's mask over it (dense-CRF
refined), instance boxes with scores, zoom, pan, and prev/next through the gallery's order.
The drawing and zooming are :class:`~sketchpad.ui.viewer.photo_view.PhotoView`'s (frames:
photo pixels).

:meth:`PhotoViewer.show_photo` decodes the photo in a thread pool, shows the caller's quick mask
(thumbnail size) at once, and asks the engine for the full-resolution mask on the ``"viewer"``
channel ("refining edges…" until it comes). Answers of other channels or of older requests are
ignored; a newer query gives the photo a new mask. Errors (the engine's ``failed``, the
decoder's "cannot open x.jpg: reason") go to the status line, never raised. A mask's overlay
image is built once, in the pool when the mask is large.

**Match Points** (K, :mod:`sketchpad.ui.viewer.matcher`) shows the sketch being drawn beside
the photo: a click on either marks the matching point on the other, with a heat map.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from PySide6.QtCore import QObject, QPointF, Qt, QThreadPool, Signal, SignalInstance
from PySide6.QtGui import QAction, QImage, QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sketchpad.engine.client import Engine
from sketchpad.engine.requests import MaskResult, QueryResult
from sketchpad.gallery.images import PhotoError, load_photo
from sketchpad.gallery.review import FolderReview
from sketchpad.search.masks import PhotoMask
from sketchpad.sketch.model import Sketch
from sketchpad.ui.canvas.actions import ZOOM_STEP
from sketchpad.ui.shortcuts import Shortcut, action_rows, describe, pair_rows
from sketchpad.ui.viewer.photo_view import PhotoView, overlay_qimage, photo_qimage

log = logging.getLogger(__name__)

__all__ = ["CHANNEL", "PhotoViewer", "PhotoViewerDialog"]

CHANNEL = "viewer"  # the engine channel of the viewer's mask requests
SYNC_OVERLAY_PIXELS = 1 << 18  # overlays of masks up to this size are built on the GUI thread
ERROR_STYLE = "color: #c62828;"
Mod = Qt.KeyboardModifier
#: Where the full-resolution mask stands ("absent": the photo is not in the indexed gallery).
MaskState = Literal["none", "no-query", "pending", "done", "absent", "error"]


class _Relay(QObject):
    """The pool's jobs, and their results carried to the GUI thread. Jobs hold the relay, not
    the viewer; its tokens say which job is still wanted (a newer one makes older ones idle)."""

    photoLoaded = Signal(int, object, object)  # token, QImage | None, error str | None
    overlayBuilt = Signal(int, object, object, bool)  # token, PhotoMask, QImage, full

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.photo_token = 0
        self.overlay_token = 0

    def load(self, token: int, path: Path, name: str) -> None:
        """In the pool: decode the photo."""
        if token != self.photo_token:
            return  # another photo was asked for while this one waited
        image: QImage | None = None
        error: str | None = None
        try:
            image = photo_qimage(load_photo(path))
        except PhotoError as e:
            error = f"cannot open {name}: {e.reason}"
        except Exception as e:  # our bug; still shown, never lost in a pool thread
            log.exception("decoding %s failed", path)
            error = f"cannot open {name}: unexpected {type(e).__name__}: {e}"
        self._emit(lambda: self.photoLoaded, token, image, error)

    def build_overlay(self, token: int, mask: PhotoMask, full: bool) -> None:
        """In the pool: the overlay of a large mask."""
        if token == self.overlay_token:
            self._emit(lambda: self.overlayBuilt, token, mask, overlay_qimage(mask), full)

    @staticmethod
    def _emit(signal: Callable[[], SignalInstance], *args: object) -> None:
        try:
            signal().emit(*args)
        except RuntimeError:  # the viewer (and this relay) was deleted meanwhile
            log.debug("a photo viewer job ended after the viewer closed")


class PhotoViewer(QWidget):
    """One photo, large, with the current query's mask. See the module docstring.

    Args:
        engine: where full-resolution masks come from (None: the photo and quick masks only).
        parent: Qt parent.

    Signals:
        currentChanged(str): the photo shown changed (its name, relative to the folder).
    """

    currentChanged = Signal(str)

    def __init__(self, engine: Engine | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # The pool first: children are deleted in creation order, so it is joined (its
        # destructor waits) before the relay its jobs emit on goes.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._relay = _Relay(self)
        self._relay.photoLoaded.connect(self._on_photo_loaded)
        self._relay.overlayBuilt.connect(self._on_overlay_built)
        self._engine = engine
        self._folder: Path | None = None
        self._name: str | None = None
        self._sequence: tuple[str, ...] = ()
        self._positions: dict[str, int] = {}
        self._quick_masks: Callable[[str], PhotoMask | None] | None = None
        self._query_masks: Mapping[str, PhotoMask] = {}  # of the latest query result
        self._photo_hw: tuple[int, int] | None = None
        self._load_error: str | None = None
        self._mask: PhotoMask | None = None
        self._model_mask: PhotoMask | None = None  # the model's, before any correction
        self._review: FolderReview | None = None
        self._overlay_image: QImage | None = None  # the mask's tint, built once per mask
        self._mask_gen = -1  # the pending mask request, −1: none
        self._mask_query_gen = -1  # the query it was asked under
        self._mask_crf = True  # and its CRF setting
        self._failed_query = -1  # the latest query, when it failed
        self._mask_state: MaskState = "none"
        self._mask_error = ""
        self._mask_outdated = False  # a newer query came while hidden
        self._crf = True
        self._threshold = 0.5  # the gallery's: masks are cut here, matches counted here
        self._editor_note = ""  # the mask editor's last message, until the photo changes

        self.view = PhotoView(self)
        self.view.key_filter = self.handle_key
        self.actions_by_name = self._build_actions()
        from sketchpad.ui.viewer.mask_editor import MaskEditor

        self.editor = MaskEditor(self)
        self.editor.message.connect(self._on_editor_message)
        from sketchpad.ui.viewer.matcher import PointMatcher

        self.matcher = PointMatcher(self, engine)
        self.matcher.message.connect(self._on_editor_message)
        self.actions_by_name["match"] = self.matcher.action
        self.editor.toolChanged.connect(
            lambda tool: self.matcher.set_active(False) if tool != "view" else None
        )
        self.toolbar = QToolBar("Photo", self)
        for name in ("previous", "next", "|", "overlay", "boxes", "crf", "|", "zoom_out"):
            if name == "|":
                self.toolbar.addSeparator()
            else:
                self.toolbar.addAction(self.actions_by_name[name])
        for name in ("zoom_in", "fit", "zoom_100"):
            self.toolbar.addAction(self.actions_by_name[name])
        self.toolbar.addSeparator()
        edit = self.editor.actions_by_name
        for name in ("view", "brush", "eraser", "scribble", "undo", "redo", "reset", "|",
                     "accept", "reject", "unreview"):  # fmt: skip
            if name == "|":
                self.toolbar.addSeparator()
            else:
                self.toolbar.addAction(edit[name])
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.matcher.action)
        for name in ("accept", "reject"):  # the review verdicts keep their words
            button = self.toolbar.widgetForAction(edit[name])
            if isinstance(button, QToolButton):
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.status_label = QLabel(self)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.zoom_label = QLabel(self)
        self.view.zoomChanged.connect(lambda s: self.zoom_label.setText(f"{s * 100:.0f} %"))
        status = QHBoxLayout()
        status.setContentsMargins(6, 2, 6, 2)
        status.addWidget(self.status_label, 1)
        status.addWidget(self.zoom_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        middle = QHBoxLayout()  # the photo, and the sketch pane while matching points
        middle.setContentsMargins(0, 0, 0, 0)
        middle.setSpacing(0)
        middle.addWidget(self.view, 1)
        middle.addWidget(self.matcher.pane)
        layout.addLayout(middle, 1)
        layout.addLayout(status)
        if engine is not None:
            engine.masksFinished.connect(self._on_masks_finished)
            engine.queryFinished.connect(self._on_query_finished)
            engine.failed.connect(self._on_failed)
        self.actions_by_name["crf"].setEnabled(engine is not None)
        self._update_status()
        self._update_navigation()

    def _build_actions(self) -> dict[str, QAction]:
        # The keys are read by handle_key; describe() names them in the tooltip and for
        # Help ▸ Keyboard Shortcuts.
        def action(
            text: str, what: str, icon: str, keys: str, slot: Callable[[], object]
        ) -> QAction:
            a = QAction(text, self)
            describe(a, what, icon, keys)
            a.triggered.connect(lambda _checked=False: slot())
            return a

        def switch(
            text: str, what: str, icon: str, keys: str, slot: Callable[[bool], object]
        ) -> QAction:
            """A checkable action, on at first, that calls ``slot(checked)``."""
            a = QAction(text, self)
            describe(a, what, icon, keys)
            a.setCheckable(True)
            a.setChecked(True)
            a.toggled.connect(slot)
            return a

        return {
            "previous": action(
                "Previous", "show the previous photo", "previous", "Left", self.previous_photo
            ),
            "next": action("Next", "show the next photo", "next", "Right", self.next_photo),
            "overlay": switch(
                "Overlay",
                "show the mask over the photo",
                "overlay",
                "M",
                self.set_overlay_visible,
            ),  # fmt: skip
            "boxes": switch(
                "Boxes", "show the instance boxes", "boxes", "B", self.set_boxes_visible
            ),
            "crf": switch("CRF", "refine the mask's edges (dense CRF)", "crf", "", self.set_crf),
            "zoom_out": action("Zoom Out", "shrink the photo", "zoom_out", "-", self.zoom_out),
            "zoom_in": action("Zoom In", "magnify the photo", "zoom_in", "+", self.zoom_in),
            "fit": action("Fit", "fit the photo in the window", "fit", "0", self.zoom_fit),
            "zoom_100": action(
                "Actual Pixels",
                "one photo pixel per screen pixel",
                "zoom_100",
                "1",
                self.zoom_100,
            ),  # fmt: skip
        }

    # -- what is shown ---------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        """The photo shown (relative to its folder), or None."""
        return self._name

    @property
    def folder(self) -> Path | None:
        """The folder of the photo shown, or None."""
        return self._folder

    def set_sketch(self, sketch: Sketch | None) -> None:
        """The sketch being drawn, for Match Points (:mod:`sketchpad.ui.viewer.matcher`)."""
        self.matcher.set_sketch(sketch)

    @property
    def shown_mask(self) -> PhotoMask | None:
        """The mask shown over the photo (quick or full resolution, or the user's corrected
        one), or None."""
        return self._mask

    @property
    def model_mask(self) -> PhotoMask | None:
        """The model's mask for the photo (quick or full resolution), before any correction."""
        return self._model_mask

    def set_review(self, review: FolderReview | None) -> None:
        """The open folder's review: corrected masks are shown instead of the model's, and the
        editor's edits and accept/reject keys go there."""
        self._review = review
        self.editor.set_review(review)
        self.show_correction()

    def show_correction(self) -> None:
        """Show the photo's mask again after its correction changed (set, edited or reset)."""
        if self._model_mask is not None:
            self._show_mask(self._model_mask, full=self._mask_state == "done")
        elif self._name is not None and self._photo_hw is not None:
            corrected = self._corrected(None)
            if corrected is not None:
                self._show_mask(corrected, full=False)
            else:
                self._clear_mask()
                self._update_status()

    def _corrected(self, model: PhotoMask | None) -> PhotoMask | None:
        """The user's corrected mask of the photo shown, with the model's score, or None."""
        review, name, hw = self._review, self._name, self._photo_hw
        if review is None or name is None or not review.has_correction(name):
            return None
        pixels = review.corrected(name)
        if pixels is None or (hw is not None and pixels.shape != hw):
            return None
        from sketchpad.search.masks import corrected_mask

        score = model.score if model is not None else 0.0
        return corrected_mask(pixels, score=score, threshold=self._threshold)

    def _on_editor_message(self, text: str) -> None:
        self._editor_note = text
        self.update_status()

    @property
    def photo_size(self) -> tuple[int, int] | None:
        """(width, height) of the photo shown, or None while loading or after an error."""
        return None if self._photo_hw is None else (self._photo_hw[1], self._photo_hw[0])

    @property
    def mask_state(self) -> MaskState:
        """Where the full-resolution mask stands (see :data:`MaskState`)."""
        return self._mask_state

    @property
    def mask_request_generation(self) -> int:
        """The generation of the pending mask request (−1: none)."""
        return self._mask_gen

    def status_text(self) -> str:
        return self.status_label.text()

    def show_photo(
        self, folder: Path, name: str, *, quick_mask: PhotoMask | None = None, crf: bool = True
    ) -> None:
        """Show ``folder / name``: decoded off the GUI thread, with ``quick_mask`` (any size,
        stretched over the photo) at once, then the engine's full-resolution mask.

        Args:
            folder: the photo folder (the engine's open folder, for masks).
            name: the photo, relative to ``folder`` (as in the gallery and QueryResult.names).
            quick_mask: a mask already at hand (the thumbnail's), or None.
            crf: ask for the dense-CRF refined mask (sets the CRF toggle).
        """
        folder = Path(folder)
        changed = (folder, name) != (self._folder, self._name)
        self._editor_note = ""
        self._folder, self._name = folder, name
        self._relay.photo_token += 1
        self._pool.clear()  # queued loads and overlays of earlier photos
        self._photo_hw, self._load_error = None, None
        self.view.set_photo(None)
        self._clear_mask()
        self._set_crf_checked(crf)
        if quick_mask is not None:
            self._show_mask(quick_mask)
        relay, token = self._relay, self._relay.photo_token
        self._pool.start(lambda: relay.load(token, folder / name, name))
        self._request_mask()
        self._update_navigation()
        if changed:
            self.currentChanged.emit(name)

    def set_overlay_visible(self, visible: bool) -> None:
        """Show or hide the mask's tint."""
        self.view.set_overlay_visible(visible)
        self._check(self.actions_by_name["overlay"], visible)

    def set_boxes_visible(self, visible: bool) -> None:
        """Show or hide the instance boxes and their scores."""
        self.view.set_boxes_visible(visible)
        self._check(self.actions_by_name["boxes"], visible)

    @property
    def threshold(self) -> float:
        return self._threshold

    def set_threshold(self, threshold: float) -> None:
        """Cut the masks at ``threshold`` (the gallery's slider): the mask shown is re-cut
        here, from its probabilities; the score does not change."""
        t = float(threshold)
        if not 0.0 < t < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if t == self._threshold:
            return
        self._threshold = t
        if self._mask is not None:
            self._show_mask(self._mask, full=self._mask_state == "done")
        else:
            self._update_status()

    def set_crf(self, enabled: bool) -> None:
        """Turn dense-CRF refinement on or off; the photo's mask is asked for again."""
        self.refresh(crf=enabled)

    def refresh(self, *, crf: bool | None = None) -> None:
        """Ask for the photo's full-resolution mask unless the one shown or pending is of the
        latest query and the CRF setting already (the viewer follows new queries by itself).

        Args:
            crf: the new CRF setting, or None to keep it.
        """
        if crf is not None:
            self._set_crf_checked(crf)
        engine = self._engine
        current = (
            engine is not None
            and self._mask_state in ("pending", "done", "absent")
            and not self._mask_outdated
            and (self._mask_query_gen, self._mask_crf)
            == (engine.latest_query_generation, self._crf)
        )
        if self._name is not None and not current:
            self._request_mask()

    # -- navigation ------------------------------------------------------------------------
    def set_sequence(
        self, names: Sequence[str], *, quick_masks: Callable[[str], PhotoMask | None] | None = None
    ) -> None:
        """The photos Previous/Next step through (the gallery's current order).

        Args:
            names: photo names relative to the folder of the photo shown.
            quick_masks: name → the thumbnail mask at hand or None (default: the masks of the
                latest query result).
        """
        self._sequence = tuple(names)
        self._positions = {n: i for i, n in enumerate(self._sequence)}
        self._quick_masks = quick_masks
        self._update_navigation()

    def next_photo(self) -> bool:
        """Show the next photo of the sequence; False at its end (or outside it)."""
        return self._step(+1)

    def previous_photo(self) -> bool:
        """Show the previous photo of the sequence; False at its start (or outside it)."""
        return self._step(-1)

    def _neighbour(self, delta: int) -> str | None:
        i = self._positions.get(self._name) if self._name is not None else None
        if i is None or not 0 <= i + delta < len(self._sequence):
            return None
        return self._sequence[i + delta]

    def _step(self, delta: int) -> bool:
        name = self._neighbour(delta)
        if name is None or self._folder is None:
            return False
        quick = self._quick_masks(name) if self._quick_masks else self._query_masks.get(name)
        self.show_photo(self._folder, name, quick_mask=quick, crf=self._crf)
        return True

    def _update_navigation(self) -> None:
        self.actions_by_name["previous"].setEnabled(self._neighbour(-1) is not None)
        self.actions_by_name["next"].setEnabled(self._neighbour(+1) is not None)

    def handle_key(self, event: QKeyEvent) -> bool:
        """The viewer's keys: Left/Right step, +/− zoom, 0 fits, 1 is 100 %, M and B toggle
        the overlay and the boxes; the mask editor's (tools, review, undo) first. Returns
        whether the key was used. K (Match Points) and, while matching, Esc are the
        matcher's."""
        if self.matcher.handle_key(event):
            return True
        if self.editor.handle_key(event):
            return True
        K = Qt.Key
        keys: dict[Qt.Key, Callable[[], object]] = {
            K.Key_Left: self.previous_photo,
            K.Key_Right: self.next_photo,
            K.Key_Plus: self.zoom_in,
            K.Key_Equal: self.zoom_in,
            K.Key_Minus: self.zoom_out,
            K.Key_0: self.zoom_fit,
            K.Key_1: self.zoom_100,
            K.Key_M: lambda: self.set_overlay_visible(not self.view.overlay_visible),
            K.Key_B: lambda: self.set_boxes_visible(not self.view.boxes_visible),
        }
        slot = next((f for k, f in keys.items() if k.value == event.key()), None)
        if slot is None or event.modifiers() & ~(Mod.KeypadModifier | Mod.ShiftModifier):
            return False
        slot()
        return True

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if not self.handle_key(event):
            super().keyPressEvent(event)

    # -- zoom (the view's, for the toolbar and keys) ----------------------------------------
    def zoom(self) -> float:
        """View pixels per photo pixel (1.0 = 100 %)."""
        return self.view.zoom()

    def zoom_in(self) -> None:
        self.view.zoom_by(ZOOM_STEP)

    def zoom_out(self) -> None:
        self.view.zoom_by(1.0 / ZOOM_STEP)

    def zoom_fit(self) -> None:
        """The whole photo, centred; it stays fitted on resizes until the user zooms."""
        self.view.zoom_fit()

    def zoom_100(self) -> None:
        """Actual pixels, about the view's centre."""
        self.view.set_zoom(1.0)

    def zoom_by(self, factor: float, about: QPointF | None = None) -> None:
        """Multiply the zoom by ``factor`` about viewport point ``about`` (the wheel's)."""
        self.view.zoom_by(factor, about)

    # -- the photo and its masks -----------------------------------------------------------
    def _on_photo_loaded(self, token: int, image: QImage | None, error: str | None) -> None:
        if token != self._relay.photo_token:
            return
        if image is None:
            self._load_error = error or f"cannot open {self._name}"
            log.info("%s", self._load_error)
            self._clear_mask()
            self._mask_gen, self._mask_state = -1, "none"  # no answer can be shown any more
        else:
            self._photo_hw = (image.height(), image.width())
            self.view.set_photo(image)
            self.view.set_mask(self._mask, self._overlay_image)
        self._update_status()

    def _request_mask(self) -> None:
        engine = self._engine
        self._mask_gen, self._mask_outdated = -1, False
        if engine is None or self._name is None or self._load_error is not None:
            self._mask_state = "none"
        elif engine.latest_query_generation < 0:
            self._mask_state = "no-query"
        elif engine.latest_query_generation == self._failed_query:
            # The worker answers mask requests under answered queries only: none would come.
            self._mask_state, self._mask_error = "error", "the query failed"
        else:
            try:
                self._mask_query_gen, self._mask_crf = engine.latest_query_generation, self._crf
                self._mask_gen = engine.request_masks(
                    (self._name,),
                    side=None,
                    crf=self._crf,
                    channel=CHANNEL,
                    threshold=self._threshold,
                )
                self._mask_state = "pending"
            except RuntimeError as e:  # the engine was shut down
                self._mask_state, self._mask_error = "error", str(e)
        self._update_status()

    def _on_masks_finished(self, result: MaskResult) -> None:
        if result.channel != CHANNEL or result.generation != self._mask_gen:
            return  # another channel's, or an answer no longer asked for
        self._mask_gen = -1
        mask = result.masks.get(self._name or "")
        if mask is None:
            self._mask_state = "absent"
            self._update_status()
        else:
            self._show_mask(mask, full=True)

    def _on_failed(self, generation: int, message: str) -> None:
        if self._engine is not None and generation == self._engine.latest_query_generation:
            self._failed_query = generation
        if self._mask_gen >= 0 and generation in (self._mask_gen, self._mask_query_gen):
            self._mask_gen = -1
            self._mask_state, self._mask_error = "error", message
            self._update_status()

    def _on_query_finished(self, result: QueryResult) -> None:
        """A newer query: its thumbnail mask at once, and a new full-resolution one."""
        self._query_masks = result.masks
        if self._name is None or self._load_error is not None:
            return
        if self._folder is None or Path(result.folder).resolve() != self._folder.resolve():
            return
        if (quick := result.masks.get(self._name)) is not None:
            self._show_mask(quick)
        if self.isVisible():
            self.refresh()  # unless a refresh from the window asked under this query already
        else:  # asked for when shown again
            self._mask_state, self._mask_outdated = "pending", True

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if self._mask_outdated and self._name is not None:
            self._request_mask()
        self.view.setFocus()

    def _show_mask(self, mask: PhotoMask, *, full: bool = False) -> None:
        """Build the mask's overlay (in the pool when large), then show it; the user's corrected
        mask is shown in place of the model's."""
        if mask.threshold != self._threshold:
            from sketchpad.search.masks import rethreshold

            mask = rethreshold(mask, self._threshold)
        if not mask.corrected:
            self._model_mask = mask
            mask = self._corrected(mask) or mask
        self._relay.overlay_token += 1
        relay, token = self._relay, self._relay.overlay_token
        if mask.mask.size <= SYNC_OVERLAY_PIXELS:
            self._on_overlay_built(token, mask, overlay_qimage(mask), full)
        else:
            self._pool.start(lambda: relay.build_overlay(token, mask, full))

    def _on_overlay_built(self, token: int, mask: PhotoMask, image: QImage, full: bool) -> None:
        if token != self._relay.overlay_token or (full and self._mask_gen >= 0):
            return  # a newer mask was shown, or a newer full mask was asked for meanwhile
        self._mask, self._overlay_image = mask, image
        if full:
            self._mask_state = "done"
        self.view.set_mask(mask, image)
        self._update_status()

    def _clear_mask(self) -> None:
        self._relay.overlay_token += 1
        self._mask, self._overlay_image = None, None
        self._model_mask = None
        self.view.set_mask(None, None)

    # -- status ----------------------------------------------------------------------------
    def update_status(self) -> None:
        """Say again what is shown (after a review or correction changed)."""
        self._update_status()

    def _update_status(self) -> None:
        text, error = self._status()
        self.status_label.setText(text)
        self.status_label.setStyleSheet(ERROR_STYLE if error else "")

    def _status(self) -> tuple[str, bool]:
        if self._name is None:
            return "No photo", False
        if self._load_error is not None:
            return self._load_error, True
        hw = self._photo_hw
        parts = [self._name, "loading…" if hw is None else f"{hw[1]} × {hw[0]} px"]
        if (mask := self._mask) is not None:
            n = len(mask.instances)
            parts.append(f"score {mask.score:.2f}")
            if mask.score >= self._threshold:
                parts.append("match" + (f", {n} region{'' if n == 1 else 's'}" if n else ""))
            else:
                parts.append("no match")
        state = self._mask_state
        if state == "pending":
            parts.append("refining edges…" if self._crf else "full-resolution mask…")
        elif state == "done" and mask is not None:
            parts.append("refined" if mask.refined else "full resolution")
        elif state == "no-query":
            parts.append("no query yet: draw to see masks")
        elif state == "absent":
            parts.append("no mask: the photo is not in the indexed gallery")
        elif state == "error":
            parts.append(f"mask failed: {self._mask_error}")
        if mask is not None and mask.corrected:
            parts.append("corrected by hand")
        if self._review is not None and (review := self._review.state(self._name)):
            parts.append(review)
        if self._editor_note:
            parts.append(self._editor_note)
        return " — ".join(parts), state == "error"

    def _set_crf_checked(self, enabled: bool) -> None:
        self._crf = bool(enabled)
        self._check(self.actions_by_name["crf"], self._crf)

    @staticmethod
    def _check(action: QAction, on: bool) -> None:
        blocked = action.blockSignals(True)  # the state only: no toggled → no slot
        action.setChecked(on)
        action.blockSignals(blocked)

    def wait_until_idle(self, timeout_s: float = 10.0) -> bool:
        """Test hook: wait for the decoding and overlay jobs (not the engine); False on
        timeout. Their results arrive through the event loop afterwards."""
        return bool(self._pool.waitForDone(int(timeout_s * 1000)))


class PhotoViewerDialog(QDialog):
    """A window around a :class:`PhotoViewer` (non-modal; its title names the photo).

    Args:
        engine: as for PhotoViewer.
        parent: the main window.
    """

    def __init__(self, engine: Engine | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Photo")
        self.setWindowFlag(Qt.WindowType.WindowMaximizeButtonHint, True)
        self.setSizeGripEnabled(True)
        self.viewer = PhotoViewer(engine, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.viewer)
        self.viewer.currentChanged.connect(lambda name: self.setWindowTitle(f"{name} — Sketchpad"))
        self.resize(1000, 760)

    def open_photo(
        self, folder: Path, name: str, *, quick_mask: PhotoMask | None = None, crf: bool = True
    ) -> None:
        """Show the photo (see :meth:`PhotoViewer.show_photo`) and bring the window up."""
        self.viewer.show_photo(folder, name, quick_mask=quick_mask, crf=crf)
        self.show()
        self.raise_()
        self.activateWindow()

    def refresh(self, *, crf: bool | None = None) -> None:
        """See :meth:`PhotoViewer.refresh`."""
        self.viewer.refresh(crf=crf)


def large_view_rows(viewer: PhotoViewer | None = None) -> list[Shortcut]:
    """Help ▸ Keyboard Shortcuts rows of the large view and its mask correction, read from
    ``viewer``'s actions (from a hidden spare viewer while none has been opened)."""
    if viewer is None:
        spare = PhotoViewer(None)
        try:
            return large_view_rows(spare)
        finally:
            spare.editor.shutdown()
            spare.deleteLater()
    editor = viewer.editor
    group = "Large view: mask correction and review"
    return [
        *action_rows("Large view", viewer.actions_by_name.values()),
        *action_rows(group, editor.actions_by_name.values()),
        *pair_rows(group, editor.EXTRA_KEYS),
    ]
