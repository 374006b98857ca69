"""``sketchpad train``: train an SBIR critic, a segmenter or a scene labeller (DESIGN §4.5).

- ``train sbir``: the SBIR critic (triplet + classification loss) on Sketchy / Sketchy-Extended;
- ``train segmenter``: the mask-free segmenter on Sketchy, with a frozen critic (``--critic``);
- ``train scene``: the scene labeller on FS-COCO / FSCOCO-Seg captioned sketches.

Each run writes checkpoint ``--out/<kind>`` (``.safetensors``, ``.json``, ``.state.pt``; the
scene labeller also ``.extra.safetensors``) every ``--checkpoint-every`` steps and at the end.
Ctrl+C finishes the step, saves and exits (a second Ctrl+C stops at once, still saving).
``--resume`` goes on with the batches the uninterrupted run would have seen; a checkpoint is
never overwritten without it, and a folder with another kind of checkpoint is refused.

``--nproc N`` runs the same command in N processes (:mod:`sketchpad.train.distributed`); a
process started by torchrun joins its group. Rank 0 prints and writes the checkpoint; the
others print only their errors.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sketchpad.commands.train_args import DATA_SKETCHY, add_train_parser

if TYPE_CHECKING:
    from sketchpad.train.datasets import SketchyDataset
    from sketchpad.train.datasets_sketchy import SketchFormat
    from sketchpad.train.loop import LoopConfig, Trainer

NAME = "sketchpad train"
#: Exit status after Ctrl+C (the checkpoint is saved).
INTERRUPTED = 130
#: Seconds between progress lines when stderr is not a terminal (a log file).
LOG_EVERY_S = 60.0
#: This process's rank when training in several (only rank 0 prints notes and progress).
_rank = 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sketchpad train KIND``'s options (in :mod:`~sketchpad.commands.train_args`)."""
    add_train_parser(
        sub, sbir=run_sbir, segmenter=run_segmenter, scene=run_scene, fusion=run_fusion
    )


# ---------------------------------------------------------------- shared steps


def _err(msg: str) -> int:
    who = f" (process {_rank})" if _rank else ""
    print(f"{NAME}{who}: error: {msg}", file=sys.stderr)
    return 1


def _warn(msg: str) -> None:
    if _rank:
        return
    lead = "\n" if sys.stderr.isatty() else ""
    print(f"{lead}{NAME}: warning: {msg}", file=sys.stderr)


def _note(msg: str) -> None:
    if not _rank:
        print(f"{NAME}: {msg}", file=sys.stderr)


def _check_args(args: argparse.Namespace) -> None:
    """Raises ValueError naming the first bad option."""
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a positive number, got {args.lr}")
    if args.checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be 0 or more, got {args.checkpoint_every}")
    if args.nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {args.nproc}")
    if args.batch_size % args.nproc:
        raise ValueError(
            f"--batch-size {args.batch_size} does not split evenly over --nproc {args.nproc}: "
            "the batch size is the whole step's, make it a multiple of the process count"
        )
    margin = getattr(args, "margin", None)
    if margin is not None and not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"--margin must be 0 or more, got {margin}")


def checkpoints_in(folder: Path) -> list[tuple[Path, str, int]]:
    """(metadata file, kind, step) of each Sketchpad checkpoint directly in ``folder``."""
    found = []
    for f in sorted(folder.glob("*.json")):
        try:
            if f.stat().st_size > 4 << 20:
                continue
            meta = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("format") == "sketchpad-checkpoint":
            found.append((f, str(meta.get("kind")), int(meta.get("step", 0) or 0)))
    return found


