"""Training SketchFusion's head for one task (seed 003 §6), SD and CLIP frozen.

Only the injection convolutions, the aggregation network and the branch weights train (plus a
linear classifier for recognition). Losses, on the fused extractor's maps ``F`` (B, d, h, w)
and their global max pools ``g`` (B, d):

- **retrieval**: triplet ``max(0, μ + δ(g_s, g_p) − δ(g_s, g_n))`` (Eq. 1), δ the distance of
  L2-normalised vectors; the negative is a photo of another class (category-level) or another
  photo of the same class (fine-grained), as the source draws it;
- **recognition**: cross-entropy of a linear classifier on ``g_s`` (Eq. 2);
- **segmentation**: ``C = cos(g_s, F_p(u, v))``, upsampled bilinearly to the mask's size, the
  differentiable sigmoid threshold ``σ((up(C) − 0.5)/τ)`` and BCE against the mask (Eq. 4;
  the same calibration the app applies to fine-tuned maps, so the head loads as "fixed");
- **correspondence**: CLIP-style symmetric InfoNCE between the features at paired keypoints
  (bilinearly sampled at the keypoints' cells; every other keypoint of the batch is a
  negative) plus the end-point error of the flow estimated from the features: each sketch
  keypoint's match on the photo is the soft-argmax of its correlation with every photo cell,
  and the EPE is its L2 distance to the true point, in units of the image side (Eq. 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sketchpad.train.fusion_data import FusionBatch, Task
from sketchpad.train.loop import LoopConfig, Trainer, TrainingError, adamw, step_rng
from sketchpad.train.losses import correlation, info_nce, mask_logits, triplet_loss
from sketchpad.vision.fusion.model import FusedExtractor

HEAD_PREFIX = "head."


class BatchSource(Protocol):
    def batch(self, task: Task, rng: np.random.Generator, n: int) -> FusionBatch: ...


# --- losses -----------------------------------------------------------------------------------


def features_at(fmap: torch.Tensor, points: torch.Tensor, side: int) -> torch.Tensor:
    """(B, d, h, w) maps sampled bilinearly at (B, K, 2) x, y pixel points of a ``side``-pixel
    input (cell centres at (i + ½)·stride) → (B, K, d)."""
    grid = (points / side) * 2 - 1  # align_corners=False: −1/+1 are the image's outer edges
    out = F.grid_sample(fmap, grid[:, :, None, :].to(fmap.dtype), align_corners=False)
    return out[:, :, :, 0].permute(0, 2, 1)


def keypoint_contrastive(
    f_sketch: torch.Tensor, f_photo: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    """Symmetric InfoNCE between (B, K, d) features at paired keypoints: each sketch keypoint
    against every photo keypoint of the batch."""
    d = f_sketch.shape[-1]
    return info_nce(f_sketch.reshape(-1, d), f_photo.reshape(-1, d), temperature)


def soft_argmax_flow(
    f_query: torch.Tensor, photo_map: torch.Tensor, temperature: float = 0.05
) -> torch.Tensor:
    """Where each of (B, K, d) query features lands on (B, d, h, w) photo maps: the
    softmax(cos / T)-weighted mean of the cell centres, (B, K, 2) x, y in [0, 1] of the side."""
    b, d, h, w = photo_map.shape
    cells = F.normalize(photo_map.flatten(2), dim=1)  # (B, d, hw)
    sim = torch.einsum("bkd,bdn->bkn", F.normalize(f_query, dim=-1), cells)
    weights = torch.softmax(sim / temperature, dim=-1)
    ys, xs = torch.meshgrid(
        (torch.arange(h, device=photo_map.device) + 0.5) / h,
        (torch.arange(w, device=photo_map.device) + 0.5) / w,
        indexing="ij",
    )
    centres = torch.stack([xs.flatten(), ys.flatten()], dim=-1).to(weights.dtype)  # (hw, 2)
    return weights @ centres


def end_point_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L2 distance between (B, K, 2) points."""
    return (pred - target).norm(dim=-1).mean()


def segmentation_loss(
    g_sketch: torch.Tensor, photo_map: torch.Tensor, mask: torch.Tensor, tau: float
) -> torch.Tensor:
    """Eq. 4: BCE between ``σ((up(cos(g_s, F_p)) − 0.5)/τ)`` and the (B, H, W) mask."""
    c = correlation(g_sketch, photo_map.permute(0, 2, 3, 1))
    logits = mask_logits(c, (mask.shape[-2], mask.shape[-1]), tau)
    return F.binary_cross_entropy_with_logits(logits, mask)


# --- the model and trainer --------------------------------------------------------------------


@dataclass(frozen=True)
class FusionTrainConfig:
    """A run's settings (recorded in the checkpoint; resuming warns when they change)."""

    backbone: str
    task: str
    lr: float
    size: int
    margin: float
    tau: float
    temperature: float


class FusionTaskModel(nn.Module):
    """The extractor and, for recognition, its classifier (what the trainer saves)."""

    def __init__(self, extractor: FusedExtractor, n_classes: int = 0) -> None:
        super().__init__()
        self.extractor = extractor
        self.head = nn.Linear(extractor.out_dim, n_classes) if n_classes > 0 else None

    def trained_state(self) -> dict[str, torch.Tensor]:
        sd = dict(self.extractor.trainable_state_dict())
        if self.head is not None:
            sd.update({HEAD_PREFIX + k: v for k, v in self.head.state_dict().items()})
        return {k: v.detach().contiguous().clone() for k, v in sd.items()}

    def load_trained_state(self, sd: dict[str, torch.Tensor]) -> None:
        expected = self.trained_state()
        if set(sd) != set(expected):
            diff = sorted(set(sd) ^ set(expected))
            raise RuntimeError(f"the checkpoint's trained parts differ: {diff[:4]}")
        ext = {k: v for k, v in sd.items() if not k.startswith(HEAD_PREFIX)}
        self.extractor.load_state_dict(ext, strict=False)
        if self.head is not None:
            head = {k[len(HEAD_PREFIX) :]: v for k, v in sd.items() if k.startswith(HEAD_PREFIX)}
            self.head.load_state_dict(head, strict=True)


