"""``sketchpad bench train``: proof on a CPU that mask-free training learns to segment.

On the synthetic world (:mod:`sketchpad.train.synthetic`; true masks used only to score):

1. a tiny SBIR critic is trained (triplets + classification, one encoder shared by sketches
   and photos; a photo is embedded as the mean of its patch tokens, as a class-activation-map
   network pools, plus a local-consistency loss on partly erased photos, so each patch token
   describes what it shows). Its encoder is also the segmenter's starting point: the
   benchmark's stand-in for the pretrained backbone that seed 000 starts from (CLIP / DINOv2),
   whose patch features already carry local meaning;
2. the segmenter is trained from it *without masks* (DESIGN §4.5), and, from the same start
   and with the same batches, without InfoNCE, without the unpaired loss and without the
   regulariser (seed 000's S-B baselines);
3. every model is saved as a training checkpoint and loaded back the way the app loads one
   ('fixed' calibration at the checkpoint's τ), then scored with ``seg_eval`` on held-out
   photos of seen classes and of unseen classes: mIoU (S), mIoU (U), hIoU, pAcc of the masks
   thresholded at 0.5, and mIoU (S) once more after the app's dense-CRF refinement (seed 000
   §4.6 post-processes that way). The verdict is the thresholded mIoU (S), the figure the
   0.6 target was set on; the after-CRF figure is printed beside it.

Honest figures: the settings the segmenter is trained with are *chosen on a validation split*
(photos and sketches of the seen classes drawn from their own seed, never the reported test
photos) among ``BenchSettings.candidates``; the full model is then trained with the chosen
settings for each of ``seeds`` (training data, initialisation and batches all follow the seed;
the test photos stay fixed) and reported as mean ± sd. The ablations and references are
trained and scored once, on the first seed, and marked so.

The photos give each class its own surface pattern besides its outline (``materials``): with
the fill a random texture like the background's, only an outline tells a class, and then no
patch-level map finds the inside of an object from image-level training (measured: a small
CNN with max pooling classifies such photos 79 % right, yet its class activation map scores
the object's patches against the rest at chance, AUC 0.50; with materials a CNN with mean
pooling classifies 100 % right, AUC 0.97).

Two references frame the figures: the untrained models (random weights, and the critic's
encoder before segmenter training) and the "all objects" oracle, a perfect class-agnostic
mask of every object in the photo, which shows what finding objects without telling the
sketched class from the others would score.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sketchpad.train.loop import LoopConfig
from sketchpad.train.sbir_train import SBIRConfig, SBIRCritic, SBIRTrainer
from sketchpad.train.seg_eval import SegCounts, SegmenterPredictor, SegSummary, summarise
from sketchpad.train.segmenter_train import SegmenterConfig, SegmenterTrainer
from sketchpad.train.synthetic import (
    SyntheticPhoto,
    SyntheticWorld,
    make_photo,
    make_set,
    make_sketch,
)

if TYPE_CHECKING:  # imported where used: vision.segmenter loads the app's query path
    from sketchpad.sketch.model import Sketch
    from sketchpad.vision.segmenter import Segmenter

Report = Callable[[str], None]
BACKBONE = "bench-vit-tiny"
SEEN = ("circle", "square", "triangle", "star", "cross", "heart")
UNSEEN = ("hexagon", "arrow")


@dataclass(frozen=True)
class BenchSettings:
    """What the benchmark trains and scores (the defaults fit 20 minutes on 2 CPU cores)."""

    critic_steps: int = 400
    segmenter_steps: int = 1500
    critic_batch: int = 32
    #: One pair per seen class: InfoNCE takes the batch's other pairs as negatives, and with
    #: six classes a larger batch would hold false ones (another sketch of the same class).
    segmenter_batch: int = 6
    critic_lr: float = 5e-4
    critic_margin: float = 0.2
    critic_erase: float = 0.3
    critic_consistency: float = 1.0
    segmenter_lr: float = 2e-4
    #: λ of the regulariser. At seed 000's λ = 1 it outweighs the critic here: our objects
    #: cover a quarter to a half of the photo, and a confident mask on one costs more
    #: (−log(1 − M) over its pixels) than the critic's whole range of δ gains (measured:
    #: δ 0.94 with the true mask, 1.30 with none); masks then stay under the threshold.
    lambda_reg: float = 0.1
    tau: float = 0.25
    #: Temperature of the attention pooling that InfoNCE compares with the sketch. Sharper than
    #: the trainer's 0.1: an object here covers a few of the 64 patches, and a softer pooling
    #: spreads over the background. Measured at 1,500 steps with two segmenter seeds (one
    #: thread): mIoU (S) 57.1 / 59.0 % at 0.1, 58.8 / 59.5 % at 0.05; the benchmark itself
    #: (two threads) went from 57.1 to 58.4 %.
    pool_temperature: float = 0.05
    #: Seed 000 cuts the sketch in two on half the batch and asks for the soft XOR of the two
    #: halves' masks. It teaches parts; the world's objects have none (one surface all over),
    #: so both halves of a circle rightly claim the whole circle and the XOR asks to drop it
    #: (measured: mIoU (S) 52.3 % at 0.5 against 57.3 % at 0 after 1,500 steps).
    partition_fraction: float = 0.0
    test_photos: int = 150
    test_sketches: int = 10
    #: Photos of the validation split (seen classes only) that choose among ``candidates``.
    val_photos: int = 100
    #: Settings tried for the segmenter, chosen by thresholded mIoU (S) on the validation split.
    #: The pooling temperature and the partition share were first tuned on the reported test
    #: photos (see their notes); they are now chosen here instead.
    #: (pool_temperature, partition_fraction) pairs.
    candidates: tuple[tuple[float, float], ...] = ((0.05, 0.0), (0.1, 0.0), (0.05, 0.5))
    #: Seeds of the full model: mean ± sd over them. The first also chooses and runs ablations.
    seeds: tuple[int, ...] = (0, 1, 2)
    seed: int = 0
    threads: int = 2
    texture: float = 0.5
    rotation: float = 0.5
    scale: tuple[float, float] = (0.3, 0.45)
    materials: bool = True
    photo_pool: str = "mean"
    critic_dim: int = 0


@dataclass(frozen=True)
class TestSet:
    """Held-out photos and sketches; each (photo, class present) pair is one query."""

    photos: tuple[SyntheticPhoto, ...]
    sketches: dict[str, tuple[Sketch, ...]]  # class → its held-out sketches

    def queries(self, classes: tuple[str, ...]) -> list[tuple[int, str, int]]:
        """(photo index, class, sketch index) for every class of ``classes`` in a photo."""
        out, j = [], 0
        for i, p in enumerate(self.photos):
            for c in dict.fromkeys(p.classes):
                if c in classes:
                    out.append((i, c, j % len(self.sketches[c])))
                    j += 1
        return out


def _photo_style(s: BenchSettings) -> dict[str, Any]:
    """How the world's photos look: the same for training and test photos."""
    return {"texture": s.texture, "rotation": s.rotation, "scale": s.scale,
            "materials": s.materials}  # fmt: skip


