"""Training losses of the mask-free segmenter, the SBIR critic and the scene labeller.

DESIGN §4.5 (seed 000 §3–4.5, seed 001 §3), with the two printing errors of seed 000 fixed as
DESIGN §4.3 says: Eq. 1 is the usual symmetric InfoNCE (with its −log), Eq. 3 is
``σ((C − 0.5)/τ)``.

Shapes: ``s`` (B, d) sketch globals; ``p`` (B, gh, gw, d) photo patches; ``C`` (B, gh, gw)
cosine maps; masks (B, H, W) at the photo's size. Every loss returns a scalar mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def correlation(s: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Seed 000 Eq. 2: ``C(u, v) = cos(s, p(u, v))``. (B, d), (B, gh, gw, d) → (B, gh, gw)."""
    return torch.einsum("bd,bhwd->bhw", F.normalize(s, dim=-1), F.normalize(p, dim=-1))


def attention_pool(c: torch.Tensor, p: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The sketch-aware photo feature ``p̂ = Σ_i softmax(C / T)_i · p_i`` (softmax over the
    patches). (B, gh, gw), (B, gh, gw, d) → (B, d)."""
    b = c.shape[0]
    w = torch.softmax(c.reshape(b, -1) / temperature, dim=1)
    return torch.einsum("bt,btd->bd", w, p.reshape(b, w.shape[1], -1))


def info_nce(s: torch.Tensor, p_hat: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised ``p̂_i`` and ``s_i`` over the batch (pairs on the
    diagonal): ``½ (CE(p̂ sᵀ / T, i) + CE(s p̂ᵀ / T, i))``."""
    logits = F.normalize(p_hat, dim=-1) @ F.normalize(s, dim=-1).T / temperature
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def mask_logits(c: torch.Tensor, size: tuple[int, int], tau: float) -> torch.Tensor:
    """``(up(C) − 0.5) / τ``: the soft mask's logits at ``size`` (bilinear upsampling, as at
    inference). (B, gh, gw) → (B, H, W)."""
    up = F.interpolate(c[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return (up - 0.5) / tau


def soft_mask(c: torch.Tensor, size: tuple[int, int], tau: float) -> torch.Tensor:
    """Seed 000 Eq. 3 with its sign fixed: ``M = σ((up(C) − 0.5) / τ)`` in (0, 1)."""
    return torch.sigmoid(mask_logits(c, size, tau))


def soft_xor(m_a: torch.Tensor, m_b: torch.Tensor) -> torch.Tensor:
    """The partition loss's mask (seed 000 §4.5): ``M_A + M_B − 2·M_A·M_B``, a differentiable
    XOR that is 0 where both halves of the sketch claim the same pixels."""
    return m_a + m_b - 2.0 * m_a * m_b


def masked_photo(photo: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``P_mask = P ⊙ M``: (B, 3, H, W) images in [0, 1] (before normalisation) times (B, H, W)."""
    return photo * mask[:, None]


def embedding_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """δ: the Euclidean distance between L2-normalised embeddings, per row (B,)."""
    return (F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).norm(dim=-1)


def sbir_loss(critic_masked_photo: torch.Tensor, critic_sketch: torch.Tensor) -> torch.Tensor:
    """Seed 000 Eq. 4: ``δ(F(P_mask), F(S))`` with the frozen critic's embeddings."""
    return embedding_distance(critic_masked_photo, critic_sketch).mean()


def unpaired_loss(c_n: torch.Tensor) -> torch.Tensor:
    """Seed 000 Eq. 5: ``−mean log(1 − σ(C_n))`` over the patches of an unpaired photo; computed
    as ``softplus(C_n)``, the same value without overflow."""
    return F.softplus(c_n).mean()


def _mean(x: torch.Tensor, per_row: bool) -> torch.Tensor:
    return x.mean(dim=tuple(range(1, x.ndim))) if per_row else x.mean()


def mask_regulariser(logits: torch.Tensor, *, per_row: bool = False) -> torch.Tensor:
    """Seed 000 Eq. 6: ``−mean log(1 − M)`` for ``M = σ(logits)``: ``softplus(logits)``.
    ``per_row``: one value per mask (B,) instead of the batch mean."""
    return _mean(F.softplus(logits), per_row)


def mask_regulariser_of(
    mask: torch.Tensor, eps: float = 1e-6, *, per_row: bool = False
) -> torch.Tensor:
    """Eq. 6 on a mask that is not a plain sigmoid (the soft XOR): ``−mean log(1 − M)``."""
    return _mean(-torch.log((1.0 - mask).clamp_min(eps)), per_row)


def triplet_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float
) -> torch.Tensor:
    """``max(0, μ + δ(a, p) − δ(a, n))`` averaged over rows, δ on L2-normalised embeddings
    (seed 000 §3, seed 001 Eq. 1)."""
    d_pos = embedding_distance(anchor, positive)
    d_neg = embedding_distance(anchor, negative)
    return F.relu(margin + d_pos - d_neg).mean()


def hardest_negative_triplet(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    positive: torch.Tensor,
    margin: float = 0.3,
    *,
    same: torch.Tensor | None = None,
) -> torch.Tensor:
    """Triplet loss with the hardest negative of each anchor (seed 001 Eq. 1, margin 0.3).

    Args:
        anchors: (A, d) anchors (a scene sketch's token, or a category sketch's token).
        candidates: (K, d) the texts they are compared with.
        positive: (A,) int64: index of each anchor's positive among ``candidates``.
        margin: μ.
        same: optional (A, K) bool, candidates that must not serve as negatives (the same text
            as the positive, e.g. two sketches of the same caption); the positive is always
            excluded.

    Anchors with no valid negative contribute 0.
    """
    a = F.normalize(anchors, dim=-1)
    c = F.normalize(candidates, dim=-1)
    dist = torch.cdist(a, c)  # (A, K)
    rows = torch.arange(a.shape[0], device=a.device)
    d_pos = dist[rows, positive]
    banned = torch.zeros_like(dist, dtype=torch.bool)
    banned[rows, positive] = True
    if same is not None:
        banned |= same
    d_neg = dist.masked_fill(banned, float("inf")).min(dim=1).values
    valid = torch.isfinite(d_neg)
    if not bool(valid.any()):
        return dist.sum() * 0.0
    return F.relu(margin + d_pos[valid] - d_neg[valid]).sum() / a.shape[0]
