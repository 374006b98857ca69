"""CLIP Surgery's redundancy removal: the batched closed form equals the explicit formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sketchpad.vision.scene import feature_surgery, minmax_over_patches


def _unit(t: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(t, dim=-1)


def explicit_surgery(
    patches: torch.Tensor, cls: torch.Tensor, text: torch.Tensor, t: float = 2.0
) -> torch.Tensor:
    """CLIP Surgery's own construction for ONE sketch: the (N, K, d) element-wise products,
    weighted, minus their mean over the labels, summed over d."""
    n, d = patches.shape
    k = text.shape[0]
    prob = torch.softmax(t * (cls @ text.T), dim=-1)  # (K,)
    w = prob / prob.mean()
    feats = patches.reshape(n, 1, d) * text.reshape(1, k, d)  # (N, K, d)
    feats = feats * w.reshape(1, k, 1)
    redundant = feats.mean(dim=1, keepdim=True)
    return (feats - redundant).sum(dim=-1)  # (N, K)


def test_closed_form_equals_the_explicit_formula_per_sketch_with_padding() -> None:
    g = torch.Generator().manual_seed(3)
    b, n, d, kmax = 4, 9, 16, 5
    k_per = [5, 3, 2, 4]
    patches = _unit(torch.randn(b, n, d, generator=g, dtype=torch.float64))
    cls = _unit(torch.randn(b, d, generator=g, dtype=torch.float64))
    text = _unit(torch.randn(b, kmax, d, generator=g, dtype=torch.float64))
    valid = torch.zeros(b, kmax, dtype=torch.bool)
    for i, k in enumerate(k_per):
        valid[i, :k] = True
    s = feature_surgery(patches, cls, text, valid)
    assert s.shape == (b, n, kmax) and s.dtype == torch.float64
    for i, k in enumerate(k_per):
        want = explicit_surgery(patches[i], cls[i], text[i, :k])
        torch.testing.assert_close(s[i, :, :k], want, rtol=0, atol=1e-12)
        assert torch.all(s[i, :, k:] == 0)


def test_shared_labels_match_the_per_sketch_form_and_the_formula_in_words() -> None:
    """S[n,k] = w_k·cos(F_n, T_k) − mean_j w_j·cos(F_n, T_j), w = softmax(2·cos(CLS,T))/mean."""
    g = torch.Generator().manual_seed(5)
    patches = _unit(torch.randn(2, 6, 8, generator=g, dtype=torch.float64))
    cls = _unit(torch.randn(2, 8, generator=g, dtype=torch.float64))
    text = _unit(torch.randn(3, 8, generator=g, dtype=torch.float64))
    s = feature_surgery(patches, cls, text)
    for b in range(2):
        c = patches[b] @ text.T  # (N, K)
        w = torch.softmax(2.0 * (cls[b] @ text.T), dim=0)
        w = w / w.mean()
        want = w * c - (w * c).mean(dim=1, keepdim=True)
        torch.testing.assert_close(s[b], want, rtol=0, atol=1e-12)
        want = explicit_surgery(patches[b], cls[b], text)
        torch.testing.assert_close(s[b], want, rtol=0, atol=1e-12)


def test_temperature_changes_the_weights() -> None:
    g = torch.Generator().manual_seed(7)
    patches = _unit(torch.randn(1, 4, 8, generator=g, dtype=torch.float64))
    cls = _unit(torch.randn(1, 8, generator=g, dtype=torch.float64))
    text = _unit(torch.randn(3, 8, generator=g, dtype=torch.float64))
    s5 = feature_surgery(patches, cls, text, temperature=5.0)
    torch.testing.assert_close(s5[0], explicit_surgery(patches[0], cls[0], text, t=5.0))
    assert not torch.allclose(s5, feature_surgery(patches, cls, text))


def test_a_single_label_keeps_its_plain_cosine() -> None:
    g = torch.Generator().manual_seed(1)
    patches = _unit(torch.randn(2, 5, 8, generator=g, dtype=torch.float64))
    cls = _unit(torch.randn(2, 8, generator=g, dtype=torch.float64))
    text = _unit(torch.randn(2, 2, 8, generator=g, dtype=torch.float64))
    valid = torch.tensor([[True, False], [True, True]])
    s = feature_surgery(patches, cls, text, valid)
    # The formula gives 0 for one label (nothing to remove): its cosine is kept instead.
    zero = torch.zeros(5, 1, dtype=torch.float64)
    assert torch.allclose(explicit_surgery(patches[0], cls[0], text[0, :1]), zero, atol=1e-12)
    torch.testing.assert_close(s[0, :, 0], patches[0] @ text[0, 0])
    torch.testing.assert_close(s[1], explicit_surgery(patches[1], cls[1], text[1]))


def test_bad_shapes_and_empty_label_sets_are_refused() -> None:
    p, c, t = torch.zeros(2, 3, 4), torch.zeros(2, 4), torch.zeros(3, 4)
    with pytest.raises(ValueError, match="patches must be"):
        feature_surgery(p[0], c, t)
    with pytest.raises(ValueError, match="text must be"):
        feature_surgery(p, c, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="at least one valid label"):
        feature_surgery(p, c, t, torch.tensor([[True, False, False], [False] * 3]))


def test_minmax_scales_each_label_over_the_patches() -> None:
    s = np.array([[[1.0, -2.0], [3.0, -2.0], [2.0, -2.0]]])  # (1, N=3, K=2)
    m = minmax_over_patches(s)
    np.testing.assert_allclose(m[0, :, 0], [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(m[0, :, 1], [0.0, 0.0, 0.0])  # constant map → 0
