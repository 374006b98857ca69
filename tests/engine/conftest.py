"""Fixtures for the engine tests: offscreen Qt, an isolated home (the feature cache goes under
tmp), generated photo folders, stand-in models, and engines that are always shut down and
joined."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from standins import Recorder, StandInLoader, make_photos

from sketchpad.engine.client import Engine
from sketchpad.gallery.query import BUDGET_ENV


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The feature cache (and everything else) under tmp."""
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    monkeypatch.delenv("SKETCHPAD_DEVICE", raising=False)
    return tmp_path / "home"


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def loader() -> StandInLoader:
    return StandInLoader()


@pytest.fixture
def photos(tmp_path: Path) -> Callable[[int], Path]:
    """photos(n) → a folder of n planted photos."""

    def make(n: int) -> Path:
        folder = tmp_path / f"photos{n}"
        make_photos(folder, n)
        return folder

    return make


@pytest.fixture
def make_engine(qapp: Any) -> Iterator[Callable[..., Engine]]:
    """make_engine(loader=None, **engine_options) → an Engine; every one is shut down and
    must join (a test that leaks a running thread fails)."""
    engines: list[Engine] = []

    def make(loader: Any = None, **kw: Any) -> Engine:
        e = Engine(loader=loader, **kw)
        engines.append(e)
        return e

    yield make
    for e in engines:
        assert e.shutdown(10.0), "the inference thread did not stop"
        assert not e.is_running


@pytest.fixture
def engine(make_engine: Callable[..., Engine], loader: StandInLoader) -> Engine:
    return make_engine(loader)


@pytest.fixture
def recorder(engine: Engine) -> Recorder:
    return Recorder(engine)
