"""The persistent feature cache (DESIGN §5): round trips, identity, recovery from damaged,
foreign, outdated and other-model files, one writer at a time, and kill -9 while indexing."""

from __future__ import annotations

import inspect
import logging
import os
import queue
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sketchpad.gallery import cache_rows
from sketchpad.gallery.cache import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    CacheError,
    CacheLockedError,
    FeatureCache,
    ModelKey,
    cache_path,
)
from sketchpad.vision.features import PhotoFeatures
from sketchpad.vision.letterbox import fit_letterbox

ROOT = Path(__file__).resolve().parents[2]
KEY = ModelKey("test-clip-tiny", "ab" * 32, "test-clip-tiny|vit|224|letterbox-centre|vv")
OTHER = ModelKey("test-clip-tiny", "cd" * 32, KEY.preprocess)


def synthetic(seed: int, gh: int = 3, gw: int = 4, d: int = 16) -> PhotoFeatures:
    """Deterministic features: random L2-normalised fp16 patches (also run by child processes)."""
    rng = np.random.default_rng(seed)
    patches = rng.standard_normal((gh * gw, d))
    patches /= np.linalg.norm(patches, axis=1, keepdims=True)
    emb = rng.standard_normal(d).astype(np.float32)
    return PhotoFeatures(
        patches=patches.astype(np.float16),
        grid_hw=(gh, gw),
        global_embedding=emb / np.linalg.norm(emb),
        letterbox=fit_letterbox((100 + seed % 50, 150), 14 * max(gh, gw)),
        patch_size=14,
    )


def assert_same(a: PhotoFeatures | None, b: PhotoFeatures) -> None:
    assert a is not None
    assert a.patches.dtype == np.float16 and np.array_equal(a.patches, b.patches)
    assert a.global_embedding.dtype == np.float32
    assert np.array_equal(a.global_embedding, b.global_embedding)
    assert (a.grid_hw, a.letterbox, a.patch_size) == (b.grid_hw, b.letterbox, b.patch_size)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (photos / name).write_bytes(b"\xff\xd8 not really a jpeg")
    return photos


def listing(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


# -- rows ----------------------------------------------------------------------------------


def test_round_trip_is_exact_and_survives_reopening(folder: Path) -> None:
    f = synthetic(1)
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 10, 20, f)])
        assert_same(cache.get("a.jpg"), f)
        assert cache.get("missing.jpg") is None
        assert not cache.get("a.jpg").patches.flags.writeable  # views of the stored bytes
    with FeatureCache.open(folder, KEY, writer=False) as reader:
        assert_same(reader.get("a.jpg"), f)
        assert reader.paths() == {"a.jpg": (10, 20)} and len(reader) == 1


def test_float32_patches_are_stored_as_float16(folder: Path) -> None:
    f = synthetic(2)
    f32 = PhotoFeatures(
        f.patches.astype(np.float32), f.grid_hw, f.global_embedding, f.letterbox, f.patch_size
    )
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, f32)])
        assert_same(cache.get("a.jpg"), f)


@settings(max_examples=20, deadline=None)
@given(gh=st.integers(1, 6), gw=st.integers(1, 6), d=st.integers(1, 40), seed=st.integers(0, 99))
def test_round_trip_any_shape(
    tmp_path_factory: pytest.TempPathFactory, gh: int, gw: int, d: int, seed: int
) -> None:
    base = tmp_path_factory.mktemp("any")
    f = synthetic(seed, gh, gw, d)
    with FeatureCache.open(base / "photos", KEY, path=base / "c.sqlite") as cache:
        cache.put([("x.png", 1, 2, f)])
        assert_same(cache.get("x.png"), f)


