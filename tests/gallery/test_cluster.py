"""``sketchpad index --cluster``: Ray actors encode, ``index_folder`` commits (issue 19).

The actor's code runs here first, without Ray: it rebuilds the model from the weights sent to
it and reports the bad photos with their reasons, as the local index does. Then one local Ray
cluster of two CPUs for the module (started once: it takes seconds). A job in
another process is killed (SIGKILL) after its first committed batch, the command line resumes
it and is cancelled after another, and a local run finishes the folder: each run encodes only
what the ones before left, and the rows the cluster wrote equal a local index's, byte for byte.
(Each cluster job starts its two actors afresh, importing torch and open_clip: two jobs only.)
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pytest
from PIL import Image

from sketchpad.cli import main
from sketchpad.gallery import index as index_module
from sketchpad.gallery.cache import FeatureCache
from sketchpad.gallery.cluster import DECODE_THREADS, _Model, _PhotoEncoder, encoded_rows
from sketchpad.gallery.images import scan_folder
from sketchpad.gallery.index import index_folder, model_key
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.segmenter import Segmenter

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = 14  # good ones; batches of 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A two-CPU Ray cluster; its address. Its workers import this checkout's code."""
    ray = pytest.importorskip("ray")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A tiny CLIP's random weights in a file, so every process builds the same model."""
    import safetensors.torch
    import torch

    from sketchpad.vision.registry import build_model, get_spec

    torch.manual_seed(3)
    model = build_model(get_spec("test-clip-tiny"))
    path = tmp_path / "tiny.safetensors"
    sd = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(sd, str(path))
    return path


def photo_folder(folder: Path) -> set[str]:
    """Photos of odd sizes and names, a broken one and an empty one; the good names."""
    rng = np.random.default_rng(5)
    (folder / "sub dir").mkdir(parents=True)
    names = set()
    for i in range(PHOTOS):
        name = f"sub dir/ph ö {i}.png" if i % 5 == 0 else f"img{i}.jpg"
        hw = (int(rng.integers(16, 90)), int(rng.integers(16, 90)))
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(folder / name)
        names.add(name)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    return names


def rows(folder: Path, seg: Segmenter, path: Path | None = None) -> dict[str, object]:
    with FeatureCache.open(folder, model_key(seg), writer=False, path=path) as cache:
        return dict(cache.items())


def progress_line(stream: IO[str]) -> tuple[int, int]:
    """The next ``done total`` line the child prints (other output is skipped)."""
    for line in stream:
        if re.fullmatch(r"\d+ \d+", line.strip()):
            done, total = line.split()
            return int(done), int(total)
    raise AssertionError("the child ended without reporting progress")


_CHILD = """
import sys
from pathlib import Path
from sketchpad.gallery.cluster import RayEncoder
from sketchpad.gallery.index import index_folder
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.segmenter import Segmenter
folder, weights, address = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
seg = Segmenter(create_backbone("test-clip-tiny", weights=weights, device="cpu"))
def progress(done, total):
    print(done, total, flush=True)
    if done:
        sys.stdin.readline()  # the gate: the parent kills us here
index_folder(folder, seg, recursive=True, batch_size=2, progress=progress,
             encoder=RayEncoder(seg, address))
"""


