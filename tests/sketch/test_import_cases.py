"""Sketch files made by other programs (issue 18, item 7): fills, absurd numbers, exports that
cannot hold a coordinate, streaming point caps and hostile XML. One test per case measured."""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from sketchpad.sketch.formats import _common, svg_path
from sketchpad.sketch.io import SketchFileError, read_sketch, write_sketch
from sketchpad.sketch.model import Sketch, Stroke
from sketchpad.sketch.raster import rasterize

NS = 'xmlns="http://www.w3.org/2000/svg"'
HEAD = f'<svg {NS} viewBox="0 0 100 100">'
LINE = '<path d="M10 10 L50 50" stroke="#000"/>'


def svg(tmp_path: Path, text: str, name: str = "drawing.svg", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def refused(path: Path, *words: str) -> str:
    with pytest.raises(SketchFileError) as info:
        read_sketch(path)
    message = str(info.value)
    assert path.name in message, message
    for w in words:
        assert w in message, message
    return message


# ---------------------------------------------------------------- fills are not strokes


def test_sketch_rnn_sample_background_rect_is_not_a_frame(tmp_path: Path) -> None:
    # What sketch-rnn's draw_strokes writes through svgwrite: a white background rect, then
    # one stroked, unfilled path (its three sample SVGs all came in with a frame).
    path = svg(
        tmp_path,
        '<?xml version="1.0" encoding="utf-8" ?>\n<svg baseProfile="full" height="95" '
        f'version="1.1" width="120" {NS} xmlns:ev="http://www.w3.org/2001/xml-events" '
        'xmlns:xlink="http://www.w3.org/1999/xlink"><defs /><rect fill="white" height="95" '
        'width="120" x="0" y="0" /><path d="M25.0,25.0 m10.0,5.0 l20.0,10.0 l5.0,-5.0 '
        'm-30.0,20.0 l40.0,0.0 " fill="none" stroke="black" stroke-width="1.0" /></svg>',
    )
    s = read_sketch(path)
    assert len(s.strokes) == 2 and s.bbox() == (30, 30, 70, 55)
    assert any("filled shape" in w for w in s.metadata["import_warnings"])


@pytest.mark.parametrize(
    ("shape", "kept"),
    [
        ('<rect width="80" height="80" fill="#fff"/>', False),  # fill set, stroke absent
        ('<rect width="80" height="80" style="fill: red"/>', False),  # the same, in CSS
        ('<circle cx="50" cy="50" r="20" fill="blue" stroke="none"/>', False),
        ('<g fill="white"><rect width="80" height="80"/></g>', False),  # an inherited fill
        ('<rect width="80" height="80" stroke="none"/>', False),  # nothing is drawn
        ('<rect width="80" height="80" fill="#fff" stroke="#000"/>', True),  # outline kept
        ('<g stroke="black"><rect width="80" height="80" fill="gray"/></g>', True),
        ('<rect width="80" height="80"/>', True),  # bare sketch files: outlines
        ('<rect width="80" height="80" fill="none"/>', False),  # SVG draws nothing here
    ],
)
def test_fill_only_shapes_are_not_strokes(tmp_path: Path, shape: str, kept: bool) -> None:
    s = read_sketch(svg(tmp_path, HEAD + shape + LINE + "</svg>"))
    assert len(s.strokes) == (2 if kept else 1)


# ---------------------------------------------------------------- absurd numbers


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (f'<g transform="scale(1e400)">{LINE}</g>', ("<g>", "out of range")),
        ('<path d="M1 1 A1e400 1e400 0 0 1 5 5" stroke="#000"/>', ("<path>", "out of range")),
        (f'<g transform="skewX(90)">{LINE}</g>', ("skewX(90)", "degenerate")),
        (f'<g transform="skewY(-90)">{LINE}</g>', ("skewY(-90)",)),
        ('<path d="M1 1 L1e300 5" stroke="#000"/>', ("1e+300", "out of range")),
        ('<path d="M1 1 L5 5 1e400 1" stroke="#000"/>', ("out of range",)),
        ('<polyline points="1 1 5 1e999" stroke="#000"/>', ("out of range",)),
        ('<path d="M1 1 L2e12 5" stroke="#000"/>', ("coordinate of 2e+12", "out of range")),
        ('<path d="M1 1 L5 5" stroke="#000" stroke-width="1e12"/>', ("stroke width",)),
        (
            '<g transform="scale(1e8)"><g transform="scale(1e8)">' + LINE + "</g></g>",
            ("transforms together",),
        ),
        (f'<g transform="matrix(1 0 0 1 1e300 0)">{LINE}</g>', ("out of range",)),
    ],
)
def test_absurd_numbers_are_clear_errors(tmp_path: Path, body: str, words: tuple[str]) -> None:
    refused(svg(tmp_path, HEAD + body + "</svg>"), *words)


