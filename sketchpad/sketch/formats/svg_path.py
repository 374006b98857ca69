"""SVG geometry: ``transform`` lists, path data and its flattening into polylines.

Coordinates: "user" space is the element's own; ``ctm`` (a 3×3 affine, NumPy) maps it
to canvas coordinates. Curves are flattened in user space with the tolerance divided
by the transform's largest stretch, so the result is within ``TOLERANCE`` canvas
pixels of the true curve after the transform.
"""

from __future__ import annotations

import math
import re
from itertools import accumulate

import numpy as np

#: Largest distance (canvas pixels) between a flattened curve and the true one.
TOLERANCE = 0.25
#: Most pieces one curve segment is split into.
MAX_PIECES = 1024

IDENTITY = np.eye(3)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SEPARATORS = re.compile(r"[\s,]*")
_SEPARATED_NUMBER = re.compile(r"[\s,]*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_NEXT_LETTER = re.compile(r"[A-DF-Za-df-z]")  # a command, or junk; "e" belongs to numbers
_TRANSFORM = re.compile(r"\s*,?\s*(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)")
_ARG_COUNTS = {
    "matrix": (6,),
    "translate": (1, 2),
    "scale": (1, 2),
    "rotate": (1, 3),
    "skewX": (1,),
    "skewY": (1,),
}
_PARAMS = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "A": 7, "Z": 0}


def parse_numbers(text: str) -> list[float]:
    """Numbers separated by whitespace and/or commas; ValueError if anything else is there."""
    out: list[float] = []
    i = _SEPARATORS.match(text).end()  # type: ignore[union-attr]  # [\s,]* always matches
    while i < len(text):
        m = _NUMBER.match(text, i)
        if m is None:
            raise ValueError(f"expected a number at {text[i : i + 12]!r}")
        out.append(float(m.group()))
        i = _SEPARATORS.match(text, m.end()).end()  # type: ignore[union-attr]  # [\s,]* always matches
    return out


def parse_transform(text: str | None) -> np.ndarray:
    """The 3×3 matrix of an SVG ``transform`` attribute (functions applied right to left)."""
    m = IDENTITY.copy()
    if not text or not text.strip():
        return m
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _TRANSFORM.match(text, pos)
        if match is None:
            raise ValueError(f"bad transform {text!r}")
        name, args = match.group(1), parse_numbers(match.group(2))
        if len(args) not in _ARG_COUNTS[name]:
            raise ValueError(f"{name}() takes {_ARG_COUNTS[name]} numbers, got {len(args)}")
        m = m @ _transform_matrix(name, args)
        pos = match.end()
    return m


def _transform_matrix(name: str, a: list[float]) -> np.ndarray:
    t = IDENTITY.copy()
    if name == "matrix":
        t[0], t[1] = (a[0], a[2], a[4]), (a[1], a[3], a[5])
    elif name == "translate":
        t[0, 2], t[1, 2] = a[0], a[1] if len(a) > 1 else 0.0
    elif name == "scale":
        t[0, 0], t[1, 1] = a[0], a[1] if len(a) > 1 else a[0]
    elif name == "rotate":
        c, s = math.cos(math.radians(a[0])), math.sin(math.radians(a[0]))
        t[:2, :2] = ((c, -s), (s, c))
        if len(a) == 3:
            cx, cy = a[1], a[2]
            t[0, 2], t[1, 2] = cx - c * cx + s * cy, cy - s * cx - c * cy
    elif name == "skewX":
        t[0, 1] = math.tan(math.radians(a[0]))
    else:  # skewY
        t[1, 0] = math.tan(math.radians(a[0]))
    return t


