"""``sketchpad train segmenter``: the mask-free sketch → photo segmenter (seed 000 §4.2–4.5).

Per step, k sketch–photo pairs and one unpaired photo per sketch (DESIGN §4.5):

- ``C = cos(s, p)`` between the sketch's global feature and the photo's patch features;
- InfoNCE between ``s`` and the attention-pooled ``p̂ = Σ softmax(C)·p``;
- ``M = σ((up(C) − 0.5)/τ)``; ``L_SBIR = δ(F(P ⊙ M), F(S))`` with a frozen SBIR critic F;
- the unpaired loss ``−mean log(1 − σ(C_n))`` on the unpaired photo;
- the regulariser ``−mean log(1 − M)``;
- on a fraction of the batch (half by default) the sketch is cut in two sectors around its
  centroid (``sketch.parts.sector_part``) and ``M = M_A + M_B − 2·M_A·M_B`` replaces the mask.

With several processes (``--nproc``) each encodes its rows of the batch; InfoNCE compares the
pairs of the whole batch (gathered with their gradients), the other losses are means over rows.

The saved weights are the backbone model's own state dict, so the app loads a checkpoint as
it loads any weights file; its JSON says ``"sketchpad_fine_tuned": true`` (maps calibrated:
'fixed' threshold 0.5 at the training τ).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from sketchpad.sketch.model import Sketch
from sketchpad.sketch.parts import sector_part
from sketchpad.train import losses as L
from sketchpad.train.encoders import TrainableEncoder, Tune, default_tuning
from sketchpad.train.loop import LoopConfig, Trainer, TrainingError, adamw, step_rng
from sketchpad.train.sbir_train import SBIRCritic, to_tensor
from sketchpad.vision.backbone import choose_device
from sketchpad.vision.features import sketch_input
from sketchpad.vision.registry import build_model, get_spec


@dataclass(frozen=True)
class PairBatch:
    """One step's images, (·, S, S, 3) uint8 at the model's input size.

    Attributes:
        sketches: (k, …) the whole sketches.
        photos: (k, …) each sketch's photo.
        unpaired: (k, …) a photo without the sketch's concept, per sketch.
        parts: (m, 2, …) the two sectors of the sketches ``part_rows`` (whole-sketch framing).
        part_rows: (m,) int64 rows of the batch that have a partition.
        labels: (k,) class index of each sketch, where the source knows it (diagnostics and
            tests only: the losses never read it).
    """

    sketches: np.ndarray
    photos: np.ndarray
    unpaired: np.ndarray
    parts: np.ndarray
    part_rows: np.ndarray
    labels: np.ndarray | None = None


class PairSource(Protocol):
    """Where sketch–photo pairs come from (a dataset, or the synthetic world)."""

    def pairs(self, rng: np.random.Generator, k: int, partition_fraction: float) -> PairBatch: ...


def partition_views(
    sketch: Sketch, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The two halves of ``sketch`` cut by a line of random slope through its centroid (seed
    000 §4.5, n = 2), each rendered in the whole sketch's framing; None when one is empty."""
    theta = float(rng.uniform(0, 2 * np.pi))
    try:
        a = sector_part(sketch, 2, 0, theta)
        b = sector_part(sketch, 2, 1, theta)
    except ValueError:
        return None
    return sketch_input(a, sketch, size), sketch_input(b, sketch, size)


