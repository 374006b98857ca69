"""``sketchpad label``: label every stroke and ink pixel of a scene sketch.

Labels are typed (``--labels "tree, house, dog"``), read from a file (``--labels-file``, one
per line, so labels may hold commas), proposed from a caption (``--caption``, matched against
the shipped COCO / Quick, Draw! vocabulary) or suggested zero-shot (``--suggest``: the best
vocabulary name of each stroke group); with none of these, the sketch file's own part names
(SPG's ``<category>.txt``, Sketchpad JSON's ``part_names`` or stroke labels) are the labels.
Writes into ``--out``: the labelled sketch as Sketchpad JSON and SVG, a label-map PNG, a
per-stroke CSV and one isolation mask per label (:mod:`sketchpad.vision.scene_export`), each
file atomically.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sketchpad.vision.backbone import Backbone

NAME = "sketchpad label"


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The backbone options shared by ``label`` and ``eval scene``."""
    p.add_argument(
        "--backbone",
        metavar="ID",
        help="a CLIP backbone id (`sketchpad models list`; default: the first installed of "
        "clip-vit-b16, clip-vit-b32, clip-vit-l14)",
    )
    p.add_argument("--weights", metavar="PATH", help="a weights file or folder to use")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="random weights instead of trained ones (smoke tests: the labels mean nothing)",
    )
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--input-size", type=int, help="model input side (finer maps when larger)")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "label",
        help="label the strokes of a scene sketch",
        description="Give every stroke and ink pixel of a sketch one of the labels (CLIP with "
        "the v-v path and CLIP Surgery's redundancy removal). Writes labelled.json, "
        "labelled.svg (vector sketches), label_map.png, strokes.csv and isolated-<label>.png "
        "into --out.",
    )
    p.add_argument("--sketch", required=True, metavar="FILE", help="the sketch (any format)")
    p.add_argument(
        "--index", type=int, default=0, metavar="N", help="drawing N of a multi-drawing file"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--labels", metavar='"a,b,c"', help="the labels, separated by commas")
    which.add_argument(
        "--labels-file",
        metavar="FILE",
        help="the labels, one per line (commas allowed; blank lines and # comments skipped), UTF-8",
    )
    which.add_argument(
        "--caption",
        metavar='"…"',
        help="a caption: the vocabulary names it mentions are the labels",
    )
    which.add_argument(
        "--suggest",
        action="store_true",
        help="zero-shot: the best vocabulary name of each stroke group are the labels",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.epilog = (
        "With none of --labels, --labels-file, --caption and --suggest, the sketch's own part "
        "names are the labels (SPG: <category>.txt beside the .ndjson; Sketchpad JSON: "
        "metadata part_names, else its strokes' labels)."
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="isolation threshold on the normalised score, 0–1 (default: 0.71 for fine-tuned "
        "weights; zero-shot: where each label scores above the labels' weighted mean)",
    )
    p.add_argument("--top-k", type=int, default=5, help="suggestions per group (default 5)")
    p.add_argument(
        "--recognition-head",
        metavar="PATH",
        help="with --suggest: a trained recognition head (`sketchpad train fusion --task "
        "recognition`, .safetensors + .json) names the sketch and its groups instead of the "
        "zero-shot vocabulary; a head that cannot be used is named in a warning and the "
        "suggestions stay zero-shot",
    )
    add_model_options(p)
    p.set_defaults(func=run)


def _err(msg: str) -> int:
    print(f"{NAME}: error: {msg}", file=sys.stderr)
    return 1


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def load_backbone(args: argparse.Namespace) -> Backbone:
    """The backbone the options ask for, with a progress bar while weights download.

    Raises:
        KeyError, ValueError, sketchpad.vision.errors.WeightsError: as ``create_backbone``.
    """
    from sketchpad.commands.progress import DownloadBar
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.installed import default_clip_backbone

    backbone_id = args.backbone or default_clip_backbone()
    if args.random_weights:
        return create_backbone(backbone_id, device=args.device, pretrained=False)
    download = DownloadBar(backbone_id)
    backbone = create_backbone(
        backbone_id, weights=args.weights, device=args.device, progress=download
    )
    download.finish()
    return backbone


def warn_random_weights(args: argparse.Namespace, name: str) -> None:
    if args.random_weights:
        print(f"{name}: warning: random weights: the labels mean nothing", file=sys.stderr)


def run(args: argparse.Namespace) -> int:  # noqa: C901 (a linear script of steps)
    from sketchpad.sketch.io import SketchFileError, read_sketch
    from sketchpad.sketch.parts import part_names, read_label_file
    from sketchpad.vision.scene_vocab import load_vocabulary, parse_label_list

    t0 = time.perf_counter()
    src, out = Path(args.sketch), Path(args.out)
    try:
        sketch = read_sketch(src, index=args.index)
    except SketchFileError as e:
        return _err(str(e))
    if sketch.bbox() is None:
        return _err(f"{src}: the sketch has no ink to label")
    if args.threshold is not None and not (
        math.isfinite(args.threshold) and 0.0 <= args.threshold <= 1.0
    ):
        return _err(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.top_k < 1:
        return _err(f"--top-k must be at least 1, got {args.top_k}")
    if args.recognition_head is not None and not args.suggest:
        return _err("--recognition-head names the suggestions' model: give --suggest too")
    if out.exists() and not out.is_dir():
        return _err(f"--out {out}: exists and is not a folder")
    labels: tuple[str, ...] = ()
    if args.labels is not None:
        labels = parse_label_list(args.labels)
        if not labels:
            return _err(f"--labels {args.labels!r} holds no label")
    elif args.labels_file is not None:
        try:
            labels = read_label_file(args.labels_file)
        except SketchFileError as e:
            return _err(f"--labels-file {e}")
    elif args.caption is not None:
        labels = load_vocabulary().labels_from_caption(args.caption)
        if not labels:
            return _err(
                f"--caption {args.caption!r} names nothing in the vocabulary "
                "(COCO and Quick, Draw! categories); give --labels instead"
            )
    elif not args.suggest:
        labels = part_names(sketch)
        if not labels:
            return _err(
                f"{src}: the sketch has no part names of its own; give --labels, "
                "--labels-file, --caption or --suggest"
            )
        print("labels: the sketch's part names: " + ", ".join(f'"{n}"' for n in labels))

    # Heavy imports only now: `sketchpad label --help` stays fast.
    from sketchpad.atomic import SaveError
    from sketchpad.vision.errors import WeightsError
    from sketchpad.vision.scene import SceneLabeller
    from sketchpad.vision.scene_export import export_scene
    from sketchpad.vision.scene_suggest import suggest_labels

    try:
        backbone = load_backbone(args)
        labeller = SceneLabeller(backbone, input_size=args.input_size)
        warn_random_weights(args, NAME)
        suggestions = None
        if args.suggest:
            recogniser = None
            if args.recognition_head is not None:
                from sketchpad.vision.fusion.recognise import try_load_recogniser

                recogniser, why = try_load_recogniser(
                    args.recognition_head,
                    device=args.device,
                    pretrained=not args.random_weights,
                )
                if why:
                    print(f"{NAME}: warning: {why}", file=sys.stderr)
            suggestions = suggest_labels(
                labeller, sketch, top_k=args.top_k, recogniser=recogniser
            )
            labels = suggestions.proposed_labels()
        result = labeller.label(sketch, labels)
    except (KeyError, ValueError, WeightsError) as e:
        return _err(str(e).strip("'\""))
    info = {
        "sketch": str(src),
        "index": args.index,
        "caption": args.caption,
        "backbone": backbone.spec.id,
        "weights_sha256": backbone.weights.sha256,
        "input_size": labeller.input_size,
    }
    if suggestions is not None:
        info["suggestions"] = {
            "source": suggestions.source,
            "whole": [[s.label, round(s.probability, 6)] for s in suggestions.whole],
            "groups": [
                {
                    "strokes": list(g.stroke_ids),
                    "labels": [[s.label, round(s.probability, 6)] for s in g.suggestions],
                }
                for g in suggestions.groups
            ],
        }
    try:
        written = export_scene(out, sketch, result, threshold=args.threshold, info=info)
    except SaveError as e:
        return _err(str(e))
    what = "ink component" if result.pixels.from_components else "stroke"
    counts = {lab: 0 for lab in result.labels}
    for name in result.stroke_label_names():
        if name is not None:
            counts[name] += 1
    if suggestions is not None:
        by = "" if suggestions.source == "zero-shot" else f" by {suggestions.source}"
        print(
            f"suggested{by}: "
            + ", ".join(f"{s.label} ({s.probability:.0%})" for s in suggestions.whole)
        )
    for lab, n in counts.items():
        pixels = int((result.pixel_labels == result.labels.index(lab)).sum())
        print(f"  {lab}: {_plural(n, what)}, {_plural(pixels, 'pixel')}")
    dt = time.perf_counter() - t0
    print(
        f"{_plural(len(result.stroke_ids), what)} labelled with "
        f"{_plural(len(result.labels), 'label')}, "
        f"{len(written)} files → {out} ({dt:.1f} s)"
    )
    return 0
