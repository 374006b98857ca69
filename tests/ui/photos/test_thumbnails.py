"""ThumbnailCache: decodes off the GUI thread, lands on it, once per path, newest first, LRU,
failures remembered, obsolete generations dropped. Photos are generated under tmp_path."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QThread
from PySide6.QtGui import QColor

from sketchpad.gallery.thumbs import load_thumbnail
from sketchpad.ui.photos import thumbnails as thumbnails_module
from sketchpad.ui.photos.thumbnails import ThumbnailCache, rgb_to_qimage


def solid(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


class Recorder:
    """Wraps load_thumbnail: counts calls per path, records the order and thread, and can
    hold every decode at a gate until the test opens it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threads: set[int] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self._lock = threading.Lock()

    def __call__(self, path: Path, side: int) -> np.ndarray:
        with self._lock:
            self.calls.append(Path(path).name)
            self.threads.add(threading.get_ident())
        self.entered.release()
        assert self.gate.wait(10), "the test never opened the gate"
        return load_thumbnail(path, side)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(thumbnails_module, "load_thumbnail", rec)
    return rec


@pytest.fixture
def make_cache(qapp) -> Callable[..., ThumbnailCache]:
    made: list[ThumbnailCache] = []

    def make(**kw: object) -> ThumbnailCache:
        cache = ThumbnailCache(**kw)  # type: ignore[arg-type]
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.shutdown()


def test_rgb_to_qimage_owns_its_pixels(qapp) -> None:
    a = np.zeros((2, 3, 3), np.uint8)
    a[0, 0] = (255, 0, 0)
    a[1, 2] = (0, 0, 255)
    image = rgb_to_qimage(a)
    a[:] = 7  # the QImage must not share this buffer
    assert (image.width(), image.height()) == (3, 2)
    assert image.pixelColor(0, 0) == QColor(255, 0, 0)
    assert image.pixelColor(2, 1) == QColor(0, 0, 255)
    with pytest.raises(ValueError, match="uint8"):
        rgb_to_qimage(np.zeros((2, 3), np.uint8))


def test_get_schedules_then_ready_lands_on_the_gui_thread(qtbot, tmp_path, make_cache, recorder):
    path = solid(tmp_path / "red.png", (220, 20, 20), (200, 100))
    cache = make_cache(side=64)
    landed_on: list[QThread] = []
    cache.ready.connect(lambda p: landed_on.append(QThread.currentThread()))
    with qtbot.waitSignal(cache.ready, timeout=5000) as blocker:
        assert cache.get(path) is None
    assert blocker.args == [str(path)]
    assert landed_on == [qtbot_thread()]
    assert recorder.threads and threading.get_ident() not in recorder.threads
    image = cache.get(path)
    assert image is not None
    assert (image.width(), image.height()) == (64, 32)
    assert image.pixelColor(32, 16) == QColor(220, 20, 20)
    assert recorder.calls == ["red.png"]


def qtbot_thread() -> QThread:
    from PySide6.QtWidgets import QApplication

    return QApplication.instance().thread()


def test_exif_rotated_photo_has_the_rotated_size(qtbot, tmp_path, make_cache):
    path = tmp_path / "turned.jpg"
    im = Image.new("RGB", (200, 100), (20, 20, 220))
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned 90° clockwise: 100 wide, 200 high
    im.save(path, exif=exif)
    cache = make_cache(side=80)
    with qtbot.waitSignal(cache.ready, timeout=5000):
        cache.get(path)
    image = cache.get(path)
    assert (image.width(), image.height()) == (40, 80)


def test_a_broken_file_fails_once_and_is_not_retried(qtbot, tmp_path, make_cache, recorder):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 4)
    cache = make_cache(side=64)
    failures: list[tuple[str, str]] = []
    cache.failed.connect(lambda p, why: failures.append((p, why)))
    with qtbot.waitSignal(cache.failed, timeout=5000):
        cache.get(bad)
    for _ in range(5):  # painting it again
        assert cache.get(bad) is None
    assert cache.wait_for_done(5000)
    assert recorder.calls == ["bad.jpg"]
    assert len(failures) == 1 and failures[0][0] == str(bad)
    assert "truncated" in failures[0][1] and cache.failure(bad) == failures[0][1]
    cache.clear()  # a new folder load may try again
    assert cache.failure(bad) is None


