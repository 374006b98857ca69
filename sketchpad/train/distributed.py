"""Training on several processes: ``sketchpad train … --nproc N`` (DistributedDataParallel).

The contract that makes N processes train exactly as one process with the same global batch:

- **Data**: ``--batch-size`` is the global batch. Every process draws the whole batch of the
  step from ``(seed, step)`` as a single process would (:func:`~sketchpad.train.loop.step_rng`)
  and encodes only its rows, :meth:`Dist.rows` (rank r: rows ``[r·B/N, (r+1)·B/N)``). So the
  data order is the single process's whatever N is; preparing a batch is repeated in every
  process, the model's work is split.
- **Losses**: each process's loss term is written so that the mean over processes is the
  single-process loss. Per-row means are that already (equal shares). Terms that compare rows
  of the whole batch (InfoNCE) gather the embeddings of every process with their gradients
  (:meth:`Dist.gather`, ``torch.distributed.nn.functional.all_gather``: its backward sums the
  gradients that every process's loss sends to this process's rows) and compute the global
  loss in every process. Ratios over the batch scale by global counts.
- **Gradients**: DistributedDataParallel averages them over the processes, which by the
  above is the single-process gradient of the global batch; the optimisers then take the
  same step everywhere and the weights stay identical.
- **Checkpoints** are written by rank 0 only; every process resumes from the same files.
- **Stopping** (Ctrl+C, a NaN) is agreed at step boundaries (:meth:`Dist.any`), so no process
  waits for one that left.

Launching: :func:`launch` starts N processes on this machine with torchrun's environment
(``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a process
started by ``torchrun`` itself (those variables set) joins the same way, so
``torchrun --nnodes … -m sketchpad train …`` trains on several machines. The backend is NCCL
when the processes train on CUDA GPUs (one GPU each, ``cuda:LOCAL_RANK``), gloo on CPUs.
The processes run in their own process group: Ctrl+C reaches the launcher, which passes it on
once to each (the first finishes the step and saves, a second stops at once); they exit if
the launcher dies.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

#: The variables torchrun sets for each process.
ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")
#: How long a collective waits for a process that stopped answering.
TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes (one process: rank 0 of 1).

    Attributes:
        rank: 0 … world − 1; rank 0 writes checkpoints and prints.
        world: number of processes.
        local_rank: rank on this machine (the GPU index with NCCL).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def chief(self) -> bool:
        """Rank 0: the process that writes checkpoints and talks."""
        return self.rank == 0

    def rows(self, n: int) -> slice:
        """This process's rows of a global batch of ``n`` rows.

        Raises:
            ValueError: ``n`` is not a multiple of the number of processes.
        """
        if n % self.world:
            raise ValueError(
                f"a batch of {n} cannot be split evenly over {self.world} processes: make the "
                f"batch size a multiple of {self.world}"
            )
        k = n // self.world
        return slice(self.rank * k, (self.rank + 1) * k)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Every process's ``x`` (equal shapes), concatenated along dim 0 in rank order, with
        gradients flowing back to each process's own rows: (n, …) → (world·n, …)."""
        if not self.active:
            return x
        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():
            # Deprecated in torch 2.14 in favour of a private module whose autograd needs
            # reduce_scatter (gloo lacks it); this one works on every backend, torch ≥ 2.6.
            warnings.simplefilter("ignore", FutureWarning)
            parts = all_gather(x)
        return torch.cat(parts, dim=0)

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """The mean over processes of each value (the same keys in every process)."""
        if not self.active:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        t = _all_reduce(t) / self.world
        return dict(zip(keys, t.tolist(), strict=True))

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true in any process."""
        if not self.active:
            return flag
        return bool(_all_reduce(torch.tensor([float(flag)], dtype=torch.float64))[0] > 0)


SINGLE = Dist()


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    """Sum over processes (on the backend's device: NCCL reduces CUDA tensors only)."""
    device = torch.device("cuda", torch.cuda.current_device()) if _nccl() else t.device
    out = t.to(device)
    dist.all_reduce(out)
    return out.to(t.device)


def _nccl() -> bool:
    return dist.get_backend() == "nccl"


def current() -> Dist:
    """This process's :class:`Dist` (:data:`SINGLE` unless :func:`init_from_env` ran)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def launched() -> bool:
    """Whether this process was started as one of several (torchrun's variables are set)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def init_from_env(device: str | None) -> tuple[Dist, str | None]:
    """Join the other processes (torchrun's variables); returns this process's place and the
    device it trains on (``cuda:LOCAL_RANK`` when ``device`` means CUDA, else ``device``).

    Raises:
        ValueError: a variable is missing, fewer GPUs than processes on this machine, or a
            device other than CUDA or the CPU (MPS: gloo cannot reduce its tensors).
    """
    missing = [k for k in ENV if k not in os.environ]
    if missing:
        raise ValueError(f"several processes, but {', '.join(missing)} not set (use torchrun)")
    local = int(os.environ["LOCAL_RANK"])
    from sketchpad.vision.backbone import choose_device

    chosen = choose_device(device)
    if chosen.type not in ("cuda", "cpu"):
        raise ValueError(f"several processes train on CUDA GPUs or CPUs, not on {chosen.type}")
    if chosen.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"process {local} on this machine has no GPU of its own "
                f"({torch.cuda.device_count()} GPUs): use fewer processes or --device cpu"
            )
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "nccl"
    else:
        backend = "gloo"
        if "OMP_NUM_THREADS" not in os.environ:  # the processes share this machine's cores
            per = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, per)))
    dist.init_process_group(backend, timeout=TIMEOUT)
    here = current()
    log.info("process %d of %d (%s, %s)", here.rank, here.world, backend, device)
    return here, device


