"""Weights: resolution order, the real HF cache layout, safe loading, strict matching, import,
download with progress (from a local stand-in Hub), and the ``sketchpad models`` command.

Random weights of the tiny registered variants are saved in the real file formats and placed
as huggingface_hub lays out its cache, so the real lookup and loading code runs offline.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import os
import socket
import threading
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import huggingface_hub.constants as hf_constants
import pytest
import safetensors.torch
import torch

from sketchpad.commands.models import add_parser
from sketchpad.vision import hub as H
from sketchpad.vision import weights as W
from sketchpad.vision.registry import build_model, get_spec
from sketchpad.vision.weights import (
    WeightsError,
    WeightsNotFoundError,
    file_sha256,
    import_weights,
    load_weights,
    read_state_dict,
    resolve_weights,
)

SPEC_IDS = ["test-clip-tiny", "test-dinov2-tiny"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our folders and the HF cache under tmp, offline; huggingface_hub's import-time copies
    of its env vars agree, so nothing can reach the network or the user's cache."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("SKETCHPAD_OFFLINE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    return cache


@functools.cache
def saved_state(spec_id: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of a tiny variant (contiguous copies: safetensors refuses shared memory)."""
    torch.manual_seed(seed)
    model = build_model(get_spec(spec_id))
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def safetensors_bytes(spec_id: str, seed: int = 0) -> bytes:
    return safetensors.torch.save(saved_state(spec_id, seed))


