"""Indexing a folder into the feature cache: incremental, resumable, never writing the folder."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketchpad.cli import main
from sketchpad.gallery.cache import FeatureCache
from sketchpad.gallery.index import index_folder, model_key
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.segmenter import Segmenter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return Segmenter(create_backbone("test-clip-tiny", pretrained=False, device="cpu"))


def make_photos(folder: Path, n: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = folder / f"img{i}.png"
        hw = (int(rng.integers(20, 80)), int(rng.integers(20, 80)))
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(p)
        out.append(p)
    return out


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.iterdir()}


def test_index_is_incremental_and_leaves_the_folder_alone(tmp_path: Path, seg: Segmenter) -> None:
    folder = tmp_path / "photos"
    paths = make_photos(folder, 5)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    before = listing(folder)

    s1 = index_folder(folder, seg, batch_size=2)
    assert (s1.indexed, s1.up_to_date, s1.removed) == (5, 0, 0)
    assert [p.name for p, _, _ in s1.skipped] == ["broken.jpg"]
    assert folder not in s1.cache_path.parents

    s2 = index_folder(folder, seg)
    assert (s2.indexed, s2.up_to_date) == (0, 5)

    st = paths[1].stat()
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "changed"
    paths[3].unlink()
    before = listing(folder)
    s3 = index_folder(folder, seg)
    assert (s3.indexed, s3.up_to_date, s3.removed) == (1, 3, 1)

    s4 = index_folder(folder, seg, rebuild=True)
    assert (s4.indexed, s4.up_to_date) == (4, 0)
    assert listing(folder) == before  # the photo folder is only read

    with FeatureCache.open(folder, model_key(seg), writer=False) as cache:
        assert len(cache) == 4
        direct = seg.embed_photos([np.asarray(Image.open(paths[0]).convert("RGB"))])[0]
        cached = cache.get("img0.png")
        assert cached is not None and cached.grid_hw == direct.grid_hw
        np.testing.assert_array_equal(cached.patches, direct.patches)
        assert cached.letterbox == direct.letterbox


def test_a_different_model_gets_its_own_cache(tmp_path: Path, seg: Segmenter) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 2)
    a = index_folder(folder, seg)
    other = Segmenter(seg.backbone, patch_path="plain")
    b = index_folder(folder, other)
    assert a.cache_path != b.cache_path and b.indexed == 2


_CHILD = """
import sys
from pathlib import Path
from sketchpad.gallery.index import index_folder
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.segmenter import Segmenter
seg = Segmenter(create_backbone("test-clip-tiny", pretrained=False, device="cpu"))
def progress(done, total):
    print(done, flush=True)
index_folder(Path(sys.argv[1]), seg, batch_size=2, progress=progress)
"""


def test_kill_9_during_indexing_resumes_without_duplicates(
    tmp_path: Path, seg: Segmenter, home: Path
) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 40)
    env = {**os.environ, "SKETCHPAD_HOME": str(home), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(folder)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    seen = 0
    deadline = time.monotonic() + 120
    while seen < 6 and time.monotonic() < deadline:  # a few batches committed, then kill -9
        line = child.stdout.readline()
        if not line:
            break
        seen = int(line)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert seen >= 6, "the child never got going"

    summary = index_folder(folder, seg)
    assert summary.up_to_date >= seen - 2 and summary.indexed + summary.up_to_date == 40
    with FeatureCache.open(folder, model_key(seg), writer=False) as cache:
        assert len(cache) == 40
        db = sqlite3.connect(summary.cache_path)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            db.close()


def test_index_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import safetensors.torch
    import torch

    from sketchpad.vision.registry import build_model, get_spec

    torch.manual_seed(0)
    model = build_model(get_spec("test-clip-tiny"))
    weights = tmp_path / "tiny.safetensors"
    safetensors.torch.save_file(
        {k: v.contiguous().clone() for k, v in model.state_dict().items()}, str(weights)
    )
    folder = tmp_path / "photos"
    make_photos(folder, 3)
    (folder / "empty.png").write_bytes(b"")
    args = ["index", str(folder), "--backbone", "test-clip-tiny", "--weights", str(weights)]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "3 indexed, 0 already current, 1 skipped" in out.out and "empty.png" in out.err
    assert main(args) == 0
    assert "0 indexed, 3 already current" in capsys.readouterr().out
    assert main(["index", str(tmp_path / "nope"), "--backbone", "test-clip-tiny"]) == 1


def bad_folder(root: Path) -> tuple[Path, set[str]]:
    """Every kind of bad input the scan and decoder meet, next to good photos; returns the
    folder and the relative names that must be indexed (each exactly once)."""
    from sketchpad.gallery.samples import bad_corpus

    f = root / "bad"
    return f, bad_corpus(f)


def test_a_folder_of_bad_input_indexes_each_photo_once(tmp_path: Path, seg: Segmenter) -> None:
    folder, ok = bad_folder(tmp_path)
    before = listing(folder)
    s = index_folder(folder, seg, recursive=True, batch_size=4)
    got = {
        "random.png": "corrupt", "zero.jpg": "empty", "bomb.png": "bomb", "bomb.jpg": "bomb",
        "dangling.png": "not-found", "fifo.jpg": "not-regular", "sub/loop": None,
    }  # fmt: skip
    skipped = {p.relative_to(folder).as_posix(): code for p, code, _ in s.skipped}
    for name in got:
        assert name in skipped, f"{name} not reported: {sorted(skipped)}"
        assert got[name] is None or skipped[name] == got[name], (name, skipped[name])
    assert any(code == "duplicate" for code in skipped.values())
    # A truncated JPEG decodes (Pillow fills the rest grey) or is reported; never both.
    indexed = set(ok) - ({"truncated.jpg"} if "truncated.jpg" in skipped else set())
    with FeatureCache.open(folder, model_key(seg), writer=False) as cache:
        names = [n for n, _ in cache.items()]
    assert sorted(names) == sorted(indexed)  # each photo once, under its real path
    assert s.indexed == len(indexed)
    assert index_folder(folder, seg, recursive=True).indexed == 0
    assert listing(folder) == before


def test_on_batch_sees_each_committed_batch(tmp_path: Path, seg: Segmenter) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 5)
    seen: list[list[str]] = []
    cache_rows: list[int] = []

    def on_batch(rows: list) -> None:
        seen.append([rel for rel, _ in rows])
        with FeatureCache.open(folder, model_key(seg), writer=False) as c:
            cache_rows.append(len(c))  # already committed when announced

    index_folder(folder, seg, batch_size=2, on_batch=on_batch)
    assert seen == [["img0.png", "img1.png"], ["img2.png", "img3.png"], ["img4.png"]]
    assert cache_rows == [2, 4, 5]


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="needs byte file names")
def test_any_file_name_indexes_and_prints(
    tmp_path: Path, seg: Segmenter, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names as the OS gives them: undecodable bytes (a Latin-1 copy), NFC and NFD twins,
    emoji, a newline; all indexed once each, under their exact names; `sketchpad index`
    prints them readably (undecodable bytes as \\xNN)."""
    import unicodedata

    folder = tmp_path / "photos"
    folder.mkdir()
    raw_names = [
        b"caf\xe9.jpg",
        b"\xff\xfe\xfd.png",
        unicodedata.normalize("NFC", "é.png").encode(),
        unicodedata.normalize("NFD", "é.png").encode(),
        "🐄 cow.png".encode(),
        b"two\nlines.png",
    ]
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    for raw in raw_names:
        Image.fromarray(rgb).save(os.path.join(os.fsencode(folder), raw), format="PNG")
    (folder / os.fsdecode(b"broken\xe9.jpg")).write_bytes(b"not a jpeg")
    s = index_folder(folder, seg, batch_size=4)
    assert s.indexed == len(raw_names) and [c for _, c, _ in s.skipped] == ["corrupt"]
    with FeatureCache.open(folder, model_key(seg), writer=False) as cache:
        assert {os.fsencode(n) for n in cache.paths()} == set(raw_names)
    assert index_folder(folder, seg).up_to_date == len(raw_names)
    weights = tmp_path / "tiny.safetensors"
    _save_tiny_weights(weights)
    args = ["index", str(folder), "--backbone", "test-clip-tiny", "--weights", str(weights)]
    assert main([*args, "--rebuild"]) == 0
    out = capsys.readouterr()
    assert f"{len(raw_names)} indexed" in out.out
    assert "skipped " in out.err and "broken\\xe9.jpg" in out.err  # readable, one line
    out.err.encode("utf-8")  # no lone surrogates reached the streams