def shutdown() -> None:
    """Leave the process group (no-op when not in one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------- launching


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child(
    rank: int, world: int, port: int, target: Callable[..., int], args: tuple[Any, ...]
) -> None:
    """One process: its own process group (Ctrl+C comes from the launcher, once), gone when
    the launcher is, torchrun's variables, then ``target(*args)``'s status as exit code."""
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    parent = multiprocessing.parent_process()
    if parent is not None:

        def orphaned() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(1)

        threading.Thread(target=orphaned, name="launcher-watch", daemon=True).start()
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
    )
    sys.exit(int(target(*args) or 0))


def launch(nproc: int, target: Callable[..., int], *args: Any) -> int:  # noqa: ANN401
    """Run ``target(*args)`` in ``nproc`` new processes on this machine (spawned: ``target``
    and ``args`` must pickle) and wait for them. Returns 0 when all succeed, else the first
    failure's status (a process that fails ends the others: they could only wait for it).
    Ctrl+C (SIGINT) here is passed on to each process once per press."""
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}")
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [
        ctx.Process(target=_child, args=(r, nproc, port, target, args), name=f"train-rank{r}")
        for r in range(nproc)
    ]
    with _forward_sigint(procs):
        for p in procs:
            p.start()
        return _wait(procs)


@contextlib.contextmanager
def _forward_sigint(procs: list[Any]) -> Iterator[None]:
    def forward(signum: int, frame: object) -> None:
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)

    try:
        previous = signal.signal(signal.SIGINT, forward)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait(procs: list[Any]) -> int:
    status = 0
    live = list(procs)
    while live:
        multiprocessing.connection.wait([p.sentinel for p in live])
        for p in [p for p in live if p.exitcode is not None]:
            live.remove(p)
            code = p.exitcode if p.exitcode >= 0 else 128 - p.exitcode  # signal n → 128 + n
            if code and not status:
                status = code
                if code != 130:  # a failure: the others would wait on it in a collective
                    log.error("training process %s ended with status %d", p.name, code)
                    for q in live:
                        q.terminate()
    return status