def write_safetensors(path: Path, spec_id: str, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(safetensors_bytes(spec_id, seed))
    return path


def put_in_hf_cache(cache: Path, repo: str, filename: str, data: bytes) -> Path:
    """As huggingface_hub stores a download: ``blobs/<sha256>`` (an LFS file's ETag),
    ``snapshots/<commit>/<file>`` a relative symlink to it, ``refs/main`` the commit (no
    newline: huggingface_hub reads it verbatim)."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    pointer = folder / "snapshots" / COMMIT / filename
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    return pointer


def cache_real_file(cache: Path, spec_id: str, seed: int = 0) -> Path:
    spec = get_spec(spec_id)
    return put_in_hf_cache(cache, spec.hf_repo, spec.hf_files[0], safetensors_bytes(spec_id, seed))


def assert_state_equal(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert got.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(got[k], v), k


def forward(model: torch.nn.Module, spec_id: str) -> torch.Tensor:
    spec = get_spec(spec_id)
    x = torch.linspace(-1, 1, 3 * spec.input_size**2).reshape(1, 3, spec.input_size, -1)
    with torch.no_grad():
        return model.encode_image(x) if spec.family == "open_clip" else model.forward_features(x)


def no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError("the network was asked")


# --- resolution -----------------------------------------------------------------------------


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_resolved_from_the_hf_cache_offline_and_loaded(isolated: Path, spec_id: str) -> None:
    spec = get_spec(spec_id)
    pointer = cache_real_file(isolated, spec_id)
    resolved = resolve_weights(spec)
    assert resolved.source == "hf-cache"
    assert resolved.path == pointer
    assert resolved.sha256 == hashlib.sha256(pointer.read_bytes()).hexdigest()
    torch.manual_seed(99)
    model = build_model(spec)
    load_weights(model, spec, resolved.path)
    assert_state_equal(model, saved_state(spec_id))


@pytest.mark.parametrize("spec_id", SPEC_IDS)
@pytest.mark.parametrize("fmt", ["safetensors", "pth-wrapped"])
def test_imported_weights_are_found_later(tmp_path: Path, spec_id: str, fmt: str) -> None:
    spec = get_spec(spec_id)
    sd = saved_state(spec_id, seed=1)
    if fmt == "safetensors":
        src = write_safetensors(tmp_path / "mine" / "weights.safetensors", spec_id, seed=1)
    else:  # a training checkpoint: wrapped, DataParallel prefixes; DINOv2 in Meta's layout
        raw = dict(sd)
        if spec.family == "timm":
            raw["mask_token"] = torch.zeros(1, spec.width)
        src = tmp_path / "mine" / "ckpt.pth"
        src.parent.mkdir()
        torch.save({"state_dict": {f"module.{k}": v for k, v in raw.items()}, "epoch": 3}, src)
    imported = import_weights(spec, src)
    assert imported.source == "imported"
    assert imported.path.parent == W.imported_dir(spec)
    assert imported.path.name == src.name
    assert imported.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()

    resolved = resolve_weights(spec)
    assert (resolved.source, resolved.path, resolved.sha256) == (
        "imported",
        imported.path,
        imported.sha256,
    )
    model = build_model(spec)
    load_weights(model, spec, resolved.path)
    assert_state_equal(model, sd)


def test_a_new_import_replaces_the_old_one(tmp_path: Path) -> None:
    spec = get_spec("test-clip-tiny")
    first = import_weights(spec, write_safetensors(tmp_path / "a.safetensors", spec.id))
    second = import_weights(spec, write_safetensors(tmp_path / "b.safetensors", spec.id, 1))
    assert not first.path.exists()
    assert resolve_weights(spec).path == second.path


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_a_given_path_wins_over_the_cache(isolated: Path, tmp_path: Path, spec_id: str) -> None:
    spec = get_spec(spec_id)
    cache_real_file(isolated, spec_id)
    given = write_safetensors(tmp_path / "given" / spec.hf_files[0], spec_id, seed=2)
    assert resolve_weights(spec, given).path == given
    folder = resolve_weights(spec, given.parent)  # a folder holding one of spec.hf_files
    assert (folder.source, folder.path) == ("given", given)
    with pytest.raises(WeightsError, match="does not exist") as e:
        resolve_weights(spec, tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(e.value)


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_offline_with_nothing_cached_fails_at_once(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, spec_id: str
) -> None:
    spec = get_spec(spec_id)
    monkeypatch.setattr(H, "_probe", no_network)
    with pytest.raises(WeightsNotFoundError) as e:  # at once: no_network fails if asked
        resolve_weights(spec)
    message = str(e.value)
    assert spec.id in message
    assert str(W.imported_dir(spec)) in message
    assert str(isolated / ("models--" + spec.hf_repo.replace("/", "--"))) in message
    assert "offline" in message
    assert f"sketchpad models import {spec.id}" in message


def test_sketchpad_offline_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("SKETCHPAD_OFFLINE", "yes")
    monkeypatch.setattr(H, "_probe", no_network)
    with pytest.raises(WeightsNotFoundError, match="offline"):
        resolve_weights(get_spec("test-clip-tiny"))


def test_file_sha256_is_memoised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_safetensors(tmp_path / "w.safetensors", "test-clip-tiny")
    digest = file_sha256(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    with monkeypatch.context() as m:
        m.setattr(W.hashlib, "sha256", no_network)  # a second call must not hash
        assert file_sha256(path) == digest
    path.write_bytes(b"changed")
    assert file_sha256(path) == hashlib.sha256(b"changed").hexdigest()


def test_a_changed_file_is_hashed_again_even_with_its_old_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memo's key is honest: a rewrite in place with the same size and the old mtime put
    back (``touch -r``), and a same-sized copy moved over it with its mtime (``cp -p``), are
    both hashed again; an untouched file is not."""
    hashed: list[int] = []
    real_sha256 = hashlib.sha256

    def counting(*args: Any) -> Any:
        hashed.append(1)
        return real_sha256(*args)

    monkeypatch.setattr(W.hashlib, "sha256", counting)
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"A" * 4096)
    first = file_sha256(path)
    assert len(hashed) == 1 and file_sha256(path) == first and len(hashed) == 1
    st = path.stat()
    clock = tmp_path / "clock"  # the file-system clock is coarse: wait until it has moved on
    clock.touch()
    while clock.stat().st_ctime_ns <= st.st_ctime_ns:
        clock.touch()

    path.write_bytes(b"B" * 4096)  # same size, the old mtime restored
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_sha256(path) == real_sha256(b"B" * 4096).hexdigest()
    assert len(hashed) == 2

    other = tmp_path / "copy"
    other.write_bytes(b"C" * 4096)
    os.utime(other, ns=(st.st_atime_ns, path.stat().st_mtime_ns))
    os.replace(other, path)  # another inode, same size and mtime
    assert file_sha256(path) == real_sha256(b"C" * 4096).hexdigest()
    assert len(hashed) == 3
    assert file_sha256(path) == real_sha256(b"C" * 4096).hexdigest() and len(hashed) == 3


