"""Indexing on a Ray cluster: ``sketchpad index DIR --cluster ADDRESS`` (``local``: a Ray
instance started on this machine).

:class:`RayEncoder` is an :data:`~sketchpad.gallery.index.Encoder`: ``index_folder`` still
scans the folder, skips what is current, commits each batch to the feature cache, reports
progress and stops on a cancel; the encoder only turns photo paths into features, on a pool
of Ray actors, with Ray Data's batch inference::

    from_items(paths) → map_batches(_PhotoEncoder, ActorPoolStrategy(size=n)) → iter_batches

Each actor holds one copy of the model, on its own GPU where the cluster has GPUs (one actor
per GPU), else on CPUs, and runs :func:`~sketchpad.gallery.index.encode_locally` on its
batches: the same decoding (threads, the same skip reasons) and the same forward as the local
index, so the cache a cluster writes is the cache the laptop writes. The weights travel from
this process through Ray's object store (the exact weights the cache key names; nothing is
loaded from disk on the nodes).

- **Photos** are read by the actors at their absolute paths: on a cluster of several machines
  the folder must be at the same path on every node (a shared file system).
- **Code**: the nodes need Sketchpad's dependencies (torch, open_clip, …) installed; this
  process sends its own ``sketchpad`` package along (Ray's ``py_modules``), so the actors run
  the driver's code.
- **Cancel and kills**: closing the stream (a cancel: Ctrl+C, ``progress`` raising) ends the
  Ray job (the actors are the driver's: they end with it, also when this process is killed);
  whatever was committed stays, and the next run encodes only the rest.
- **Import weight**: Ray is imported only when a stream starts (``pip install
  'sketchpad[cluster]'``); importing this module costs nothing.

Shapes and dtypes are those of :class:`~sketchpad.vision.features.PhotoFeatures` (patches
(T, d) float16, global (d,) float32); on GPUs the actors compute in float16, as the local index
does on a GPU.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sketchpad.gallery.index import Encoded, encode_locally

if TYPE_CHECKING:
    from sketchpad.vision.backbone import WeightsInfo
    from sketchpad.vision.segmenter import Segmenter

log = logging.getLogger(__name__)

#: ``--cluster local``: start a Ray instance on this machine for this run.
LOCAL = "local"
#: Photo-decoding threads in each actor (decoding releases the GIL; the model runs meanwhile).
DECODE_THREADS = 2


class ClusterError(RuntimeError):
    """The cluster cannot be used (Ray missing, no connection, a failed actor); the message
    says why and what to do."""


@dataclass(frozen=True)
class _Model:
    """What an actor needs to rebuild the driver's segmenter: plain data, sent once."""

    backbone_id: str
    state: dict[str, Any]  # the model's state dict (CPU tensors)
    weights: WeightsInfo  # part of the cache key
    input_size: int
    patch_path: str


class _PhotoEncoder:
    """A Ray Data actor: one model; a batch of photo paths → one row per photo.

    Rows (numpy columns): ``path`` (str, as given), ``rel``, ``size`` and ``mtime_ns`` (int64),
    ``code`` and ``reason`` (str, empty when encoded), ``features`` (bytes: a pickled
    PhotoFeatures, empty when skipped).
    """

    def __init__(self, model: _Model, folder: str, threads: int) -> None:
        import torch

        from sketchpad.vision.backbone import Backbone
        from sketchpad.vision.registry import build_model, get_spec
        from sketchpad.vision.segmenter import Segmenter

        spec = get_spec(model.backbone_id)
        net = build_model(spec)
        net.load_state_dict(model.state, strict=True)
        gpu = torch.cuda.is_available()  # Ray shows an actor only the GPU it was given
        device = torch.device("cuda" if gpu else "cpu")
        if not gpu:
            torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        dtype = torch.float16 if gpu else torch.float32  # as create_backbone on that device
        backbone = Backbone(spec, net, model.weights, device, dtype)
        self.segmenter = Segmenter(
            backbone,
            input_size=model.input_size,
            patch_path=model.patch_path,  # type: ignore[arg-type]
        )
        self.folder = Path(folder)
        self.threads = threads

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [Path(str(p)) for p in batch["path"]]
        rows: list[Encoded] = []
        for part in encode_locally(
            self.segmenter, self.folder, paths, max(1, len(paths)), self.threads
        ):
            rows += part
        return {
            "path": np.array([str(p) for p in paths], dtype=object),
            "rel": np.array([e.rel for e in rows], dtype=object),
            "size": np.array([e.size for e in rows], dtype=np.int64),
            "mtime_ns": np.array([e.mtime_ns for e in rows], dtype=np.int64),
            "code": np.array([e.error[0] if e.error else "" for e in rows], dtype=object),
            "reason": np.array([e.error[1] if e.error else "" for e in rows], dtype=object),
            "features": np.array(
                [pickle.dumps(e.features) if e.features is not None else b"" for e in rows],
                dtype=object,
            ),
        }