def apply(ctm: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(k, 2) user coordinates → (k, 2) canvas coordinates (exact for the identity)."""
    if ctm is IDENTITY or np.array_equal(ctm, IDENTITY):
        return pts
    return pts @ ctm[:2, :2].T + ctm[:2, 2]


def linear_scale(ctm: np.ndarray) -> float:
    """How much ``ctm`` scales lengths on average: sqrt |det|, e.g. for stroke widths."""
    return math.sqrt(abs(float(np.linalg.det(ctm[:2, :2]))))


def _max_scale(ctm: np.ndarray) -> float:
    return float(np.linalg.norm(ctm[:2, :2], 2))


# ---------------------------------------------------------------- curves (user space)
# Plain floats: paths are mostly short segments, where NumPy's per-call cost dominates.

Point = tuple[float, float]


def _pieces(d: float, factor: float, tol: float) -> int:
    """Wang's formula: pieces so that a Bézier stays within ``tol`` of its chords."""
    n = math.ceil(math.sqrt(factor * d / tol)) if d > 0 else 1
    return max(1, min(MAX_PIECES, n))


def cubic(p0: Point, p1: Point, p2: Point, p3: Point, tol: float) -> list[Point]:
    """Points on a cubic Bézier after p0, ending exactly at p3."""
    d = max(
        math.hypot(p0[0] - 2 * p1[0] + p2[0], p0[1] - 2 * p1[1] + p2[1]),
        math.hypot(p1[0] - 2 * p2[0] + p3[0], p1[1] - 2 * p2[1] + p3[1]),
    )
    n = _pieces(d, 0.75, tol)
    out = []
    for i in range(1, n):
        t = i / n
        u = 1 - t
        a, b, c, e = u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t
        out.append(
            (
                a * p0[0] + b * p1[0] + c * p2[0] + e * p3[0],
                a * p0[1] + b * p1[1] + c * p2[1] + e * p3[1],
            )
        )
    out.append(p3)
    return out


def quadratic(p0: Point, p1: Point, p2: Point, tol: float) -> list[Point]:
    """Points on a quadratic Bézier after p0, ending exactly at p2."""
    n = _pieces(math.hypot(p0[0] - 2 * p1[0] + p2[0], p0[1] - 2 * p1[1] + p2[1]), 0.25, tol)
    out = []
    for i in range(1, n):
        t = i / n
        u = 1 - t
        a, b, c = u * u, 2 * u * t, t * t
        out.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
    out.append(p2)
    return out


def _angle(ux: float, uy: float, vx: float, vy: float) -> float:
    return math.atan2(ux * vy - uy * vx, ux * vx + uy * vy)


def arc(
    p1: Point, radii: Point, phi_deg: float, large: bool, sweep: bool, p2: Point, tol: float
) -> list[Point]:
    """Points of an SVG elliptical arc after p1, ending exactly at p2.

    Endpoint → centre parametrisation as in SVG 1.1 §F.6.5, radii scaled up when too
    small; zero radii make a straight line; equal endpoints draw nothing.
    """
    (x1, y1), (x2, y2) = p1, p2
    if p1 == p2:
        return []
    rx, ry = abs(radii[0]), abs(radii[1])
    if rx == 0 or ry == 0:
        return [p2]
    phi = math.radians(phi_deg % 360)
    c, s = math.cos(phi), math.sin(phi)
    dx, dy = (x1 - x2) / 2, (y1 - y2) / 2
    x1p, y1p = c * dx + s * dy, -s * dx + c * dy
    lam = (x1p / rx) ** 2 + (y1p / ry) ** 2
    if lam > 1:
        rx, ry = rx * math.sqrt(lam), ry * math.sqrt(lam)
    num = rx * rx * ry * ry - rx * rx * y1p * y1p - ry * ry * x1p * x1p
    den = rx * rx * y1p * y1p + ry * ry * x1p * x1p
    coef = math.sqrt(max(0.0, num / den)) if den else 0.0
    if large == sweep:
        coef = -coef
    cxp, cyp = coef * rx * y1p / ry, -coef * ry * x1p / rx
    cx, cy = c * cxp - s * cyp + (x1 + x2) / 2, s * cxp + c * cyp + (y1 + y2) / 2
    ux, uy = (x1p - cxp) / rx, (y1p - cyp) / ry
    vx, vy = (-x1p - cxp) / rx, (-y1p - cyp) / ry
    theta = _angle(1.0, 0.0, ux, uy)
    delta = _angle(ux, uy, vx, vy)
    if not sweep and delta > 0:
        delta -= 2 * math.pi
    elif sweep and delta < 0:
        delta += 2 * math.pi
    r = max(rx, ry)
    step = 2 * math.acos(1 - tol / r) if r > tol else math.pi / 2
    n = max(1, min(MAX_PIECES, math.ceil(abs(delta) / step)))
    out = []
    for i in range(1, n):
        t = theta + delta * i / n
        ct, st = math.cos(t), math.sin(t)
        out.append((cx + rx * ct * c - ry * st * s, cy + rx * ct * s + ry * st * c))
    out.append(p2)
    return out


# ---------------------------------------------------------------- path data


class PathDataError(ValueError):
    """Malformed path data; ``subpaths`` holds what was read before the error."""

    def __init__(self, message: str, subpaths: list[np.ndarray], lone_moves: int) -> None:
        super().__init__(message)
        self.subpaths = subpaths
        self.lone_moves = lone_moves


class TooManyPoints(Exception):
    """The path has more points than the caller allows (``args[0]``: points so far)."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def _skip(self) -> None:
        self.i = _SEPARATORS.match(self.text, self.i).end()  # type: ignore[union-attr]  # [\s,]* always matches

    def command(self) -> str | None:
        """The next command letter (consumed), None at the end; ValueError for junk."""
        self._skip()
        if self.i >= len(self.text):
            return None
        ch = self.text[self.i]
        if ch.upper() not in _PARAMS:
            raise ValueError(f"unexpected {self.text[self.i : self.i + 12]!r} at position {self.i}")
        self.i += 1
        return ch

    def has_number(self) -> bool:
        self._skip()
        return self.i < len(self.text) and self.text[self.i] in "+-.0123456789"

    def number(self) -> float:
        self._skip()
        m = _NUMBER.match(self.text, self.i)
        if m is None:
            raise ValueError(f"expected a number at position {self.i}")
        self.i = m.end()
        return float(m.group())

    def numbers(self) -> list[float]:
        """The numbers up to the next command letter (a fast path for long polylines).

        Stops early at anything that is not a number, leaving it for :meth:`command`
        to report.
        """
        m = _NEXT_LETTER.search(self.text, self.i)
        end = m.start() if m is not None else len(self.text)
        tokens = self.text[self.i : end].replace(",", " ").split()
        try:
            if any("_" in t for t in tokens):  # float() accepts "1_0"; SVG does not
                raise ValueError
            out = [float(t) for t in tokens]
            self.i = end
            return out
        except ValueError:  # compact ("1-2", ".5.5") or bad numbers: go one by one
            out = []
            for n in _SEPARATED_NUMBER.finditer(self.text, self.i, end):
                if n.start() != self.i:  # something else between two numbers
                    break
                out.append(float(n.group(1)))
                self.i = n.end()
            return out

    def flag(self) -> bool:
        self._skip()
        if self.i >= len(self.text) or self.text[self.i] not in "01":
            raise ValueError(f"expected an arc flag (0 or 1) at position {self.i}")
        self.i += 1
        return self.text[self.i - 1] == "1"


def flatten_path(
    d: str, ctm: np.ndarray, max_points: int | None = None
) -> tuple[list[np.ndarray], int]:
    """Polylines (canvas coordinates) of an SVG path, one (k, 2) array per subpath.

    The path is followed in user space; curves are flattened there with the tolerance
    divided by the transform's largest stretch, so they are within TOLERANCE canvas
    pixels after the transform. A subpath that is only a moveto draws nothing and is
    left out (the count is the second value); ``M x y Z`` is kept as a one-point
    subpath (a dot).

    Raises:
        PathDataError: malformed data; it carries the subpaths before the error.
        TooManyPoints: the path flattens to more than ``max_points`` points.
    """
    identity = np.array_equal(ctm, IDENTITY)
    stretch = _max_scale(ctm)
    tol = TOLERANCE / stretch if stretch > 0 else TOLERANCE
    sc = _Scanner(d)
    subpaths: list[np.ndarray] = []
    lone = 0
    done = 0  # points in finished subpaths
    current: list[Point] = []
    closed = False
    cur = start = (0.0, 0.0)
    last_ctrl: Point | None = None
    last_cmd = "M"

    def finish() -> None:
        nonlocal current, closed, lone, done
        if current:
            if len(current) >= 2 or closed:
                pts = np.array(current, dtype=np.float64)
                subpaths.append(pts if identity else apply(ctm, pts))
                done += len(pts)
            else:
                lone += 1
        current, closed = [], False

    def pair(rel: bool) -> Point:
        x, y = sc.number(), sc.number()
        return (cur[0] + x, cur[1] + y) if rel else (x, y)

    def reflected(kinds: str) -> Point:
        if last_cmd in kinds and last_ctrl is not None:
            return (2 * cur[0] - last_ctrl[0], 2 * cur[1] - last_ctrl[1])
        return cur

    try:
        cmd = sc.command()
        if cmd is not None and cmd not in "Mm":
            raise ValueError("path data must start with a moveto (M)")
        while cmd is not None:
            up, rel = cmd.upper(), cmd.islower()
            first = True
            while first or (up != "Z" and sc.has_number()):
                if up == "M" and not first:
                    up = "L"  # extra pairs after a moveto are linetos
                if up not in "MZ" and not current:  # drawing after Z continues from the start
                    current = [start]
                ctrl: Point | None = None
                if up == "M":
                    finish()
                    cur = start = pair(rel)
                    current = [cur]
                elif up == "Z":
                    if cur != start:
                        current.append(start)
                    closed = True
                    finish()
                    cur = start
                elif up == "L":
                    # A sketch path is often one long run of pairs after a single L.
                    nums = sc.numbers()
                    if len(nums) < 2:
                        raise ValueError(f"expected a coordinate pair at position {sc.i}")
                    xs, ys = nums[0 : len(nums) - 1 : 2], nums[1::2]
                    if rel:  # summed one step at a time, as the current point moves
                        xs = list(accumulate(xs, initial=cur[0]))[1:]
                        ys = list(accumulate(ys, initial=cur[1]))[1:]
                    current.extend(zip(xs, ys, strict=False))
                    cur = (xs[-1], ys[-1])
                    if len(nums) % 2:
                        raise ValueError(f"odd number of coordinates before position {sc.i}")
                elif up == "H":
                    cur = ((cur[0] if rel else 0.0) + sc.number(), cur[1])
                    current.append(cur)
                elif up == "V":
                    cur = (cur[0], (cur[1] if rel else 0.0) + sc.number())
                    current.append(cur)
                elif up in "CS":
                    c1 = pair(rel) if up == "C" else reflected("CS")
                    ctrl, nxt = pair(rel), pair(rel)
                    current.extend(cubic(cur, c1, ctrl, nxt, tol))
                    cur = nxt
                elif up in "QT":
                    ctrl = pair(rel) if up == "Q" else reflected("QT")
                    nxt = pair(rel)
                    current.extend(quadratic(cur, ctrl, nxt, tol))
                    cur = nxt
                else:  # A
                    rx, ry, phi = sc.number(), sc.number(), sc.number()
                    large, sweep = sc.flag(), sc.flag()
                    nxt = pair(rel)
                    current.extend(arc(cur, (rx, ry), phi, large, sweep, nxt, tol))
                    cur = nxt
                last_cmd, last_ctrl, first = up, ctrl, False
                if max_points is not None and done + len(current) > max_points:
                    raise TooManyPoints(done + len(current))
            cmd = sc.command()
    except ValueError as e:
        finish()
        raise PathDataError(str(e), subpaths, lone) from e
    finish()
    return subpaths, lone
