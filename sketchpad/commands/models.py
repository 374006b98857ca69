"""``sketchpad models``: list backbones, show where their weights are, download or import them.

Thin front over :mod:`sketchpad.vision.weights`; torch is only imported by ``import``, which
checks the file by loading it, so ``list`` and ``where`` answer at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from sketchpad.vision.registry import BackboneSpec

NAME = "sketchpad models"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``models`` and its actions (``list``, ``where``, ``download``, ``import``)."""
    p = sub.add_parser(
        "models",
        help="list backbones; find, download or import their weights",
        description="Backbones and their weights. Weights are looked for in this order: "
        "imported files, the Hugging Face cache (offline), then a download when online.",
    )
    actions = p.add_subparsers(dest="models_action", metavar="ACTION", required=True)

    q = actions.add_parser("list", help="every backbone, whether its weights are here, its use")
    q.add_argument("--all", action="store_true", help="include the tiny test backbones")
    q.set_defaults(func=_cmd_list)

    q = actions.add_parser("where", help="the places looked at for weights, and which has them")
    q.add_argument("name", metavar="NAME", help="backbone id (see `sketchpad models list`)")
    q.set_defaults(func=_cmd_where)

    q = actions.add_parser("download", help="download a backbone's weights (with progress)")
    q.add_argument("name", metavar="NAME", help="backbone id")
    q.set_defaults(func=_cmd_download)

    q = actions.add_parser(
        "import",
        help="check a weights file and keep a copy for a backbone",
        description="Check that PATH holds the weights of NAME (by loading it), then copy it "
        "into Sketchpad's data folder, where it is found before the Hugging Face cache.",
    )
    q.add_argument("name", metavar="NAME", help="backbone id")
    q.add_argument("path", metavar="PATH", help="a .safetensors/.bin/.pt/.pth file or a folder")
    q.set_defaults(func=_cmd_import)


def _err(message: str) -> int:
    print(f"{NAME}: error: {message}", file=sys.stderr)
    return 1


def _spec(name: str) -> BackboneSpec | None:
    from sketchpad.vision.registry import get_spec

    try:
        return get_spec(name)
    except KeyError as e:
        _err(str(e.args[0]))
        return None


def _size(n_bytes: float) -> str:
    if n_bytes >= 10e6:
        return f"{n_bytes / 1e6:.0f} MB"
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e5 else f"{n_bytes / 1e3:.0f} KB"


def _cmd_list(args: argparse.Namespace) -> int:
    from sketchpad.vision.registry import list_backbones
    from sketchpad.vision.weights import describe_locations

    rows = [("ID", "STATUS", "SIZE", "USE")]
    for spec in list_backbones(include_testing=args.all):
        found = [(src, place) for src, place, ok in describe_locations(spec) if ok]
        if found:
            src, place = found[0]
            status = "imported" if src == "imported" else "cached"
            size = _size(place.stat().st_size) if not isinstance(place, str) else "?"
        else:
            status = "not downloaded"
            size = f"~{spec.download_mb} MB" if spec.download_mb else "?"
        rows.append((spec.id, status, size, spec.use))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    return 0


def _cmd_where(args: argparse.Namespace) -> int:
    from sketchpad.vision.weights import PLACE_LABELS, describe_locations, is_offline

    spec = _spec(args.name)
    if spec is None:
        return 1
    print(f"{spec.id}: {spec.description}")
    places = describe_locations(spec)
    width = max(len(PLACE_LABELS[src]) for src, _, _ in places)
    for src, place, ok in places:
        mark = "weights here" if ok else "-"
        if src == "download":
            mark = "offline: not tried" if is_offline() else "if nothing above"
        print(f"  {PLACE_LABELS[src].ljust(width)}  {place}  [{mark}]")
    used = next((place for _, place, ok in places if ok), None)
    if used:
        print(f"In use: {used}")
    else:
        print(
            f"No weights yet: `sketchpad models download {spec.id}` (online), or "
            f"`sketchpad models import {spec.id} <file>`"
        )
    return 0


class _ByteBar:
    """``[#####     ] 45% 270/599 MB`` on stderr: redrawn in place at most 10×/s on a
    terminal; elsewhere (logs, tests) only the final line is written."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = 0.0
        self.done = 0
        self.total: int | None = None

    def line(self) -> str:
        if not self.total:
            return f"{_size(self.done)}"
        frac = min(1.0, self.done / self.total)
        unit, scale = ("MB", 1e6) if self.total >= 10e6 else ("KB", 1e3)
        amount = f"{self.done / scale:.0f}/{self.total / scale:.0f} {unit}"
        return f"[{'#' * round(20 * frac):<20}] {100 * frac:3.0f}% {amount}"

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if self.tty and now - self.last >= 0.1:
            self.last = now
            self.stream.write("\r" + self.line() + "\033[K")
            self.stream.flush()

    def close(self) -> None:
        if self.done or self.total:
            end = "\033[K\n" if self.tty else "\n"
            self.stream.write(("\r" if self.tty else "") + self.line() + end)
            self.stream.flush()


def _cmd_download(args: argparse.Namespace) -> int:
    from sketchpad.vision.weights import WeightsError, resolve_weights

    spec = _spec(args.name)
    if spec is None:
        return 1
    bar = _ByteBar(sys.stderr)
    if spec.family == "sketchfusion":  # a diffusers folder, then its CLIP's weights
        from sketchpad.vision.fusion.sd import resolve_sd

        try:
            sd = resolve_sd(spec, progress=bar)
        except WeightsError as e:
            bar.close()
            return _err(str(e))
        bar.close()
        print(f"{spec.id}: Stable Diffusion {sd.source}: {sd.folder}\nsha256 {sd.sha256}")
        args.name = str(spec.arch_overrides["clip"])
        return _cmd_download(args)
    try:
        resolved = resolve_weights(spec, progress=bar)
    except WeightsError as e:
        bar.close()
        return _err(str(e))
    bar.close()
    what = (
        "downloaded to" if resolved.source == "download" else f"already here ({resolved.source}):"
    )
    print(f"{spec.id}: {what} {resolved.path}\nsha256 {resolved.sha256}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sketchpad.vision.weights import WeightsError, import_weights

    spec = _spec(args.name)
    if spec is None:
        return 1
    print(f"checking {args.path} against {spec.id} …", file=sys.stderr)
    try:
        resolved = import_weights(spec, Path(args.path))
    except WeightsError as e:
        return _err(str(e))
    print(f"{spec.id}: imported to {resolved.path}\nsha256 {resolved.sha256}")
    return 0
