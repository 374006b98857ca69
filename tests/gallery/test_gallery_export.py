"""Gallery exports: mask PNGs, overlays, COCO (read back with pycocotools), the sketch.

The masks come from the real Segmenter on planted features (tests/planted.py): red boxes in
the photos are the concept, so each photo's mask and instances are known.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from planted import SKETCH, PlantedBackbone, photo
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from sketchpad.atomic import SaveError
from sketchpad.gallery import export as E
from sketchpad.gallery.export import (
    ExportOptions,
    GalleryExporter,
    check_out_dir,
    export_gallery,
)
from sketchpad.gallery.export_names import UniqueStems
from sketchpad.search.masks import PhotoMask, photo_mask
from sketchpad.search.scoring import score_query
from sketchpad.sketch.io import read_sketch
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.overlay import GROUP_COLOURS
from sketchpad.vision.segmenter import Segmenter

# name → (size, red boxes XYXY); names with sub-folders, spaces, unicode and colliding stems.
PHOTOS: dict[str, tuple[tuple[int, int], list[tuple[int, int, int, int]]]] = {
    "two.png": ((128, 128), [(0, 0, 32, 32), (64, 64, 128, 128)]),
    "sub dir/é chat 🐈.png": ((128, 128), [(32, 32, 96, 96)]),
    "pair.png": ((64, 128), [(32, 0, 64, 32)]),
    "pair.bmp": ((128, 64), [(0, 64, 32, 128)]),
    "Pair.png": ((128, 128), [(64, 0, 128, 64)]),
    "nothing.png": ((128, 128), []),
    # an L whose box holds another instance: an instance is its label, not its box
    "ell.png": ((128, 128), [(0, 0, 128, 32), (0, 32, 32, 128), (64, 64, 128, 128)]),
}
# pycocotools' decoder under numpy 2 (its own code, harmless)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
QUERY = {"label": "cat", "backbone": "planted", "threshold": 0.5, "crf": False}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))


def segment(
    names: list[str], min_area_frac: float = 0.001
) -> tuple[dict[str, np.ndarray], dict[str, PhotoMask]]:
    """The planted photos of ``names`` and their full-resolution masks from the search core
    (instances smaller than ``min_area_frac`` of the photo are not instances)."""
    import sketchpad.search.masks as masks_module

    seg = Segmenter(PlantedBackbone(fine_tuned=True))
    images = {n: photo(*PHOTOS[n]) for n in names}
    bank = FeatureBank(seg.embed_photos(list(images.values())))
    scores = score_query(seg, seg.sketch_query(SKETCH), bank)
    before, masks_module.MIN_AREA_FRAC = masks_module.MIN_AREA_FRAC, min_area_frac
    try:
        return images, {
            n: photo_mask([scores], bank, i, threshold=seg.threshold) for i, n in enumerate(names)
        }
    finally:
        masks_module.MIN_AREA_FRAC = before


@pytest.fixture(scope="module")
def planted() -> tuple[dict[str, np.ndarray], dict[str, PhotoMask]]:
    return segment(list(PHOTOS))


@pytest.fixture
def folder(tmp_path: Path, planted: tuple) -> Path:
    """The photo folder, written losslessly."""
    images, _ = planted
    root = tmp_path / "photos"
    for name, im in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(root / name)
    return root


def fingerprint(folder: Path) -> str:
    """A hash of everything under ``folder``: names, types, sizes, times and contents."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        h.update(f"{p.relative_to(folder)}|{st.st_mode}|{st.st_size}|{st.st_mtime_ns}".encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def run(folder: Path, out: Path, masks: dict[str, PhotoMask], **opts: object) -> E.ExportSummary:
    return export_gallery(
        out, folder, list(masks.items()), ExportOptions(**opts), query=QUERY, sketch=SKETCH
    )