@pytest.mark.parametrize(
    ("d", "refusal"),
    [
        # found by the fuzzer (ZeroDivisionError): the ellipse is scaled up to 1.7e114 to
        # reach its end point, as SVG says, so the arc is refused like any absurd coordinate
        ("M0 1 A1 2.929400057373855e-115 0 0 0 0 0", "a coordinate of 1.70683e+114"),
        ("M10 0 A1 1e15 0 0 0 0 0", "a coordinate of 5e+15"),  # the second run's find
        ("M0 1e3 A1e-190 1e-190 0 0 0 0 0", None),  # (x / r) ** 2 raised OverflowError
        ("M0 10 A1e-320 1 0 0 0 0 0", None),
        ("M0 0 A5e-324 5e-324 0 0 1 1 1", None),
    ],
)
def test_arcs_with_extreme_radii_read_or_are_refused(
    tmp_path: Path, d: str, refusal: str | None
) -> None:
    """Finite points or the usual clear refusal: never an arithmetic exception."""
    path = svg(tmp_path, f'{HEAD}<path stroke="#000" d="{d}"/></svg>')
    if refusal is not None:
        refused(path, refusal, "out of range")
        return
    pts = read_sketch(path).strokes[0].points
    assert np.isfinite(pts).all() and 2 <= len(pts) <= svg_path.MAX_PIECES + 1


def test_absurd_viewbox_is_a_clear_error(tmp_path: Path) -> None:
    refused(svg(tmp_path, f'<svg {NS} viewBox="0 0 1e400 10">{LINE}</svg>'), "viewBox")
    refused(svg(tmp_path, f'<svg {NS} viewBox="0 0 5e9 10">{LINE}</svg>'), "canvas")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("x.ndjson", '{"key_id": "1", "drawing": [[[1, 2], [3, 4], [1e400, 1]]]}\n'),
        ("x.ndjson", '{"word": "cat", "drawing": [[[1, 2], [3, 4], [0, 1e400]]]}\n'),
        ("x.ndjson", '{"drawing": [[[1, 1e400], [3, 4]]]}\n'),
        ("x.json", '{"format": "sketchpad-sketch", "version": 1, "canvas": {"width": 1e400}}'),
    ],
)
def test_json_numbers_that_read_as_infinity_are_clear_errors(
    tmp_path: Path, name: str, text: str
) -> None:
    """Python's json reads 1e400 as inf; in a third list it used to end in a RuntimeWarning
    (NumPy's remainder of inf) before any check saw it."""
    path = tmp_path / name
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refused(path, "1e400", "too large to represent")


def test_huge_coordinates_in_other_formats(tmp_path: Path) -> None:
    nd = tmp_path / "big.ndjson"
    nd.write_text('{"drawing": [[[0, 1e300], [0, 1]]]}\n')
    refused(nd, "line 1, stroke 0", "out of range")
    labels = tmp_path / "labels.ndjson"
    labels.write_text('{"key_id": "1", "drawing": [[[0, 1], [0, 1], [0, 1e300]]]}\n')
    refused(labels, "point label")
    js = tmp_path / "big.json"
    js.write_text(
        '{"format": "sketchpad-sketch", "version": 1, "canvas": {"width": 10, "height": 10},'
        ' "strokes": [{"id": "a", "points": [[0, 0], [1e300, 0]]}]}'
    )
    refused(js, "out of range")
    npy = tmp_path / "big.npy"
    np.save(npy, np.array([[0.0, 0.0, 0.0], [1e300, 1.0, 1.0]]))
    refused(npy, "out of range")


