"""What every trainer shares: seeds, AdamW, the step loop, progress, checkpoints and resume.

A trainer subclasses :class:`Trainer` and implements ``compute_losses(step)``, which returns
named scalar losses with the one to minimise under ``"total"``. Batches must be a function of
``(seed, step)`` only (:func:`step_rng`), so a resumed run sees exactly the batches the
uninterrupted run would have seen; torch's own RNG is saved with the checkpoint.

Several processes (``--nproc``, :mod:`sketchpad.train.distributed`): the loop wraps the model
in DistributedDataParallel and agrees on stopping; a trainer encodes only its process's rows
of the step's batch (:meth:`Trainer.rows`) and gathers what its losses compare across the
batch (:meth:`Trainer.gather`), so N processes follow one process's loss curve.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sketchpad.train import distributed
from sketchpad.train.checkpoint import (
    CheckpointError,
    CheckpointPaths,
    read_resume_state,
    save_checkpoint,
)

log = logging.getLogger(__name__)

#: ``progress(step, total_steps, smoothed_losses)`` after every step.
ProgressFn = Callable[[int, int, Mapping[str, float]], None]


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, a bad configuration); the message says why."""


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and numpy's legacy global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The random generator of one step: a pure function of (seed, step, stream)."""
    return np.random.default_rng([int(seed), int(step), int(stream)])