def _check_out(out: Path, kind: str, resume: bool) -> None:
    """Raises ValueError when ``out`` cannot take this run's checkpoint."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if not out.is_dir():
        return
    for meta, other, step in checkpoints_in(out):
        if other != kind:
            raise ValueError(
                f"--out {out} holds a {other!r} checkpoint ({meta.name}): train the {kind} "
                "into another folder"
            )
        if meta.name == f"{kind}.json" and not resume:
            raise ValueError(
                f"--out {out} already holds a {kind} checkpoint (step {step}, {meta}): pass "
                "--resume to continue it, or choose another --out folder"
            )


def _check_backbone(args: argparse.Namespace) -> Any:  # noqa: ANN401 - a BackboneSpec
    """The backbone's spec; its weights resolved now (unless random), so a missing file fails
    before anything is built. Raises KeyError, WeightsError."""
    from sketchpad.commands.progress import TextProgress
    from sketchpad.vision.registry import get_spec
    from sketchpad.vision.weights import resolve_weights

    spec = get_spec(args.backbone)
    if not args.random_weights:
        bar, got = TextProgress(f"downloading {spec.id} weights", None), [0]

        def on_download(done: int, total: int | None) -> None:
            got[0] = done
            bar.update(done >> 20, None if total is None else max(1, total >> 20), " MB")

        args.weights = str(resolve_weights(spec, args.weights, progress=on_download).path)
        if got[0]:
            bar.close(got[0] >> 20, " MB")
    return spec


def _loop(args: argparse.Namespace, kind: str) -> LoopConfig:
    from sketchpad.train.loop import LoopConfig

    return LoopConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device or "auto",
        out=Path(args.out),
        name=kind,
        checkpoint_every=args.checkpoint_every,
    )


def _read_sketchy(args: argparse.Namespace, kind: str, svg_by_default: bool) -> SketchyDataset:
    """The training part of the Sketchy dataset ``--data``. Raises DatasetError."""
    from sketchpad.train.datasets import (
        DatasetError,
        detect_training_layout,
        read_sketchy,
        split_classes,
    )

    data = Path(args.data)
    layout = detect_training_layout(data)
    if layout not in ("sketchy", "sketchy-extended"):
        raise DatasetError(f"{data}: a {layout} dataset, but `train {kind}` needs {DATA_SKETCHY}")
    extended = layout == "sketchy-extended"
    ds = None
    fmt: SketchFormat = "svg" if args.sketch_format == "svg" else "png"  # auto: png unless…
    if args.sketch_format == "auto" and svg_by_default:
        try:
            ds, fmt = read_sketchy(data, sketch_format="svg", extended=extended, warn=_warn), "svg"
        except DatasetError:  # no SVG folder: the rendered PNGs
            fmt = "png"
    if ds is None:
        ds = read_sketchy(data, sketch_format=fmt, extended=extended, warn=_warn)
    what = [layout, f"{fmt} sketches"]
    if ds.test_photos:
        ds = ds.split("train")
        what.append("the training split of testset.txt")
    if args.unseen_split == "sketchy21":
        ds = ds.with_categories(split_classes(ds.categories, warn=_warn).seen)
        what.append("the seen classes of the 21-class zero-shot split")
    _note(
        f"{len(ds.sketches)} sketches, {len(ds.photos)} photos, {len(ds.categories)} classes "
        f"({', '.join(what)})"
    )
    return ds


def _format_losses(losses: Mapping[str, float]) -> str:
    """``total=… a=… b=…``: the total first, then the parts as the trainer names them."""
    keys = sorted(losses, key=lambda k: k != "total")
    return " ".join(f"{k}={losses[k]:.4g}" for k in keys)


@contextlib.contextmanager
def _stop_on_ctrl_c() -> Iterator[Callable[[], bool]]:
    """A ``should_stop`` that turns true at the first Ctrl+C; the second interrupts."""
    asked = [False]

    def on_sigint(signum: int, frame: object) -> None:
        if asked[0]:
            raise KeyboardInterrupt
        asked[0] = True
        _note("stopping after this step and saving (Ctrl+C again to stop at once)")

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: Ctrl+C stays a KeyboardInterrupt
        yield lambda: False
        return
    try:
        yield lambda: asked[0]
    finally:
        signal.signal(signal.SIGINT, previous)


def _warn_changed(meta: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """A warning for each setting of this run that differs from the checkpoint's run."""
    loop, cfg = meta.get("loop") or {}, meta.get("config", meta.get("scene")) or {}
    old = {**{k: loop[k] for k in ("batch_size", "seed") if k in loop}, **cfg}
    new = json.loads(json.dumps(dict(new), default=str))  # tuples → lists, as saved
    for key, value in new.items():
        if key in old and old[key] != value and key not in ("weights", "pretrained"):
            _warn(f"resuming with {key}={value!r}; the checkpoint's run had {old[key]!r}")


