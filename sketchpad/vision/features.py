"""Images, sketches and words → features, with each backbone's own preprocessing.

- Photos: letterboxed whole into the model input (``letterbox.py``), normalised with the
  backbone's mean/std; patch features come back L2-normalised with the letterbox that maps
  them to photo pixels.
- Sketches: rendered by ``sketch.raster.render_query`` (white paper, black lines, the whole
  sketch's framing, so a part stays where it was), global embedding.
- Text: prompt-template ensembles, minus the empty prompt (DESIGN §4.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from sketchpad.sketch.model import Sketch
from sketchpad.sketch.raster import render_query
from sketchpad.vision.backbone import Backbone, PatchPath
from sketchpad.vision.letterbox import Letterbox, letterbox_image

#: Prompts encoded per batch by :func:`embed_texts` (bounds the text encoder's peak memory).
TEXT_BATCH = 256
#: Templates for words that describe a sketch (scene labelling, sketch + text queries).
SKETCH_TEMPLATES = (
    "a sketch of a {}.",
    "a drawing of a {}.",
    "a line drawing of a {}.",
    "a black and white sketch of a {}.",
    "a doodle of a {}.",
    "a simple sketch of the {}.",
)
#: Templates for words that describe a photo (text alone or added to a sketch query).
PHOTO_TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a good photo of a {}.",
    "a close-up photo of a {}.",
    "a cropped photo of the {}.",
    "a bright photo of a {}.",
)


@dataclass(frozen=True)
class PhotoFeatures:
    """One photo's features, computed once and queried many times.

    Attributes:
        patches: (gh·gw, d) float16 or float32, L2-normalised patch features, row-major grid.
        grid_hw: (gh, gw).
        global_embedding: (d,) float32, L2-normalised global (CLS) embedding.
        letterbox: where the photo sat in the model input.
        patch_size: the backbone's patch side (pixels).
    """

    patches: np.ndarray
    grid_hw: tuple[int, int]
    global_embedding: np.ndarray
    letterbox: Letterbox
    patch_size: int

    def __post_init__(self) -> None:
        gh, gw = self.grid_hw
        if self.patches.ndim != 2 or self.patches.shape[0] != gh * gw:
            raise ValueError(f"patches must be ({gh * gw}, d), got {self.patches.shape}")
        if self.global_embedding.shape != (self.patches.shape[1],):
            raise ValueError(
                f"global_embedding must be ({self.patches.shape[1]},), "
                f"got {self.global_embedding.shape}"
            )

    @property
    def photo_hw(self) -> tuple[int, int]:
        return self.letterbox.photo_hw

    def valid_patches(self) -> np.ndarray:
        """(gh, gw) bool: patches that overlap the photo (not letterbox padding)."""
        return self.letterbox.valid_patches(self.patch_size)


def normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """L2-normalise along ``axis`` (zero vectors stay zero)."""
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, 1e-12)


def _to_tensor(images: np.ndarray, backbone: Backbone) -> torch.Tensor:
    """(B, S, S, 3) uint8 → (B, 3, S, S) float32 normalised with the backbone's mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(backbone.spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(backbone.spec.std).view(1, 3, 1, 1)
    return (x - mean) / std


def _fill(backbone: Backbone) -> tuple[int, int, int]:
    r, g, b = (round(255 * m) for m in backbone.spec.mean)
    return (r, g, b)


def photo_input(
    image: np.ndarray, backbone: Backbone, input_size: int
) -> tuple[np.ndarray, Letterbox]:
    """(H, W, 3) uint8 RGB → ((S, S, 3) uint8 letterboxed input, Letterbox)."""
    return letterbox_image(image, input_size, _fill(backbone))


