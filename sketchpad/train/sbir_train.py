"""The SBIR critic (seed 000 §3) and ``sketchpad train sbir``.

A critic embeds sketches and photos into one space: a backbone's global feature, then a
linear head. Category-level critics use separate sketch and photo encoders, fine-grained ones
share one (seed 000 §3). It is trained with a triplet loss (category-level: the negative photo
is of another class; fine-grained: another instance of the same class) plus a classification
head on the joint space, and then serves, frozen, as the segmenter's critic (``L_SBIR``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sketchpad.train.checkpoint import CheckpointError, read_metadata, read_weights
from sketchpad.train.encoders import TrainableEncoder
from sketchpad.train.loop import LoopConfig, Trainer, TrainingError, adamw, step_rng
from sketchpad.train.losses import triplet_loss
from sketchpad.vision.backbone import choose_device
from sketchpad.vision.registry import build_model, get_spec

Level = Literal["category", "fine"]


class SBIRCritic(nn.Module):
    """Sketch and photo encoders (shared or separate) with a linear embedding head and a
    classification head.

    Keys of its state dict: ``photo.model.*``, ``sketch.model.*`` (absent when shared),
    ``head.*`` (absent when ``dim`` is 0: no head), ``classifier.*``.

    ``photo_pool`` says which feature of a photo is embedded: ``"cls"`` (the global token) or
    ``"mean"`` (the average of its patch tokens, as a class-activation-map network pools: the
    patches themselves then learn to say what they show, which a segmenter started from this
    encoder needs). Sketches always use the global token, as the segmenter does.
    """

    def __init__(
        self,
        backbone_id: str,
        classes: Sequence[str],
        *,
        shared: bool,
        dim: int = 128,
        photo_pool: str = "cls",
    ) -> None:
        super().__init__()
        if photo_pool not in ("cls", "mean", "max"):
            raise ValueError(f"photo_pool must be 'cls', 'mean' or 'max', got {photo_pool!r}")
        spec = get_spec(backbone_id)
        self.backbone_id = backbone_id
        self.classes = tuple(classes)
        self.shared = shared
        self.dim = dim
        self.photo_pool = photo_pool
        self.photo = TrainableEncoder(spec, build_model(spec), patch_path="plain")
        self.sketch = None if shared else copy.deepcopy(self.photo)
        self.head = nn.Linear(spec.embed_dim, dim) if dim > 0 else nn.Identity()
        self.classifier = nn.Linear(dim or spec.embed_dim, max(1, len(self.classes)))

    @property
    def input_size(self) -> int:
        return self.photo.spec.input_size

    def embed_photo(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) photos in [0, 1] → (B, dim) embeddings (not normalised)."""
        if self.photo_pool == "cls":
            return self.head(self.photo.encode_global(x))
        return self.embed_photo_and_patches(x)[0]

    def embed_photo_and_patches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The photo embeddings (as :meth:`embed_photo`) and the (B, gh, gw, d) patch tokens they
        come from."""
        pooled, patches = self.photo.encode_patches(x)
        if self.photo_pool == "mean":
            return self.head(patches.mean(dim=(1, 2))), patches
        if self.photo_pool == "max":
            return self.head(patches.amax(dim=(1, 2))), patches
        return self.head(pooled), patches

    def embed_sketch(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) sketches in [0, 1] → (B, dim) embeddings (not normalised)."""
        enc = self.photo if self.sketch is None else self.sketch
        return self.head(enc.encode_global(x))

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.normalize(emb, dim=-1) * 10.0)

    def freeze(self) -> SBIRCritic:
        """Eval mode and no gradients for its own parameters (gradients still flow through
        it to its inputs: the segmenter's masks)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def metadata(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone_id,
            "classes": list(self.classes),
            "shared": self.shared,
            "dim": self.dim,
            "photo_pool": self.photo_pool,
        }


def load_critic(path: str | Path, device: str | torch.device = "cpu") -> SBIRCritic:
    """A critic saved by ``sketchpad train sbir`` (any of its checkpoint files), frozen.

    Raises:
        CheckpointError: missing, damaged, or not an SBIR critic.
    """
    meta = read_metadata(path)
    if meta.get("kind") != "sbir":
        raise CheckpointError(
            Path(path), f"is a {meta.get('kind')!r} checkpoint, not an SBIR critic"
        )
    try:
        critic = SBIRCritic(
            meta["backbone"],
            meta["classes"],
            shared=bool(meta["shared"]),
            dim=int(meta["dim"]),
            photo_pool=str(meta.get("photo_pool", "cls")),
        )
    except KeyError as e:
        raise CheckpointError(Path(path), f"metadata lacks or has a bad {e}") from e
    try:
        critic.load_state_dict(read_weights(path), strict=True)
    except RuntimeError as e:
        raise CheckpointError(Path(path), f"weights do not fit the critic ({e})") from e
    return critic.to(choose_device(str(device)) if isinstance(device, str) else device).freeze()


@dataclass(frozen=True)
class TripletBatch:
    """Images as (B, S, S, 3) uint8; ``labels`` (B,) class indices of the anchors."""

    sketches: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    labels: np.ndarray


class TripletSource(Protocol):
    """Where SBIR triplets come from (a dataset, or the synthetic world)."""

    @property
    def classes(self) -> Sequence[str]: ...

    def triplets(self, rng: np.random.Generator, k: int, level: Level) -> TripletBatch: ...


@dataclass
class SBIRConfig:
    """``sketchpad train sbir``'s settings."""

    backbone: str = "clip-vit-b16"
    level: Level = "category"
    lr: float = 1e-5
    margin: float = 0.2
    dim: int = 128  # 0: no head, the backbone's own space
    photo_pool: str = "cls"
    class_weight: float = 1.0
    shared: bool | None = None  # default: separate for category-level, shared for fine-grained
    pretrained: bool = True  # start from the backbone's weights (False: random, benchmarks)
    weights: str | None = None
    #: Probability that a photo is blacked out outside or inside a random box: the critic then
    #: also knows photos that are partly black, which is what masked photos look like.
    erase: float = 0.0
    #: Weight of the local-consistency loss: the patch tokens of an erased photo, where its
    #: pixels were kept, must equal the same patches of the whole photo (1 − cosine), so a
    #: patch describes what it shows rather than the whole photo. A segmenter started from
    #: the critic's encoder reads those patches (0: off; needs ``erase`` > 0).
    consistency: float = 0.0


