"""``sketchpad segment``: a sketch (or part of it, or sketch + words) → masks for photos.

A thin front: the query is answered by the search core (:mod:`sketchpad.search`), exactly as
in the window, and written by the window's exporter (:mod:`sketchpad.gallery.export`):
``masks/<name>.png`` (0/255), ``overlays/<name>.jpg`` (a preview), ``annotations.json``
(COCO), the sketch, and ``results.json`` (every photo with its score, boxes and files, the
ranking, the options used). Names are unique across all the inputs. The photo folders are
never written to.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sketchpad.gallery.export import ExportOptions
    from sketchpad.gallery.query import CachedBank
    from sketchpad.search.core import SearchCore, SearchResult
    from sketchpad.search.model import ModelChoice
    from sketchpad.search.spec import Part, QuerySpec
    from sketchpad.vision.bank import FeatureBank
    from sketchpad.vision.segmenter import Segmenter

NAME = "sketchpad segment"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "segment",
        help="segment photos from a sketch",
        description="Segment every photo that shows what the sketch shows. Writes a mask PNG "
        "and an overlay preview per photo, and results.json.",
    )
    p.add_argument("--sketch", required=True, metavar="FILE", help="the sketch (any format)")
    p.add_argument(
        "--index",
        type=int,
        default=0,
        metavar="N",
        help="drawing N of a multi-drawing file (0-based)",
    )
    p.add_argument(
        "--photos", required=True, nargs="+", metavar="DIR|FILE", help="photo folders and/or files"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--backbone",
        metavar="ID",
        help="backbone id (`sketchpad models list`; default: the first installed of "
        "clip-vit-b16, clip-vit-b32, clip-vit-l14)",
    )
    p.add_argument("--weights", metavar="PATH", help="a weights file or folder to use")
    add_checkpoint_option(p)
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--text", help="words added to the sketch (CLIP backbones)")
    p.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="sketch weight when --text is given: q = α·sketch + (1−α)·text",
    )
    part = p.add_mutually_exclusive_group()
    part.add_argument(
        "--lasso",
        metavar="x,y,x,y,…",
        help="query only what this polygon (canvas coordinates) encloses",
    )
    part.add_argument(
        "--partition",
        metavar="N:K",
        help="split the sketch into N sectors around its centroid, query sector K",
    )
    part.add_argument(
        "--compose",
        action="store_true",
        help="composed sketch: query each stroke group and the whole, unite masks",
    )
    p.add_argument(
        "--lasso-mode",
        choices=["cut", "whole"],
        default="cut",
        help="cut strokes at the lasso (default) or take whole strokes it touches",
    )
    p.add_argument(
        "--theta",
        type=float,
        default=0.0,
        help="angle of the first partition line, degrees (default 0)",
    )
    p.add_argument("--crf", action="store_true", help="refine masks with a dense CRF")
    p.add_argument(
        "--exact",
        action="store_true",
        help="score every patch of every photo (one product over the whole folder) instead of "
        "the two-stage query large folders use (a compact index shortlists the photos that can "
        "match or reach the top 100, the exact scoring runs on them)",
    )
    p.add_argument(
        "--shortlist-from",
        type=int,
        default=None,
        metavar="N",
        help="folders of at least N photos are read from their compressed patch store and "
        "searched in two stages (default 4000); --exact overrides it",
    )
    p.add_argument(
        "--format",
        default="coco",
        metavar="F,F,…",
        help="annotation formats besides the mask PNGs and overlays: coco (RLE, and polygons "
        "in annotations_polygons.json), labelme (a JSON per photo), yolo (segmentation labels "
        "and data.yaml); comma-separated, default coco",
    )
    p.add_argument(
        "--class-name",
        action="append",
        metavar="NAME",
        help="the class name in the annotations (default: the words, else 'sketch'); repeat "
        "for a composed sketch: the whole sketch's name, then each stroke group's",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="mask threshold on the calibrated probability (default 0.5)",
    )
    p.add_argument(
        "--calibration",
        choices=["fixed", "gallery-relative"],
        help="default: fixed for fine-tuned weights, else gallery-relative",
    )
    p.add_argument("--input-size", type=int, help="model input side (finer maps when larger)")
    p.add_argument(
        "--plain", action="store_true", help="plain CLIP patch tokens instead of the v-v path"
    )
    p.add_argument("--batch-size", type=int, default=8, help="photos per forward (default 8)")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use or fill the folders' feature caches (encode every photo now)",
    )
    p.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="cached features kept in memory, e.g. 512M, 4G (default 2G or "
        "$SKETCHPAD_QUERY_MEMORY); beyond it they are streamed from the cache",
    )
    p.set_defaults(func=run)


def _err(msg: str) -> int:
    print(f"{NAME}: error: {msg}", file=sys.stderr)
    return 1


def add_checkpoint_option(p: argparse.ArgumentParser) -> None:
    """``--checkpoint``, shared by ``segment`` and ``eval segmenter``."""
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="a segmenter checkpoint of `sketchpad train` (DIR/name or any of its files): "
        "backbone, weights and calibration (fixed, with its tau) come from it",
    )


def model_choice(args: argparse.Namespace) -> ModelChoice:
    """The :class:`~sketchpad.search.model.ModelChoice` the options ask for (``--backbone``,
    ``--weights``, ``--checkpoint``, ``--device`` and, where the command has them,
    ``--calibration``, ``--input-size``, ``--plain``, ``--threshold``).

    Raises:
        ValueError: ``--checkpoint`` with ``--weights``.
    """
    from sketchpad.search.model import ModelChoice
    from sketchpad.vision.installed import default_clip_backbone

    checkpoint = getattr(args, "checkpoint", None)
    backbone = args.backbone or (None if checkpoint else default_clip_backbone())
    return ModelChoice(
        backbone_id=backbone,
        weights=Path(args.weights) if args.weights else None,
        checkpoint=Path(checkpoint) if checkpoint else None,
        device=args.device,
        calibration=getattr(args, "calibration", None),
        input_size=getattr(args, "input_size", None),
        patch_path="plain" if getattr(args, "plain", False) else None,
        threshold=getattr(args, "threshold", None) or 0.5,
    )


#: ``--format`` values (ExportOptions fields).
FORMATS = ("coco", "labelme", "yolo")


def export_options(args: argparse.Namespace) -> ExportOptions:
    """The exporter's options from ``--format`` and ``--class-name`` (every photo written).

    Raises:
        ValueError: an unknown format or a bad class name.
    """
    from sketchpad.gallery.export import ExportOptions

    formats = {f.strip().lower() for f in args.format.split(",") if f.strip()}
    unknown = formats - set(FORMATS)
    if unknown or not formats:
        raise ValueError(
            f"--format {args.format!r}: choose from {', '.join(FORMATS)} (comma-separated)"
        )
    return ExportOptions(
        only_matches=False,
        coco="coco" in formats,
        labelme="labelme" in formats,
        yolo="yolo" in formats,
        class_names=tuple(args.class_name or ()),
    )


def _parse_floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as e:
        raise ValueError(f"{what}: numbers separated by commas expected, got {text!r}") from e
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{what}: numbers must be finite")
    return vals


def query_part(args: argparse.Namespace) -> Part | None:
    """The part ``--lasso`` or ``--partition`` selects, or None."""
    from sketchpad.search.spec import LassoPart, SectorPart

    if args.lasso:
        vals = _parse_floats(args.lasso, "--lasso")
        if len(vals) < 6 or len(vals) % 2:
            raise ValueError("--lasso needs at least 3 points: x,y,x,y,x,y")
        return LassoPart(np.array(vals).reshape(-1, 2), args.lasso_mode)
    if args.partition:
        try:
            n, k = (int(v) for v in args.partition.split(":"))
        except ValueError as e:
            raise ValueError(f"--partition expects N:K, got {args.partition!r}") from e
        if n < 1 or not 0 <= k < n:
            raise ValueError(f"--partition {args.partition}: sector {k} does not exist")
        return SectorPart(n, k, math.radians(args.theta))
    return None


def _check_out(out: Path, photo_args: list[str]) -> None:
    """The photo folders are read-only to us: refuse an output folder inside one."""
    from sketchpad.gallery.export_names import is_inside

    for item in photo_args:
        p = Path(item)
        folder = (p if p.is_dir() else p.parent).resolve()
        if is_inside(out, folder):
            raise ValueError(
                f"--out {out} is inside the photo folder {folder}; "
                "Sketchpad never writes into photo folders: choose another folder"
            )


def run(args: argparse.Namespace) -> int:  # noqa: C901 (a linear script of steps)
    from sketchpad.commands.progress import DownloadBar
    from sketchpad.gallery.images import PhotoError
    from sketchpad.gallery.query import memory_budget
    from sketchpad.search.spec import QuerySpec
    from sketchpad.sketch.io import SketchFileError, read_sketch

    t0 = time.perf_counter()
    out = Path(args.out)
    try:
        sketch = read_sketch(Path(args.sketch), index=args.index)
        part = query_part(args)
        _check_out(out, args.photos)
        if not 0.0 <= args.alpha <= 1.0:
            raise ValueError(f"--alpha must be in [0, 1], got {args.alpha}")
        if not 0.0 < args.threshold < 1.0:
            raise ValueError(f"--threshold must be in (0, 1), got {args.threshold}")
        spec = QuerySpec(
            sketch=sketch, part=part, text=args.text, alpha=args.alpha, compose=args.compose
        )
        choice = model_choice(args)
        export = export_options(args)
    except (SketchFileError, ValueError) as e:
        return _err(str(e))
    folders, files, problems = _split_photo_args(args.photos, args.no_cache)
    for pr in problems:
        print(f"{NAME}: warning: {pr}", file=sys.stderr)
    if not folders and not files:
        return _err("no photos found in " + ", ".join(args.photos))
    try:
        budget = memory_budget(args.memory_budget)
    except ValueError as e:
        return _err(f"--memory-budget: {e}")
    from sketchpad.search.shortlist import MIN_PHOTOS

    min_photos = MIN_PHOTOS if args.shortlist_from is None else args.shortlist_from
    if min_photos < 1:
        return _err(f"--shortlist-from must be at least 1, got {min_photos}")

    # Heavy imports only now: `sketchpad segment --help` stays fast.
    from sketchpad.search.core import SearchCore
    from sketchpad.search.model import build_segmenter
    from sketchpad.vision.bank import FeatureBank
    from sketchpad.vision.weights import WeightsError

    download = DownloadBar(choice.backbone_id or "the checkpoint's")
    try:
        seg = build_segmenter(choice, download)
        download.finish()
        core = SearchCore(seg, exact=True if args.exact else None, min_photos=min_photos)
        core.encode(spec)  # before indexing: a bad part or words fail at once
    except (KeyError, ValueError, WeightsError) as e:
        return _err(str(e).strip("'\""))

    # Features: folders from their caches (indexed first: only new or changed photos are
    # encoded), single files encoded now. One bank, one product per query vector.
    banks: list[FeatureBank] = []
    photos: list[Path] = []  # bank order
    labels: list[str] = []  # each photo's name in the export, unique
    skipped: list[dict[str, str]] = []
    single = len(folders) == 1 and not files
    for folder in folders:
        got = _cached_folder(folder, seg, args.batch_size, budget, core)
        if got is None:  # the cache is unusable: encode this folder's photos now
            from sketchpad.gallery.images import expand_photo_args

            found, probs = expand_photo_args([folder])
            for pr in probs:
                print(f"{NAME}: warning: {pr}", file=sys.stderr)
            files = list(dict.fromkeys([*files, *found]))
            single = False
            continue
        cached, folder_skipped = got
        banks.append(cached)
        photos += cached.paths()
        prefix = "" if single else f"{folder.resolve().name or 'photos'}/"
        labels += [prefix + n for n in cached.names]
        skipped += folder_skipped
    if files:
        encoded, ok_files, file_skipped = _encode_files(seg, files, args.batch_size)
        banks.append(encoded)
        photos += ok_files
        labels += [p.name for p in ok_files]
        skipped += file_skipped
    bank = FeatureBank.concat(banks)
    try:
        if not len(bank):
            return _err("no readable photos in " + ", ".join(args.photos))
        result = core.search(spec, bank, threshold=args.threshold)
        return _write(args, out, core, result, bank, photos, labels, skipped, spec, export, t0)
    except PhotoError as e:
        return _err(str(e))
    finally:
        for b in banks:
            close = getattr(b, "close", None)
            if close is not None:
                close()


def _write(
    args: argparse.Namespace,
    out: Path,
    core: SearchCore,
    result: SearchResult,
    bank: FeatureBank,
    photos: list[Path],
    labels: list[str],
    skipped: list[dict[str, str]],
    spec: QuerySpec,
    export: ExportOptions,
    t0: float,
) -> int:
    """Every photo's full-size mask through the exporter, then ``results.json``."""
    from sketchpad.atomic import SaveError, atomic_write_text
    from sketchpad.commands.progress import TextProgress
    from sketchpad.gallery.export import GalleryExporter
    from sketchpad.gallery.images import PhotoError

    seg = core.segmenter
    bb = seg.backbone
    options = {
        "backbone": bb.spec.id,
        "weights": str(bb.weights.path) if bb.weights.path else None,
        "weights_sha256": bb.weights.sha256,
        "device": str(bb.device),
        "checkpoint": args.checkpoint,
        "calibration": seg.calibration,
        "tau": seg.tau if seg.calibration == "fixed" else None,
        "threshold": args.threshold,
        "input_size": seg.input_size,
        "patch_path": seg.patch_path,
        "crf": bool(args.crf),
        "text": spec.text,
        "alpha": args.alpha if spec.text else None,
        "lasso": args.lasso,
        "lasso_mode": args.lasso_mode if args.lasso else None,
        "partition": args.partition,
        "theta_degrees": args.theta if args.partition else None,
        "compose": bool(args.compose),
        "queries": list(result.labels),
        "label": spec.text or "sketch",
        # "two-stage": a large folder's patch store, shortlisted (--exact: "exact")
        "search": "exact" if result.exact else "two-stage",
    }
    roots = list(dict.fromkeys(p.parent if p.is_file() else p for p in map(Path, args.photos)))
    try:
        exporter = GalleryExporter(out, roots, export, query=options)
    except ValueError as e:
        return _err(str(e))
    records: list[dict[str, object]] = []
    bar = TextProgress("masks written", len(photos))
    found = 0
    try:
        for i, path in enumerate(photos):
            try:
                image = _load_for_mask(path, bank.layouts[i].photo_hw)
            except PhotoError as e:
                print(f"\n{NAME}: warning: skipped {e}", file=sys.stderr)
                skipped.append({"path": str(e.path), "reason": e.reason, "code": e.code})
                continue
            m = core.mask(result, bank, i, threshold=args.threshold, photo=image, crf=args.crf)
            stem = exporter.add(labels[i], m.mask.shape, m, photo=image, photo_path=path)
            assert stem is not None  # only_matches is off: every photo is written
            found += bool(m.score >= args.threshold)
            records.append(
                {
                    "photo": str(path),
                    "name": labels[i],
                    "width": image.shape[1],
                    "height": image.shape[0],
                    "mask": f"masks/{stem}.png",
                    "overlay": f"overlays/{stem}.jpg",
                    "score": float(m.score),  # exact: the window shows the same number
                    "match": bool(m.score >= args.threshold),
                    "mask_fraction": round(float(m.mask.mean()), 6),
                    "instances": [
                        {
                            "box_xyxy": list(inst.box_xyxy),
                            "score": round(inst.score, 6),
                            "area": inst.area,
                        }
                        for inst in m.instances
                    ],
                }
            )
            bar.update(i + 1)
        bar.close(len(photos))
        exporter.finish(spec.sketch)
        order = {str(photos[i]): k for k, i in enumerate(result.ranking)}
        results = {
            "sketch": str(args.sketch),
            "options": options,
            "photos": records,
            "skipped": skipped,
            "ranking": sorted((str(r["photo"]) for r in records), key=order.__getitem__),
            "classes": list(exporter.class_names),
            "formats": sorted(f for f in FORMATS if getattr(export, f)),
        }
        atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    except (SaveError, ValueError) as e:
        return _err(str(e))
    dt = time.perf_counter() - t0
    print(
        f"{len(records)} photos segmented, {found} with the concept, {len(skipped)} skipped "
        f"→ {out} ({dt:.1f} s)"
    )
    return 0