def _fit(trainer: Trainer, args: argparse.Namespace, kind: str, config: Mapping[str, Any]) -> int:
    """Resume if asked, train with a progress bar, save, and say where it went."""
    from sketchpad.commands.progress import TextProgress
    from sketchpad.train.checkpoint import CheckpointError, read_metadata
    from sketchpad.train.loop import TrainingError

    paths = trainer.checkpoint
    assert paths is not None
    lrs = [g["lr"] for g in trainer.optimizer.param_groups]
    try:
        if args.resume and paths.exists():
            _warn_changed(read_metadata(paths.metadata), config)
            trainer.resume()
            # This run's options win over the saved learning rates (Adam's moments stay).
            for group, lr in zip(trainer.optimizer.param_groups, lrs, strict=True):
                group["lr"] = lr
            _note(f"resumed {paths.weights} at step {trainer.step}")
        elif args.resume:
            _note(f"no checkpoint in {paths.weights.parent} yet: starting at step 0")
    except CheckpointError as e:
        return _err(str(e))
    start, total = trainer.step, trainer.loop.steps
    if start >= total:
        _note(f"the checkpoint is at step {start} already: raise --steps to train further")
        return 0

    bar = TextProgress(kind, total, stream=io.StringIO() if _rank else None)  # rank 0 shows it
    logged = [time.monotonic()]

    def progress(step: int, steps: int, losses: Mapping[str, float]) -> None:
        if _rank:
            return
        bar.label = f"{kind} {_format_losses(losses)}"
        bar.update(step, steps)
        if not sys.stderr.isatty() and time.monotonic() - logged[0] >= LOG_EVERY_S:
            logged[0] = time.monotonic()  # a log file gets a line now and then, not a bar
            _note(f"step {step}/{steps} {_format_losses(losses)}")

    t0 = time.perf_counter()
    interrupted = False
    with _stop_on_ctrl_c() as should_stop:
        try:
            trainer.fit(progress=progress, should_stop=should_stop)
        except KeyboardInterrupt:
            interrupted = True
        except (TrainingError, CheckpointError) as e:
            bar.close(trainer.step)
            kept = f" (the checkpoint of step {trainer.step} is saved)" if trainer.step else ""
            return _err(f"{e}{kept}")
        interrupted = interrupted or should_stop()
    bar.close(trainer.step)
    files = [paths.weights, paths.metadata, paths.state]
    extra = paths.weights.with_name(f"{kind}.extra.safetensors")
    if extra.is_file():
        files.insert(1, extra)
    how = "interrupted at" if interrupted else "trained to"
    if _rank:
        return INTERRUPTED if interrupted else 0
    print(
        f"{kind}: {how} step {trainer.step}/{total} in {time.perf_counter() - t0:.1f} s; "
        f"last losses {_format_losses(trainer.last_losses)}; checkpoint: "
        + ", ".join(str(f) for f in files)
    )
    return INTERRUPTED if interrupted else 0


def _worker(args: argparse.Namespace) -> int:
    """One of ``--nproc`` processes: the same command, joining the others (in ``_run``)."""
    return int(args.func(args))


