"""Segmentation metrics checked by hand, the evaluation loop, the Segmenter as a predictor, and
`sketchpad eval segmenter` end to end on the real VOC photos and masks (../shared/data/voc)
with sketches written here."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sketchpad.cli import main
from sketchpad.sketch.io import write_sketch
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.train import seg_eval
from sketchpad.train.seg_eval import (
    SegCounts,
    SegmenterPredictor,
    SegSample,
    evaluate,
    harmonic_iou,
    summarise,
)

VOC = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "voc"
TINY = ["--backbone", "test-clip-tiny"]


def box(hw: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros(hw, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def ring_sketch(r: float = 30.0) -> Sketch:
    t = np.linspace(0, 2 * np.pi, 30)
    ring = np.stack([50 + r * np.cos(t), 50 + r * np.sin(t)], axis=1)
    return Sketch(strokes=(Stroke(ring),), width=100, height=100)


# -- metrics by hand -------------------------------------------------------------------------
def test_a_perfect_prediction_scores_one() -> None:
    true = box((10, 10), 2, 6, 3, 8)
    counts = SegCounts()
    assert counts.add("cat", true.copy(), true) == (1.0, 1.0)
    s = summarise(counts)
    assert (s.miou_seen, s.miou, s.pacc_seen, s.pacc) == (1.0, 1.0, 1.0, 1.0)
    assert math.isnan(s.miou_unseen) and math.isnan(s.hiou) and math.isnan(s.pacc_unseen)


def test_an_empty_prediction_scores_zero_iou_and_the_background_share() -> None:
    true = box((10, 10), 0, 4, 0, 5)  # 20 of 100 pixels
    counts = SegCounts()
    assert counts.add("cat", np.zeros((10, 10), bool), true) == (0.0, 0.8)
    s = summarise(counts)
    assert s.classes["cat"].iou == 0.0 and s.pacc == pytest.approx(0.8)


def test_a_partial_prediction_by_hand() -> None:
    # 4×4: the truth is the 2×2 top-left block; the prediction its top row plus one pixel
    # outside. ∩ = 2, ∪ = 5 → IoU 0.4; wrong pixels: 2 missed + 1 extra → pAcc 13/16.
    true = box((4, 4), 0, 2, 0, 2)
    pred = np.zeros((4, 4), bool)
    pred[0, 0:3] = True
    counts = SegCounts()
    iou, pacc = counts.add("cat", pred, true)
    assert (iou, pacc) == (pytest.approx(0.4), pytest.approx(13 / 16))
    c = counts.classes["cat"]
    assert (c.intersection, c.union, c.correct, c.total, c.pairs) == (2, 5, 13, 16, 1)


def test_void_pixels_are_left_out() -> None:
    true = box((4, 4), 0, 2, 0, 2)
    pred = np.zeros((4, 4), bool)
    pred[0, 0:3] = True
    valid = np.ones((4, 4), bool)
    valid[0, 2] = False  # the extra pixel is void
    valid[3, :] = False  # and the last row
    counts = SegCounts()
    assert counts.add("cat", pred, true, valid) == (pytest.approx(0.5), pytest.approx(9 / 11))


def test_a_class_iou_sums_its_pairs_and_miou_averages_classes_not_pixels() -> None:
    counts = SegCounts()
    big = box((100, 100), 0, 80, 0, 80)  # 6400 pixels, found exactly
    counts.add("whale", big, big)
    small = box((100, 100), 0, 2, 0, 2)  # 4 pixels, missed
    counts.add("mouse", np.zeros_like(small), small)
    # A second mouse pair: ∩ 4, ∪ 8. The class IoU is Σ∩/Σ∪ = 4/12, not the pairs' mean 1/4.
    counts.add("mouse", box((100, 100), 0, 2, 0, 4), small)
    s = summarise(counts)
    assert s.classes["mouse"].iou == pytest.approx(4 / 12)
    assert s.miou == pytest.approx((1.0 + 4 / 12) / 2)  # pooled pixels would give ≈ 0.999
    assert s.classes["mouse"].pairs == 2 and s.pairs == 3


def test_seen_unseen_split_hiou_and_pooled_pixel_accuracy() -> None:
    counts = SegCounts()
    t = box((10, 10), 0, 5, 0, 10)  # 50 pixels
    counts.add("cat", t, t)  # IoU 1, 100/100
    counts.add("dog", box((10, 10), 0, 5, 0, 5), t)  # IoU 0.5, 75/100
    counts.add("cow", box((10, 10), 0, 5, 0, 4), t)  # IoU 0.4, 70/100
    counts.add("yak", np.zeros((10, 10), bool), t)  # IoU 0, 50/100, in neither set
    s = summarise(counts, seen=["cat", "dog"], unseen={"cow"})
    assert s.miou_seen == pytest.approx(0.75) and s.miou_unseen == pytest.approx(0.4)
    assert s.hiou == pytest.approx(2 * 0.75 * 0.4 / (0.75 + 0.4))
    assert s.pacc_seen == pytest.approx(175 / 200) and s.pacc_unseen == pytest.approx(0.7)
    assert s.pacc == pytest.approx(295 / 400) and s.miou == pytest.approx(1.9 / 4)
    assert [(n, c.split) for n, c in s.classes.items()] == [
        ("cat", "seen"), ("dog", "seen"), ("cow", "unseen"), ("yak", "other")
    ]  # fmt: skip
    # seen=None: everything not unseen is seen.
    assert summarise(counts, unseen=["cow"]).names("seen") == ["cat", "dog", "yak"]
    with pytest.raises(ValueError, match="both seen and unseen"):
        summarise(counts, seen=["cat"], unseen=["cat"])


def test_harmonic_iou_formula_and_edges() -> None:
    assert harmonic_iou(0.6, 0.3) == pytest.approx(0.4)
    assert harmonic_iou(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic_iou(0.0, 0.0) == 0.0
    assert math.isnan(harmonic_iou(0.5, math.nan)) and math.isnan(harmonic_iou(math.nan, 0.5))


def test_merge_table_json_and_shape_errors() -> None:
    a, b = SegCounts(), SegCounts()
    t = box((4, 4), 0, 2, 0, 2)
    a.add("cat", t, t)
    b.add("cat", np.zeros_like(t), t)
    b.add("cow", t, t)
    a.merge(b)
    assert (a.classes["cat"].pairs, a.classes["cat"].intersection, a.classes["cat"].union) == (
        2,
        4,
        8,
    )
    s = summarise(a, unseen=["cow"])
    table = s.table()
    assert "cat" in table and "unseen" in table and "hIoU" in table and " 50.00%" in table
    doc = json.loads(json.dumps(s.as_dict()))
    assert doc["classes"]["cow"] == {"split": "unseen", "pairs": 1, "iou": 1.0, "pacc": 1.0}
    empty = summarise(SegCounts()).as_dict()
    assert empty["miou"] is None and empty["hiou"] is None and empty["pairs"] == 0
    with pytest.raises(ValueError, match="pred of shape"):
        SegCounts().add("cat", np.zeros((3, 4)), t)
    with pytest.raises(ValueError, match=r"must be \(H, W\)"):
        SegCounts().add("cat", np.zeros((4, 4, 3)), t)


# -- the evaluation loop ---------------------------------------------------------------------
def test_evaluate_with_an_oracle_and_a_blank_predictor() -> None:
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(2)]
    masks = [box((20, 30), 2, 10, 3, 20), box((20, 30), 5, 15, 10, 25)]
    sk = ring_sketch()
    samples = [
        SegSample("cat", sk, masks[0], photo=photos[0], sketch_source="cat.json"),
        SegSample("cow", sk, masks[1], photo=photos[1], sketch_source="cow.json"),
    ]
    truth = {id(p): m for p, m in zip(photos, masks, strict=True)}
    ticks: list[tuple[int, int]] = []
    result = evaluate(
        lambda _s, photo: truth[id(photo)],
        samples,
        unseen=["cow"],
        progress=lambda *a: ticks.append(a),
    )
    assert (result.summary.miou_seen, result.summary.miou_unseen, result.summary.hiou) == (1, 1, 1)
    assert ticks == [(1, 0), (2, 0)] and not result.skipped
    assert [(p.sketch, p.class_name, p.iou) for p in result.pairs] == [
        ("cat.json", "cat", 1.0), ("cow.json", "cow", 1.0)
    ]  # fmt: skip
    blank = evaluate(lambda _s, p: np.zeros(p.shape[:2], bool), samples)
    assert blank.summary.miou == 0.0
    assert blank.summary.pacc == pytest.approx(1 - (masks[0].sum() + masks[1].sum()) / 1200)
    with pytest.raises(ValueError, match="predicted mask"):
        evaluate(lambda _s, p: np.zeros((3, 3), bool), samples)


def test_evaluate_loads_each_photo_once_and_skips_bad_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sketchpad.gallery import images

    good = tmp_path / "good.png"
    Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    odd = tmp_path / "odd.png"  # its mask has another size
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(odd)
    loads: list[Path] = []
    real = images.load_photo

    def counting(path: Path, **kw: Any) -> np.ndarray:
        loads.append(Path(path))
        return real(path, **kw)

    monkeypatch.setattr(images, "load_photo", counting)
    m = box((12, 16), 0, 6, 0, 8)
    sk = ring_sketch()
    samples = [
        SegSample("cat", sk, m, photo_path=good),
        SegSample("dog", sk, ~m, photo_path=good),
        SegSample("cat", sk, m, photo_path=bad),
        SegSample("dog", sk, m, photo_path=bad),
        SegSample("cat", sk, m, photo_path=odd),
    ]
    warned: list[str] = []
    result = evaluate(lambda _s, p: m, samples, warn=warned.append)
    assert loads == [good, bad, odd]
    assert result.summary.pairs == 2 and result.summary.classes["cat"].iou == 1.0
    assert len(warned) == 2 and "bad.jpg" in warned[0] and "odd.png" in warned[1]
    assert result.skipped == tuple(warned)


def test_samples_are_validated() -> None:
    sk = ring_sketch()
    with pytest.raises(ValueError, match="photo or photo_path"):
        SegSample("cat", sk, np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="differ"):
        SegSample("cat", sk, np.zeros((4, 4), bool), photo=np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        SegSample("cat", sk, np.zeros((4, 4), bool), photo=np.zeros((4, 4, 3), np.float32))


# -- a Segmenter as the predictor ------------------------------------------------------------
def test_segmenter_predictor_embeds_once_and_queries_once() -> None:
    from sketchpad.search.masks import photo_mask
    from sketchpad.search.scoring import score_query
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.bank import FeatureBank
    from sketchpad.vision.segmenter import Segmenter

    bb = create_backbone("test-clip-tiny", pretrained=False, device="cpu")
    seg = Segmenter(bb, calibration="fixed", tau=0.05)
    calls = {"embed": 0, "query": 0}
    embed, query = seg.embed_photos, seg.sketch_query

    def counting_embed(images: Any, **kw: Any) -> Any:
        calls["embed"] += len(images)
        return embed(images, **kw)

    def counting_query(sketch: Sketch, **kw: Any) -> Any:
        calls["query"] += 1
        return query(sketch, **kw)

    seg.embed_photos, seg.sketch_query = counting_embed, counting_query  # type: ignore[method-assign]
    rng = np.random.default_rng(1)
    photos = [rng.integers(0, 256, hw + (3,), dtype=np.uint8) for hw in [(40, 60), (50, 30)]]
    sketches = [ring_sketch(), ring_sketch(20)]
    predict = seg_eval.segmenter_predictor(seg)
    assert predict.add_photos(photos) == 2 and predict.add_photos(photos) == 0
    masks = [predict(s, p) for p in photos for s in sketches]
    assert calls == {"embed": 2, "query": 2}
    assert [m.shape for m in masks] == [(40, 60)] * 2 + [(50, 30)] * 2
    assert all(m.dtype == bool for m in masks)
    # The same as the segmenter asked directly ('fixed': the bank does not matter).
    bank = FeatureBank(embed([photos[1]]))
    direct = photo_mask(
        [score_query(seg, query(sketches[0]), bank)], bank, 0, threshold=seg.threshold
    ).mask
    np.testing.assert_array_equal(direct, masks[2])
    assert isinstance(predict, SegmenterPredictor)


# -- sketchpad eval segmenter on the real VOC files -------------------------------------------
def write_ring(path: Path, r: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_sketch(ring_sketch(r), path)


@pytest.fixture
def voc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The VOC photos and masks copied next to sketches of their classes (one damaged)."""
    if not (VOC / "JPEGImages").is_dir():  # as tests/vision/test_crf.py: a checkout without it
        pytest.skip(f"VOC data folder {VOC} is missing")
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = tmp_path / "data"
    for part in ("JPEGImages", "SegmentationClass"):
        shutil.copytree(VOC / part, data / part)
    shutil.copy(VOC / "class_names.txt", data / "class_names.txt")
    for cls, n in [("person", 2), ("car", 1), ("bus", 1), ("chair", 1), ("sofa", 1)]:
        for i in range(n):
            write_ring(data / "sketches" / cls / f"s{i}.json", 20 + 10 * i)
    (data / "sketches" / "person" / "zz-broken.json").write_text("{not json")
    (data / "sketches" / "unicorn").mkdir()
    return data


