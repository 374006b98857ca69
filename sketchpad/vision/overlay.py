"""Mask previews: a photo with its mask tinted and its instance boxes drawn (pure numpy/cv2)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from sketchpad.vision.maps import Instance

#: One colour per query group (RGB); group 1 (the whole sketch) first.
GROUP_COLOURS = (
    (255, 64, 64),
    (64, 160, 255),
    (80, 220, 80),
    (255, 200, 40),
    (200, 90, 255),
    (40, 220, 220),
)


def overlay_mask(
    photo: np.ndarray,
    mask: np.ndarray,
    instances: Sequence[Instance] = (),
    *,
    group_map: np.ndarray | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB preview: the photo, the mask tinted (one colour per group when
    ``group_map`` is given), the outline of the mask and each instance's box.

    Args:
        photo: (H, W, 3) uint8 RGB.
        mask: (H, W) bool.
        instances: boxes XYXY in the same pixels (x1, y1 exclusive).
        group_map: (H, W) int, 0 = none, k = group k (colour k − 1).
        alpha: tint opacity.
    """
    if photo.shape[:2] != mask.shape:
        raise ValueError(f"photo {photo.shape[:2]} and mask {mask.shape} differ in size")
    out = photo.astype(np.float32)
    groups = group_map if group_map is not None else mask.astype(np.int16)
    for k in range(1, int(groups.max(initial=0)) + 1):
        sel = (groups == k) & mask
        colour = np.array(GROUP_COLOURS[(k - 1) % len(GROUP_COLOURS)], dtype=np.float32)
        out[sel] = (1 - alpha) * out[sel] + alpha * colour
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    out = np.ascontiguousarray(out)
    thick = max(1, round(max(mask.shape) / 300))
    cv2.drawContours(out, contours, -1, (255, 255, 255), thick)
    for inst in instances:
        x0, y0, x1, y1 = inst.box_xyxy
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (255, 230, 0), thick)
    return out


def mask_tint_argb32(
    mask: np.ndarray, *, group_map: np.ndarray | None = None, alpha: float = 0.45
) -> np.ndarray:
    """(H, W) uint32 premultiplied ARGB pixels (``0xAARRGGBB``, QImage's
    ``Format_ARGB32_Premultiplied``): mask pixels in their group's colour at opacity ``alpha``,
    every other pixel transparent (0). The tint of the gallery's and the large view's overlays.

    Args:
        mask: (H, W) bool.
        group_map: (H, W) int, k ≥ 1 = query group k (colour ``GROUP_COLOURS[k − 1]``, cycled;
            a mask pixel of group 0 gets the first); None (single queries): the first colour.
        alpha: opacity in [0, 1].
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {m.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    a = round(alpha * 255)
    rgb = (np.array(GROUP_COLOURS, dtype=np.uint32) * a + 127) // 255  # (n, 3) premultiplied
    packed = np.uint32(a << 24) | rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]  # (n,)
    out = np.zeros(m.shape, dtype=np.uint32)
    if group_map is None:
        out[m] = packed[0]
        return out
    groups = np.asarray(group_map)
    if groups.shape != m.shape:
        raise ValueError(f"group_map {groups.shape} and mask {m.shape} differ in size")
    out[m] = packed[(np.maximum(groups[m].astype(np.int64), 1) - 1) % len(packed)]
    return out


#: The colour of correspondence heat maps (as ``sketchpad correspond --overlay`` tints).
HEAT_COLOUR = (255, 0, 0)


def heat_tint_argb32(
    heat: np.ndarray, *, colour: tuple[int, int, int] = HEAT_COLOUR, alpha: float = 0.5
) -> np.ndarray:
    """(H, W) uint32 premultiplied ARGB pixels of a heat map ((H, W) in [0, 1]): ``colour``
    at opacity ``alpha · heat`` (the correspondence overlay's tint; 0 stays transparent)."""
    h = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    if h.ndim != 2:
        raise ValueError(f"heat must be (H, W), got shape {h.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    a = np.round(h * (alpha * 255)).astype(np.uint32)  # (H, W) 0–255
    out = a << 24
    for shift, c in zip((16, 8, 0), colour, strict=True):
        out |= ((a * int(c) + 127) // 255) << shift
    return out