def _launch(args: argparse.Namespace) -> int:
    """``--nproc N`` (N > 1): resolve the weights once here, then run N processes."""
    import torch

    from sketchpad.train import distributed
    from sketchpad.vision.backbone import choose_device
    from sketchpad.vision.errors import WeightsError

    try:
        device = choose_device(args.device)
        if device.type not in ("cuda", "cpu"):
            raise ValueError(f"--nproc trains on CUDA GPUs or CPUs, not on {device.type}")
        if device.type == "cuda" and torch.cuda.device_count() < args.nproc:
            raise ValueError(
                f"--nproc {args.nproc} needs a GPU per process; this machine has "
                f"{torch.cuda.device_count()}: use fewer processes or --device cpu"
            )
        _check_backbone(args)  # a download happens once, not in every process
    except (ValueError, WeightsError) as e:
        return _err(str(e))
    except KeyError as e:
        return _err(str(e.args[0]) if e.args else str(e))
    _note(f"training in {args.nproc} processes")
    return distributed.launch(args.nproc, _worker, args)


def _run(args: argparse.Namespace, kind: str, build: Callable[[], Trainer]) -> int:
    """Checks, then ``build()`` the trainer and fit it; every expected failure is one line.
    With ``--nproc`` N > 1 this process launches N that each run this again and join."""
    global _rank
    try:
        _check_args(args)
        _check_out(Path(args.out), kind, args.resume)
    except ValueError as e:
        return _err(str(e))
    from sketchpad.train import distributed

    if not distributed.launched():
        if args.nproc > 1:
            return _launch(args)
        return _build_and_fit(args, kind, build)
    try:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", args.nproc))
        if args.nproc not in (1, local):
            raise ValueError(f"--nproc {args.nproc} under torchrun: leave --nproc out")
        here, args.device = distributed.init_from_env(args.device)
    except ValueError as e:
        return _err(str(e))
    _rank = here.rank
    try:
        if args.batch_size % here.world:
            return _err(
                f"--batch-size {args.batch_size} does not split evenly over {here.world} "
                "processes: the batch size is the whole step's, make it a multiple of that"
            )
        return _build_and_fit(args, kind, build)
    finally:
        distributed.shutdown()


def _build_and_fit(args: argparse.Namespace, kind: str, build: Callable[[], Trainer]) -> int:
    from sketchpad.train.checkpoint import CheckpointError
    from sketchpad.train.datasets import DatasetError
    from sketchpad.train.loop import TrainingError
    from sketchpad.vision.backbone import choose_device
    from sketchpad.vision.errors import WeightsError

    try:
        choose_device(args.device)
        trainer = build()
    except (DatasetError, TrainingError, CheckpointError, WeightsError, ValueError) as e:
        return _err(str(e))
    except KeyboardInterrupt:
        _note("interrupted before training began: nothing saved")
        return INTERRUPTED
    except KeyError as e:  # an unknown backbone: the message lists the known ones
        return _err(str(e.args[0]) if e.args else str(e))
    from dataclasses import asdict

    if args.random_weights:
        _warn("random weights: the model learns from scratch (smoke tests, benchmarks)")
    config = asdict(trainer.config)  # type: ignore[attr-defined]  # every trainer made here has one
    config.update(batch_size=args.batch_size, seed=args.seed)
    return _fit(trainer, args, kind, config)


# ---------------------------------------------------------------- the three trainers


def run_sbir(args: argparse.Namespace) -> int:
    if args.dim < 0:
        return _err(f"--dim must be 0 or more, got {args.dim}")
    if not 0.0 <= args.erase <= 1.0:
        return _err(f"--erase must be within 0 … 1, got {args.erase}")
    if not (math.isfinite(args.consistency) and args.consistency >= 0):
        return _err(f"--consistency must be 0 or more, got {args.consistency}")
    if args.consistency > 0 and args.erase == 0:
        return _err("--consistency compares erased photos with whole ones: give --erase too")

    def build() -> Trainer:
        from sketchpad.train.sbir_train import SBIRConfig, SBIRTrainer
        from sketchpad.train.sources import SketchyTriplets, fill_of

        spec = _check_backbone(args)
        ds = _read_sketchy(args, "sbir", svg_by_default=False)
        source = SketchyTriplets(ds, spec.input_size, fill_rgb=fill_of(spec.mean), warn=_warn)
        source.index.rows(args.level)  # nothing to train at this level: say so now
        config = SBIRConfig(
            backbone=args.backbone,
            level=args.level,
            lr=args.lr if args.lr is not None else 1e-5,
            margin=args.margin,
            dim=args.dim,
            photo_pool=args.photo_pool,
            erase=args.erase,
            consistency=args.consistency,
            pretrained=not args.random_weights,
            weights=args.weights,
        )
        return SBIRTrainer(config, source, _loop(args, "sbir"))

    return _run(args, "sbir", build)


