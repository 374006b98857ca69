"""`sketchpad segment` and the window's engine answer a query identically: the same scores,
bit for bit, and the same full-size masks, for a composed sketch with words (the CLI once
dropped the words of a composed query and ranked by another score)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from sketchpad.cli import main
from sketchpad.engine.client import Engine
from sketchpad.search.model import ModelChoice
from sketchpad.sketch.io import write_sketch
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.vision.registry import build_model, get_spec

WAIT_MS = 60_000
TINY = "test-clip-tiny"


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    state = build_model(get_spec(TINY)).state_dict()
    safetensors.torch.save_file({k: v.contiguous().clone() for k, v in state.items()}, weights)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for k, hw in enumerate([(60, 90), (80, 40), (50, 50), (64, 64), (30, 70)]):
        im = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
        im[hw[0] // 4 : hw[0] // 2, hw[1] // 4 : hw[1] // 2] = (200, 30, 30)
        Image.fromarray(im).save(photos / f"p{k}.png")
    t = np.linspace(0, 2 * np.pi, 30)
    sketch = Sketch(
        strokes=(
            Stroke(np.stack([40 + 25 * np.cos(t), 50 + 25 * np.sin(t)], 1), id="ring"),
            Stroke(np.array([[150.0, 40.0], [190.0, 90.0], [160.0, 95.0]]), id="hook"),
        ),
        width=220,
        height=120,
    )
    write_sketch(sketch, tmp_path / "sketch.json")
    return {
        "root": tmp_path,
        "weights": weights,
        "photos": photos,
        "sketch": tmp_path / "sketch.json",
    }


@pytest.mark.parametrize(
    "options",
    [
        # thresholds inside the random model's score range: some photos match, some not
        {"compose": True, "text": "a red cow", "alpha": 0.3, "threshold": 0.05},
        {"compose": False, "text": None, "alpha": 0.5, "threshold": 0.04},
    ],
    ids=["compose+text", "plain"],
)
def test_segment_and_the_engine_give_the_same_scores_and_masks(
    setup: dict[str, Path], qtbot: Any, options: dict[str, Any]
) -> None:
    out = setup["root"] / "out"
    argv = ["segment", "--sketch", str(setup["sketch"]), "--photos", str(setup["photos"]),
            "--out", str(out), "--backbone", TINY, "--weights", str(setup["weights"]),
            "--device", "cpu", "--threshold", str(options["threshold"])]  # fmt: skip
    if options["compose"]:
        argv.append("--compose")
    if options["text"]:
        argv += ["--text", options["text"], "--alpha", str(options["alpha"])]
    assert main(argv) == 0
    cli = json.loads((out / "results.json").read_text(encoding="utf-8"))
    if options["compose"]:
        assert cli["options"]["queries"] == ["sketch + text", "group 1 + text", "group 2 + text"]

    engine = Engine()
    try:
        with qtbot.waitSignal(engine.modelLoaded, timeout=WAIT_MS):
            engine.load_model(ModelChoice(TINY, weights=setup["weights"], device="cpu"))
        with qtbot.waitSignal(engine.indexFinished, timeout=WAIT_MS) as indexed:
            engine.open_folder(setup["photos"])
        assert indexed.args[0].index.up_to_date == 5  # the CLI's cache, shared
        from sketchpad.sketch.io import read_sketch

        with qtbot.waitSignal(engine.queryFinished, timeout=WAIT_MS) as answered:
            engine.query(
                read_sketch(setup["sketch"]),
                compose=options["compose"],
                text=options["text"],
                alpha=options["alpha"],
                threshold=options["threshold"],
            )
        result = answered.args[0]
        names = tuple(sorted(result.names))
        with qtbot.waitSignal(engine.masksFinished, timeout=WAIT_MS) as made:
            engine.request_masks(names, side=None, channel="check")
        masks = made.args[0].masks
    finally:
        assert engine.shutdown(10.0)

    score = dict(zip(result.names, result.photo_scores.tolist(), strict=True))
    records = {r["name"]: r for r in cli["photos"]}
    assert set(records) == set(names)
    for name in names:
        assert records[name]["score"] == score[name], name  # bit for bit
        png = np.asarray(Image.open(out / records[name]["mask"]))
        np.testing.assert_array_equal(png > 0, masks[name].mask, err_msg=name)
        assert records[name]["match"] == (score[name] >= options["threshold"])
    ranked = [str(setup["photos"] / result.names[i]) for i in result.ranking]
    assert cli["ranking"] == ranked
    matched = [r["match"] for r in cli["photos"]]
    assert any(matched) and not all(matched)  # both kinds compared
    assert any(masks[n].mask.any() for n in names)