# --- refusing bad files ---------------------------------------------------------------------


class Payload:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_a_malicious_pickle_is_refused(tmp_path: Path) -> None:
    spec = get_spec("test-clip-tiny")
    sd = saved_state(spec.id)
    armed = tmp_path / "armed.pth"
    proof = tmp_path / "proof"
    torch.save({"state_dict": {**sd, "x": Payload(proof)}}, armed)
    torch.load(armed, weights_only=False)  # the payload is live: plain unpickling runs it
    assert proof.exists()

    evil = tmp_path / "evil.pth"
    marker = tmp_path / "marker"
    torch.save({"state_dict": {**sd, "x": Payload(marker)}}, evil)
    for attempt in (
        lambda: read_state_dict(evil),
        lambda: load_weights(build_model(spec), spec, evil),
        lambda: import_weights(spec, evil),
    ):
        with pytest.raises(WeightsError, match="refused: may run code: builtins.exec") as e:
            attempt()
        assert str(evil) in str(e.value)
        assert "weights_only" not in str(e.value)
    assert not marker.exists()
    assert W._imported_file(spec) is None


def test_a_truncated_safetensors_file_is_refused(isolated: Path, tmp_path: Path) -> None:
    data = safetensors_bytes("test-clip-tiny")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt safetensors") as e:
        read_state_dict(cut)
    assert str(cut) in str(e.value)


def _torchscript(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))


def _truncated_pth(path: Path) -> None:
    torch.save({"a": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("missing.safetensors", None, "does not exist"),
        ("weights.ckpt", lambda p: p.write_bytes(b"x"), "unknown extension '.ckpt'"),
        ("model.pt", _torchscript, "TorchScript archive"),
        ("tensor.pt", lambda p: torch.save(torch.zeros(3), p), "holds a Tensor, not a state dict"),
        ("mixed.pt", lambda p: torch.save({"a": torch.zeros(1), "b": 2}, p), "not tensors"),
        ("cut.pth", _truncated_pth, "truncated or corrupt PyTorch checkpoint"),
        ("junk.bin", lambda p: p.write_bytes(b"hello"), "not a checkpoint"),
        ("st.bin", lambda p: p.write_bytes(safetensors_bytes("test-clip-tiny")), "rename it to"),
    ],
)
def test_unreadable_files_say_why(
    tmp_path: Path, name: str, make: Callable[[Path], None] | None, reason: str
) -> None:
    path = tmp_path / name
    if make is not None:
        make(path)
    with pytest.raises(WeightsError) as e:
        read_state_dict(path)
    assert reason in str(e.value)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_wrong_weights_are_refused_and_leave_the_model_as_it_was(
    tmp_path: Path, spec_id: str
) -> None:
    spec = get_spec(spec_id)
    other = next(s for s in SPEC_IDS if s != spec_id)
    good = write_safetensors(tmp_path / "good.safetensors", spec_id)
    model = build_model(spec)
    load_weights(model, spec, good)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = forward(model, spec_id)

    foreign = write_safetensors(tmp_path / "foreign.safetensors", other, seed=5)
    with pytest.raises(WeightsError) as e:
        load_weights(model, spec, foreign)
    message = str(e.value)
    assert f"does not fit {spec.id} ({spec.arch})" in message
    assert "missing keys" in message and "unexpected" in message
    assert "another model" in message and str(foreign) in message

    sd = {k: v + 1 for k, v in saved_state(spec_id).items()}
    key = next(k for k, v in sd.items() if v.ndim == 2)
    sd[key] = sd[key].reshape(-1, 1).contiguous()
    reshaped = tmp_path / "reshaped.safetensors"
    safetensors.torch.save_file(sd, reshaped)
    with pytest.raises(WeightsError, match="1 shape mismatches") as e:
        load_weights(model, spec, reshaped)
    assert f"{key}: file {list(sd[key].shape)}" in str(e.value)
    assert "0 missing keys" in str(e.value)

    assert_state_equal(model, before)
    assert torch.equal(forward(model, spec_id), out)
    with pytest.raises(WeightsError, match="does not fit"):
        import_weights(spec, reshaped)
    assert W._imported_file(spec) is None


