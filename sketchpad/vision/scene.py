"""Scene-sketch labelling (DESIGN §4.4, seed 001): a label for every ink pixel and every stroke.

For a sketch and a list of labels (typed, or proposed from a caption by
:mod:`sketchpad.vision.scene_vocab`):

1. the sketch is drawn as the model sees it (white paper, black lines, the sketch's bounding box
   fitted with a margin) and encoded once: the CLS token from CLIP's original path, the patch
   tokens from the v-v path (``Backbone.encode_patches(path="vv")``);
2. each label becomes a text embedding (the "a sketch of a {}." prompt family minus the empty
   prompt, ``features.embed_texts``);
3. CLIP Surgery's redundancy removal, in closed form and batched (:func:`feature_surgery`):
   ``S[n,k] = w_k·cos(F_n, T_k) − mean_j w_j·cos(F_n, T_j)`` with ``w = softmax(2·cos(CLS, T))``
   divided by its mean;
4. each label's map is min-max normalised over the patches, resampled bilinearly to the label
   raster (:mod:`sketchpad.vision.scene_pixels`), and every ink pixel takes the label with the
   highest value; every stroke takes the majority label of its pixels. The result is a
   :class:`sketchpad.vision.scene_labels.SceneLabels`.

Isolating one label keeps the ink pixels whose normalised score reaches a threshold: 0.71 for a
fine-tuned model (the paper's value), otherwise, per label, the level where its
redundancy-removed score ``S`` crosses 0 — the pixels where that label scores above the
weighted mean of all the labels. That zero-shot rule needs no tuned constant: no labelled
zero-shot calibration set with real CLIP weights can be run here, and the rule is the sign of
CLIP Surgery's own score.

With a single label there is nothing to remove (``S`` would be 0 everywhere): its plain cosine
``cos(F_n, T)`` is used instead (the text embedding has the empty prompt removed already).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from sketchpad.sketch.model import Sketch
from sketchpad.sketch.raster import Frame, fit_frame, rasterize
from sketchpad.vision.backbone import Backbone
from sketchpad.vision.features import SKETCH_TEMPLATES, embed_texts
from sketchpad.vision.scene_labels import SceneLabels, argmax_labels
from sketchpad.vision.scene_pixels import StrokePixels, stroke_pixels
from sketchpad.vision.scene_vocab import Vocabulary, load_vocabulary, unique_labels

#: Isolation threshold of a fine-tuned model (seed 001 §3.4, found best on FS-COCO).
FINE_TUNED_THRESHOLD = 0.71
#: Temperature t of CLIP Surgery's label weights ``softmax(t·cos(CLS, T))``.
SURGERY_TEMPERATURE = 2.0
#: Model views whose encodings a labeller remembers (:meth:`SceneLabeller._encode`).
VIEW_MEMO = 8


def feature_surgery(
    patches: torch.Tensor,
    cls: torch.Tensor,
    text: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    temperature: float = SURGERY_TEMPERATURE,
) -> torch.Tensor:
    """CLIP Surgery's redundancy removal in closed form, for a batch.

    ``S[b,n,k] = w[b,k]·C[b,n,k] − (1/K_b)·Σ_j w[b,j]·C[b,n,j]`` with ``C = cos(F, T)`` and
    ``w[b] = softmax(t·cos(CLS_b, T_b)) / mean(·)`` over the K_b valid labels of sketch b. (The
    original builds the (N, K, d) element-wise product and subtracts its mean over the labels,
    which is the same number summed over d, and works only for a batch of one.)

    Args:
        patches: (B, N, d) L2-normalised patch features.
        cls: (B, d) L2-normalised global (CLS) features.
        text: (K, d) label embeddings shared by the batch, or (B, K, d) one set per sketch;
            L2-normalised.
        valid: (B, K) bool, the labels each sketch really has (padding is False); default all.
        temperature: t.

    Returns:
        (B, N, K) scores in the dtype of ``patches``; 0 in padded columns. A sketch with a
        single valid label gets its plain cosine ``C`` (the formula would give 0).
    """
    if patches.ndim != 3 or cls.ndim != 2 or cls.shape[0] != patches.shape[0]:
        raise ValueError(
            f"patches must be (B, N, d) and cls (B, d), got {tuple(patches.shape)}, "
            f"{tuple(cls.shape)}"
        )
    b = patches.shape[0]
    if text.ndim == 2:
        text = text.unsqueeze(0).expand(b, -1, -1)
    if text.ndim != 3 or text.shape[0] != b or text.shape[2] != patches.shape[2]:
        raise ValueError(f"text must be (K, d) or (B, K, d), got {tuple(text.shape)}")
    k = text.shape[1]
    if valid is None:
        valid = torch.ones(b, k, dtype=torch.bool, device=patches.device)
    if valid.shape != (b, k):
        raise ValueError(f"valid must be ({b}, {k}), got {tuple(valid.shape)}")
    if not bool(valid.any(dim=1).all()):
        raise ValueError("every sketch needs at least one valid label")
    text = text.to(patches.dtype)
    c = torch.einsum("bnd,bkd->bnk", patches, text)  # (B, N, K) cosines
    w = label_weights(cls.to(patches.dtype), text, valid, temperature=temperature)  # (B, K)
    n_valid = valid.sum(dim=1, keepdim=True).to(patches.dtype)  # (B, 1)
    wc = (w.unsqueeze(1) * c).masked_fill(~valid.unsqueeze(1), 0.0)  # (B, N, K)
    s = wc - wc.sum(dim=2, keepdim=True) / n_valid.unsqueeze(1)
    single = (n_valid.squeeze(1) == 1).view(b, 1, 1)
    s = torch.where(single, c, s)
    return s.masked_fill(~valid.unsqueeze(1), 0.0)


def label_weights(
    cls: torch.Tensor,
    text: torch.Tensor,
    valid: torch.Tensor,
    *,
    temperature: float = SURGERY_TEMPERATURE,
) -> torch.Tensor:
    """CLIP Surgery's label weights ``w = softmax(t·cos(CLS, T)) / mean`` over the valid labels.

    Args:
        cls: (B, d) and text: (B, K, d), L2-normalised; valid: (B, K) bool.

    Returns:
        (B, K), mean 1 over each sketch's valid labels, 0 in padded columns.
    """
    g = torch.einsum("bd,bkd->bk", cls, text)
    logits = (temperature * g).masked_fill(~valid, float("-inf"))
    n_valid = valid.sum(dim=1, keepdim=True).to(g.dtype)
    return torch.softmax(logits, dim=1) * n_valid  # divided by its mean (1 / K_b)


def minmax_over_patches(scores: np.ndarray) -> np.ndarray:
    """(..., N, K) → the same, each label's map scaled to [0, 1] over the N patches (CLIP
    Surgery's normalisation). A constant map becomes 0."""
    s = np.asarray(scores, dtype=np.float64)
    lo = s.min(axis=-2, keepdims=True)
    span = s.max(axis=-2, keepdims=True) - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 1e-12, (s - lo) / np.where(span > 1e-12, span, 1.0), 0.0)
    return out


