"""Synthetic photo libraries with the structure of CLIP patch features, for the large-library
benchmark (``sketchpad bench gallery``) and the shortlist tests.

Independent random vectors make every photo equally (un)likely and every shortlist look good
or equally bad; real CLIP patch features are not like that. Each patch here is

    p = normalise(a_g·g + a_s·scene + a_p·photo + Σ_objects m·a_o·concept + a_n·noise)

- ``g``: one direction every feature shares (CLIP's "cone": zero-shot cosines of unrelated
  things sit around 0.2, in a narrow band — what the gallery-relative calibration is for);
- ``scene``: one of :attr:`World.scenes` background directions (indoor, beach, street …);
- ``photo``: a direction of the photo's own (lighting, camera, style): its patches resemble
  each other more than they resemble other photos;
- objects: 0–3 per photo, each one of 1,000 concepts drawn with Zipf popularity (1/rank: the
  commonest is in 15 % of photos, the 100th in 0.15 %); concepts come in 100 families (a
  concept is 0.45 of its family's direction, 0.9 its own: "dog" is near "cat"), covering an
  elliptical blob of 1–30 % of the photo's patches (log-uniform: small objects are common);
- ``noise``: per patch, half shared with its 2×2 neighbourhood (a patch resembles its
  neighbours, as a ViT's patch tokens do); drawn from a pool of 8,192 random directions so that
  10^5 photos generate in minutes on two cores.

A tenth of the photos are near-duplicates of the photo before them (bursts, edits): the same
objects and layout, the noise partly redrawn. A query is ``normalise(0.5·g + 0.75·concept +
0.4·noise)`` for one of the 300 commonest concepts, uniformly: a sketch matches its concept's
patches best, its family's partly.

Everything is drawn per batch of :data:`BATCH` photos from a seed of (library seed, batch
number), so any photo's exact float16 features can be regenerated without storing them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sketchpad.vision.letterbox import Letterbox, fit_letterbox

#: Photos drawn together (and regenerated together).
BATCH = 256
#: Concepts in a world (in 100 families); objects draw them with Zipf popularity 1/rank.
CONCEPTS = 1000
#: Queries ask for one of the this many most popular concepts, uniformly.
QUERY_CONCEPTS = 300
_A_G, _A_S, _A_P, _A_O, _A_N = 0.5, 0.3, 0.35, 0.55, 0.2


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class World:
    """The directions a library is made of (see the module docstring)."""

    g: np.ndarray
    concepts: np.ndarray  # (C, d)
    popularity: np.ndarray  # (C,) sums to 1
    scenes: np.ndarray  # (S, d)
    noise_pool: np.ndarray  # (P, d)
    grid: int
    patch_size: int
    letterboxes: tuple[Letterbox, ...]

    @property
    def dim(self) -> int:
        return int(self.g.shape[0])


def make_world(dim: int = 512, grid: int = 14, patch_size: int = 16, seed: int = 0) -> World:
    rng = np.random.default_rng([seed, 999])
    families = _unit(rng.standard_normal((100, dim)))
    fam = rng.integers(0, 100, CONCEPTS)
    concepts = _unit(0.45 * families[fam] + 0.9 * _unit(rng.standard_normal((CONCEPTS, dim))))
    pop = 1.0 / np.arange(1, CONCEPTS + 1)
    size = grid * patch_size
    boxes = (fit_letterbox((384, 512), size), fit_letterbox((512, 384), size))
    return World(
        g=_unit(rng.standard_normal(dim)),
        concepts=concepts,
        popularity=pop / pop.sum(),
        scenes=_unit(rng.standard_normal((64, dim))),
        noise_pool=_unit(rng.standard_normal((8192, dim))),
        grid=grid,
        patch_size=patch_size,
        letterboxes=boxes,
    )


@dataclass(frozen=True)
class Batch:
    """``len(letterbox)`` photos: float16 patches (B, T, d), global embeddings (B, d), the
    letterbox index of each photo and its objects as (concept, (T,) bool mask) lists."""

    start: int
    patches: np.ndarray
    globals_: np.ndarray
    letterbox: np.ndarray
    objects: list[list[tuple[int, np.ndarray]]]


def make_batch(world: World, start: int, count: int, seed: int = 0) -> Batch:
    """Photos ``start`` … ``start + count − 1`` (``start`` a multiple of :data:`BATCH`,
    ``count`` ≤ BATCH)."""
    if start % BATCH or count > BATCH:
        raise ValueError("batches start at multiples of BATCH and hold at most BATCH photos")
    rng = np.random.default_rng([seed, start // BATCH])
    g, d = world.grid, world.dim
    t = g * g
    # draw for a whole BATCH, so a shorter last batch is a prefix of the full one
    b = BATCH
    lb = (rng.random(b) < 0.25).astype(np.int64)  # a quarter portrait (drawn first: see valid)
    valid = np.stack([box.valid_patches(world.patch_size).ravel() for box in world.letterboxes])
    # Patch noise: half its own, half shared with the patches of its 2×2 block (neighbours
    # resemble each other), drawn from a fixed pool of random directions (cheap at 10^5 photos).
    own = world.noise_pool[rng.integers(0, len(world.noise_pool), (b, t))]
    block = rng.integers(0, len(world.noise_pool), (b, (g + 1) // 2, (g + 1) // 2))
    shared = block.repeat(2, axis=1).repeat(2, axis=2)[:, :g, :g].reshape(b, t)
    noise = _unit(own + world.noise_pool[shared])
    x = _A_G * world.g + _A_S * world.scenes[rng.integers(0, len(world.scenes), b)][:, None]
    x = x + _A_P * _unit(rng.standard_normal((b, d), dtype=np.float32))[:, None]
    x = np.broadcast_to(x, (b, t, d)).copy()
    yy, xx = np.mgrid[0:g, 0:g]
    objects: list[list[tuple[int, np.ndarray]]] = []
    n_obj = rng.choice(4, size=b, p=[0.3, 0.4, 0.2, 0.1])
    for i in range(b):
        objs = []
        v = valid[lb[i]]
        for _ in range(int(n_obj[i])):
            c = int(rng.choice(len(world.concepts), p=world.popularity))
            frac = float(np.exp(rng.uniform(np.log(0.01), np.log(0.30))))
            k = max(1, round(frac * v.sum()))
            cy, cx = rng.uniform(0, g, 2)
            ay, ax = rng.uniform(0.5, 2.0, 2)
            dist = (((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2).ravel()
            dist = np.where(v, dist, np.inf)
            m = np.zeros(t, dtype=bool)
            m[np.argsort(dist, kind="stable")[:k]] = True
            x[i, m] += _A_O * world.concepts[c]
            objs.append((c, m))
        objects.append(objs)
    dup = rng.random(b) < 0.1
    dup[0] = False
    x += _A_N * noise
    for i in np.flatnonzero(dup).tolist():  # a near-duplicate of the photo before it
        x[i] = x[i - 1] + 0.25 * _A_N * noise[i]
        objects[i] = objects[i - 1]
        lb[i] = lb[i - 1]
    x = _unit(x)
    return Batch(
        start=start,
        patches=x[:count].astype(np.float16),
        globals_=_unit(x[:count].mean(axis=1)),
        letterbox=lb[:count],
        objects=objects[:count],
    )


def batches(world: World, n: int, seed: int = 0) -> Iterator[Batch]:
    for s in range(0, n, BATCH):
        yield make_batch(world, s, min(BATCH, n - s), seed)


def queries(world: World, count: int, seed: int = 0) -> np.ndarray:
    """(count, d) query vectors (see the module docstring) and, implicitly, their concepts."""
    rng = np.random.default_rng([seed, 12345])
    cs = rng.integers(0, QUERY_CONCEPTS, size=count)
    noise = _unit(rng.standard_normal((count, world.dim), dtype=np.float32))
    return _unit(0.5 * world.g + 0.75 * world.concepts[cs] + 0.4 * noise)


def letterbox_indices(n: int, seed: int = 0) -> np.ndarray:
    """(n,) which of ``World.letterboxes`` each photo has, without generating the photos (the
    first draw of each batch), so the valid patches are known before the features."""
    out = []
    for s in range(0, n, BATCH):
        rng = np.random.default_rng([seed, s // BATCH])
        out.append((rng.random(BATCH) < 0.25).astype(np.int64)[: min(BATCH, n - s)])
    return np.concatenate(out) if out else np.zeros(0, np.int64)
