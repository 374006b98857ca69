"""Exports of a gallery's masks: mask PNGs, overlays, COCO, LabelMe, YOLO, the sketch.

- ``masks/<stem>.png``: 0/255 at the photo's full size, exactly ``PhotoMask.mask`` (what the
  app tints).
- ``overlays/<stem>.jpg``: the photo with the mask tinted, its outline and the instance boxes.
- ``annotations.json``: COCO, a category per class, one image per photo (``file_name``: its
  path relative to the photo folder; ``sketchpad_mask``/``sketchpad_overlay``: its files) and
  one annotation per *region* (an instance, ``label_map == k``, what the app draws boxes
  around; for a composed query its part in each stroke group): RLE
  from pycocotools (the format's reference encoder), area, box XYWH, ``iscrowd`` 0, ``score``
  (the photo's score, :mod:`sketchpad.search.scoring`; ``sketchpad_region_score`` is the
  region's own mean probability).
  Components smaller than the segmenter's ``min_area_frac`` are not instances: they are in
  the PNG and in no annotation. ``info`` records the app version and the query's options.
- ``annotations_polygons.json``: the same COCO document with polygons instead of RLE (what
  most training code reads; holes are lost there, kept in the RLE and the PNG).
- ``labelme/<stem>.json``: per photo, LabelMe's own layout (a polygon per region boundary,
  ``imagePath`` relative to the file).
- ``yolo/``: ``labels/<stem>.txt`` (YOLO segmentation lines), ``images/<stem>.<ext>`` (links to
  the photos, never copies unless links are impossible) and ``data.yaml``.
- ``sketch.json``: the sketch, in Sketchpad's own format.

Classes: the user's names (``ExportOptions.class_names``), else the query's words or "sketch";
a composed query's stroke groups are classes of their own (class 0 the whole sketch).

File names: :mod:`sketchpad.gallery.export_names` (safe on every file system, unique).

Every file is written atomically; the photo folder is never written to: an export folder
inside it, or one whose ``masks/`` or ``overlays/`` would be it, is refused.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from sketchpad import __version__
from sketchpad.atomic import SaveError, atomic_write_bytes
from sketchpad.gallery.annotations import (
    Region,
    coco_polygon_segmentation,
    labelme_document,
    mask_regions,
    yolo_data_yaml,
    yolo_lines,
)
from sketchpad.gallery.export_names import (
    MASKS_DIR,
    OVERLAYS_DIR,
    UniqueStems,
    check_out_dir,
    jpeg_bytes,
    png_bytes,
)
from sketchpad.gallery.images import PhotoError, load_photo
from sketchpad.sketch.io import write_sketch
from sketchpad.sketch.model import Sketch

if TYPE_CHECKING:
    from sketchpad.search.masks import PhotoMask

log = logging.getLogger(__name__)

__all__ = [
    "ANNOTATIONS_NAME",
    "DEFAULT_COLOR",
    "MASKS_DIR",
    "OVERLAYS_DIR",
    "SKETCH_NAME",
    "ExportFailure",
    "ExportOptions",
    "ExportSummary",
    "GalleryExporter",
    "category_name",
    "check_out_dir",
    "export_gallery",
    "jpeg_bytes",
    "png_bytes",
]

#: Names inside the export folder.
ANNOTATIONS_NAME = "annotations.json"
SKETCH_NAME = "sketch.json"
#: Opacity of the mask's tint in the overlays (as the app's previews).
TINT_ALPHA = 0.45
#: Sub-folders of the LabelMe and YOLO exports.
LABELME_DIR = "labelme"
YOLO_DIR = "yolo"
POLYGONS_NAME = "annotations_polygons.json"
#: Default tint: ``sketchpad.vision.overlay.GROUP_COLOURS[0]``, the app's mask colour (not
#: imported: OpenCV would load with this module, which the export dialog imports).
DEFAULT_COLOR = (255, 64, 64)


@dataclass(frozen=True)
class ExportOptions:
    """What an export writes.

    Attributes:
        binary_png: ``masks/<stem>.png``, 0/255 at the photo's size.
        overlay: ``overlays/<stem>.jpg``, the photo with the mask and boxes (needs its pixels).
        coco: ``annotations.json`` with RLE masks, boxes and scores.
        sketch: ``sketch.json`` (when there is a sketch).
        coco_polygons: ``annotations_polygons.json`` too (needs ``coco``).
        labelme: per-photo LabelMe JSON files.
        yolo: YOLO segmentation labels, image links and ``data.yaml``.
        sketch: ``sketch.json`` (when there is a sketch).
        only_matches: leave out photos that do not match (score below the threshold: what the
            gallery's filter hides).
        color: RGB tint of the mask in the overlays (composed queries use one colour per
            stroke group, as the app does).
        class_names: the classes' names, typed by the user (class 0 first; a composed query's
            groups after it); empty: the query's words, else "sketch", and "group k".
        accepted_only: only photos the user accepted in review (rejected photos are never
            exported; :meth:`sketchpad.gallery.review.FolderReview.export_names` applies both).
    """

    binary_png: bool = True
    overlay: bool = True
    coco: bool = True
    coco_polygons: bool = True
    labelme: bool = False
    yolo: bool = False
    sketch: bool = True
    only_matches: bool = True
    color: tuple[int, int, int] = DEFAULT_COLOR
    class_names: tuple[str, ...] = ()
    accepted_only: bool = False

    def __post_init__(self) -> None:
        rgb = tuple(self.color)
        if len(rgb) != 3 or not all(isinstance(c, int | np.integer) and 0 <= c <= 255 for c in rgb):
            raise ValueError(f"ExportOptions.color must be three ints in 0–255, got {self.color!r}")
        object.__setattr__(self, "color", tuple(int(c) for c in rgb))
        names = tuple(str(n).strip() for n in self.class_names)
        if any(not n for n in names):
            raise ValueError("ExportOptions.class_names: a class name is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"ExportOptions.class_names: a name is given twice: {list(names)}")
        object.__setattr__(self, "class_names", names)


@dataclass(frozen=True)
class ExportFailure:
    """A photo that was not exported.

    Attributes:
        name: its name relative to the photo folder.
        reason: why, in words.
    """

    name: str
    reason: str


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote.

    Attributes:
        out_dir: the export folder.
        photos: photos exported (their files written, an image in the COCO file).
        instances: COCO annotations written (0 without ``coco``).
        unmatched: photos left out by ``only_matches``.
        masks: the mask PNGs written, in order.
        overlays: the overlays written, in order.
        annotations: the COCO file, or None.
        polygons: the COCO file with polygons, or None.
        labelme: the LabelMe files written, in order.
        yolo: the YOLO folder (``data.yaml``, ``labels/``, ``images/``), or None.
        sketch: the sketch file, or None.
        failed: photos that could not be exported, with the reason.
        cancelled: the export was cancelled (what was written so far is consistent: the COCO
            file lists exactly the photos whose files were written).
    """

    out_dir: Path
    photos: int
    instances: int
    unmatched: int
    masks: tuple[Path, ...] = ()
    overlays: tuple[Path, ...] = ()
    annotations: Path | None = None
    polygons: Path | None = None
    labelme: tuple[Path, ...] = ()
    yolo: Path | None = None
    sketch: Path | None = None
    failed: tuple[ExportFailure, ...] = ()
    cancelled: bool = False


