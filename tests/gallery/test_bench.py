"""``sketchpad bench gallery`` runs end to end on a tiny model and reports every figure."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from sketchpad.cli import main
from sketchpad.gallery import bench_library


def test_bench_gallery_reports_every_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    args = ["bench", "gallery", "--backbones", "test-clip-tiny", "--sizes", "30", "60"]
    args += ["--index-photos", "8", "--naive-photos", "8", "--queries", "3"]
    args += ["--large-sizes", "300", "--large-queries", "2", "--codecs", "q4r", "q8"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test-clip-tiny (random weights)" in out
    assert "throughput ratio" in out and "cache bytes per photo" in out
    assert "ms per photo per query" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("30 ", "60 "))]
    assert [r[0] for r in rows] == ["30", "60"] and all(len(r) == 11 for r in rows)
    assert out.count("speed-up over re-encoding") == 2 and "p95/ref" in out
    assert out.count("of which verifying the rows' checksums") == 2
    assert not list(tmp_path.glob("sketchpad-bench-*"))  # the work folder is removed
    assert not list((tmp_path / "home").rglob("*.sqlite"))  # no cache left in the user's
    large = [
        r for r in map(str.split, out.splitlines()) if r[:1] == ["300"] and r[1] in ("q4r", "q8")
    ]
    assert [r[1] for r in large] == ["q4r", "q8"] and all(len(r) == 19 for r in large)
    assert all(r[10] == "196.0" for r in large)  # the float16 cache kept beside the store
    # memory measured in a process of its own: peak, the model, what the store added
    assert all(r[6].endswith("MiB") and float(r[8]) > 0 for r in large)
    assert "from the exact float16 rows" in out
    assert out.count("store ≤ 64 KiB/photo") == 2 and "recall ≥ 0.95" in out
    assert not list(tmp_path.glob("sketchpad-large-*"))
    # It measured without gradients but gave them back: later training in the same process
    # (the test suite) needs them.
    import torch

    assert torch.is_grad_enabled()


def test_bench_gallery_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "gallery", "--backbones", "nope"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["bench", "gallery", "--sizes", "0"]) == 1
    assert main(["bench", "gallery", "--memory-budget", "lots"]) == 1
    assert main(["bench", "gallery", "--codecs", "q3"]) == 1
    assert main(["bench", "gallery", "--threads", "0"]) == 1


@pytest.mark.slow
def test_bench_library_accounts_for_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The generated real-world folder (without the 108/200 Mpx photos here: the benchmark
    itself has them) through `sketchpad index` in a child process: every photo indexed or
    skipped with its reason, no traceback, peak memory reported."""
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # The folder and the weights are made in a child: a parent's size is carried into its
    # child's peak (ru_maxrss), so the bench process itself must not make them.
    monkeypatch.setattr(bench_library, "prepare", lambda *a: pytest.fail("made in the bench"))
    args = ["bench", "library", "--backbones", "test-clip-tiny", "--small"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "exit status 0" in out, out
    assert "every expected outcome met: PASS" in out, out
    assert "tracebacks: 0 (PASS)" in out
    assert "no_preview.dng: a camera RAW file without an embedded preview" in out
    assert "caf\\xe9 (latin-1).jpg" not in out  # indexed, so not in the skip list
    assert "peak resident memory" in out and "the library's photos add" in out
    assert "this bench process's own peak, the floor of those figures" in out
    assert not list(tmp_path.glob("sketchpad-bench-*"))


def test_large_bench_measures_masks_from_the_exact_rows(tmp_path: Path) -> None:
    """With the fixed calibration (no statistics sample) the product's masks — from the exact
    float16 rows — are the exact method's pixel for pixel; the codes' are not (which shows that
    masks were compared at all)."""
    from sketchpad.gallery.bench_large import large
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.segmenter import Segmenter

    bb = create_backbone("test-clip-tiny", pretrained=False, device="cpu")
    seg = Segmenter(bb, calibration="fixed")
    r = large(seg, 300, tmp_path, queries=2, codec="q5r", exact_max=0, report=lambda _: None)
    assert r.pixel_iou == 1.0 and r.mask_iou == 1.0
    assert r.code_pixel_iou < 1.0
    assert r.cache_bytes_per_photo == 196 * 512 * 2


def test_the_query_process_says_why_it_could_not_be_measured(tmp_path: Path) -> None:
    import numpy as np

    from sketchpad.gallery.bench_large import _query_process_in_child
    from sketchpad.vision.backbone import create_backbone
    from sketchpad.vision.segmenter import Segmenter

    seg = Segmenter(create_backbone("test-clip-tiny", pretrained=False, device="cpu"))
    qs = np.ones((1, seg.backbone.embed_dim), np.float32)
    with pytest.raises(RuntimeError, match="no patch store here"):
        _query_process_in_child(seg, tmp_path / "missing", qs, 1)