def _save_tiny_weights(path: Path) -> None:
    import safetensors.torch
    import torch

    from sketchpad.vision.registry import build_model, get_spec

    torch.manual_seed(0)
    model = build_model(get_spec("test-clip-tiny"))
    state = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(path))


def test_index_verify_reports_and_repairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "tiny.safetensors"
    _save_tiny_weights(weights)
    folder = tmp_path / "photos"
    make_photos(folder, 3)
    args = ["index", str(folder), "--backbone", "test-clip-tiny", "--weights", str(weights)]
    assert main(args) == 0
    assert main([*args, "--verify"]) == 0
    assert "verified: the file and all 3 rows' checksums are sound" in capsys.readouterr().err
    (cache,) = (tmp_path / "home" / "cache" / "features").glob("*.sqlite")
    with sqlite3.connect(cache) as raw:
        raw.execute("UPDATE features SET check_patches = check_patches + 1 WHERE rowid = 2")
    raw.close()
    assert main([*args, "--verify"]) == 0
    out = capsys.readouterr()
    assert "1 damaged row removed, to be re-encoded: img1.png" in out.err
    assert "1 indexed, 2 already current" in out.out


def test_photos_are_decoded_at_the_size_the_model_needs(
    tmp_path: Path, seg: Segmenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big photo is decoded small (never whole) and its features are those of the full
    photo; the cached letterbox records the full upright size, so masks map onto it."""
    from PIL import ImageFile

    from sketchpad.gallery.images import load_photo
    from sketchpad.vision.letterbox import fit_letterbox

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    big = np.kron(rng.integers(0, 256, (30, 40, 3)), np.ones((40, 40, 1))).astype(np.uint8)
    Image.fromarray(big).save(folder / "big.jpg", quality=95)  # 1600 × 1200
    decoded: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def spy(im: ImageFile.ImageFile) -> object:
        decoded.append(im.size)
        return real_load(im)

    with monkeypatch.context() as m:
        m.setattr(ImageFile.ImageFile, "load", spy)
        index_folder(folder, seg)
    assert decoded and max(w for w, _ in decoded) <= 4 * seg.input_size  # by the DCT, small
    with FeatureCache.open(folder, model_key(seg), writer=False) as cache:
        cached = cache.get("big.jpg")
    assert cached is not None
    size = seg.input_size
    assert cached.letterbox == fit_letterbox((1200, 1600), size)
    full = seg.embed_photos([load_photo(folder / "big.jpg")])[0]
    assert full.letterbox == cached.letterbox
    cos = np.sum(full.patches * cached.patches.astype(np.float32), axis=1) / (
        np.linalg.norm(full.patches, axis=1) * np.linalg.norm(cached.patches, axis=1)
    )
    assert cos.min() > 0.99, cos.min()  # the same features, up to resampling