class RayEncoder:
    """Encodes photos on a Ray cluster; pass it as ``index_folder(..., encoder=…)``.

    Args:
        segmenter: the model whose features are wanted (its weights are sent to the actors;
            keep it on the CPU in float32 so they are the exact weights).
        address: a Ray cluster's address (``ray://host:10001``, ``host:6379``, ``auto``) or
            :data:`LOCAL` (start Ray here for this run). When this process is already
            connected to Ray (``ray.init`` done by the caller), that connection is used and
            left open.
        workers: model actors (default: one per GPU of the cluster, else one per CPU).
        cpus: CPUs of a local Ray instance (default: all of this machine's).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        address: str = LOCAL,
        *,
        workers: int | None = None,
        cpus: int | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.segmenter = segmenter
        self.address = address
        self.workers = workers
        self.cpus = cpus

    def __call__(
        self, folder: Path, paths: Sequence[Path], batch_size: int
    ) -> Generator[list[Encoded], None, None]:
        """Batches of encoded photos as the actors finish them (any order)."""
        if not paths:
            return
        ray = _import_ray()
        started = self._connect(ray)
        try:
            yield from self._stream(ray, Path(folder), paths, batch_size)
        except ray.exceptions.RayError as e:
            raise ClusterError(
                f"the cluster job failed ({type(e).__name__}: {_first_line(e)}); the batches "
                "committed so far are kept: run the command again to go on"
            ) from e
        finally:
            if started:
                ray.shutdown()  # ends this job's actors, also on a cancel

    def _connect(self, ray: Any) -> bool:
        """Connect (or start Ray); returns whether this call did, i.e. must shut it down."""
        if ray.is_initialized():
            return False
        quiet = {"include_dashboard": False, "logging_level": logging.WARNING}
        try:
            if self.address == LOCAL:
                ray.init(num_cpus=self.cpus, **quiet)
            else:
                import sketchpad

                ray.init(
                    address=self.address,
                    runtime_env={"py_modules": [sketchpad]},  # the driver's code on the nodes
                    **quiet,
                )
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
            raise ClusterError(
                f"cannot reach the Ray cluster at {self.address!r} ({_first_line(e)}): start "
                "it with `ray start --head` or give its address, or use --cluster local"
            ) from e
        return True

    def _stream(
        self,
        ray: Any,
        folder: Path,
        paths: Sequence[Path],
        batch_size: int,
    ) -> Generator[list[Encoded], None, None]:
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0))
        n = self.workers or (max(1, int(gpus)) if gpus else max(1, int(resources.get("CPU", 1))))
        # One GPU per actor; more actors than GPUs share them (else the extra ones would wait).
        per_actor = {"num_gpus": min(1.0, gpus / n)} if gpus else {"num_cpus": 1}
        log.info(
            "cluster index: %d photos on %d %s actors (cluster: %s)",
            len(paths),
            n,
            "GPU" if gpus else "CPU",
            {k: v for k, v in resources.items() if k in ("CPU", "GPU")},
        )
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours is the committed count
        ctx.print_on_execution_start = False
        absolute = folder.absolute()
        by_abs = {str(absolute / p.relative_to(folder)): p for p in paths}
        seg = self.segmenter
        bb = seg.backbone
        model = _Model(
            bb.spec.id,
            {k: v.detach().to("cpu") for k, v in bb.model.state_dict().items()},
            bb.weights,
            seg.input_size,
            seg.patch_path,
        )
        blocks = -(-len(by_abs) // batch_size)  # one block per batch: a commit per block
        ds = ray.data.from_items(
            [{"path": p} for p in by_abs], override_num_blocks=blocks
        ).map_batches(
            _PhotoEncoder,
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=n),
            fn_constructor_kwargs={
                "model": model,  # Ray Data puts it in the object store once
                "folder": str(absolute),
                "threads": DECODE_THREADS,
            },
            **per_actor,
        )
        batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy"))
        try:
            for out in batches:
                yield encoded_rows(out, by_abs)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stops the streaming execution: its actors end


def encoded_rows(out: dict[str, np.ndarray], paths: dict[str, Path]) -> list[Encoded]:
    """An actor's output rows (:class:`_PhotoEncoder`) as :class:`Encoded`, each with the
    driver's own path of the photo (``paths``: the absolute path sent → the scanned path)."""
    columns = ("path", "rel", "size", "mtime_ns", "code", "reason", "features")
    return [
        Encoded(
            str(rel),
            paths[str(p)],
            int(size),
            int(mtime),
            pickle.loads(blob) if blob else None,
            (str(code), str(reason)) if code else None,
        )
        for p, rel, size, mtime, code, reason, blob in zip(*(out[c] for c in columns), strict=True)
    ]


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ClusterError(f"--cluster needs Ray ({e}): pip install 'sketchpad[cluster]'") from e
    return ray


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