def choose_partitions(
    sketches: Sequence[Sketch], rng: np.random.Generator, size: int, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Partition views for the first ``round(fraction · k)`` sketches that can be cut:
    ((m, 2, S, S, 3) uint8, (m,) rows)."""
    want = int(round(fraction * len(sketches)))
    views: list[np.ndarray] = []
    rows: list[int] = []
    for i, sk in enumerate(sketches):
        if len(rows) >= want:
            break
        pv = partition_views(sk, rng, size)
        if pv is not None:
            views.append(np.stack(pv))
            rows.append(i)
    if not views:
        return np.zeros((0, 2, size, size, 3), np.uint8), np.zeros(0, np.int64)
    return np.stack(views), np.asarray(rows, dtype=np.int64)


@dataclass
class SegmenterConfig:
    """``sketchpad train segmenter``'s settings (all λ = 1, DESIGN §4.5).

    ``tune``/``lr`` default to DESIGN's: CLIP LayerNorms at 1e-5, DINOv2 all at 1e-6.
    """

    backbone: str = "clip-vit-b16"
    tune: Tune | None = None
    lr: float | None = None
    tau: float = 0.1
    nce_temperature: float = 0.07
    pool_temperature: float = 0.1
    lambda_infonce: float = 1.0
    lambda_sbir: float = 1.0
    lambda_unpaired: float = 1.0
    lambda_reg: float = 1.0
    partition_fraction: float = 0.5
    patch_path: str = "vv"
    pretrained: bool = True
    weights: str | None = None

    def resolved(self) -> tuple[Tune, float]:
        tune, lr = default_tuning(get_spec(self.backbone))
        return (self.tune or tune), (self.lr if self.lr is not None else lr)


class SegmenterTrainer(Trainer):
    """Mask-free training of a backbone as a sketch → photo segmenter."""

    kind = "segmenter"

    def __init__(
        self,
        config: SegmenterConfig,
        source: PairSource,
        critic: SBIRCritic | None,
        loop: LoopConfig,
    ) -> None:
        super().__init__(loop)
        if config.lambda_sbir > 0 and critic is None:
            raise TrainingError("the SBIR loss needs a critic (train one with `train sbir`)")
        if not 0.0 <= config.partition_fraction <= 1.0:
            raise TrainingError("partition_fraction must be within 0 … 1")
        self.config = config
        self.source = source
        self.device = choose_device(loop.device)
        spec = get_spec(config.backbone)
        if config.pretrained:
            from sketchpad.vision import weights as W

            resolved = W.resolve_weights(spec, config.weights)
            model = build_model(spec)
            W.load_weights(model, spec, resolved.path)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(loop.seed)
                model = build_model(spec)
        self.encoder = TrainableEncoder(spec, model, patch_path=config.patch_path).to(self.device)
        self.model = self.encoder.model
        tune, lr = config.resolved()
        self.optimizer = adamw([(self.encoder.tuned_parameters(tune), lr)], loop.weight_decay)
        self.critic = critic.to(self.device).freeze() if critic is not None else None
        self.size = spec.input_size

    def metadata(self) -> dict[str, Any]:
        tune, lr = self.config.resolved()
        return {
            "backbone": self.config.backbone,
            "sketchpad_fine_tuned": True,
            "calibration": "fixed",
            "tau": self.config.tau,
            "patch_path": self.config.patch_path,
            "input_size": self.size,
            "tune": tune,
            "lr": lr,
            "config": asdict(self.config),
        }

    @staticmethod
    def _critic_view(critic: SBIRCritic, x: torch.Tensor) -> torch.Tensor:
        size = critic.input_size
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return x

    def compute_losses(self, step: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        rng = step_rng(self.loop.seed, step)
        batch = self.source.pairs(rng, self.loop.batch_size, cfg.partition_fraction)
        dev, enc = self.device, self.encoder
        k = len(batch.sketches)  # the whole batch; this process encodes its rows
        mine = self.rows(k)
        sketches = to_tensor(batch.sketches[mine], dev)
        photos = to_tensor(batch.photos[mine], dev)
        hw = (int(photos.shape[-2]), int(photos.shape[-1]))
        cut = (batch.part_rows >= mine.start) & (batch.part_rows < mine.stop)
        part_rows, parts = batch.part_rows[cut] - mine.start, batch.parts[cut]

        s = enc.encode_global(sketches)
        _, p = enc.encode_patches(photos)
        c = L.correlation(s, p)
        zero = s.sum() * 0.0
        out: dict[str, torch.Tensor] = {}

        if cfg.lambda_infonce > 0 and k > 1:  # every pair of the whole batch: gathered
            p_hat = L.attention_pool(c, p, cfg.pool_temperature)
            out["infonce"] = L.info_nce(self.gather(s), self.gather(p_hat), cfg.nce_temperature)
        else:
            out["infonce"] = zero
        logits = L.mask_logits(c, hw, cfg.tau)
        mask = torch.sigmoid(logits)
        reg_rows = L.mask_regulariser(logits, per_row=True)
        if len(part_rows):
            rows = torch.from_numpy(part_rows).to(dev)
            m = len(rows)
            halves = to_tensor(parts.reshape(2 * m, *parts.shape[2:]), dev)
            s_ab = enc.encode_global(halves).reshape(m, 2, -1)
            p_rows = p[rows]
            m_a = L.soft_mask(L.correlation(s_ab[:, 0], p_rows), hw, cfg.tau)
            m_b = L.soft_mask(L.correlation(s_ab[:, 1], p_rows), hw, cfg.tau)
            xor = L.soft_xor(m_a, m_b)
            mask = mask.index_copy(0, rows, xor)
            reg_xor = L.mask_regulariser_of(xor, per_row=True)
            reg_rows = reg_rows.index_copy(0, rows, reg_xor)
        out["reg"] = reg_rows.mean() if cfg.lambda_reg > 0 else zero

        if cfg.lambda_sbir > 0 and (critic := self.critic) is not None:
            with torch.no_grad():
                f_s = critic.embed_sketch(self._critic_view(critic, sketches))
            f_m = critic.embed_photo(self._critic_view(critic, L.masked_photo(photos, mask)))
            out["sbir"] = L.sbir_loss(f_m, f_s)
        else:
            out["sbir"] = zero

        if cfg.lambda_unpaired > 0:
            _, pn = enc.encode_patches(to_tensor(batch.unpaired[mine], dev))
            out["unpaired"] = L.unpaired_loss(L.correlation(s, pn))
        else:
            out["unpaired"] = zero

        out["total"] = (
            cfg.lambda_infonce * out["infonce"]
            + cfg.lambda_sbir * out["sbir"]
            + cfg.lambda_unpaired * out["unpaired"]
            + cfg.lambda_reg * out["reg"]
        )
        return out