def run_segmenter(args: argparse.Namespace) -> int:
    if args.lambda_sbir > 0 and not args.critic:
        return _err(
            "the SBIR loss needs --critic (a checkpoint of `sketchpad train sbir`); or pass "
            "--lambda-sbir 0 to train without it"
        )
    positive = ("tau", "pool_temperature")
    for name in (*positive, "lambda_infonce", "lambda_sbir", "lambda_unpaired", "lambda_reg"):
        v = getattr(args, name)
        if not math.isfinite(v) or v < 0 or (name in positive and v == 0):
            flag = "--" + name.replace("_", "-")
            return _err(f"{flag} must be a {'positive' if name in positive else '≥ 0'} number")
    if not 0.0 <= args.partition_fraction <= 1.0:
        return _err(f"--partition-fraction must be within 0 … 1, got {args.partition_fraction}")

    def build() -> Trainer:
        from sketchpad.train.sbir_train import load_critic
        from sketchpad.train.segmenter_train import SegmenterConfig, SegmenterTrainer
        from sketchpad.train.sources import SketchyPairs, fill_of

        spec = _check_backbone(args)
        ds = _read_sketchy(args, "segmenter", svg_by_default=True)
        critic = None
        if args.lambda_sbir > 0:
            critic = load_critic(args.critic, "cpu")
        elif args.critic:
            _warn("--critic is not used with --lambda-sbir 0")
        source = SketchyPairs(
            ds, spec.input_size, args.level, fill_rgb=fill_of(spec.mean), warn=_warn
        )
        config = SegmenterConfig(
            backbone=args.backbone,
            tune=args.tune,
            lr=args.lr,
            tau=args.tau,
            pool_temperature=args.pool_temperature,
            lambda_infonce=args.lambda_infonce,
            lambda_sbir=args.lambda_sbir,
            lambda_unpaired=args.lambda_unpaired,
            lambda_reg=args.lambda_reg,
            partition_fraction=args.partition_fraction,
            pretrained=not args.random_weights,
            weights=args.weights,
        )
        return SegmenterTrainer(config, source, critic, _loop(args, "segmenter"))

    return _run(args, "segmenter", build)


def run_scene(args: argparse.Namespace) -> int:
    def build() -> Trainer:
        from sketchpad.train.datasets import (
            DatasetError,
            detect_training_layout,
            read_fscoco,
            read_fscoco_seg,
        )
        from sketchpad.train.loop import TrainingError
        from sketchpad.train.scene_train import SceneTrainConfig, SceneTrainer
        from sketchpad.train.sources import fscoco_scenes
        from sketchpad.vision.scene_vocab import load_vocabulary

        spec = _check_backbone(args)
        if spec.family != "open_clip" or not spec.has_text:
            raise TrainingError(
                f"the scene labeller needs a CLIP backbone with a text tower, not {spec.id}"
            )
        data = Path(args.data)
        layout = detect_training_layout(data)
        if layout not in ("fscoco", "fscoco-seg"):
            raise DatasetError(
                f"{data}: a {layout} dataset, but `train scene` needs an FS-COCO "
                "(fscoco/{images,raster_sketches,vector_sketches,text}/) or FSCOCO-Seg "
                "(train/{sketches,text}/, test/{vector_sketches,classes,captions}/) folder"
            )
        if layout == "fscoco" and args.split == "test":
            raise DatasetError("FS-COCO has no test split: use train, val or all")
        read = read_fscoco if layout == "fscoco" else read_fscoco_seg
        split, samples = args.split, None
        if split == "auto":  # the training split where the dataset has one
            try:
                samples, split = read(data, split="train", warn=_warn), "train"
            except DatasetError:
                split = "all"
        if samples is None:
            samples = read(data, split=split, warn=_warn)
        scenes = fscoco_scenes(samples, load_vocabulary(), warn=_warn)
        if not scenes:
            raise DatasetError(f"{data}: no usable captioned sketch (split {split})")
        _note(f"{len(scenes)} captioned sketches of {len(samples)} ({layout}, split {split})")
        config = SceneTrainConfig(
            backbone=args.backbone,
            weights=args.weights,
            pretrained=not args.random_weights,
            lr=args.lr if args.lr is not None else 1e-6,
            margin=args.margin,
        )
        return SceneTrainer(scenes, config, _loop(args, "scene"))

    return _run(args, "scene", build)