def test_is_current_only_for_the_same_size_and_mtime(folder: Path) -> None:
    with FeatureCache.open(folder, KEY) as cache:
        assert not cache.is_current("a.jpg", 10, 20)
        cache.put([("a.jpg", 10, 20, synthetic(1))])
        assert cache.is_current("a.jpg", 10, 20)
        assert not cache.is_current("a.jpg", 11, 20)  # the file changed size
        assert not cache.is_current("a.jpg", 10, 21)  # … or was touched
        assert not cache.is_current("b.jpg", 10, 20)
        photo = folder / "b.jpg"
        st_ = photo.stat()
        cache.put([("b.jpg", st_.st_size, st_.st_mtime_ns, synthetic(2))])
        photo.write_bytes(photo.read_bytes() + b"edited")  # the photo changes on disk
        os.utime(photo, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000))
        st2 = photo.stat()
        assert cache.is_current("b.jpg", st_.st_size, st_.st_mtime_ns)
        assert not cache.is_current("b.jpg", st2.st_size, st2.st_mtime_ns)


def test_put_replaces_and_remove_deletes(folder: Path) -> None:
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, synthetic(1)), ("b.jpg", 2, 2, synthetic(2))])
        cache.put([("a.jpg", 5, 6, synthetic(3))])
        assert len(cache) == 2 and cache.paths() == {"a.jpg": (5, 6), "b.jpg": (2, 2)}
        assert_same(cache.get("a.jpg"), synthetic(3))
        assert not cache.is_current("a.jpg", 1, 1)
        assert cache.remove(["a.jpg", "a.jpg", "nope.jpg"]) == 1
        assert cache.remove([]) == 0
        assert cache.paths() == {"b.jpg": (2, 2)} and cache.get("a.jpg") is None


def test_put_is_all_or_nothing(folder: Path) -> None:
    bad = synthetic(2)
    bad.patches.flags.writeable = True
    bad.patches[0, 0] = np.inf
    with FeatureCache.open(folder, KEY) as cache:
        with pytest.raises(ValueError, match="b.jpg"):
            cache.put([("a.jpg", 1, 1, synthetic(1)), ("b.jpg", 1, 1, bad)])
        assert len(cache) == 0


def test_items_come_in_natural_order_across_chunks(folder: Path) -> None:
    names = [f"img{i}.jpg" for i in range(150)] + ["sub/IMG2.jpg", "sub/img10.jpg", "A.jpg"]
    names += ["sub-1.jpg"]  # after the folder "sub", as the folder scan orders it
    random.Random(0).shuffle(names)
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([(n, i, i, synthetic(i, 2, 2, 4)) for i, n in enumerate(names)])
        got = [n for n, _ in cache.items()]
        assert got[:3] == ["A.jpg", "img0.jpg", "img1.jpg"]
        assert got.index("img2.jpg") < got.index("img10.jpg") < got.index("img100.jpg")
        assert got[-3:] == ["sub/IMG2.jpg", "sub/img10.jpg", "sub-1.jpg"]
        assert len(got) == len(names)
        by_name = dict(cache.items())
        assert_same(by_name[names[7]], synthetic(7, 2, 2, 4))


def test_a_row_that_does_not_fit_its_shape_is_dropped(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, synthetic(1)), ("b.jpg", 1, 1, synthetic(2))])
        with sqlite3.connect(cache.path) as raw:
            raw.execute(
                "UPDATE features SET patches = x'0000' WHERE rel_path = CAST('a.jpg' AS BLOB)"
            )
        raw.close()
        assert not cache.is_current("a.jpg", 1, 1) and "a.jpg" not in cache.paths()
        with caplog.at_level(logging.WARNING, "sketchpad.gallery.cache"):
            assert [n for n, _ in cache.items()] == ["b.jpg"]
        assert "a.jpg" in caplog.text and str(cache.path) in caplog.text
        assert cache.get("a.jpg") is None and len(cache) == 1


def test_the_cache_lives_in_the_cache_dir_never_in_the_photo_folder(
    folder: Path, home: Path
) -> None:
    before = listing(folder)
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, synthetic(1))])
        assert cache.path == cache_path(folder, KEY)
        assert cache.path.is_relative_to(home / "cache" / "features")
        assert cache.nbytes() > 0
    with FeatureCache.open(folder, KEY, writer=False) as reader:
        assert len(reader) == 1
    assert listing(folder) == before
    with pytest.raises(CacheError, match="photo folder"):
        FeatureCache.open(folder, KEY, path=folder / "sub" / "cache.sqlite")
    assert listing(folder) == before


