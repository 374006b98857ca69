"""`sketchpad segment` end to end on the tiny CLIP, with weights in the real file format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from sketchpad.cli import main
from sketchpad.sketch.io import write_sketch
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.vision.registry import build_model, get_spec


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    model = build_model(get_spec("test-clip-tiny"))
    weights = tmp_path / "tiny.safetensors"
    safetensors.torch.save_file(
        {k: v.contiguous().clone() for k, v in model.state_dict().items()}, str(weights)
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, hw in [("b10.png", (60, 90)), ("b2.jpg", (80, 40)), ("a.png", (50, 50))]:
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(photos / name)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (photos / "folder.jpg").mkdir()  # a directory named like a photo is not a photo
    (photos / "notes.txt").write_text("not a photo")
    t = np.linspace(0, 2 * np.pi, 40)
    ring = np.stack([50 + 30 * np.cos(t), 50 + 30 * np.sin(t)], axis=1)
    sketch = Sketch(
        strokes=(Stroke(ring), Stroke(np.array([[150.0, 50.0], [190.0, 90.0]]))),
        width=200,
        height=120,
    )
    write_sketch(sketch, tmp_path / "cow.json")
    return {"root": tmp_path, "weights": weights, "photos": photos, "sketch": tmp_path / "cow.json"}


def run(env: dict[str, Path], out: Path, *extra: str) -> int:
    return main(
        [
            "segment",
            "--sketch",
            str(env["sketch"]),
            "--photos",
            str(env["photos"]),
            "--out",
            str(out),
            "--backbone",
            "test-clip-tiny",
            "--weights",
            str(env["weights"]),
            *extra,
        ]
    )


def test_segment_writes_masks_overlays_and_results(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = env["root"] / "out"
    assert run(env, out, "--crf", "--threshold", "0.4") == 0
    cap = capsys.readouterr()
    assert "3 photos segmented" in cap.out and "2 skipped" in cap.out
    assert "broken.jpg" in cap.err and "folder.jpg" in cap.err
    res = json.loads((out / "results.json").read_text())
    assert [Path(r["photo"]).name for r in res["photos"]] == ["a.png", "b2.jpg", "b10.png"]
    why = {Path(r["path"]).name: r["code"] for r in res["skipped"] if r["reason"]}
    assert why == {"broken.jpg": "corrupt", "folder.jpg": "not-regular"}
    opts = res["options"]
    assert opts["backbone"] == "test-clip-tiny" and opts["crf"] is True
    assert opts["threshold"] == 0.4 and opts["calibration"] == "gallery-relative"
    assert len(opts["weights_sha256"]) == 64
    for r in res["photos"]:
        mask = np.asarray(Image.open(out / r["mask"]))
        assert mask.shape == (r["height"], r["width"]) and set(np.unique(mask)) <= {0, 255}
        assert Image.open(out / r["overlay"]).size == (r["width"], r["height"])
        for inst in r["instances"]:
            x0, y0, x1, y1 = inst["box_xyxy"]
            assert 0 <= x0 < x1 <= r["width"] and 0 <= y0 < y1 <= r["height"]
    # The photo folder is untouched.
    assert sorted(p.name for p in env["photos"].iterdir()) == [
        "a.png",
        "b10.png",
        "b2.jpg",
        "broken.jpg",
        "folder.jpg",
        "notes.txt",
    ]


@pytest.mark.parametrize(
    "extra",
    [
        ("--partition", "2:1", "--theta", "90"),
        ("--lasso", "0,0,100,0,100,120,0,120"),
        ("--text", "a cow", "--alpha", "0.3"),
        ("--compose",),
        ("--plain", "--input-size", "96", "--calibration", "fixed"),
        ("--exact",),
    ],
)
def test_segment_query_options(env: dict[str, Path], extra: tuple[str, ...]) -> None:
    out = env["root"] / "out"
    assert run(env, out, *extra) == 0
    res = json.loads((out / "results.json").read_text())
    assert len(res["photos"]) == 3
    if "--compose" in extra:
        assert res["options"]["queries"] == ["sketch", "group 1", "group 2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--partition", "2:5"), "sector 5 does not exist"),
        (("--lasso", "1,2,3"), "at least 3 points"),
        (("--lasso", "500,500,510,500,510,510"), "selects no stroke"),
        (("--threshold", "1.5"), "--threshold"),
        (("--backbone", "no-such-model"), "unknown backbone"),
    ],
)
def test_segment_bad_options_are_named(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str], extra: tuple, message: str
) -> None:
    assert run(env, env["root"] / "out", *extra) == 1
    assert message in capsys.readouterr().err


def test_segment_refuses_to_write_into_the_photo_folder(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(env, env["photos"] / "masks") == 1
    assert "never writes into photo folders" in capsys.readouterr().err
    assert not (env["photos"] / "masks").exists()


def test_segment_without_weights_offline_says_how_to_import(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "segment",
            "--sketch",
            str(env["sketch"]),
            "--photos",
            str(env["photos"]),
            "--out",
            str(env["root"] / "out"),
            "--backbone",
            "test-clip-tiny",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "test-clip-tiny" in err and "sketchpad models import" in err


def test_segment_uses_and_fills_the_folder_cache(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = env["root"]
    caches = root / "home"

    def cache_files() -> list[Path]:
        # the feature cache files (each folder's patch store beside its cache has its own)
        return sorted(p for p in caches.rglob("*.sqlite") if p.parent.suffix != ".store")

    assert run(env, root / "nocache", "--no-cache") == 0
    assert cache_files() == []  # --no-cache neither reads nor writes a cache
    capsys.readouterr()

    assert run(env, root / "first") == 0  # fills the cache
    assert len(cache_files()) == 1
    first = capsys.readouterr()
    assert "from the cache" not in first.err
    assert run(env, root / "second") == 0  # served from it: nothing encoded again
    second = capsys.readouterr()
    assert "3 photos' features from the cache" in second.err
    assert run(env, root / "streamed", "--memory-budget", "1k") == 0  # beyond the budget
    capsys.readouterr()

    def scores(out: str) -> list[tuple[str, float]]:
        res = json.loads((root / out / "results.json").read_text())
        return [(Path(r["photo"]).name, r["score"]) for r in res["photos"]]

    assert scores("first") == scores("second") == scores("streamed")
    fresh = dict(scores("nocache"))
    for name, score in scores("first"):
        assert abs(fresh[name] - score) < 1e-3  # float16 rows: the same answers
    for out in ("first", "second", "streamed"):
        for r in json.loads((root / out / "results.json").read_text())["photos"]:
            assert (root / out / r["mask"]).read_bytes() == (
                root / "first" / r["mask"]
            ).read_bytes()

    assert run(env, root / "bad", "--memory-budget", "lots") == 1
    assert "--memory-budget" in capsys.readouterr().err


def test_segment_writes_the_formats_asked_for_with_the_class_names(env: dict[str, Path]) -> None:
    import yaml

    out = env["root"] / "out"
    extra = ("--format", "coco,labelme,yolo", "--class-name", "cow", "--threshold", "0.05")
    assert run(env, out, *extra) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["classes"] == ["cow"] and res["formats"] == ["coco", "labelme", "yolo"]
    coco = json.loads((out / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["cow"]
    assert (out / "annotations_polygons.json").is_file()
    for r in res["photos"]:
        stem = Path(r["mask"]).stem
        doc = json.loads((out / "labelme" / f"{stem}.json").read_text())
        assert (out / "labelme" / doc["imagePath"]).resolve() == Path(r["photo"]).resolve()
        assert (out / "yolo" / "labels" / f"{stem}.txt").is_file()
    assert yaml.safe_load((out / "yolo" / "data.yaml").read_text())["names"] == {0: "cow"}
    assert run(env, env["root"] / "o2", "--format", "coco,voc") == 1


def test_damaged_cache_rows_are_encoded_again_in_the_same_run(
    env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    from sketchpad.gallery.cache import cache_dir

    assert run(env, env["root"] / "first") == 0
    (db,) = (cache_dir() / "features").glob("*.sqlite")
    with sqlite3.connect(db) as raw:
        rowid, blob = raw.execute("SELECT rowid, patches FROM features LIMIT 1").fetchone()
        flipped = bytes([blob[0] ^ 0x40]) + blob[1:]
        raw.execute("UPDATE features SET patches = ? WHERE rowid = ?", (flipped, rowid))
    raw.close()
    capsys.readouterr()
    out = env["root"] / "second"
    assert run(env, out) == 0
    assert "were damaged: encoding them again" in capsys.readouterr().err
    assert len(json.loads((out / "results.json").read_text())["photos"]) == 3


def test_a_large_folder_is_searched_in_two_stages_with_the_exact_matches(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above --shortlist-from the folder is read from its patch store and searched in two
    stages; on a planted gallery (the stand-in backbone's features are known) it finds the
    same photos and masks as --exact over the float16 features."""
    from planted import GALLERY, PlantedBackbone, box_mask, photo

    import sketchpad.vision.backbone as backbone

    monkeypatch.setattr(backbone, "create_backbone", lambda *a, **k: PlantedBackbone(True))
    folder = env["root"] / "planted"
    folder.mkdir()
    for i, (hw, boxes) in enumerate(GALLERY * 2):
        Image.fromarray(photo(hw, boxes)).save(folder / f"p{i:02d}.png")
    answers = {}
    for how, extra in [("two-stage", ()), ("exact", ("--exact",)), ("small", ())]:
        out = env["root"] / how
        limit = "100" if how == "small" else "4"
        argv = ["--photos", str(folder), "--shortlist-from", limit, *extra]
        assert _run_on(env, out, argv) == 0
        res = json.loads((out / "results.json").read_text())
        assert res["options"]["search"] == ("two-stage" if how == "two-stage" else "exact")
        answers[how] = {
            Path(r["photo"]).name: (r["score"], np.asarray(Image.open(out / r["mask"])) > 0)
            for r in res["photos"]
        }
    for i, (hw, boxes) in enumerate(GALLERY * 2):
        name = f"p{i:02d}.png"
        two, exact = answers["two-stage"][name], answers["exact"][name]
        assert abs(two[0] - exact[0]) < 1e-3
        assert np.array_equal(two[1], exact[1])
        assert two[1].any() == bool(boxes)  # the planted objects are what is found
        assert not (two[1] & ~box_mask(hw, boxes)).any()


