"""SVG: the path grammar, curve flattening, transforms, truncated files and our export."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sketchpad.sketch.formats.svg import encode_svg
from sketchpad.sketch.formats.svg_path import TOLERANCE, flatten_path, parse_transform
from sketchpad.sketch.io import SketchFileError, read_sketch, write_sketch
from sketchpad.sketch.model import Sketch, Stroke

HEAD = '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">'


def svg_file(tmp_path: Path, body: str, head: str = HEAD, tail: str = "</svg>") -> Path:
    path = tmp_path / "drawing.svg"
    path.write_text(head + body + tail)
    return path


def polylines(d: str) -> list[list[list[float]]]:
    subpaths, _ = flatten_path(d, np.eye(3))
    return [p.tolist() for p in subpaths]


# ---------------------------------------------------------------- path grammar


def test_lines_and_implicit_commands() -> None:
    assert polylines("M10 20 30 40 L50,60 70 80") == [[[10, 20], [30, 40], [50, 60], [70, 80]]]
    assert polylines("m10 20 5 5 l1 1 h10 v-3 H0 V0") == [
        [[10, 20], [15, 25], [16, 26], [26, 26], [26, 23], [0, 23], [0, 0]]
    ]


def test_number_formats() -> None:
    assert polylines("M1e-3-.5.5.5L1E2,+2") == [[[0.001, -0.5], [0.5, 0.5], [100, 2]]]
    assert polylines("M-1-2-3-4") == [[[-1, -2], [-3, -4]]]


def test_each_moveto_starts_a_stroke_and_z_closes() -> None:
    got = polylines("M0 0 L10 0 L10 10 Z L20 20 M5 5 L6 6 M7 7 M8 8 Z")
    assert got == [
        [[0, 0], [10, 0], [10, 10], [0, 0]],
        [[0, 0], [20, 20]],  # drawing after Z continues from the subpath start
        [[5, 5], [6, 6]],
        [[8, 8]],  # "M x y Z" is a dot
    ]
    _, lone = flatten_path("M0 0 L1 1 M7 7 M8 8 Z", np.eye(3))
    assert lone == 1  # "M7 7" alone draws nothing


def distance_to_polyline(p: np.ndarray, poly: np.ndarray) -> float:
    a, b = poly[:-1], poly[1:]
    ab = b - a
    t = np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12)
    t = np.clip(t, 0, 1)
    return float(np.min(np.hypot(*(a + t[:, None] * ab - p).T)))


def test_cubic_is_flattened_within_tolerance() -> None:
    (poly,) = flatten_path("M0 0 C0 100 100 100 100 0", np.eye(3))[0]
    assert poly[0].tolist() == [0, 0] and poly[-1].tolist() == [100, 0]
    t = np.linspace(0, 1, 2001)[:, None]
    p0, p1, p2, p3 = map(np.array, ([0, 0], [0, 100], [100, 100], [100, 0]))
    curve = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    assert max(distance_to_polyline(q, poly) for q in curve) <= TOLERANCE + 1e-9
    assert len(poly) < 60  # not absurdly dense either


def test_smooth_and_quadratic_curves() -> None:
    # S reflects the previous control point: the whole path is symmetric about x = 100
    (poly,) = flatten_path("M0 50 C0 0 50 0 100 50 S200 100 200 50", np.eye(3))[0]
    assert poly[-1].tolist() == [200, 50] and poly.min(axis=0)[1] < 20 and poly.max(axis=0)[1] > 80
    (q,) = flatten_path("M0 0 Q50 100 100 0 T200 0", np.eye(3))[0]
    assert q[-1].tolist() == [200, 0]
    assert q[:, 1].max() == pytest.approx(50, abs=TOLERANCE)  # quadratic apex = half the control
    assert q[:, 1].min() == pytest.approx(-50, abs=TOLERANCE)  # T reflects below


def test_arcs() -> None:
    (half,) = flatten_path("M0 50 A50 50 0 0 1 100 50", np.eye(3))[0]
    r = np.hypot(half[:, 0] - 50, half[:, 1] - 50)
    np.testing.assert_allclose(r, 50, atol=1e-9)
    assert half[:, 1].max() <= 50 + 1e-9 and half[:, 1].min() == pytest.approx(0, abs=TOLERANCE)
    # large-arc + compact flags ("1 0" written "10"): 3/4 of a circle the other way
    (big,) = flatten_path("M50 0a50 50 0 1050 50", np.eye(3))[0]
    np.testing.assert_allclose(np.hypot(big[:, 0] - 50, big[:, 1] - 50), 50, atol=1e-9)
    assert big[:, 0].min() == pytest.approx(0, abs=TOLERANCE)
    # radii too small are scaled up to reach the end point; zero radii draw a line
    (tiny,) = flatten_path("M0 0 A1 1 0 0 1 10 0", np.eye(3))[0]
    assert tiny[-1].tolist() == [10, 0] and tiny[:, 1].min() == pytest.approx(-5, abs=TOLERANCE)
    assert polylines("M0 0 A0 5 0 0 1 10 0") == [[[0, 0], [10, 0]]]


def test_malformed_path_keeps_the_part_before_the_error(tmp_path: Path) -> None:
    s = read_sketch(svg_file(tmp_path, '<path d="M0 0 L10 10 M5 5 L6 6 L7 # 8"/>'))
    assert [st.points.tolist() for st in s.strokes] == [[[0, 0], [10, 10]], [[5, 5], [6, 6]]]
    assert "bad path data" in s.metadata["import_warnings"][0]


# ---------------------------------------------------------------- documents


def test_transforms_compose(tmp_path: Path) -> None:
    body = (
        '<g transform="translate(100 10)">'
        '<g transform="scale(2)"><path d="M1 1 L2 2" stroke-width="3"/></g>'
        '<line x1="0" y1="0" x2="10" y2="0" transform="rotate(90)"/>'
        '<polyline points="0,0 10,0" transform="rotate(90, 5, 0)"/>'
        '<polygon points="0 0 10 0 10 10" transform="matrix(1 0 0 1 -100 0) skewX(45)"/>'
        "</g>"
    )
    s = read_sketch(svg_file(tmp_path, body))
    pts = [np.round(st.points, 9).tolist() for st in s.strokes]
    assert pts[0] == [[102, 12], [104, 14]] and s.strokes[0].width == 6  # width scaled too
    assert pts[1] == [[100, 10], [100, 20]]
    assert pts[2] == [[105, 5], [105, 15]]
    assert pts[3] == [[0, 10], [10, 10], [20, 20], [0, 10]]
    assert np.allclose(parse_transform("skewY(45) translate(5)"), [[1, 0, 5], [1, 1, 5], [0, 0, 1]])


def test_canvas_from_viewbox_size_or_extent(tmp_path: Path) -> None:
    vb = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="10 20 300 400" width="30mm">'
    s = read_sketch(svg_file(tmp_path, '<path d="M10 20 L20 30"/>', head=vb))
    assert (s.width, s.height) == (300, 400) and s.strokes[0].points.tolist() == [[0, 0], [10, 10]]
    s = read_sketch(svg_file(tmp_path, '<path d="M10 20 L20 30"/>'))
    assert (s.width, s.height) == (200, 100)
    s = read_sketch(svg_file(tmp_path, '<path d="M10 20 L20 30"/>', head="<svg>"))
    assert (s.width, s.height) == (21, 31)


def test_style_colour_and_shapes(tmp_path: Path) -> None:
    body = (
        '<g stroke="#f00" style="stroke-width: 4"><path d="M0 0 L1 1"/>'
        '<path d="M0 0 L1 1" style="stroke: rgb(0, 128, 255); stroke-opacity: 0.5"/></g>'
        '<circle cx="50" cy="50" r="10" stroke="blue"/><rect x="1" y="2" width="3" height="4"/>'
        '<defs><path d="M0 0 L9 9"/></defs><text x="1" y="1">hi</text>'
    )
    s = read_sketch(svg_file(tmp_path, body))
    assert [st.color for st in s.strokes] == ["#ff0000", "#0080ff80", "#0000ff", "#000000"]
    assert [st.width for st in s.strokes] == [4, 4, 1, 1]
    circle = s.strokes[2].points
    np.testing.assert_allclose(np.hypot(circle[:, 0] - 50, circle[:, 1] - 50), 10, atol=1e-9)
    assert s.strokes[3].points.tolist() == [[1, 2], [4, 2], [4, 6], [1, 6], [1, 2]]
    assert s.metadata["import_warnings"] == ["ignored 1 <text> element"]


def test_truncated_sketchy_file_keeps_paths_read_so_far(tmp_path: Path) -> None:
    head = (
        '<?xml version="1.0" standalone="no"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        '<svg width="640" height="480" version="1.1" xmlns="http://www.w3.org/2000/svg">\n'
    )
    body = (
        '<g fill="none" stroke="#000000" stroke-width="3">\n'
        '<path d="M 181 122 C 182 122 185 122 189 123"/>\n<path d="M 200 200 L 210 220"/>\n'
        '<path d="M 300 3'
    )
    s = read_sketch(svg_file(tmp_path, body, head=head, tail=""))
    assert len(s.strokes) == 2 and (s.width, s.height) == (640, 480)
    assert "ends early or is damaged" in s.metadata["import_warnings"][0]
    # cut cleanly after a path, without </g></svg>
    s = read_sketch(svg_file(tmp_path, body.rsplit("\n", 1)[0] + "\n", head=head, tail=""))
    assert len(s.strokes) == 2 and "import_warnings" in s.metadata


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("this is not xml", "not a valid SVG"),
        ("\x00\x01garbage", "not a valid SVG"),
        ("", "not a valid SVG"),
        ('<html><path d="M0 0 L1 1"/></html>', "root element is <html>"),
        (HEAD + "</svg>", "no drawable paths"),
        (HEAD + '<path d="M0 0"/><path d=""/></svg>', "no drawable paths"),
        (HEAD + "<g><path d='M0 0 L", "damaged or truncated before any drawable path"),
        ('<!DOCTYPE svg [<!ENTITY a "aa"><!ENTITY b "&a;&a;">]><svg>&b;</svg>', "entities"),
    ],
)
def test_bad_svgs(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad.svg"
    path.write_text(text)
    with pytest.raises(SketchFileError) as info:
        read_sketch(path)
    assert "bad.svg" in str(info.value) and words in str(info.value)


# ---------------------------------------------------------------- export


def labelled_sketch() -> Sketch:
    return Sketch(
        strokes=(
            Stroke(
                points=[[1.5, 2.25], [1 / 3, 2e-7], [123456.789, 0.1]],
                label="dog",
                id="a1",
                color="#FF0000",
                width=2.5,
            ),
            Stroke(points=[[5, 5]], label="hot dog!", id="0bad-xml-id"),
            Stroke(points=[[7, 8], [9, 10]], label="dog", color="#00000080"),
            Stroke(points=[[0, 0], [1, 1]], label="Hot Dog"),  # same slug as "hot dog!"
            Stroke(points=[[3, 3], [4, 4]], label='<"&>'),
        ),
        width=640.5,
        height=480,
    )


def test_export_round_trip_is_exact(tmp_path: Path) -> None:
    """Numbers are written with repr, which reads back as the same float64: no tolerance."""
    sketch = labelled_sketch()
    path = tmp_path / "out.svg"
    write_sketch(sketch, path)
    back = read_sketch(path)
    assert (back.width, back.height) == (640.5, 480)
    for a, b in zip(sketch.strokes, back.strokes, strict=True):
        assert a.points.tobytes() == b.points.tobytes()  # bit-exact, the sign of 0.0 too
        assert (a.id, a.label, a.width) == (b.id, b.label, b.width)
        assert a.color.lower() == b.color.lower()


def test_export_layout_and_label_classes(tmp_path: Path) -> None:
    text = encode_svg(labelled_sketch(), tmp_path / "x.svg").decode()
    assert 'viewBox="0 0 640.5 480" width="640.5" height="480"' in text
    classes = re.findall(r'class="([^"]+)"', text)
    assert classes == ["label-dog", "label-hot-dog", "label-dog", "label-hot-dog-2", "label-label"]
    rules = dict(re.findall(r"\.(label-[\w-]+) \{ stroke: (#[0-9a-f]{6}); \}", text))
    assert set(rules) == set(classes) and len(set(rules.values())) == len(rules)
    assert text.count('fill="none"') == 5 and text.count('stroke-linecap="round"') == 5
    assert 'id="a1" data-id="a1"' in text and ' id="0bad' not in text
    assert 'd="M5 5 Z"' in text


def test_export_refuses_raster(tmp_path: Path) -> None:
    raster = Sketch(raster=np.zeros((2, 2), np.uint8), width=2, height=2)
    with pytest.raises(SketchFileError, match="r.svg: this sketch is a raster image"):
        write_sketch(raster, tmp_path / "r.svg")


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=True)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.tuples(finite, finite), min_size=1, max_size=6), min_size=1, max_size=4)
)
def test_any_points_survive_the_svg_round_trip(
    tmp_path_factory: pytest.TempPathFactory, strokes: list
) -> None:
    sketch = Sketch(strokes=tuple(Stroke(points=p) for p in strokes))
    path = tmp_path_factory.mktemp("svg") / "p.svg"
    path.write_bytes(encode_svg(sketch, path))
    back = read_sketch(path)
    for a, b in zip(sketch.strokes, back.strokes, strict=True):
        assert a.points.tobytes() == b.points.tobytes()  # bit-exact, the sign of 0.0 too


def test_too_many_points_stops_early(tmp_path: Path) -> None:
    from sketchpad.sketch.io import MAX_POINTS

    half = " 1 1" * (MAX_POINTS // 2)
    d = f"M0 0 L{half} M0 0 L{half}"  # two strokes, 1,000,002 points
    path = svg_file(tmp_path, f'<path d="{d}"/>')
    with pytest.raises(SketchFileError, match=r"drawing.svg: has 1,000,002 points"):
        read_sketch(path)
