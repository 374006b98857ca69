"""Training-dataset readers on small fixtures written here in the real on-disk layouts:
Sketchy (+ Extended), FS-COCO, FSCOCO-Seg and Quick, Draw!."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketchpad.sketch.model import Sketch
from sketchpad.train.datasets import (
    SKETCHY_UNSEEN_21,
    ClassSplit,
    DatasetError,
    detect_training_layout,
    iter_quickdraw,
    random_class_split,
    read_fscoco,
    read_fscoco_seg,
    read_sketchy,
    read_sketchy_extended,
    split_classes,
)

# ---------------------------------------------------------------- fixtures


def _image(path: Path, value: int = 255, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((size[1], size[0], 3), value, np.uint8)
    a[2:6, 4] = 0  # a line of ink
    Image.fromarray(a).save(path)
    return path


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">{}</svg>'
STROKES = '<path d="M 1 1 L 10 10"/><path d="M 20 20 L 30 5"/>'

#: class folder → ImageNet ids of its photos (two sketches each).
SKETCHY = {
    "airplane": ["n02691156_1", "n02691156_2"],
    "car_(sedan)": ["n02958343_1", "n02958343_2"],
    "hot-air_balloon": ["n02782093_1"],
    "jack-o-lantern": ["n03590841_1"],
}
ALL_SKETCHES = {f"{i}-{k}" for ids in SKETCHY.values() for i in ids for k in (1, 2)}
#: (sketch id, stats.csv Category, ...flags error, ambiguous, pose, context)
STATS_FLAGS = {"n03590841_1-2": ("jack-o-lantern", 0, 0, 1, 0)}  # only stats.csv says so
INVALID_LISTED = {"error": ["n02691156_1-2"], "ambiguous": ["n02958343_1,1"], "pose": []}
DROPPED = ["n02691156_1-2", "n02958343_1-1", "n03590841_1-2"]


def write_sketchy(
    root: Path, *, info: bool = True, svg: bool = False, extended: str | None = None
) -> Path:
    rendered = root / "rendered_256x256" / "256x256"
    for cls, ids in SKETCHY.items():
        for i in ids:
            _image(rendered / "photo" / "tx_000000000000" / cls / f"{i}.jpg", 200)
            _image(rendered / "photo" / "tx_000100000000" / cls / f"{i}.jpg", 100)
            for k in (1, 2):
                _image(rendered / "sketch" / "tx_000000000000" / cls / f"{i}-{k}.png")
                if svg:
                    f = root / "sketches-06-04" / "sketches" / cls / f"{i}-{k}.svg"
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_text(SVG.format(STROKES))
        if svg:
            (root / "sketches-06-04" / "sketches" / cls / "checked.txt").write_text("x\n")
            (root / "sketches-06-04" / "sketches" / cls / "invalid.txt").write_text("")
    if info:
        d = root / "info-06-04" / "info"
        d.mkdir(parents=True)
        rows = [
            "CategoryID,Category,ImageNetID,SketchID,Difficulty,Error?,Context?,Ambiguous?,"
            "WrongPose?,Width,Height"
        ]
        for n, (cls, ids) in enumerate(SKETCHY.items(), start=1):
            for i in ids:
                for k in (1, 2):
                    name, err, amb, pose, ctx = STATS_FLAGS.get(
                        f"{i}-{k}", (cls.replace("_", " "), 0, 0, 0, 0)
                    )
                    rows.append(f'{n},"{name}",{i},{k},2,{err},{ctx},{amb},{pose},640,480')
        (d / "stats.csv").write_text("\r\n".join(rows) + "\r\n")
        for kind, ids in INVALID_LISTED.items():  # no invalid-context.txt
            (d / f"invalid-{kind}.txt").write_text("".join(f"{i}\r\n" for i in ids))
        (d / "testset.txt").write_text("airplane/n02691156_2.jpg\ncar_(sedan)/n02958343_2.jpg\n")
    if extended:
        _image(root / extended / "airplane" / "ext_a.jpg")
        _image(root / extended / "car_(sedan)" / "ext_b.jpg")
    return root


def write_fscoco(root: Path) -> Path:
    """Raw FS-COCO: participants 1 and 2; id 7 is in val_normal.txt."""
    two = np.array([[10, 10, 0], [50, 10, 1], [10, 50, 0], [60, 60, 1]], np.float64)
    for rel in ("1/7", "1/12", "2/30"):
        np.save(_mk(root / "vector_sketches" / f"{rel}.npy"), two)
        _image(root / "raster_sketches" / f"{rel}.jpg")
        _image(root / "images" / f"{rel}.jpg", 120)
        _mk(root / "text" / f"{rel}.txt").write_text(f"caption of {rel}\n")
    (root / "text" / "2" / "30.txt").unlink()  # no caption: reported, left out
    np.save(root / "vector_sketches" / "1" / "12.npy", np.zeros((4, 2)))  # wrong shape
    (_mk(root / "classes" / "1" / "7.json")).write_text(json.dumps(["tree", "dog"]))
    (root / "val_normal.txt").write_text("7\n")
    return root


def write_fscoco_seg(root: Path) -> Path:
    """FSCOCO-Seg: train captions paired by sorted order; a labelled test split."""
    for sub, names in (("p01", ["0001.png", "0002.png"]), ("p02", ["0005.png"])):
        for n, name in enumerate(names):
            _image(root / "train" / "sketches" / sub / name)
            (_mk(root / "train" / "text" / f"t{sub}" / f"cap{n}.txt")).write_text(f"{sub} {n}")
    three = np.array([[0, 0, 0], [5, 5, 1], [9, 9, 1], [20, 20, 0], [30, 30, 2]], np.float64)
    test = root / "test"
    for stem, labels in (("100", ["tree", "dog", "tree"]), ("101", [1, 2, 2])):
        np.save(_mk(test / "vector_sketches" / f"{stem}.npy"), three)
        (_mk(test / "classes" / f"{stem}.json")).write_text(json.dumps(labels))
        (_mk(test / "captions" / f"{stem}.txt")).write_text(f"a scene {stem}")
        _image(test / "images" / f"{stem}.jpg", 90)
    (test / "all_classes.json").write_text(json.dumps(["blank_pixel", "sky", "giraffe"]))
    return root


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _drawing(word: str, key: int, recognized: bool, raw: bool) -> dict[str, object]:
    xs, ys = [0, 40, 80], [0, 30, 0]
    stroke = [xs, ys, [0, 16, 33]] if raw else [xs, ys]
    return {
        "word": word,
        "countrycode": "GB",
        "timestamp": "2017-03-01 00:00:00.0",
        "recognized": recognized,
        "key_id": str(key),
        "drawing": [stroke],
    }


def write_quickdraw(folder: Path) -> Path:
    """cat: raw drawings (3 recognised, 1 not, then a bad line); hot dog: simplified."""
    folder.mkdir(parents=True)
    cat = [_drawing("cat", k, k != 2, raw=True) for k in range(1, 5)]
    lines = [json.dumps(d) for d in cat[:2]] + ["{not json", *map(json.dumps, cat[2:]), ""]
    (folder / "cat.ndjson").write_text("\n".join(lines))
    dog = [_drawing("hot dog", k, True, raw=False) for k in (10, 11)]
    (folder / "hot dog.ndjson").write_text("".join(json.dumps(d) + "\n" for d in dog))
    return folder


# ---------------------------------------------------------------- Sketchy


def test_sketchy_fine_grained_pairs_drop_the_invalid_sketches(tmp_path: Path) -> None:
    root = write_sketchy(tmp_path / "sketchy")
    warnings: list[str] = []
    ds = read_sketchy(root, warn=warnings.append)
    assert ds.categories == ("airplane", "car_(sedan)", "hot-air_balloon", "jack-o-lantern")
    assert len(ds.photos) == 6 and all(
        p.path.parent.parent.name == "tx_000000000000" for p in ds.photos
    )
    assert list(ds.dropped) == DROPPED  # invalid-*.txt (also "id,k" lines) and stats.csv
    assert {s.sketch_id for s in ds.sketches} == ALL_SKETCHES - set(DROPPED)
    pairs = ds.fine_grained_pairs(warn=warnings.append)
    assert len(pairs) == 9 and all(p.fine_grained for p in pairs)
    for p in pairs:
        assert p.photo_path.stem == p.sketch_id.rsplit("-", 1)[0]
        assert p.photo_path.parent.name == p.sketch_path.parent.name == p.category
    assert {p.category for p in pairs} == set(SKETCHY)  # awkward class folders work
    assert warnings == [
        f"{root / 'info-06-04' / 'info'}: no invalid-context.txt; only "
        "stats.csv marks context sketches"
    ]
    sketch, photo = pairs[0].load_sketch(), pairs[0].load_photo()
    assert isinstance(sketch, Sketch) and sketch.is_raster and sketch.raster.max() == 255
    assert photo is not None and photo.shape == (8, 8, 3) and photo.dtype == np.uint8


def test_sketchy_category_pairs_and_the_test_split(tmp_path: Path) -> None:
    ds = read_sketchy(write_sketchy(tmp_path / "s"), warn=lambda _: None)
    pairs = ds.category_pairs(seed=3)
    assert [p.sketch_id for p in pairs] == [s.sketch_id for s in ds.sketches]
    assert all(p.photo_path.parent.name == p.category for p in pairs)
    assert pairs == ds.category_pairs(seed=3)
    seeds = [ds.category_pairs(seed=s) for s in range(8)]
    assert any(not p.fine_grained for ps in seeds for p in ps)  # any photo of the class

    test = ds.split("test")
    assert {p.instance_id for p in test.photos} == {"n02691156_2", "n02958343_2"}
    assert {s.sketch_id for s in test.sketches} == {
        "n02691156_2-1",
        "n02691156_2-2",
        "n02958343_2-1",
        "n02958343_2-2",
    }
    train = ds.split("train")
    assert len(train.photos) == 4 and len(train.sketches) == len(ds.sketches) - 4
    assert all(p.photo_path in {q.path for q in test.photos} for p in test.fine_grained_pairs())
    assert read_sketchy(tmp_path / "s", drop=(), warn=lambda _: None).dropped == ()


def test_sketchy_choice_of_augmentation_folder_and_missing_info(tmp_path: Path) -> None:
    root = write_sketchy(tmp_path / "s", info=False)
    warnings: list[str] = []
    ds = read_sketchy(root / "rendered_256x256", photo_tx="tx_000100000000", warn=warnings.append)
    assert all(p.path.parent.parent.name == "tx_000100000000" for p in ds.photos)
    assert len(ds.sketches) == 12  # nothing dropped
    assert len(warnings) == 1 and "no info-06-04/info folder" in warnings[0]
    with pytest.raises(DatasetError, match="no train/test split"):
        ds.split("test")
    with pytest.raises(
        DatasetError,
        match=r"no augmentation folder tx_000000001110; found "
        r"tx_000000000000, tx_000100000000",
    ):
        read_sketchy(root, photo_tx="tx_000000001110")


def test_sketchy_svg_sketches_report_damaged_files(tmp_path: Path) -> None:
    root = write_sketchy(tmp_path / "s", svg=True)
    svg_dir = root / "sketches-06-04" / "sketches"
    truncated = svg_dir / "airplane" / "n02691156_2-1.svg"
    truncated.write_text(SVG.format(STROKES)[: -len('"/></svg>') - 2])  # no </svg>
    broken = svg_dir / "jack-o-lantern" / "n03590841_1-1.svg"
    broken.write_text("this is not an svg")
    (svg_dir / "airplane" / "notes.svg").write_text(SVG.format(STROKES))  # not <id>-<k>
    warnings: list[str] = []
    ds = read_sketchy(root, sketch_format="svg", warn=warnings.append)
    assert all(s.path.suffix == ".svg" for s in ds.sketches) and len(ds.sketches) == 9
    assert any(str(svg_dir / "airplane" / "notes.svg") in w for w in warnings)
    assert not any("checked.txt" in w or "invalid.txt" in w for w in warnings)  # class notes
    by_id = {s.sketch_id: s for s in ds.sketches}
    good = by_id["n02691156_1-1"].load(warn=warnings.append)
    assert good is not None and len(good.strokes) == 2
    warnings.clear()
    cut = by_id["n02691156_2-1"].load(warn=warnings.append)
    assert cut is not None and len(cut.strokes) >= 1  # read up to the damage …
    assert warnings and all(str(truncated) in w for w in warnings)  # … and reported
    warnings.clear()
    assert by_id["n03590841_1-1"].load(warn=warnings.append) is None
    assert len(warnings) == 1 and str(broken) in warnings[0]


@pytest.mark.parametrize("folder", ["EXTEND_image_sketchy", "extended_photo"])
def test_sketchy_extended_photos_under_both_folder_names(tmp_path: Path, folder: str) -> None:
    root = write_sketchy(tmp_path / "s", extended=folder)
    assert detect_training_layout(root) == "sketchy-extended"
    ds = read_sketchy_extended(root, warn=lambda _: None)
    ext = [p for p in ds.photos if p.extended]
    assert {(p.category, p.instance_id) for p in ext} == {
        ("airplane", "ext_a"),
        ("car_(sedan)", "ext_b"),
    }
    assert all(p.path.parts[-3] == folder for p in ext)
    assert not any(p.photo_id.startswith("ext_") for p in ds.fine_grained_pairs())
    used = {p.photo_id for s in range(20) for p in ds.category_pairs(seed=s)}
    assert {"ext_a", "ext_b"} <= used
    assert not any(p.extended for p in ds.split("test").photos)
    assert {"ext_a", "ext_b"} <= {p.instance_id for p in ds.split("train").photos}
    without = read_sketchy(root, warn=lambda _: None)
    assert not any(p.extended for p in without.photos)


def test_sketchy_extended_needs_its_folder(tmp_path: Path) -> None:
    root = write_sketchy(tmp_path / "s")
    assert detect_training_layout(root) == "sketchy"
    with pytest.raises(DatasetError, match="EXTEND_image_sketchy or extended_photo"):
        read_sketchy_extended(root, warn=lambda _: None)


def test_unseen_split_of_21_classes() -> None:
    assert len(SKETCHY_UNSEEN_21) == 21 and len(set(SKETCHY_UNSEEN_21)) == 21
    assert {"bat", "songbird", "wheelchair", "window"} <= set(SKETCHY_UNSEEN_21)
    others = ["airplane", "car_(sedan)", "hot-air_balloon", "jack-o-lantern", "zebra"]
    classes = sorted(others + list(SKETCHY_UNSEEN_21))
    split = split_classes(classes)
    assert set(split.unseen) == set(SKETCHY_UNSEEN_21)
    assert set(split.seen) == set(others) and not set(split.seen) & set(split.unseen)
    warnings: list[str] = []
    partial = split_classes(["bat", "zebra", "Tree"], warn=warnings.append)
    assert partial.unseen == ("bat", "Tree") and partial.seen == ("zebra",)
    assert len(warnings) == 1 and "cabin" in warnings[0] and "bat" not in warnings[0]
    spelled = split_classes(["hot-air_balloon", "cow"], unseen=["Hot air balloon"])
    assert spelled == ClassSplit(seen=("cow",), unseen=("hot-air_balloon",))

    rnd = random_class_split(classes, 5, seed=7)
    assert len(rnd.unseen) == 5 and len(rnd.seen) == len(classes) - 5
    assert set(rnd.seen) | set(rnd.unseen) == set(classes) and not set(rnd.seen) & set(rnd.unseen)
    assert rnd == random_class_split(classes, 5, seed=7)
    assert len({random_class_split(classes, 5, seed=s).unseen for s in range(5)}) > 1
    with pytest.raises(ValueError, match="between 0 and 26"):
        random_class_split(classes, 27)


# ---------------------------------------------------------------- FS-COCO


def test_fscoco_captioned_sketches_and_the_val_split(tmp_path: Path) -> None:
    root = write_fscoco(tmp_path / "data" / "fscoco")
    assert detect_training_layout(tmp_path / "data") == "fscoco"
    warnings: list[str] = []
    samples = read_fscoco(tmp_path / "data", warn=warnings.append)
    assert [(s.group, s.instance_id) for s in samples] == [("1", "7"), ("1", "12")]
    s7 = samples[0]
    assert s7.caption == "caption of 1/7" and s7.source == "fscoco"
    assert s7.sketch_path == root / "vector_sketches" / "1" / "7.npy"
    assert s7.photo_path == root / "images" / "1" / "7.jpg"
    assert s7.raster_path == root / "raster_sketches" / "1" / "7.jpg"
    assert len(warnings) == 1 and str(root / "text" / "2" / "30.txt") in warnings[0]

    sketch = s7.load_sketch()
    assert sketch is not None and len(sketch.strokes) == 2
    labelled = s7.load_labelled()
    assert labelled is not None and labelled.labels == ("tree", "dog")
    assert labelled.stroke_labels.tolist() == [0, 1]
    photo = s7.load_photo()
    assert photo is not None and photo.shape == (8, 8, 3)
    warnings.clear()
    assert samples[1].load_sketch(warn=warnings.append) is None  # (4, 2) array
    assert len(warnings) == 1 and "12.npy" in warnings[0] and "(N, 3)" in warnings[0]
    assert samples[1].load_labelled(warn=warnings.append) is None  # has no labels

    val = read_fscoco(root, split="val", warn=lambda _: None)
    train = read_fscoco(root, split="train", warn=lambda _: None)
    assert [s.instance_id for s in val] == ["7"] and [s.instance_id for s in train] == ["12"]
    (root / "val_normal.txt").unlink()
    with pytest.raises(DatasetError, match="no validation list"):
        read_fscoco(root, split="val")


def test_fscoco_seg_captions_and_per_stroke_labels(tmp_path: Path) -> None:
    root = write_fscoco_seg(tmp_path / "fscoco-seg")
    assert detect_training_layout(root) == "fscoco-seg"
    warnings: list[str] = []
    samples = read_fscoco_seg(root, warn=warnings.append)
    train = [s for s in samples if s.source == "fscoco-seg/train"]
    test = [s for s in samples if s.source == "fscoco-seg/test"]
    # paired by sorted order: sub-folders p01 ↔ tp01, files 0001.png ↔ cap0.txt …
    assert [(s.sketch_path.name, s.caption) for s in train] == [
        ("0001.png", "p01 0"),
        ("0002.png", "p01 1"),
        ("0005.png", "p02 0"),
    ]
    assert all(s.photo_path is None and not s.has_stroke_labels for s in train)
    assert [(s.instance_id, s.caption) for s in test] == [
        ("100", "a scene 100"),
        ("101", "a scene 101"),
    ]
    assert all(s.photo_path is not None and s.photo_path.stem == s.instance_id for s in test)
    assert warnings == []
    a, b = (s.load_labelled() for s in test)
    assert a is not None and a.labels == ("tree", "dog") and a.stroke_labels.tolist() == [0, 1, 0]
    assert (
        b is not None and b.labels == ("sky", "giraffe") and b.stroke_labels.tolist() == [0, 1, 1]
    )
    assert [s.source for s in read_fscoco_seg(root, split="test")] == ["fscoco-seg/test"] * 2
    assert len(read_fscoco_seg(root / "train")) == 3  # a split folder on its own

    (root / "test" / "classes" / "101.json").write_text("[1, 2]")  # 3 strokes, 2 labels
    warnings.clear()
    assert read_fscoco_seg(root, split="test")[1].load_labelled(warn=warnings.append) is None
    assert len(warnings) == 1 and "101.npy" in warnings[0] and "2 labels" in warnings[0]
    with pytest.raises(DatasetError, match="named 'val'"):
        read_fscoco_seg(root, split="val")


# ---------------------------------------------------------------- Quick, Draw!


def test_quickdraw_raw_and_simplified_streamed(tmp_path: Path) -> None:
    folder = write_quickdraw(tmp_path / "qd")
    assert detect_training_layout(folder) == "quickdraw"
    assert detect_training_layout(folder / "cat.ndjson") == "quickdraw"
    warnings: list[str] = []
    samples = list(iter_quickdraw(folder, warn=warnings.append))
    assert [(s.category, s.key_id, s.is_raw) for s in samples] == [
        ("cat", "1", True), ("cat", "2", True), ("cat", "3", True), ("cat", "4", True),
        ("hot dog", "10", False), ("hot dog", "11", False),
    ]  # fmt: skip
    assert samples[0].countrycode == "GB" and samples[1].recognized is False
    assert samples[0].sketch.strokes[0].times.tolist() == [0, 16, 33]
    assert samples[4].sketch.width == 256  # the simplified canvas
    assert samples[2].source == f"{folder / 'cat.ndjson'}#4"
    assert len(warnings) == 1 and "cat.ndjson" in warnings[0] and "line 3" in warnings[0]

    recognized = list(iter_quickdraw(folder, recognized_only=True, warn=lambda _: None))
    assert [s.key_id for s in recognized] == ["1", "3", "4", "10", "11"]
    warnings.clear()
    limited = list(iter_quickdraw(folder, limit_per_class=2, warn=warnings.append))
    assert [s.key_id for s in limited] == ["1", "2", "10", "11"]
    assert warnings == []  # the bad line 3 was never read: the file stopped at the limit
    only = list(iter_quickdraw(folder, categories=["hot_dog"], limit_per_class=1))
    assert [s.key_id for s in only] == ["10"]
    first = next(iter_quickdraw(folder / "cat.ndjson"))
    assert first.key_id == "1"


# ---------------------------------------------------------------- bad files, layouts


def test_damaged_photos_and_sketches_are_reported_by_name(tmp_path: Path) -> None:
    root = write_sketchy(tmp_path / "s")
    ds = read_sketchy(root, warn=lambda _: None)
    pair = ds.fine_grained_pairs()[0]
    _truncate(pair.photo_path)
    _truncate(pair.sketch_path)
    warnings: list[str] = []
    assert pair.load_photo(warn=warnings.append) is None
    assert pair.load_sketch(warn=warnings.append) is None
    assert len(warnings) == 2
    assert str(pair.photo_path) in warnings[0] and str(pair.sketch_path) in warnings[1]
    assert ds.fine_grained_pairs()[1].load_photo() is not None  # the rest goes on


def test_wrong_folders_raise_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"photos: not a training dataset folder\. Expected"):
        detect_training_layout(tmp_path / "photos")
    with pytest.raises(DatasetError, match=r"photos: not a Sketchy folder: expected rendered"):
        read_sketchy(tmp_path / "photos")
    with pytest.raises(DatasetError, match=r"photos: not an FS-COCO folder"):
        read_fscoco(tmp_path / "photos")
    with pytest.raises(DatasetError, match=r"photos: no FSCOCO-Seg split folder"):
        read_fscoco_seg(tmp_path / "photos")
    with pytest.raises(DatasetError, match=r"photos: not a Quick, Draw! folder"):
        list(iter_quickdraw(tmp_path / "photos"))
    with pytest.raises(DatasetError, match="missing: not a folder"):
        detect_training_layout(tmp_path / "missing")