class SceneLabeller:
    """Labels scene sketches with a CLIP backbone (embed the labels once, label many sketches).

    Args:
        backbone: a CLIP backbone (it needs the text tower).
        input_size: square model input side (multiple of the patch size); default the
            backbone's.
        templates: prompt templates for the labels.
        line_width: line width of the model's view, in model-input pixels.
        margin: free margin of the model's view (fraction of each side).
        temperature: CLIP Surgery's t.
    """

    def __init__(
        self,
        backbone: Backbone,
        *,
        input_size: int | None = None,
        templates: Sequence[str] = SKETCH_TEMPLATES,
        line_width: float = 3.0,
        margin: float = 0.1,
        temperature: float = SURGERY_TEMPERATURE,
    ) -> None:
        if not backbone.has_text:
            raise ValueError(
                f"{backbone.spec.id} has no text encoder: scene labelling needs a CLIP backbone"
            )
        self.backbone = backbone
        self.input_size = int(input_size or backbone.spec.input_size)
        p = backbone.spec.patch_size
        if self.input_size <= 0 or self.input_size % p:
            raise ValueError(f"input_size {self.input_size} must be a positive multiple of {p}")
        self.templates = tuple(templates)
        self.line_width = float(line_width)
        self.margin = float(margin)
        self.temperature = float(temperature)
        self._text: dict[str, np.ndarray] = {}
        #: The last few views encoded by :meth:`view_embedding` (digest of the grey image →
        #: CLS, patches): the whole sketch is encoded once for its suggestions and its labels.
        self._views: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    @property
    def fine_tuned_threshold(self) -> float | None:
        """0.71 when the weights are our fine-tuned labeller, None for zero-shot weights."""
        return FINE_TUNED_THRESHOLD if self.backbone.weights.fine_tuned else None

    def text_embeddings(self, labels: Sequence[str], *, disk_cache: bool = False) -> np.ndarray:
        """(K, d) float32 L2-normalised label embeddings (cached per label in memory).

        Args:
            labels: the labels.
            disk_cache: a fixed list used again and again (the vocabulary): its embeddings
                are kept on disk per model (:mod:`sketchpad.vision.text_cache`) and read back
                on later runs instead of running the text encoder.
        """
        missing = [lab for lab in dict.fromkeys(labels) if lab not in self._text]
        if missing:
            if disk_cache:
                from sketchpad.vision.text_cache import cached_text_embeddings

                emb = cached_text_embeddings(self.backbone, missing, self.templates)
            else:
                emb = embed_texts(self.backbone, missing, self.templates)
            self._text.update(zip(missing, emb, strict=True))
        if not labels:
            return np.zeros((0, self.backbone.embed_dim), dtype=np.float32)
        return np.stack([self._text[lab] for lab in labels])

    def model_view(self, sketch: Sketch) -> tuple[np.ndarray, Frame]:
        """The model's view: ((S, S) uint8 grey image, canvas → model frame)."""
        size = self.input_size
        frame = fit_frame(sketch.bbox(), (size, size), self.margin)
        grey = rasterize(sketch, (size, size), frame=frame, line_width=self.line_width)
        return grey, frame

    def _to_input(self, greys: Sequence[np.ndarray]) -> torch.Tensor:
        """Greys (S, S) uint8 → (B, 3, S, S) float32 normalised with the backbone's mean/std."""
        spec = self.backbone.spec
        x = torch.from_numpy(np.stack(greys)).float().div(255.0)  # (B, S, S)
        x = x.unsqueeze(1).expand(-1, 3, -1, -1)
        mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(spec.std).view(1, 3, 1, 1)
        return (x - mean) / std

    def _encode(
        self, greys: Sequence[np.ndarray], *, remember: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greys (S, S) uint8 → normalised CLS (B, d) and v-v patches (B, gh, gw, d).

        Views remembered by an earlier call with ``remember`` (the last :data:`VIEW_MEMO`)
        are not run again; ``remember`` keeps these ones too."""
        keys = [
            hashlib.blake2b(np.ascontiguousarray(g).tobytes(), digest_size=16, person=b"view")
            .digest()
            + repr(g.shape).encode()
            for g in greys
        ]
        todo = [i for i, k in enumerate(keys) if k not in self._views]
        got = [self._views.get(k) for k in keys]
        if todo:
            x = self._to_input([greys[i] for i in todo])
            pooled, patches = self.backbone.encode_patches(x, path="vv")
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
            patches = torch.nn.functional.normalize(patches.float(), dim=-1)
            for j, i in enumerate(todo):
                got[i] = (pooled[j], patches[j])
        if remember:
            for k, g in zip(keys, got, strict=True):
                if k not in self._views and g is not None:
                    self._views[k] = (g[0].clone(), g[1].clone())
                self._views.move_to_end(k)
            while len(self._views) > VIEW_MEMO:
                self._views.popitem(last=False)
        done = [g for g in got if g is not None]
        return torch.stack([g[0] for g in done]), torch.stack([g[1] for g in done])

    def view_embedding(self, sketch: Sketch) -> np.ndarray:
        """(d,) float32 L2-normalised global embedding of the sketch's model view
        (:meth:`model_view`): CLIP's CLS from the original path, from the same forward pass
        as its labels' patches (remembered: :meth:`label` of this sketch does not run it
        again)."""
        pooled, _ = self._encode([self.model_view(sketch)[0]], remember=True)
        return pooled[0].cpu().numpy()

    def global_embeddings(self, parts: Sequence[Sketch], whole: Sketch) -> np.ndarray:
        """(n, d) float32 L2-normalised global embeddings of ``parts`` of ``whole``, each drawn
        where it sits in the whole sketch's framing (vector or raster-only)."""
        if not parts:
            return np.zeros((0, self.backbone.embed_dim), dtype=np.float32)
        size = self.input_size
        frame = fit_frame(whole.bbox(), (size, size), self.margin)
        greys = [rasterize(p, (size, size), frame=frame, line_width=self.line_width) for p in parts]
        emb = self.backbone.encode_global(self._to_input(greys))
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()

    def label(
        self,
        sketch: Sketch,
        labels: Sequence[str],
        *,
        pixels: StrokePixels | None = None,
    ) -> SceneLabels:
        """Label one sketch. See :meth:`label_batch`."""
        return self.label_batch([sketch], [labels], pixels=None if pixels is None else [pixels])[0]

    def label_caption(
        self, sketch: Sketch, caption: str, *, vocabulary: Vocabulary | None = None
    ) -> SceneLabels:
        """Label one sketch with the vocabulary names its caption mentions.

        Raises:
            ValueError: the caption mentions no vocabulary name.
        """
        vocab = vocabulary or load_vocabulary()
        labels = vocab.labels_from_caption(caption)
        if not labels:
            raise ValueError(
                f"the caption {caption!r} names nothing in the vocabulary; give the labels"
            )
        return self.label(sketch, labels)

    def label_batch(
        self,
        sketches: Sequence[Sketch],
        labels: Sequence[Sequence[str]],
        *,
        pixels: Sequence[StrokePixels] | None = None,
        batch_size: int = 16,
    ) -> list[SceneLabels]:
        """Label sketches, ``batch_size`` per forward.

        Args:
            sketches: vector or raster-only sketches, each with some ink.
            labels: per sketch, its labels (at least one; duplicates are kept once).
            pixels: per sketch, its label raster (:func:`scene_pixels.stroke_pixels`); default
                the whole canvas at each stroke's pen width.
            batch_size: sketches per forward, ≥ 1.

        Raises:
            ValueError: mismatched lengths, a sketch without ink, or a sketch without labels.
        """
        if len(labels) != len(sketches):
            raise ValueError(f"{len(labels)} label lists for {len(sketches)} sketches")
        if pixels is not None and len(pixels) != len(sketches):
            raise ValueError(f"{len(pixels)} label rasters for {len(sketches)} sketches")
        label_sets = [unique_labels(lab) for lab in labels]
        for i, (sk, lab) in enumerate(zip(sketches, label_sets, strict=True)):
            if not lab:
                raise ValueError(f"sketch {i} has no labels: give at least one")
            if sk.bbox() is None:
                raise ValueError(f"sketch {i} has no ink to label")
        self.text_embeddings([lab for ls in label_sets for lab in ls])
        out: list[SceneLabels] = []
        step = max(1, int(batch_size))
        for start in range(0, len(sketches), step):
            chunk = range(start, min(start + step, len(sketches)))
            out += self._label_chunk(
                [sketches[i] for i in chunk],
                [label_sets[i] for i in chunk],
                [None if pixels is None else pixels[i] for i in chunk],
            )
        return out

    def _label_chunk(
        self,
        sketches: list[Sketch],
        label_sets: list[tuple[str, ...]],
        pixels: list[StrokePixels | None],
    ) -> list[SceneLabels]:
        views = [self.model_view(s) for s in sketches]
        cls, patches = self._encode([g for g, _ in views])
        b, gh, gw, d = patches.shape
        kmax = max(len(ls) for ls in label_sets)
        text = np.zeros((b, kmax, d), dtype=np.float32)
        valid = np.zeros((b, kmax), dtype=bool)
        for i, ls in enumerate(label_sets):
            text[i, : len(ls)] = self.text_embeddings(ls)
            valid[i, : len(ls)] = True
        dev = patches.device
        text_t, valid_t = torch.from_numpy(text).to(dev), torch.from_numpy(valid).to(dev)
        s = feature_surgery(
            patches.reshape(b, gh * gw, d), cls, text_t, valid_t, temperature=self.temperature
        )
        w = label_weights(cls, text_t, valid_t, temperature=self.temperature)
        s_np, w_np = s.cpu().double().numpy(), w.cpu().float().numpy()
        results = []
        for i, (sketch, ls) in enumerate(zip(sketches, label_sets, strict=True)):
            k = len(ls)
            si = s_np[i, :, :k]  # (N, K)
            maps = minmax_over_patches(si).T.reshape(k, gh, gw).astype(np.float32)
            px = pixels[i]
            if px is None:
                px = stroke_pixels(sketch)
            patch = self.backbone.spec.patch_size
            pixel_labels = argmax_labels(px, maps, views[i][1], patch)
            results.append(
                SceneLabels(
                    labels=ls,
                    pixels=px,
                    pixel_labels=pixel_labels,
                    stroke_labels=px.stroke_majority(pixel_labels),
                    patch_maps=maps,
                    patch_scores=si.T.reshape(k, gh, gw).astype(np.float32),
                    label_weights=w_np[i, :k],
                    model_frame=views[i][1],
                    patch_size=patch,
                    fine_tuned_threshold=self.fine_tuned_threshold,
                )
            )
        return results