def test_a_killed_then_cancelled_cluster_job_resumes_and_equals_the_local_index(
    cluster: str,
    home: Path,
    weights: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    folder = tmp_path / "photos"
    good = photo_folder(folder)
    seg = Segmenter(create_backbone("test-clip-tiny", weights=str(weights), device="cpu"))
    todo = len(scan_folder(folder, recursive=True).photos)  # broken.jpg too; empty.png not

    # 1. A job in another process is killed (SIGKILL) after its first committed batch.
    env = {**os.environ, "SKETCHPAD_HOME": str(home), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(folder), str(weights), cluster],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert child.stdout is not None
    try:
        assert progress_line(child.stdout) == (0, todo)
        assert 0 < progress_line(child.stdout)[0] <= 2  # a batch committed; the child waits
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    first = rows(folder, seg)
    assert 0 < len(first) <= 2 and set(first) <= good

    # 2. The command line resumes it on the cluster and is cancelled (Ctrl+C) after a batch.
    from sketchpad.commands.progress import EtaProgress

    seen: list[tuple[int, int]] = []
    report = EtaProgress.__call__

    def cancel(self: EtaProgress, done: int, total: int) -> None:
        report(self, done, total)
        seen.append((done, total))
        if done:
            raise KeyboardInterrupt

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cluster run encoded in the driver")

    args = ["index", str(folder), "--recursive", "--backbone", "test-clip-tiny",
            "--weights", str(weights), "--batch-size", "2", "--cluster", "local"]  # fmt: skip
    with monkeypatch.context() as m:
        m.setattr(EtaProgress, "__call__", cancel)
        m.setattr(index_module, "encode_locally", not_here)  # the actors have their own
        status = main(args)  # this process's Ray connection serves as the "local" cluster
    assert status == 130
    assert seen[0] == (0, todo - len(first))  # only what the killed job left
    assert "interrupted after" in capsys.readouterr().err
    second = rows(folder, seg)
    assert len(first) < len(second) <= len(first) + 2 and set(second) <= good
    assert all(np.array_equal(first[k].patches, second[k].patches) for k in first)
    assert ray.is_initialized()  # the caller's connection is left open …
    deadline = time.monotonic() + 120  # … and the cancelled job's actors end (polled)
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == 2, "the cancelled job still holds CPUs"

    # 3. A local run finishes the rest: the cluster's rows are the local index's, row for row.
    done = index_folder(folder, seg, recursive=True, batch_size=2)
    assert (done.indexed, done.up_to_date) == (len(good) - len(second), len(second))
    codes = {p.name: code for p, code, _ in done.skipped}
    assert codes == {"broken.jpg": "corrupt", "empty.png": "empty"}
    local_path = tmp_path / "local.sqlite"
    index_folder(folder, seg, recursive=True, batch_size=2, cache_path=local_path)
    local = rows(folder, seg, local_path)
    assert set(local) == good
    for name, a in second.items():
        b = local[name]
        assert (a.grid_hw, a.letterbox, a.patch_size) == (b.grid_hw, b.letterbox, b.patch_size)
        np.testing.assert_array_equal(a.patches, b.patches, err_msg=name)
        np.testing.assert_array_equal(a.global_embedding, b.global_embedding, err_msg=name)


def test_the_actor_encodes_as_the_local_index_and_reports_bad_photos(
    tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actor class and the driver's reading of its rows, in this process (no Ray): the
    model rebuilt from the state dict sent, the same features as the local encoder, the bad
    photo with its reason, the driver's own paths."""
    from sketchpad.gallery.index import encode_locally

    monkeypatch.chdir(tmp_path)
    folder = Path("photos")  # relative, as a person types it: the actors get absolute paths
    photo_folder(folder)
    seg = Segmenter(create_backbone("test-clip-tiny", weights=str(weights), device="cpu"))
    bb = seg.backbone
    sd = {k: v.clone() for k, v in bb.model.state_dict().items()}
    actor = _PhotoEncoder(
        _Model(bb.spec.id, sd, bb.weights, seg.input_size, seg.patch_path),
        str(folder.absolute()),
        DECODE_THREADS,
    )
    scanned = list(scan_folder(folder, recursive=True).photos[:4])  # broken.jpg first
    sent = {str(folder.absolute() / p.relative_to(folder)): p for p in scanned}
    out = actor({"path": np.array(list(sent), dtype=object)})
    got = encoded_rows(out, sent)
    want = [e for b in encode_locally(seg, folder, scanned, 4) for e in b]
    assert [e.path for e in got] == scanned and [e.rel for e in got] == [e.rel for e in want]
    assert got[0].rel == "broken.jpg" and got[0].features is None
    assert got[0].error == want[0].error and got[0].error[0] == "corrupt"
    assert (got[0].size, got[0].mtime_ns) == (
        scanned[0].stat().st_size,
        scanned[0].stat().st_mtime_ns,
    )
    for a, b in zip(got[1:], want[1:], strict=True):
        assert a.error is None and a.features is not None and b.features is not None
        np.testing.assert_array_equal(a.features.patches, b.features.patches)
        np.testing.assert_array_equal(a.features.global_embedding, b.features.global_embedding)
        assert a.features.letterbox == b.features.letterbox


def test_a_cancel_closes_the_encoder_stream_after_the_batch_in_flight(tmp_path: Path) -> None:
    """index_folder closes an encoder's stream when progress raises (a cancel), so a cluster
    job ends with it at once, even while the error is still held; the batches committed
    before stay."""
    from sketchpad.gallery.index import Encoded, encode_locally

    folder = tmp_path / "photos"
    photo_folder(folder)
    seg = Segmenter(create_backbone("test-clip-tiny", pretrained=False, device="cpu"))
    closed: list[bool] = []

    def encoder(folder: Path, paths: list[Path], batch_size: int) -> Iterator[list[Encoded]]:
        try:
            yield from encode_locally(seg, folder, paths, batch_size)
        finally:
            closed.append(True)

    def cancel(done: int, total: int) -> None:
        if done >= 4:
            raise KeyboardInterrupt

    path = tmp_path / "c.sqlite"
    held = None
    try:
        index_folder(folder, seg, recursive=True, batch_size=2, progress=cancel,
                     cache_path=path, encoder=encoder)  # fmt: skip
    except KeyboardInterrupt as e:
        held = e.__traceback__  # its frames keep the stream alive, as a shown error would
    assert held is not None
    assert closed == [True]  # closed at once, not when the stream is collected
    del held
    assert len(rows(folder, seg, path)) == 3  # broken.jpg + 3 photos done, 3 rows kept


def test_the_benchmark_compares_caches_row_by_row_and_skips_start_up(tmp_path: Path) -> None:
    from sketchpad.gallery.cluster_bench import Timing, compare_caches

    folder = tmp_path / "photos"
    photo_folder(folder)
    seg = Segmenter(create_backbone("test-clip-tiny", pretrained=False, device="cpu"))
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    for path in (a, b):
        index_folder(folder, seg, recursive=True, batch_size=4, cache_path=path)
    same = compare_caches(folder, model_key(seg), a, b)
    assert same.equal and same.identical == same.rows_a == PHOTOS and same.max_abs == 0
    with FeatureCache.open(folder, model_key(seg), path=b) as cache:
        f = cache.get("img1.jpg")
        assert f is not None
        changed = dataclasses.replace(f, patches=f.patches + np.float16(0.25))
        cache.put([("img1.jpg", 1, 1, changed)])
    diff = compare_caches(folder, model_key(seg), a, b)
    assert not diff.equal and diff.identical == PHOTOS - 1 and diff.same_layouts == PHOTOS
    assert diff.max_abs == pytest.approx(0.25, rel=1e-2)

    t = Timing(10, 9.0, ((5.0, 2), (5.5, 4), (7.0, 6), (9.0, 10)))
    assert t.rate == pytest.approx(10 / 9)
    assert t.steady_rate(1) == pytest.approx(8 / 4.0)  # from the first commit
    assert t.steady_rate(2) == pytest.approx(6 / 3.5)  # once both workers delivered
