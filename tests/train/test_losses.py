"""The training losses against their formulas (DESIGN §4.5), written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from sketchpad.train import losses as L


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def test_correlation_is_the_cosine_per_patch() -> None:
    s, p = _rand(2, 5), _rand(2, 3, 4, 5, seed=1)
    c = L.correlation(s, p)
    for b in range(2):
        for u in range(3):
            for v in range(4):
                want = torch.dot(s[b], p[b, u, v]) / (s[b].norm() * p[b, u, v].norm())
                assert float(c[b, u, v]) == pytest.approx(float(want), abs=1e-12)


def test_attention_pool_weights_patches_by_softmax_of_the_map() -> None:
    c, p = _rand(1, 2, 2), _rand(1, 2, 2, 3, seed=1)
    w = torch.softmax(c.reshape(-1) / 0.5, 0)
    want = (w[:, None] * p.reshape(4, 3)).sum(0)
    assert torch.allclose(L.attention_pool(c, p, 0.5)[0], want)


def test_info_nce_is_the_symmetric_cross_entropy() -> None:
    s, ph = _rand(4, 6), _rand(4, 6, seed=2)
    t = 0.1
    sn, pn = s / s.norm(dim=1, keepdim=True), ph / ph.norm(dim=1, keepdim=True)
    total = 0.0
    for i in range(4):
        row = [math.exp(float(pn[i] @ sn[j]) / t) for j in range(4)]
        col = [math.exp(float(pn[j] @ sn[i]) / t) for j in range(4)]
        total += -math.log(row[i] / sum(row)) - math.log(col[i] / sum(col))
    assert float(L.info_nce(s, ph, t)) == pytest.approx(total / 8, rel=1e-9)


def test_info_nce_is_low_for_matched_pairs_and_high_for_shuffled() -> None:
    s = _rand(8, 16)
    assert float(L.info_nce(s, s, 0.07)) < 1e-3
    assert float(L.info_nce(s, s.roll(1, 0), 0.07)) > 1.0


def test_soft_mask_crosses_one_half_where_the_map_crosses_one_half() -> None:
    c = torch.tensor([[[0.2, 0.5], [0.8, 0.5]]], dtype=torch.float64)
    m = L.soft_mask(c, (2, 2), 0.1)  # same size: no interpolation
    assert float(m[0, 0, 1]) == pytest.approx(0.5)
    assert float(m[0, 0, 0]) == pytest.approx(1 / (1 + math.exp(3.0)))
    assert float(m[0, 1, 0]) == pytest.approx(1 / (1 + math.exp(-3.0)))


def test_unpaired_loss_and_regulariser_are_minus_log_one_minus_sigmoid() -> None:
    z = _rand(2, 3, 3)
    want = -torch.log(1 - torch.sigmoid(z)).mean()
    assert float(L.unpaired_loss(z)) == pytest.approx(float(want), rel=1e-9)
    assert float(L.mask_regulariser(z)) == pytest.approx(float(want), rel=1e-9)
    assert float(L.mask_regulariser_of(torch.sigmoid(z))) == pytest.approx(float(want), rel=1e-6)
    # No overflow for very confident logits (log(1 − σ(50)) would be −inf in float32).
    assert math.isfinite(float(L.unpaired_loss(torch.full((1, 2, 2), 50.0))))


def test_soft_xor_is_xor_on_binary_masks_and_zero_where_both_claim() -> None:
    a = torch.tensor([0.0, 0.0, 1.0, 1.0])
    b = torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert L.soft_xor(a, b).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert float(L.soft_xor(torch.tensor(0.5), torch.tensor(0.5))) == pytest.approx(0.5)


def test_sbir_loss_is_the_distance_of_normalised_embeddings() -> None:
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert float(L.sbir_loss(a, b)) == pytest.approx(math.sqrt(2))
    assert float(L.sbir_loss(a, 5 * a)) == pytest.approx(0.0, abs=1e-7)


def test_triplet_loss_hinges_at_the_margin() -> None:
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 0.1]])
    far, near = torch.tensor([[-1.0, 0.0]]), torch.tensor([[1.0, 0.05]])
    assert float(L.triplet_loss(a, p, far, 0.2)) == 0.0
    d_p = float(L.embedding_distance(a, p)[0])
    d_n = float(L.embedding_distance(a, near)[0])
    assert float(L.triplet_loss(a, p, near, 0.2)) == pytest.approx(0.2 + d_p - d_n)


def test_hardest_negative_triplet_uses_the_closest_wrong_candidate() -> None:
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    cands = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [-1.0, 0.0]])
    pos = torch.tensor([0, 1])
    got = float(L.hardest_negative_triplet(anchors, cands, pos, 1.0))
    d = torch.cdist(anchors, torch.nn.functional.normalize(cands, dim=1))
    want = (max(0.0, 1.0 - float(d[0, 2])) + max(0.0, 1.0 - float(d[1, 2]))) / 2
    assert want > 0.1
    assert got == pytest.approx(want, rel=1e-6)
    # Banning the hardest candidate moves to the next one.
    same = torch.tensor([[False, False, True, False], [False, False, True, False]])
    got2 = float(L.hardest_negative_triplet(anchors, cands, pos, 1.0, same=same))
    assert got2 < got
    # No negative at all: zero, with a gradient path.
    x = anchors.clone().requires_grad_()
    z = L.hardest_negative_triplet(x, cands[:1], torch.tensor([0, 0]), 0.3)
    assert float(z.detach()) == 0.0
    z.backward()


def test_losses_carry_gradients_to_the_map() -> None:
    s = _rand(3, 8).requires_grad_()
    p = _rand(3, 2, 2, 8, seed=4).requires_grad_()
    c = L.correlation(s, p)
    logits = L.mask_logits(c, (8, 8), 0.1)
    total = (
        L.info_nce(s, L.attention_pool(c, p), 0.07)
        + L.mask_regulariser(logits)
        + L.unpaired_loss(c)
        + L.soft_xor(torch.sigmoid(logits), torch.sigmoid(-logits)).mean()
    )
    total.backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0
    assert p.grad is not None and float(p.grad.abs().sum()) > 0
