"""A text progress bar for the command line (stderr; redrawn in place on a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class TextProgress:
    """``[#########           ] 45% 9/20 label``, at most ~10 redraws a second.

    On a terminal the line is redrawn in place; otherwise (logs, tests) only the final line
    is written, so output stays readable.
    """

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._shown = False

    def _line(self, done: int, unit: str) -> str:
        if self.total:
            frac = min(1.0, done / self.total)
            bar = "#" * round(20 * frac)
            return f"[{bar:<20}] {100 * frac:3.0f}% {done}/{self.total}{unit} {self.label}"
        return f"{done}{unit} {self.label}"

    def update(self, done: int, total: int | None = None, unit: str = "") -> None:
        if total is not None:
            self.total = total
        now = time.monotonic()
        if self._tty and (now - self._last >= 0.1 or (self.total and done >= self.total)):
            self._last = now
            self.stream.write("\r" + self._line(done, unit) + "\033[K")
            self.stream.flush()
            self._shown = True

    def close(self, done: int, unit: str = "") -> None:
        """Write the final state and end the line."""
        prefix = "\r" if self._tty and self._shown else ""
        self.stream.write(prefix + self._line(done, unit) + ("\033[K" if self._tty else "") + "\n")
        self.stream.flush()


class EtaProgress(TextProgress):
    """A bar that is also a ``progress(done, total)`` callback, with an ETA in its label."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        super().__init__(label, None, stream)
        self.base = label
        self.done = 0
        self._start = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        self.done = done
        elapsed = time.perf_counter() - self._start
        left = total - done
        eta = f" ETA {elapsed / done * left:.0f} s" if done and left else ""
        self.label = self.base + eta
        self.update(done, total)

    def finish(self) -> None:
        self.label = self.base
        self.close(self.done)


class DownloadBar:
    """A weights download's progress, as a ``progress(bytes_done, bytes_total | None)``
    callback; :meth:`finish` ends the line if anything was downloaded."""

    def __init__(self, what: str, stream: TextIO | None = None) -> None:
        self.bar = TextProgress(f"downloading {what} weights", None, stream)
        self.done = 0

    def __call__(self, done: int, total: int | None) -> None:
        self.done = done
        self.bar.update(done // 2**20, None if total is None else max(1, total // 2**20), " MB")

    def finish(self) -> None:
        if self.done:
            self.bar.close(self.done // 2**20, " MB")