def adamw(
    groups: Iterable[tuple[Iterable[nn.Parameter], float]], weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over ``(parameters, lr)`` groups; groups without parameters are dropped.

    Raises:
        TrainingError: no parameter would be trained.
    """
    param_groups = []
    for params, lr in groups:
        ps = [p for p in params if p.requires_grad]
        if ps:
            param_groups.append({"params": ps, "lr": float(lr)})
    if not param_groups:
        raise TrainingError("no trainable parameters")
    return torch.optim.AdamW(param_groups, weight_decay=weight_decay)


@dataclass
class LoopConfig:
    """How long and how a trainer runs.

    Attributes:
        steps: optimiser steps in all (a resumed run continues up to this number).
        batch_size: pairs (or sketches) per step.
        seed: the seed of the weights' random parts and of every batch.
        device: "auto", "cpu", "cuda", …
        out: the checkpoint's folder; None keeps nothing on disk (benchmarks, tests).
        name: the checkpoint's file name (without suffix).
        checkpoint_every: save every N steps as well as at the end (0: only at the end).
        weight_decay: AdamW's.
        grad_clip: clip the gradients' global norm (0: off).
        warmup: the learning rates rise linearly over the first N steps.
    """

    steps: int = 1000
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    out: Path | None = None
    name: str = "checkpoint"
    checkpoint_every: int = 0
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    warmup: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out) if self.out is not None else None
        return d


@dataclass
class History:
    """The losses of every step, by name."""

    losses: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.losses.setdefault(k, []).append(float(v))

    def mean_last(self, n: int) -> dict[str, float]:
        return {k: float(np.mean(v[-n:])) for k, v in self.losses.items() if v}


class _Closure(nn.Module):
    """What DistributedDataParallel wraps: the trained model, and a forward that runs a
    closure (the trainer's ``compute_losses``), so the trainers call their models' methods as
    they like while DDP prepares each step's gradient averaging."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return compute()


class Trainer:
    """The step loop shared by the trainers.

    Subclasses set ``kind``, build ``self.model`` (what is saved) and ``self.optimizer`` in
    their ``__init__`` and implement :meth:`compute_losses`; :meth:`metadata` adds what their
    checkpoint's JSON must say.
    """

    kind = "model"

    def __init__(self, loop: LoopConfig) -> None:
        if loop.steps < 1 or loop.batch_size < 1:
            raise TrainingError("steps and batch size must be at least 1")
        self.loop = loop
        self.step = 0
        self.model: nn.Module
        self.optimizer: torch.optim.Optimizer
        self.history = History()
        self.last_losses: dict[str, float] = {}
        #: This process's place among the training processes (one process: rank 0 of 1).
        self.dist = distributed.current()
        self._ddp: nn.Module | None = None

    # -- to implement ---------------------------------------------------------------------
    def compute_losses(self, step: int) -> dict[str, torch.Tensor]:
        """The losses of step ``step`` (``"total"`` is minimised)."""
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """The checkpoint JSON's fields besides step, losses and the loop configuration."""
        return {}

    def state_dict_to_save(self) -> dict[str, torch.Tensor]:
        """The weights written to the safetensors file (default: ``self.model``'s)."""
        return self.model.state_dict()

    def load_saved_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(sd, strict=True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    # -- several processes ------------------------------------------------------------------
    def rows(self, n: int) -> slice:
        """This process's rows of the step's global batch of ``n`` (all of them in one process).

        Raises:
            TrainingError: ``n`` does not split evenly over the processes.
        """
        try:
            return self.dist.rows(n)
        except ValueError as e:
            raise TrainingError(str(e)) from e

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """The rows of ``x`` of every process, in batch order, gradients flowing to each
        process's own: (n, …) → (processes·n, …); ``x`` itself in one process."""
        return self.dist.gather(x)

    def _forward(self, step: int) -> dict[str, torch.Tensor]:
        if not self.dist.active:
            return self.compute_losses(step)
        if self._ddp is None:
            from torch.nn.parallel import DistributedDataParallel

            # find_unused_parameters: a process may leave a part unused in a step (the scene
            # labeller's category path when its rows name no category; DINOv2's mask token).
            self._ddp = DistributedDataParallel(_Closure(self.model), find_unused_parameters=True)
        return self._ddp(lambda: self.compute_losses(step))

    def backward(self) -> dict[str, float]:
        """Step ``self.step``'s losses (means over the processes) with their gradients in the
        parameters' ``.grad`` (averaged over the processes: the global batch's gradient).

        Raises:
            TrainingError: the loss is not finite (in any process: all raise).
        """
        self.model.train()
        losses = self._forward(self.step)
        values = self.dist.mean({k: float(v.detach()) for k, v in losses.items()})
        if not math.isfinite(values["total"]):
            raise TrainingError(
                f"the loss became {values['total']} at step {self.step} "
                f"({', '.join(f'{k}={v:.4g}' for k, v in values.items())}): lower the "
                "learning rate or resume from the last checkpoint"
            )
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        return values

    # -- the loop -------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One optimiser step; returns its losses as floats (means over the processes)."""
        values = self.backward()
        if self.loop.warmup > 0:
            if not hasattr(self, "_base_lrs"):
                self._base_lrs = [g["lr"] for g in self.optimizer.param_groups]
            frac = min(1.0, (self.step + 1) / self.loop.warmup)
            for g, lr in zip(self.optimizer.param_groups, self._base_lrs, strict=True):
                g["lr"] = lr * frac
        if self.loop.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.loop.grad_clip)
        self.optimizer.step()
        self.step += 1
        self.history.add(values)
        self.last_losses = values
        return values

    def fit(
        self,
        *,
        progress: ProgressFn | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> History:
        """Train from ``self.step`` up to ``loop.steps``; save checkpoints on the way and at the
        end (also when stopped early or interrupted with Ctrl+C: nothing trained is lost).
        With several processes, all stop at the same step when any is asked to."""
        t0 = time.perf_counter()
        smoothed: dict[str, float] = {}
        try:
            while self.step < self.loop.steps:
                stop = should_stop is not None and should_stop()
                if self.dist.any(stop):
                    break
                values = self.train_step()
                for k, v in values.items():
                    smoothed[k] = v if k not in smoothed else 0.9 * smoothed[k] + 0.1 * v
                if progress is not None:
                    progress(self.step, self.loop.steps, dict(smoothed))
                every = self.loop.checkpoint_every
                if every and self.step % every == 0 and self.step < self.loop.steps:
                    self.save()
        finally:
            self.history.seconds += time.perf_counter() - t0
            if self.step > 0:
                self.save()
        return self.history

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def checkpoint(self) -> CheckpointPaths | None:
        if self.loop.out is None:
            return None
        return CheckpointPaths.of(Path(self.loop.out) / self.loop.name)

    def save(self) -> CheckpointPaths | None:
        """Write the checkpoint (nothing when ``loop.out`` is None, or in a process other than
        rank 0: the weights are the same in every process)."""
        if self.checkpoint is None or not self.dist.chief:
            return None
        meta = {
            "kind": self.kind,
            **self.metadata(),
            "step": self.step,
            "loop": self.loop.as_dict(),
            "losses": {k: v for k, v in self.last_losses.items() if math.isfinite(v)},
            "train_seconds": round(self.history.seconds, 1),
        }
        state = {
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        paths = save_checkpoint(
            self.checkpoint.weights, self.state_dict_to_save(), meta, resume_state=state
        )
        log.info("saved %s at step %d", paths.weights, self.step)
        return paths

    def resume(self) -> bool:
        """Continue from the checkpoint in ``loop.out`` if there is one. Returns whether it did.

        Raises:
            CheckpointError: the checkpoint is of another kind or backbone, or damaged.
        """
        paths = self.checkpoint
        if paths is None or not paths.exists():
            return False
        meta, weights, state = read_resume_state(paths.weights)
        mine = {"kind": self.kind, **self.metadata()}
        for key in ("kind", "backbone"):
            if key in mine and meta.get(key) != mine[key]:
                raise CheckpointError(
                    paths.metadata,
                    f"is a {key} {meta.get(key)!r} checkpoint, this run trains {mine[key]!r}: "
                    "train into another folder",
                )
        try:
            self.load_saved_state_dict(weights)
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(paths.weights, f"does not fit this run ({e})") from e
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step = int(meta["step"])
        self.last_losses = dict(meta.get("losses", {}))
        self.history.seconds = float(meta.get("train_seconds", 0.0))
        log.info("resumed %s at step %d", paths.weights, self.step)
        return True