# -- masks → COCO -----------------------------------------------------------------------------
def _check_mask(name: str, photo_hw: tuple[int, int], mask: PhotoMask) -> None:
    hw = tuple(int(v) for v in photo_hw)
    if mask.mask.shape != hw or mask.label_map.shape != hw:
        raise ValueError(
            f"{name}: the mask is {mask.mask.shape[1]}×{mask.mask.shape[0]} px but the photo is "
            f"{hw[1]}×{hw[0]}; exports need masks at the photo's full size"
        )
    if mask.mask.dtype != np.bool_:
        raise ValueError(f"{name}: PhotoMask.mask must be bool, got {mask.mask.dtype}")
    if np.any((mask.label_map > 0) & ~mask.mask):
        raise ValueError(f"{name}: the instances' label map reaches outside the mask")


def _region_annotations(
    mask: PhotoMask, regions: Sequence[Region], image_id: int, first_id: int
) -> list[dict[str, Any]]:
    """One COCO annotation per region (an instance, or its part of one stroke group), RLE
    from pycocotools; its ``sketchpad_polygons`` are the polygon form (written to the
    polygons file)."""
    from pycocotools import mask as coco_mask

    out = []
    for j, region in enumerate(regions):
        rle = coco_mask.encode(np.asfortranarray(region.pixels.astype(np.uint8)))
        area = int(coco_mask.area(rle))
        if area != region.area:
            raise ValueError(f"region {j}: {region.area} pixels, but its RLE has {area}")
        x0, y0, x1, y1 = region.box_xyxy
        h, w = region.pixels.shape
        out.append(
            {
                "id": first_id + j,
                "image_id": image_id,
                "category_id": region.class_index + 1,
                "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                "area": float(area),
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "iscrowd": 0,
                # the photo's score, as the gallery and the large view show it; the region's
                # own mean probability beside it
                "score": round(float(mask.score), 6),
                "sketchpad_region_score": round(float(region.score), 6),
            }
        )
    return out