def _split_photo_args(
    items: list[str], no_cache: bool
) -> tuple[list[Path], list[Path], list[object]]:
    """Folders (served from their caches) and single files (encoded now), plus problems.
    A file inside a folder also named is taken from the folder."""
    from sketchpad.gallery.images import expand_photo_args

    folders = [] if no_cache else [Path(a) for a in items if Path(a).is_dir()]
    seen = {f.resolve() for f in folders}
    rest = [a for a in items if no_cache or not Path(a).is_dir()]
    files, problems = expand_photo_args(rest) if rest else ([], [])
    files = [f for f in files if f.resolve().parent not in seen]
    return list(dict.fromkeys(folders)), files, list(problems)


def _cached_folder(
    folder: Path, seg: Segmenter, batch_size: int, budget: int, core: SearchCore
) -> tuple[CachedBank, list[dict[str, str]]] | None:
    """Index ``folder`` (incrementally) and load its cache — or its patch store, by the
    search core's rule (``core.exact``, ``core.min_photos``); None when the cache cannot be
    used (locked by another indexer, unwritable), after saying why."""
    from sketchpad.commands.progress import EtaProgress
    from sketchpad.gallery.cache import CacheError, CacheLockedError
    from sketchpad.gallery.images import PhotoError
    from sketchpad.gallery.index import index_folder, model_key
    from sketchpad.gallery.query import load_bank
    from sketchpad.names import display_name

    bar = EtaProgress(f"photos of {folder} indexed")

    def load() -> CachedBank:  # the search core decides: the patch store or float16 rows
        key = model_key(seg)
        return load_bank(
            folder, key, budget_bytes=budget, exact=core.exact, min_photos=core.min_photos
        )

    try:
        summary = index_folder(folder, seg, batch_size=max(1, batch_size), progress=bar)
        bar.finish()
        bank = load()
        if bank.damaged:  # rows that failed their checksums: re-encoded now, not next time
            print(
                f"{NAME}: warning: {len(bank.damaged)} cached photos of {display_name(folder)} "
                "were damaged: encoding them again",
                file=sys.stderr,
            )
            bank.close()
            index_folder(folder, seg, batch_size=max(1, batch_size))
            bank = load()
    except CacheLockedError as e:
        print(f"{NAME}: warning: {e}; encoding its photos without the cache", file=sys.stderr)
        return None
    except (CacheError, PhotoError) as e:
        print(f"{NAME}: warning: {e}; encoding its photos without the cache", file=sys.stderr)
        return None
    skipped = []
    for path, code, reason in summary.skipped:
        print(f"{NAME}: warning: skipped {path}: {reason} [{code}]", file=sys.stderr)
        skipped.append({"path": str(path), "reason": reason, "code": code})
    if summary.up_to_date:
        print(f"{folder}: {summary.up_to_date} photos' features from the cache", file=sys.stderr)
    return bank, skipped