def _run_on(env: dict[str, Path], out: Path, argv: list[str]) -> int:
    return main(
        ["segment", "--sketch", str(env["sketch"]), "--out", str(out),
         "--backbone", "test-clip-tiny", "--weights", str(env["weights"]), *argv]  # fmt: skip
    )


def test_a_large_folders_masks_come_from_the_exact_rows(env: dict[str, Path]) -> None:
    """``segment`` over a folder read from its patch store makes its masks from the feature
    cache's exact float16 rows: the same mask files as --exact (with the fixed calibration:
    no statistics sample, which the store reads from its codes, to differ)."""
    rng = np.random.default_rng(5)
    folder = env["root"] / "noisy"
    folder.mkdir()
    for i in range(8):
        hw = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(folder / f"n{i}.png")
    masks = {}
    for how, extra in [("two-stage", ()), ("exact", ("--exact",))]:
        out = env["root"] / f"noisy-{how}"
        argv = ["--photos", str(folder), "--shortlist-from", "1", "--calibration", "fixed"]
        argv += ["--threshold", "0.05", *extra]
        assert _run_on(env, out, argv) == 0
        res = json.loads((out / "results.json").read_text())
        assert res["options"]["search"] == how
        masks[how] = {r["photo"]: (out / r["mask"]).read_bytes() for r in res["photos"]}
    assert masks["two-stage"] == masks["exact"]
