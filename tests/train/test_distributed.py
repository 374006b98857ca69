"""Training in several processes (``--nproc``): two CPU processes (gloo, DistributedDataParallel)
follow one process with the same global batch.

One launch of two processes trains each trainer whose losses couple the rows of a batch:
the segmenter (InfoNCE over every pair: gathered embeddings), the SBIR critic (the consistency
loss: a ratio over the whole batch) and the scene labeller (the hardest other caption of the
whole batch; the category loss, a mean over pairs that the two processes hold unequally). Each
is trained 2 steps, saved, resumed in new trainers and trained 2 more, after one gradient
probe at step 0. The same runs in this process give the reference.

Tolerance. Both set-ups compute in float32 from the same weights and the same batches; what
differs is the order of the sums: one process reduces a batch of 8 rows in one matrix product,
two reduce 4 rows each and average their gradients, and gloo's all-reduce adds in its own
order. Each sum is then off by a few float32 ulps (≈ 1e-7 relative), and AdamW (lr 1e-3) turns
gradient noise into weight noise of about lr·1e-7/√v̂ per step, which the next steps' losses
carry. Measured here: the largest loss difference over 4 steps is ~1e-6 relative and the step-0
gradients agree to ~1e-6 relative, so the tests ask for 1e-4 (losses) and 1e-4 + 1e-7 absolute
(gradients): 100 × the noise, while a missing gather or a wrong scale moves them by 1e-2 to 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from sketchpad.sketch.model import sketch_from_polylines
from sketchpad.train import distributed
from sketchpad.train.loop import LoopConfig, Trainer
from sketchpad.train.synthetic import SyntheticWorld

TINY = "test-clip-tiny"  # 64 px, 2 blocks
BATCH, HALF, STEPS = 8, 2, 4
KINDS = ("segmenter", "sbir", "scene")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _scenes() -> list:
    """Eight captioned scene sketches naming 0 to 3 categories (so the two processes hold
    unequal numbers of (sketch, category) pairs)."""
    from sketchpad.train.scene_train import CaptionedScene

    names = ("circle", "square", "line")
    rng = np.random.default_rng(4)
    out = []
    for i in range(8):
        cats = names[: i % 4]
        lines = [rng.uniform(20, 180, (3 + i % 3, 2)) for _ in range(1 + i % 3)]
        sketch = sketch_from_polylines(lines, width=200, height=200)
        caption = " and ".join(cats) if cats else f"scribble {i}"
        out.append(CaptionedScene(sketch, caption, cats))
    return out


def build(kind: str, world: SyntheticWorld, loop: LoopConfig) -> Trainer:
    if kind == "segmenter":
        from sketchpad.train.segmenter_train import SegmenterConfig, SegmenterTrainer

        cfg = SegmenterConfig(backbone=TINY, pretrained=False, tune="all", lr=1e-3,
                              lambda_sbir=0.0, partition_fraction=0.5)  # fmt: skip
        return SegmenterTrainer(cfg, world, None, loop)
    if kind == "sbir":
        from sketchpad.train.sbir_train import SBIRConfig, SBIRTrainer

        cfg = SBIRConfig(backbone=TINY, pretrained=False, lr=1e-3, dim=16, erase=0.5,
                         consistency=1.0)  # fmt: skip
        return SBIRTrainer(cfg, world, loop)
    from sketchpad.train.scene_train import SceneTrainConfig, SceneTrainer

    cfg = SceneTrainConfig(backbone=TINY, pretrained=False, lr=1e-3, threshold_lr=1e-2)
    return SceneTrainer(_scenes(), cfg, loop)


def _world() -> SyntheticWorld:
    return SyntheticWorld(("circle", "square", "triangle", "star"), size=64, seed=1,
                          photos_per_class=4, sketches_per_class=4)  # fmt: skip


def _loop(steps: int, out: Path | None = None) -> LoopConfig:
    return LoopConfig(steps=steps, batch_size=BATCH, seed=3, device="cpu", out=out, name="ck")


def _grads(trainer: Trainer) -> dict[str, np.ndarray]:
    return {
        n: p.grad.detach().numpy().copy()
        for n, p in trainer.model.named_parameters()
        if p.grad is not None
    }


def run(kind: str, world: SyntheticWorld, out: Path) -> dict:
    """Step 0's gradients, then 2 steps saved to ``out``, resumed in new trainers and
    trained to 4: the gradients and the total loss of every step. (Weights are not compared:
    where a gradient is rounding noise, e.g. the attention's key bias, whose true gradient is
    0, AdamW's normalised step turns that noise into lr-sized weight differences.)"""
    probe = build(kind, world, _loop(STEPS))
    probe.backward()
    grads = _grads(probe)
    first = build(kind, world, _loop(HALF, out))
    first.fit()
    if probe.dist.active:
        torch.distributed.barrier()  # rank 0 has written the checkpoint
    second = build(kind, world, _loop(STEPS, out))
    assert second.resume() and second.step == HALF
    second.fit()
    if probe.dist.active:  # a stop asked in one process only: every process stops there
        stopper = build(kind, world, _loop(STEPS))
        stopper.fit(should_stop=lambda: stopper.dist.rank == 1 and stopper.step >= 1)
        assert stopper.step == 1
    losses = first.history.losses["total"] + second.history.losses["total"]
    return {"grads": grads, "losses": losses}


def _worker(out: str) -> int:
    """One of the two processes: every trainer as :func:`run`; rank 0 writes the results."""
    here, _ = distributed.init_from_env("cpu")
    try:
        world = _world()
        results = {k: run(k, world, Path(out) / k) for k in KINDS}
        if here.chief:
            torch.save(results, Path(out) / "ddp.pt")
            files = sorted(p.name for p in (Path(out) / "segmenter").iterdir())
            (Path(out) / "files.json").write_text(json.dumps(files))
    finally:
        distributed.shutdown()
    return 0


def test_two_processes_follow_one_process(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    out.mkdir()
    assert distributed.launch(2, _worker, str(out)) == 0
    ddp = torch.load(out / "ddp.pt", weights_only=False)
    files = json.loads((out / "files.json").read_text())
    assert files == ["ck.json", "ck.safetensors", "ck.state.pt"]  # one checkpoint, no strays
    world = _world()
    for kind in KINDS:
        one = run(kind, world, tmp_path / "one" / kind)
        two = ddp[kind]
        a, b = np.array(one["losses"]), np.array(two["losses"])
        assert len(a) == len(b) == STEPS
        assert np.ptp(a) > 1e-3, f"{kind}: the loss must move for the comparison to mean much"
        np.testing.assert_allclose(b, a, rtol=1e-4, err_msg=f"{kind} loss curve")
        assert one["grads"].keys() == two["grads"].keys()
        for name, g in one["grads"].items():
            np.testing.assert_allclose(two["grads"][name], g, rtol=1e-4, atol=1e-7,
                                       err_msg=f"{kind} gradient of {name}")  # fmt: skip


def test_only_rank_0_writes_checkpoints(tmp_path: Path) -> None:
    trainer = build("segmenter", _world(), _loop(1, tmp_path))
    trainer.dist = distributed.Dist(rank=1, world=2, local_rank=1)
    assert trainer.save() is None and not any(tmp_path.iterdir())
    trainer.dist = distributed.SINGLE
    assert trainer.save() is not None and (tmp_path / "ck.json").is_file()


def test_rows_split_the_batch_evenly_or_refuse() -> None:
    two = [distributed.Dist(rank=r, world=2) for r in range(2)]
    assert [d.rows(8) for d in two] == [slice(0, 4), slice(4, 8)]
    with pytest.raises(ValueError, match="multiple of 2"):
        two[1].rows(7)


def test_train_command_with_nproc_2_resumes_a_one_process_run(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """``train sbir --nproc 2 --resume`` goes on from a one-process checkpoint: the processes
    print one summary and write one checkpoint, whose last losses are those of one process
    going on alone."""
    from test_train_cli import write_sketchy  # tests/train is on sys.path

    from sketchpad.cli import main
    from sketchpad.train.checkpoint import read_metadata

    data = write_sketchy(tmp_path / "sketchy")
    common = ["train", "sbir", "--data", str(data), "--backbone", TINY, "--random-weights",
              "--batch-size", "4", "--device", "cpu", "--checkpoint-every", "0",
              "--lr", "1e-3"]  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*common, "--out", str(two), "--steps", "1"]) == 0
    assert main([*common, "--out", str(two), "--steps", "3", "--resume", "--nproc", "2"]) == 0
    out, err = capfd.readouterr()
    assert out.count("sbir: trained to step 3/3") == 1, out  # rank 0 alone reports
    assert "training in 2 processes" in err and "resumed" in err
    assert main([*common, "--out", str(one), "--steps", "3"]) == 0
    a, b = read_metadata(one / "sbir.json"), read_metadata(two / "sbir.json")
    assert a["step"] == b["step"] == 3
    for k, v in a["losses"].items():
        assert b["losses"][k] == pytest.approx(v, rel=1e-4), k
    assert main([*common, "--out", str(tmp_path / "x"), "--nproc", "3"]) == 1
    assert "does not split evenly over --nproc 3" in capfd.readouterr().err