def test_eval_segmenter_end_to_end_on_voc(voc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A photo that cannot be decoded, with its mask: reported by name, the rest goes on.
    (voc / "JPEGImages" / "2011_999999.jpg").write_bytes(b"\xff\xd8\xff truncated")
    masks = voc / "SegmentationClass"
    shutil.copy(masks / "2011_000003.png", masks / "2011_999999.png")
    report = voc.parent / "report.json"
    argv = ["eval", "segmenter", "--data", str(voc), *TINY, "--random-weights",
            "--unseen", "bus", "--json", str(report)]  # fmt: skip
    assert main(argv) == 0
    cap = capsys.readouterr()
    # person: 2 photos × 2 sketches; chair, sofa, bus, car: 1 photo × 1 sketch; bottle has no
    # sketches.
    pairs = {"person": 4, "chair": 1, "sofa": 1, "car": 1, "bus": 1}
    rows = [r for r in map(str.split, cap.out.splitlines()) if r and r[0] in pairs]
    assert {r[0]: (r[1], int(r[2])) for r in rows} == {
        c: ("unseen" if c == "bus" else "seen", n) for c, n in pairs.items()
    }
    assert "mIoU (S)" in cap.out and "mIoU (U)" in cap.out and "hIoU" in cap.out
    assert "unseen classes: bus (--unseen)" in cap.out
    assert "8 pairs" in cap.out
    assert "zz-broken.json" in cap.err and "unicorn" in cap.err and "2011_999999.jpg" in cap.err
    assert "no sketches of bottle" in cap.err and "photos embedded" in cap.err
    doc = json.loads(report.read_text())
    assert doc["unseen"] == ["bus"] and doc["seen"] == ["car", "chair", "person", "sofa"]
    assert doc["pairs"] == 8 and len(doc["pair_scores"]) == 8
    assert doc["calibration"] == "gallery-relative" and doc["backbone"] == "test-clip-tiny"
    assert set(doc["classes"]) == set(pairs)
    for key in ("miou_seen", "miou_unseen", "hiou", "pacc", "pacc_seen", "pacc_unseen"):
        assert doc[key] is None or 0.0 <= doc[key] <= 1.0
    assert len(doc["skipped"]) == 3


def test_eval_segmenter_defaults_to_all_seen_and_sketches_per_class(
    voc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "segmenter", "--data", str(voc), *TINY, "--random-weights",
            "--sketches-per-class", "1"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "every class counts as seen" in out and "6 pairs" in out
    assert "n/a" in out  # no unseen side: mIoU (U) and hIoU are not numbers


def test_eval_segmenter_finds_the_sketchy_unseen_classes(
    voc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A photo of a cow (VOC class 10, one of the Sketchy 21 unseen classes), as a palette PNG.
    mask = np.zeros((40, 50), np.uint8)
    mask[10:30, 10:40] = 10
    mask[0, :] = 255
    png = Image.fromarray(mask, mode="L").convert("P")
    png.save(voc / "SegmentationClass" / "cow1.png")
    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(voc / "JPEGImages" / "cow1.jpg")
    write_ring(voc / "sketches" / "cow" / "c.json", 25)
    assert main(["eval", "segmenter", "--data", str(voc), *TINY, "--random-weights"]) == 0
    out = capsys.readouterr().out
    assert "unseen classes: cow (the Sketchy 21-class unseen split" in out
    assert any(line.split()[:2] == ["cow", "unseen"] for line in out.splitlines())


def test_eval_segmenter_with_a_training_checkpoint(
    voc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sketchpad.train.checkpoint import save_checkpoint
    from sketchpad.vision.backbone import create_backbone

    state = create_backbone("test-clip-tiny", pretrained=False, device="cpu").model.state_dict()
    meta = {"kind": "segmenter", "backbone": "test-clip-tiny", "sketchpad_fine_tuned": True,
            "calibration": "fixed", "tau": 0.08, "step": 3}  # fmt: skip
    paths = save_checkpoint(voc.parent / "ckpt" / "seg", state, meta)
    report = voc.parent / "r.json"
    (voc.parent / "unseen.txt").write_text("car\nunicorn\n")
    argv = ["eval", "segmenter", "--data", str(voc), "--checkpoint", str(paths.weights),
            "--sketches-per-class", "1", "--json", str(report), "--crf",
            "--unseen-file", str(voc.parent / "unseen.txt")]  # fmt: skip
    assert main(argv) == 0
    cap = capsys.readouterr()
    out = cap.out
    assert "fine-tuned" in out and "fixed calibration (tau 0.08), CRF" in out
    assert "unseen classes: car (--unseen-file)" in out
    assert "'unicorn' is not evaluated" in cap.err
    doc = json.loads(report.read_text())
    assert (doc["calibration"], doc["tau"], doc["checkpoint"]) == (
        "fixed",
        0.08,
        str(paths.weights),
    )
    sbir = save_checkpoint(voc.parent / "ckpt" / "critic", state, {**meta, "kind": "sbir"})
    argv = ["eval", "segmenter", "--data", str(voc), "--checkpoint", str(sbir.metadata)]
    assert main(argv) == 1
    assert "not a segmenter checkpoint" in capsys.readouterr().err


def test_eval_segmenter_errors_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d" / "JPEGImages").mkdir(parents=True)
    assert (
        main(["eval", "segmenter", "--data", str(tmp_path / "d"), *TINY, "--random-weights"]) == 1
    )
    err = capsys.readouterr().err
    assert "sketchpad eval: error:" in err and "SegmentationClass" in err and "sketches" in err
    argv = ["eval", "segmenter", "--data", str(tmp_path), "--sketches-per-class", "0"]
    assert main(argv) == 1
    assert "--sketches-per-class" in capsys.readouterr().err
