"""``sketchpad bench startup``: how long until the main window has painted, on the real start.

Each run launches ``python -m sketchpad --startup-probe``: the start a user gets, with the
background import of the engine (torch, open_clip) racing the first paint for the interpreter.
It takes the wall time from just before the spawn to the probe's first-paint line, and to its
engine-ready line (the engine imported and constructed; see :mod:`sketchpad.ui.app`). Each run
uses a fresh, empty Sketchpad home (a first start: no restore offer, no model installed).

The first run is *cold*: the operating system's page cache is dropped before it, so Python,
Qt and torch are read from disk, as after a reboot (this needs root; otherwise the report says
the cold run could not be made cold). The other runs are *warm*. The target, first paint within
two seconds, applies to both. Without a display the offscreen Qt platform is used.

Qt is not imported here, so the benchmark runs in a headless environment.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

TARGET_S = 2.0
PROBE_TIMEOUT_S = 60.0
_PAINT_TAG = "SKETCHPAD_FIRST_PAINT"  # the probe's report lines (see probe_report_lines)
_TORCH_TAG = "SKETCHPAD_TORCH_IMPORTED"
_ENGINE_TAG = "SKETCHPAD_ENGINE"  # "SKETCHPAD_ENGINE ready" or "SKETCHPAD_ENGINE failed: …"
DROP_CACHES = "/proc/sys/vm/drop_caches"
DEFAULT_COMMAND = (sys.executable, "-m", "sketchpad", "--startup-probe")


def process_age_ms() -> float | None:
    """Milliseconds since this process started (Linux, 10 ms resolution); None elsewhere."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            stat = f.read()
        # Fields after the parenthesised command name; starttime is field 22 overall.
        start_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        ticks_per_s = os.sysconf("SC_CLK_TCK")
        now_s = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return (now_s - start_ticks / ticks_per_s) * 1000.0


def probe_report_lines() -> list[str]:
    """What a probe process reports at its first paint: its age and whether torch is loaded."""
    age = process_age_ms()
    return [
        f"{_PAINT_TAG} {age:.1f}" if age is not None else f"{_PAINT_TAG} ?",
        f"{_TORCH_TAG} {'yes' if 'torch' in sys.modules else 'no'}",
    ]


def engine_report_line(error: str) -> str:
    """What a probe process reports once its background engine is ready ("") or failed."""
    return f"{_ENGINE_TAG} ready" if not error else f"{_ENGINE_TAG} failed: {error}"


@dataclass(frozen=True)
class ProbeResult:
    """One start.

    Attributes:
        wall_s: seconds from just before the spawn to the first-paint line.
        reported_ms: the probe's own process-age figure, if it could tell.
        torch_imported: whether torch was in ``sys.modules`` at first paint (the background
            import may have got there first: that is the real start).
        engine_s: seconds from just before the spawn to the engine-ready line; None when the
            engine failed (``engine_error`` says why).
        engine_error: the probe's message when the engine could not start.
    """

    wall_s: float
    reported_ms: float | None
    torch_imported: bool
    engine_s: float | None = None
    engine_error: str = ""


def probe_environment(home: str | None = None) -> dict[str, str]:
    """The probe's environment: offscreen without a display; ``home`` as SKETCHPAD_HOME."""
    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    if home is not None:
        env["SKETCHPAD_HOME"] = home
    return env


def drop_page_cache() -> str:
    """Drop the OS page cache so the next start reads from disk; "" on success, else why not."""
    try:
        os.sync()
        with open(DROP_CACHES, "w", encoding="ascii") as f:
            f.write("3\n")
    except OSError as e:
        return f"cannot drop the page cache ({DROP_CACHES}: {e.strerror or e}; needs root)"
    return ""


def probe_once(command: Sequence[str] = DEFAULT_COMMAND) -> ProbeResult:
    """Start the app once in probe mode, in a fresh empty home, and time it.

    Raises:
        RuntimeError: the probe exited or timed out without reporting a paint.
    """
    with tempfile.TemporaryDirectory(prefix="sketchpad-startup-") as home:
        return _probe_in(command, home)


