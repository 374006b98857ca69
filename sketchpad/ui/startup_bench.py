"""``sketchpad bench startup``: how long until the main window has painted.

Each run launches ``python -m sketchpad --startup-probe`` and takes the wall time
from just before the spawn to the moment the probe reports its first paint (see
:mod:`sketchpad.ui.app`). Without a display the offscreen Qt platform is used. The
target is two seconds; the probe also reports whether torch got imported, which it
must not be on the start-up path.

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


@dataclass(frozen=True)
class ProbeResult:
    """One start.

    Attributes:
        wall_s: seconds from just before the spawn to the first-paint line.
        reported_ms: the probe's own process-age figure, if it could tell.
        torch_imported: whether torch was in ``sys.modules`` at first paint.
    """

    wall_s: float
    reported_ms: float | None
    torch_imported: bool


def probe_environment() -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return env


def probe_once(command: Sequence[str] = DEFAULT_COMMAND) -> ProbeResult:
    """Start the app once in probe mode and time it.

    Raises:
        RuntimeError: the probe exited or timed out without reporting a paint.
    """
    with tempfile.TemporaryFile(mode="w+") as stderr_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=stderr_file,  # a file, not a pipe: a chatty probe cannot block
            stdin=subprocess.DEVNULL,
            text=True,
            env=probe_environment(),
        )
        watchdog = threading.Timer(PROBE_TIMEOUT_S, proc.kill)
        watchdog.start()
        wall_s: float | None = None
        reported: float | None = None
        torch_imported = False
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
    return ProbeResult(wall_s=wall_s, reported_ms=reported, torch_imported=torch_imported)


def run(
    runs: int = 5,
    command: Sequence[str] = DEFAULT_COMMAND,
    report: Callable[[str], None] = log.info,
) -> int:
    """Time ``runs`` starts and report each, the median, the maximum and PASS/FAIL.

    Args:
        report: receives each line of the report (the CLI passes ``print``).

    Returns:
        0 (the verdict is in the report); 1 when a probe fails to start.
    """
    results: list[ProbeResult] = []
    report(f"Start-up to first paint of the main window ({runs} runs)")
    for i in range(1, runs + 1):
        try:
            r = probe_once(command)
        except RuntimeError as e:
            report(f"run {i}: FAILED: {e}")
            return 1
        results.append(r)
        own = f" (process reports {r.reported_ms:.0f} ms)" if r.reported_ms is not None else ""
        report(f"  run {i}: {r.wall_s * 1000:7.0f} ms{own}")
    walls = [r.wall_s for r in results]
    median, worst = statistics.median(walls), max(walls)
    verdict = "PASS" if worst < TARGET_S else "FAIL"
    report(
        f"median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms, "
        f"target < {TARGET_S * 1000:.0f} ms: {verdict}"
    )
    torch = "yes" if any(r.torch_imported for r in results) else "no"
    report(f"torch imported at startup: {torch}")
    return 0
