"""Stand-ins for the engine tests: the reactive planted backbone (its sketch embedding depends
on where the ink is, its words on the colours they name) that can be slowed down, made to fail
or made to run out of memory; generated photo folders; a recorder of an engine's signals."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from planted import COLOUR_GALLERY, GALLERY, ReactiveBackbone, coloured_photo, photo

from sketchpad.engine.client import Engine
from sketchpad.engine.requests import LoadModel
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.vision.segmenter import Segmenter


class StandIn(ReactiveBackbone):
    """The reactive planted backbone with knobs.

    Attributes:
        photo_delay_s: sleep per photo forward (a slow model).
        sketch_delay_s: sleep per sketch forward.
        fail_next_sketch: the next sketch forward raises RuntimeError("injected failure").
        oom_above: pretend to be on a GPU that runs out of memory for batches larger than
            this (None: never); ``oom_sketch`` also for sketch forwards.
        sketch_calls: number of sketch forwards (counted by the reactive backbone).
        gate: when set to an Event, sketch forwards wait for it (a query held in flight).
    """

    def __init__(self) -> None:
        super().__init__(fine_tuned=True)
        self.photo_delay_s = 0.0
        self.sketch_delay_s = 0.0
        self.fail_next_sketch = False
        self.oom_above: int | None = None
        self.oom_sketch = False
        self.gate: threading.Event | None = None

    def fake_gpu(self, oom_above: int | None, *, sketch: bool = False) -> None:
        self.device = torch.device("cuda")  # a name only: nothing is moved there
        self.oom_above = oom_above
        self.oom_sketch = sketch

    def _maybe_oom(self, batch: int) -> None:
        if self.device.type == "cuda" and self.oom_above is not None and batch > self.oom_above:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {batch * 100} MiB (batch of {batch})"
            )

    def encode_global(self, x: torch.Tensor) -> torch.Tensor:
        self.sketch_calls += 1
        if self.oom_sketch:
            self._maybe_oom(x.shape[0])
        if self.fail_next_sketch:
            self.fail_next_sketch = False
            raise RuntimeError("injected failure")
        if self.gate is not None:
            assert self.gate.wait(10.0), "the test never opened the gate"
        time.sleep(self.sketch_delay_s)
        return self.sketch_embedding(x)

    def encode_patches(self, x: torch.Tensor, **kw: object) -> tuple[torch.Tensor, torch.Tensor]:
        self._maybe_oom(x.shape[0])
        time.sleep(self.photo_delay_s)
        return super().encode_patches(x, **kw)


class StandInLoader:
    """A loader for Engine: every LoadModel gets a segmenter on ``self.backbone``."""

    def __init__(self) -> None:
        self.backbone = StandIn()
        self.requests: list[LoadModel] = []

    def __call__(self, request: LoadModel, progress: Callable[[int, int | None], None]) -> Any:
        self.requests.append(request)
        progress(1 << 40, None)  # as a download would report (beyond 32 bits, total unknown)
        if request.backbone_id != "planted":
            raise KeyError(f"unknown backbone {request.backbone_id!r}; known: planted")
        return Segmenter(self.backbone)


def make_photos(folder: Path, n: int) -> list[str]:
    """``n`` planted photos (the GALLERY cycled) as PNGs; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        hw, boxes = GALLERY[i % len(GALLERY)]
        name = f"p{i:03d}.png"
        Image.fromarray(photo(hw, boxes)).save(folder / name)
        names.append(name)
    return names


def make_colour_photos(folder: Path) -> list[str]:
    """The COLOUR_GALLERY as PNGs (128 × 128); returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, objects in COLOUR_GALLERY.items():
        Image.fromarray(coloured_photo((128, 128), objects)).save(folder / name)
    return list(COLOUR_GALLERY)


def has_object(name: str) -> bool:
    """Whether the planted photo ``name`` (from make_photos) has red objects."""
    return bool(GALLERY[int(name[1:4]) % len(GALLERY)][1])


class Recorder:
    """Everything an engine emits, in order, as (signal name, args)."""

    def __init__(self, engine: Engine) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        for name in (
            "modelLoaded",
            "downloadProgress",
            "bankChanged",
            "indexProgress",
            "indexFinished",
            "queryFinished",
            "masksFinished",
            "failed",
            "notice",
            "busyChanged",
        ):
            getattr(engine, name).connect(self._record(name))

    def _record(self, name: str) -> Callable[..., None]:
        def slot(*args: Any) -> None:
            self.events.append((name, args))

        return slot

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [a for n, a in self.events if n == name]

    def names(self) -> list[str]:
        return [n for n, _ in self.events]


def sketch_at(x: float) -> Any:
    """A one-stroke sketch (distinct per ``x``, same planted embedding)."""
    pts = np.array([[x, 10.0], [x + 30.0, 40.0]])
    return Sketch(strokes=(Stroke(pts),), width=100, height=100)
