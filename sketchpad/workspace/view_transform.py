"""Canvas ↔ view mapping for the drawing canvas: pure Python, no Qt (STYLE habit 9).

Frames:
    canvas: the sketch's coordinates, logical pixels of the page, x right, y down.
    view: the widget's coordinates, logical (device-independent) pixels, x right, y down.

A :class:`ViewTransform` is a uniform scale plus an offset::

    view = canvas * scale + offset

It is an immutable value; every operation (zoom about a point, pan, fit) returns
a new one, so the canvas can compare old and new to decide what to repaint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SCALE = 0.05  # 5 %
MAX_SCALE = 32.0  # 3200 %
FIT_MARGIN = 24.0  # view pixels left around the page by fit()
WHEEL_NOTCH = 120.0  # angle delta of one wheel notch (eighths of a degree)
SCROLL_PER_NOTCH = 48.0  # view pixels scrolled by one notch


def clamp_scale(scale: float) -> float:
    """``scale`` limited to [MIN_SCALE, MAX_SCALE]."""
    return float(min(MAX_SCALE, max(MIN_SCALE, scale)))


@dataclass(frozen=True)
class ViewTransform:
    """``view = canvas * scale + (offset_x, offset_y)``.

    Attributes:
        scale: view pixels per canvas pixel (1.0 = 100 %), in [MIN_SCALE, MAX_SCALE].
        offset_x, offset_y: view position of the canvas origin, view pixels.
    """

    scale: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0

    def __post_init__(self) -> None:
        values = (self.scale, self.offset_x, self.offset_y)
        if not all(np.isfinite(v) for v in values):
            raise ValueError(f"ViewTransform needs finite numbers, got {values}")
        if not MIN_SCALE <= self.scale <= MAX_SCALE:
            raise ValueError(
                f"ViewTransform.scale must lie in [{MIN_SCALE}, {MAX_SCALE}], got {self.scale}"
            )

    # -- mapping -------------------------------------------------------------------------
    def to_view(self, x: float, y: float) -> tuple[float, float]:
        """Canvas point → view point."""
        return (x * self.scale + self.offset_x, y * self.scale + self.offset_y)

    def to_canvas(self, vx: float, vy: float) -> tuple[float, float]:
        """View point → canvas point."""
        return ((vx - self.offset_x) / self.scale, (vy - self.offset_y) / self.scale)

    def to_view_array(self, canvas_pts: np.ndarray) -> np.ndarray:
        """(N, 2) canvas points → (N, 2) float64 view points."""
        pts = np.asarray(canvas_pts, dtype=np.float64).reshape(-1, 2)
        return pts * self.scale + np.array([self.offset_x, self.offset_y])

    def to_canvas_array(self, view_pts: np.ndarray) -> np.ndarray:
        """(N, 2) view points → (N, 2) float64 canvas points."""
        pts = np.asarray(view_pts, dtype=np.float64).reshape(-1, 2)
        return (pts - np.array([self.offset_x, self.offset_y])) / self.scale

    def rect_to_view(
        self, rect: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """Canvas (x0, y0, x1, y1) → view (x0, y0, x1, y1)."""
        x0, y0 = self.to_view(rect[0], rect[1])
        x1, y1 = self.to_view(rect[2], rect[3])
        return (x0, y0, x1, y1)

    def rect_to_canvas(
        self, rect: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """View (x0, y0, x1, y1) → canvas (x0, y0, x1, y1)."""
        x0, y0 = self.to_canvas(rect[0], rect[1])
        x1, y1 = self.to_canvas(rect[2], rect[3])
        return (x0, y0, x1, y1)

    def length_to_canvas(self, view_length: float) -> float:
        """A distance of ``view_length`` view pixels, in canvas pixels (e.g. an eraser
        radius that stays constant on screen)."""
        return view_length / self.scale

    # -- changes -------------------------------------------------------------------------
    def panned(self, dvx: float, dvy: float) -> ViewTransform:
        """The canvas moved by (dvx, dvy) view pixels."""
        return ViewTransform(self.scale, self.offset_x + dvx, self.offset_y + dvy)

    def with_scale_about(self, scale: float, vx: float, vy: float) -> ViewTransform:
        """Scale set to ``scale`` (clamped) keeping the canvas point under view point
        (vx, vy) where it is."""
        new = clamp_scale(scale)
        cx, cy = self.to_canvas(vx, vy)
        return ViewTransform(new, vx - cx * new, vy - cy * new)

    def zoomed_about(self, factor: float, vx: float, vy: float) -> ViewTransform:
        """Scale multiplied by ``factor`` (result clamped) about view point (vx, vy)."""
        if not factor > 0:
            raise ValueError(f"zoom factor must be positive, got {factor}")
        return self.with_scale_about(self.scale * factor, vx, vy)

    def anchored(self, canvas_x: float, canvas_y: float, vx: float, vy: float) -> ViewTransform:
        """Same scale, panned so that canvas point (canvas_x, canvas_y) lies at view
        point (vx, vy): what a pan drag does with the point grabbed at the press."""
        return ViewTransform(self.scale, vx - canvas_x * self.scale, vy - canvas_y * self.scale)

    @staticmethod
    def fit(
        page_w: float, page_h: float, view_w: float, view_h: float, margin: float = FIT_MARGIN
    ) -> ViewTransform:
        """The transform showing the whole ``page_w``×``page_h`` page centred in a
        ``view_w``×``view_h`` view with ``margin`` view pixels around it (scale clamped;
        a view smaller than the margins keeps the page centred at the smallest scale)."""
        if page_w <= 0 or page_h <= 0:
            raise ValueError(f"page size must be positive, got {page_w}×{page_h}")
        avail_w = max(view_w - 2 * margin, 1.0)
        avail_h = max(view_h - 2 * margin, 1.0)
        scale = clamp_scale(min(avail_w / page_w, avail_h / page_h))
        return ViewTransform(
            scale, (view_w - page_w * scale) / 2.0, (view_h - page_h * scale) / 2.0
        )


def wheel_zoom_factor(angle_y: float, step: float) -> float:
    """Zoom factor for a wheel turn of ``angle_y`` (eighths of a degree): ``step`` per
    notch, fractions of a notch (smooth wheels, touchpads) in proportion."""
    return float(step ** (angle_y / WHEEL_NOTCH))


def wheel_scroll(
    angle_x: float, angle_y: float, pixel_x: float, pixel_y: float, shift: bool
) -> tuple[float, float]:
    """(dx, dy) view pixels to pan for a wheel event: the pixel delta when the device
    gives one (touchpads), else SCROLL_PER_NOTCH per notch; Shift turns a vertical
    scroll horizontal."""
    if pixel_x or pixel_y:
        dx, dy = float(pixel_x), float(pixel_y)
    else:
        dx = angle_x / WHEEL_NOTCH * SCROLL_PER_NOTCH
        dy = angle_y / WHEEL_NOTCH * SCROLL_PER_NOTCH
    if shift and not dx:
        dx, dy = dy, 0.0
    return dx, dy
