"""Train the scene labeller from sketch–caption pairs (seed 001 §3, DESIGN §4.5).

Two levels, trained jointly (``total = scene + category``, seed 001 Eq. 4):

- **Level I, holistic** (Eq. 1): a triplet between each sketch's VST (two-path tower, with
  prompts) and its caption's CST (CLIP's frozen text tower), the hardest other caption of the
  batch as the negative (identical captions are never negatives), margin 0.3.
- **Level II, categories** (§3.2): for each category c named in a sketch's caption, the prompt
  "a sketch of {c}" gives CCT; its per-patch cosine with the sketch's v-v patches is min-max
  normalised, upsampled to the sketch's raster, softly thresholded with the learnable θ, and
  multiplied with the sketch's ink: the category's sketch. That sketch is re-encoded with the
  text cross-attention, and the VCT of every cross-attention block (layers 7, 10, 12) is the
  anchor of a triplet against CCT, the hardest other category of the training set as the
  negative. The loss is the mean over those blocks.

Training samples are any objects with ``sketch`` (:class:`~sketchpad.sketch.model.Sketch`),
``caption`` (str) and ``categories`` (names) attributes, e.g. :class:`CaptionedScene`. The
sketches are drawn once at the model's input size (white paper, black lines, the sketch's
bounding box fitted with a margin: the labeller's own view) and the texts are encoded once; a
step's batch is a function of (seed, step) only, so a resumed run is exact.

A checkpoint ``DIR/<name>`` holds the open_clip model's state dict in ``<name>.safetensors``
(the app loads it like any CLIP weights: ``create_backbone(id, weights=...)``; inference uses
the plain model), and the trained tensors the app's CLIP has no place for (prompts, the
cross-attention's ``text_in`` layers, θ) in ``<name>.extra.safetensors``, because the app's
loader is strict and refuses unknown keys. The extras are written first and carry the step,
so a run stopped while saving is detected on resume.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from sketchpad.sketch.model import Sketch
from sketchpad.sketch.raster import render_query
from sketchpad.train.checkpoint import FORMAT, CheckpointError, CheckpointPaths
from sketchpad.train.loop import (
    LoopConfig,
    Trainer,
    TrainingError,
    adamw,
    seed_everything,
    step_rng,
)
from sketchpad.train.losses import hardest_negative_triplet
from sketchpad.train.scene_model import PAPER_CROSS_ATTENTION_LAYERS, PAPER_DEPTH, SceneEncoder
from sketchpad.vision.backbone import Backbone, choose_device, create_backbone

log = logging.getLogger(__name__)

#: Suffix of the file with the tensors that are not part of the open_clip model.
EXTRA_SUFFIX = ".extra.safetensors"
_TEXT_CHUNK = 256


class CaptionedSketch(Protocol):
    """What a training sample must have."""

    @property
    def sketch(self) -> Sketch: ...

    @property
    def caption(self) -> str: ...

    @property
    def categories(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class CaptionedScene:
    """One training sample: a scene sketch, its caption and the categories the caption names.

    Attributes:
        sketch: the drawing (vector or raster-only, with ink).
        caption: what the sketch shows, in words.
        categories: the object names in the caption (e.g. from ``Vocabulary.labels_from_caption``);
            may be empty (the sketch then trains level I only).
    """

    sketch: Sketch
    caption: str
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.caption, str) or not self.caption.strip():
            raise ValueError("CaptionedScene.caption must be a non-empty string")
        object.__setattr__(self, "categories", tuple(str(c) for c in self.categories))


@dataclass
class SceneTrainConfig:
    """What a scene-labeller run trains and how (seed 001 §3–4).

    Attributes:
        backbone: an open_clip backbone id of the registry.
        weights: its weights file (None: resolved as the app does).
        pretrained: False starts from random weights (tests, benchmarks).
        lr: learning rate of LayerNorms, prompts and cross-attention layers (the paper: 1e-6).
        threshold_lr: learning rate of θ (the released code: 1e-4; at 1e-6 it would not move).
        margin: the triplets' margin μ (the paper: 0.3).
        n_prompts: visual prompt tokens (the paper: 3).
        cross_attention_layers: 1-based layers of a ViT-B (12 blocks) with text cross-attention
            (the paper: 7, 10, 12), mapped proportionally to other depths.
        n_vv: final blocks with the v-v stream (CLIP Surgery: 6).
        input_size: square model input side; None: the backbone's.
        line_width: line width of the model's view, in input pixels (the labeller's: 3).
        view_margin: free margin of the model's view, a fraction of each side (the labeller's).
        category_template: the category prompt (the paper: "A sketch of *").
        max_categories: categories per sketch and step at most (the released code: 3); more
            are sampled per step.
        threshold: θ's initial value on the min-max normalised maps.
        threshold_temperature: τ of the soft threshold ``σ((m − θ)/τ)``.
    """

    backbone: str = "clip-vit-b16"
    weights: str | None = None
    pretrained: bool = True
    lr: float = 1e-6
    threshold_lr: float = 1e-4
    margin: float = 0.3
    n_prompts: int = 3
    cross_attention_layers: tuple[int, ...] = PAPER_CROSS_ATTENTION_LAYERS
    n_vv: int = 6
    input_size: int | None = None
    line_width: float = 3.0
    view_margin: float = 0.1
    category_template: str = "a sketch of {}"
    max_categories: int = 3
    threshold: float = 0.5
    threshold_temperature: float = 0.05

    def check(self) -> None:
        """Raises TrainingError naming the first bad field."""
        if self.lr <= 0 or self.threshold_lr < 0:
            raise TrainingError(
                f"lr must be > 0 and threshold_lr ≥ 0 (got {self.lr}, {self.threshold_lr})"
            )
        if self.margin < 0:
            raise TrainingError(f"margin must be ≥ 0, got {self.margin}")
        if self.max_categories < 1:
            raise TrainingError(f"max_categories must be ≥ 1, got {self.max_categories}")
        if "{}" not in self.category_template:
            raise TrainingError(
                f"category_template must contain '{{}}' for the name, got "
                f"{self.category_template!r}"
            )


def extra_weights_path(base: str | Path) -> Path:
    """``DIR/<name>.extra.safetensors`` of checkpoint ``base`` (``DIR/<name>``, any of its
    files, or the extras file itself)."""
    if Path(base).name.endswith(EXTRA_SUFFIX):
        return Path(base)
    weights = CheckpointPaths.of(base).weights
    return weights.with_name(weights.name[: -len(".safetensors")] + EXTRA_SUFFIX)


def read_extra_weights(base: str | Path) -> tuple[dict[str, torch.Tensor], int]:
    """(tensors, step) of checkpoint ``base``'s extras file.

    Raises:
        CheckpointError: missing or corrupt.
    """
    from safetensors import safe_open

    path = extra_weights_path(base)
    if not path.is_file():
        raise CheckpointError(path, "no scene extras (prompts, cross-attention, threshold) file")
    try:
        with safe_open(str(path), framework="pt") as f:
            step = int((f.metadata() or {}).get("step", -1))
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for bad files
        raise CheckpointError(path, f"truncated or corrupt safetensors file ({e})") from e
    return tensors, step


def _weights_step(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return int((f.metadata() or {}).get("step", -1))


def render_ink(
    sketches: Sequence[Sketch], size: int, line_width: float, margin: float
) -> np.ndarray:
    """(N, size, size) float32 ink coverage in [0, 1] (1 = full ink) of each sketch's model view.

    Raises:
        ValueError: a sketch without ink (its index is named).
    """
    out = np.zeros((len(sketches), size, size), dtype=np.float32)
    for i, sketch in enumerate(sketches):
        if sketch.bbox() is None:
            raise ValueError(f"training sketch {i} has no ink")
        grey = render_query(sketch, None, size, line_width=line_width, margin=margin)
        out[i] = 1.0 - grey.astype(np.float32) / 255.0
    return out


def _distinct(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in names if n.strip()))


class SceneTrainer(Trainer):
    """Trains :class:`~sketchpad.train.scene_model.SceneEncoder` on captioned scene sketches.

    Args:
        samples: the training set (see the module docstring).
        config: what is trained.
        loop: steps, batch size, seed, device, checkpoint folder.

    Raises:
        TrainingError: an empty training set or a bad configuration.
        ValueError: a sample without ink or caption.
    """

    kind = "scene"
    model: SceneEncoder

    def __init__(
        self, samples: Sequence[CaptionedSketch], config: SceneTrainConfig, loop: LoopConfig
    ) -> None:
        super().__init__(loop)
        config.check()
        if not samples:
            raise TrainingError("no training samples")
        self.config = config
        seed_everything(loop.seed)
        self.device = choose_device(loop.device)
        backbone = create_backbone(
            config.backbone,
            weights=config.weights,
            device=self.device,
            pretrained=config.pretrained,
            seed=loop.seed,
            fp16=False,
        )
        spec = backbone.spec
        self.spec = spec
        self.input_size = int(config.input_size or spec.input_size)
        if self.input_size % spec.patch_size:
            raise TrainingError(
                f"input_size {self.input_size} must be a multiple of {spec.patch_size}"
            )
        self.model = SceneEncoder(
            spec,
            backbone.model,
            n_prompts=config.n_prompts,
            cross_attention_layers=config.cross_attention_layers,
            reference_depth=PAPER_DEPTH,
            n_vv=config.n_vv,
            threshold=config.threshold,
            threshold_temperature=config.threshold_temperature,
            seed=loop.seed,
        )
        tuned = self.model.tuned_parameters()
        others = [p for p in tuned if p is not self.model.threshold]
        self.optimizer = adamw(
            [(others, config.lr), ([self.model.threshold], config.threshold_lr)],
            loop.weight_decay,
        )
        for group in self.optimizer.param_groups:  # no decay pulling θ towards 0
            if any(p is self.model.threshold for p in group["params"]):
                group["weight_decay"] = 0.0

        # Everything a step needs, computed once.
        ink = render_ink(
            [s.sketch for s in samples], self.input_size, config.line_width, config.view_margin
        )
        self._ink = torch.from_numpy(ink).to(self.device)  # (N, S, S)
        captions = [s.caption.strip() for s in samples]
        self.captions = tuple(dict.fromkeys(captions))
        caption_index = {c: k for k, c in enumerate(self.captions)}
        self._caption_of = np.array([caption_index[c] for c in captions], dtype=np.int64)
        per_sample = [_distinct(s.categories) for s in samples]
        self.categories = tuple(dict.fromkeys(c for cs in per_sample for c in cs))
        index = {c: k for k, c in enumerate(self.categories)}
        self._categories_of = [
            np.array([index[c] for c in cs], dtype=np.int64) for cs in per_sample
        ]
        self._caption_emb = self._encode_texts(backbone, list(self.captions))  # (Nc, E)
        prompts = [config.category_template.format(c) for c in self.categories]
        self._category_emb = self._encode_texts(backbone, prompts)  # (K, E)
        log.info(
            "scene training: %d sketches, %d captions, %d categories, %d tuned parameters",
            len(samples),
            len(self.captions),
            len(self.categories),
            sum(p.numel() for p in tuned),
        )

    @staticmethod
    def _encode_texts(backbone: Backbone, texts: list[str]) -> torch.Tensor:
        """The frozen text tower's (n, E) embeddings (float32, not normalised)."""
        if not texts:
            return torch.zeros(0, backbone.embed_dim, device=backbone.device)
        parts = [
            backbone.encode_text(texts[i : i + _TEXT_CHUNK])
            for i in range(0, len(texts), _TEXT_CHUNK)
        ]
        return torch.cat(parts).float()

    # -- a step ----------------------------------------------------------------------------
    def batch(self, step: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Step ``step``'s sketches (indices) and, per sketch, its categories (indices into
        :attr:`categories`, at most ``max_categories``): a function of (seed, step) only."""
        rng = step_rng(self.loop.seed, step)
        n = self._ink.shape[0]
        idx = rng.choice(n, size=min(self.loop.batch_size, n), replace=False)
        cats = []
        for i in idx:
            c = self._categories_of[int(i)]
            if len(c) > self.config.max_categories:
                c = np.sort(rng.choice(c, size=self.config.max_categories, replace=False))
            cats.append(c)
        return idx, cats

    def _images(self, ink: torch.Tensor) -> torch.Tensor:
        """(B, S, S) ink in [0, 1] → (B, 3, S, S) white-paper images in [0, 1]."""
        return (1.0 - ink).unsqueeze(1).expand(-1, 3, -1, -1)

    def compute_losses(self, step: int) -> dict[str, torch.Tensor]:
        """``total`` = ``scene`` (level I) + ``category`` (level II); ``threshold`` is θ's value
        (logged, not a loss)."""
        idx_all, cats_all = self.batch(step)
        dev = self.device
        mine = self.rows(len(idx_all))  # this process's sketches; the captions of all
        idx, cats = idx_all[mine], cats_all[mine]
        ink = self._ink[torch.from_numpy(idx).to(dev)]  # (B, S, S)
        vst, patches = self.model.encode_scene(self._images(ink))  # (B, E), (B, gh, gw, E)

        # Level I: VST ↔ its caption, the hardest other caption of the batch as the negative
        # (the captions' embeddings are frozen: every process has the whole batch's).
        cap_all = torch.from_numpy(self._caption_of[idx_all]).to(dev)  # (B_all,)
        cst = self._caption_emb[cap_all]  # (B_all, E)
        cap = cap_all[mine]
        same = cap[:, None] == cap_all[None, :]
        rows = torch.arange(mine.start, mine.stop, device=dev)
        scene = hardest_negative_triplet(vst, cst, rows, self.config.margin, same=same)

        # Level II: one category sketch per (sketch, category) pair.
        owner = np.concatenate([np.full(len(c), b) for b, c in enumerate(cats)]).astype(np.int64)
        if owner.size == 0:
            category = scene * 0.0
        else:
            owner_t = torch.from_numpy(owner).to(dev)
            cat_t = torch.from_numpy(np.concatenate(cats)).to(dev)
            cct = self._category_emb[cat_t]  # (P, E)
            maps = self.model.category_maps(patches[owner_t], cct)  # (P, gh, gw)
            mask = self.model.soft_mask(maps, (ink.shape[-2], ink.shape[-1]))  # (P, S, S)
            vcts = self.model.encode_category(self._images(ink[owner_t] * mask), cct)
            category = torch.stack(
                [
                    hardest_negative_triplet(v, self._category_emb, cat_t, self.config.margin)
                    for v in vcts
                ]
            ).mean()
            if self.dist.active:  # a mean over the whole batch's pairs, not this process's
                pairs = sum(len(c) for c in cats_all)
                category = category * (owner.size * self.dist.world / pairs)
        return {
            "total": scene + category,
            "scene": scene,
            "category": category,
            "threshold": self.model.threshold.detach().clone(),
        }

    # -- checkpoints -----------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "backbone": self.config.backbone,
            "scene": asdict(self.config),
            "input_size": self.input_size,
            "cross_attention_blocks": [b + 1 for b in self.model.ca_blocks],
            "threshold": float(self.model.threshold.detach()),
            "extra_weights": f"{self.loop.name}{EXTRA_SUFFIX}",
            "categories": len(self.categories),
        }

    def state_dict_to_save(self) -> dict[str, torch.Tensor]:
        return self.model.clip_state_dict()

    def load_saved_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        paths = self.checkpoint
        if paths is None:
            raise CheckpointError(Path(self.loop.name), "no checkpoint folder to resume from")
        extras, step = read_extra_weights(paths.weights)
        if step != _weights_step(paths.weights):
            raise CheckpointError(
                extra_weights_path(paths.weights),
                f"extras of step {step} but weights of step {_weights_step(paths.weights)}: the "
                "run stopped while saving; delete the folder's checkpoint files or train into a "
                "new folder",
            )
        self.model.clip.load_state_dict(sd, strict=True)
        self.model.load_extra_state_dict(extras)

    def save(self) -> CheckpointPaths | None:
        """Write the extras, then the checkpoint (module docstring); rank 0 only."""
        paths = self.checkpoint
        if paths is None or not self.dist.chief:
            return None
        from safetensors.torch import save as st_save

        from sketchpad.atomic import SaveError, atomic_write_bytes

        tensors = {
            k: v.detach().to("cpu").contiguous().clone()
            for k, v in self.model.extra_state_dict().items()
        }
        meta = {"format": FORMAT, "kind": "scene-extras", "step": str(self.step)}
        target = extra_weights_path(paths.weights)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, st_save(tensors, metadata=meta))
        except (SaveError, OSError) as e:
            raise CheckpointError(target, f"cannot write the scene extras ({e})") from e
        return super().save()
