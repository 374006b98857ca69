"""Fuzzing every importer (issue 18, item 7): whatever the bytes, reading a sketch file raises
nothing but :class:`SketchFileError`, and whatever was read can be written to every format
with nothing but :class:`SketchFileError` or :class:`SaveError` (never a wrong file).

The suite runs a quick, derandomized profile (60 examples per test). A long run by hand, with
its seed recorded (``SKETCHPAD_FUZZ_EXAMPLES`` set turns the fixed seed off)::

    SKETCHPAD_FUZZ_EXAMPLES=20000 pytest tests/sketch/test_import_fuzz.py -p no:cacheprovider \\
        --hypothesis-seed=18007 --hypothesis-show-statistics

Inputs are (a) valid files of each format damaged by byte edits (flips, cuts, insertions of
"interesting" text such as ``1e400``), and (b) SVGs built from the grammar with absurd numbers,
transforms, fills and entities.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sketchpad.atomic import SaveError
from sketchpad.sketch.io import FORMATS, SketchFileError, count_drawings, read_sketch
from sketchpad.sketch.model import Sketch, Stroke

EXAMPLES = int(os.environ.get("SKETCHPAD_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # the suite's quick profile is deterministic; a long run by hand takes --hypothesis-seed
    derandomize="SKETCHPAD_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NUMBERS = [
    "0", "-0", "1", "-1", ".5", "1e400", "-1e400", "1e308", "1e15", "1e16", "2e9", "1e-400",
    "nan", "inf", "NaN", "1_0", "1e", "--1", "0x10", "9" * 400, "1.7976931348623157e308",
]  # fmt: skip
TEXT_BITS = [
    *NUMBERS, "<", ">", "&", "&a;", "]]>", "<!ENTITY a \"b\">", "\x00", "\xff", "\u2028",
    "[", "]", "{", "}", ",", '"', "'", "<svg>", "</svg>", "<path d='M0 0 L1 1'/>", "\n",
]  # fmt: skip


def _sample_sketch() -> Sketch:
    return Sketch(
        strokes=(
            Stroke(points=[[10.0, 20.0], [30.5, 40.0], [50.0, 25.0]], label="wheel"),
            Stroke(points=[[5.0, 5.0]], width=2.0, color="#ff000080"),
            Stroke(points=[[60.0, 70.0], [80.0, 90.0]], point_labels=[1, 2]),
        ),
        width=100,
        height=100,
        metadata={"part_names": ["body", "wheel", "scale,number"]},
    )


def _seeds() -> dict[str, list[bytes]]:
    """Valid files of each readable extension, from our own writers plus hand-made ones."""
    sk = _sample_sketch()
    seeds: dict[str, list[bytes]] = {}
    with tempfile.TemporaryDirectory() as d:
        for fmt in FORMATS:
            if fmt.encode is None:
                continue
            path = Path(d) / f"x{fmt.extensions[0]}"
            seeds.setdefault(fmt.extensions[0], []).append(fmt.encode(sk, path))
    seeds[".svg"].append(
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY ns_svg "http://www.w3.org/2000/svg">]>'
        b'<svg xmlns="&ns_svg;" viewBox="0 0 10 10"><g transform="rotate(30 5 5)">'
        b'<path d="M1 1 C2 3 4 5 6 7 A2 3 10 1 0 8 9 Q1 2 3 4 T5 6 S1 2 3 4 Z" stroke="red"/>'
        b'<rect width="4" height="4" fill="white"/><circle r="2" cx="3" cy="3"/></g></svg>'
    )
    seeds[".ndjson"].append(
        b'{"word": "cat", "countrycode": "DE", "drawing": [[[1, 2, 3], [4, 5, 6], [0, 10, 20]]]}\n'
        b'{"key_id": "7", "drawing": [[[1, 2], [3, 4], [0, 1]]]}\n'
    )
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 9), 200, dtype=np.uint8)).save(buf, format="JPEG")
    seeds[".jpg"] = [buf.getvalue()]
    return seeds


SEEDS = _seeds()


@st.composite
def damaged(draw: st.DrawFn, ext: str) -> bytes:
    """A valid file of ``ext`` with a few random byte edits."""
    data = bytearray(draw(st.sampled_from(SEEDS[ext])))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete", "splice"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            i = min(pos, len(data) - 1)
            data[i] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            bit = draw(st.sampled_from(TEXT_BITS)).encode("utf-8", "surrogatepass")
            data[pos:pos] = bit
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:
            data[pos:pos] = draw(st.binary(max_size=32))
    return bytes(data)


@st.composite
def _number(draw: st.DrawFn) -> str:
    """Mostly ordinary coordinates, sometimes an edge case or any float."""
    kind = draw(st.integers(0, 9))
    if kind < 7:
        return str(draw(st.integers(-50, 200)))
    if kind < 9:
        return draw(st.sampled_from(NUMBERS))
    return repr(draw(st.floats(allow_nan=False, allow_infinity=False, width=64)))


@st.composite
def svg_documents(draw: st.DrawFn) -> bytes:
    """SVGs from the grammar: random shapes, path data, transforms, styles and entities."""
    num = _number()

    def nums(k: int) -> str:
        sep = draw(st.sampled_from([" ", ",", ", ", "\n"]))
        return sep.join(draw(num) for _ in range(k))

    def path_data() -> str:
        parts = ["M" + nums(2)]
        for _ in range(draw(st.integers(0, 6))):
            cmd = draw(st.sampled_from("MLHVCSQTAZmlhvcsqtaz"))
            k = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "A": 0, "Z": 0}[
                cmd.upper()
            ]
            if cmd.upper() == "A":
                flags = f"{draw(st.sampled_from('01'))} {draw(st.sampled_from('01'))}"
                parts.append(f"{cmd}{nums(3)} {flags} {nums(2)}")
            else:
                parts.append(cmd + nums(k * draw(st.integers(1, 3))))
        return " ".join(parts)

    def transform() -> str:
        name, k = draw(
            st.sampled_from(
                [("matrix", 6), ("translate", 2), ("scale", 1), ("rotate", 3), ("skewX", 1),
                 ("skewY", 1), ("scale", 2), ("bogus", 1)]
            )
        )  # fmt: skip
        return f"{name}({nums(k)})"

    def attrs() -> str:
        out = []
        if draw(st.booleans()):
            chain = " ".join(transform() for _ in range(draw(st.integers(1, 3))))
            out.append(f'transform="{chain}"')
        for name in ("stroke", "fill"):
            if draw(st.booleans()):
                paint = draw(st.sampled_from(["none", "#000", "red", "url(#g)", ""]))
                out.append(f'{name}="{paint}"')
        if draw(st.booleans()):
            out.append(f'stroke-width="{draw(num)}"')
        if draw(st.booleans()):
            fill = draw(st.sampled_from(["none", "blue"]))
            out.append(f'style="stroke-opacity:{draw(num)};fill:{fill}"')
        return " ".join(out)

    def shape() -> str:
        tag = draw(st.sampled_from(["path", "polyline", "polygon", "line", "rect", "circle",
                                    "ellipse", "g", "text", "defs"]))  # fmt: skip
        a = attrs()
        if tag == "path":
            return f'<path d="{path_data()}" {a}/>'
        if tag in ("polyline", "polygon"):
            return f'<{tag} points="{nums(2 * draw(st.integers(0, 4)))}" {a}/>'
        names = {"line": "x1 y1 x2 y2", "rect": "x y width height", "circle": "cx cy r",
                 "ellipse": "cx cy rx ry"}  # fmt: skip
        if tag in names:
            geometry = " ".join(f'{n}="{draw(num)}"' for n in names[tag].split())
            return f"<{tag} {geometry} {a}/>"
        inner = "".join(shape() for _ in range(draw(st.integers(0, 2))))
        return f"<{tag} {a}>{inner}</{tag}>"

    head = ""
    if draw(st.integers(0, 4)) == 3:
        ents = draw(
            st.sampled_from(
                ['<!ENTITY ns_svg "http://www.w3.org/2000/svg">', '<!ENTITY a "&b;">',
                 '<!ENTITY a SYSTEM "file:///dev/zero">', '<!ENTITY % p "x">']
            )
        )  # fmt: skip
        head = f"<!DOCTYPE svg [{ents}]>"
    ns = draw(st.sampled_from(['xmlns="http://www.w3.org/2000/svg"', ""]))
    if "ns_svg" in head:
        ns = 'xmlns="&ns_svg;"'
    box = draw(st.sampled_from(["", f' viewBox="{nums(4)}"', f' width="{draw(num)}" height="10"']))
    body = "".join(shape() for _ in range(draw(st.integers(1, 4))))
    text = f"{head}<svg {ns}{box}>{body}</svg>"
    if draw(st.integers(0, 4)) == 3:
        text = text[: draw(st.integers(0, len(text)))]  # truncated files are common (Sketchy)
    enc = draw(st.sampled_from(["utf-8", "utf-16"]))
    if enc == "utf-16":
        text = '<?xml version="1.0" encoding="UTF-16"?>' + text
    return text.encode(enc, "surrogatepass")


def check_file(ext: str, data: bytes) -> None:
    """Read (and count) ``data`` as a file of ``ext``; write what was read to every format."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{ext}"
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a RuntimeWarning (overflow, NaN) is a bug too
            try:
                n = count_drawings(path)
                sketch = read_sketch(path, index=min(1, n - 1) if n > 0 else 0)
            except SketchFileError as e:
                assert path.name in str(e)
                return
            for fmt in FORMATS:
                if fmt.encode is None:
                    continue
                out = Path(d) / f"out{fmt.extensions[0]}"
                try:
                    fmt.encode(sketch, out)
                except (SketchFileError, SaveError) as e:
                    assert out.name in str(e)


