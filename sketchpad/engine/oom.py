"""Surviving out-of-memory on the accelerator: a smaller batch, then the CPU.

:class:`AdaptiveEmbedder` stands in for a :class:`~sketchpad.vision.segmenter.Segmenter` where
``sketchpad.gallery.index.index_folder`` wants one (same model key, same features): when a
forward runs out of GPU memory it halves its batch size and retries the photos not done yet;
at batch size 1 it moves the model to the CPU and carries on there, saying so through
``on_notice``. The batch size it settles on is kept for the next batches (and the next folder).

Moving to the CPU changes neither the weights nor the preprocessing, so the cache key stays the
same and features computed before and after the move live in one cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from sketchpad.vision.backbone import Backbone, PatchPath
from sketchpad.vision.features import PhotoFeatures
from sketchpad.vision.segmenter import Segmenter

log = logging.getLogger(__name__)

T = TypeVar("T")
NoticeFn = Callable[[str], None]


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an accelerator out-of-memory error (CUDA's, or MPS's RuntimeError)."""
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


def _free_accelerator_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def on_accelerator(segmenter: Segmenter) -> bool:
    """Whether the segmenter's model runs somewhere other than the CPU."""
    return segmenter.backbone.device.type != "cpu"


def move_to_cpu(segmenter: Segmenter) -> None:
    """Move the segmenter's model to the CPU, in float32 (half precision is slow there)."""
    bb = segmenter.backbone
    bb.model = bb.model.to(device="cpu", dtype=torch.float32)
    bb.device = torch.device("cpu")
    bb.dtype = torch.float32
    _free_accelerator_memory()


def retry_on_cpu(segmenter: Segmenter, what: str, fn: Callable[[], T], notice: NoticeFn) -> T:
    """``fn()``; if it runs out of accelerator memory, move the model to the CPU and run it
    again there (queries: one sketch, so no batch to shrink)."""
    try:
        return fn()
    except Exception as e:
        if not (is_out_of_memory(e) and on_accelerator(segmenter)):
            raise
        device = segmenter.backbone.device
    log.warning("%s ran out of memory on %s; moving the model to the CPU", what, device)
    move_to_cpu(segmenter)
    notice(f"Out of memory on {device} during {what}: the model now runs on the CPU (slower).")
    return fn()


class AdaptiveEmbedder:
    """A segmenter's photo encoder whose batch size shrinks on out-of-memory.

    Args:
        segmenter: the segmenter (its model may be moved to the CPU).
        batch_size: the batch size to start from.
        notice: called with a sentence for the user when the batch shrinks or the device
            changes.
    """

    def __init__(self, segmenter: Segmenter, batch_size: int, notice: NoticeFn) -> None:
        self.segmenter = segmenter
        self.batch_size = max(1, int(batch_size))
        self.notice = notice
        self._initial_batch = self.batch_size

    # What index_folder's model key reads.
    @property
    def backbone(self) -> Backbone:
        return self.segmenter.backbone

    @property
    def input_size(self) -> int:
        return self.segmenter.input_size

    @property
    def patch_path(self) -> PatchPath:
        return self.segmenter.patch_path

    def embed_photos(
        self, images: Sequence[np.ndarray], *, batch_size: int = 8, **_: object
    ) -> list[PhotoFeatures]:
        """Features of (H, W, 3) uint8 RGB photos, in forwards of at most ``batch_size``
        and of the current adaptive batch size."""
        out: list[PhotoFeatures] = []
        start = 0
        while start < len(images):
            n = max(1, min(self.batch_size, batch_size, len(images) - start))
            chunk = images[start : start + n]
            try:
                out += self.segmenter.embed_photos(chunk, batch_size=n)
            except Exception as e:
                if not (is_out_of_memory(e) and on_accelerator(self.segmenter)):
                    raise
                self._shrink(n)
                continue
            start += n
        return out

    def _shrink(self, failed_n: int) -> None:
        _free_accelerator_memory()
        device = self.segmenter.backbone.device
        if failed_n > 1:
            self.batch_size = failed_n // 2
            log.warning("out of memory on %s: batch size now %d", device, self.batch_size)
            self.notice(
                f"Out of memory on {device}: indexing {self.batch_size} photo(s) at a time."
            )
            return
        log.warning("out of memory on %s with one photo; moving the model to the CPU", device)
        move_to_cpu(self.segmenter)
        self.batch_size = self._initial_batch  # the CPU has room for the batch size asked for
        self.notice(
            f"Out of memory on {device} even with one photo at a time: "
            "the model now runs on the CPU (slower)."
        )