def test_coco_decodes_to_exactly_the_instance_masks(
    tmp_path: Path, folder: Path, planted: tuple
) -> None:
    _, masks = planted
    summary = run(folder, tmp_path / "out", masks)
    assert summary.annotations == tmp_path / "out" / "annotations.json"
    coco = COCO(str(summary.annotations))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat"]
    by_name = {img["file_name"]: img for img in coco.dataset["images"]}
    assert set(by_name) == set(PHOTOS) - {"nothing.png"}  # only the matches
    for name, img in by_name.items():
        m = masks[name]
        assert (img["height"], img["width"]) == PHOTOS[name][0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        assert len(anns) == len(m.instances) == (2 if name == "ell.png" else len(PHOTOS[name][1]))
        union = np.zeros(m.mask.shape, dtype=bool)
        for ann, inst in zip(anns, m.instances, strict=True):
            expect = m.label_map == inst.label
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), expect)
            np.testing.assert_array_equal(
                coco_mask.decode(ann["segmentation"]).astype(bool), expect
            )
            x0, y0, x1, y1 = inst.box_xyxy
            assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0]
            assert all(isinstance(v, float) for v in ann["bbox"])
            assert ann["bbox"] == list(coco_mask.toBbox(ann["segmentation"]))
            assert ann["area"] == inst.area == expect.sum()
            assert ann["score"] == pytest.approx(m.score, abs=1e-6)  # the photo's score
            assert ann["sketchpad_region_score"] == pytest.approx(inst.score, abs=1e-6)
            assert ann["iscrowd"] == 0 and ann["category_id"] == 1
            union |= expect
        np.testing.assert_array_equal(union, m.mask)  # no specks here: instances cover the mask
    info = coco.dataset["info"]
    assert info["backbone"] == "planted" and info["threshold"] == 0.5
    assert info["query"] == QUERY and info["sketchpad_version"]
    assert summary.instances == sum(len(m.instances) for m in masks.values())


def test_the_png_is_exactly_the_mask_at_full_size(
    tmp_path: Path, folder: Path, planted: tuple
) -> None:
    _, masks = planted
    out = tmp_path / "out"
    run(folder, out, masks, only_matches=False)
    doc = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
    assert len(doc["images"]) == len(PHOTOS)
    for img in doc["images"]:
        png = np.asarray(Image.open(out / img["sketchpad_mask"]))
        assert png.dtype == np.uint8 and set(np.unique(png)) <= {0, 255}
        np.testing.assert_array_equal(png, masks[img["file_name"]].mask.astype(np.uint8) * 255)
    nothing = next(i for i in doc["images"] if i["file_name"] == "nothing.png")
    assert not [a for a in doc["annotations"] if a["image_id"] == nothing["id"]]


def test_specks_below_the_instance_size_are_in_the_png_only(tmp_path: Path, folder: Path) -> None:
    """With a large min_area_frac the small box is in the mask but is no instance: the PNG is
    the whole mask (what the app tints), the COCO file the instances (what it boxes)."""
    _, masks = segment(["two.png"], min_area_frac=0.1)
    m = masks["two.png"]
    assert len(m.instances) == 1 and m.mask.sum() > m.instances[0].area
    out = tmp_path / "out"
    summary = run(folder, out, masks)
    png = np.asarray(Image.open(summary.masks[0]))
    np.testing.assert_array_equal(png > 0, m.mask)
    coco = COCO(str(out / "annotations.json"))
    (ann,) = coco.loadAnns(coco.getAnnIds())
    np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), m.label_map == 1)


def test_overlays_show_the_photo_tinted_in_the_colour(
    tmp_path: Path, folder: Path, planted: tuple
) -> None:
    images, masks = planted
    summary = run(folder, tmp_path / "out", {"two.png": masks["two.png"]}, color=(0, 0, 255))
    (path,) = summary.overlays
    assert path == tmp_path / "out" / "overlays" / "two.jpg"
    ov = np.asarray(Image.open(path)).astype(int)
    assert ov.shape == images["two.png"].shape
    inside = (80, 100)  # in the big red box, away from its outline and box lines
    expect = np.round(0.55 * np.array([255, 0, 0]) + 0.45 * np.array([0, 0, 255]))
    assert np.abs(ov[inside] - expect).max() <= 8
    outside = (100, 20)  # grey background, untouched
    assert np.abs(ov[outside] - images["two.png"][outside]).max() <= 8


