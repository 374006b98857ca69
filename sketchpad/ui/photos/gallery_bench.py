"""Measurements of the gallery pane for ``sketchpad bench ui``: scroll repaints and results.

Nothing here asserts a time: the functions return numbers, the benchmark command prints them.
Both run on the GUI thread of a shown pane, as a user's scrolling would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QListView

from sketchpad.ui.photos.gallery_pane import GalleryPane

if TYPE_CHECKING:
    from sketchpad.engine.requests import QueryResult


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {"max_ms": 0.0, "p99_ms": 0.0, "p50_ms": 0.0, "mean_ms": 0.0}
    return {
        "max_ms": float(a.max()),
        "p99_ms": float(np.percentile(a, 99)),
        "p50_ms": float(np.percentile(a, 50)),
        "mean_ms": float(a.mean()),
    }


def finish_layout(pane: GalleryPane) -> None:
    """Place every cell now (a batched layout otherwise ends over several event-loop passes,
    and the scroll range covers every row only at its end)."""
    view = pane.view
    mode = view.layoutMode()
    QCoreApplication.processEvents()
    view.setLayoutMode(QListView.LayoutMode.SinglePass)
    view.doItemsLayout()
    view.setLayoutMode(mode)
    QCoreApplication.processEvents()


def measure_scroll(pane: GalleryPane, steps: int = 200) -> dict[str, float]:
    """Scroll the pane's view from top to bottom in ``steps`` equal steps, repainting the
    viewport synchronously after each (``setValue`` + ``repaint``), and time every step.

    Thumbnails are decoded by the cache's pool meanwhile (painting only queues them), and
    the events they post are delivered between steps, as in real scrolling.

    Returns:
        ``steps`` (done), ``rows`` (cells in the view), ``max_ms``, ``p99_ms``, ``p50_ms``,
        ``mean_ms`` (per step: scroll + synchronous repaint), ``events_max_ms`` (the longest
        event-loop pass between steps: thumbnails landing, layout), ``total_s``.

    Raises:
        ValueError: ``steps`` < 1.
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    view = pane.view
    finish_layout(pane)
    bar = view.verticalScrollBar()
    top, bottom = bar.minimum(), bar.maximum()
    paint_ms: list[float] = []
    event_ms: list[float] = []
    start = time.perf_counter()
    for k in range(steps + 1):
        value = top + round((bottom - top) * k / steps)
        t0 = time.perf_counter()
        bar.setValue(value)
        view.viewport().repaint()
        t1 = time.perf_counter()
        QCoreApplication.processEvents()
        t2 = time.perf_counter()
        paint_ms.append((t1 - t0) * 1e3)
        event_ms.append((t2 - t1) * 1e3)
    out: dict[str, float] = {"steps": float(steps), "rows": float(pane.proxy.rowCount())}
    out.update(_stats(paint_ms))
    out["events_max_ms"] = float(max(event_ms))
    out["total_s"] = time.perf_counter() - start
    return out


def measure_apply_result(
    pane: GalleryPane, make_result: Callable[[int], QueryResult], repeats: int = 5
) -> dict[str, float]:
    """Time ``pane.apply_result`` (model update, re-sort, view layout change) for
    ``repeats`` results ``make_result(k)``, then the event-loop pass that follows (the view's
    relayout and repaint).

    Returns:
        ``max_ms``, ``p99_ms``, ``p50_ms``, ``mean_ms`` of ``apply_result`` alone, and
        ``events_max_ms``.
    """
    apply_ms: list[float] = []
    event_ms: list[float] = []
    for k in range(repeats):
        result = make_result(k)
        t0 = time.perf_counter()
        pane.apply_result(result)
        t1 = time.perf_counter()
        QCoreApplication.processEvents()
        t2 = time.perf_counter()
        apply_ms.append((t1 - t0) * 1e3)
        event_ms.append((t2 - t1) * 1e3)
    out = _stats(apply_ms)
    out["events_max_ms"] = float(max(event_ms, default=0.0))
    return out
