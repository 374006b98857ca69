"""The four ways a feature cache gets damaged on disk, end to end (issue 18): a truncated file,
a bad header, bytes flipped in the middle, a lost write-ahead log. Each is detected (said in
words), nothing damaged is served, and the next indexing run leaves the cache as a clean run
would; a flipped-byte cache never yields a match that the clean cache does not."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from planted import GALLERY, SKETCH, PlantedBackbone, photo
from test_index import make_photos

from sketchpad.gallery.cache import CacheError, FeatureCache
from sketchpad.gallery.index import index_folder, model_key
from sketchpad.gallery.query import load_bank
from sketchpad.search.core import SearchCore
from sketchpad.search.spec import QuerySpec
from sketchpad.vision.backbone import create_backbone
from sketchpad.vision.features import PhotoFeatures
from sketchpad.vision.segmenter import Segmenter


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKETCHPAD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return Segmenter(create_backbone("test-clip-tiny", pretrained=False, device="cpu"))


def snapshot(folder: Path, seg: Segmenter) -> dict[str, PhotoFeatures]:
    with FeatureCache.open(folder, model_key(seg), writer=False) as cache:
        return dict(cache.items())


def same_features(a: dict[str, PhotoFeatures], b: dict[str, PhotoFeatures]) -> bool:
    return a.keys() == b.keys() and all(
        np.allclose(a[k].patches, b[k].patches, atol=2e-3)
        and a[k].letterbox == b[k].letterbox
        and np.allclose(a[k].global_embedding, b[k].global_embedding, atol=1e-4)
        for k in a
    )


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _bad_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(bytes(random.Random(3).getrandbits(8) for _ in range(100)))


def _flip_mid_file(path: Path) -> None:
    """One bit in the middle of a row's patches: SQLite's own checks see nothing."""
    with sqlite3.connect(path) as raw:
        (blob,) = raw.execute(
            "SELECT patches FROM features ORDER BY rowid LIMIT 1 OFFSET 4"
        ).fetchone()
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    raw.close()
    data = bytearray(path.read_bytes())
    at = data.find(blob) + len(blob) // 2 + 1  # a high byte: the exponent of a float16
    data[at] ^= 0x40
    path.write_bytes(bytes(data))
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]  # still "ok"
    raw.close()


KINDS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "moved it aside"),
    "bad-header": (_bad_header, "is not an SQLite database"),
    "flipped-bytes": (_flip_mid_file, "damaged row removed"),
    "lost-wal": (lambda path: None, "writes are missing"),  # damaged while being made, below
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_damage_is_detected_and_repaired(
    tmp_path: Path, seg: Segmenter, kind: str
) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 12)
    key = model_key(seg)
    if kind == "lost-wal":
        # 8 photos written and checkpointed; 4 more written after: had the process died
        # before the next checkpoint, they would sit only in the WAL. Losing it = this.
        for p in sorted(folder.iterdir())[8:]:
            p.rename(tmp_path / p.name)
        index_folder(folder, seg, batch_size=4)
        path = FeatureCache.open(folder, key, writer=False).path
        older = path.read_bytes()
        for p in sorted(tmp_path.glob("img*.png")):
            p.rename(folder / p.name)
        index_folder(folder, seg, batch_size=4)
        clean = snapshot(folder, seg)
        path.write_bytes(older)
    else:
        index_folder(folder, seg, batch_size=4)
        clean = snapshot(folder, seg)
        path = FeatureCache.open(folder, key, writer=False).path
        KINDS[kind][0](path)
    assert len(clean) == 12
    # What the window and `segment` read before indexing again: only sound rows, if any.
    try:
        with load_bank(folder, key) as bank:
            served = {n: i for i, n in enumerate(bank.names)}
            assert set(served) <= set(clean)
            for name, i in served.items():  # every row served is the clean row
                cos = bank.correlate(clean[name].global_embedding)[bank.offsets[i] :][:16]
                expect = clean[name].patches.astype(np.float32) @ clean[name].global_embedding
                assert np.allclose(cos, expect, atol=2e-2)
            if kind == "flipped-bytes":
                assert len(served) == 11  # the damaged row is left out, and said so
                assert set(bank.damaged) == set(clean) - set(served)
    except CacheError:
        assert kind != "flipped-bytes"
    summary = index_folder(folder, seg, batch_size=4)
    notes = " ".join(summary.repairs)
    assert KINDS[kind][1] in notes, notes
    assert summary.indexed + summary.up_to_date == 12
    if kind in ("flipped-bytes", "lost-wal"):
        assert summary.indexed in (1, 4)  # only what was lost is encoded again
    assert same_features(snapshot(folder, seg), clean)
    again = index_folder(folder, seg, batch_size=4)
    assert (again.indexed, again.up_to_date, again.repairs) == (0, 12, ())


def test_verify_finds_flipped_bytes_without_a_read_first(tmp_path: Path, seg: Segmenter) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 6)
    index_folder(folder, seg, batch_size=3)
    clean = snapshot(folder, seg)
    _flip_mid_file(FeatureCache.open(folder, model_key(seg), writer=False).path)
    plain = index_folder(folder, seg)
    assert (plain.indexed, plain.repairs) == (0, ())  # an ordinary run reads no blob
    checked = index_folder(folder, seg, verify=True)
    assert checked.indexed == 1 and "1 damaged row removed" in " ".join(checked.repairs)
    assert same_features(snapshot(folder, seg), clean)
    assert index_folder(folder, seg, verify=True).repairs == (
        "verified: the file and all 6 rows' checksums are sound",
        "patch store verified: sound",  # the store beside the cache is checked too
    )


def _matches(folder: Path, seg: Segmenter) -> set[str]:
    """The photos a query matches, as `segment` and the window find them from the cache."""
    try:
        bank = load_bank(folder, model_key(seg))
    except CacheError:
        return set()
    with bank:
        result = SearchCore(seg).search(QuerySpec(sketch=SKETCH), bank)
        return {bank.names[i] for i in np.flatnonzero(result.matches(seg.threshold))}


def test_a_flipped_byte_cache_never_yields_a_match_the_clean_cache_does_not(
    tmp_path: Path,
) -> None:
    """Planted features: photos with red boxes match, the rest do not. Bits are flipped in
    each photo's stored patches (where a flip can turn a "nothing" patch into the sketch's
    direction: the exponent of its first component) and at random places in the file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (hw, boxes) in enumerate(GALLERY):
        Image.fromarray(photo(hw, boxes)).save(folder / f"p{i}.png")
    seg = Segmenter(PlantedBackbone(fine_tuned=True))
    index_folder(folder, seg, batch_size=3)
    clean = _matches(folder, seg)
    assert clean == {"p0.png", "p2.png", "p3.png", "p4.png"}
    path = FeatureCache.open(folder, model_key(seg), writer=False).path
    pristine = path.read_bytes()
    with sqlite3.connect(path) as raw:
        blobs = [r[0] for r in raw.execute("SELECT patches FROM features")]
    raw.close()
    rng = random.Random(18)
    places = [(pristine.find(b) + 16 * k + 1, 0x40) for b in blobs for k in range(0, 16, 3)]
    places += [(rng.randrange(100, len(pristine)), 1 << rng.randrange(8)) for _ in range(40)]
    for at, mask in places:
        damaged = bytearray(pristine)
        damaged[at] ^= mask
        path.write_bytes(bytes(damaged))
        for side in ("-wal", "-shm", ".needs-check"):
            path.with_name(path.name + side).unlink(missing_ok=True)
        found = _matches(folder, seg)
        assert found <= clean, (at, mask, found - clean)
    path.write_bytes(pristine)
    assert _matches(folder, seg) == clean