# --- download ---------------------------------------------------------------------------------


class _Hub(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, bytes]
    requests: list[tuple[str, str]]


class _HubHandler(BaseHTTPRequestHandler):
    """Answers ``/<repo>/resolve/<revision>/<file>`` as the Hub does for an LFS file: HEAD gives
    ``X-Repo-Commit``, the ETag (the file's SHA-256, which names the blob) and the size."""

    server: _Hub

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path = urllib.parse.unquote(self.path)
        self.server.requests.append((self.command, path))
        data = self.server.files.get(path)
        self.send_response(404 if data is None else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        if data is None:
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Hub]:
    """A local stand-in for huggingface.co; online mode pointed at it, small download chunks
    so the progress callback sees many steps."""
    server = _Hub(("127.0.0.1", 0), _HubHandler)
    server.files, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_download_with_progress(isolated: Path, hub: _Hub, spec_id: str) -> None:
    spec = get_spec(spec_id)
    if spec.family == "open_clip":  # only the second candidate exists: the first gives a 404
        name = spec.hf_files[1]
        data = _torch_bytes(saved_state(spec_id))
    else:
        name = spec.hf_files[0]
        data = safetensors_bytes(spec_id)
    hub.files[f"/{spec.hf_repo}/resolve/main/{name}"] = data
    calls: list[tuple[int, int | None]] = []
    resolved = resolve_weights(spec, progress=lambda done, total: calls.append((done, total)))

    assert resolved.source == "download"
    assert resolved.path == isolated / ("models--" + spec.hf_repo.replace("/", "--")) / (
        f"snapshots/{COMMIT}/{name}"
    )
    assert resolved.sha256 == hashlib.sha256(data).hexdigest()
    assert len(calls) > 3
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert calls[-1] == (len(data), len(data))
    assert {t for _, t in calls} == {len(data)}
    model = build_model(spec)
    load_weights(model, spec, resolved.path)
    assert_state_equal(model, saved_state(spec_id))

    served = len(hub.requests)
    again = resolve_weights(spec, offline=True)
    assert (again.source, again.path) == ("hf-cache", resolved.path)
    assert len(hub.requests) == served


class Cancelled(Exception):
    pass


def test_a_progress_callback_can_cancel_the_download(isolated: Path, hub: _Hub) -> None:
    spec = get_spec("test-dinov2-tiny")
    hub.files[f"/{spec.hf_repo}/resolve/main/{spec.hf_files[0]}"] = safetensors_bytes(spec.id)

    def cancel(done: int, total: int | None) -> None:
        if done:
            raise Cancelled

    with pytest.raises(Cancelled):
        resolve_weights(spec, progress=cancel)
    blobs = isolated / ("models--" + spec.hf_repo.replace("/", "--")) / "blobs"
    assert not any(blobs.iterdir())  # no partial file left behind
    with pytest.raises(WeightsNotFoundError):
        resolve_weights(spec, offline=True)


