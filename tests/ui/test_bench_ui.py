"""``sketchpad bench ui``'s plumbing: the stall list names the garbage collector's passes that
overlapped each stall, the sampler looks at every thread, and a small run prints every figure
(no time is asserted)."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sketchpad.engine import heap
from sketchpad.ui import bench_ui
from sketchpad.ui.bench_ui import CollectorPass, CollectorPasses, StallSampler


def test_a_stall_names_the_collector_passes_that_overlapped_it() -> None:
    collector = CollectorPasses()
    clock_zero = 100.0  # perf_counter seconds at the tick clock's zero
    collector.passes += [
        CollectorPass(101.002, 209.0, 2, "decode_1"),  # inside the stall at 1000 ms
        CollectorPass(103.0, 50.0, 2, "sketchpad-scan"),  # after it
        CollectorPass(101.1, 1.0, 0, "MainThread"),  # inside, but too short to matter
    ]
    lines: list[str] = []
    long = [(1000, 211, 3), (5000, 120, 2)]
    bench_ui._report_stalls(lines.append, [211.0, 120.0, 1.0], long, 900.0, collector, clock_zero)
    stalls = lines[0]
    first, second = stalls.split("), ")
    assert "211 ms at +0.10 s (GUI CPU 3 ms; collector pass 209 ms, generation 2, in decode_1" in (
        first
    )
    assert "MainThread" not in first and "sketchpad-scan" not in first
    assert "120 ms at +4.10 s (GUI CPU 2 ms)" in second and "collector" not in second
    assert lines[1].startswith("  cyclic garbage collector: 3 passes (2 full)")
    assert "longest 209 ms (generation 2, thread decode_1)" in lines[1]
    assert "FAIL" in lines[2]


def test_collector_passes_are_timed_with_their_thread_until_stopped() -> None:
    collector = CollectorPasses()
    collector.start()
    try:
        gc.collect()
        t = threading.Thread(target=gc.collect, name="collecting-thread")
        t.start()
        t.join(10)
    finally:
        collector.stop()
    threads = {(p.generation, p.thread) for p in collector.passes}
    assert {(2, "MainThread"), (2, "collecting-thread")} <= threads
    assert all(p.ms >= 0 for p in collector.passes)
    n = len(collector.passes)
    gc.collect()
    assert len(collector.passes) == n  # stopped: no callback left behind


def _waiting_in_a_known_place(release: threading.Event, inside: threading.Event) -> None:
    inside.set()
    release.wait(10)


def test_the_sampler_reports_every_thread() -> None:
    release, inside = threading.Event(), threading.Event()
    t = threading.Thread(
        target=_waiting_in_a_known_place, args=(release, inside), name="held-worker"
    )
    t.start()
    try:
        assert inside.wait(10)
        sampler = StallSampler(lambda: 0.0)
        looking = threading.Thread(target=sampler.sample)  # as the sampler's own thread does
        looking.start()
        looking.join(10)
    finally:
        release.set()
        t.join(10)
    assert sum(sampler.places.values()) == 1  # the GUI (main) thread
    held = [k for k in sampler.others if k.startswith("held-worker: ")]
    assert held and " wait" in held[0]  # the innermost frames (none of sketchpad's here)
    # one sample: 5 ms there (other threads left by earlier tests may share a place, so the
    # held worker's own entry is the one to read)
    assert dict(sampler.top(n=len(sampler.others), others=True))[held[0]] == (
        bench_ui.TRACE_EVERY_S * 1000
    )


@pytest.fixture
def interpreter_restored() -> Iterator[None]:
    """The bench tunes the interpreter as the window does: undone afterwards."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
    heap.keep_long_lived(False)
    gc.unfreeze()
    gc.enable()


def test_a_small_run_prints_every_figure(
    qapp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interpreter_restored: None
) -> None:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    timed: list[str] = []

    class Recording(CollectorPasses):  # a short run may see no pass at all: record the calls
        def start(self) -> None:
            timed.append("start")
            super().start()

        def stop(self) -> None:
            timed.append("stop")
            super().stop()

    monkeypatch.setattr(bench_ui, "CollectorPasses", Recording)
    lines: list[str] = []
    assert bench_ui.run(photos=24, pen_ups=2, report=lines.append, workdir=tmp_path) == 0
    text = "\n".join(lines)
    for figure in (
        "indexed 24 photos",
        "stalls over 100 ms",
        "cyclic garbage collector: ",
        "longest stall",
        "total − query",
        "scrolling 24 photos",
    ):
        assert figure in text, f"{figure!r} missing from:\n{text}"
    assert timed == ["start", "stop"]  # around the measured phases
    assert heap.keeping_long_lived()  # the window's policy was on during the run
