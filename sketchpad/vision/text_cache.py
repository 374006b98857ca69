"""Text embeddings of a label list, computed once per model and kept on disk (DESIGN §4.4).

Suggesting labels compares a sketch with every name of the vocabulary (about 600 names, six
prompt templates each): encoding those 3600 prompts is most of ``label --suggest``'s time. The
result depends only on the model and the prompts, so it is stored in
``cache_dir()/text-embeddings/<key>.npy``, where the key digests the backbone (id,
architecture, weights SHA-256, compute dtype), the templates, the empty-prompt removal and
the labels. The file is written atomically and privately (0600 in a 0700 folder) and read
back with ``allow_pickle=False``; one of the wrong shape, dtype or with non-finite values is
ignored and rewritten. A cache that cannot be written only costs the next run the encoding.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sketchpad import paths
from sketchpad.atomic import SaveError, atomic_write_bytes
from sketchpad.vision.backbone import Backbone
from sketchpad.vision.features import embed_texts

log = logging.getLogger(__name__)

#: Bumped when what is stored changes.
CACHE_FORMAT = 1
FOLDER = "text-embeddings"


def cache_key(
    backbone: Backbone, labels: Sequence[str], templates: Sequence[str], remove_empty: bool
) -> str:
    """The hex digest naming the cached embeddings of ``labels`` for ``backbone``."""
    spec = backbone.spec
    doc = {
        "format": CACHE_FORMAT,
        "backbone": spec.id,
        "arch": spec.arch,
        "weights": backbone.weights.sha256,
        "dtype": str(backbone.dtype),
        "templates": list(templates),
        "remove_empty": remove_empty,
        "labels": hashlib.sha256("\n".join(labels).encode("utf-8", "surrogatepass")).hexdigest(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()[:40]


def cache_path(key: str) -> Path:
    """Where the embeddings named ``key`` are kept."""
    return paths.cache_dir() / FOLDER / f"{key}.npy"


def _read(path: Path, n: int, d: int) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as e:
        log.warning("ignoring the unreadable text-embedding cache %s (%s)", path, e)
        return None
    if arr.shape != (n, d) or arr.dtype != np.float32 or not np.isfinite(arr).all():
        log.warning("ignoring the text-embedding cache %s: shape %s %s", path, arr.shape, arr.dtype)
        return None
    return arr


def cached_text_embeddings(
    backbone: Backbone,
    labels: Sequence[str],
    templates: Sequence[str],
    *,
    remove_empty: bool = True,
) -> np.ndarray:
    """:func:`~sketchpad.vision.features.embed_texts` of ``labels``, from the disk cache when
    this model has computed them before (then the text encoder is not run).

    Returns:
        (len(labels), d) float32, L2-normalised.
    """
    labels = list(labels)
    path = cache_path(cache_key(backbone, labels, templates, remove_empty))
    got = _read(path, len(labels), backbone.embed_dim)
    if got is not None:
        return got
    emb = embed_texts(backbone, labels, templates, remove_empty=remove_empty)
    buf = io.BytesIO()
    np.save(buf, emb, allow_pickle=False)
    try:
        paths.private_dir(path.parent)
        atomic_write_bytes(path, buf.getvalue(), mode=paths.PRIVATE_FILE_MODE)
    except (SaveError, OSError) as e:  # only a cache: the next run encodes again
        log.warning("could not keep the text embeddings in %s: %s", path, e)
    return emb