def _probe_in(command: Sequence[str], home: str) -> ProbeResult:
    with tempfile.TemporaryFile(mode="w+") as stderr_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=stderr_file,  # a file, not a pipe: a chatty probe cannot block
            stdin=subprocess.DEVNULL,
            text=True,
            env=probe_environment(home),
        )
        watchdog = threading.Timer(PROBE_TIMEOUT_S, proc.kill)
        watchdog.start()
        wall_s: float | None = None
        reported: float | None = None
        torch_imported = False
        engine_s: float | None = None
        engine_error = ""
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(_PAINT_TAG) and wall_s is None:
                    wall_s = time.perf_counter() - t0
                    try:
                        reported = float(line.split()[1])
                    except (IndexError, ValueError):
                        reported = None
                elif line.startswith(_TORCH_TAG):
                    torch_imported = line.split()[-1] == "yes"
                elif line.startswith(_ENGINE_TAG):
                    if line.split()[1] == "ready":
                        engine_s = time.perf_counter() - t0
                    else:
                        engine_error = line.split(":", 1)[-1].strip() or "failed"
            proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if wall_s is None:
            stderr_file.seek(0)
            raise RuntimeError(
                f"the start-up probe {' '.join(command)!r} ended (status {proc.returncode}) "
                f"without reporting a paint:\n{stderr_file.read()[-2000:]}"
            )
    return ProbeResult(
        wall_s=wall_s,
        reported_ms=reported,
        torch_imported=torch_imported,
        engine_s=engine_s,
        engine_error=engine_error,
    )


def run(
    runs: int = 5,
    command: Sequence[str] = DEFAULT_COMMAND,
    report: Callable[[str], None] = log.info,
    *,
    cold: bool = True,
) -> int:
    """Time one cold start and ``runs`` warm ones; report each, the medians and the verdicts.

    Args:
        runs: warm starts after the cold one.
        report: receives each line of the report (the CLI passes ``print``).
        cold: drop the page cache before the first start (needs root; said when impossible).

    Returns:
        0 (the verdicts are in the report); 1 when a probe fails to start.
    """
    report(
        f"Real start to first paint of the main window, background engine import running "
        f"(1 cold + {runs} warm runs, fresh Sketchpad home each)"
    )
    results: list[tuple[str, ProbeResult]] = []
    for i in range(runs + 1):
        kind = "cold" if i == 0 else "warm"
        if i == 0:
            why = drop_page_cache() if cold else "not asked for"
            if why:
                kind = "first"
                report(f"  the first run is not cold: {why}")
        try:
            r = probe_once(command)
        except RuntimeError as e:
            report(f"run {i + 1}: FAILED: {e}")
            return 1
        results.append((kind, r))
        own = f" (process reports {r.reported_ms:.0f} ms)" if r.reported_ms is not None else ""
        engine = (
            f"engine ready {r.engine_s * 1000:6.0f} ms"
            if r.engine_s is not None
            else f"engine FAILED: {r.engine_error or 'no report'}"
        )
        report(f"  run {i + 1} ({kind}): first paint {r.wall_s * 1000:6.0f} ms{own}, {engine}")
    for kind in ("cold", "first", "warm"):
        walls = [r.wall_s for k, r in results if k == kind]
        if not walls:
            continue
        engines = [r.engine_s for k, r in results if k == kind and r.engine_s is not None]
        median, worst = statistics.median(walls), max(walls)
        verdict = "PASS" if worst < TARGET_S else "FAIL"
        ready = (
            f", engine ready median {statistics.median(engines) * 1000:.0f} ms" if engines else ""
        )
        report(
            f"{kind}: first paint median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms"
            f"{ready}; target < {TARGET_S * 1000:.0f} ms: {verdict}"
        )
    torch = sum(r.torch_imported for _, r in results)
    report(
        f"torch already imported (by the background thread) at first paint: {torch} of "
        f"{len(results)} runs"
    )
    return 0
