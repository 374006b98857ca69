"""``sketchpad eval``: score a model on labelled data.

- ``eval scene``: Acc@P, Acc@S and mIoU of the scene labeller. Reads SPG ndjson (part names as
  labels) or FS-COCO-style vector sketches with per-stroke labels
  (:mod:`sketchpad.train.datasets_scene`), labels each sketch with its own label set and prints
  the three metrics per category and overall (:mod:`sketchpad.train.scene_eval`).
- ``eval segmenter``: mIoU of seen and unseen classes, hIoU and pAcc of sketch-based photo
  segmentation (seed 000 §5) on photos with class masks and sketches per class
  (:mod:`sketchpad.train.seg_eval_data`, :mod:`sketchpad.train.seg_eval`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sketchpad.commands.label import add_model_options, load_backbone, warn_random_weights

NAME = "sketchpad eval"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_segmenter_parser(kinds)
    add_correspondence_parser(kinds)


def add_correspondence_parser(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    q = kinds.add_parser(
        "correspondence",
        help="sketch–photo correspondence: PCK@5, PCK@10 on PSC6K",
        description="Match every annotated sketch keypoint of PSC6K on its photo and print "
        "PCK@5 and PCK@10 (a match is correct within 5 %% / 10 %% of the photo's longer side). "
        "DATA is the folder of test_pairs_ps.csv; --sketchy the Sketchy root its paths are "
        "under. --split test scores the 20 %% that `train fusion` holds out (default); all, "
        "every pair.",
    )
    q.add_argument("--data", required=True, metavar="DIR", help="the PSC6K folder")
    q.add_argument("--sketchy", required=True, metavar="DIR", help="the Sketchy root")
    q.add_argument("--split", choices=["test", "all"], default="test", help="which pairs")
    q.add_argument("--limit", type=int, metavar="N", help="at most N pairs (default all)")
    q.add_argument("--json", metavar="FILE", help="also write the scores to this JSON file")
    add_model_options(q)
    q.set_defaults(func=run_correspondence, backbone="sketchfusion-sd21-l14")


def run_correspondence(args: argparse.Namespace) -> int:
    from sketchpad.train.fusion_data import DatasetError, read_psc6k, split_rows
    from sketchpad.train.fusion_eval import evaluate_psc6k
    from sketchpad.vision.errors import WeightsError

    problems: list[str] = []
    try:
        pairs = read_psc6k(
            Path(args.data) / "test_pairs_ps.csv", Path(args.sketchy), warn=problems.append
        )
        if args.split == "test":
            pairs = [pairs[i] for i in split_rows(len(pairs), 0.2, seed=0)[1]]
        if args.limit is not None:
            pairs = pairs[: max(0, args.limit)]
        if not pairs:
            raise DatasetError(f"{args.data}: no pairs to score")
        backbone = load_backbone(args)
    except (DatasetError, WeightsError, ValueError) as e:
        return _err(str(e))
    except KeyError as e:
        return _err(str(e.args[0]) if e.args else str(e))
    for line in problems[:5]:
        print(f"{NAME}: warning: {line}", file=sys.stderr)
    warn_random_weights(args, NAME)
    scores = evaluate_psc6k(backbone, pairs, input_size=args.input_size, warn=problems.append)
    doc = {"backbone": backbone.spec.id, "split": args.split, **scores.as_dict()}
    print(
        f"correspondence ({backbone.spec.id}, {scores.pairs} pairs, {scores.points} points): "
        + ", ".join(f"PCK@{round(a * 100)} {100 * v:.2f}" for a, v in scores.pck.items())
    )
    if args.json:
        failed = _write_json(args.json, doc)
        if failed is not None:
            return failed
    return 0


def add_segmenter_parser(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sketchpad.commands.segment import add_checkpoint_option

    q = kinds.add_parser(
        "segmenter",
        help="sketch-based segmentation: mIoU (seen / unseen), hIoU, pAcc",
        description="Query every photo with each sketch of each class its mask shows and "
        "print per-class IoU, mIoU of the seen and unseen classes, their harmonic mean hIoU "
        "and pixel accuracy. DATA holds JPEGImages/*.jpg, SegmentationClass/*.png (indexed "
        "PNG: pixel = class index, 0 background, 255 void, ignored), class_names.txt (line k "
        "= class k) and sketches/<class>/* (any sketch file; folder names match class names "
        "ignoring case, spaces and punctuation: tvmonitor = tv/monitor).",
    )
    q.add_argument("--data", required=True, metavar="DIR", help="the dataset folder")
    q.add_argument(
        "--sketches-per-class",
        type=int,
        metavar="N",
        help="query with the first N readable sketches of each class (default all)",
    )
    which = q.add_mutually_exclusive_group()
    which.add_argument("--unseen", nargs="+", metavar="CLASS", help="the unseen classes")
    which.add_argument("--unseen-file", metavar="FILE", help="the unseen classes, one a line")
    q.add_argument("--crf", action="store_true", help="refine masks with a dense CRF")
    q.add_argument(
        "--threshold", type=float, help="mask threshold on the calibrated probability (0.5)"
    )
    q.add_argument("--batch-size", type=int, default=8, help="photos per forward (default 8)")
    q.add_argument("--json", metavar="FILE", help="also write every score to this JSON file")
    add_model_options(q)
    add_checkpoint_option(q)
    q.set_defaults(func=run_segmenter)


def _err(msg: str) -> int:
    print(f"{NAME}: error: {msg}", file=sys.stderr)
    return 1


def _write_json(path: str, doc: object) -> int | None:
    """Write ``doc`` to ``path`` atomically; the exit code of a failure, else None."""
    from sketchpad.atomic import SaveError, atomic_write_text

    try:
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    except SaveError as e:
        return _err(str(e))
    return None


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
        if (failed := _write_json(args.json, doc)) is not None:
            return failed
    dt = time.perf_counter() - t0
    print(f"{result.overall.count} sketches, {len(skipped)} skipped ({dt:.1f} s)")
    return 0


def _unseen_names(
    args: argparse.Namespace, classes: list[str], warn: Callable[[str], None]
) -> tuple[list[str], str]:
    """(unseen classes among ``classes``, a sentence saying where they came from).

    Raises:
        ValueError: the unseen file cannot be read.
    """
    from sketchpad.train.datasets_common import class_key, read_small_text
    from sketchpad.train.datasets_sketchy import SKETCHY_UNSEEN_21
    from sketchpad.train.seg_eval import split_classes

    if args.unseen_file:
        problems: list[str] = []
        text = read_small_text(Path(args.unseen_file), problems.append, what="class list")
        if text is None:
            raise ValueError(problems[0] if problems else f"{args.unseen_file}: unreadable")
        given = [line.strip() for line in text.splitlines() if line.strip()]
    elif args.unseen:
        given = [n for arg in args.unseen for n in arg.split(",") if n.strip()]
    else:
        unseen = split_classes(classes, SKETCHY_UNSEEN_21, class_key)[1]
        if unseen:
            return unseen, f"the Sketchy 21-class unseen split ({len(unseen)} of them here)"
        return [], (
            "unseen classes: none (no class of the Sketchy 21-class unseen split is here, so "
            "every class counts as seen; give --unseen)"
        )
    keys = {class_key(c) for c in classes}
    for name in given:
        if class_key(name) not in keys:
            warn(f"unseen class {name!r} is not evaluated here (no sketches or no photo)")
    unseen = split_classes(classes, given, class_key)[1]
    return unseen, "--unseen-file" if args.unseen_file else "--unseen"


def run_segmenter(args: argparse.Namespace) -> int:  # noqa: C901 (a linear script of steps)
    from sketchpad.commands.progress import TextProgress
    from sketchpad.train.datasets_common import DatasetError
    from sketchpad.train.seg_eval_data import (
        iter_samples,
        load_sketches,
        pair_counts,
        read_seg_eval_data,
        scan_masks,
    )

    t0 = time.perf_counter()
    data_dir = Path(args.data)
    if args.sketches_per_class is not None and args.sketches_per_class < 1:
        return _err(f"--sketches-per-class must be at least 1, got {args.sketches_per_class}")
    if args.batch_size < 1:
        return _err(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        return _err(f"--threshold must be in (0, 1), got {args.threshold}")
    if args.checkpoint and args.random_weights:
        return _err("give --checkpoint or --random-weights, not both")
    skipped: list[str] = []

    def note(line: str) -> None:
        # A progress bar may be drawn in place on a terminal: start a new line.
        lead = "\n" if sys.stderr.isatty() else ""
        print(f"{lead}{NAME}: warning: {line}", file=sys.stderr)

    def warn(line: str) -> None:
        skipped.append(line)
        note(line)

    try:
        data = read_seg_eval_data(data_dir, warn)
        sketches = load_sketches(data, warn, per_class=args.sketches_per_class)
        photos = scan_masks(data, warn)
    except DatasetError as e:
        return _err(str(e))
    counts = pair_counts(data, sketches, photos)
    no_sketch = sorted(n for n, k in counts.items() if k == 0)
    if no_sketch:
        names = ", ".join(no_sketch)
        print(
            f"{NAME}: note: no sketches of {names}: those classes are not evaluated",
            file=sys.stderr,
        )
    classes = [n for n in data.class_names if counts.get(n)]
    if not classes:
        return _err(f"{data_dir}: no photo shows a class that has a readable sketch")
    try:
        unseen, unseen_from = _unseen_names(args, classes, note)
    except ValueError as e:
        return _err(str(e))
    seen = [c for c in classes if c not in unseen]

    # Heavy imports only now: `sketchpad eval --help` stays fast.
    import dataclasses

    from sketchpad.commands.progress import DownloadBar
    from sketchpad.commands.segment import model_choice
    from sketchpad.gallery.images import PhotoError, load_photo
    from sketchpad.search.model import build_segmenter
    from sketchpad.train.seg_eval import SegmenterPredictor, evaluate
    from sketchpad.vision.errors import WeightsError

    try:
        choice = model_choice(args)
        choice = dataclasses.replace(
            choice, pretrained=not args.random_weights, threshold=args.threshold or 0.5
        )
        download = DownloadBar(choice.backbone_id or "the checkpoint's")
        seg = build_segmenter(choice, download)
        download.finish()
        backbone = seg.backbone
        if args.random_weights:
            print(f"{NAME}: warning: random weights: the masks mean nothing", file=sys.stderr)
    except (KeyError, ValueError, WeightsError) as e:
        return _err(str(e).strip("'\""))
    predictor = SegmenterPredictor(
        seg, crf=args.crf, threshold=args.threshold, batch_size=args.batch_size
    )

    # Every photo embedded first: a query is scored over them all, as over a folder in the app.
    good, batch = [], []
    bar = TextProgress("photos embedded", len(photos))
    for i, item in enumerate(photos):
        bar.update(i)
        try:
            image = load_photo(item.photo)
        except PhotoError as e:
            warn(f"skipped {e}")
            continue
        if image.shape[:2] != item.hw:
            h, w = item.hw
            warn(f"skipped {item.photo}: {image.shape[1]}×{image.shape[0]} but its mask {w}×{h}")
            continue
        good.append(item)
        batch.append(image)
        if len(batch) >= args.batch_size:
            predictor.add_photos(batch)
            batch = []
    if batch:
        predictor.add_photos(batch)
    bar.close(len(photos))
    total = sum(len(sketches.get(data.class_names[k], ())) for it in good for k in it.classes)
    if not total:
        return _err(f"{data_dir}: no readable photo shows a class that has a readable sketch")

    bar = TextProgress("sketch–photo pairs segmented", total)
    done = [0]

    def progress(n: int, _total: int) -> None:
        done[0] = n
        bar.update(n)

    try:
        result = evaluate(
            predictor,
            iter_samples(data, sketches, good, warn),
            seen,
            unseen,
            progress=progress,
            total=total,
            warn=warn,
        )
    except ValueError as e:
        return _err(str(e))
    bar.close(done[0])
    winfo = backbone.weights
    tau = f" (tau {seg.tau:g})" if seg.calibration == "fixed" else ""
    print(
        f"data {data_dir}: {len(good)} photos, {len(classes)} classes; backbone "
        f"{backbone.spec.id} ({winfo.source} weights{', fine-tuned' if winfo.fine_tuned else ''}), "
        f"{seg.calibration} calibration{tau}{', CRF' if args.crf else ''}"
    )
    print(f"unseen classes: {', '.join(unseen)} ({unseen_from})" if unseen else unseen_from)
    print(result.summary.table())
    if args.json:
        doc = {
            "data": str(data_dir),
            "backbone": backbone.spec.id,
            "weights_sha256": winfo.sha256,
            "checkpoint": args.checkpoint,
            "calibration": seg.calibration,
            "tau": seg.tau if seg.calibration == "fixed" else None,
            "threshold": seg.threshold if args.threshold is None else args.threshold,
            "input_size": seg.input_size,
            "patch_path": seg.patch_path,
            "crf": bool(args.crf),
            "seen": seen,
            "unseen": unseen,
            **result.summary.as_dict(),
            "pair_scores": [
                {
                    "photo": p.photo,
                    "sketch": p.sketch,
                    "class": p.class_name,
                    "iou": _num(p.iou),
                    "pacc": _num(p.pacc),
                }
                for p in result.pairs
            ],
            "skipped": skipped,
        }
        if (failed := _write_json(args.json, doc)) is not None:
            return failed
    dt = time.perf_counter() - t0
    print(f"{result.summary.pairs} pairs, {len(skipped)} files skipped ({dt:.1f} s)")
    return 0