def test_composed_masks_keep_their_group_colours(tmp_path: Path, folder: Path) -> None:
    seg = Segmenter(PlantedBackbone(fine_tuned=True))
    bank = FeatureBank(seg.embed_photos([photo(*PHOTOS["two.png"])]))
    strokes = (
        Stroke(np.array([[0.0, 0.0], [10.0, 10.0]])),
        Stroke(np.array([[80.0, 80], [90, 95]])),
    )
    queries = seg.group_queries(Sketch(strokes=strokes, width=100, height=100))
    m = photo_mask([score_query(seg, q, bank) for q in queries], bank, 0, threshold=0.5)
    assert m.group_map is not None and len(queries) == 3
    summary = run(folder, tmp_path / "out", {"two.png": m}, color=(0, 0, 255))
    ov = np.asarray(Image.open(summary.overlays[0])).astype(int)
    group = int(m.group_map[80, 100])
    expect = np.round(0.55 * np.array([255, 0, 0]) + 0.45 * np.array(GROUP_COLOURS[group - 1]))
    assert np.abs(ov[80, 100] - expect).max() <= 8
    assert E.DEFAULT_COLOR == GROUP_COLOURS[0] == ExportOptions().color  # the app's colour


def test_names_keep_folders_are_safe_and_never_collide(
    tmp_path: Path, folder: Path, planted: tuple
) -> None:
    _, masks = planted
    out = tmp_path / "out"
    summary = run(folder, out, masks)
    doc = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
    files = {img["file_name"]: img["sketchpad_mask"] for img in doc["images"]}
    assert files["sub dir/é chat 🐈.png"] == "masks/sub dir/é chat 🐈.png"
    assert files["pair.png"] == "masks/pair.png"
    assert files["pair.bmp"] == "masks/pair-2.png"
    assert files["Pair.png"] == "masks/Pair-3.png"  # a case-insensitive disk would merge them
    assert len(set(files.values())) == len(files) == len(summary.masks)
    for name, rel in files.items():  # each file holds its own photo's mask
        png = np.asarray(Image.open(out / rel))
        np.testing.assert_array_equal(png > 0, masks[name].mask)
    overlays = {p.relative_to(out).as_posix() for p in summary.overlays}
    assert overlays == {f"overlays/{rel[len('masks/') : -4]}.jpg" for rel in files.values()}


@pytest.mark.parametrize(
    ("names", "stems"),
    [
        (["a:b?.jpg", "a|b*.png"], ["a_b_", "a_b_-2"]),
        (["CON.jpg", "nul.tar.png", "console.png"], ["_CON", "_nul.tar", "console"]),
        (["x.png/y.jpg", "x.jpg", "x.png"], ["x.png_/y", "x", "x-2"]),
        (["dots. /a..jpg", "dots/a.jpg"], ["dots/a", "dots/a-2"]),
        (["A/b.jpg", "a/B.jpg", "./c.png"], ["A/b", "a/B-2", "c"]),
        (["é.png", "e\u0301.png"], ["é", "é-2"]),  # NFC and NFD spellings of one name
        (["tab\there.png", "long" + "x" * 300 + ".png"], ["tab_here", "long" + "x" * 196]),
    ],
)
def test_stems_are_safe_everywhere(names: list[str], stems: list[str]) -> None:
    n = UniqueStems()
    assert [str(n.stem_for(name)) for name in names] == stems


@pytest.mark.parametrize("name", ["../x.jpg", "/abs/x.jpg", "a/../../x.jpg", ""])
def test_names_outside_the_folder_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="photo name"):
        UniqueStems().stem_for(name)


