"""``sketchpad eval scene``: Acc@P, Acc@S and mIoU of the scene labeller on labelled sketches.

Reads SPG ndjson (part names as labels) or FS-COCO-style vector sketches with per-stroke labels
(:mod:`sketchpad.train.datasets_scene`), labels each sketch with its own label set and prints
the three metrics per category and overall (:mod:`sketchpad.train.scene_eval`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from sketchpad.commands.label import add_model_options, load_backbone, warn_random_weights

NAME = "sketchpad eval"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model on labelled data",
        description="Evaluate a model on labelled data and print its metrics.",
    )
    kinds = p.add_subparsers(dest="eval_kind", metavar="KIND", required=True)
    q = kinds.add_parser(
        "scene",
        help="scene / part labelling: Acc@P, Acc@S, mIoU",
        description="Label every sketch of a dataset with its own labels and print Acc@P (ink "
        "pixels), Acc@S (strokes) and mIoU (labels present) per category and overall. DATA is "
        "an SPG folder (<category>_valid.ndjson + <category>.txt) or an FS-COCO-style folder "
        "(vector_sketches/*.npy + classes/*.json).",
    )
    q.add_argument("--data", required=True, metavar="PATH", help="the dataset folder")
    q.add_argument(
        "--limit", type=int, metavar="N", help="at most N sketches per file / group (default all)"
    )
    q.add_argument("--batch-size", type=int, default=16, help="sketches per forward (default 16)")
    q.add_argument("--json", metavar="FILE", help="also write every score to this JSON file")
    add_model_options(q)
    q.set_defaults(func=run_scene)


def _err(msg: str) -> int:
    print(f"{NAME}: error: {msg}", file=sys.stderr)
    return 1


def _num(v: float) -> float | None:
    return None if math.isnan(v) else round(v, 6)


def run_scene(args: argparse.Namespace) -> int:
    from sketchpad.commands.progress import TextProgress
    from sketchpad.train.datasets_scene import DatasetError, detect_layout, read_scene_dataset

    t0 = time.perf_counter()
    data = Path(args.data)
    if args.limit is not None and args.limit < 1:
        return _err(f"--limit must be at least 1, got {args.limit}")
    if args.batch_size < 1:
        return _err(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        layout = detect_layout(data)
    except DatasetError as e:
        return _err(str(e))

    # Heavy imports only now: `sketchpad eval --help` stays fast.
    from sketchpad.atomic import SaveError, atomic_write_text
    from sketchpad.train.scene_eval import evaluate_scenes, labeller_predictor
    from sketchpad.vision.errors import WeightsError
    from sketchpad.vision.scene import SceneLabeller

    try:
        backbone = load_backbone(args)
        labeller = SceneLabeller(backbone, input_size=args.input_size)
        warn_random_weights(args, NAME)
    except (KeyError, ValueError, WeightsError) as e:
        return _err(str(e).strip("'\""))

    skipped: list[str] = []

    def warn(line: str) -> None:
        skipped.append(line)
        print(f"\n{NAME}: warning: {line}", file=sys.stderr)

    bar = TextProgress(f"sketches labelled ({layout})", None)
    done = [0]

    def progress(n: int) -> None:
        done[0] = n
        bar.update(n)

    try:
        result = evaluate_scenes(
            read_scene_dataset(data, limit=args.limit, warn=warn),
            labeller_predictor(labeller, batch_size=args.batch_size),
            batch_size=args.batch_size,
            progress=progress,
        )
    except (DatasetError, ValueError) as e:
        return _err(str(e))
    bar.close(done[0])
    if not result.sketches:
        return _err(f"{data}: no labelled sketch could be read")
    print(f"{layout} data {data}, backbone {backbone.spec.id} ({backbone.weights.source} weights)")
    print(result.table())
    if args.json:
        doc = {
            "data": str(data),
            "layout": layout,
            "backbone": backbone.spec.id,
            "weights_sha256": backbone.weights.sha256,
            "input_size": labeller.input_size,
            "groups": {
                g: {
                    "sketches": s.count,
                    "acc_p": _num(s.acc_p),
                    "acc_s": _num(s.acc_s),
                    "miou": _num(s.miou),
                }
                for g, s in result.groups.items()
            },
            "overall": {
                "sketches": result.overall.count,
                "acc_p": _num(result.overall.acc_p),
                "acc_s": _num(result.overall.acc_s),
                "miou": _num(result.overall.miou),
            },
            "sketch_scores": [
                {
                    "source": src,
                    "group": g,
                    "acc_p": _num(s.acc_p),
                    "acc_s": _num(s.acc_s),
                    "miou": _num(s.miou),
                }
                for src, g, s in result.sketches
            ],
            "skipped": skipped,
        }
        try:
            atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
        except SaveError as e:
            return _err(str(e))
    dt = time.perf_counter() - t0
    print(f"{result.overall.count} sketches, {len(skipped)} skipped ({dt:.1f} s)")
    return 0