def _encode_files(
    seg: Segmenter, files: list[Path], batch_size: int
) -> tuple[FeatureBank, list[Path], list[dict[str, str]]]:
    """Photos given one by one, encoded now in batches (decoded photos are dropped after)."""
    from sketchpad.commands.progress import TextProgress
    from sketchpad.gallery.images import PhotoError, load_photo
    from sketchpad.vision.bank import FeatureBank

    bank = FeatureBank()
    ok: list[Path] = []
    skipped: list[dict[str, str]] = []
    bar = TextProgress("photos embedded", len(files))
    imgs: list[np.ndarray] = []
    paths: list[Path] = []

    def flush() -> None:
        bank.extend(seg.embed_photos(imgs, batch_size=len(imgs)), names=[str(p) for p in paths])
        ok.extend(paths)
        imgs.clear()
        paths.clear()

    for i, path in enumerate(files):
        try:
            imgs.append(load_photo(path))
            paths.append(path)
        except PhotoError as e:
            print(f"\n{NAME}: warning: skipped {e}", file=sys.stderr)
            skipped.append({"path": str(path), "reason": e.reason, "code": e.code})
        if len(imgs) >= max(1, batch_size):
            flush()
        bar.update(i + 1)
    if imgs:
        flush()
    bar.close(len(files))
    return bank, ok, skipped


def _load_for_mask(path: Path, photo_hw: tuple[int, int]) -> np.ndarray:
    """The photo again for its mask; it must be the one that was indexed."""
    from sketchpad.gallery.images import PhotoError, load_photo

    image = load_photo(path)
    if image.shape[:2] != tuple(photo_hw):
        raise PhotoError(path, "changed while segmenting (its size is not the indexed size)")
    return image
