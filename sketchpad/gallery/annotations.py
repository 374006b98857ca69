"""A photo's mask as annotations: regions with a class, and the file formats annotators use.

- :func:`mask_regions` splits a mask into regions, one per instance (a connected component of
  the mask, what the app draws a box around) and, for a composed query, per stroke group
  inside it: each region has its class (the query's class, or its group's).
- :func:`region_polygons`: a region's outer contours as polygons (x, y in pixels).
- :func:`labelme_document`: one photo's LabelMe JSON (labelme's own layout, polygons).
- :func:`yolo_lines`: one photo's YOLO segmentation label lines (class, normalised x y …).
- :func:`yolo_data_yaml`: the ``data.yaml`` a YOLO trainer reads.

Class index ``c`` of a region is 0-based; COCO's category id is ``c + 1``. For a composed query
(``PhotoMask.group_map``) class 0 is the whole sketch's and class ``k`` its k-th stroke group's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sketchpad.search.masks import PhotoMask

#: LabelMe file version written (the layout of labelme 5.x).
LABELME_VERSION = "5.5.0"
#: Polygon vertices closer than this to the straight line of their neighbours are dropped
#: (Douglas–Peucker, in pixels): exact for axis-aligned shapes, a fraction of a pixel for curves.
POLYGON_EPSILON = 0.5


@dataclass(frozen=True)
class Region:
    """One annotated region of a photo.

    Attributes:
        class_index: 0-based class.
        pixels: (H, W) bool, the region's pixels.
        box_xyxy: (x0, y0, x1, y1) pixels, x1/y1 exclusive.
        area: number of pixels.
        score: the region's mean probability.
    """

    class_index: int
    pixels: np.ndarray
    box_xyxy: tuple[int, int, int, int]
    area: int
    score: float


def mask_regions(mask: PhotoMask) -> list[Region]:
    """The regions of ``mask``: each instance (``label_map == k``), split by stroke group for
    a composed query (class = group − 1), in the instances' order.

    Raises:
        ValueError: an instance's box does not hold all of its pixels.
    """
    out: list[Region] = []
    for inst in mask.instances:
        x0, y0, x1, y1 = (int(v) for v in inst.box_xyxy)
        window = mask.label_map[y0:y1, x0:x1] == inst.label
        if int(window.sum()) != inst.area:
            raise ValueError(
                f"instance {inst.label} has {inst.area} pixels but its label-map region inside "
                f"its box {inst.box_xyxy} has {int(window.sum())}"
            )
        if mask.group_map is None:
            parts = [(0, window)]
        else:
            groups = mask.group_map[y0:y1, x0:x1]
            parts = [
                (int(g) - 1, window & (groups == g)) for g in np.unique(groups[window]) if g > 0
            ]
        for cls, part in parts:
            ys, xs = np.nonzero(part)
            if xs.size == 0:
                continue
            pixels = np.zeros(mask.mask.shape, dtype=bool)
            pixels[y0:y1, x0:x1] = part
            prob = float(mask.prob[y0:y1, x0:x1][part].mean())
            box = (
                x0 + int(xs.min()),
                y0 + int(ys.min()),
                x0 + int(xs.max()) + 1,
                y0 + int(ys.max()) + 1,
            )
            out.append(Region(cls, pixels, box, int(xs.size), prob))
    return out


def region_polygons(pixels: np.ndarray) -> list[list[tuple[float, float]]]:
    """The outer boundaries of a region's pixels as polygons, in photo pixel coordinates with
    pixel (x, y) covering [x, x + 1) × [y, y + 1): boundaries run along pixel edges, so a
    rectangle of pixels gives its exact corners. Holes are not represented (the RLE and the
    PNG keep them)."""
    import cv2

    # Trace the grid of pixel corners: corner (cx, cy) sits at (cx, cy) in photo coordinates
    # and is in when any of the four pixels around it is, so a rectangle of pixels gives its
    # exact corners (a diagonal staircase is cut at half a pixel outside it).
    p = np.pad(pixels.astype(np.uint8), 1)
    corners = np.maximum(np.maximum(p[:-1, :-1], p[1:, :-1]), np.maximum(p[:-1, 1:], p[1:, 1:]))
    contours, _ = cv2.findContours(np.pad(corners, 1), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons: list[list[tuple[float, float]]] = []
    for c in contours:
        c = cv2.approxPolyDP(c, POLYGON_EPSILON, True)
        pts = c.reshape(-1, 2).astype(np.float64) - 1.0  # undo the border
        if len(pts) < 3:
            continue
        polygons.append([(float(x), float(y)) for x, y in pts])
    return polygons


def coco_polygon_segmentation(pixels: np.ndarray) -> list[list[float]]:
    """COCO's polygon form of a region: ``[[x0, y0, x1, y1, …], …]``."""
    return [[v for xy in poly for v in xy] for poly in region_polygons(pixels)]


def labelme_document(
    image_path: str,
    image_hw: tuple[int, int],
    regions: Sequence[Region],
    class_names: Sequence[str],
    *,
    score: float,
) -> dict[str, Any]:
    """One photo's LabelMe JSON: a polygon shape per boundary of each region, labelled with
    its class name; ``imagePath`` relative to the JSON file (no image data embedded)."""
    shapes = []
    for k, region in enumerate(regions):
        for poly in region_polygons(region.pixels):
            shapes.append(
                {
                    "label": class_names[region.class_index],
                    "points": [[x, y] for x, y in poly],
                    "group_id": k,  # boundaries of one region share it
                    "description": f"score {score:.4f}, region {region.score:.4f}",
                    "shape_type": "polygon",
                    "flags": {},
                    "mask": None,
                }
            )
    h, w = image_hw
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": int(h),
        "imageWidth": int(w),
    }


def yolo_lines(regions: Sequence[Region], image_hw: tuple[int, int]) -> list[str]:
    """YOLO segmentation labels: per region boundary ``class x1 y1 x2 y2 …`` with coordinates
    normalised to [0, 1] by the photo's width and height."""
    h, w = image_hw
    lines = []
    for region in regions:
        for poly in region_polygons(region.pixels):
            coords = " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in poly)
            lines.append(f"{region.class_index} {coords}")
    return lines


def yolo_data_yaml(root: PurePath | str, class_names: Sequence[str]) -> str:
    """The dataset file of a YOLO segmentation export: images and labels side by side under
    ``root`` (both splits point at the same images: an export is one set; split it to train)."""
    names = "\n".join(
        f"  {k}: {json.dumps(n, ensure_ascii=False)}" for k, n in enumerate(class_names)
    )
    return (
        f"# Sketchpad export: YOLO segmentation labels (labels/*.txt) for images/*\n"
        f"path: {json.dumps(str(root), ensure_ascii=False)}\n"
        "train: images\n"
        "val: images\n"
        f"names:\n{names}\n"
    )