class FusionTrainer(Trainer):
    """One task's training of the fused extractor's head.

    Args:
        backbone_id: the registry id (recorded in the checkpoint; the app loads it by it).
        extractor: the fused extractor (SD and CLIP loaded and frozen).
        task: which loss.
        source: the batches.
        loop: steps, batch size, seed, device, checkpoint folder.
        lr: AdamW's learning rate for the trained parts.
        classes: class names (recognition: the classifier's outputs).
        size: the input side the source produces.
        margin: the triplet margin μ; tau: the segmentation threshold's temperature;
        temperature: the contrastive and flow softmax temperatures.
    """

    kind = "fusion"

    def __init__(
        self,
        backbone_id: str,
        extractor: FusedExtractor,
        task: Task,
        source: BatchSource,
        loop: LoopConfig,
        *,
        lr: float = 1e-4,
        classes: tuple[str, ...] = (),
        size: int,
        margin: float = 0.2,
        tau: float = 0.1,
        temperature: float = 0.07,
    ) -> None:
        super().__init__(loop)
        if task == "recognition" and len(classes) < 2:
            raise TrainingError("recognition needs at least two classes")
        from sketchpad.vision.backbone import choose_device

        self.backbone_id = backbone_id
        self.task: Task = task
        self.source = source
        self.size = int(size)
        self.classes = tuple(classes)
        self.margin, self.tau, self.temperature = float(margin), float(tau), float(temperature)
        self.device = choose_device(loop.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(loop.seed)
            n = len(classes) if task == "recognition" else 0
            self.model = FusionTaskModel(extractor, n).to(self.device)
        self.optimizer = adamw([(self._trainable(), lr)], loop.weight_decay)
        self.lr = lr
        self.config = FusionTrainConfig(
            backbone_id, task, float(lr), self.size, self.margin, self.tau, self.temperature
        )

    def _trainable(self) -> list[nn.Parameter]:
        model: FusionTaskModel = self.model  # type: ignore[assignment]
        params = model.extractor.trainable_parameters()
        if model.head is not None:
            params += list(model.head.parameters())
        return params

    @property
    def task_model(self) -> FusionTaskModel:
        model: FusionTaskModel = self.model  # type: ignore[assignment]
        return model

    def metadata(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone_id,
            "task": self.task,
            "config": self.task_model.extractor.config.to_dict(),
            "classes": list(self.classes),
            "input_size": self.size,
            "tau": self.tau,
            "lr": self.lr,
            # a segmentation head is calibrated like our fine-tuned segmenters (Eq. 4)
            "sketchpad_fine_tuned": self.task == "segmentation",
        }

    def state_dict_to_save(self) -> dict[str, torch.Tensor]:
        return self.task_model.trained_state()

    def load_saved_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        self.task_model.load_trained_state(sd)

    def _fmap(self, x: torch.Tensor | None) -> torch.Tensor:
        if x is None:
            raise TrainingError(f"the {self.task} batch lacks an image")
        return self.task_model.extractor(x.to(self.device))

    def compute_losses(self, step: int) -> dict[str, torch.Tensor]:
        rng = step_rng(self.loop.seed, step)
        batch = self.source.batch(self.task, rng, self.loop.batch_size)
        return self.losses_of(batch)

    def losses_of(self, batch: FusionBatch) -> dict[str, torch.Tensor]:
        """The task's losses on ``batch`` (``"total"`` is minimised)."""
        pool: Callable[[torch.Tensor], torch.Tensor] = FusedExtractor.global_vector
        fs = self._fmap(batch.sketch)
        if self.task == "recognition":
            assert self.task_model.head is not None and batch.labels is not None
            ce = F.cross_entropy(self.task_model.head(pool(fs)), batch.labels.to(self.device))
            return {"total": ce, "ce": ce}
        fp = self._fmap(batch.photo)
        if self.task == "retrieval":
            fn = self._fmap(batch.negative)
            tri = triplet_loss(pool(fs), pool(fp), pool(fn), self.margin)
            return {"total": tri, "triplet": tri}
        if self.task == "segmentation":
            if batch.mask is None:
                raise TrainingError("the segmentation batch lacks masks")
            bce = segmentation_loss(pool(fs), fp, batch.mask.to(self.device), self.tau)
            return {"total": bce, "bce": bce}
        if batch.kp_sketch is None or batch.kp_photo is None:
            raise TrainingError("the correspondence batch lacks keypoints")
        kp_s, kp_p = batch.kp_sketch.to(self.device), batch.kp_photo.to(self.device)
        side = batch.sketch.shape[-1]
        f_s, f_p = features_at(fs, kp_s, side), features_at(fp, kp_p, side)
        con = keypoint_contrastive(f_s, f_p, self.temperature)
        epe = end_point_error(soft_argmax_flow(f_s, fp), kp_p / side)
        return {"total": con + epe, "contrastive": con, "epe": epe}