def test_another_model_or_folder_gets_another_file(folder: Path, tmp_path: Path) -> None:
    assert cache_path(folder, KEY) != cache_path(folder, OTHER)
    assert cache_path(folder, KEY) != cache_path(tmp_path, KEY)
    assert cache_path(folder, KEY) == cache_path(folder / "." / "x" / "..", KEY)
    assert KEY.digest() == ModelKey(*KEY.__dict__.values()).digest()
    assert (
        len(
            {
                KEY.digest(),
                OTHER.digest(),
                ModelKey("a", "b", "c|vv").digest(),
                ModelKey("a", "b", "c|plain").digest(),
            }
        )
        == 4
    )


def test_importing_the_cache_does_not_load_torch() -> None:
    code = "import sys, sketchpad.gallery.cache; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


# -- damaged, foreign, outdated ------------------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(bytes(random.Random(1).getrandbits(8) for _ in range(100)))


def _set_version(version: int, *, user_version: bool = False) -> object:
    def damage(path: Path) -> None:
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
            if user_version:
                raw.execute(f"PRAGMA user_version = {version}")
        raw.close()

    return damage


def _foreign(path: Path) -> None:
    for p in path.parent.glob(path.name + "*"):
        if not p.name.endswith(".lock"):
            p.unlink()
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        raw.execute("INSERT INTO notes (text) VALUES ('someone else''s data')")
    raw.close()


def _other_model(path: Path) -> None:
    other = FeatureCache.open(path.parent / "photos", OTHER, path=path.parent / "other.sqlite")
    other.put([("z.jpg", 1, 1, synthetic(9))])
    other.close()
    shutil.copyfile(other.path, path)  # a cache copied over another one's name


def _damage_features_root(path: Path) -> None:
    """Garbage over the features table's root page: the header still looks sound."""
    with sqlite3.connect(path) as raw:
        page_size = raw.execute("PRAGMA page_size").fetchone()[0]
        root = raw.execute("SELECT rootpage FROM sqlite_master WHERE name = 'features'").fetchone()
    raw.close()
    with open(path, "r+b") as f:
        f.seek((root[0] - 1) * page_size)
        f.write(b"\xa5" * page_size)


def _needs_check_marker_and_bad_page(path: Path) -> None:
    # A read that hit corruption leaves this marker so the next writer runs quick_check.
    _damage_features_root(path)
    path.with_name(path.name + ".needs-check").touch()


