"""Atomic writes (DESIGN §7): the target is always the complete old or the complete new file."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sketchpad import atomic
from sketchpad.atomic import SaveError, atomic_write_bytes

# Rewrites the target with payload A, B, A, B, ... until killed.
_WRITER = """
import sys
from sketchpad.atomic import atomic_write_bytes
target, a, b = sys.argv[1:4]
payloads = [open(a, "rb").read(), open(b, "rb").read()]
print("ready", flush=True)
i = 1
while True:
    atomic_write_bytes(target, payloads[i % 2])
    i += 1
"""


def _payload(tag: str, n_items: int, rng: random.Random) -> bytes:
    items = [{"i": i, "tag": tag, "x": rng.random(), "y": rng.random()} for i in range(n_items)]
    return json.dumps({"tag": tag, "items": items}).encode()


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_target_is_old_or_new_after_sigkill_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(20240607)
    a = _payload("A", 40_000, rng)  # about 3 MB each
    b = _payload("B", 40_000, rng)
    assert 2_000_000 < len(a) < 8_000_000 and a != b
    (tmp_path / "a.json").write_bytes(a)
    (tmp_path / "b.json").write_bytes(b)
    target = tmp_path / "target.json"
    target.write_bytes(a)

    seen = {"A": 0, "B": 0}
    for _ in range(50):
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER,
                str(target),
                str(tmp_path / "a.json"),
                str(tmp_path / "b.json"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.12))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()

        data = target.read_bytes()
        assert data in (a, b), f"target is neither payload ({len(data)} bytes)"
        seen[json.loads(data)["tag"]] += 1
    # Temp files of killed writers may stay behind (nothing can remove them after a
    # SIGKILL), but they never take the target's name.
    assert all(p.name.startswith(".target.json.") for p in tmp_path.glob(".*"))
    assert seen["B"] > 0, "the writer never finished a write before being killed"


def _fail_with(monkeypatch: pytest.MonkeyPatch, name: str, err: int) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(atomic.os, name, fail)


@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_disk_full_raises_save_error_and_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    target = tmp_path / "drawing.json"
    target.write_bytes(b'{"old": true}')
    _fail_with(monkeypatch, where, errno.ENOSPC)
    with pytest.raises(SaveError) as info:
        atomic_write_bytes(target, b'{"new": true}')
    monkeypatch.undo()
    assert info.value.path == target
    assert "disk is full" in info.value.reason
    assert str(target) in str(info.value)
    assert target.read_bytes() == b'{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drawing.json"]  # no temp file left


def test_permission_denied_when_the_folder_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod does not stop root, so simulate the refusal where the temp file is created.
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    target = tmp_path / "drawing.json"
    with pytest.raises(SaveError) as info:
        atomic_write_bytes(target, b"{}")
    assert "permission denied" in info.value.reason
    assert not target.exists()


def test_parent_that_is_a_file_raises_save_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(SaveError) as info:
        atomic_write_bytes(blocker / "drawing.json", b"{}")
    assert info.value.path == blocker / "drawing.json"
    assert blocker.read_text() == "x"


def test_write_replaces_and_keeps_permissions(tmp_path: Path) -> None:
    target = tmp_path / "drawing.json"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["drawing.json"]


def test_new_files_in_a_private_folder_are_private(tmp_path: Path) -> None:
    from sketchpad.atomic import atomic_write_text

    old = os.umask(0o022)
    try:
        private = tmp_path / "ours"
        private.mkdir(mode=0o700)
        atomic_write_text(private / "preferences.json", "{}")
        assert (private / "preferences.json").stat().st_mode & 0o777 == 0o600
        shared = tmp_path / "documents"
        shared.mkdir(mode=0o755)
        atomic_write_text(shared / "drawing.json", "{}")  # the user's own file: the umask
        assert (shared / "drawing.json").stat().st_mode & 0o777 == 0o644
        atomic_write_text(shared / "secret.json", "{}", mode=0o600)
        assert (shared / "secret.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)

    kept = [tmp_path / ".x.json.ABCD1234.tmp", tmp_path / "x.json.abcd1234.tmp"]
    kept.append(tmp_path / ".x.tmp")
    from sketchpad.atomic import STALE_AFTER_S, remove_stale_temporaries

    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    ours = [tmp_path / ".x.json.abcd1234.tmp", deep / ".y.sqlite.zz_zz_zz.tmp"]
    kept = [
        tmp_path / ".x.json.ABCD1234.tmp",
        tmp_path / "x.json.abcd1234.tmp",
        tmp_path / ".x.tmp",
    ]
    fresh = tmp_path / ".z.json.abcd1234.tmp"
    for p in [*ours, *kept, fresh]:
        p.write_text("x")
    now = time.time()
    for p in [*ours, *kept]:
        os.utime(p, (now - STALE_AFTER_S - 5, now - STALE_AFTER_S - 5))
    assert sorted(remove_stale_temporaries([tmp_path])) == sorted(ours)
    assert all(p.exists() for p in [*kept, fresh])
    assert remove_stale_temporaries([tmp_path], before=now + 1) == [fresh]
