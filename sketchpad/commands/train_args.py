"""The options of ``sketchpad train`` and its kinds (``sbir``, ``segmenter``, ``scene``).

The checks of values that argparse cannot make, and the runs themselves, are in
:mod:`sketchpad.commands.train`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]
DATA_SKETCHY = "a Sketchy or Sketchy-Extended folder (rendered_256x256/256x256/{photo,sketch}/…)"


def add_train_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    sbir: Handler,
    segmenter: Handler,
    scene: Handler,
    fusion: Handler | None = None,
) -> None:
    """Add ``train`` and its kinds to ``sub``; each kind runs its handler."""
    p = sub.add_parser(
        "train",
        help="train an SBIR critic, a segmenter or a scene labeller",
        description="Train a model on a dataset in its published layout and write a checkpoint "
        "(safetensors + JSON + resume state) into --out. Ctrl+C saves and stops; --resume goes "
        "on from there.",
    )
    kinds = p.add_subparsers(dest="train_kind", metavar="KIND", required=True)

    q = kinds.add_parser(
        "sbir",
        help="the SBIR critic (the segmenter's --critic)",
        description="Train a sketch-based image retrieval model with a triplet loss (category "
        "level: the negative photo is of another class; fine-grained: another photo of the same "
        "class) plus a classification head. It serves, frozen, as `train segmenter --critic`.",
    )
    _add_common(q, DATA_SKETCHY, "1e-5")
    _add_level(q)
    _add_unseen(q)
    _add_sketch_format(q, "png")
    q.add_argument(
        "--margin", type=float, default=0.2, metavar="X", help="triplet margin (default 0.2)"
    )
    q.add_argument(
        "--photo-pool",
        choices=["cls", "mean", "max"],
        default="cls",
        help="a photo's embedding: its class token (default), or the mean or the maximum of its "
        "patch tokens",
    )
    q.add_argument(
        "--dim",
        type=int,
        default=128,
        metavar="N",
        help="size of the embedding head (default 128; 0: no head, the backbone's own space)",
    )
    q.add_argument(
        "--erase",
        type=float,
        default=0.0,
        metavar="P",
        help="probability that a photo is blacked out outside or inside a random box, so the "
        "critic knows partly black photos as masked ones look (default 0)",
    )
    q.add_argument(
        "--consistency",
        type=float,
        default=0.0,
        metavar="X",
        help="weight of the local-consistency loss: where erasing left a patch alone, its token "
        "must not change (default 0; needs --erase)",
    )
    q.set_defaults(func=sbir)

    q = kinds.add_parser(
        "segmenter",
        help="the mask-free sketch → photo segmenter",
        description="Fine-tune a backbone so that the cosine map between a sketch and a photo's "
        "patches becomes its mask, without masks (seed 000): InfoNCE, the SBIR loss through a "
        "frozen critic, the unpaired-photo loss, the mask regulariser and, on a fraction of the "
        "batch, the partition loss. The checkpoint loads with `sketchpad segment --checkpoint`.",
    )
    _add_common(q, DATA_SKETCHY, "CLIP: LayerNorms at 1e-5; DINOv2: all at 1e-6")
    _add_level(q)
    q.add_argument(
        "--critic",
        metavar="PATH",
        help="an SBIR critic checkpoint of `sketchpad train sbir` (required unless "
        "--lambda-sbir 0)",
    )
    q.add_argument(
        "--tune",
        choices=["layernorm", "all"],
        help="parameters trained (default: layernorm for CLIP, all for DINOv2)",
    )
    q.add_argument(
        "--tau", type=float, default=0.1, metavar="X", help="soft-mask temperature τ (default 0.1)"
    )
    q.add_argument(
        "--pool-temperature",
        type=float,
        default=0.1,
        metavar="X",
        help="temperature of the attention pooling of the photo's patches that InfoNCE compares "
        "with the sketch (default 0.1; lower: sharper, for objects that cover few patches)",
    )
    for loss, what in (
        ("infonce", "the sketch ↔ pooled-photo InfoNCE"),
        ("sbir", "the SBIR loss through the critic"),
        ("unpaired", "the unpaired-photo loss"),
        ("reg", "the mask regulariser"),
    ):
        q.add_argument(
            f"--lambda-{loss}",
            type=float,
            default=1.0,
            metavar="X",
            help=f"weight of {what} (default 1)",
        )
    q.add_argument(
        "--partition-fraction",
        type=float,
        default=0.5,
        metavar="F",
        help="fraction of each batch trained with partitioned sketches (default 0.5; vector "
        "sketches only)",
    )
    _add_unseen(q)
    _add_sketch_format(q, "svg when the SVG folder is there (partitions need strokes), else png")
    q.set_defaults(func=segmenter)

    q = kinds.add_parser(
        "scene",
        help="the scene labeller (visual prompts + LayerNorms)",
        description="Train the scene labeller on captioned scene sketches (seed 001): a triplet "
        "between each sketch and its caption, and one between each category's sketch and its "
        "prompt. A sketch's categories are its stroke labels (FSCOCO-Seg) or the vocabulary "
        "names of its caption; sketches without any are skipped.",
    )
    _add_common(q, "an FS-COCO or FSCOCO-Seg folder", "1e-6")
    q.add_argument(
        "--split",
        choices=["auto", "all", "train", "val", "test"],
        default="auto",
        help="which split (auto: train when the dataset has one, else all)",
    )
    q.add_argument(
        "--margin", type=float, default=0.3, metavar="X", help="triplet margin (default 0.3)"
    )
    q.set_defaults(func=scene)
    if fusion is not None:
        _add_fusion(kinds, fusion)


def _add_fusion(
    kinds: argparse._SubParsersAction[argparse.ArgumentParser], handler: Handler
) -> None:
    q = kinds.add_parser(
        "fusion",
        help="SketchFusion's head (SD + CLIP frozen) for one task",
        description="Train SketchFusion's injection convolutions, aggregation network and branch "
        "weights (seed 003), Stable Diffusion and CLIP frozen, with the task's loss: retrieval "
        "(triplet), recognition (cross-entropy of a linear head on the max-pooled map), "
        "segmentation (BCE of the sigmoid-thresholded correlation against the mask), "
        "correspondence (InfoNCE on keypoint features + end-point error of the flow). The "
        "checkpoint holds the trained parts only and loads with --weights on the backbone.",
    )
    _add_common(
        q,
        "'synthetic' (every task), Sketchy (retrieval, recognition), TU-Berlin (recognition: "
        "png/<class>/*.png), or PSC6K (correspondence: the folder of test_pairs_ps.csv; see "
        "--sketchy)",
        "1e-4",
    )
    q.set_defaults(backbone="sketchfusion-sd21-l14")
    q.add_argument(
        "--task",
        required=True,
        choices=["retrieval", "recognition", "segmentation", "correspondence"],
        help="which task's loss",
    )
    q.add_argument("--sketchy", metavar="DIR", help="PSC6K: the Sketchy root its paths are under")
    _add_level(q)
    _add_unseen(q)
    _add_sketch_format(q, "png")
    q.add_argument(
        "--size", type=int, metavar="N", help="input side (default: the backbone's, 512)"
    )
    q.add_argument(
        "--timestep", type=int, metavar="T", help="diffusion timestep (default: the backbone's)"
    )
    q.add_argument("--margin", type=float, default=0.2, metavar="X", help="triplet margin (0.2)")
    q.add_argument(
        "--tau", type=float, default=0.1, metavar="X", help="segmentation threshold's τ (0.1)"
    )
    q.set_defaults(func=handler)


def _add_common(p: argparse.ArgumentParser, data: str, lr_default: str) -> None:
    p.add_argument("--data", required=True, metavar="DIR", help=f"the dataset: {data}")
    p.add_argument("--out", required=True, metavar="DIR", help="the checkpoint folder")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument(
        "--backbone",
        default="clip-vit-b16",
        metavar="ID",
        help="backbone id (`sketchpad models list`; default clip-vit-b16)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--weights", metavar="PATH", help="starting weights (file or folder)")
    which.add_argument(
        "--random-weights",
        action="store_true",
        help="start from random weights (smoke tests, benchmarks)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=1000,
        metavar="N",
        help="optimiser steps in all, also when resuming (default 1000)",
    )
    p.add_argument(
        "--batch-size", type=int, default=16, metavar="N", help="samples per step (default 16)"
    )
    p.add_argument("--lr", type=float, metavar="X", help=f"learning rate (default: {lr_default})")
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of weights and batches (default 0)"
    )
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train in N processes on this machine (DistributedDataParallel: one GPU each with "
        "CUDA, else CPU processes); --batch-size stays the whole step's batch, split evenly, "
        "so the run follows the one-process run (default 1). Several machines: torchrun "
        "--nnodes … -m sketchpad train …",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=200,
        metavar="N",
        help="also save every N steps (default 200; 0: only at the end)",
    )


def _add_level(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--level",
        choices=["category", "fine"],
        default="category",
        help="category: pairs by class (default); fine: each sketch with its own photo (fusion "
        "retrieval: the negative is then another photo of the same class)",
    )


def _add_unseen(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--unseen-split",
        choices=["sketchy21", "none"],
        default="none",
        help="sketchy21: leave out the 21 unseen classes of the zero-shot split (train on the "
        "seen ones only); none: every class (default)",
    )


def _add_sketch_format(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--sketch-format",
        choices=["auto", "png", "svg"],
        default="auto",
        help=f"Sketchy's rendered PNG sketches or its SVG ones (auto: {default})",
    )