def _val_set(s: BenchSettings) -> tuple[TestSet, TestSet]:
    """The validation split: seen classes only, from a seed of its own (test: +1000/+2000,
    training worlds: the run's seeds), so no photo or sketch is shared with what is reported."""
    val = make_set(s.seed + 3000, SEEN, s.val_photos, s.test_sketches, size=32,
                   **_photo_style(s))  # fmt: skip
    return TestSet(val.photos, val.sketches), TestSet((), {})


def _test_sets(s: BenchSettings) -> tuple[TestSet, TestSet]:
    seen = make_set(s.seed + 1000, SEEN, s.test_photos, s.test_sketches, size=32,
                    **_photo_style(s))  # fmt: skip
    # Unseen: each photo has an unseen object among seen ones.
    rng = np.random.default_rng(s.seed + 2000)
    photos = []
    for _ in range(s.test_photos):
        k = int(rng.integers(0, 3))
        objs = [UNSEEN[int(rng.integers(len(UNSEEN)))]]
        objs += [SEEN[i] for i in rng.choice(len(SEEN), size=k, replace=False)]
        rng.shuffle(objs)
        photos.append(make_photo(rng, objs, 32, **_photo_style(s)))
    sk = {
        c: tuple(make_sketch(rng, c, rotation=s.rotation) for _ in range(s.test_sketches))
        for c in UNSEEN
    }
    return TestSet(seen.photos, seen.sketches), TestSet(tuple(photos), sk)