def test_npz_with_a_nameless_zip_entry(tmp_path: Path) -> None:
    """Found by the fuzzer: ZipInfo.is_dir() raised IndexError on an empty name."""
    import zipfile

    path = tmp_path / "nameless.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo(""), b"\x93NUMPY")
    refused(path, "no name")


# ---------------------------------------------------------------- exports refuse, never corrupt


def far_sketch(x: float) -> Sketch:
    """A sketch made in memory (not read from a file, so not range-checked)."""
    return Sketch(strokes=(Stroke(points=[[0.0, 0.0], [x, 5.0], [3.0, 4.0]]),), width=10, height=10)


def test_npz_export_refuses_what_int_stroke3_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(SketchFileError, match="too large to save as Sketch-RNN") as info:
        write_sketch(far_sketch(1e300), tmp_path / "far.npz")
    assert "far.npz" in str(info.value)
    assert not (tmp_path / "far.npz").exists()
    # within int16 steps the drawing is written exactly
    write_sketch(far_sketch(700.0), tmp_path / "ok.npz")
    back = read_sketch(tmp_path / "ok.npz")
    assert np.array_equal(
        back.strokes[0].points - back.strokes[0].points.min(axis=0),
        np.array([[0, 0], [700, 5], [3, 4]], dtype=float),
    )


