"""SketchFusion's training (seed 003 §6): each task's loss falls on one tiny batch; only the
trained parts are checkpointed (safetensors + JSON) and a resumed run continues exactly; the
checkpoint loads back into the backbone; PSC6K and TU-Berlin read in their real layouts."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketchpad.train.fusion_data import (
    TASKS,
    DatasetError,
    FusionBatch,
    LabelledSketchSource,
    PSC6KSource,
    SyntheticFusionSource,
    Task,
    read_psc6k,
    read_tu_berlin,
    split_rows,
)
from sketchpad.train.fusion_train import FusionTrainer, features_at, soft_argmax_flow
from sketchpad.train.loop import LoopConfig
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.fusion.backbone import FusionBackbone, build_extractor
from sketchpad.vision.registry import get_spec

FUSION_ID = "test-sketchfusion-tiny"
SIZE = 64


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny convolutions run ~10× faster on one thread than on two contended cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def _extractor() -> object:
    return build_extractor(get_spec(FUSION_ID), pretrained=False, seed=0)[0]


class FixedBatch:
    """The same batch at every step (an overfitting test)."""

    def __init__(self, batch: FusionBatch) -> None:
        self.b = batch

    def batch(self, task: Task, rng: np.random.Generator, n: int) -> FusionBatch:
        return self.b


@functools.cache
def synthetic_batch(task: Task) -> FusionBatch:
    return SyntheticFusionSource(SIZE, ("circle", "square", "triangle")).batch(
        task, np.random.default_rng(0), 3
    )


def trainer(task: Task, source: object, out: Path | None = None, steps: int = 12) -> FusionTrainer:
    extractor = copy.deepcopy(_extractor())
    loop = LoopConfig(steps=steps, batch_size=3, seed=0, device="cpu", out=out, name="fusion")
    classes = ("circle", "square", "triangle")
    return FusionTrainer(
        FUSION_ID,
        extractor,
        task,
        source,
        loop,
        lr=3e-3,
        classes=classes,
        size=SIZE,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("task", TASKS)
def test_each_tasks_loss_falls_on_one_batch(task: Task) -> None:
    t = trainer(task, FixedBatch(synthetic_batch(task)))
    first = t.train_step()["total"]
    for _ in range(10):
        last = t.train_step()["total"]
    print(f"{task}: {first:.4f} → {last:.4f}")
    assert last < 0.8 * first, (task, first, last)


def test_checkpoint_holds_only_trained_parts_and_resume_continues(tmp_path: Path) -> None:
    src = FixedBatch(synthetic_batch("recognition"))
    straight = trainer("recognition", src, None, steps=4)
    straight.fit()
    half = trainer("recognition", src, tmp_path, steps=2)
    half.fit()
    meta = json.loads((tmp_path / "fusion.json").read_text())
    assert meta["kind"] == "fusion" and meta["backbone"] == FUSION_ID and meta["step"] == 2
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "fusion.safetensors")
    trained = ("inject.", "aggregate.", "branch_logits", "head.")
    assert saved and all(k.startswith(trained) for k in saved)
    assert not any(k.startswith(("unet.", "vae.", "clip.")) for k in saved)
    resumed = trainer("recognition", src, tmp_path, steps=4)
    assert resumed.resume() and resumed.step == 2
    resumed.fit()
    a, b = straight.task_model.trained_state(), resumed.task_model.trained_state()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    # the head loads back into the backbone
    head = tmp_path / "fusion.safetensors"
    bb = create_backbone(FUSION_ID, pretrained=False, device="cpu", weights=head)
    assert isinstance(bb, FusionBackbone) and bb.weights.path == tmp_path / "fusion.safetensors"
    for k, v in bb.extractor.trainable_state_dict().items():
        assert torch.equal(v, b[k]), k
    # its classifier recognises sketches: the trainer's own logits, as suggestions
    from sketchpad.train.synthetic import make_sketch
    from sketchpad.vision.fusion.recognise import read_recognition_head, recognise

    rh = read_recognition_head(head)
    assert rh.classes == ("circle", "square", "triangle")
    sketch = make_sketch(np.random.default_rng(3), "square")
    (top,) = recognise(bb, rh, [sketch], top_k=2)
    assert len(top) == 2 and top[0].probability >= top[1].probability
    from sketchpad.train.fusion_data import to_input
    from sketchpad.train.synthetic import render_sketch

    x = to_input([render_sketch(sketch, SIZE)], SIZE)
    with torch.no_grad():
        model = resumed.task_model.eval()
        assert model.head is not None
        want = torch.softmax(model.head(model.extractor(x).amax(dim=(-2, -1))), -1)[0]
    torch.testing.assert_close(top[0].probability, float(want.max()), rtol=1e-4, atol=1e-5)
    assert top[0].label == rh.classes[int(want.argmax())]


def test_soft_argmax_flow_finds_a_planted_match() -> None:
    fmap = torch.zeros(1, 4, 4, 4)
    fmap[0, :, 1, 2] = torch.tensor([1.0, 0, 0, 0])  # the cell at x=2, y=1
    fmap[0, 1:, :, :] += 0.01
    query = torch.tensor([[[1.0, 0, 0, 0]]])
    xy = soft_argmax_flow(query, fmap, temperature=0.01)
    torch.testing.assert_close(xy, torch.tensor([[[2.5 / 4, 1.5 / 4]]]), atol=1e-3, rtol=0)
    f = features_at(fmap, torch.tensor([[[2.5 * 16, 1.5 * 16]]]), 64)
    torch.testing.assert_close(f[0, 0], fmap[0, :, 1, 2])


# --- datasets in their real layouts -------------------------------------------------------------


def _png(path: Path, value: int, side: int = 256) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(path)


def test_psc6k_pairs_are_read_and_scaled(tmp_path: Path) -> None:
    root = tmp_path / "sketchy"
    _png(root / "photo/tx_000000000000/cat/n1.jpg", 120)
    _png(root / "sketch/tx_000000000000/cat/n1-1.png", 255)
    head = "photo,sketch,class,XA,YA,XB,YB\n"
    kp = ";".join(str(v) for v in range(8))
    rows = (
        f"photo/tx_000000000000/cat/n1.jpg,sketch/tx_000000000000/cat/n1-1.png,3,"
        f"{kp},{kp},{kp},{kp}\n"
        f"photo/tx_000000000000/cat/gone.jpg,sketch/tx_000000000000/cat/n1-1.png,3,"
        f"{kp},{kp},{kp},{kp}\n"
    )
    (tmp_path / "test_pairs_ps.csv").write_text(head + rows)
    warned: list[str] = []
    pairs = read_psc6k(tmp_path / "test_pairs_ps.csv", root, warn=warned.append)
    assert len(pairs) == 1 and pairs[0].label == 3 and "gone.jpg" in warned[0]
    np.testing.assert_array_equal(pairs[0].kp_photo[:, 0], np.arange(8))
    b = PSC6KSource(pairs, SIZE).batch("correspondence", np.random.default_rng(0), 2)
    assert b.sketch.shape == (2, 3, SIZE, SIZE) and b.kp_photo is not None
    np.testing.assert_allclose(b.kp_photo[0, :, 0].numpy(), np.arange(8) * SIZE / 256)
    (tmp_path / "train_pairs_ps.csv").write_text("photo,sketch,class,flip\n")
    with pytest.raises(DatasetError, match="carry no keypoints"):
        read_psc6k(tmp_path / "train_pairs_ps.csv", root)
    train, test = split_rows(10)
    assert len(test) == 2 and not set(train) & set(test)


def test_tu_berlin_is_read_from_its_png_layout(tmp_path: Path) -> None:
    for cls, n in (("alarm clock", 2), ("bear (animal)", 3)):
        for i in range(n):
            _png(tmp_path / "png" / cls / f"{i + 1}.png", 255, side=96)
    data = read_tu_berlin(tmp_path)
    assert data.classes == ("alarm clock", "bear (animal)") and data.labels.count(1) == 3
    b = LabelledSketchSource(data, SIZE).batch("recognition", np.random.default_rng(0), 4)
    assert b.sketch.shape == (4, 3, SIZE, SIZE) and float(b.sketch.max()) == 1.0
    with pytest.raises(DatasetError, match="no TU-Berlin"):
        read_tu_berlin(tmp_path / "png" / "alarm clock")


# --- the command ------------------------------------------------------------------------------


def test_train_fusion_command_writes_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sketchpad.cli import main

    out = tmp_path / "run"
    common = [
        "train", "fusion", "--task", "segmentation", "--data", "synthetic",
        "--backbone", FUSION_ID, "--random-weights", "--device", "cpu",
        "--batch-size", "2", "--out", str(out),
    ]  # fmt: skip
    assert main([*common, "--steps", "1"]) == 0
    meta = json.loads((out / "fusion.json").read_text())
    assert meta["task"] == "segmentation" and meta["step"] == 1 and meta["sketchpad_fine_tuned"]
    assert main([*common, "--steps", "1"]) == 1  # no overwriting without --resume
    assert "--resume" in capsys.readouterr().err
    assert main([*common, "--steps", "2", "--resume"]) == 0
    assert json.loads((out / "fusion.json").read_text())["step"] == 2
    code = main(
        ["train", "fusion", "--task", "segmentation", "--data", str(tmp_path), "--backbone",
         FUSION_ID, "--random-weights", "--out", str(tmp_path / "x"), "--steps", "1"]
    )  # fmt: skip
    assert code == 1 and "--data synthetic" in capsys.readouterr().err


def test_train_fusion_reads_sketchy_for_retrieval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_train_cli import write_sketchy

    from sketchpad.cli import main

    data = write_sketchy(tmp_path / "sketchy")
    out = tmp_path / "run"
    code = main(["train", "fusion", "--task", "retrieval", "--data", str(data), "--level",
                 "fine", "--backbone", FUSION_ID, "--random-weights", "--device", "cpu",
                 "--batch-size", "2", "--steps", "1", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    meta = json.loads((out / "fusion.json").read_text())
    assert meta["task"] == "retrieval" and "triplet" in meta["losses"]