@FUZZ
@given(data=damaged(".svg"))
def test_fuzz_svg_bytes(data: bytes) -> None:
    check_file(".svg", data)


@FUZZ
@given(data=svg_documents())
def test_fuzz_svg_grammar(data: bytes) -> None:
    check_file(".svg", data)


@FUZZ
@given(data=damaged(".json"))
def test_fuzz_json(data: bytes) -> None:
    check_file(".json", data)


@FUZZ
@given(data=damaged(".ndjson"))
def test_fuzz_ndjson(data: bytes) -> None:
    check_file(".ndjson", data)


@FUZZ
@given(data=damaged(".npz"))
def test_fuzz_npz(data: bytes) -> None:
    check_file(".npz", data)


@FUZZ
@given(data=damaged(".npy"))
def test_fuzz_npy(data: bytes) -> None:
    check_file(".npy", data)


@FUZZ
@given(data=damaged(".png"))
def test_fuzz_png(data: bytes) -> None:
    check_file(".png", data)


@FUZZ
@given(data=damaged(".jpg"))
def test_fuzz_jpeg(data: bytes) -> None:
    check_file(".jpg", data)


@FUZZ
@given(
    ext=st.sampled_from(sorted({e for f in FORMATS for e in f.extensions})),
    data=st.binary(max_size=512),
)
def test_fuzz_random_bytes(ext: str, data: bytes) -> None:
    check_file(ext, data)


@FUZZ
@given(
    xy=st.lists(
        st.tuples(
            st.floats(allow_nan=False, allow_infinity=False),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=6,
    ),
    ext=st.sampled_from([".ndjson", ".json", ".npy"]),
)
def test_fuzz_numbers_in_text_formats(xy: list[tuple[float, float]], ext: str) -> None:
    """Any finite coordinates in a file: read back as written, or refused by name."""
    xs, ys = [p[0] for p in xy], [p[1] for p in xy]
    if ext == ".ndjson":
        import json

        data = (json.dumps({"drawing": [[xs, ys]]}) + "\n").encode()
    elif ext == ".json":
        import json

        doc = {"format": "sketchpad-sketch", "version": 1, "canvas": {"width": 10, "height": 10},
               "strokes": [{"id": "a", "points": [list(p) for p in xy]}]}  # fmt: skip
        data = json.dumps(doc).encode()
    else:
        buf = io.BytesIO()
        pen = np.zeros((len(xy), 1))
        np.save(buf, np.concatenate([np.array(xy, dtype=np.float64), pen], axis=1))
        data = buf.getvalue()
    check_file(ext, data)
