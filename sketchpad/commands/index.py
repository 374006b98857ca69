"""``sketchpad index DIR``: compute and cache a photo folder's features (incremental,
resumable), with a progress bar, an ETA and a summary; ``--cluster`` encodes on a Ray cluster
(:mod:`sketchpad.gallery.cluster`) into the same cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "sketchpad index"
#: Exit status after Ctrl+C (what was committed is kept).
INTERRUPTED = 130


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "index",
        help="cache a photo folder's features for fast queries",
        description="Compute the features of every photo in DIR once and keep them in the user "
        "cache folder (never in DIR). Only new or changed photos are encoded; an interrupted "
        "run resumes where it stopped.",
    )
    p.add_argument("folder", metavar="DIR", help="the photo folder")
    p.add_argument("--backbone", default="clip-vit-b16", metavar="ID", help="backbone id")
    p.add_argument("--weights", metavar="PATH", help="a weights file or folder to use")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--recursive", action="store_true", help="include subfolders")
    p.add_argument("--rebuild", action="store_true", help="re-encode every photo")
    p.add_argument("--batch-size", type=int, default=8, help="photos per forward (default 8)")
    p.add_argument("--input-size", type=int, help="model input side (finer maps when larger)")
    p.add_argument("--plain", action="store_true", help="plain CLIP patch tokens, not v-v")
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="encode on a Ray cluster: its address (ray://HOST:10001, HOST:6379, auto) or "
        "'local' to start Ray on this machine; the cache is the one a local run writes. "
        "Needs pip install 'sketchpad[cluster]'; the folder must be at the same path on "
        "every node",
    )
    p.add_argument(
        "--cluster-workers",
        type=int,
        metavar="N",
        help="model actors on the cluster (default: one per GPU, else one per CPU)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="check the whole cache first (SQLite's integrity check and every row's "
        "checksum); damaged rows are re-encoded by this run",
    )
    p.set_defaults(func=run)


def _err(msg: str) -> int:
    print(f"{NAME}: error: {msg}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    from sketchpad.commands.progress import EtaProgress
    from sketchpad.gallery.images import PhotoError
    from sketchpad.names import display_name

    folder = Path(args.folder)
    if not folder.is_dir():
        return _err(f"{display_name(folder)}: not a folder")
    if args.cluster_workers is not None and not args.cluster:
        return _err("--cluster-workers needs --cluster")
    if args.cluster_workers is not None and args.cluster_workers < 1:
        return _err(f"--cluster-workers must be at least 1, got {args.cluster_workers}")
    if args.cluster and args.device:
        return _err("--device does not apply with --cluster: the actors use their own GPUs")
    from sketchpad.gallery.cache import CacheError
    from sketchpad.gallery.index import index_folder
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.errors import WeightsError
    from sketchpad.vision.segmenter import Segmenter

    try:
        # With --cluster the weights are only read here and sent on: keep them exact (fp32).
        device = "cpu" if args.cluster else args.device
        backbone = create_backbone(args.backbone, weights=args.weights, device=device)
        seg = Segmenter(
            backbone, input_size=args.input_size, patch_path="plain" if args.plain else "vv"
        )
    except (KeyError, ValueError, WeightsError) as e:
        return _err(str(e).strip("'\""))
    encoder = None
    if args.cluster:
        from sketchpad.gallery.cluster import RayEncoder

        encoder = RayEncoder(seg, args.cluster, workers=args.cluster_workers)
    from sketchpad.gallery.cluster import ClusterError  # light: Ray loads when a run starts

    progress = EtaProgress("photos encoded")
    try:
        summary = index_folder(
            folder,
            seg,
            recursive=args.recursive,
            rebuild=args.rebuild,
            batch_size=max(1, args.batch_size),
            progress=progress,
            encoder=encoder,
            verify=args.verify,
        )
    except (CacheError, PhotoError, ClusterError) as e:
        progress.finish()
        return _err(str(e))
    except KeyboardInterrupt:
        progress.finish()
        print(
            f"{NAME}: interrupted after {progress.done} photos; their features are kept: run "
            "the same command again to go on",
            file=sys.stderr,
        )
        return INTERRUPTED
    progress.finish()
    for note in summary.repairs:
        where = "" if note.startswith("patch store") else "feature cache: "
        print(f"{NAME}: {where}{note}", file=sys.stderr)
    for path, code, reason in summary.skipped:
        print(f"{NAME}: skipped {display_name(path)}: {reason} [{code}]", file=sys.stderr)
    by_code = ", ".join(f"{n} {c}" for c, n in sorted(summary.skipped_by_code().items()))
    print(
        f"{summary.indexed} indexed, {summary.up_to_date} already current, "
        f"{len(summary.skipped)} skipped{f' ({by_code})' if by_code else ''}, "
        f"{summary.removed} removed → {display_name(summary.cache_path)} "
        f"({summary.seconds:.1f} s)"
    )
    return 0