def random_erase(images: np.ndarray, rng: np.random.Generator, rate: float) -> np.ndarray:
    """A copy of (B, S, S, 3) uint8 ``images`` where each, with probability ``rate``, is black
    outside a random box (keeping 25–80 % of each side) or, as often, inside one."""
    if rate <= 0:
        return images
    out = images.copy()
    b, h, w = images.shape[:3]
    for i in np.flatnonzero(rng.random(b) < rate):
        bh, bw = (int(round(n * rng.uniform(0.25, 0.8))) for n in (h, w))
        y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        if rng.random() < 0.5:
            keep = out[i, y : y + bh, x : x + bw].copy()
            out[i] = 0
            out[i, y : y + bh, x : x + bw] = keep
        else:
            out[i, y : y + bh, x : x + bw] = 0
    return out


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, S, S, 3) uint8 → (B, 3, S, S) float in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2) / 255.0


class SBIRTrainer(Trainer):
    """Triplet + classification training of an :class:`SBIRCritic`."""

    kind = "sbir"
    model: SBIRCritic

    def __init__(self, config: SBIRConfig, source: TripletSource, loop: LoopConfig) -> None:
        super().__init__(loop)
        if config.level not in ("category", "fine"):
            raise TrainingError(f"level must be 'category' or 'fine', got {config.level!r}")
        if len(source.classes) < 2 and config.level == "category":
            raise TrainingError("category-level training needs at least two classes")
        self.config = config
        self.source = source
        self.device = choose_device(loop.device)
        shared = config.shared if config.shared is not None else config.level == "fine"
        torch.manual_seed(loop.seed)
        critic = SBIRCritic(config.backbone, source.classes, shared=shared, dim=config.dim,
                            photo_pool=config.photo_pool)  # fmt: skip
        if config.pretrained:
            _load_backbone_weights(critic, config.weights)
        self.model = critic.to(self.device)
        self.optimizer = adamw([(self.model.parameters(), config.lr)], loop.weight_decay)

    def metadata(self) -> dict[str, Any]:
        return {**self.model.metadata(), "config": asdict(self.config)}

    def compute_losses(self, step: int) -> dict[str, torch.Tensor]:
        """Triplet and class losses (means over rows), the consistency loss (a ratio over the
        whole batch). The step's whole batch is drawn and erased as in one process; this
        process encodes its rows (:meth:`Trainer.rows`)."""
        rng = step_rng(self.loop.seed, step)
        batch = self.source.triplets(rng, self.loop.batch_size, self.config.level)
        critic: SBIRCritic = self.model
        k = len(batch.sketches)
        mine = self.rows(k)
        photos = np.concatenate([batch.positives, batch.negatives])
        erased = random_erase(photos, rng, self.config.erase)
        take = np.r_[np.arange(k)[mine], k + np.arange(k)[mine]]  # my positives, negatives
        photos, erased = photos[take], erased[take]
        s = critic.embed_sketch(to_tensor(batch.sketches[mine], self.device))
        if self.config.consistency > 0:
            pn, patches = critic.embed_photo_and_patches(to_tensor(erased, self.device))
        else:
            pn, patches = critic.embed_photo(to_tensor(erased, self.device)), None
        p, n = pn[: len(s)], pn[len(s) :]
        trip = triplet_loss(s, p, n, self.config.margin)
        labels = torch.from_numpy(batch.labels[mine]).long().to(self.device)
        cls = 0.5 * (
            F.cross_entropy(critic.logits(s), labels) + F.cross_entropy(critic.logits(p), labels)
        )
        total = trip + self.config.class_weight * cls
        out = {"triplet": trip, "class": cls}
        if patches is not None:
            out["consistency"] = self._consistency(photos, erased, patches)
            total = total + self.config.consistency * out["consistency"]
        return {"total": total, **out}

    def _consistency(
        self, photos: np.ndarray, erased: np.ndarray, patches: torch.Tensor
    ) -> torch.Tensor:
        """Mean ``1 − cos`` between the erased photos' tokens and the whole photos' tokens over
        the patches whose pixels the erasing left untouched (the whole photos are encoded
        again; both sides get gradients). A mean over the kept patches of the whole batch:
        with several processes, this process's sum over the global count of kept patches,
        times the number of processes (their mean is then the global mean)."""
        b, gh, gw = patches.shape[:3]
        changed = (erased != photos).any(axis=-1)
        ph, pw = changed.shape[1] // gh, changed.shape[2] // gw
        kept = ~changed[:, : gh * ph, : gw * pw].reshape(b, gh, ph, gw, pw).any(axis=(2, 4))
        rows = np.flatnonzero(changed.reshape(b, -1).any(axis=1))
        count = float(kept[rows].sum())
        if self.dist.active:
            count = self.dist.mean({"n": count})["n"] * self.dist.world
        if not len(rows):
            return patches.sum() * 0.0
        _, whole = self.model.photo.encode_patches(to_tensor(photos[rows], self.device))
        keep = torch.from_numpy(kept[rows]).to(self.device, whole.dtype)
        cos = F.cosine_similarity(patches[torch.from_numpy(rows).to(self.device)], whole, dim=-1)
        return ((1.0 - cos) * keep).sum() / max(count, 1.0) * self.dist.world


def _load_backbone_weights(critic: SBIRCritic, weights: str | None) -> None:
    """Start both encoders from the backbone's real weights (DESIGN §4.1 resolution)."""
    from sketchpad.vision import weights as W

    spec = critic.photo.spec
    resolved = W.resolve_weights(spec, weights)
    W.load_weights(critic.photo.model, spec, resolved.path)
    if critic.sketch is not None:
        critic.sketch.model.load_state_dict(critic.photo.model.state_dict())
