"""The real datasets as training sources, and ``sketchpad train`` end to end.

Small fixtures in the published layouts are written here: Sketchy (rendered PNG sketches, and
SVG ones for partitions) with three classes of two photos and four sketches each, and an
FSCOCO-Seg folder. Each class has its own shape and colour and each photo instance its own
background, so a batch's photos can be checked by their pixels. The models are the tiny random
``test-clip-tiny`` (64 px) on the CPU.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from sketchpad.cli import main
from sketchpad.train.datasets import read_fscoco_seg, read_sketchy
from sketchpad.train.loop import Trainer, TrainingError
from sketchpad.train.sources import SketchyPairs, SketchyTriplets, fill_of, fscoco_scenes
from sketchpad.vision.registry import get_spec
from sketchpad.vision.scene_vocab import load_vocabulary

TINY = "test-clip-tiny"
CLASSES = ("airplane", "car_(sedan)", "cat")
COLOURS = ((220, 40, 40), (40, 160, 40), (40, 40, 220))
BACKGROUNDS = (60, 180)  # grey of photo instance 1, 2
TX = "tx_000000000000"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("SKETCHPAD_DEVICE", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- fixtures


def _outline(c: int, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if c == 0:
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in t]
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)] if c == 1 else [(0, -1), (1, 1), (-1, 1)]
    return [(cx + r * x, cy + r * y) for x, y in corners]


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def write_sketchy(root: Path, *, svg: bool = False) -> Path:
    """``root/rendered_256x256/256x256/{photo,sketch}/tx_000000000000/<class>/``: photos
    ``n0<c>_<j>.jpg`` (64×48: a filled shape of the class colour on the instance's grey) and
    sketches ``n0<c>_<j>-<k>.png`` (64×64 outlines); with ``svg``, also
    ``sketches-06-04/sketches/<class>/n0<c>_<j>-<k>.svg`` of two strokes each."""
    rendered = root / "rendered_256x256" / "256x256"
    for c, cls in enumerate(CLASSES):
        for j, grey in enumerate(BACKGROUNDS, start=1):
            iid = f"n0{c}_{j}"
            im = Image.new("RGB", (64, 48), (grey,) * 3)
            ImageDraw.Draw(im).polygon(_outline(c, 32, 24, 14), fill=COLOURS[c])
            _save(im, rendered / "photo" / TX / cls / f"{iid}.jpg")
            for k in (1, 2):
                sk = Image.new("L", (64, 64), 255)
                pts = _outline(c, 32 + 3 * k, 32, 14 + 2 * j)
                ImageDraw.Draw(sk).line([*pts, pts[0]], fill=0, width=2)
                _save(sk, rendered / "sketch" / TX / cls / f"{iid}-{k}.png")
                if svg:
                    half = len(pts) // 2 + 1
                    d = [pts[:half], [*pts[half - 1 :], pts[0]]]
                    paths = "".join(
                        '<path d="M ' + " L ".join(f"{x:.1f} {y:.1f}" for x, y in s) + '"/>'
                        for s in d
                    )
                    f = root / "sketches-06-04" / "sketches" / cls / f"{iid}-{k}.svg"
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_text(
                        f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">{paths}'
                        "</svg>"
                    )
    return root


def write_fscoco_seg(root: Path) -> Path:
    """FSCOCO-Seg: ``train/`` raster sketches with captions (one names nothing of the
    vocabulary), ``test/`` vector sketches with per-stroke labels."""
    captions = ["a cat sleeps on a chair", "two dogs and a tree", "scribbles everywhere"]
    for n, caption in enumerate(captions):
        sk = Image.new("L", (64, 64), 255)
        ImageDraw.Draw(sk).line([(10, 10 + 5 * n), (50, 40), (20, 55)], fill=0, width=2)
        _save(sk, root / "train" / "sketches" / "p01" / f"{n:04d}.png")
        (root / "train" / "text" / "p01").mkdir(parents=True, exist_ok=True)
        (root / "train" / "text" / "p01" / f"{n:04d}.txt").write_text(caption)
    strokes = np.array(
        [[0, 0, 0], [40, 5, 1], [10, 30, 0], [30, 60, 1], [50, 50, 0], [70, 20, 1]], np.float64
    )
    test = root / "test"
    for d in ("vector_sketches", "classes", "captions"):
        (test / d).mkdir(parents=True)
    np.save(test / "vector_sketches" / "100.npy", strokes)
    (test / "classes" / "100.json").write_text(json.dumps(["giraffe", "tree", "giraffe"]))
    (test / "captions" / "100.txt").write_text("a giraffe eats from a tree")
    return root


def class_of(image: np.ndarray) -> int:
    """The class whose colour is at the centre of a (letterboxed) photo."""
    centre = image[image.shape[0] // 2, image.shape[1] // 2].astype(int)
    return int(np.argmin([np.abs(centre - np.array(c)).sum() for c in COLOURS]))


def instance_of(image: np.ndarray) -> int:
    """Which background grey (0 or 1) a letterboxed photo has (its content starts at row 8)."""
    grey = float(image[10, 2].mean())
    return int(np.argmin([abs(grey - g) for g in BACKGROUNDS]))


@pytest.fixture
def sketchy(tmp_path: Path) -> Path:
    return write_sketchy(tmp_path / "sketchy")


FILL = fill_of(get_spec(TINY).mean)


# ---------------------------------------------------------------- the sources


def test_sketchy_triplets_by_class_and_by_instance(sketchy: Path) -> None:
    source = SketchyTriplets(read_sketchy(sketchy, warn=lambda _: None), 64, fill_rgb=FILL)
    assert source.classes == CLASSES
    batch = source.triplets(np.random.default_rng(0), 8, "category")
    assert batch.sketches.shape == batch.positives.shape == (8, 64, 64, 3)
    assert batch.labels.dtype == np.int64 and set(batch.labels) <= {0, 1, 2}
    for y, p, n in zip(batch.labels, batch.positives, batch.negatives, strict=True):
        assert class_of(p) == y and class_of(n) != y
        assert tuple(p[0, 0]) == FILL  # letterboxed whole: 64×48 → bands of the mean colour
    fine = source.triplets(np.random.default_rng(1), 8, "fine")
    for y, p, n in zip(fine.labels, fine.positives, fine.negatives, strict=True):
        assert class_of(p) == class_of(n) == y and instance_of(p) != instance_of(n)
    again = source.triplets(np.random.default_rng(1), 8, "fine")  # a function of the generator
    for field in ("sketches", "positives", "negatives", "labels"):
        assert np.array_equal(getattr(fine, field), getattr(again, field))


def test_sketchy_pairs_and_partitions_of_vector_sketches(tmp_path: Path) -> None:
    root = write_sketchy(tmp_path / "sketchy", svg=True)
    png = SketchyPairs(read_sketchy(root, warn=lambda _: None), 64, "category", fill_rgb=FILL)
    batch = png.pairs(np.random.default_rng(0), 4, 0.5)
    assert batch.sketches.shape == batch.photos.shape == batch.unpaired.shape == (4, 64, 64, 3)
    assert batch.parts.shape == (0, 2, 64, 64, 3)  # rendered PNGs are rasters: no strokes to cut
    assert all(
        class_of(p) != class_of(u) for p, u in zip(batch.photos, batch.unpaired, strict=True)
    )

    ds = read_sketchy(root, sketch_format="svg", warn=lambda _: None)
    fine = SketchyPairs(ds, 64, "fine", fill_rgb=FILL)
    batch = fine.pairs(np.random.default_rng(0), 4, 0.5)
    assert batch.parts.shape == (2, 2, 64, 64, 3) and batch.part_rows.tolist() == [0, 1]
    for p, u in zip(batch.photos, batch.unpaired, strict=True):
        assert class_of(p) == class_of(u) and instance_of(p) != instance_of(u)
    ink = (batch.parts < 128).any(axis=-1).sum(axis=(2, 3))  # each half has ink of its own
    assert (ink > 0).all()


def test_unusable_files_are_reported_once_and_drawn_again(sketchy: Path) -> None:
    rendered = sketchy / "rendered_256x256" / "256x256"
    bad_photo = rendered / "photo" / TX / "cat" / "n02_1.jpg"
    bad_photo.write_bytes(bad_photo.read_bytes()[:40])
    blank = rendered / "sketch" / TX / "airplane" / "n00_1-1.png"
    Image.new("L", (64, 64), 255).save(blank)
    warnings: list[str] = []
    source = SketchyTriplets(read_sketchy(sketchy, warn=lambda _: None), 64, warn=warnings.append)
    for step in range(12):
        batch = source.triplets(np.random.default_rng(step), 6, "category")
        assert len(batch.sketches) == 6
    assert sorted(w.split(":")[0] for w in warnings) == sorted(
        [f"skipped {bad_photo}", f"skipped {blank}"]
    ), warnings
    assert "no ink" in next(w for w in warnings if str(blank) in w)


def test_a_source_of_broken_files_gives_up_naming_one(sketchy: Path) -> None:
    for f in (sketchy / "rendered_256x256" / "256x256" / "sketch").rglob("*.png"):
        f.write_bytes(b"not a png")
    warnings: list[str] = []
    ds = read_sketchy(sketchy, warn=lambda _: None)
    source = SketchyPairs(ds, 64, warn=warnings.append, max_failures=20)
    with pytest.raises(TrainingError, match=r"20 training samples in a row .*\.png"):
        source.pairs(np.random.default_rng(0), 2, 0.5)
    assert 0 < len(warnings) <= 12  # each file once


def test_fscoco_scenes_take_stroke_labels_or_the_caption(tmp_path: Path) -> None:
    samples = read_fscoco_seg(write_fscoco_seg(tmp_path / "seg"), warn=lambda _: None)
    warnings: list[str] = []
    scenes = fscoco_scenes(samples, load_vocabulary(), warn=warnings.append)
    assert [(s.caption, s.categories) for s in scenes] == [
        ("a cat sleeps on a chair", ("cat", "chair")),
        ("two dogs and a tree", ("dog", "tree")),
        ("a giraffe eats from a tree", ("giraffe", "tree")),  # its stroke labels
    ]
    assert scenes[2].sketch.strokes and scenes[0].sketch.is_raster
    assert len(warnings) == 1 and "0002.png" in warnings[0] and "no category" in warnings[0]


# ---------------------------------------------------------------- the command


def train(kind: str, data: Path, out: Path, *extra: str) -> int:
    return main(["train", kind, "--data", str(data), "--out", str(out), "--backbone", TINY,
                 "--random-weights", "--device", "cpu", "--batch-size", "2", *extra])  # fmt: skip


def test_sbir_then_segmenter_then_segment(
    tmp_path: Path, sketchy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    critic, seg = tmp_path / "critic", tmp_path / "seg"
    assert train("sbir", sketchy, critic, "--steps", "2") == 0
    out = capsys.readouterr()
    assert "sbir: trained to step 2/2" in out.out and str(critic / "sbir.safetensors") in out.out
    assert "3 classes" in out.err and "random weights" in out.err

    assert train("segmenter", sketchy, seg, "--steps", "2") == 1  # no critic
    assert "needs --critic" in capsys.readouterr().err
    argv = ["--critic", str(critic / "sbir"), "--checkpoint-every", "1"]
    assert train("segmenter", sketchy, seg, "--steps", "2", "--pool-temperature", "0", *argv) == 1
    assert "--pool-temperature must be a positive number" in capsys.readouterr().err
    argv += ["--pool-temperature", "0.05"]
    assert train("segmenter", sketchy, seg, "--steps", "2", *argv) == 0
    out = capsys.readouterr().out
    assert "segmenter: trained to step 2/2" in out and "last losses total=" in out
    meta = json.loads((seg / "segmenter.json").read_text())
    assert (meta["kind"], meta["step"], meta["calibration"]) == ("segmenter", 2, "fixed")
    assert meta["config"]["pool_temperature"] == 0.05

    photos = sketchy / "rendered_256x256" / "256x256" / "photo" / TX / "cat"
    sketch = sketchy / "rendered_256x256" / "256x256" / "sketch" / TX / "cat" / "n02_1-1.png"
    masks = tmp_path / "masks"
    argv = ["segment", "--sketch", str(sketch), "--photos", str(photos), "--out", str(masks),
            "--checkpoint", str(seg / "segmenter"), "--no-cache"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp_path / "masks" / "results.json").read_text())
    assert results["options"]["calibration"] == "fixed"
    assert len(list((tmp_path / "masks" / "masks").glob("*.png"))) == 2
    capsys.readouterr()

    # An existing checkpoint is never overwritten without --resume …
    assert train("segmenter", sketchy, seg, "--steps", "3", "--lambda-sbir", "0") == 1
    err = capsys.readouterr().err
    assert "already holds a segmenter checkpoint (step 2" in err and "--resume" in err
    # … and --resume goes on to more steps.
    assert train("segmenter", sketchy, seg, "--steps", "3", "--resume", "--critic",
                 str(critic / "sbir")) == 0  # fmt: skip
    out = capsys.readouterr()
    assert "resumed" in out.err and "trained to step 3/3" in out.out
    assert json.loads((seg / "segmenter.json").read_text())["step"] == 3
    # A folder with another kind of checkpoint is refused.
    assert train("sbir", sketchy, seg, "--steps", "1") == 1
    assert "holds a 'segmenter' checkpoint" in capsys.readouterr().err


def test_the_critic_recipe_of_the_benchmark_is_reachable_from_the_command_line(
    tmp_path: Path, sketchy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "critic"
    argv = ["--steps", "2", "--photo-pool", "mean", "--dim", "0", "--erase", "0.5",
            "--consistency", "1"]  # fmt: skip
    assert train("sbir", sketchy, out, *argv) == 0
    meta = json.loads((out / "sbir.json").read_text())
    assert (meta["photo_pool"], meta["dim"]) == ("mean", 0)
    assert (meta["config"]["erase"], meta["config"]["consistency"]) == (0.5, 1.0)
    assert "consistency=" in capsys.readouterr().out
    assert train("sbir", sketchy, tmp_path / "b", "--consistency", "1") == 1
    assert "give --erase too" in capsys.readouterr().err
    assert train("sbir", sketchy, tmp_path / "c", "--erase", "1.5") == 1
    assert "--erase must be within 0 … 1" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_wrong_data_and_missing_weights_are_clear_errors(
    tmp_path: Path, sketchy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seg = write_fscoco_seg(tmp_path / "seg")
    assert train("sbir", seg, tmp_path / "a") == 1
    err = capsys.readouterr().err
    assert err.startswith("sketchpad train: error:") and "a fscoco-seg dataset" in err
    assert "needs a Sketchy or Sketchy-Extended folder" in err
    (tmp_path / "empty").mkdir()
    assert train("scene", tmp_path / "empty", tmp_path / "b") == 1
    assert "not a training dataset folder" in capsys.readouterr().err
    assert train("scene", sketchy, tmp_path / "b") == 1
    assert "`train scene` needs an FS-COCO" in capsys.readouterr().err
    assert train("sbir", sketchy, tmp_path / "c", "--steps", "0") == 1
    assert "--steps must be at least 1" in capsys.readouterr().err

    argv = ["train", "sbir", "--data", str(sketchy), "--out", str(tmp_path / "d")]
    assert main(argv) == 1  # clip-vit-b16, offline, nothing imported
    err = capsys.readouterr().err
    assert "No weights found for clip-vit-b16" in err and "sketchpad models import" in err
    assert not (tmp_path / "d").exists()


def test_scene_training_on_fscoco_seg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_fscoco_seg(tmp_path / "seg")
    out = tmp_path / "scene"
    assert train("scene", data, out, "--steps", "2", "--split", "all", "--lr", "1e-4") == 0
    captured = capsys.readouterr()
    assert "3 captioned sketches of 4" in captured.err and "no category" in captured.err
    assert "scene: trained to step 2/2" in captured.out
    assert str(out / "scene.extra.safetensors") in captured.out
    meta = json.loads((out / "scene.json").read_text())
    assert (meta["kind"], meta["step"], meta["scene"]["lr"]) == ("scene", 2, 1e-4)


def test_ctrl_c_saves_and_exits(
    tmp_path: Path, sketchy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    step = Trainer.train_step

    def interrupted_after_one(self: Trainer) -> dict[str, float]:
        values = step(self)
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl+C during step 1
        return values

    monkeypatch.setattr(Trainer, "train_step", interrupted_after_one)
    handler = signal.getsignal(signal.SIGINT)
    assert train("sbir", sketchy, tmp_path / "c", "--steps", "5") == 130
    captured = capsys.readouterr()
    assert "stopping after this step" in captured.err
    assert "sbir: interrupted at step 1/5" in captured.out
    assert json.loads((tmp_path / "c" / "sbir.json").read_text())["step"] == 1
    assert signal.getsignal(signal.SIGINT) is handler
