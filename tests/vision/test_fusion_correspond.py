"""Sketch–photo correspondence: a planted match is found through both letterboxes, PCK counts
the right points, and `sketchpad correspond` / `sketchpad eval correspondence` run end to end
on a tiny fused backbone with random weights."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketchpad.cli import main
from sketchpad.train.fusion_eval import score_matches
from sketchpad.vision.features import PhotoFeatures
from sketchpad.vision.fusion.correspond import match_features, pck
from sketchpad.vision.letterbox import fit_letterbox

FUSION_ID = "test-sketchfusion-tiny"


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def features(hw: tuple[int, int], cells: np.ndarray) -> PhotoFeatures:
    """A 4×4 grid at input 64 (patch 16) with the given (16, d) unit features."""
    return PhotoFeatures(
        patches=cells.astype(np.float32),
        grid_hw=(4, 4),
        global_embedding=np.eye(cells.shape[1], dtype=np.float32)[0],
        letterbox=fit_letterbox(hw, 64),
        patch_size=16,
    )


def test_a_planted_match_is_found_through_both_letterboxes() -> None:
    eye = np.eye(16)
    source = features((64, 64), eye)  # cell k has feature k
    perm = np.arange(16)
    perm[[6, 3]] = perm[[3, 6]]  # target cell 6 (row 1, col 2) holds source cell 3 (row 0, col 3)
    target = features((32, 64), eye[perm])  # wide photo: rows 1–2 of the grid cover it
    assert perm[6] == 3
    res = match_features(source, target, np.array([[56.0, 8.0]]), temperature=0.01)
    (m,) = res.matches
    np.testing.assert_allclose(m.target, (40.0, 8.0), atol=0.05)  # input (40, 24) → photo
    assert m.confidence > 0.99
    heat = res.heatmap(0)
    assert heat.shape == (32, 64) and np.unravel_index(heat.argmax(), heat.shape)[1] in range(
        32, 48
    )
    back = match_features(target, source, np.array([[40.0, 8.0]]), temperature=0.01)
    np.testing.assert_allclose(back.matches[0].target, (56.0, 8.0), atol=0.05)
    with pytest.raises(ValueError, match="inside the source"):
        match_features(source, target, np.array([[70.0, 8.0]]))


def test_padding_cells_are_never_matched() -> None:
    eye = np.eye(16)
    target_cells = eye.copy()
    source = features((64, 64), eye)
    target = features((32, 64), target_cells)  # cell 3 (row 0) is padding in the target
    res = match_features(source, target, np.array([[56.0, 8.0]]), temperature=0.01)
    assert res.heat[0, 0].sum() == 0.0 and res.heat[0, 3].sum() == 0.0


def test_pck_counts_points_within_alpha_of_the_side() -> None:
    true = np.zeros((4, 2))
    pred = np.array([[0, 5], [0, 12], [0, 13], [30, 0]], float)
    assert pck(pred, true, 256, 0.05) == 0.5  # 12.8 px
    assert pck(pred, true, 256, 0.10) == 0.75  # 25.6 px
    s = score_matches([(pred, true, 256.0)])
    assert s.pck == {0.05: 0.5, 0.1: 0.75} and s.points == 4


def _png(path: Path, rgb: tuple[int, int, int], side: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = np.zeros((side, side, 3), np.uint8)
    im[:] = rgb
    im[side // 4 : side // 2, side // 4 : side // 2] = 0
    Image.fromarray(im).save(path)
    return path


def test_correspond_command_writes_json_and_overlay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sketch = _png(tmp_path / "s.png", (255, 255, 255))
    photo = _png(tmp_path / "p.png", (90, 160, 30))
    base = ["correspond", "--sketch", str(sketch), "--photo", str(photo), "--backbone", FUSION_ID,
            "--random-weights", "--device", "cpu"]  # fmt: skip
    out, png = tmp_path / "m.json", tmp_path / "o.png"
    assert main([*base, "--points", "10,10,40,30", "--json", str(out), "--overlay", str(png)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["matches"]) == 2 and doc["matches"][0]["sketch"] == [10.0, 10.0]
    assert all(0 <= m["photo"][0] <= 64 and 0 < m["confidence"] <= 1 for m in doc["matches"])
    assert Image.open(png).size == (128, 64)
    assert main([*base, "--points", "10,10,40"]) == 1
    assert "x,y pairs" in capsys.readouterr().err
    assert main([*base, "--points", "1,1", "--reverse"]) == 0
    assert '"photo": [' in capsys.readouterr().out


def test_eval_correspondence_prints_pck(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "sketchy"
    rows = ["photo,sketch,class,XA,YA,XB,YB"]
    kp = ";".join(str(8 * v) for v in range(1, 8 + 1))
    for i in range(5):
        _png(root / f"photo/tx_000000000000/cat/n{i}.jpg", (40 * i, 90, 30), side=256)
        _png(root / f"sketch/tx_000000000000/cat/n{i}-1.png", (255, 255, 255), side=256)
        rows.append(
            f"photo/tx_000000000000/cat/n{i}.jpg,sketch/tx_000000000000/cat/n{i}-1.png,1,"
            f"{kp},{kp},{kp},{kp}"
        )
    (tmp_path / "test_pairs_ps.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "scores.json"
    code = main(["eval", "correspondence", "--data", str(tmp_path), "--sketchy", str(root),
                 "--split", "all", "--backbone", FUSION_ID, "--random-weights", "--device",
                 "cpu", "--json", str(out)])  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["pairs"] == 5 and doc["points"] == 40 and 0 <= doc["pck@5"] <= doc["pck@10"] <= 1
    assert "PCK@5" in capsys.readouterr().out


def test_the_heat_tint_is_the_overlays_red_at_half_the_heat() -> None:
    from sketchpad.vision.overlay import heat_tint_argb32

    px = heat_tint_argb32(np.array([[0.0, 0.5, 1.0, 2.0]]))
    a = px >> 24
    assert a.tolist() == [[0, 64, 128, 128]]  # opacity 0.5 · heat, clipped at 1
    assert ((px >> 16) & 0xFF).tolist() == a.tolist()  # premultiplied red
    assert ((px >> 8) & 0xFF).tolist() == [[0, 0, 0, 0]] and (px & 0xFF).tolist() == [[0] * 4]
