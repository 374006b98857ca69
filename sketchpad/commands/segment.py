"""``sketchpad segment``: a sketch (or part of it, or sketch + words) → masks for photos.

Writes, per photo, ``<name>.mask.png`` (0/255) and ``<name>.overlay.jpg`` (a preview), plus
``results.json`` (scores, boxes, the options used), with a progress bar and a one-line
summary. The photo folders are never written to.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

NAME = "sketchpad segment"


def add_parser(sub: argparse._SubParsersAction) -> None:
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
        default="clip-vit-b16",
        metavar="ID",
        help="backbone id (`sketchpad models list`; default clip-vit-b16)",
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


def model_choice(
    args: argparse.Namespace, default_backbone: str
) -> tuple[str, str | None, dict[str, object]]:
    """(backbone id, weights, Segmenter keyword arguments) that the options ask for: those of
    ``--checkpoint`` when given (:mod:`sketchpad.vision.checkpoints`), else ``--backbone`` and
    ``--weights`` with no extra arguments.

    Raises:
        ValueError: ``--checkpoint`` with ``--weights``, or with another ``--backbone``.
        sketchpad.vision.errors.WeightsError: the checkpoint cannot be used (the message says
            why: missing file, another kind of checkpoint, unknown backbone).
    """
    from sketchpad.vision.checkpoints import read_segmenter_checkpoint

    if not getattr(args, "checkpoint", None):
        return args.backbone, args.weights, {}
    if args.weights:
        raise ValueError("give --checkpoint or --weights, not both")
    ckpt = read_segmenter_checkpoint(args.checkpoint)
    if args.backbone not in (default_backbone, ckpt.backbone_id):
        raise ValueError(
            f"--backbone {args.backbone}, but the checkpoint is of {ckpt.backbone_id}: "
            "leave --backbone out"
        )
    return ckpt.backbone_id, str(ckpt.weights), ckpt.segmenter_kwargs()


def _parse_floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as e:
        raise ValueError(f"{what}: numbers separated by commas expected, got {text!r}") from e
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{what}: numbers must be finite")
    return vals


def _query_part(args: argparse.Namespace, sketch: object) -> object | None:
    from sketchpad.sketch.parts import lasso_part, sector_part

    if args.lasso:
        vals = _parse_floats(args.lasso, "--lasso")
        if len(vals) < 6 or len(vals) % 2:
            raise ValueError("--lasso needs at least 3 points: x,y,x,y,x,y")
        return lasso_part(sketch, np.array(vals).reshape(-1, 2), args.lasso_mode)
    if args.partition:
        try:
            n, k = (int(v) for v in args.partition.split(":"))
        except ValueError as e:
            raise ValueError(f"--partition expects N:K, got {args.partition!r}") from e
        return sector_part(sketch, n, k, math.radians(args.theta))
    return None


def _check_out(out: Path, photo_args: list[str]) -> None:
    """The photo folders are read-only to us: refuse an output folder inside one."""
    from sketchpad.gallery.export import is_inside

    for item in photo_args:
        p = Path(item)
        folder = (p if p.is_dir() else p.parent).resolve()
        if is_inside(out, folder):
            raise ValueError(
                f"--out {out} is inside the photo folder {folder}; "
                "Sketchpad never writes into photo folders: choose another folder"
            )


def _unique_names(paths: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        n = seen.get(p.name, 0)
        seen[p.name] = n + 1
        names.append(p.name if n == 0 else f"{p.stem}-{n + 1}{p.suffix}")
    return names


def run(args: argparse.Namespace) -> int:  # noqa: C901 (a linear script of steps)
    from sketchpad.atomic import SaveError, atomic_write_bytes, atomic_write_text
    from sketchpad.commands.progress import TextProgress
    from sketchpad.gallery.export import jpeg_bytes, png_bytes
    from sketchpad.gallery.images import PhotoError, expand_photo_args
    from sketchpad.gallery.query import memory_budget
    from sketchpad.sketch.io import SketchFileError, read_sketch

    t0 = time.perf_counter()
    out = Path(args.out)
    try:
        sketch = read_sketch(Path(args.sketch), index=args.index)
        part = _query_part(args, sketch)
        _check_out(out, args.photos)
        if not 0.0 <= args.alpha <= 1.0:
            raise ValueError(f"--alpha must be in [0, 1], got {args.alpha}")
        if not 0.0 < args.threshold < 1.0:
            raise ValueError(f"--threshold must be in (0, 1), got {args.threshold}")
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

    # Heavy imports only now: `sketchpad segment --help` stays fast.
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.overlay import overlay_mask
    from sketchpad.vision.segmenter import FeatureBank, Segmenter
    from sketchpad.vision.weights import WeightsError

    try:
        backbone_id, weights, options = model_choice(args, "clip-vit-b16")
    except (ValueError, WeightsError) as e:
        return _err(str(e))
    bar = TextProgress(f"downloading {backbone_id} weights", None)
    downloaded = [0]

    def on_download(done: int, total: int | None) -> None:
        downloaded[0] = done
        bar.update(done // 2**20, None if total is None else max(1, total // 2**20), " MB")

    # A checkpoint's calibration, tau, input size and patch path, unless the options say.
    options = {"patch_path": "vv", **options}
    if args.calibration:
        options["calibration"] = args.calibration
    if args.input_size:
        options["input_size"] = args.input_size
    if args.plain:
        options["patch_path"] = "plain"
    try:
        backbone = create_backbone(
            backbone_id, weights=weights, device=args.device, progress=on_download
        )
        if downloaded[0]:
            bar.close(downloaded[0] // 2**20, " MB")
        seg = Segmenter(backbone, threshold=args.threshold, **options)
        if args.compose:
            queries = seg.group_queries(sketch)
        else:
            queries = [seg.sketch_query(sketch, part=part, text=args.text, alpha=args.alpha)]
    except (KeyError, ValueError, WeightsError) as e:
        return _err(str(e).strip("'\""))

    # Features: folders from their caches (indexed first: only new or changed photos are
    # encoded), single files encoded now. One bank, one product per query.
    banks, photos, skipped = [], [], []
    for folder in folders:
        got = _cached_folder(folder, seg, args.batch_size, budget)
        if got is None:  # the cache is unusable: encode this folder's photos now
            found, probs = expand_photo_args([folder])
            for pr in probs:
                print(f"{NAME}: warning: {pr}", file=sys.stderr)
            files = list(dict.fromkeys([*files, *found]))
            continue
        bank, folder_skipped = got
        banks.append(bank)
        photos += bank.paths()
        skipped += folder_skipped
    if files:
        bank, ok_files, file_skipped = _encode_files(seg, files, args.batch_size)
        banks.append(bank)
        photos += ok_files
        skipped += file_skipped
    bank = FeatureBank.concat(banks)
    if not len(bank):
        return _err("no readable photos in " + ", ".join(args.photos))
    ok = list(range(len(photos)))
    names = _unique_names(photos)
    scores = [seg.score(q, bank) for q in queries]

    # Masks only now, one photo at a time (CRF needs the photo again).
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return _err(f"cannot create {out}: {e.strerror}")
    records = []
    bar = TextProgress("masks written", len(ok))
    found = 0
    try:
        for j, i in enumerate(ok):
            try:
                image = _load_for_mask(photos[i], bank.layouts[j].photo_hw)
            except PhotoError as e:
                print(f"\n{NAME}: warning: skipped {e}", file=sys.stderr)
                skipped.append({"path": str(e.path), "reason": e.reason, "code": e.code})
                continue
            m = seg.composed_mask(scores, bank, j, photo=image, crf=args.crf)
            mask_name, overlay_name = f"{names[i]}.mask.png", f"{names[i]}.overlay.jpg"
            atomic_write_bytes(out / mask_name, png_bytes(m.mask.astype(np.uint8) * 255))
            preview = overlay_mask(image, m.mask, m.instances, group_map=m.group_map)
            atomic_write_bytes(out / overlay_name, jpeg_bytes(preview))
            found += bool(m.mask.any())
            records.append(
                {
                    "photo": str(photos[i]),
                    "width": image.shape[1],
                    "height": image.shape[0],
                    "mask": mask_name,
                    "overlay": overlay_name,
                    "score": round(float(m.score), 6),
                    "rank_score": round(float(scores[0].photo_scores[j]), 6),
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
            bar.update(j + 1)
        bar.close(len(ok))
        results = {
            "sketch": str(args.sketch),
            "options": {
                "backbone": backbone.spec.id,
                "weights": str(backbone.weights.path) if backbone.weights.path else None,
                "weights_sha256": backbone.weights.sha256,
                "device": str(backbone.device),
                "checkpoint": args.checkpoint,
                "calibration": seg.calibration,
                "tau": seg.tau if seg.calibration == "fixed" else None,
                "threshold": seg.threshold,
                "input_size": seg.input_size,
                "patch_path": seg.patch_path,
                "crf": bool(args.crf),
                "text": args.text,
                "alpha": args.alpha if args.text else None,
                "lasso": args.lasso,
                "lasso_mode": args.lasso_mode if args.lasso else None,
                "partition": args.partition,
                "theta_degrees": args.theta if args.partition else None,
                "compose": bool(args.compose),
                "queries": [q.label for q in queries],
            },
            "photos": records,
            "skipped": skipped,
            "ranking": [
                records[k]["photo"]
                for k in np.argsort([-r["score"] for r in records], kind="stable")
            ],
        }
        atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    except (SaveError, PhotoError) as e:
        return _err(str(e))
    finally:
        for b in banks:
            if hasattr(b, "close"):
                b.close()
    dt = time.perf_counter() - t0
    print(
        f"{len(ok)} photos segmented, {found} with the concept, {len(skipped)} skipped "
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
    folder: Path, seg: object, batch_size: int, budget: int
) -> tuple[object, list[dict[str, str]]] | None:
    """Index ``folder`` (incrementally) and load its cache; None when the cache cannot be
    used (locked by another indexer, unwritable), after saying why."""
    from sketchpad.commands.progress import EtaProgress
    from sketchpad.gallery.cache import CacheError, CacheLockedError
    from sketchpad.gallery.images import PhotoError
    from sketchpad.gallery.index import index_folder, model_key
    from sketchpad.gallery.query import load_bank

    bar = EtaProgress(f"photos of {folder} indexed")
    try:
        summary = index_folder(folder, seg, batch_size=max(1, batch_size), progress=bar)
        bar.finish()
        bank = load_bank(folder, model_key(seg), budget_bytes=budget, cache_path=None)
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
    seg: object, files: list[Path], batch_size: int
) -> tuple[object, list[Path], list[dict[str, str]]]:
    """Photos given one by one, encoded now in batches (decoded photos are dropped after)."""
    from sketchpad.commands.progress import TextProgress
    from sketchpad.gallery.images import PhotoError, load_photo
    from sketchpad.vision.segmenter import FeatureBank

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