@pytest.mark.parametrize("ext", [".json", ".svg", ".ndjson", ".npz", ".npy", ".png"])
def test_no_export_writes_what_its_reader_would_refuse(tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"far{ext}"
    with pytest.raises(SketchFileError, match="too large to save as") as info:
        write_sketch(far_sketch(2e9), out)
    assert out.name in str(info.value) and not out.exists()
    write_sketch(far_sketch(5e8) if ext not in (".npz", ".png") else far_sketch(50.0), out)
    assert len(read_sketch(out).strokes) in (0, 1)  # written and read back (PNG: raster)


@pytest.mark.parametrize("ext", [".json", ".svg", ".png", ".ndjson", ".npy", ".npz"])
def test_no_export_writes_a_canvas_its_reader_would_refuse(tmp_path: Path, ext: str) -> None:
    huge = Sketch(strokes=(Stroke(points=[[1.0, 2.0], [3.0, 4.0]]),), width=2e9, height=10)
    if ext in (".ndjson", ".npy", ".npz"):  # these formats do not store the canvas
        write_sketch(huge, tmp_path / f"huge{ext}")
        assert read_sketch(tmp_path / f"huge{ext}").strokes
        return
    with pytest.raises(SketchFileError, match="canvas"):
        write_sketch(huge, tmp_path / f"huge{ext}")


def test_png_export_refuses_unrepresentable_coordinates(tmp_path: Path) -> None:
    with pytest.raises(SketchFileError, match="too large to save as PNG"):
        write_sketch(far_sketch(1e300), tmp_path / "far.png")
    assert not (tmp_path / "far.png").exists()


def test_raster_of_a_far_point_is_the_clipped_line() -> None:
    """A segment reaching millions of pixels outside the image draws exactly its visible
    part (before: one 8-pixel piece per 8 pixels of length, 58 PiB for skewX(90))."""
    near = Sketch(
        strokes=(Stroke(points=[[10.0, 20.0], [400.0, 60.0]], width=3),), width=100, height=100
    )
    far_end = np.array([10.0, 20.0]) + (np.array([390.0, 40.0]) * 2e6)
    far = near.with_strokes([near.strokes[0].replace(points=np.array([[10.0, 20.0], far_end]))])
    frame_args = {"line_width": None}
    from sketchpad.sketch.raster import canvas_frame

    a = rasterize(near, (100, 100), frame=canvas_frame(near, (100, 100)), **frame_args)
    b = rasterize(far, (100, 100), frame=canvas_frame(far, (100, 100)), **frame_args)
    assert (a < 255).sum() > 100
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_raster_of_a_line_wider_than_the_image() -> None:
    wide = Sketch(
        strokes=(Stroke(points=[[-50.0, 5.0], [60.0, 5.0]], width=1e6),), width=10, height=10
    )
    from sketchpad.sketch.raster import canvas_frame

    out = rasterize(wide, (10, 10), frame=canvas_frame(wide, (10, 10)), line_width=None)
    assert (out == 0).all()  # every pixel fully inked, nothing huge allocated


def test_raster_refuses_what_float64_cannot_place() -> None:
    with pytest.raises(ValueError, match="too far to draw exactly"):
        from sketchpad.sketch.raster import Frame

        rasterize(far_sketch(1e300), (10, 10), frame=Frame(1.0, 0.0, 0.0))


# ---------------------------------------------------------------- streaming point caps


def test_point_cap_applies_while_a_long_path_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 6 MB one-path SVG over the cap is refused before its numbers all exist as Python
    objects (before: every token split out first, ~30× the file in memory)."""
    monkeypatch.setattr(_common, "MAX_POINTS", 20_000)
    monkeypatch.setattr("sketchpad.sketch.formats.svg.MAX_POINTS", 20_000)
    rng = np.random.default_rng(0)
    nums = " ".join(str(v) for v in rng.integers(0, 1000, 1_000_000).tolist())
    path = svg(tmp_path, f'{HEAD}<path stroke="#000" d="M0 0 L{nums}"/></svg>')
    size = path.stat().st_size
    tracemalloc.start()
    try:
        refused(path, "more than the 20,000 points")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * size, (peak, size)  # measured: 16.8 MB (was 268 MB) for 3.9 MB


@pytest.mark.parametrize("sep", [" ", ",", "\n", ", "])
@pytest.mark.parametrize("relative", [False, True])
def test_long_coordinate_runs_read_exactly_across_chunks(
    sep: str, relative: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(svg_path, "_CHUNK_CHARS", 97)  # many chunk boundaries, odd sizes
    rng = np.random.default_rng(1)
    pts = rng.integers(-500, 500, (400, 2)).astype(float) + rng.choice([0, 0.5, 0.25], (400, 2))
    text = sep.join(f"{x!r}{sep}{y!r}" for x, y in pts[1:].tolist())
    cmd = "l" if relative else "L"
    x0, y0 = pts[0].tolist()
    got, _ = svg_path.flatten_path(f"M{x0!r} {y0!r} {cmd}{text}", np.eye(3))
    want = np.cumsum(pts, axis=0) if relative else pts
    assert len(got) == 1 and np.array_equal(got[0], want)


def test_compact_numbers_read_exactly_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svg_path, "_CHUNK_CHARS", 50)
    pts = [(i % 7 - 3, -(i % 5) - 1) for i in range(300)]
    text = "".join(f"{x}{y}" if x < 0 else f" {x}{y}" for x, y in pts)  # "-3-1 0-2 ..."
    got, _ = svg_path.flatten_path("M0 0L" + text, np.eye(3))
    assert got[0][1:].tolist() == [list(map(float, p)) for p in pts]


# ---------------------------------------------------------------- XML safety


ILLUSTRATOR = (
    '<?xml version="1.0" encoding="{enc}"?>\n'
    "<!-- Generator: Adobe Illustrator 24.0.0, SVG Export Plug-In . SVG Version: 6.00 -->\n"
    '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [\n'
    '\t<!ENTITY ns_extend "http://ns.adobe.com/Extensibility/1.0/">\n'
    '\t<!ENTITY ns_ai "http://ns.adobe.com/AdobeIllustrator/10.0/">\n'
    '\t<!ENTITY ns_graphs "http://ns.adobe.com/Graphs/1.0/">\n'
    '\t<!ENTITY ns_svg "http://www.w3.org/2000/svg">\n'
    '\t<!ENTITY ns_xlink "http://www.w3.org/1999/xlink">\n'
    "]>\n"
    '<svg version="1.1" xmlns:x="&ns_extend;" xmlns:i="&ns_ai;" xmlns:graph="&ns_graphs;" '
    'xmlns="&ns_svg;" xmlns:xlink="&ns_xlink;" viewBox="0 0 100 100">'
    '<g i:extraneous="self"><path fill="none" stroke="#000000" d="M10,10L50,50"/></g></svg>'
)


@pytest.mark.parametrize("enc", ["utf-8", "utf-16", "utf-16-be"])
def test_illustrator_prolog_is_read(tmp_path: Path, enc: str) -> None:
    text = ILLUSTRATOR.replace("{enc}", "UTF-16" if enc == "utf-16-be" else enc.upper())
    data = b"\xfe\xff" + text.encode(enc) if enc == "utf-16-be" else text.encode(enc)
    path = tmp_path / "ai.svg"
    path.write_bytes(data)
    s = read_sketch(path)
    assert len(s.strokes) == 1 and s.bbox() == (10, 10, 50, 50)


def billion_laughs(levels: int = 10) -> str:
    ents = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels)
    ]
    return (
        '<?xml version="1.0" encoding="{enc}"?><!DOCTYPE svg [' + "".join(ents) + "]>"
        f"<svg {NS}><title>&lol{levels - 1};</title>{LINE}</svg>"
    )


@pytest.mark.parametrize("enc", ["utf-8", "utf-16"])
def test_entity_bombs_are_refused_in_every_encoding(tmp_path: Path, enc: str) -> None:
    text = billion_laughs().replace("{enc}", enc.upper())
    refused(svg(tmp_path, text, encoding=enc), "refused for safety", "entit")


def test_quadratic_blowup_is_refused(tmp_path: Path) -> None:
    """One plain 1000-character entity referenced 100,000 times (100 MB from 300 kB)."""
    text = (
        f'<!DOCTYPE svg [<!ENTITY a "{"a" * 1000}">]><svg {NS}><title>{"&a;" * 100_000}'
        f"</title>{LINE}</svg>"
    )
    refused(svg(tmp_path, text), "refused for safety", "expand too much")


@pytest.mark.parametrize(
    ("decl", "words"),
    [
        ('<!ENTITY x SYSTEM "file:///etc/passwd">', "external entity"),
        ('<!ENTITY x PUBLIC "-//x//y" "http://example.invalid/x">', "external entity"),
        ("<!ENTITY % p \"<!ENTITY x 'y'>\"> %p;", "parameter entity"),
        ("<!ENTITY x \"<path d='M0 0 L9 9'/>\">", "markup"),
        ('<!ENTITY x "' + "y" * 5000 + '">', "too long"),
    ],
)
def test_other_entities_are_refused(tmp_path: Path, decl: str, words: str) -> None:
    text = f"<!DOCTYPE svg [{decl}]><svg {NS}><title>&x;</title>{LINE}</svg>"
    refused(svg(tmp_path, text), "refused for safety", words)


def test_unknown_encoding_is_a_clear_error(tmp_path: Path) -> None:
    """Found by the fuzzer: encoding="U0TF-8" escaped as LookupError."""
    text = f'<?xml version="1.0" encoding="U0TF-8"?><svg {NS}>{LINE}</svg>'
    refused(svg(tmp_path, text), "encoding")


def test_too_many_entities_are_refused(tmp_path: Path) -> None:
    decls = "".join(f'<!ENTITY e{i} "v">' for i in range(65))
    text = f"<!DOCTYPE svg [{decls}]><svg {NS}><title>&e1;</title>{LINE}</svg>"
    refused(svg(tmp_path, text), "refused for safety", "too many")
    ok = "".join(f'<!ENTITY e{i} "v">' for i in range(64))
    assert len(read_sketch(svg(tmp_path, f"<!DOCTYPE svg [{ok}]><svg {NS}>{LINE}</svg>")).strokes)


def test_external_dtd_subset_is_not_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret.dtd"
    secret.write_text('<!ENTITY leak "SECRET">')
    text = f'<!DOCTYPE svg SYSTEM "{secret.as_uri()}"><svg {NS}><title>t</title>{LINE}</svg>'
    s = read_sketch(svg(tmp_path, text))  # the DTD is neither read nor needed
    assert len(s.strokes) == 1