def _torch_bytes(sd: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    return buffer.getvalue()


def test_an_unreachable_hub_fails_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    import huggingface_hub

    asked: list[dict[str, object]] = []
    real_metadata = huggingface_hub.get_hf_file_metadata

    def metadata(url: str, **kw: object) -> object:
        asked.append(kw)
        return real_metadata(url, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    with pytest.raises(WeightsNotFoundError) as e:
        resolve_weights(get_spec("test-dinov2-tiny"), offline=False)
    # Quickly: one probe, no retries, the short timeout (hf_hub_download alone retries ~25 s).
    assert [(kw["retry_on_errors"], kw["timeout"]) for kw in asked] == [(False, H.HUB_TIMEOUT_S)]
    assert H.HUB_TIMEOUT_S <= 5
    assert f"cannot reach http://127.0.0.1:{port}" in str(e.value)
    assert "ConnectError" in str(e.value)


def test_progress_bridge_counts_bytes_written_once(capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[int, int | None]] = []
    bar_class = H._progress_bridge(lambda d, t: calls.append((d, t)))
    # As huggingface_hub's Xet reporter drives it: one bar, network bytes via update_transfer.
    bar = bar_class(total=100, desc="f", unit="B", unit_scale=True, position=1, leave=True)
    bar.update(30)
    bar.update_transfer(45)
    bar.set_transfer_postfix_str("1 MB/s", refresh=False)
    bar.total = 120
    bar.update(90)
    bar.close()
    assert calls == [(0, 100), (30, 100), (120, 120)]
    assert capsys.readouterr() == ("", "")


# --- the `models` command ---------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["models", *argv])
    return int(args.func(args))


def test_cli_list(isolated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("list") == 0
    out = capsys.readouterr().out
    assert "clip-vit-b16" in out and "dinov2-vits14" in out and "not downloaded" in out
    assert "test-clip-tiny" not in out

    cache_real_file(isolated, "test-clip-tiny")
    import_weights(
        get_spec("test-dinov2-tiny"),
        write_safetensors(tmp_path / "d.safetensors", "test-dinov2-tiny"),
    )
    assert run_cli("list", "--all") == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert " cached " in lines["test-clip-tiny"]
    assert " imported " in lines["test-dinov2-tiny"]


def test_cli_where(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pointer = cache_real_file(isolated, "test-clip-tiny")
    assert run_cli("where", "test-clip-tiny") == 0
    out = capsys.readouterr().out
    assert f"Hugging Face cache  {pointer}  [weights here]" in out
    assert str(W.imported_dir(get_spec("test-clip-tiny"))) in out
    assert f"In use: {pointer}" in out

    assert run_cli("where", "no-such-model") == 1
    err = capsys.readouterr().err
    assert err.startswith("sketchpad models: error: unknown backbone 'no-such-model'")


def test_cli_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_safetensors(tmp_path / "w.safetensors", "test-clip-tiny")
    assert run_cli("import", "test-clip-tiny", str(src)) == 0
    out = capsys.readouterr().out
    target = W.imported_dir(get_spec("test-clip-tiny")) / "w.safetensors"
    assert f"imported to {target}" in out
    assert f"sha256 {hashlib.sha256(src.read_bytes()).hexdigest()}" in out

    assert run_cli("import", "test-dinov2-tiny", str(src)) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("checking ")
    assert err.splitlines()[1].startswith("sketchpad models: error: ")
    assert "does not fit" in err
    assert "Traceback" not in err


def test_cli_download_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("download", "test-clip-tiny") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("sketchpad models: error: No weights found for test-clip-tiny")
    assert "sketchpad models import test-clip-tiny" in captured.err


def test_cli_download(hub: _Hub, capsys: pytest.CaptureFixture[str]) -> None:
    spec = get_spec("test-dinov2-tiny")
    data = safetensors_bytes(spec.id)
    hub.files[f"/{spec.hf_repo}/resolve/main/{spec.hf_files[0]}"] = data
    assert run_cli("download", spec.id) == 0
    captured = capsys.readouterr()
    assert "] 100% " in captured.err
    assert "downloaded to" in captured.out
    assert f"sha256 {hashlib.sha256(data).hexdigest()}" in captured.out
    assert run_cli("download", spec.id) == 0
    assert "already here (hf-cache)" in capsys.readouterr().out


# --- importing: the working weights survive every refusal --------------------------------------


class SystemCall:
    """A pickle that would run ``os.system`` when loaded. It is only ever written here, and
    read by Sketchpad's scanner, never unpickled."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def _malicious(protocol: int, zip_format: bool = True) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        sd = dict(saved_state("test-clip-tiny"))
        torch.save(
            {"state_dict": {**sd, "x": SystemCall()}},
            path,
            pickle_protocol=protocol,
            _use_new_zipfile_serialization=zip_format,
        )

    return make


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _link_to_dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "gone.safetensors")


def _truncated_safetensors(path: Path) -> None:
    data = safetensors_bytes("test-clip-tiny", 3)
    path.write_bytes(data[: len(data) - 100])


def _wrong_architecture(path: Path) -> None:
    write_safetensors(path, "test-dinov2-tiny", 3)


REFUSALS = [
    ("evil.pth", _malicious(2), f"refused: may run code: {os.system.__module__}.system"),
    ("evil4.pt", _malicious(4), f"refused: may run code: {os.system.__module__}.system"),
    ("legacy.pt", _malicious(2, False), f"refused: may run code: {os.system.__module__}.system"),
    ("zero.safetensors", _link_to_dev_zero, "is a link to /dev/zero, which is a device"),
    ("pipe.safetensors", _fifo, "is a FIFO (named pipe), not a file"),
    ("gone-link.safetensors", _dangling, "which does not exist (a dangling link)"),
    ("missing.safetensors", None, "does not exist"),
    ("cut.safetensors", _truncated_safetensors, "truncated or corrupt safetensors file"),
    ("cut.pth", _truncated_pth, "truncated or corrupt PyTorch checkpoint"),
    ("empty.safetensors", lambda p: p.write_bytes(b""), "is empty"),
    ("other.safetensors", _wrong_architecture, "does not fit test-clip-tiny"),
    ("ts.pt", _torchscript, "TorchScript archive"),
]


@pytest.fixture
def working(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """test-clip-tiny with working imported weights (seed 1); yields the devices every model
    built afterwards was built on (a check must only build on ``meta``)."""
    spec = get_spec("test-clip-tiny")
    import_weights(spec, write_safetensors(tmp_path / "good" / "good.safetensors", spec.id, 1))
    devices: list[str] = []
    real = W.build_model

    def recording(s: object) -> torch.nn.Module:
        devices.append(str(torch.get_default_device()))
        return real(s)  # type: ignore[arg-type]

    monkeypatch.setattr(W, "build_model", recording)
    yield devices


def assert_still_working(spec_id: str = "test-clip-tiny") -> None:
    spec = get_spec(spec_id)
    resolved = resolve_weights(spec)
    assert (resolved.source, resolved.path.name) == ("imported", "good.safetensors")
    model = build_model(spec)
    load_weights(model, spec, resolved.path)
    assert_state_equal(model, saved_state(spec_id, 1))
    assert sorted(p.name for p in W.imported_dir(spec).iterdir()) == [
        "good.safetensors",
        "import-record.json",
    ]


@pytest.mark.parametrize(("name", "make", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refused_import_keeps_the_working_weights(
    tmp_path: Path,
    working: list[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    make: Callable[[Path], None] | None,
    reason: str,
) -> None:
    path = tmp_path / name
    if make is not None:
        make(path)

    def unpickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pickle that names a callable reached torch.load")

    with monkeypatch.context() as m, pytest.raises(WeightsError) as e:
        if "may run code" in reason:
            m.setattr(torch, "load", unpickle)
        import_weights(get_spec("test-clip-tiny"), path)
    message = str(e.value)
    assert reason in message, message
    assert str(path) in message
    assert "weights_only" not in message
    assert set(working) <= {"meta"}, "a model was built to check the file"
    assert_still_working()


def test_a_dot_named_file_imports_and_replaces_the_old_one_only_then(
    tmp_path: Path, working: list[str]
) -> None:
    spec = get_spec("test-clip-tiny")
    hidden = write_safetensors(tmp_path / ".hidden.safetensors", spec.id, 2)
    got = import_weights(spec, hidden)
    assert got.path == W.imported_dir(spec) / "hidden.safetensors"
    assert set(working) == {"meta"}
    resolved = resolve_weights(spec)
    assert (resolved.source, resolved.path) == ("imported", got.path)
    model = build_model(spec)
    load_weights(model, spec, resolved.path)
    assert_state_equal(model, saved_state(spec.id, 2))
    assert sorted(p.name for p in W.imported_dir(spec).iterdir()) == [
        "hidden.safetensors",
        "import-record.json",
    ]


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        (b"my weights (v2).safetensors", "my weights (v2).safetensors"),
        (b"caf\xe9.SAFETENSORS", "caf_.safetensors"),
        (b"..", None),
        (b"\x01\x02.pth", "__.safetensors"),
        (b" .safetensors", "test-clip-tiny.safetensors"),
        (b"no-extension", "no-extension.safetensors"),
        (b"st-in-disguise.bin", "st-in-disguise.safetensors"),
    ],
)
def test_any_file_name_imports(tmp_path: Path, name: bytes, stored: str | None) -> None:
    spec = get_spec("test-clip-tiny")
    if stored is None:  # ".." is the parent folder: refused as a folder without weights
        (tmp_path / "sub").mkdir()
        with pytest.raises(WeightsError, match="is a folder without"):
            import_weights(spec, tmp_path / "sub" / "..")
        return
    src = Path(os.fsdecode(bytes(tmp_path) + b"/" + name))
    src.write_bytes(safetensors_bytes(spec.id, 4))
    got = import_weights(spec, src)
    assert got.path.name == stored
    resolved = resolve_weights(spec)
    assert resolved.path == got.path
    model = build_model(spec)
    load_weights(model, spec, resolved.path)
    assert_state_equal(model, saved_state(spec.id, 4))


def test_a_legacy_format_checkpoint_imports(tmp_path: Path) -> None:
    spec = get_spec("test-clip-tiny")
    src = tmp_path / "old.pth"
    torch.save(dict(saved_state(spec.id, 6)), src, _use_new_zipfile_serialization=False)
    got = import_weights(spec, src)
    model = build_model(spec)
    load_weights(model, spec, got.path)
    assert_state_equal(model, saved_state(spec.id, 6))


def test_a_pickle_import_keeps_its_kind(tmp_path: Path) -> None:
    spec = get_spec("test-clip-tiny")
    src = tmp_path / ".ckpt"
    src.write_bytes(_torch_bytes(dict(saved_state(spec.id, 5))))
    got = import_weights(spec, src)
    assert got.path.name == "ckpt.pt"
    model = build_model(spec)
    load_weights(model, spec, resolve_weights(spec).path)
    assert_state_equal(model, saved_state(spec.id, 5))


def test_imported_weights_are_private(tmp_path: Path) -> None:
    spec = get_spec("test-clip-tiny")
    got = import_weights(spec, write_safetensors(tmp_path / "w.safetensors", spec.id))
    assert got.path.parent.stat().st_mode & 0o777 == 0o700
    assert got.path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("spec_id", SPEC_IDS)
def test_load_model_builds_on_meta_and_matches_the_ordinary_way(
    tmp_path: Path, spec_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = get_spec(spec_id)
    path = write_safetensors(tmp_path / "w.safetensors", spec_id, 7)
    ordinary = build_model(spec)
    load_weights(ordinary, spec, path)
    devices: list[str] = []
    real = W.build_model
    monkeypatch.setattr(
        W, "build_model", lambda s: devices.append(str(torch.get_default_device())) or real(s)
    )
    model = W.load_model(spec, path)
    assert devices == ["meta"]  # never initialised at random for real
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    assert_state_equal(model, saved_state(spec_id, 7))
    for (name, a), (_, b) in zip(model.named_buffers(), ordinary.named_buffers(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(forward(model, spec_id), forward(ordinary, spec_id))


def test_an_import_reports_the_bytes_copied_and_can_be_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = get_spec("test-clip-tiny")
    monkeypatch.setattr(W, "_CHUNK", 4096)
    old = import_weights(spec, write_safetensors(tmp_path / "old.safetensors", spec.id))
    source = write_safetensors(tmp_path / "new.safetensors", spec.id, 1)
    size = source.stat().st_size
    calls: list[tuple[int, int | None]] = []

    def cancel_halfway(done: int, total: int | None) -> None:
        calls.append((done, total))
        if done >= size // 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        import_weights(spec, source, progress=cancel_halfway)
    assert calls[0] == (0, size) and all(t == size for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1][0] < size
    folder = W.imported_dir(spec)
    assert sorted(p.name for p in folder.iterdir() if p.name != W._IMPORT_RECORD) == [
        old.path.name
    ]  # no partial copy; the working weights untouched
    assert resolve_weights(spec).path == old.path

    calls.clear()
    new = import_weights(spec, source, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (size, size) and len(calls) == 1 + -(-size // 4096)
    assert new.path.read_bytes() == source.read_bytes()