def test_no_duplicate_jobs_for_a_path_in_flight(qtbot, tmp_path, make_cache, recorder):
    path = solid(tmp_path / "a.png", (10, 200, 10))
    recorder.gate.clear()
    cache = make_cache(side=32)
    cache.get(path)
    assert recorder.entered.acquire(timeout=5)  # decoding now
    for _ in range(10):
        assert cache.get(path) is None
    assert cache.pending() == 1
    recorder.gate.set()
    assert cache.wait_for_done(5000)
    assert recorder.calls == ["a.png"] and path in cache


def test_most_recently_requested_is_decoded_first(qtbot, tmp_path, make_cache, recorder):
    paths = [solid(tmp_path / f"p{i}.png", (i * 20, 0, 0)) for i in range(6)]
    recorder.gate.clear()
    cache = make_cache(side=32, threads=1)
    cache.get(paths[0])
    assert recorder.entered.acquire(timeout=5)  # p0 holds the only decoder
    for p in paths[1:]:
        cache.get(p)
    cache.get(paths[2])  # asked again: now the newest request
    recorder.gate.set()
    assert cache.wait_for_done(5000)
    assert recorder.calls == ["p0.png", "p2.png", "p5.png", "p4.png", "p3.png", "p1.png"]


def test_only_the_newest_requests_wait(qtbot, tmp_path, make_cache, recorder):
    paths = [solid(tmp_path / f"q{i}.png", (0, 0, i * 20)) for i in range(6)]
    recorder.gate.clear()
    cache = make_cache(side=32, threads=1, max_pending=2)
    cache.get(paths[0])
    assert recorder.entered.acquire(timeout=5)
    for p in paths[1:]:
        cache.get(p)
    recorder.gate.set()
    assert cache.wait_for_done(5000)
    assert recorder.calls == ["q0.png", "q5.png", "q4.png"]  # q1–q3 were scrolled past
    assert cache.get(paths[1]) is None  # asked again later: queued again
    assert cache.wait_for_done(5000) and paths[1] in cache


def test_lru_evicts_the_least_recently_used(qtbot, tmp_path, make_cache):
    a, b, c = (solid(tmp_path / f"{n}.png", (50, 50, 50)) for n in "abc")
    cache = make_cache(side=16, capacity=2)
    for p in (a, b):
        cache.get(p)
        assert cache.wait_for_done(5000)
    assert cache.get(a) is not None  # a is now more recent than b
    cache.get(c)
    assert cache.wait_for_done(5000)
    assert a in cache and c in cache and b not in cache
    assert len(cache) == 2


def test_results_of_a_cleared_generation_are_dropped(qtbot, tmp_path, make_cache, recorder):
    path = solid(tmp_path / "old.png", (200, 200, 0))
    recorder.gate.clear()
    cache = make_cache(side=32)
    ready: list[str] = []
    cache.ready.connect(ready.append)
    cache.get(path)
    assert recorder.entered.acquire(timeout=5)
    cache.clear()  # another folder was opened meanwhile
    recorder.gate.set()
    assert cache.wait_for_done(5000)
    assert ready == [] and path not in cache


def test_bad_arguments_are_refused(qapp) -> None:
    with pytest.raises(ValueError, match="side"):
        ThumbnailCache(side=0)
    with pytest.raises(ValueError, match="capacity"):
        ThumbnailCache(capacity=0)


def test_a_cache_dropped_mid_decode_goes_at_once_and_its_queue_with_it(qapp, tmp_path, recorder):
    """A cache whose last reference drops while a decode runs: before, the running decode held
    the cache, so the cache (and its pool, which waits for that very thread) was destroyed on
    the pool thread — the full test run ended in a segmentation fault that way. Now the cache
    goes on the GUI thread at once, the decode in hand lands nowhere, the queue behind it is
    not decoded, and a cache made afterwards still works."""
    import gc
    import weakref

    first = solid(tmp_path / "first.png", (10, 10, 200))
    second = solid(tmp_path / "second.png", (10, 200, 10))
    recorder.gate.clear()
    cache = ThumbnailCache(side=16, threads=1)
    cache.get(first)
    assert recorder.entered.acquire(timeout=5)  # the decode of `first` is running
    cache.get(second)  # queued behind it
    ref = weakref.ref(cache)
    opener = threading.Timer(0.05, recorder.gate.set)  # the pool's destructor waits for it
    opener.start()
    del cache
    gc.collect()
    opener.join()
    assert ref() is None
    qapp.processEvents()
    assert recorder.calls == ["first.png"]  # `second` was never decoded
    again = ThumbnailCache(side=16)
    try:
        again.get(second)
        assert again.wait_for_done(5000)
        assert second in again
    finally:
        again.shutdown()
