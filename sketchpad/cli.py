"""Command line: ``sketchpad`` opens the window; subcommands run headless.

Heavy modules (Qt, torch) are imported inside the commands that need them, so
``sketchpad --help`` and the headless commands start fast and the window paints quickly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sketchpad import __version__


def _cmd_convert(args: argparse.Namespace) -> int:
    from sketchpad.atomic import SaveError
    from sketchpad.sketch.io import SketchFileError, count_drawings, read_sketch, write_sketch

    src, dst = Path(args.input), Path(args.output)
    try:
        sketch = read_sketch(src, index=args.index)
        write_sketch(sketch, dst)
    except (SketchFileError, SaveError) as e:
        print(f"sketchpad convert: error: {e}", file=sys.stderr)
        return 1
    total = count_drawings(src)
    which = f" (drawing {args.index + 1} of {total})" if total > 1 else ""
    kind = (
        "raster"
        if sketch.is_raster
        else f"{len(sketch.strokes)} strokes, {sketch.num_points} points"
    )
    print(f"{src} → {dst}{which}: {kind}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "startup":
        from sketchpad.workspace.startup_bench import run

        return run(runs=args.runs, report=print)  # the real start: cold, then warm
    if args.what == "vision":
        from sketchpad.search import bench_vision as bench
        from sketchpad.vision.registry import get_spec, list_backbones

        ids = args.backbones or [s.id for s in list_backbones()]
        try:
            for i in ids:
                get_spec(i)
        except KeyError as e:
            print(f"sketchpad bench: error: {e.args[0]}", file=sys.stderr)
            return 1
        return bench.run(ids, report=print, device=args.device, repeats=args.repeats)
    if args.what == "gallery":
        return _bench_gallery(args)
    if args.what == "cluster":
        from sketchpad.gallery import cluster_bench
        from sketchpad.vision.registry import get_spec

        bid = (args.backbones or ["clip-vit-b16"])[0]
        try:
            get_spec(bid)
            if args.index_photos < 1 or args.workers < 1:
                raise ValueError("--index-photos and --workers must be ≥ 1")
        except (KeyError, ValueError) as e:
            print(f"sketchpad bench: error: {str(e).strip(chr(39))}", file=sys.stderr)
            return 1
        return cluster_bench.run(bid, report=print, photos=args.index_photos, workers=args.workers)
    if args.what == "library":
        from sketchpad.gallery import bench_library
        from sketchpad.vision.registry import get_spec

        bid = (args.backbones or ["clip-vit-b16"])[0]
        try:
            get_spec(bid)
        except KeyError as e:
            print(f"sketchpad bench: error: {e.args[0]}", file=sys.stderr)
            return 1
        return bench_library.run(bid, report=print, big=not args.small)
    if args.what == "train":
        from sketchpad.train import bench as train_bench

        return train_bench.run(report=print)
    if args.what == "fusion":
        from sketchpad.train import fusion_bench
        from sketchpad.vision.registry import get_spec

        bid = (args.backbones or ["test-sketchfusion-tiny"])[0]
        try:
            if get_spec(bid).family != "sketchfusion":
                raise ValueError(f"{bid} is not a SketchFusion backbone")
        except (KeyError, ValueError) as e:
            print(f"sketchpad bench: error: {str(e).strip(chr(39))}", file=sys.stderr)
            return 1
        device = args.device or "cpu"
        if args.timesteps:
            try:
                return fusion_bench.sweep_timesteps(
                    print, tuple(args.timesteps), backbone_id=bid, device=device,
                    steps=args.fusion_steps,
                )  # fmt: skip
            except ValueError as e:
                print(f"sketchpad bench: error: {e}", file=sys.stderr)
                return 1
        return fusion_bench.run(print, backbone_id=bid, device=device, steps=args.fusion_steps)
    if args.what == "ui":
        from sketchpad.ui import bench_ui

        backbone = (args.backbones or ["test-clip-tiny"])[0]
        return bench_ui.run(photos=args.photos, pen_ups=args.pen_ups, backbone=backbone)
    raise AssertionError(args.what)  # argparse restricts the choices


def _bench_gallery(args: argparse.Namespace) -> int:
    from sketchpad.gallery import bench
    from sketchpad.gallery.query import memory_budget
    from sketchpad.vision.registry import get_spec

    bid = (args.backbones or ["clip-vit-b16"])[0]
    try:
        get_spec(bid)
        budget = memory_budget(args.memory_budget)
        if min(args.sizes) < 1 or args.index_photos < 1 or args.naive_photos < 1:
            raise ValueError("--sizes, --index-photos and --naive-photos must be ≥ 1")
        if args.queries < 2 or args.large_queries < 2:
            raise ValueError("--queries and --large-queries must be ≥ 2")
        if args.threads is not None and args.threads < 1:
            raise ValueError("--threads must be ≥ 1")
        from sketchpad.vision.quant import CODECS

        bad = [c for c in args.codecs if c not in CODECS]
        if bad:
            raise ValueError(f"--codecs: unknown {', '.join(bad)} (known: {', '.join(CODECS)})")
    except (KeyError, ValueError) as e:
        print(f"sketchpad bench: error: {str(e).strip(chr(39))}", file=sys.stderr)
        return 1
    return bench.run(
        bid,
        report=print,
        device=args.device,
        sizes=args.sizes,
        index_photos=args.index_photos,
        naive_photos=args.naive_photos,
        queries=args.queries,
        budget=budget,
        large_sizes=[n for n in args.large_sizes if n > 0],
        codecs=args.codecs,
        large_queries=args.large_queries,
        threads=args.threads,
        only_large=args.only_large,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sketchpad",
        description="Sketchpad: draw what you want to find.",
        epilog="Without a command, `sketchpad [FILE]` opens the window (and FILE, a sketch).",
    )
    parser.add_argument("--version", action="version", version=f"sketchpad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="headless commands")

    p = sub.add_parser(
        "convert",
        help="convert a sketch between formats (by file extension)",
        description="Convert a sketch between formats, chosen by extension: .json (Sketchpad), "
        ".ndjson (Quick, Draw!, incl. SPG part labels), .npz (Sketch-RNN stroke-3), "
        ".npy (FS-COCO vector), .svg, .png/.jpg (bitmap, read only as a raster sketch; "
        ".png can be written).",
    )
    p.add_argument("input", help="the file to read")
    p.add_argument("output", help="the file to write (format from its extension)")
    p.add_argument(
        "--index",
        type=int,
        default=0,
        metavar="N",
        help="which drawing of a multi-drawing file (0-based, default 0)",
    )
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "bench",
        help="measure performance targets",
        description="Benchmarks that print measured figures and targets.",
    )
    p.add_argument(
        "what",
        choices=["startup", "vision", "gallery", "library", "cluster", "ui", "train", "fusion"],
        help="startup: time from launch to the first painted window; vision: encoder and "
        "mask timings per backbone (random weights); gallery: indexing throughput, query "
        "latency over cached photos, speed-up over re-encoding, cache size and memory; library: a "
        "generated real-world photo folder (odd names, HEIC, AVIF, RAW, 108/200 Mpx JPEGs, bad "
        "files) indexed by `sketchpad index`: every file accounted for, peak memory; "
        "cluster: `index --cluster local` with --workers Ray workers against the local index "
        "on the same photos (throughput ratio, caches compared row by row); ui: "
        "GUI stalls while indexing and querying, pen-up → overlays painted, scrolling; train: "
        "trains a tiny SBIR critic and a mask-free segmenter (and its ablations) on a synthetic "
        "world on the CPU and scores them on held-out seen and unseen classes; fusion: "
        "SketchFusion's correspondence on generated shapes under random warps (PCK@5/10 of "
        "the trained fused model, untrained, SD-only, CLIP-only and the seed's ablations)",
    )
    p.add_argument(
        "--runs", type=int, default=5, help="startup: warm runs after the cold one (default 5)"
    )
    p.add_argument(
        "--backbones",
        nargs="+",
        metavar="ID",
        help="vision: which (default all); gallery, library, cluster: the first (default "
        "clip-vit-b16); ui: the first (default test-clip-tiny)",
    )
    p.add_argument("--device", help="vision: auto (default), cpu, cuda, mps")
    p.add_argument("--repeats", type=int, default=3, help="vision: timed repetitions (default 3)")
    p.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1000, 10000],
        metavar="N",
        help="gallery: cached photos per latency run (default 1000 10000)",
    )
    p.add_argument(
        "--index-photos",
        type=int,
        default=64,
        help="gallery, cluster: photos indexed (default 64)",
    )
    p.add_argument("--workers", type=int, default=2, help="cluster: Ray workers (default 2)")
    p.add_argument(
        "--naive-photos",
        type=int,
        default=32,
        help="gallery: photos re-encoded to time the naive approach (default 32)",
    )
    p.add_argument("--queries", type=int, default=40, help="gallery: queries per size (default 40)")
    p.add_argument("--memory-budget", metavar="SIZE", help="gallery: query memory budget")
    p.add_argument(
        "--large-sizes",
        type=int,
        nargs="+",
        default=[1000, 10000, 100000],
        metavar="N",
        help="gallery: synthetic libraries for the two-stage query over the compressed patch "
        "store against the exact method (default 1000 10000 100000; 0 skips it)",
    )
    p.add_argument(
        "--codecs",
        nargs="+",
        default=["q5r"],
        metavar="C",
        help="gallery: patch codecs of the large libraries (q5r default, q4r, q4, q8)",
    )
    p.add_argument(
        "--large-queries", type=int, default=20, help="gallery: queries per large library"
    )
    p.add_argument(
        "--threads",
        type=int,
        help="gallery: torch threads for the large libraries (default: as set)",
    )
    p.add_argument("--only-large", action="store_true", help="gallery: only the large libraries")
    p.add_argument(
        "--small", action="store_true", help="library: without the 108 and 200 Mpx photos"
    )
    p.add_argument(
        "--photos", type=int, default=10_000, help="ui: generated photos (default 10000)"
    )
    p.add_argument("--pen-ups", type=int, default=20, help="ui: timed pen-ups (default 20)")
    p.add_argument(
        "--fusion-steps", type=int, default=150, help="fusion: training steps per variant (150)"
    )
    p.add_argument(
        "--timesteps",
        type=int,
        nargs="+",
        metavar="T",
        help="fusion: instead of the variants, choose the diffusion timestep among these by "
        "PCK@10 on validation pairs, then score the chosen one on the held-out pairs",
    )
    p.set_defaults(func=_cmd_bench)
    from sketchpad.commands import correspond, index, label, models, segment
    from sketchpad.commands import eval as eval_cmd
    from sketchpad.commands import train as train_cmd

    segment.add_parser(sub)
    label.add_parser(sub)
    index.add_parser(sub)
    models.add_parser(sub)
    eval_cmd.add_parser(sub)
    train_cmd.add_parser(sub)
    correspond.add_parser(sub)
    parser.set_defaults(commands=tuple(sub.choices))
    return parser


def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sketchpad", add_help=False)
    p.add_argument("--startup-probe", action="store_true")
    p.add_argument("file", nargs="?")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and (
        argv[0] in parser.get_default("commands") or argv[0] in ("-h", "--help", "--version")
    ):
        args = parser.parse_args(argv)
        return int(args.func(args))
    # The window. Qt accepts its own options (-platform, -style ...): pass unknown ones on.
    args, rest = _gui_parser().parse_known_args(argv)
    from sketchpad.ui.app import run_app

    qt_argv = list(rest)
    if args.file:
        qt_argv.append(args.file)
    if not args.startup_probe:
        return run_app(qt_argv)
    from sketchpad.workspace.startup_bench import engine_report_line, probe_report_lines

    def report() -> None:
        print("\n".join(probe_report_lines()), flush=True)

    def engine(error: str) -> None:
        print(engine_report_line(error), flush=True)

    return run_app(qt_argv, on_first_paint=report, on_engine=engine)


if __name__ == "__main__":
    sys.exit(main())
