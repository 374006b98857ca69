"""Photo folders and photo decoding (DESIGN §5 "Scan" and "Load"): every file handled, every
skipped file reported with a reason code and a message naming it, no crash, no hang, no photo
listed twice. All files are generated under tmp_path."""

from __future__ import annotations

import ast
import dataclasses
import errno
import io
import os
import pickle
import random
import re
import struct
import sys
import threading
import unicodedata
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import EpsImagePlugin, Image, ImageFile, ImageOps

from sketchpad.gallery import decode, images
from sketchpad.gallery.images import (
    MAX_PIXELS,
    REASON_CODES,
    PhotoError,
    ScanResult,
    expand_photo_args,
    load_photo,
    natural_key,
    scan_folder,
    scan_photos,
)
from sketchpad.gallery.samples import jpeg_declaring, png_declaring

PKG = Path(__file__).resolve().parents[2] / "sketchpad"
needs_symlinks = pytest.mark.skipif(
    not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symbolic links"
)
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")
pillow_noise = pytest.mark.filterwarnings("ignore::UserWarning")  # "Corrupt EXIF data" …


# --------------------------------------------------------------------------- helpers


def pattern(h: int = 6, w: int = 10) -> np.ndarray:
    """An asymmetric RGB image: every flip and rotation of it is different."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack(
        [x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x * 7 + y * 3) % 256], axis=2
    ).astype(np.uint8)


def noise(h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(
    path: Path | io.BytesIO, im: Image.Image | np.ndarray, fmt: str | None = None, **kw: Any
) -> Any:
    if isinstance(im, np.ndarray):
        im = Image.fromarray(im)
    im.save(path, fmt, **kw)
    return path


def encoded(im: Image.Image | np.ndarray, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    save(buf, im, fmt, **kw)
    return buf.getvalue()


def tiff_rgb16(a: np.ndarray) -> bytes:
    """An uncompressed little-endian RGB TIFF, 16 bits a sample (Pillow cannot write one)."""
    h, w, _ = a.shape
    data = a.astype("<u2").tobytes()
    n = 10
    bps_at = 8 + 2 + n * 12 + 4
    data_at = bps_at + 6

    def short(tag: int, v: int) -> bytes:
        return struct.pack("<HHIHH", tag, 3, 1, v, 0)

    def long(tag: int, v: int, typ: int = 4, count: int = 1) -> bytes:
        return struct.pack("<HHII", tag, typ, count, v)

    ifd = [
        short(256, w),
        short(257, h),
        long(258, bps_at, 3, 3),
        short(259, 1),
        short(262, 2),
        long(273, data_at),
        short(277, 3),
        short(278, h),
        long(279, len(data)),
        short(284, 1),
    ]
    return (
        b"II*\x00"
        + struct.pack("<I", 8)
        + struct.pack("<H", n)
        + b"".join(ifd)
        + struct.pack("<I", 0)
        + struct.pack("<HHH", 16, 16, 16)
        + data
    )


def psd_bytes(w: int = 4, h: int = 3) -> bytes:
    """A minimal, valid 8-bit RGB Photoshop file."""
    return (
        b"8BPS"
        + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3)
        + struct.pack(">III", 0, 0, 0)
        + struct.pack(">H", 0)
        + bytes(range(w * h * 3))
    )


def error_of(path: Path, **kw: Any) -> PhotoError:
    with pytest.raises(PhotoError) as info:
        load_photo(path, **kw)
    e = info.value
    assert e.code in REASON_CODES
    assert e.path == path and shown(path) in str(e)  # the message names the file
    return e


def shown(path: Path) -> str:
    """How a message prints a path (undecodable bytes as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def codes(result: ScanResult) -> dict[str, str]:
    return {e.path.name: e.code for e in result.skipped}


def finishes(fn: Callable[[], object], seconds: float = 5.0) -> object:
    """Run fn in a thread: a call that would block (a FIFO opened) fails instead of hanging."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed back to the test's thread
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked (a FIFO was opened?)"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


# --------------------------------------------------------------------------- PhotoError


def test_photo_error_old_two_argument_call_and_codes() -> None:
    e = PhotoError(Path("a/b.jpg"), "cannot decode")
    assert (e.path, e.reason, e.code) == (Path("a/b.jpg"), "cannot decode", "corrupt")
    assert str(e) == f"{Path('a/b.jpg')}: cannot decode"
    assert PhotoError("x.png", "gone", "vanished").code == "vanished"
    with pytest.raises(ValueError, match="unknown PhotoError code"):
        PhotoError("x.png", "?", "nonsense")
    assert REASON_CODES == {
        "not-found",
        "vanished",
        "permission",
        "not-regular",
        "not-a-folder",
        "loop",
        "duplicate",
        "io-error",
        "empty",
        "unsupported",
        "truncated",
        "corrupt",
        "bomb",
        "memory",
    }


def test_photo_error_pickles_for_worker_processes() -> None:
    e = pickle.loads(pickle.dumps(PhotoError(Path("p/q.jpg"), "truncated data", "truncated")))
    assert (e.path, e.reason, e.code, str(e)) == (
        Path("p/q.jpg"),
        "truncated data",
        "truncated",
        f"{Path('p/q.jpg')}: truncated data",
    )


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="needs byte file names")
def test_undecodable_file_name_gives_a_printable_message(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"bad\xff name.jpg")
    with open(raw, "wb") as f:
        f.write(b"not an image")
    (path,) = scan_photos(tmp_path)
    e = error_of(path)
    assert e.code == "corrupt"
    str(e).encode("utf-8")  # no lone surrogates: safe to print or log
    assert "bad\\xff name.jpg" in str(e)  # the byte as \xNN: two such names stay apart


# --------------------------------------------------------------------------- scan


def test_extension_allow_list_any_case(tmp_path: Path) -> None:
    for name in [
        "a.JPG",
        "b.jpeg",
        "c.PNG",
        "d.Tif",
        "e.tiff",
        "f.webp",
        "g.gif",
        "h.bmp",
        "i.txt",
        "j",
        "k.jpg.bak",
        "l.heic",
        ".jpg",
        "m.psd",
        "n.AVIF",
        "o.NEF",
        "p.dng",
        "q.HIF",
        "r.cr3",
    ]:
        (tmp_path / name).write_bytes(b"x")
    result = scan_folder(tmp_path)
    assert [p.name for p in result.photos] == [
        "a.JPG",
        "b.jpeg",
        "c.PNG",
        "d.Tif",
        "e.tiff",
        "f.webp",
        "g.gif",
        "h.bmp",
        "l.heic",
        "n.AVIF",
        "o.NEF",
        "p.dng",
        "q.HIF",
        "r.cr3",
    ]
    assert result.skipped == ()  # other names are not photos: ignored, not reported
    assert scan_photos(tmp_path) == list(result.photos)
    assert scan_photos(tmp_path, True) == scan_photos(tmp_path, recursive=True)


def test_natural_sort(tmp_path: Path) -> None:
    names = [
        "img10.jpg",
        "img2.jpg",
        "IMG3.jpg",
        "img1.jpg",
        "img02.jpg",
        "a100b2.jpg",
        "a100b10.jpg",
        "a99.jpg",
    ]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    got = [p.name for p in scan_photos(tmp_path)]
    assert got == [
        "a99.jpg",
        "a100b2.jpg",
        "a100b10.jpg",
        "img1.jpg",
        "img02.jpg",
        "img2.jpg",
        "IMG3.jpg",
        "img10.jpg",
    ]  # equal numbers ("02", "2"): by the exact name


def test_natural_sort_folders_recursive(tmp_path: Path) -> None:
    for sub in ["s10", "s2", "s1"]:
        (tmp_path / sub).mkdir()
        for n in ["p10.png", "p9.png"]:
            (tmp_path / sub / n).write_bytes(b"x")
    (tmp_path / "top.png").write_bytes(b"x")
    got = [p.relative_to(tmp_path).as_posix() for p in scan_photos(tmp_path, recursive=True)]
    assert got == [
        "s1/p9.png",
        "s1/p10.png",
        "s2/p9.png",
        "s2/p10.png",
        "s10/p9.png",
        "s10/p10.png",
        "top.png",
    ]
    assert scan_photos(tmp_path) == [tmp_path / "top.png"]  # not recursive by default


def test_natural_key_edge_cases() -> None:
    assert natural_key("img2") < natural_key("img10") < natural_key("img100")
    assert natural_key("x٣") < natural_key("x12")  # Arabic-Indic 3 compares as a number
    long_run = "9" * 5000  # more digits than int() accepts by default: still fine
    assert natural_key("a" + long_run) > natural_key("a" + "9" * 4999)
    assert natural_key("²") != natural_key("2")  # superscript: not a decimal digit, no crash
    nfd, nfc = unicodedata.normalize("NFD", "é1"), "é1"
    assert natural_key(nfd)[0] == natural_key(nfc)[0]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=2, max_size=8))
def test_natural_key_is_a_total_order(names: list[str]) -> None:
    keys = [natural_key(n) for n in names]
    ordered = sorted(names, key=natural_key)
    assert sorted(reversed(names), key=natural_key) == ordered  # independent of input order
    assert len(set(keys)) == len(set(names))  # distinct names never tie


def test_unicode_emoji_and_space_names(tmp_path: Path) -> None:
    names = [
        "фото 1.jpg",
        "😀 smile.png",
        "a b  c.png",
        "日本語.jpeg",
        unicodedata.normalize("NFD", "café.png"),
        "tab\tname.png",
    ]
    for i, n in enumerate(names):
        save(tmp_path / n, noise(4, 5, seed=i), "PNG")
    photos = scan_photos(tmp_path)
    assert sorted(p.name for p in photos) == sorted(names)
    for p in photos:
        a = load_photo(p)
        assert a.shape == (4, 5, 3)


def test_empty_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "one.jpg").write_bytes(encoded(noise(), "JPEG"))
    result = scan_folder(tmp_path)
    assert result.photos == (tmp_path / "one.jpg",)
    assert codes(result) == {"zero.jpg": "empty"}
    assert "zero.jpg" in str(result.skipped[0])


def test_folder_named_like_a_photo(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").mkdir()
    save(tmp_path / "x.jpg" / "inner.png", noise(), "PNG")
    result = scan_folder(tmp_path)
    assert result.photos == ()
    assert codes(result) == {"x.jpg": "not-regular"}
    assert "x.jpg" in str(result.skipped[0]) and "folder" in result.skipped[0].reason
    deep = scan_folder(tmp_path, recursive=True)  # recursing, it is a folder like any other
    assert deep.photos == (tmp_path / "x.jpg" / "inner.png",) and deep.skipped == ()


@needs_fifo
def test_fifo_named_like_a_photo_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    save(tmp_path / "y.png", noise(), "PNG")
    result = finishes(lambda: scan_folder(tmp_path, recursive=True))
    assert isinstance(result, ScanResult)
    assert result.photos == (tmp_path / "y.png",)
    assert codes(result) == {"x.jpg": "not-regular"}
    assert "FIFO" in result.skipped[0].reason and "x.jpg" in str(result.skipped[0])
    with pytest.raises(PhotoError) as info:
        finishes(lambda: load_photo(fifo))
    assert info.value.code == "not-regular"
    photos, problems = finishes(lambda: expand_photo_args([fifo]))  # type: ignore[misc]
    assert photos == [] and [p.code for p in problems] == ["not-regular"]


@needs_symlinks
def test_dangling_and_self_referencing_links(tmp_path: Path) -> None:
    os.symlink(tmp_path / "missing.png", tmp_path / "dangling.jpg")
    os.symlink("self.jpg", tmp_path / "self.jpg")
    result = scan_folder(tmp_path)
    assert result.photos == ()
    assert codes(result) == {"dangling.jpg": "not-found", "self.jpg": "loop"}
    dangling = next(e for e in result.skipped if e.code == "not-found")
    assert "broken symbolic link" in dangling.reason and "missing.png" in dangling.reason
    assert error_of(tmp_path / "dangling.jpg").code == "not-found"
    assert error_of(tmp_path / "self.jpg").code == "loop"


@needs_symlinks
def test_symlink_loop_terminates_and_lists_each_photo_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    save(root / "a.png", noise(), "PNG")
    save(root / "sub" / "b.png", noise(), "PNG")
    os.symlink(root, root / "sub" / "up")  # sub/up → root: a loop
    os.symlink("..", root / "sub" / "parent")  # relative, same loop
    os.symlink(root / "sub", root / "again")  # a second route into sub
    result = scan_folder(root, recursive=True)
    assert result.photos == (root / "a.png", root / "sub" / "b.png")  # real paths win
    assert codes(result) == {"again": "duplicate", "parent": "loop", "up": "loop"}
    assert all("symbolic link back to" in e.reason for e in result.skipped if e.code == "loop")


@needs_symlinks
def test_two_links_to_one_file_count_once(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = save(outside / "t.png", noise(), "PNG")
    folder = tmp_path / "photos"
    folder.mkdir()
    os.symlink(target, folder / "link2.png")
    os.symlink(target, folder / "link1.png")
    result = scan_folder(folder)
    assert result.photos == (folder / "link1.png",)
    assert codes(result) == {"link2.png": "duplicate"}
    assert "link1.png" in result.skipped[0].reason
    os.link(target, folder / "hard.png")  # a hard link is the same file too
    os.symlink(folder / "hard.png", folder / "a_link.png")
    result = scan_folder(folder)
    assert result.photos == (folder / "hard.png",)  # the real entry wins over the links
    assert set(codes(result)) == {"a_link.png", "link1.png", "link2.png"}


class _Listing:
    """Stands in for os.scandir's iterator (a context manager), with a hook after listing."""

    def __init__(self, entries: list[os.DirEntry[str]]) -> None:
        self.entries = entries

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> Any:
        return iter(self.entries)


def test_file_deleted_during_scan_is_vanished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in ["a.png", "gone.png", "z.png"]:
        save(tmp_path / n, noise(), "PNG")
    real_scandir = os.scandir

    def scandir_then_delete(path: Any) -> _Listing:
        with real_scandir(path) as it:
            entries = list(it)
        (tmp_path / "gone.png").unlink()  # between the listing and the stat
        return _Listing(entries)

    monkeypatch.setattr(images.os, "scandir", scandir_then_delete)
    result = scan_folder(tmp_path)
    assert result.photos == (tmp_path / "a.png", tmp_path / "z.png")
    assert codes(result) == {"gone.png": "vanished"}
    assert "gone.png" in str(result.skipped[0])


def test_unlistable_or_vanished_subfolders_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for sub in ["locked", "gone", "ok"]:
        (tmp_path / sub).mkdir()
        save(tmp_path / sub / "p.png", noise(), "PNG")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        name = Path(path).name
        if name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        if name == "gone":
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        return real_scandir(path)

    monkeypatch.setattr(images.os, "scandir", scandir)
    result = scan_folder(tmp_path, recursive=True)
    assert result.photos == (tmp_path / "ok" / "p.png",)
    assert codes(result) == {"gone": "vanished", "locked": "permission"}
    with pytest.raises(PhotoError) as info:
        scan_folder(tmp_path / "locked")  # the folder asked for itself: an error
    assert info.value.code == "permission"


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root reads everything")
def test_real_unreadable_folder_and_file(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    save(locked / "p.png", noise(), "PNG")
    secret = save(tmp_path / "secret.png", noise(), "PNG")
    locked.chmod(0)
    secret.chmod(0)
    try:
        result = scan_folder(tmp_path, recursive=True)
        assert codes(result) == {"locked": "permission"}
        assert result.photos == (secret,)
        assert error_of(secret).code == "permission"
    finally:
        locked.chmod(0o700)
        secret.chmod(0o600)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(PhotoError) as info:
        scan_folder(tmp_path / "nope")
    assert info.value.code == "not-found" and "nope" in str(info.value)
    f = save(tmp_path / "f.png", noise(), "PNG")
    with pytest.raises(PhotoError) as info:
        scan_photos(f)
    assert info.value.code == "not-a-folder"


def test_scan_result_is_frozen(tmp_path: Path) -> None:
    result = scan_folder(tmp_path)
    assert result == ScanResult((), ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.photos = ()  # type: ignore[misc]


def test_expand_photo_args(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    a = save(folder / "a2.png", noise(), "PNG")
    b = save(folder / "a10.png", noise(), "PNG")
    (folder / "empty.jpg").write_bytes(b"")
    loose = save(tmp_path / "loose.any", noise(), "PNG")  # named explicitly: any extension
    photos, problems = expand_photo_args([folder, loose, tmp_path / "missing.jpg", str(a), loose])
    assert photos == [a, b, loose]
    assert [(p.path.name, p.code) for p in problems] == [
        ("empty.jpg", "empty"),
        ("missing.jpg", "not-found"),
        ("a2.png", "duplicate"),
        ("loose.any", "duplicate"),
    ]
    assert all(p.path.name in str(p) for p in problems)


# --------------------------------------------------------------------------- load: basics


@pytest.mark.parametrize(
    ("fmt", "ext", "kw", "exact"),
    [
        ("PNG", "png", {}, True),
        ("BMP", "bmp", {}, True),
        ("TIFF", "tif", {}, True),
        ("WEBP", "webp", {"lossless": True}, True),
        ("JPEG", "jpg", {"quality": 95}, False),
        ("TIFF", "tiff", {"compression": "tiff_lzw"}, True),
    ],
)
def test_formats_round_trip(
    tmp_path: Path, fmt: str, ext: str, kw: dict[str, Any], exact: bool
) -> None:
    src = pattern(12, 20)
    a = load_photo(save(tmp_path / f"p.{ext}", src, fmt, **kw))
    assert a.shape == (12, 20, 3) and a.dtype == np.uint8
    assert a.flags.writeable and a.flags.c_contiguous
    if exact:
        assert np.array_equal(a, src)
    else:
        assert np.abs(a.astype(int) - src).mean() < 6


@pytest.mark.parametrize(("w", "h"), [(1, 1), (10000, 10), (10, 10000)])
def test_extreme_shapes(tmp_path: Path, w: int, h: int) -> None:
    a = load_photo(save(tmp_path / "p.png", Image.new("RGB", (w, h), (9, 8, 7))))
    assert a.shape == (h, w, 3) and (a == (9, 8, 7)).all()


def test_png_with_a_jpg_name_loads(tmp_path: Path) -> None:
    src = pattern()
    p = tmp_path / "really_png.jpg"
    p.write_bytes(encoded(src, "PNG"))
    assert np.array_equal(load_photo(p), src)


@pytest.mark.parametrize("mode", ["1", "L", "P", "CMYK", "YCbCr", "LAB"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    im = Image.fromarray(pattern()).convert(mode) if mode != "LAB" else Image.new("LAB", (4, 3))
    fmt = "JPEG" if mode in ("CMYK", "YCbCr") else "TIFF"
    a = load_photo(save(tmp_path / "p.img", im, fmt))
    assert a.shape[2] == 3 and a.dtype == np.uint8


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    p = save(tmp_path / "cmyk.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")
    a = load_photo(p)
    assert a.shape == (8, 8, 3)
    assert np.abs(a.astype(int) - (255, 0, 0)).max() <= 3  # red, not inverted or garbled


# --------------------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png_exact(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = save(tmp_path / "o.png", pattern(), "PNG", exif=exif)
    with Image.open(p) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = load_photo(p)
    assert got.shape == ((6, 10, 3) if orientation <= 4 else (10, 6, 3))
    assert np.array_equal(got, want)
    assert got.flags.c_contiguous and got.flags.writeable


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(tmp_path: Path, orientation: int) -> None:
    src = np.kron(pattern(6, 10), np.ones((8, 8, 1), np.uint8))  # 48 × 80, smooth blocks
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = save(tmp_path / "o.jpg", src, "JPEG", exif=exif, quality=95)
    with Image.open(p) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB")).astype(int)
        expected_shape = want.shape
    got = load_photo(p)
    assert got.shape == expected_shape == ((48, 80, 3) if orientation <= 4 else (80, 48, 3))
    assert np.abs(got.astype(int) - want).max() <= 2
    # and the picture really is turned: the upright result is the source transposed
    upright = decode.apply_orientation(src, orientation).astype(int)
    assert np.abs(got.astype(int) - upright).mean() < 4


@pytest.mark.parametrize("value", [0, 9, 65535])
def test_out_of_range_orientation_is_ignored(tmp_path: Path, value: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = value
    p = save(tmp_path / "o.png", pattern(), "PNG", exif=exif)
    assert np.array_equal(load_photo(p), pattern())


@pillow_noise
def test_garbage_exif_keeps_the_photo(tmp_path: Path) -> None:
    rng = random.Random(7)
    for i in range(40):
        junk = b"Exif\0\0" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
        p = save(tmp_path / f"e{i}.png", pattern(), "PNG", exif=junk)
        assert load_photo(p).shape in ((6, 10, 3), (10, 6, 3))


# --------------------------------------------------------------------------- deep images


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path, fmt: str) -> None:
    src = np.array([[0, 257, 1000, 32768, 65535]], dtype=np.uint16)
    p = save(tmp_path / "deep.img", src, fmt)
    with Image.open(p) as im:
        assert im.mode.startswith("I;16")
    a = load_photo(p)
    assert a.shape == (1, 5, 3)
    assert a[0, :, 0].tolist() == [0, 1, 4, 128, 255]
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()


def test_16_bit_rgb_tiff_is_scaled(tmp_path: Path) -> None:
    src = np.array([[[65535, 32768, 0], [0, 65535, 32768]]], dtype=np.uint16)
    p = tmp_path / "rgb16.tif"
    p.write_bytes(tiff_rgb16(src))
    a = load_photo(p)
    assert a.tolist() == [[[255, 128, 0], [0, 255, 128]]]


def test_16_bit_grey_colour_key_is_composited(tmp_path: Path) -> None:
    src = np.array([[0, 1000, 65535]], dtype=np.uint16)
    p = save(tmp_path / "key16.png", src, "PNG", transparency=1000)
    assert load_photo(p)[0].tolist() == [[0, 0, 0], [255, 255, 255], [255, 255, 255]]


def test_float_tiff(tmp_path: Path) -> None:
    unit = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    a = load_photo(save(tmp_path / "unit.tif", unit, "TIFF"))
    assert a[0, :, 0].tolist() == [0, 64, 128, 255]  # [0, 1] → × 255
    wide = np.array([[-1.0, 1.0, 3.0, np.nan, np.inf]], dtype=np.float32)
    a = load_photo(save(tmp_path / "wide.tif", wide, "TIFF"))
    assert a[0, :, 0].tolist() == [0, 128, 255, 0, 255]  # min–max over finite values
    const = np.full((2, 2), 7.5, dtype=np.float32)
    assert (load_photo(save(tmp_path / "const.tif", const, "TIFF")) == 0).all()


def test_32_bit_integer_tiff_is_stretched(tmp_path: Path) -> None:
    src = np.array([[-100, 0, 100_000]], dtype=np.int32)
    a = load_photo(save(tmp_path / "i32.tif", src, "TIFF"))
    assert a[0, :, 0].tolist() == [0, 0, 255]
    assert load_photo(save(tmp_path / "i32b.tif", src * 0 + 5, "TIFF")).max() == 0


# --------------------------------------------------------------------------- transparency


def test_palette_transparency_on_white(tmp_path: Path) -> None:
    im = Image.new("P", (3, 1))
    im.putpalette([0, 0, 0, 10, 200, 30, 250, 0, 0])
    im.putdata([0, 1, 2])
    for fmt in ["PNG", "GIF"]:
        a = load_photo(save(tmp_path / f"pal.{fmt.lower()}", im, fmt, transparency=0))
        assert a[0].tolist() == [[255, 255, 255], [10, 200, 30], [250, 0, 0]]


def test_alpha_composited_on_white(tmp_path: Path) -> None:
    rgba = np.array([[[0, 0, 0, 0], [10, 20, 30, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    a = load_photo(save(tmp_path / "rgba.png", rgba, "PNG"))
    assert a[0, 0].tolist() == [255, 255, 255] and a[0, 1].tolist() == [10, 20, 30]
    assert np.abs(a[0, 2].astype(int) - 127).max() <= 1
    la = Image.frombytes("LA", (2, 1), bytes([0, 0, 40, 255]))
    a = load_photo(save(tmp_path / "la.png", la, "PNG"))
    assert a[0].tolist() == [[255, 255, 255], [40, 40, 40]]
    key = pattern(2, 2)
    a = load_photo(save(tmp_path / "key.png", key, "PNG", transparency=tuple(key[0, 0].tolist())))
    assert a[0, 0].tolist() == [255, 255, 255] and a[1, 1].tolist() == key[1, 1].tolist()
    assert decode.BACKGROUND_RGB == (255, 255, 255)


# --------------------------------------------------------------------------- first frame only


RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.mark.parametrize(
    ("fmt", "ext", "kw"),
    [
        ("GIF", "gif", {}),
        ("PNG", "png", {}),
        ("TIFF", "tif", {}),
        ("WEBP", "webp", {"lossless": True}),
    ],
)
def test_first_frame_only(tmp_path: Path, fmt: str, ext: str, kw: dict[str, Any]) -> None:
    frames = [Image.new("RGB", (6, 4), c) for c in (RED, GREEN, BLUE)]
    p = save(
        tmp_path / f"anim.{ext}", frames[0], fmt, save_all=True, append_images=frames[1:], **kw
    )
    with Image.open(p) as im:
        assert getattr(im, "n_frames", 1) == 3
    a = load_photo(p)
    assert a.shape == (4, 6, 3) and (a == RED).all()


# --------------------------------------------------------------------------- broken files


@pytest.mark.parametrize(
    ("fmt", "ext"),
    [
        ("JPEG", "jpg"),
        ("PNG", "png"),
        ("TIFF", "tif"),
        ("BMP", "bmp"),
        ("GIF", "gif"),
        ("WEBP", "webp"),
    ],
)
def test_truncated_half_file(tmp_path: Path, fmt: str, ext: str) -> None:
    data = encoded(noise(64, 64), fmt)
    p = tmp_path / f"half.{ext}"
    p.write_bytes(data[: len(data) // 2])
    e = error_of(p)
    assert e.code == "truncated", e
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_zero_bytes_random_bytes_and_missing(tmp_path: Path) -> None:
    (tmp_path / "zero.jpg").write_bytes(b"")
    assert error_of(tmp_path / "zero.jpg").code == "empty"
    (tmp_path / "junk.jpg").write_bytes(random.Random(3).randbytes(4096))
    e = error_of(tmp_path / "junk.jpg")
    assert e.code == "corrupt" and "not an image" in e.reason
    assert error_of(tmp_path / "missing.png").code == "not-found"
    (tmp_path / "d.png").mkdir()
    assert error_of(tmp_path / "d.png").code == "not-regular"


def test_restricted_formats_psd_eps_pdf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    psd = tmp_path / "layers.jpg"
    psd.write_bytes(psd_bytes())
    with Image.open(psd) as im:  # Pillow unrestricted would decode it: the restriction matters
        assert im.format == "PSD"
    e = error_of(psd)
    assert e.code == "unsupported" and "PSD" in e.reason

    def no_ghostscript(*args: object, **kw: object) -> None:
        raise AssertionError("Ghostscript must never run")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    eps = tmp_path / "drawing.jpg"
    eps.write_bytes(encoded(Image.new("RGB", (4, 4), RED), "EPS"))
    e = error_of(eps)
    assert e.code == "unsupported" and "EPS" in e.reason
    pdf = tmp_path / "doc.png"
    pdf.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    assert error_of(pdf).code == "unsupported"


def test_allowed_formats_are_registered() -> None:
    formats = decode.allowed_formats()
    Image.init()
    assert set(formats) <= set(Image.OPEN)
    assert {"JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP"} <= set(formats)
    assert not {"EPS", "PSD", "PDF"} & set(formats)


def _never_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any pixel decoding (and so any large allocation) fail the test."""

    def load(self: Image.Image) -> None:
        raise AssertionError(f"decoded {self.size}: the header should have been refused")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_decompression_bombs_are_refused_from_the_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [
        ("huge.png", png_declaring(100_000, 100_000)),
        ("between.png", png_declaring(10_000, 10_000)),  # 1–2 × Pillow's limit, tiny file
        ("under-limit.png", png_declaring(15_000, 15_000)),  # under MAX_PIXELS, tiny file
        ("huge.jpg", jpeg_declaring(60_000, 60_000)),
        ("big.jpg", jpeg_declaring(16_000, 12_000)),  # 192 Mpx declared in 1 kB
        ("wide.png", png_declaring(2**31 - 1, 1)),
    ]
    _never_decoded(monkeypatch)
    for name, data in files:
        p = tmp_path / name
        p.write_bytes(data)
        e = error_of(p)
        assert e.code == "bomb", (name, e)
        assert "decompression bomb" in e.reason
    assert "declared in a file of only" in error_of(tmp_path / "under-limit.png").reason
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's own limit is left as it was


def test_pixel_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_PIXELS == 2**28 > 200_000_000  # 200-megapixel camera photos pass
    assert decode.DENSE_PIXELS == Image.MAX_IMAGE_PIXELS == 89_478_485
    p = save(tmp_path / "small.png", Image.new("L", (5, 4)))
    assert error_of(p, max_pixels=19).code == "bomb"
    assert load_photo(p, max_pixels=20).shape == (4, 5, 3)
    # Above DENSE_PIXELS, the file must hold a byte per MAX_PIXELS_PER_BYTE pixels: a photo
    # of noise does, a flat image of the same size (a bomb's signature) does not.
    monkeypatch.setattr(decode, "DENSE_PIXELS", 100_000)
    real = save(tmp_path / "real.jpg", noise(400, 400), "JPEG", quality=90)
    flat = save(tmp_path / "flat.png", Image.new("RGB", (400, 400), (9, 9, 9)))
    assert 160_000 / real.stat().st_size < decode.MAX_PIXELS_PER_BYTE
    assert 160_000 / flat.stat().st_size > decode.MAX_PIXELS_PER_BYTE
    assert load_photo(real).shape == (400, 400, 3)
    assert error_of(flat).code == "bomb"
    monkeypatch.setattr(decode, "DENSE_PIXELS", 160_000)  # the rule starts above it
    assert load_photo(flat).shape == (400, 400, 3)


def test_big_photos_are_decoded_at_the_size_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JPEG asked for small is decoded small by the DCT (draft), other formats are reduced
    right after decoding; the full upright size is reported; the result matches a full decode
    shrunk the same way."""
    jpg = save(tmp_path / "big.jpg", noise(1500, 2000), "JPEG", quality=92)
    png = save(tmp_path / "big.png", noise(1500, 2000), "PNG", compress_level=1)
    loaded: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> Any:
        loaded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    small, full = images.load_photo_at(jpg, 224)
    assert small.shape == (168, 224, 3) and full == (1500, 2000)
    assert set(loaded) == {(500, 375)}  # 1/4 scale: the smallest at least twice the target
    ref = np.asarray(
        Image.fromarray(load_photo(jpg)).resize((224, 168), Image.Resampling.BICUBIC)
    ).astype(int)
    assert np.abs(small.astype(int) - ref).mean() < 6  # the same picture, resampled
    small, full = images.load_photo_at(png, 224)
    assert small.shape == (168, 224, 3) and full == (1500, 2000)
    rotated = tmp_path / "rotated.jpg"
    ex = Image.Exif()
    ex[decode.ORIENTATION_TAG] = 6
    Image.fromarray(noise(150, 200)).save(rotated, exif=ex.tobytes())
    small, full = images.load_photo_at(rotated, 100)
    assert small.shape == (100, 75, 3) and full == (200, 150)  # upright: turned 90°


def test_non_jpeg_is_reduced_before_conversion_and_big_decodes_take_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PNG asked for small is reduced by a whole factor right after decoding, so the
    conversion never sees its full size; a decode over BIG_DECODE_BYTES holds the lock that
    makes such decodes take turns, a small one does not."""
    png = save(tmp_path / "big.png", noise(1200, 1600), "PNG", compress_level=1)
    seen: list[tuple[tuple[int, int], bool]] = []
    real = decode.to_rgb_array

    def spy(im: Image.Image) -> np.ndarray:
        seen.append((im.size, decode._BIG_LOCK.locked()))
        return real(im)

    monkeypatch.setattr(decode, "to_rgb_array", spy)
    assert load_photo(png, side=200).shape == (150, 200, 3)
    assert seen == [((400, 300), False)]  # reduced ×4 (twice the target at least), no lock
    monkeypatch.setattr(decode, "BIG_DECODE_BYTES", 1_000_000)  # 1600×1200×3 is over it
    assert load_photo(png).shape == (1200, 1600, 3)
    assert seen[-1] == ((1600, 1200), True)
    assert not decode._BIG_LOCK.locked()


@pytest.mark.slow
def test_a_real_96_megapixel_photo(tmp_path: Path) -> None:
    """12000 × 8000 noise, over Pillow's 89.5 Mpx warning level (refused before, as a
    "possible decompression bomb"): read, decoded at 1/8 scale for a 224-pixel target."""
    rng = np.random.default_rng(0)
    grey = np.tile(rng.integers(0, 256, (500, 500), dtype=np.uint8), (16, 24))
    p = save(tmp_path / "96mpx.jpg", Image.fromarray(grey), "JPEG", quality=75)
    del grey
    small, full = images.load_photo_at(p, 224)
    assert full == (8000, 12000) and small.shape == (149, 224, 3)


def test_concurrent_loads_leave_the_warning_filters_alone(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    good = [save(tmp_path / f"g{i}.png", noise(seed=i), "PNG") for i in range(12)]
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(10_000, 10_000))  # warns in Pillow: an error here
    before = list(warnings.filters)

    def one(p: Path) -> str:
        try:
            return "ok" if load_photo(p).shape == (32, 32, 3) else "bad shape"
        except PhotoError as e:
            return e.code

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, [*good, bomb] * 8))
    assert got == (["ok"] * 12 + ["bomb"]) * 8
    assert warnings.filters == before


def test_permission_and_io_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = save(tmp_path / "p.png", noise(), "PNG")

    def denied(*args: object, **kw: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(p))

    with monkeypatch.context() as m:
        m.setattr(images.os, "open", denied)
        assert error_of(p).code == "permission"

    def eio(*args: object, **kw: object) -> np.ndarray:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(decode, "decode_photo", eio)
        e = error_of(p)
        assert e.code == "io-error" and "Input/output error" in e.reason


def test_memory_error_and_our_own_bugs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = save(tmp_path / "p.png", noise(), "PNG")

    def oom(im: Image.Image) -> np.ndarray:
        raise MemoryError

    with monkeypatch.context() as m:
        m.setattr(decode, "to_rgb_array", oom)
        assert error_of(p).code == "memory"

    def bug(im: Image.Image) -> np.ndarray:
        raise RuntimeError("a bug of ours")

    with monkeypatch.context() as m:
        m.setattr(decode, "to_rgb_array", bug)
        with pytest.raises(RuntimeError):  # not hidden as a "bad photo"
            load_photo(p)


def test_unconvertible_mode_is_unsupported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = save(tmp_path / "p.png", noise(), "PNG")

    def no_conversion(im: Image.Image) -> np.ndarray:
        raise ValueError("conversion from La to RGB not supported")

    monkeypatch.setattr(decode, "to_rgb_array", no_conversion)
    assert error_of(p).code == "unsupported"


@pillow_noise
@pytest.mark.parametrize(
    ("fmt", "kw"),
    [
        ("JPEG", {}),
        ("PNG", {}),
        ("GIF", {}),
        ("TIFF", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
        ("BMP", {}),
        ("WEBP", {}),
        ("PNG", {"save_all": True}),
        ("GIF", {"save_all": True}),
    ],
)
def test_fuzzed_files_never_crash(tmp_path: Path, fmt: str, kw: dict[str, Any]) -> None:
    """Every cut and many corruptions of a valid file: a photo or a PhotoError, nothing else."""
    src = noise(12, 12, seed=1)
    if kw.get("save_all"):
        kw = {**kw, "append_images": [Image.fromarray(src[::-1])]}
    data = encoded(src, fmt, **kw)
    rng = random.Random(fmt)
    variants = [data[:cut] for cut in range(0, len(data), max(1, len(data) // 150))]
    for _ in range(150):
        b = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        variants.append(bytes(b))
    p = tmp_path / "fuzz.img"
    seen: set[str] = set()
    for v in variants:
        p.write_bytes(v)
        try:
            a = load_photo(p)
        except PhotoError as e:
            assert e.code in REASON_CODES and e.path == p and str(p) in str(e)
            seen.add(e.code)
        else:
            assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
    assert seen  # the corruptions were noticed


# --------------------------------------------------------------------------- the whole folder


@pillow_noise
@pytest.mark.skipif(not hasattr(os, "mkfifo") or os.name == "nt", reason="POSIX")
def test_a_hostile_folder_every_file_accounted_for(tmp_path: Path) -> None:
    root = tmp_path / "gallery"
    (root / "sub").mkdir(parents=True)
    good = {
        "img2.jpg": encoded(pattern(), "JPEG"),
        "img10.png": encoded(pattern(), "PNG"),
        "anim.gif": encoded(Image.new("RGB", (3, 3), RED), "GIF"),
        "png_named.jpg": encoded(pattern(), "PNG"),
        "sub/😀 deep.webp": encoded(pattern(), "WEBP"),
        "deep16.tif": encoded(np.full((3, 3), 40000, np.uint16), "TIFF"),
    }
    bad = {
        "half.jpg": (encoded(noise(), "JPEG")[:-400], "truncated"),
        "junk.png": (b"\x00garbage" * 50, "corrupt"),
        "layers.jpg": (psd_bytes(), "unsupported"),
        "bomb.png": (png_declaring(100_000, 100_000), "bomb"),
    }
    for name, data in good.items():
        (root / name).write_bytes(data)
    for name, (data, _) in bad.items():
        (root / name).write_bytes(data)
    (root / "zero.jpg").write_bytes(b"")
    os.mkfifo(root / "pipe.jpg")
    (root / "dir.jpg").mkdir()
    os.symlink(root / "nowhere.jpg", root / "dangling.jpg")
    os.symlink(root, root / "sub" / "loop")
    os.symlink(root / "img2.jpg", root / "sub" / "img2 again.jpg")
    (root / "notes.txt").write_text("not a photo")

    result = finishes(lambda: scan_folder(root, recursive=True))
    assert isinstance(result, ScanResult)
    listed = [p.relative_to(root).as_posix() for p in result.photos]
    assert len(listed) == len(set(listed)) == len(set(map(os.path.realpath, result.photos)))
    assert sorted(listed) == sorted([*good, *bad])
    assert listed.index("img2.jpg") < listed.index("img10.png")
    assert {e.path.relative_to(root).as_posix(): e.code for e in result.skipped} == {
        "zero.jpg": "empty",
        "pipe.jpg": "not-regular",
        "dangling.jpg": "not-found",
        "sub/loop": "loop",
        "sub/img2 again.jpg": "duplicate",
    }  # dir.jpg: recursing, a folder like any other
    outcomes: dict[str, str] = {}
    for p in result.photos:
        rel = p.relative_to(root).as_posix()
        try:
            a = load_photo(p)
            assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
            outcomes[rel] = "ok"
        except PhotoError as e:
            assert re.search(re.escape(str(p)), str(e))
            outcomes[rel] = e.code
    assert outcomes == {**dict.fromkeys(good, "ok"), **{k: c for k, (_, c) in bad.items()}}


# --------------------------------------------------------------------------- source rules


def test_no_truncated_loading_and_no_opencv_decoding() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    for path in PKG.rglob("*.py"):
        assert "LOAD_TRUNCATED_IMAGES =" not in path.read_text(encoding="utf-8"), path
    for mod in ("images.py", "decode.py"):
        tree = ast.parse((PKG / "gallery" / mod).read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "cv2"], mod