def embed_photos(
    backbone: Backbone,
    images: Sequence[np.ndarray],
    *,
    input_size: int | None = None,
    path: PatchPath = "vv",
    store_dtype: npt.DTypeLike = np.float16,
) -> list[PhotoFeatures]:
    """Patch and global features of a batch of photos (one forward for the batch).

    Args:
        backbone: the model.
        images: (H, W, 3) uint8 RGB photos of any sizes.
        input_size: square model input side (a multiple of the patch size); default the
            backbone's. Larger gives finer maps (positional embeddings are interpolated).
        path: "vv" (CLIP Surgery's v-v path) or "plain" patch tokens; ignored by DINOv2.
        store_dtype: dtype of the stored patch matrix (fp16 halves the cache).
    """
    size = _check_size(backbone, input_size)
    if not images:
        return []
    prepared = [photo_input(im, backbone, size) for im in images]
    batch = _to_tensor(np.stack([p[0] for p in prepared]), backbone)
    pooled, patches = backbone.encode_patches(batch, path=path)
    pooled_np = normalize(pooled.cpu().numpy())
    patches_np = normalize(patches.cpu().numpy())  # (B, gh, gw, d)
    _, gh, gw, d = patches_np.shape
    return [
        PhotoFeatures(
            patches=patches_np[i].reshape(gh * gw, d).astype(store_dtype),
            grid_hw=(gh, gw),
            global_embedding=pooled_np[i].astype(np.float32),
            letterbox=prepared[i][1],
            patch_size=backbone.spec.patch_size,
        )
        for i in range(len(images))
    ]


def _check_size(backbone: Backbone, input_size: int | None) -> int:
    size = int(input_size or backbone.spec.input_size)
    p = backbone.spec.patch_size
    if size <= 0 or size % p:
        raise ValueError(f"input_size {size} must be a positive multiple of {p}")
    return size


def sketch_input(part: Sketch, whole: Sketch | None, size: int) -> np.ndarray:
    """The model's view of (a part of) a sketch: (size, size, 3) uint8, white paper."""
    grey = render_query(part, whole, size)
    return np.repeat(grey[:, :, None], 3, axis=2)


def embed_sketches(
    backbone: Backbone,
    parts: Sequence[Sketch],
    whole: Sketch | None = None,
    *,
    input_size: int | None = None,
) -> np.ndarray:
    """(n, d) float32 L2-normalised global embeddings of sketches (or parts of ``whole``,
    each keeping the whole sketch's framing)."""
    size = _check_size(backbone, input_size)
    if not parts:
        return np.zeros((0, backbone.embed_dim), dtype=np.float32)
    batch = _to_tensor(np.stack([sketch_input(p, whole, size) for p in parts]), backbone)
    return normalize(backbone.encode_global(batch).cpu().numpy()).astype(np.float32)


def embed_texts(
    backbone: Backbone,
    labels: Sequence[str],
    templates: Sequence[str] = PHOTO_TEMPLATES,
    *,
    remove_empty: bool = True,
) -> np.ndarray:
    """(n, d) float32 L2-normalised text embeddings, one per label.

    Each label's embedding is the mean of its normalised template embeddings, renormalised;
    with ``remove_empty`` the same ensemble for the empty label is subtracted (what every
    prompt shares) and the result renormalised.
    """
    if not labels:
        return np.zeros((0, backbone.embed_dim), dtype=np.float32)
    if not templates:
        raise ValueError("templates is empty")
    words = [*labels, ""] if remove_empty else list(labels)
    prompts = [t.format(w).replace("  ", " ").replace(" .", ".") for w in words for t in templates]
    chunks = [  # in batches: the vocabulary's 3600 prompts in one batch peaked at 7.7 GB
        backbone.encode_text(prompts[i : i + TEXT_BATCH]).cpu().numpy()
        for i in range(0, len(prompts), TEXT_BATCH)
    ]
    emb = normalize(np.concatenate(chunks))
    emb = normalize(emb.reshape(len(words), len(templates), -1).mean(axis=1))
    if remove_empty:
        emb = normalize(emb[:-1] - emb[-1:])
    return emb.astype(np.float32)
