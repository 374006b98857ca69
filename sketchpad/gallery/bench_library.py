"""``sketchpad bench library``: a generated "real library" indexed by ``sketchpad index``.

The folder (``samples.real_library``) holds what people's photo folders hold: names with
undecodable bytes, NFD and emoji names, HEIC, AVIF, camera RAW with and without an embedded
preview, 108 and 200 Mpx noisy JPEGs and the bad-input corpus (empty, random, truncated,
decompression bombs, a FIFO, links, a loop). ``sketchpad index --recursive`` runs on it in a
child process, with random weights of the chosen backbone, and the run is checked file by file:
every photo indexed or skipped with its reason, no traceback, and the child's peak resident
memory against the target (< 1.5 GB). Reported, never asserted.

The folder and the weights are made in a child process of their own too: Linux carries a
parent's resident size into its child's maximum (``ru_maxrss`` is kept across ``fork`` and
``exec``), so a bench process that had held the 600 MB noise array of the 200 Mpx photo or a
ViT-B/16 would read as the indexing child's peak (1.9 GB here, against 1.4 GB for the
indexing alone). The bench's own peak is reported as the floor of the measurement.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sketchpad.gallery.images import is_photo_name
from sketchpad.names import display_name

Report = Callable[[str], None]

#: Peak resident memory of the indexing process the issue sets as the target.
PEAK_TARGET_BYTES = 1.5e9


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child Python that imports this source tree (put
    first on ``PYTHONPATH``), with ``extra`` variables set."""
    env = {**os.environ, **extra}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _index(cmd: list[str], env: dict[str, str]) -> tuple[int, str, str, float, int | None]:
    """Run ``sketchpad index``; (exit status, stdout, stderr, seconds, peak RSS in bytes of
    that process alone, None where the platform cannot say)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        peak: int | None = None
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            # ru_maxrss: KiB on Linux, bytes on macOS.
            peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        else:  # pragma: no cover - Windows
            proc.wait()
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), seconds, peak


def _save_random_weights(backbone_id: str, path: Path) -> None:
    import safetensors.torch
    import torch

    from sketchpad.vision.registry import build_model, get_spec

    torch.manual_seed(0)
    model = build_model(get_spec(backbone_id))
    state = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(path))


def prepare(folder: Path, weights: Path, backbone_id: str, big: bool) -> dict[str, str | None]:
    """Write the library into ``folder`` and random weights of ``backbone_id`` to
    ``weights``; the expected outcomes (``samples.real_library``). Run in a child process
    (:func:`_prepare_in_child`)."""
    from sketchpad.gallery.samples import real_library

    expect = real_library(folder, big=big)
    _save_random_weights(backbone_id, weights)
    return expect


def _prepare_in_child(
    folder: Path, weights: Path, backbone_id: str, big: bool, env: dict[str, str]
) -> dict[str, str | None]:
    """:func:`prepare` in a child process, so that this one stays small (module docstring).

    Raises:
        subprocess.CalledProcessError: the child failed (its stderr is in the exception).
    """
    code = (
        "import json, sys; from pathlib import Path; "
        "from sketchpad.gallery.bench_library import prepare; "
        "print(json.dumps(prepare(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], "
        "sys.argv[4] == '1')))"
    )
    argv = [sys.executable, "-c", code, str(folder), str(weights), backbone_id, str(int(big))]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    expect: dict[str, str | None] = json.loads(done.stdout.splitlines()[-1])
    return expect


def _own_peak() -> int | None:
    """This process's peak resident memory in bytes (None where the platform cannot say)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024)


