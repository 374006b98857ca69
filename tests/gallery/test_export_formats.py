"""The export formats annotators use, each read back: COCO (RLE and polygons) by pycocotools,
LabelMe JSON by its layout, YOLO segmentation lines and data.yaml; classes named as typed, a
composed query's groups as classes of their own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from planted import COLOUR_GALLERY, TWO_SIDES, ReactiveBackbone, coloured_photo
from pycocotools.coco import COCO

from sketchpad.gallery.annotations import mask_regions, region_polygons
from sketchpad.gallery.export import ExportOptions, export_gallery
from sketchpad.search.core import SearchCore
from sketchpad.search.masks import PhotoMask
from sketchpad.search.spec import QuerySpec
from sketchpad.sketch.geometry import points_in_polygon
from sketchpad.vision.bank import FeatureBank
from sketchpad.vision.segmenter import Segmenter

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
CLASSES = ("scene", "red thing", "green thing")
NAMES = ["red_green.png", "red.png", "green.png", "none.png"]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))


@pytest.fixture
def composed(tmp_path: Path) -> tuple[Path, dict[str, PhotoMask]]:
    """Photos (written to a folder) and their composed-query masks at full size."""
    folder = tmp_path / "photos"
    folder.mkdir()
    seg = Segmenter(ReactiveBackbone(fine_tuned=True))
    images = [coloured_photo((128, 128), COLOUR_GALLERY[n]) for n in NAMES]
    for n, im in zip(NAMES, images, strict=True):
        Image.fromarray(im).save(folder / n)
    bank = FeatureBank(seg.embed_photos(images), names=NAMES)
    core = SearchCore(seg)
    spec = QuerySpec(sketch=TWO_SIDES, compose=True, groups=(("left",), ("right",)))
    result = core.search(spec, bank)
    masks = {n: core.mask(result, bank, i, threshold=0.5) for i, n in enumerate(NAMES)}
    return folder, masks


def fill(polygons: list[list[tuple[float, float]]], hw: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres lie inside any of the polygons (pixel-edge coordinates)."""
    h, w = hw
    ys, xs = np.mgrid[:h, :w]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)
    out = np.zeros(h * w, bool)
    for poly in polygons:
        out |= points_in_polygon(centres, np.asarray(poly, float))
    return out.reshape(h, w)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_regions_split_a_composed_mask_by_group(composed: tuple) -> None:
    _, masks = composed
    regions = mask_regions(masks["red_green.png"])
    assert sorted(r.class_index for r in regions) == [1, 2]  # left group, right group
    left = next(r for r in regions if r.class_index == 1)
    assert left.box_xyxy[2] <= 40 and left.area > 0  # the red object on the left
    whole = np.zeros((128, 128), bool)
    for r in regions:
        whole |= r.pixels
    np.testing.assert_array_equal(whole, masks["red_green.png"].label_map > 0)


def test_polygons_of_a_rectangle_are_its_pixel_corners() -> None:
    px = np.zeros((10, 12), bool)
    px[2:5, 3:8] = True
    (poly,) = region_polygons(px)
    assert sorted(poly) == [(3.0, 2.0), (3.0, 5.0), (8.0, 2.0), (8.0, 5.0)]
    np.testing.assert_array_equal(fill([poly], px.shape), px)


def test_every_format_reads_back(composed: tuple, tmp_path: Path) -> None:
    folder, masks = composed
    out = tmp_path / "export"
    options = ExportOptions(labelme=True, yolo=True, class_names=CLASSES, only_matches=False)
    summary = export_gallery(
        out, folder, list(masks.items()), options, query={"label": "x"}, sketch=TWO_SIDES
    )
    assert summary.photos == len(NAMES) and not summary.failed

    rle, poly = COCO(str(out / "annotations.json")), COCO(str(out / "annotations_polygons.json"))
    assert [c["name"] for c in rle.loadCats(rle.getCatIds())] == list(CLASSES)
    for coco in (rle, poly):
        for img in coco.loadImgs(coco.getImgIds()):
            m = masks[img["file_name"]]
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
            regions = mask_regions(m)
            assert len(anns) == len(regions)
            for ann, region in zip(anns, regions, strict=True):
                assert ann["category_id"] == region.class_index + 1
                got = coco.annToMask(ann).astype(bool)
                if coco is rle:
                    np.testing.assert_array_equal(got, region.pixels)
                else:
                    assert isinstance(ann["segmentation"], list)
                    assert iou(got, region.pixels) > 0.95
            assert img["sketchpad_score"] == round(m.score, 6)
    # red_green: its red half is the left group's class, its green half the right's.
    img = next(i for i in rle.dataset["images"] if i["file_name"] == "red_green.png")
    names = {rle.cats[a["category_id"]]["name"] for a in rle.imgToAnns[img["id"]]}
    assert names == {"red thing", "green thing"}

    for name, m in masks.items():
        stem = Path(name).stem
        doc = json.loads((out / "labelme" / f"{stem}.json").read_text(encoding="utf-8"))
        assert set(doc) >= {"version", "shapes", "imagePath", "imageHeight", "imageWidth"}
        assert (out / "labelme" / doc["imagePath"]).resolve() == (folder / name).resolve()
        assert (doc["imageHeight"], doc["imageWidth"]) == m.mask.shape
        for shape in doc["shapes"]:
            assert shape["shape_type"] == "polygon" and shape["label"] in CLASSES
        drawn = fill([s["points"] for s in doc["shapes"]], m.mask.shape)
        assert iou(drawn, m.label_map > 0) > 0.95 if m.instances else not drawn.any()

        lines = (out / "yolo" / "labels" / f"{stem}.txt").read_text(encoding="utf-8").splitlines()
        polys = []
        for line in lines:
            cls, *vals = line.split()
            assert int(cls) in (1, 2) and len(vals) % 2 == 0 and len(vals) >= 6
            xy = np.asarray(vals, float).reshape(-1, 2)
            assert ((0 <= xy) & (xy <= 1)).all()
            polys.append([(x * 128, y * 128) for x, y in xy])
        assert iou(fill(polys, m.mask.shape), m.label_map > 0) > 0.95 if lines else True
        image = out / "yolo" / "images" / name
        assert image.resolve() == (folder / name).resolve()
    data = yaml.safe_load((out / "yolo" / "data.yaml").read_text(encoding="utf-8"))
    assert data["names"] == dict(enumerate(CLASSES))
    assert (Path(data["path"]) / data["train"]).is_dir()
    assert sorted(p.name for p in folder.iterdir()) == sorted(NAMES)  # the photos untouched


def test_class_names_are_checked() -> None:
    with pytest.raises(ValueError, match="empty"):
        ExportOptions(class_names=("cat", " "))
    with pytest.raises(ValueError, match="twice"):
        ExportOptions(class_names=("cat", "cat"))