@pytest.mark.parametrize("where", ["same", "inside", "deep-new", "via-link", "masks-is-photos"])
def test_an_export_folder_that_writes_into_the_photos_is_refused(
    tmp_path: Path, folder: Path, planted: tuple, where: str
) -> None:
    _, masks = planted
    link = tmp_path / "link"
    link.symlink_to(folder, target_is_directory=True)
    out, photos = {
        "same": (folder, folder),
        "inside": (folder / "sub dir", folder),
        "deep-new": (folder / "new" / "deeper", folder),
        "via-link": (link / "exports", folder),
        "masks-is-photos": (tmp_path, tmp_path / "masks"),
    }[where]
    if where == "masks-is-photos":
        folder.rename(photos)
        folder = photos
    before = fingerprint(folder)
    with pytest.raises(ValueError, match="never writes into photo folders"):
        run(folder, out, masks)
    assert fingerprint(folder) == before
    check_out_dir(tmp_path / "elsewhere", folder)  # a folder beside it is fine


def test_a_photo_that_cannot_be_loaded_is_reported_and_the_rest_exported(
    tmp_path: Path, folder: Path, planted: tuple
) -> None:
    _, masks = planted
    (folder / "pair.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    Image.fromarray(photo((50, 60), [])).save(folder / "Pair.png")  # changed size
    out = tmp_path / "out"
    summary = run(folder, out, masks)
    reasons = {f.name: f.reason for f in summary.failed}
    assert set(reasons) == {"pair.png", "Pair.png"}
    assert "changed since it was indexed" in reasons["Pair.png"]
    assert summary.photos == 4 and summary.unmatched == 1
    doc = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
    assert {i["file_name"] for i in doc["images"]} == {
        "two.png",
        "sub dir/é chat 🐈.png",
        "pair.bmp",
        "ell.png",
    }
    bmp = next(i for i in doc["images"] if i["file_name"] == "pair.bmp")
    assert bmp["sketchpad_mask"] == "masks/pair.png"  # the failed photo claimed no name
    png = np.asarray(Image.open(out / bmp["sketchpad_mask"]))
    np.testing.assert_array_equal(png > 0, masks["pair.bmp"].mask)
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        "ell.png",
        "pair.png",
        "sub dir",
        "two.png",
    ]