def run(backbone_id: str, report: Report, *, big: bool = True, workdir: Path | None = None) -> int:
    """Generate the library, index it in a child process, check and report; returns 0."""
    with tempfile.TemporaryDirectory(prefix="sketchpad-bench-", dir=workdir) as tmp:
        work = Path(tmp)
        folder = work / "library"
        weights = work / "weights.safetensors"
        env = child_env(SKETCHPAD_HOME=str(work / "home"), PYTHONUNBUFFERED="1")
        report("sketchpad bench library: generating the folder …")
        t0 = time.perf_counter()
        expect = _prepare_in_child(folder, weights, backbone_id, big, env)
        sizes = {p.name: p.stat().st_size for p in folder.glob("*mpx.jpg")}
        report(
            f"  {len(expect)} photos with known outcomes in {time.perf_counter() - t0:.0f} s"
            + "".join(f"; {n}: {s / 2**20:.0f} MiB" for n, s in sorted(sizes.items()))
        )
        cmd = [sys.executable, "-m", "sketchpad", "index", "--backbone", backbone_id]
        cmd += ["--weights", str(weights), "--device", "cpu"]
        one = work / "one photo"
        one.mkdir()
        (one / "good.jpg").write_bytes((folder / "bad" / "good.jpg").read_bytes())
        report("the same command on a folder of one small photo (the model's own memory) …")
        *_, base_peak = _index([*cmd, str(one)], {**env, "SKETCHPAD_HOME": str(work / "home1")})
        report(f"indexing the library: sketchpad index --recursive --backbone {backbone_id}")
        floor = _own_peak()
        status, stdout, stderr, seconds, peak = _index([*cmd, "--recursive", str(folder)], env)
        indexed = _cached_names(work / "home")
    skipped = [ln for ln in stderr.splitlines() if ln.startswith("sketchpad index: skipped ")]
    tracebacks = stderr.count("Traceback (most recent call last)")
    report(f"  exit status {status}, {seconds:.1f} s; {stdout.strip()}")
    report(f"  {len(indexed)} photos indexed, {len(skipped)} files skipped with a reason:")
    for ln in skipped:
        report(f"    {ln[len('sketchpad index: skipped ') :]}")
    problems = _check(folder, expect, indexed, skipped)
    for p in problems:
        report(f"  MISMATCH: {p}")
    report(f"  every expected outcome met: {'PASS' if not problems else 'FAIL'}")
    report(f"  tracebacks: {tracebacks} ({'PASS' if tracebacks == 0 else 'FAIL'})")
    if peak is None or base_peak is None:
        report("  peak resident memory: not measurable here")
    else:
        ok = peak < PEAK_TARGET_BYTES
        report(
            f"  peak resident memory of the indexing process: {peak / 2**20:.0f} MiB "
            f"(target < 1.5 GB: {'PASS' if ok else 'FAIL'}); the same command on one small "
            f"photo: {base_peak / 2**20:.0f} MiB, so the library's photos add "
            f"{(peak - base_peak) / 2**20:+.0f} MiB"
        )
    if floor is not None:
        at_floor = " (the figures are at the floor: not measured)" if peak and peak <= floor else ""
        report(
            f"  this bench process's own peak, the floor of those figures: "
            f"{floor / 2**20:.0f} MiB{at_floor}"
        )
    return 0


def _check(
    folder: Path, expect: dict[str, str | None], indexed: set[str], skipped: list[str]
) -> list[str]:
    """What does not match: an expected photo not indexed, an expected skip not reported
    with its code, a photo-named file neither indexed nor reported."""
    problems = []

    def reported(rel: str) -> list[str]:
        head = f"sketchpad index: skipped {display_name(folder / rel)}: "
        return [ln for ln in skipped if ln.startswith(head)]

    for rel, code in expect.items():
        if code is None and rel not in indexed:
            problems.append(f"{display_name(rel)} was not indexed")
        elif code is not None and not any(ln.endswith(f"[{code}]") for ln in reported(rel)):
            problems.append(f"{display_name(rel)} was not reported as {code}")
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            rel = os.path.relpath(os.path.join(dirpath, name), folder).replace(os.sep, "/")
            if is_photo_name(name) and rel not in indexed and not reported(rel):
                problems.append(f"{display_name(rel)}: neither indexed nor reported")
    return problems


def _cached_names(home: Path) -> set[str]:
    """The photo names in the child's feature cache (its one file), read directly."""
    from sketchpad.gallery.cache_rows import py_name

    names: set[str] = set()
    for db in (home / "cache" / "features").glob("*.sqlite"):
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as c:
            names |= {py_name(r[0]) for r in c.execute("SELECT rel_path FROM features")}
    return names