DAMAGES = {
    "truncated": (_truncate, "corrupt"),
    "garbage-header": (_garbage_header, "corrupt"),
    "schema-bump": (_set_version(SCHEMA_VERSION + 1), "newer-schema"),
    "schema-older": (_set_version(0, user_version=True), "old-schema"),  # 1 is migrated
    "foreign": (_foreign, "foreign"),
    "stored-key-disagrees": (_other_model, "other-model"),
    "marked-for-check": (_needs_check_marker_and_bad_page, "corrupt"),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_bad_cache_is_moved_aside_and_rebuilt(
    damage: str, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    do, tag = DAMAGES[damage]
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([(f"p{i}.jpg", i, i, synthetic(i, 8, 8, 64)) for i in range(20)])
        path = cache.path
    do(path)
    with FeatureCache.open(folder, KEY, writer=False) as reader:  # readers move nothing
        if damage != "marked-for-check":  # (readers do not run the check the marker asks for)
            assert len(reader) == 0
    assert not list(path.parent.glob(f"{path.name}.{tag}-*"))
    with caplog.at_level(logging.WARNING, "sketchpad.gallery.cache"):
        cache = FeatureCache.open(folder, KEY)
    asides = list(path.parent.glob(f"{path.name}.{tag}-*"))
    assert len(asides) == 1 and re.search(r"-\d{8}-\d{6}$", asides[0].name)
    assert str(path) in caplog.text and asides[0].name in caplog.text
    with cache:
        if damage == "truncated":  # the sound rows of the first half are salvaged
            assert 0 < len(cache) < 20 and "salvaged" in " ".join(cache.notes)
            for name, f in cache.items():
                assert_same(f, synthetic(int(name[1:-4]), 8, 8, 64))
            cache.remove(list(cache.paths()))
        assert len(cache) == 0 and cache.paths() == {}
        cache.put([("a.jpg", 1, 1, synthetic(1))])
        assert_same(cache.get("a.jpg"), synthetic(1))
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()


def test_corruption_met_while_reading_is_rebuilt_at_the_next_open(folder: Path) -> None:
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([(f"p{i}.jpg", i, i, synthetic(i, 8, 8, 64)) for i in range(20)])
    _damage_features_root(cache.path)
    with FeatureCache.open(folder, KEY) as cache, pytest.raises(CacheError) as info:
        len(cache)
    assert str(cache.path) in str(info.value)
    with FeatureCache.open(folder, KEY) as cache:
        assert len(cache) == 0
    assert len(list(cache.path.parent.glob(f"{cache.path.name}.corrupt-*"))) == 1


def test_only_the_newest_asides_are_kept(folder: Path) -> None:
    path = cache_path(folder, KEY)
    for _ in range(4):
        FeatureCache.open(folder, KEY).close()
        _garbage_header(path)
        FeatureCache.open(folder, KEY).close()
    assert len(list(path.parent.glob(f"{path.name}.corrupt-*"))) == 2


def test_a_creation_killed_half_way_leaves_nothing_behind(folder: Path) -> None:
    path = cache_path(folder, KEY)
    path.parent.mkdir(parents=True)
    stale = path.with_name(path.name + ".tmp-99999")
    stale.write_bytes(b"half a database")
    path.with_name(path.name + "-wal").write_bytes(b"a log of a deleted database")
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, synthetic(1))])
        assert not stale.exists()
    with FeatureCache.open(folder, KEY) as cache:
        assert_same(cache.get("a.jpg"), synthetic(1))


def test_a_reader_of_a_missing_cache_is_empty_and_creates_nothing(folder: Path) -> None:
    with FeatureCache.open(folder, KEY, writer=False) as reader:
        assert len(reader) == 0 and list(reader.items()) == [] and not reader.path.exists()
        with pytest.raises(CacheError, match="read-only"):
            reader.put([("a.jpg", 1, 1, synthetic(1))])
        with pytest.raises(CacheError, match="read-only"):
            reader.remove(["a.jpg"])
    assert not reader.path.parent.exists() or not any(reader.path.parent.iterdir())


# -- one writer, many readers --------------------------------------------------------------

HOLDER = """
import sys
from pathlib import Path
from sketchpad.gallery.cache import FeatureCache, ModelKey
cache = FeatureCache.open(Path(sys.argv[1]), ModelKey(*sys.argv[2:5]))
print("locked", flush=True)
sys.stdin.read()
cache.close()
"""


