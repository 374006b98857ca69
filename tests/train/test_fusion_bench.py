"""`sketchpad bench fusion` runs every variant (trained the same way) and reports the table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from sketchpad.train import fusion_bench


@pytest.fixture(autouse=True)
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_variants_are_trained_and_scored() -> None:
    lines: list[str] = []
    only = ("fused, untrained", "w/o convolutions")  # the CLI runs all seven
    assert fusion_bench.run(lines.append, steps=2, batch_size=2, eval_pairs=2, only=only) == 0
    table = lines[lines.index("") + 2 : -1]
    assert [r.split("  ")[0].strip() for r in table] == list(only)
    untrained = table[0].split()
    assert untrained[-2] == "-"  # no loss: not trained
    assert all(len(r.split()) >= 5 for r in table[1:])


def test_clip_only_has_no_stable_diffusion_in_its_branches() -> None:
    from dataclasses import replace

    from sketchpad.vision.fusion.backbone import build_extractor, fusion_config
    from sketchpad.vision.registry import get_spec

    spec = get_spec("test-sketchfusion-tiny")
    cfg = replace(fusion_config(spec), clip_only=True)
    m, _, _ = build_extractor(spec, config=cfg, pretrained=False)
    calls: list[int] = []
    m.unet.register_forward_pre_hook(lambda *_: calls.append(1))  # its pass never completes
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert m(x).shape == (1, 16, 4, 4) and not calls
    with pytest.raises(ValueError, match="needs an injection"):
        replace(cfg, injection="none")
