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


def test_the_timestep_is_chosen_on_validation_pairs_and_reported_on_held_out_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, int]] = []  # (timestep of the model scored, seed of its pairs)
    real = fusion_bench.evaluate

    def spy(ext: object, source: object, pairs: int, seed: int) -> tuple[float, float]:
        t = ext.config.timestep  # type: ignore[attr-defined]
        seen.append((t, seed))
        p5, p10 = real(ext, source, pairs, seed)  # type: ignore[arg-type]
        # on validation pairs t = 60 wins by far; on the held-out pairs it would lose
        return (p5, 1.0 if t == 60 else 0.0) if seed != 0 else (p5, p10)

    monkeypatch.setattr(fusion_bench, "evaluate", spy)
    lines: list[str] = []
    assert fusion_bench.sweep_timesteps(
        lines.append, (20, 60), steps=2, batch_size=2, eval_pairs=2
    ) == 0
    val = 0 + fusion_bench.VALIDATION_SEED_OFFSET
    assert seen == [(20, val), (60, val), (60, 0)]  # the choice never sees held-out pairs
    assert "chosen on validation: t = 60" in lines[-1]


def test_timesteps_outside_the_schedule_are_refused() -> None:
    with pytest.raises(ValueError, match="outside the schedule"):
        fusion_bench.sweep_timesteps(print, (10_000,), steps=1, batch_size=1, eval_pairs=1)