def _tinted_overlay(photo: np.ndarray, mask: PhotoMask, color: tuple[int, int, int]) -> np.ndarray:
    """(H, W, 3) uint8: the photo, the mask tinted (``color``, or per group for composed
    queries), its outline and the instance boxes."""
    from sketchpad.vision.overlay import overlay_mask

    if mask.group_map is not None:
        return overlay_mask(photo, mask.mask, mask.instances, group_map=mask.group_map)
    base = photo.copy()
    sel = mask.mask
    tint = np.asarray(color, dtype=np.float32)
    base[sel] = np.round((1 - TINT_ALPHA) * photo[sel] + TINT_ALPHA * tint).astype(np.uint8)
    return overlay_mask(base, mask.mask, mask.instances, alpha=0.0)


def _lines(lines: Sequence[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _json_value(v: object) -> object:
    if isinstance(v, PurePath):
        return str(v)
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON-serialisable")


def _json_bytes(doc: Mapping[str, Any]) -> bytes:
    text = json.dumps(doc, ensure_ascii=False, default=_json_value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a file name with undecodable bytes: escape everything
        return json.dumps(doc, ensure_ascii=True, default=_json_value).encode("ascii")


def category_name(query: Mapping[str, Any]) -> str:
    """The COCO category of a query: ``query["label"]``, else its ``"text"``, else "sketch"."""
    for key in ("label", "text"):
        v = query.get(key)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return "sketch"


class GalleryExporter:
    """Writes an export photo by photo (:meth:`add`), then the COCO file (:meth:`finish`).

    Args:
        out_dir: the export folder (created if needed).
        photo_folder: the folder the photos' names are relative to (only read); several
            folders when the photos come from several (``sketchpad segment``): none of them
            may receive the export.
        options: what to write.
        query: the query's options, recorded in the COCO ``info`` (JSON-serialisable; Paths,
            tuples and numpy scalars are converted). Recognised keys: ``label`` (the
            category's name; default the ``text``, else "sketch"), ``backbone``,
            ``threshold``.

    Raises:
        ValueError: ``out_dir`` would write into the photo folder, or ``query`` cannot be
            written as JSON.
    """

    def __init__(
        self,
        out_dir: Path,
        photo_folder: Path | Sequence[Path],
        options: ExportOptions,
        *,
        query: Mapping[str, Any],
    ) -> None:
        self.out_dir = Path(out_dir)
        folders = [photo_folder] if isinstance(photo_folder, (str, os.PathLike)) else photo_folder
        self.photo_folders = [Path(f) for f in folders]
        if not self.photo_folders:
            raise ValueError("an export needs the photo folder(s) it reads from")
        self.photo_folder = self.photo_folders[0]
        self.options = options
        for folder in self.photo_folders:
            check_out_dir(self.out_dir, folder)
        self.query = dict(query)
        try:
            json.dumps(self.query, default=_json_value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"the query options cannot be written as JSON: {e}") from e
        self._names = UniqueStems()
        self._seen: set[str] = set()
        self._images: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []
        self._polygons: list[list[list[float]]] = []  # per annotation, for the polygons file
        self._labelme: list[Path] = []
        self._classes = list(options.class_names) or [category_name(self.query)]
        self._masks: list[Path] = []
        self._overlays: list[Path] = []
        self._unmatched = 0
        self._made: set[Path] = set()

    def wants(self, mask: PhotoMask) -> bool:
        """Whether ``add`` would export a photo with this mask (``only_matches``: its score
        reaches the threshold the mask was cut at, as the gallery counts matches; a mask the
        user corrected is always wanted)."""
        return mask.corrected or mask.score >= mask.threshold or not self.options.only_matches

    def add(
        self,
        name: str,
        photo_hw: tuple[int, int],
        mask: PhotoMask,
        *,
        photo: np.ndarray | None = None,
        photo_path: Path | None = None,
    ) -> PurePosixPath | None:
        """Export one photo's files and remember its COCO entries.

        Args:
            name: the photo's path relative to the photo folder (sub-folders allowed).
            photo_hw: (H, W) of the photo, in pixels.
            mask: its mask at (H, W) (full resolution).
            photo: (H, W, 3) uint8 RGB, for the overlay; None writes no overlay.
            photo_path: the photo's file (LabelMe's ``imagePath``, YOLO's image link);
                default ``photo_folder / name``.

        Returns:
            The export stem (``masks/<stem>.png``), or None when ``only_matches`` left the
            photo out.

        Raises:
            ValueError: a name given twice or outside the folder, a mask or photo not at
                ``photo_hw``.
            sketchpad.atomic.SaveError: a file could not be written.
        """
        if name in self._seen:
            raise ValueError(f"photo {name!r} was already exported")
        _check_mask(name, photo_hw, mask)
        if photo is not None and (photo.dtype != np.uint8 or photo.shape != (*mask.mask.shape, 3)):
            raise ValueError(
                f"{name}: the photo must be (H, W, 3) uint8 at {tuple(mask.mask.shape)}, "
                f"got {photo.shape} {photo.dtype}"
            )
        if not self.wants(mask):
            self._unmatched += 1
            return None
        stem = self._names.stem_for(name)
        self._seen.add(name)
        h, w = (int(v) for v in mask.mask.shape)
        image: dict[str, Any] = {"id": len(self._images) + 1, "width": w, "height": h}
        image["file_name"] = PurePath(name).as_posix()
        first = len(self._annotations) + 1  # annotations first: a bad mask writes nothing
        regions = mask_regions(mask)
        for region in regions:
            while region.class_index >= len(self._classes):
                self._classes.append(f"group {len(self._classes)}")
        anns = _region_annotations(mask, regions, image["id"], first)
        polygons = [coco_polygon_segmentation(r.pixels) for r in regions]
        source = photo_path if photo_path is not None else self.photo_folder / name
        if self.options.binary_png:
            path = self._write(MASKS_DIR, stem, ".png", png_bytes(mask.mask.astype(np.uint8) * 255))
            self._masks.append(path)
            image["sketchpad_mask"] = path.relative_to(self.out_dir).as_posix()
        if self.options.overlay and photo is not None:
            preview = jpeg_bytes(_tinted_overlay(photo, mask, self.options.color))
            path = self._write(OVERLAYS_DIR, stem, ".jpg", preview)
            self._overlays.append(path)
            image["sketchpad_overlay"] = path.relative_to(self.out_dir).as_posix()
        if self.options.labelme:
            json_path = self.out_dir / LABELME_DIR / stem.parent / (stem.name + ".json")
            rel = os.path.relpath(source, json_path.parent)
            doc = labelme_document(
                Path(rel).as_posix(), (h, w), regions, self._classes, score=mask.score
            )
            self._labelme.append(self._write(LABELME_DIR, stem, ".json", _json_bytes(doc)))
        if self.options.yolo:
            self._write(YOLO_DIR + "/labels", stem, ".txt", _lines(yolo_lines(regions, (h, w))))
            self._link_image(source, stem)
        self._annotations += anns
        self._polygons += polygons
        image["sketchpad_score"] = round(float(mask.score), 6)
        image["sketchpad_refined"] = bool(mask.refined)
        image["sketchpad_corrected"] = bool(mask.corrected)
        self._images.append(image)
        return stem

    def finish(self, sketch: Sketch | None, *, cancelled: bool = False) -> ExportSummary:
        """Write the COCO file and the sketch (as the options say).

        Args:
            sketch: the query's sketch; None (a text query) writes none.
            cancelled: recorded in the summary (the COCO file lists the photos added).

        Raises:
            sketchpad.atomic.SaveError: a file could not be written.
        """
        annotations = sketch_path = polygons = yolo = None
        self._mkdir(self.out_dir)
        if self.options.coco:
            annotations = self.out_dir / ANNOTATIONS_NAME
            doc = self.coco()
            atomic_write_bytes(annotations, _json_bytes(doc))
            if self.options.coco_polygons:
                for ann, poly in zip(doc["annotations"], self._polygons, strict=True):
                    ann["segmentation"] = poly
                polygons = self.out_dir / POLYGONS_NAME
                atomic_write_bytes(polygons, _json_bytes(doc))
        if self.options.yolo:
            yolo = self.out_dir / YOLO_DIR
            self._mkdir(yolo)
            yaml = yolo_data_yaml(yolo, self._classes)
            atomic_write_bytes(yolo / "data.yaml", yaml.encode("utf-8"))
        if self.options.sketch and sketch is not None:
            sketch_path = self.out_dir / SKETCH_NAME
            write_sketch(sketch, sketch_path)
        summary = ExportSummary(
            out_dir=self.out_dir,
            photos=len(self._images),
            instances=len(self._annotations) if self.options.coco else 0,
            unmatched=self._unmatched,
            masks=tuple(self._masks),
            overlays=tuple(self._overlays),
            annotations=annotations,
            polygons=polygons,
            labelme=tuple(self._labelme),
            yolo=yolo,
            sketch=sketch_path,
            cancelled=cancelled,
        )
        log.info("exported %d photos to %s", summary.photos, self.out_dir)
        return summary

    def coco(self) -> dict[str, Any]:
        """The COCO document of the photos added so far."""
        now = datetime.now(timezone.utc)
        label = category_name(self.query)
        info = {
            "description": f"Sketchpad export: masks of “{label}” in {self.photo_folder.name}",
            "version": __version__,
            "year": now.year,
            "contributor": "Sketchpad",
            "date_created": now.isoformat(timespec="seconds"),
            "sketchpad_version": __version__,
            "backbone": self.query.get("backbone"),
            "threshold": self.query.get("threshold"),
            "query": self.query,
            "export": asdict(self.options),
            "photo_folder": str(self.photo_folder),
            "photo_folders": [str(f) for f in self.photo_folders],
        }
        return {
            "info": info,
            "licenses": [],
            "images": list(self._images),
            "annotations": [dict(a) for a in self._annotations] if self.options.coco else [],
            "categories": [
                {"id": k + 1, "name": name, "supercategory": "sketch"}
                for k, name in enumerate(self._classes)
            ],
        }

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes written so far (class 0 first)."""
        return tuple(self._classes)

    def _link_image(self, source: Path, stem: PurePosixPath) -> None:
        """``yolo/images/<stem><ext>`` → the photo: a symbolic link, else a hard link, else a
        copy (a YOLO trainer finds labels by replacing ``images`` with ``labels``)."""
        import shutil

        target = self.out_dir / YOLO_DIR / "images" / stem.parent / (stem.name + source.suffix)
        self._mkdir(target.parent)
        if target.is_symlink() or target.exists():
            target.unlink()
        try:
            target.symlink_to(Path(source).resolve())
        except OSError:
            try:
                os.link(source, target)
            except OSError:
                try:
                    shutil.copyfile(source, target)
                except OSError as e:
                    raise SaveError(target, f"cannot link or copy the photo ({e})") from e

    def _write(self, sub: str, stem: PurePosixPath, suffix: str, data: bytes) -> Path:
        path = self.out_dir / sub / stem.parent / (stem.name + suffix)
        self._mkdir(path.parent)
        atomic_write_bytes(path, data)
        return path

    def _mkdir(self, folder: Path) -> None:
        if folder in self._made:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SaveError(folder, f"cannot create the folder ({e.strerror or e})") from e
        self._made.add(folder)


def export_gallery(
    out_dir: Path,
    photo_folder: Path,
    items: Iterable[tuple[str, PhotoMask]],
    options: ExportOptions,
    *,
    query: Mapping[str, Any],
    sketch: Sketch | None,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ExportSummary:
    """Export every photo of ``items`` (run it off the GUI thread: it decodes and encodes).

    Photos are decoded (:func:`sketchpad.gallery.images.load_photo`) only for overlays; one
    that cannot be decoded, or whose size is no longer its mask's, is reported in ``failed``
    and left out; the others go on. ``out_dir``, ``photo_folder``, ``options`` and ``query``
    are as for :class:`GalleryExporter`.

    Args:
        items: (name, full-resolution mask) per photo; a generator keeps one in memory.
        sketch: the query's sketch, or None.
        progress: ``progress(done, total)`` after each photo; total is 0 when ``items`` has
            no length.
        cancelled: polled before each photo; when it returns True the export stops, and the
            COCO file and sketch are written for the photos done.

    Raises:
        ValueError: ``out_dir`` would write into the photo folder; a bad name or mask.
        sketchpad.atomic.SaveError: a file could not be written.
    """
    exporter = GalleryExporter(out_dir, photo_folder, options, query=query)
    total = len(items) if isinstance(items, Sized) else 0
    failed: list[ExportFailure] = []
    stopped = False
    for done, (name, mask) in enumerate(items, start=1):
        if cancelled is not None and cancelled():
            stopped = True
            break
        need_photo = options.overlay and exporter.wants(mask)
        try:
            photo = (
                _load_matching(Path(photo_folder) / name, mask.mask.shape) if need_photo else None
            )
        except PhotoError as e:
            log.warning("export: skipped %s", e)
            failed.append(ExportFailure(name, e.reason))
        else:
            exporter.add(name, mask.mask.shape, mask, photo=photo)
        if progress is not None:
            progress(done, total)
    summary = exporter.finish(sketch, cancelled=stopped)
    return replace(summary, failed=tuple(failed))


def _load_matching(path: Path, hw: tuple[int, ...]) -> np.ndarray:
    """The photo's pixels; it must still be the size its mask was made at."""
    image = load_photo(path)
    if image.shape[:2] != tuple(hw):
        raise PhotoError(
            path,
            f"changed since it was indexed ({image.shape[1]}×{image.shape[0]} px now, "
            f"its mask is {hw[1]}×{hw[0]})",
        )
    return image