def test_a_second_writer_is_refused_with_a_clear_message(folder: Path) -> None:
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, synthetic(1))])
    args = [sys.executable, "-c", HOLDER, str(folder), *KEY.__dict__.values()]
    child = subprocess.Popen(
        args,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "locked", child.stderr
        with pytest.raises(CacheLockedError) as info:
            FeatureCache.open(folder, KEY)
        message = str(info.value)
        assert str(cache_path(folder, KEY)) in message
        assert f"pid {child.pid}" in message and "Close" in message
        with FeatureCache.open(folder, KEY, writer=False) as reader:
            assert_same(reader.get("a.jpg"), synthetic(1))
        child.stdin.close()
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        child.wait()
    with FeatureCache.open(folder, KEY) as cache:  # the lock went with the holder
        assert len(cache) == 1


def test_a_second_writer_in_the_same_process_is_refused(folder: Path) -> None:
    with FeatureCache.open(folder, KEY):
        with pytest.raises(CacheLockedError, match=f"pid {os.getpid()}"):
            FeatureCache.open(folder, KEY)
    FeatureCache.open(folder, KEY).close()


def test_readers_never_see_uncommitted_rows(folder: Path) -> None:
    with FeatureCache.open(folder, KEY) as cache:
        cache.put([("a.jpg", 1, 1, synthetic(1))])
        reader = FeatureCache.open(folder, KEY, writer=False)
        raw = sqlite3.connect(cache.path, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        row = cache_rows.encode("new.jpg", 7, 7, synthetic(1))
        raw.execute(f"INSERT INTO features VALUES ({', '.join('?' * len(row))})", row)
        raw.execute("DELETE FROM features WHERE rel_path = CAST('a.jpg' AS BLOB)")
        assert reader.paths() == {"a.jpg": (1, 1)} and reader.get("new.jpg") is None
        assert [n for n, _ in reader.items()] == ["a.jpg"]
        raw.execute("COMMIT")
        assert reader.paths() == {"new.jpg": (7, 7)}
        assert_same(reader.get("new.jpg"), synthetic(1))
        raw.close()
        reader.close()


# -- kill -9 while indexing ----------------------------------------------------------------

WRITER = f"""
import sys
from pathlib import Path
import numpy as np
from sketchpad.gallery.cache import FeatureCache, ModelKey
from sketchpad.gallery import cache_rows
from sketchpad.vision.features import PhotoFeatures
from sketchpad.vision.letterbox import fit_letterbox

{inspect.getsource(synthetic)}

cache = FeatureCache.open(Path(sys.argv[1]), ModelKey(*sys.argv[2:5]))
print("ready", flush=True)
for i in range(100_000):
    rel = f"img{{i}}.jpg"
    if not cache.is_current(rel, 1000 + i, i):
        cache.put([(rel, 1000 + i, i, synthetic(i, 8, 8, 64))])
        print(i, flush=True)
        if i % 7 == 0:  # rewrite one row again and again: replaced, never duplicated
            cache.put([("again.jpg", i, i, synthetic(i, 8, 8, 64))])
"""


def _run_and_kill(args: list[str], delay: float, log_file: Path) -> list[int]:
    with open(log_file, "w") as err:
        child = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert child.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(s.strip()) for s in child.stdout])
    reader.start()
    try:
        first = lines.get(timeout=60)
        assert first == "ready", log_file.read_text()
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL, log_file.read_text()
    finally:
        child.kill()
        child.wait()
        reader.join(timeout=30)
    reported = []
    while not lines.empty():
        s = lines.get_nowait()
        if s.isdigit():
            reported.append(int(s))
    return reported


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_kill_9_during_indexing_then_the_next_run_resumes(folder: Path, tmp_path: Path) -> None:
    rng = random.Random(20240607)
    args = [sys.executable, "-c", WRITER, str(folder), *KEY.__dict__.values()]
    committed: set[int] = set()
    for round_ in range(5):
        reported = _run_and_kill(args, rng.uniform(0.0, 0.3), tmp_path / f"child{round_}.log")
        assert not committed & set(reported), "a committed row was computed again"
        committed |= set(reported)
        with FeatureCache.open(folder, KEY) as cache:  # the lock died with the child
            with sqlite3.connect(cache.path) as raw:
                assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                names = [r[0] for r in raw.execute("SELECT rel_path FROM features")]
            raw.close()
            assert len(names) == len(set(names))
            stored = cache.paths()
            assert {f"img{i}.jpg" for i in committed} <= set(stored)
            for name, f in cache.items():
                if name != "again.jpg":
                    i = int(name[3:-4])
                    assert stored[name] == (1000 + i, i)
                    assert_same(f, synthetic(i, 8, 8, 64))
            assert len(cache) == len(names)
        assert not [p for p in cache.path.parent.iterdir() if re.search(r"\.corrupt-", p.name)]
    assert len(committed) > 5
