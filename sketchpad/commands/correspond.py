"""``sketchpad correspond``: match points of a sketch on a photo (or the reverse) and write
them as JSON and an overlay image (seed 003 §6.3; the library is
:mod:`sketchpad.vision.fusion.correspond`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

NAME = "sketchpad correspond"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "correspond",
        help="match points of a sketch on a photo (sketch–photo correspondence)",
        description="For each point given on the sketch, find the matching point on the photo "
        "(--reverse: points on the photo, matches on the sketch) from the backbone's dense "
        "features, with a confidence (0–1). Writes the points as JSON and, with --overlay, the "
        "two images side by side with the matches joined and the heat map on the target.",
    )
    p.add_argument("--sketch", required=True, metavar="IMAGE", help="the sketch (PNG/JPG)")
    p.add_argument("--photo", required=True, metavar="IMAGE", help="the photo")
    p.add_argument(
        "--points", required=True, metavar="x,y,…", help="query points in pixels: x1,y1,x2,y2,…"
    )
    p.add_argument("--reverse", action="store_true", help="the points are on the photo")
    p.add_argument("--json", metavar="FILE", help="write the matches here (default: stdout)")
    p.add_argument("--overlay", metavar="PNG", help="write an overlay image here")
    p.add_argument(
        "--backbone",
        default="sketchfusion-sd21-l14",
        metavar="ID",
        help="backbone id (default sketchfusion-sd21-l14; any backbone's patches work)",
    )
    p.add_argument(
        "--weights", metavar="PATH", help="weights: an SD folder or a `train fusion` checkpoint"
    )
    p.add_argument("--random-weights", action="store_true", help="random weights (smoke tests)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--input-size", type=int, help="model input side (default: the backbone's)")
    p.set_defaults(func=run)


def _err(msg: str) -> int:
    print(f"{NAME}: error: {msg}", file=sys.stderr)
    return 1


def parse_points(text: str) -> np.ndarray:
    """``"x1,y1,x2,y2"`` → (N, 2) float. Raises ValueError naming the problem."""
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError as e:
        raise ValueError(f"--points {text!r}: not a list of numbers") from e
    if not values or len(values) % 2 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"--points {text!r}: needs x,y pairs of finite numbers")
    return np.asarray(values, dtype=np.float64).reshape(-1, 2)


Point = tuple[float, float]


def overlay_image(
    source: np.ndarray,
    target: np.ndarray,
    pairs: list[tuple[Point, Point]],
    heat: np.ndarray,
    *,
    source_left: bool,
) -> np.ndarray:
    """The two images side by side (same height), the target tinted by ``heat`` (H, W in
    0–1, at the target's size), each match drawn as two dots joined by a line."""
    import cv2

    h = max(source.shape[0], target.shape[0])

    def fit(im: np.ndarray) -> tuple[np.ndarray, float]:
        s = h / im.shape[0]
        return cv2.resize(im, (max(1, round(im.shape[1] * s)), h)), s

    tinted = target.astype(np.float32)
    tinted = tinted * (1 - 0.5 * heat[..., None]) + np.array([255, 0, 0]) * 0.5 * heat[..., None]
    src, ss = fit(source)
    dst, ts = fit(np.clip(tinted, 0, 255).astype(np.uint8))
    left, right = (src, dst) if source_left else (dst, src)
    canvas = np.ascontiguousarray(np.concatenate([left, right], axis=1))
    off = left.shape[1]
    colours = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
    for k, (a, b) in enumerate(pairs):
        pa = (a[0] * ss, a[1] * ss)
        pb = (b[0] * ts, b[1] * ts)
        if source_left:
            p1, p2 = pa, (pb[0] + off, pb[1])
        else:
            p1, p2 = (pa[0] + off, pa[1]), pb
        c = colours[k % len(colours)]
        q1, q2 = (round(p1[0]), round(p1[1])), (round(p2[0]), round(p2[1]))
        cv2.line(canvas, q1, q2, c, 1, cv2.LINE_AA)
        cv2.circle(canvas, q1, 4, c, -1, cv2.LINE_AA)
        cv2.circle(canvas, q2, 4, c, -1, cv2.LINE_AA)
    return canvas


def run(args: argparse.Namespace) -> int:
    import cv2

    from sketchpad.atomic import SaveError, atomic_write_bytes, atomic_write_text
    from sketchpad.commands.label import load_backbone
    from sketchpad.gallery.images import PhotoError, load_photo
    from sketchpad.vision.errors import WeightsError
    from sketchpad.vision.fusion.correspond import correspond

    try:
        points = parse_points(args.points)
        sketch, photo = load_photo(Path(args.sketch)), load_photo(Path(args.photo))
        backbone = load_backbone(args)
        source, target = (photo, sketch) if args.reverse else (sketch, photo)
        result = correspond(backbone, source, target, points, input_size=args.input_size)
    except (ValueError, PhotoError, WeightsError) as e:
        return _err(str(e))
    except KeyError as e:
        return _err(str(e.args[0]) if e.args else str(e))
    src_name, dst_name = ("photo", "sketch") if args.reverse else ("sketch", "photo")
    doc = {
        "backbone": backbone.spec.id,
        "source": src_name,
        "matches": [
            {
                src_name: [round(m.source[0], 2), round(m.source[1], 2)],
                dst_name: [round(m.target[0], 2), round(m.target[1], 2)],
                "confidence": round(m.confidence, 4),
            }
            for m in result.matches
        ],
    }
    text = json.dumps(doc, indent=2) + "\n"
    try:
        if args.json:
            atomic_write_text(args.json, text)
        else:
            sys.stdout.write(text)
        if args.overlay:
            heat = np.max([result.heatmap(i) for i in range(len(result.matches))], axis=0)
            pairs = [(m.source, m.target) for m in result.matches]
            img = overlay_image(source, target, pairs, heat, source_left=not args.reverse)
            ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            if not ok:
                return _err(f"{args.overlay}: the overlay could not be encoded")
            atomic_write_bytes(args.overlay, png.tobytes())
    except SaveError as e:
        return _err(str(e))
    return 0