def _is_sketchy(data: str) -> bool:
    from sketchpad.train.datasets import detect_training_layout

    try:
        return detect_training_layout(Path(data)) in ("sketchy", "sketchy-extended")
    except (OSError, ValueError):
        return False


def run_fusion(args: argparse.Namespace) -> int:
    """``train fusion --task …``: SketchFusion's trained parts for one task."""

    def build() -> Trainer:
        from sketchpad.train import fusion_data as FD
        from sketchpad.train.fusion_train import FusionTrainer
        from sketchpad.vision.fusion.backbone import build_extractor, fusion_config
        from sketchpad.vision.registry import get_spec

        spec = get_spec(args.backbone)
        if spec.family != "sketchfusion":
            raise ValueError(f"--backbone {spec.id} is not a SketchFusion backbone")
        size = int(args.size or spec.input_size)
        task = args.task
        source: Any
        classes: tuple[str, ...] = ()
        if args.data == "synthetic":
            source = FD.SyntheticFusionSource(size)
            classes = source.classes
        elif task == "retrieval" or (task == "recognition" and _is_sketchy(args.data)):
            from sketchpad.train.sources import SketchyTriplets, fill_of

            ds = _read_sketchy(args, "fusion", svg_by_default=False)
            triplets = SketchyTriplets(ds, size, fill_rgb=fill_of(spec.mean), warn=_warn)
            source = FD.TripletFusionSource(triplets, size, args.level)
            classes = source.classes
        elif task == "recognition":
            data = FD.read_tu_berlin(Path(args.data))
            source, classes = FD.LabelledSketchSource(data, size, _warn), data.classes
        elif task == "correspondence":
            if not args.sketchy:
                raise ValueError("PSC6K's paths are under the Sketchy root: give --sketchy DIR")
            pairs = FD.read_psc6k(
                Path(args.data) / "test_pairs_ps.csv", Path(args.sketchy), warn=_warn
            )
            train_rows, _ = FD.split_rows(len(pairs), 0.2, seed=0)
            source = FD.PSC6KSource([pairs[i] for i in train_rows], size, _warn)
        else:
            raise ValueError(
                f"--task {task} trains on --data synthetic here (the seed's {task} masks are "
                "its own annotations of Sketchy, not published)"
            )
        changes = {} if args.timestep is None else {"timestep": args.timestep}
        bar, got = TextProgress(f"downloading {spec.id} weights", None), [0]

        def on_download(done: int, total: int | None) -> None:
            got[0] = done
            bar.update(done >> 20, None if total is None else max(1, total >> 20), " MB")

        extractor, _, _ = build_extractor(
            spec,
            config=fusion_config(spec, **changes),
            pretrained=not args.random_weights,
            sd_folder=args.weights,
            progress=on_download,
            seed=args.seed,
        )
        if got[0]:
            bar.close(got[0] >> 20, " MB")
        return FusionTrainer(
            spec.id,
            extractor,
            task,
            source,
            _loop(args, "fusion"),
            lr=args.lr if args.lr is not None else 1e-4,
            classes=classes,
            size=size,
            margin=args.margin,
            tau=args.tau,
        )

    from sketchpad.commands.progress import TextProgress

    return _run(args, "fusion", build)
