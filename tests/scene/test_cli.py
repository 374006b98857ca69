"""`sketchpad label` and `sketchpad eval scene` end to end on the tiny random CLIP."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image
from scene_fixtures import write_fscoco, write_spg
from scene_planted import quadrant_sketch

from sketchpad.cli import main
from sketchpad.sketch.io import read_sketch, write_sketch
from sketchpad.sketch.model import Sketch
from sketchpad.vision.registry import build_model, get_spec

SPG = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "spg"
TINY = ["--backbone", "test-clip-tiny", "--device", "cpu"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sketch, _ = quadrant_sketch()
    write_sketch(sketch, tmp_path / "scene.json")
    return tmp_path


def label(env: Path, out: Path, *extra: str, sketch: str = "scene.json") -> int:
    return main(["label", "--sketch", str(env / sketch), "--out", str(out), *TINY, *extra])


def test_label_with_typed_labels(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = env / "out"
    assert label(env, out, "--labels", "cat, dog,tree", "--random-weights") == 0
    cap = capsys.readouterr()
    assert "5 strokes labelled with 3 labels" in cap.out and "random weights" in cap.err
    back = read_sketch(out / "labelled.json")
    assert all(s.label in ("cat", "dog", "tree") for s in back.strokes)
    assert back.metadata["scene_labels"]["backbone"] == "test-clip-tiny"
    with open(out / "strokes.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == [s.label for s in back.strokes]
    index = np.asarray(Image.open(out / "label_map.png"))
    assert index.shape == (200, 300) and set(np.unique(index).tolist()) <= {0, 1, 2, 3}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "labelled.json",
            "labelled.svg",
            "label_map.png",
            "strokes.csv",
            "isolated-cat.png",
            "isolated-dog.png",
            "isolated-tree.png",
        ]
    )
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_label_with_real_weights_a_caption_and_a_threshold(env: Path) -> None:
    torch.manual_seed(0)
    weights = env / "tiny.safetensors"
    model = build_model(get_spec("test-clip-tiny"))
    safetensors.torch.save_file(
        {k: v.contiguous().clone() for k, v in model.state_dict().items()}, str(weights)
    )
    out = env / "out"
    rc = label(
        env,
        out,
        "--caption",
        "Three dogs chase a bird past traffic lights.",
        "--weights",
        str(weights),
        "--threshold",
        "0.5",
    )
    assert rc == 0
    meta = read_sketch(out / "labelled.json").metadata["scene_labels"]
    assert meta["labels"] == ["dog", "bird", "traffic light"]
    assert meta["thresholds"] == {"dog": 0.5, "bird": 0.5, "traffic light": 0.5}
    assert len(meta["weights_sha256"]) == 64
    assert (out / "isolated-traffic-light.png").is_file()


def test_label_a_raster_sketch_with_suggestions(env: Path, capsys: pytest.CaptureFixture) -> None:
    ink = np.zeros((60, 80), dtype=np.uint8)
    ink[10:14, 5:30] = 255
    ink[40:50, 50:52] = 255
    write_sketch(Sketch(raster=ink, width=80, height=60), env / "bitmap.png")
    out = env / "out"
    assert (
        label(env, out, "--suggest", "--top-k", "2", "--random-weights", sketch="bitmap.png") == 0
    )
    assert "ink components labelled" in capsys.readouterr().out
    doc = json.loads((out / "labelled.json").read_text())
    meta = doc["metadata"]["scene_labels"]
    assert [c["id"] for c in meta["components"]] == ["c1", "c2"]
    assert len(meta["suggestions"]["whole"]) == 2
    assert meta["labels"] == list(
        dict.fromkeys(g["labels"][0][0] for g in meta["suggestions"]["groups"])
    )
    assert not (out / "labelled.svg").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--labels", "a", "--sketch", "missing.json"), "missing.json: file not found"),
        (("--labels", " , "), "holds no label"),
        (("--caption", "an empty page"), "names nothing in the vocabulary"),
        (("--labels", "a", "--threshold", "1.5"), "--threshold must be in [0, 1]"),
        (("--labels", "a", "--backbone", "test-dinov2-tiny"), "has no text encoder"),
        (("--labels", "a", "--backbone", "clip-nope"), "unknown backbone"),
    ],
)
def test_label_errors_are_named(
    env: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    argv = ["label", "--sketch", str(env / "scene.json"), "--out", str(env / "out"), *TINY]
    argv += ["--random-weights", *args]
    if "--sketch" in args:
        argv[2] = str(env / args[args.index("--sketch") + 1])
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("sketchpad label: error:") and message in err
    assert not (env / "out").exists()


def test_label_out_must_be_a_folder(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "taken").write_text("x")
    assert label(env, env / "taken", "--labels", "a", "--random-weights") == 1
    assert "exists and is not a folder" in capsys.readouterr().err


def test_label_without_weights_offline_says_how_to_import(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert label(env, env / "out", "--labels", "a") == 1
    err = capsys.readouterr().err
    assert "test-clip-tiny" in err and "sketchpad models import" in err


def test_eval_scene_on_fixtures(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spg = write_spg(env / "spg")
    report = env / "scores.json"
    argv = ["eval", "scene", "--data", str(spg), *TINY, "--random-weights", "--json", str(report)]
    assert main(argv) == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    assert any(line.startswith("cup ") and line.split()[1] == "2" for line in lines)
    assert any(line.startswith("overall ") and line.split()[1] == "3" for line in lines)
    assert "Acc@P" in cap.out and "mIoU" in cap.out and "1 skipped" in cap.out
    assert "cup_valid.ndjson#2" in cap.err
    doc = json.loads(report.read_text())
    assert doc["overall"]["sketches"] == 3 and set(doc["groups"]) == {"cup", "sun"}
    assert all(0.0 <= s["acc_p"] <= 1.0 for s in doc["sketch_scores"])
    write_fscoco(env / "fscoco" / "test")
    assert main(["eval", "scene", "--data", str(env / "fscoco"), *TINY, "--random-weights"]) == 0
    assert "fscoco data" in capsys.readouterr().out


def test_eval_scene_errors(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "scene", "--data", str(env / "nowhere"), *TINY, "--random-weights"]) == 1
    assert "sketchpad eval: error:" in capsys.readouterr().err
    spg = write_spg(env / "spg")
    assert main(["eval", "scene", "--data", str(spg), "--limit", "0", *TINY]) == 1
    assert "--limit must be at least 1" in capsys.readouterr().err


@pytest.mark.skipif(not SPG.is_dir(), reason=f"the SPG data is not at {SPG}")
def test_eval_scene_runs_end_to_end_on_the_spg_data(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    argv = ["eval", "scene", "--data", "../shared/data/spg", *TINY, "--random-weights"]
    assert main([*argv, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line and line.split()[0] != "category"]
    counts = {r[0]: r[1] for r in rows if len(r) == 5}
    assert len(counts) == 21 and counts["overall"] == "40" and counts["airplane"] == "2"