def test_without_overlays_no_photo_is_read(
    tmp_path: Path, folder: Path, planted: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, masks = planted

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a photo was decoded")

    monkeypatch.setattr(E, "load_photo", refuse)
    summary = run(folder, tmp_path / "out", masks, overlay=False)
    assert summary.photos == 6 and not summary.overlays and not summary.failed


def test_every_file_is_atomic_and_the_photo_folder_unchanged(
    tmp_path: Path, folder: Path, planted: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, masks = planted
    before = fingerprint(folder)
    out = tmp_path / "out"
    summary = run(folder, out, masks)
    written = {p for p in out.rglob("*") if p.is_file()}
    assert written == {
        *summary.masks,
        *summary.overlays,
        summary.annotations,
        summary.polygons,
        summary.sketch,
    }
    assert fingerprint(folder) == before

    # A failing write leaves no temporary file and keeps the previous annotations.json.
    old = summary.annotations.read_bytes()
    real_replace = os.replace

    def failing(src: str, dst: str) -> None:
        if Path(dst).name == "annotations.json":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr("sketchpad.atomic.os.replace", failing)
    with pytest.raises(SaveError, match="annotations.json: the disk is full"):
        run(folder, out, masks)
    assert {p for p in out.rglob("*") if p.is_file()} == written
    assert summary.annotations.read_bytes() == old
    assert fingerprint(folder) == before


def test_the_sketch_reads_back_equal(tmp_path: Path, folder: Path, planted: tuple) -> None:
    _, masks = planted
    summary = run(folder, tmp_path / "out", masks)
    assert summary.sketch == tmp_path / "out" / "sketch.json"
    assert read_sketch(summary.sketch) == SKETCH
    none = export_gallery(
        tmp_path / "out2", folder, [], ExportOptions(), query={"text": "a cat"}, sketch=None
    )
    assert none.sketch is None and not (tmp_path / "out2" / "sketch.json").exists()
    doc = json.loads(none.annotations.read_text(encoding="utf-8"))
    assert doc["categories"][0]["name"] == "a cat" and doc["images"] == []


def test_options_switch_each_file_off(tmp_path: Path, folder: Path, planted: tuple) -> None:
    _, masks = planted
    out = tmp_path / "out"
    opts = {"binary_png": False, "overlay": False, "coco": False, "sketch": False}
    summary = run(folder, out, masks, **opts)
    assert summary.photos == 6 and summary.instances == 0
    assert not any(out.rglob("*.*"))
    summary = run(folder, out, masks, binary_png=False, sketch=False)
    assert {p.suffix for p in out.rglob("*.*")} == {".jpg", ".json"}
    assert summary.annotations is not None and summary.sketch is None


def test_progress_and_cancel_leave_a_consistent_export(
    tmp_path: Path, folder: Path, planted: tuple
) -> None:
    _, masks = planted
    seen: list[tuple[int, int]] = []
    summary = export_gallery(
        tmp_path / "out",
        folder,
        list(masks.items()),
        ExportOptions(only_matches=False),
        query=QUERY,
        sketch=SKETCH,
        progress=lambda d, t: seen.append((d, t)),
        cancelled=lambda: len(seen) >= 2,
    )
    assert seen == [(1, 7), (2, 7)] and summary.cancelled and summary.photos == 2
    doc = json.loads(summary.annotations.read_text(encoding="utf-8"))
    assert [i["file_name"] for i in doc["images"]] == list(masks)[:2]
    assert len(summary.masks) == 2
    gen = export_gallery(  # a generator has no length: total 0
        tmp_path / "out3",
        folder,
        iter(list(masks.items())[:1]),
        ExportOptions(),
        query=QUERY,
        sketch=None,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[-1] == (1, 0) and gen.photos == 1


def test_a_name_with_undecodable_bytes_is_exported(tmp_path: Path, planted: tuple) -> None:
    """Linux file names are bytes: os.listdir gives undecodable ones as lone surrogates."""
    _, masks = planted
    name = os.fsdecode(b"caf\xe9 photo.png")
    ex = GalleryExporter(tmp_path / "out", tmp_path / "photos", ExportOptions(), query=QUERY)
    assert str(ex.add(name, (128, 128), masks["two.png"])) == "caf_ photo"
    doc = json.loads(ex.finish(None).annotations.read_text(encoding="utf-8"))  # valid UTF-8
    assert os.fsencode(doc["images"][0]["file_name"]) == b"caf\xe9 photo.png"
    assert (tmp_path / "out" / "masks" / "caf_ photo.png").is_file()


def test_bad_input_is_named(tmp_path: Path, folder: Path, planted: tuple) -> None:
    images, masks = planted
    m = masks["two.png"]
    ex = GalleryExporter(tmp_path / "out", folder, ExportOptions(), query=QUERY)
    with pytest.raises(ValueError, match=r"two.png: the mask is 128×128 px but the photo is 64×32"):
        ex.add("two.png", (32, 64), m)
    with pytest.raises(ValueError, match="uint8"):
        ex.add("two.png", (128, 128), m, photo=images["two.png"].astype(np.float32))
    ex.add("two.png", (128, 128), m, photo=images["two.png"])
    with pytest.raises(ValueError, match="already exported"):
        ex.add("two.png", (128, 128), m)
    bad = dataclasses.replace(m, label_map=np.ones_like(m.label_map))
    with pytest.raises(ValueError, match="outside the mask"):
        ex.add("other.png", (128, 128), bad)
    inst = dataclasses.replace(m.instances[0], box_xyxy=(64, 64, 100, 100))  # box too small
    with pytest.raises(ValueError, match="instance 1 has 3997 pixels but"):
        ex.add("third.png", (128, 128), dataclasses.replace(m, instances=(inst,)))
    assert not (tmp_path / "out" / "masks" / "third.png").exists()  # nothing written for it
    with pytest.raises(ValueError, match="cannot be written as JSON"):
        GalleryExporter(tmp_path / "o", folder, ExportOptions(), query={"x": object()})
    with pytest.raises(ValueError, match="color"):
        ExportOptions(color=(0, 0, 256))
