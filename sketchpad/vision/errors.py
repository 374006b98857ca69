"""The errors raised when weights cannot be found, read or used (DESIGN §4.1).

Kept apart from :mod:`sketchpad.vision.weights` (which re-exports them) so that catching them
needs neither torch nor the Hub code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class WeightsError(Exception):
    """A weights file cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path: Path | None = Path(path)
        self.reason = reason


class WeightsNotFoundError(WeightsError):
    """No weights anywhere: the message names the model, every place looked at, and the fix."""

    def __init__(self, model_id: str, looked: Sequence[str], reason: str) -> None:
        lines = [f"No weights found for {model_id}. Looked at:"]
        lines += [f"  - {place}" for place in looked]
        lines.append(f"Download: {reason}")
        lines.append(
            f"To fix: when online, run `sketchpad models download {model_id}`; or import a "
            f"file you have with `sketchpad models import {model_id} <file>` "
            "(in the window: Download or Import… in the banner or in Photos ▸ Model Manager…)."
        )
        Exception.__init__(self, "\n".join(lines))
        self.path = None
        self.reason = reason
        self.model_id = model_id
        self.looked = list(looked)
