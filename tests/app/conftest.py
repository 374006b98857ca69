"""Fixtures for the app tests: an isolated home and QSettings, and main windows whose
dialogs are answered by the test instead of waiting for a person."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from qtevents import deliver_posted_events

from sketchpad.sketch.edit import SketchEdit
from sketchpad.sketch.model import Stroke
from sketchpad.ui.app import set_application_names


@pytest.fixture(autouse=True)
def sketchpad_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """All config, data, autosaves and logs go under a fresh folder."""
    home = tmp_path / "sketchpad-home"
    monkeypatch.setenv("SKETCHPAD_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def isolated_qsettings(tmp_path: Path, qapp: Any) -> Path:
    """QSettings (window geometry) in an INI file under tmp, never the user's."""
    folder = tmp_path / "qsettings"
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    set_application_names()
    return folder


class Dialogs:
    """Scripted answers to a window's questions, and a record of its error messages.

    ``answers[name]`` is a queue of answers for ``_ask_<name>``; a question without a
    scripted answer fails the test.
    """

    def __init__(self) -> None:
        self.answers: dict[str, deque[Any]] = defaultdict(deque)
        self.asked: list[str] = []
        self.errors: list[tuple[str, str]] = []

    def script(self, name: str, *answers: Any) -> None:
        self.answers[name].extend(answers)

    def answer(self, name: str, *args: Any) -> Any:
        self.asked.append(name)
        if not self.answers[name]:
            raise AssertionError(f"unexpected dialog _ask_{name}{args!r}")
        value = self.answers[name].popleft()
        return value(*args) if callable(value) else value


def _attach_dialogs(window: Any) -> Dialogs:
    d = Dialogs()
    window._ask_save_changes = lambda: d.answer("save_changes")
    window._ask_open_path = lambda title: d.answer("open_path", title)
    window._ask_save_path = lambda title, suggested, flt, suffix: d.answer(
        "save_path", title, suggested, flt, suffix
    )
    window._ask_drawing_index = lambda path, count: d.answer("drawing_index", path, count)
    window._ask_restore = lambda orphan: d.answer("restore", orphan)
    window._show_error = lambda title, text: d.errors.append((title, text))
    return d


@pytest.fixture
def make_window(qtbot: Any) -> Iterator[Callable[..., Any]]:
    """``make_window(**kwargs)`` → a MainWindow (autosave after 20 ms) with ``.dialogs``."""
    from sketchpad.ui.main_window import MainWindow

    windows: list[Any] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("autosave_delay_ms", 20)
        window = MainWindow(**kwargs)
        window.dialogs = _attach_dialogs(window)
        windows.append(window)  # closed below, not by qtbot (which closes before our teardown)
        return window

    yield make
    for window in windows:
        # Nothing to ask about at teardown: the test decided what happened to the drawing.
        window.document.undo_stack.setClean()
        window.close()
        window.deleteLater()
    deliver_posted_events()  # the deferred deletes


@pytest.fixture
def window(make_window: Callable[..., Any]) -> Any:
    return make_window()


def draw_strokes(document: Any, n: int = 2, seed: int = 0) -> None:
    """Add ``n`` strokes to ``document`` as one undoable edit each."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        pts = np.cumsum(rng.uniform(-5, 5, size=(12, 2)), axis=0) + 200
        document.apply(SketchEdit.add(document.sketch, [Stroke(points=pts)]), "Draw")


@pytest.fixture
def draw() -> Callable[..., None]:
    """``draw(document, n=2, seed=0)``: add strokes as undoable edits."""
    return draw_strokes