@dataclass(frozen=True)
class Scored:
    """A model's scores and, as a diagnostic, how well its raw cosine map separates the
    sketched object's patches from the rest of the photo before any threshold (AUC: 0.5 is
    chance) and the cosine on the object and elsewhere (seen classes)."""

    summary: SegSummary
    auc: float
    cos_object: float
    cos_rest: float
    crf: SegSummary | None = None


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    if not len(pos) or not len(neg):
        return float("nan")
    both = np.concatenate([pos, neg])
    ranks = np.argsort(np.argsort(both, kind="stable"), kind="stable") + 1.0
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def score_segmenter(
    segmenter: Segmenter, tests: tuple[TestSet, TestSet], *, crf: bool = True
) -> Scored:
    """mIoU (S/U), hIoU and pAcc of a Segmenter on the held-out queries (the app's path), and
    the same once more with the app's dense-CRF refinement of each mask (unless ``crf`` is
    False: the validation split chooses on the thresholded figure alone)."""
    counts, refined = SegCounts(), SegCounts()
    aucs, on, off = [], [], []
    for test, classes in zip(tests, (SEEN, UNSEEN), strict=True):
        if not test.photos:
            continue
        predict = SegmenterPredictor(segmenter, batch_size=64)
        predict.add_photos([p.image for p in test.photos])
        for i, c, j in test.queries(classes):
            photo, sketch = test.photos[i], test.sketches[c][j]
            counts.add(c, predict(sketch, photo.image), photo.mask_of(c))
            if crf:
                refined.add(c, predict(sketch, photo.image, crf=True), photo.mask_of(c))
            if classes is SEEN:
                cos = predict.cosine_grid(sketch, photo.image)
                gh, gw = cos.shape
                h, w = photo.image.shape[:2]
                truth = photo.mask_of(c).reshape(gh, h // gh, gw, w // gw).mean(axis=(1, 3)) > 0.5
                aucs.append(_auc(cos[truth], cos[~truth]))
                on.append(cos[truth].ravel())
                off.append(cos[~truth].ravel())
    summary = summarise(counts, seen=set(SEEN), unseen=set(UNSEEN))
    after = summarise(refined, seen=set(SEEN), unseen=set(UNSEEN)) if crf else None
    return Scored(summary, float(np.nanmean(aucs)), float(np.concatenate(on).mean()),
                  float(np.concatenate(off).mean()), after)  # fmt: skip


def critic_diagnostics(critic: SBIRCritic, world: SyntheticWorld, seed: int) -> str:
    """Held-out accuracy of the critic's class head on sketches and on photos, sketch → photo
    retrieval (is the nearest photo of the sketch's class), and how alike all photo
    embeddings are (mean cosine; near 1: the photos collapsed onto one point)."""
    import torch.nn.functional as F

    from sketchpad.train.sbir_train import to_tensor

    b = world.triplets(np.random.default_rng([seed, 424242]), 240, "category")
    critic.eval()
    cpu = torch.device("cpu")
    with torch.no_grad():
        s = critic.embed_sketch(to_tensor(b.sketches, cpu))
        p = critic.embed_photo(to_tensor(b.positives, cpu))
        acc_s = float((critic.logits(s).argmax(1).numpy() == b.labels).mean())
        acc_p = float((critic.logits(p).argmax(1).numpy() == b.labels).mean())
        sn, pn = F.normalize(s, dim=1), F.normalize(p, dim=1)
        nearest = (sn @ pn.T).argmax(1).numpy()
        retrieval = float((b.labels[nearest] == b.labels).mean())
        pp = float((pn @ pn.T).mean())
    return (
        f"held out: class accuracy sketches {100 * acc_s:.0f} %, photos {100 * acc_p:.0f} % "
        f"(chance {100 / len(world.classes):.0f} %); sketch → photo retrieval "
        f"{100 * retrieval:.0f} %; mean photo–photo cosine {pp:.3f}"
    )


def oracle_all_objects(tests: tuple[TestSet, TestSet]) -> Scored:
    """The class-agnostic reference: every object's pixels, whatever the sketch."""
    counts = SegCounts()
    for test, classes in zip(tests, (SEEN, UNSEEN), strict=True):
        for i, c, _ in test.queries(classes):
            p = test.photos[i]
            counts.add(c, np.any(p.masks, axis=0), p.mask_of(c))
    summary = summarise(counts, seen=set(SEEN), unseen=set(UNSEEN))
    return Scored(summary, float("nan"), float("nan"), float("nan"))


def _load_as_app(folder: Path, name: str) -> Segmenter:
    """A Segmenter from a checkpoint, built as the app and ``segment --checkpoint`` do."""
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.checkpoints import read_segmenter_checkpoint
    from sketchpad.vision.segmenter import Segmenter

    ckpt = read_segmenter_checkpoint(folder / name)
    backbone = create_backbone(ckpt.backbone_id, weights=ckpt.weights, device="cpu")
    return Segmenter(backbone, **ckpt.segmenter_kwargs())


def _row(name: str, scored: Scored, seconds: float | None = None) -> str:
    r = scored.summary
    t = f"{seconds:7.0f}s" if seconds is not None else "        "
    crf = f"{100 * scored.crf.miou_seen:6.1f}" if scored.crf is not None else f"{'–':>6}"
    return (
        f"  {name:<34} {100 * r.miou_seen:6.1f} {crf} {100 * r.miou_unseen:6.1f} "
        f"{100 * r.hiou:6.1f} {100 * r.pacc:6.1f} {t}  {scored.auc:5.3f} "
        f"{scored.cos_object:+.3f} {scored.cos_rest:+.3f}"
    )


def _train_critic(s: BenchSettings, seed: int, world: SyntheticWorld, out: Path,
                  report: Report) -> SBIRCritic:  # fmt: skip
    t0 = time.perf_counter()
    loop = LoopConfig(steps=s.critic_steps, batch_size=s.critic_batch, seed=seed,
                      device="cpu", out=out, name=f"critic{seed}", warmup=50)  # fmt: skip
    sbir = SBIRTrainer(
        SBIRConfig(
            backbone=BACKBONE,
            pretrained=False,
            lr=s.critic_lr,
            shared=True,
            erase=s.critic_erase,
            consistency=s.critic_consistency,
            margin=s.critic_margin,
            photo_pool=s.photo_pool,
            dim=s.critic_dim,
        ),  # fmt: skip
        world,
        loop,
    )
    sbir.fit()
    losses = sbir.history.mean_last(50)
    report(
        f"seed {seed}: SBIR critic: {s.critic_steps} steps in {time.perf_counter() - t0:.0f} s; "
        f"last 50 steps: triplet {losses['triplet']:.3f}, classification {losses['class']:.3f}"
        + (f", consistency {losses['consistency']:.3f}" if "consistency" in losses else "")
    )
    report(f"  {critic_diagnostics(sbir.model, world, seed)}")
    return sbir.model


def _described(candidate: tuple[float, float]) -> str:
    return f"pool_temperature {candidate[0]:g}, partition_fraction {candidate[1]:g}"


def _mean_sd(values: list[float]) -> str:
    a = 100 * np.asarray(values, dtype=float)
    sd = float(a.std(ddof=1)) if len(a) > 1 else float("nan")
    return f"{a.mean():.1f} ± {sd:.1f}"


def run(report: Report = print, settings: BenchSettings | None = None) -> int:  # noqa: T201
    """Choose the segmenter's settings on the validation split, train the full model for each
    seed and the ablations once, score everything on the test photos and print the table.

    Returns 0 if the full model's mean mIoU (S), thresholded at 0.5, reaches 0.6 and beats the
    untrained models by 10 points, and the run took ≤ 20 minutes; else 1.

    Besides mIoU, each row shows the diagnostic AUC of the raw cosine map (object patches vs
    the rest, seen classes) and the mean cosine on and off the object: they tell whether a
    model localises at all when no mask crosses the fixed threshold."""
    s = settings or BenchSettings()
    if not s.seeds or not s.candidates:
        raise ValueError("bench train needs at least one seed and one candidate setting")
    torch.set_num_threads(s.threads)
    t_start = time.perf_counter()
    tests, val = _test_sets(s), _val_set(s)
    report(
        f"synthetic world: {len(SEEN)} seen classes {', '.join(SEEN)}; unseen {', '.join(UNSEEN)}"
        f"; 32×32 photos of 1–3 objects{', each class its own surface' if s.materials else ''}"
        f"; {BACKBONE} (ViT, 4 blocks, width 96, 8×8 grid); CPU, {s.threads} threads; seeds "
        f"{', '.join(map(str, s.seeds))}; test {s.test_photos} photos per split, validation "
        f"{s.val_photos} photos (seen classes, its own seed); prepared in "
        f"{time.perf_counter() - t_start:.1f} s"
    )
    report(
        f"critic: lr {s.critic_lr:g}, batch {s.critic_batch}, margin {s.critic_margin:g}, photo "
        f"pooling {s.photo_pool}, erasing {s.critic_erase:g}, consistency λ "
        f"{s.critic_consistency:g}; segmenter: all weights at lr {s.segmenter_lr:g}, batch "
        f"{s.segmenter_batch}, τ {s.tau:g}, λ InfoNCE/SBIR/unpaired 1, λ regulariser "
        f"{s.lambda_reg:g}; chosen on validation among: "
        + "; ".join(f"[{_described(c)}]" for c in s.candidates)
    )
    base = SegmenterConfig(backbone=BACKBONE, pretrained=False, tune="all",
                           lr=s.segmenter_lr, tau=s.tau,
                           pool_temperature=s.pool_temperature,
                           lambda_reg=s.lambda_reg,
                           partition_fraction=s.partition_fraction)  # fmt: skip
    full_runs: list[Scored] = []
    results: dict[str, tuple[Scored, float]] = {}
    with tempfile.TemporaryDirectory(prefix="sketchpad-bench-train-") as tmp:
        out = Path(tmp)
        counter = iter(range(1_000_000))

        def train(
            config: SegmenterConfig,
            world: SyntheticWorld,
            critic: SBIRCritic,
            start: dict[str, torch.Tensor],
            seed: int,
        ) -> tuple[str, float, dict[str, float]]:
            name = f"seg{next(counter)}"
            t0 = time.perf_counter()
            loop = LoopConfig(steps=s.segmenter_steps, batch_size=s.segmenter_batch,
                              seed=seed + 1, device="cpu", out=out, name=name)  # fmt: skip
            trainer = SegmenterTrainer(config, world, critic, loop)
            trainer.model.load_state_dict(start)
            trainer.fit()
            return name, time.perf_counter() - t0, trainer.history.mean_last(50)

        chosen = base
        for k, seed in enumerate(s.seeds):
            world = SyntheticWorld(SEEN, 32, seed=seed, **_photo_style(s))
            critic = _train_critic(s, seed, world, out, report)
            start = {key: v.clone() for key, v in critic.photo.model.state_dict().items()}
            if k == 0:
                # 1. Choose the settings on the validation split (never the test photos).
                best: tuple[float, str, float, SegmenterConfig] | None = None
                for c in s.candidates:
                    config = replace(base, pool_temperature=c[0], partition_fraction=c[1])
                    name, sec, _ = train(config, world, critic, start, seed)
                    v = score_segmenter(_load_as_app(out, name), val, crf=False).summary
                    report(f"  validation [{_described(c)}]: mIoU (S) {100 * v.miou_seen:.1f} % "
                           f"thresholded ({sec:.0f} s)")  # fmt: skip
                    if best is None or v.miou_seen > best[0]:
                        best = (v.miou_seen, name, sec, config)
                assert best is not None
                _, chosen_name, chosen_sec, chosen = best
                report(f"  chosen on validation: pool_temperature {chosen.pool_temperature:g}, "
                       f"partition_fraction {chosen.partition_fraction:g}")  # fmt: skip
                full = score_segmenter(_load_as_app(out, chosen_name), tests)
                results["full (all losses)"] = (full, chosen_sec)
                # 2. The ablations, once, from the same start with the chosen settings.
                for label, variant in {
                    "w/o InfoNCE": replace(chosen, lambda_infonce=0.0),
                    "w/o unpaired loss (S-B2)": replace(chosen, lambda_unpaired=0.0),
                    "w/o regulariser (S-B3)": replace(chosen, lambda_reg=0.0),
                }.items():
                    name, sec, last = train(variant, world, critic, start, seed)
                    results[label] = (score_segmenter(_load_as_app(out, name), tests), sec)
                    report(f"  segmenter {label}: {s.segmenter_steps} steps in {sec:.0f} s; "
                           "last 50: " + ", ".join(f"{key} {v:.3f}" for key, v in last.items()
                                                   if key != "total"))  # fmt: skip
                # 3. The untrained references.
                starter = SegmenterTrainer(chosen, world, critic,
                                           LoopConfig(steps=1, batch_size=s.segmenter_batch,
                                                      seed=seed, device="cpu", out=out,
                                                      name="start"))  # fmt: skip
                starter.model.load_state_dict(start)
                starter.step = 0
                starter.save()
                untrained_start = score_segmenter(_load_as_app(out, "start"), tests)
                random = SegmenterTrainer(chosen, world, critic,
                                          LoopConfig(steps=1, batch_size=s.segmenter_batch,
                                                     seed=seed, device="cpu", out=out,
                                                     name="rand"))  # fmt: skip
                random.step = 0
                random.save()
                untrained_random = score_segmenter(_load_as_app(out, "rand"), tests)
            else:
                name, sec, _ = train(chosen, world, critic, start, seed)
                full = score_segmenter(_load_as_app(out, name), tests)
            full_runs.append(full)
            crf_s = full.crf.miou_seen if full.crf is not None else float("nan")
            report(f"  seed {seed}: full model mIoU (S) {100 * full.summary.miou_seen:.1f} % "
                   f"thresholded, {100 * crf_s:.1f} % after CRF")  # fmt: skip
    oracle = oracle_all_objects(tests)

    report("")
    report(f"  {'model (fixed calibration, threshold 0.5)':<34} {'mIoU-S':>6} {'+CRF':>6} "
           f"{'mIoU-U':>6} "
           f"{'hIoU':>6} {'pAcc':>6} {'train':>8}  {'AUC':>5} {'C obj':>6} "
           f"{'C rest':>6}")  # fmt: skip
    first = s.seeds[0]
    for name, (r, sec) in results.items():
        report(_row(f"{name} [seed {first}]", r, sec))
    report(_row("untrained: critic's encoder", untrained_start))
    report(_row("untrained: random weights", untrained_random))
    report(_row("reference: all objects (oracle)", oracle))
    plain = [r.summary.miou_seen for r in full_runs]
    refined = [r.crf.miou_seen for r in full_runs if r.crf is not None]
    report("")
    report(f"  full model over {len(full_runs)} seeds (mean ± sd): mIoU (S) {_mean_sd(plain)} "
           f"thresholded, {_mean_sd(refined)} after CRF; mIoU (U) "
           f"{_mean_sd([r.summary.miou_unseen for r in full_runs])}; hIoU "
           f"{_mean_sd([r.summary.hiou for r in full_runs])}")  # fmt: skip
    full0 = results["full (all losses)"][0].summary
    report("  full model, IoU per class: " + ", ".join(
        f"{name} {100 * c.iou:.1f}" for name, c in full0.classes.items()))  # fmt: skip
    total = time.perf_counter() - t_start
    ok_time = total <= 20 * 60
    mean_plain = float(np.mean(plain))
    ok_miou = mean_plain >= 0.6
    best_untrained = max(untrained_start.summary.miou_seen, untrained_random.summary.miou_seen)
    ok_gain = mean_plain > best_untrained + 0.1
    report("")
    report(f"  total {total / 60:.1f} min (target ≤ 20 min: {'PASS' if ok_time else 'FAIL'})")
    report(f"  full model mIoU (S) {100 * mean_plain:.1f} % thresholded at 0.5, mean of "
           f"{len(plain)} seeds (target ≥ 60 %: {'PASS' if ok_miou else 'FAIL'}); after CRF "
           f"post-processing {100 * float(np.mean(refined)):.1f} % (not the verdict); above "
           f"the untrained models by ≥ 10 points: {'PASS' if ok_gain else 'FAIL'}")  # fmt: skip
    return 0 if ok_time and ok_miou and ok_gain else 1
