"""GalleryModel and GalleryProxy: scores and masks from results, sorting, the matches-only
filter, local re-thresholding, and a proxy that stays consistent (pytest-qt's model tester)
while results arrive and photos join."""

from __future__ import annotations

import random
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QPersistentModelIndex, Qt

from sketchpad.engine.requests import MaskResult, QueryResult
from sketchpad.gallery.decode import natural_key
from sketchpad.search.masks import PhotoMask, rethreshold
from sketchpad.ui.photos.gallery_model import (
    Cell,
    CellRole,
    GalleryModel,
    MaskKeyRole,
    MaskRole,
    MatchRole,
    NameRole,
    PathRole,
    ScoreRole,
    name_sort_key,
)
from sketchpad.ui.photos.gallery_proxy import GalleryProxy
from sketchpad.vision import maps

FOLDER = Path("/photos")


def photo_mask(prob: np.ndarray, threshold: float = 0.5, score: float = 0.9) -> PhotoMask:
    prob = prob.astype(np.float32)
    mask = prob >= threshold
    instances, labels = maps.find_instances(prob, mask)
    return PhotoMask(
        prob=prob,
        mask=mask,
        instances=instances,
        label_map=labels,
        score=score,
        refined=False,
        threshold=threshold,
    )


def result(
    names: list[str],
    scores: list[float],
    *,
    generation: int = 1,
    masks: dict[str, PhotoMask] | None = None,
    threshold: float = 0.5,
    folder: Path = FOLDER,
) -> QueryResult:
    s = np.asarray(scores, dtype=np.float32)
    return QueryResult(
        generation=generation,
        folder=folder,
        names=tuple(names),
        photo_scores=s,
        ranking=np.argsort(-s, kind="stable"),
        masks=masks or {},
        scores=(),
        threshold=threshold,
        indexing=False,
        seconds=0.01,
    )


def shown(proxy: GalleryProxy) -> list[str]:
    return [proxy.index(r, 0).data(NameRole) for r in range(proxy.rowCount())]


@pytest.fixture
def model(qapp) -> GalleryModel:
    m = GalleryModel()
    m.set_folder(FOLDER, ["img10.jpg", "img2.jpg", "img1.jpg", "b.jpg"])
    return m


@pytest.fixture
def proxy(model, qtmodeltester) -> GalleryProxy:
    p = GalleryProxy()
    p.setSourceModel(model)
    qtmodeltester.check(p)  # keeps watching the proxy's signals for the whole test
    return p


def test_rows_roles_and_paths(model) -> None:
    assert model.names() == ("img10.jpg", "img2.jpg", "img1.jpg", "b.jpg")
    assert model.rowCount() == 4 and model.row_of("img1.jpg") == 2 and model.row_of("x") is None
    i = model.index(1)
    assert i.data() == "img2.jpg" and i.data(NameRole) == "img2.jpg"
    assert i.data(PathRole) == FOLDER / "img2.jpg"
    assert i.data(ScoreRole) is None and i.data(MatchRole) is False and i.data(MaskRole) is None
    assert not model.has_query


def test_apply_result_stores_scores_masks_and_adds_new_names(model) -> None:
    m = photo_mask(np.pad(np.ones((4, 4)), 2) * 0.9, threshold=0.4)  # cut as the result says
    changed: list[int] = []
    model.dataChanged.connect(lambda a, b, roles: changed.append(b.row() - a.row() + 1))
    assert model.apply_result(
        result(
            ["img2.jpg", "new.jpg", "b.jpg"],
            [0.8, 0.3, 0.0],
            generation=7,
            masks={"img2.jpg": m},
            threshold=0.4,
        )
    )
    assert model.names()[-1] == "new.jpg"
    assert model.score_for("img2.jpg") == pytest.approx(0.8)
    assert model.score_for("new.jpg") == pytest.approx(0.3)
    assert model.score_for("b.jpg") == 0.0 and model.score_for("img1.jpg") is None
    assert model.mask_for("img2.jpg") is m and model.mask_for("b.jpg") is None
    assert model.has_query and model.generation == 7 and model.threshold == 0.4
    row = model.row_of("img2.jpg")
    assert model.index(row).data(MatchRole) is True
    assert model.index(model.row_of("b.jpg")).data(MatchRole) is False  # score 0: no match
    assert model.index(model.row_of("new.jpg")).data(MatchRole) is False  # 0.3 < 0.4
    cell = model.index(row).data(CellRole)
    assert isinstance(cell, Cell) and cell.mask is m and cell.match
    assert cell.score == pytest.approx(0.8)
    assert changed and changed[-1] == 5  # every row: scores of all photos changed


def test_a_result_of_another_folder_is_ignored(model) -> None:
    assert not model.apply_result(result(["img2.jpg"], [0.9], folder=Path("/elsewhere")))
    assert not model.has_query and model.score_for("img2.jpg") is None


def test_apply_masks_only_for_the_query_shown(model) -> None:
    model.apply_result(result(["img2.jpg", "b.jpg"], [0.8, 0.5], generation=3))
    m = photo_mask(np.full((6, 6), 0.9))
    assert not model.apply_masks(
        MaskResult(generation=9, query_generation=2, channel="gallery", masks={"b.jpg": m})
    )  # stale query
    assert model.mask_for("b.jpg") is None
    assert not model.apply_masks(
        MaskResult(generation=9, query_generation=3, channel="gallery", masks={"nope.jpg": m})
    )
    key_before = model.mask_key("b.jpg")
    assert model.apply_masks(
        MaskResult(generation=10, query_generation=3, channel="gallery", masks={"b.jpg": m})
    )
    assert model.mask_for("b.jpg") is m
    assert model.index(model.row_of("b.jpg")).data(MaskKeyRole) != key_before


def test_masks_arriving_after_a_threshold_change_follow_the_slider(model) -> None:
    """The engine makes masks at the query's threshold: they are re-thresholded here too."""
    model.apply_result(result(["img2.jpg"], [0.8], generation=3, threshold=0.5))
    model.set_threshold(0.2)
    ramp = np.tile((np.arange(20, dtype=np.float32) + 0.5) * 0.045, (4, 1))
    assert model.apply_masks(
        MaskResult(
            generation=4,
            query_generation=3,
            channel="gallery",
            masks={"img2.jpg": photo_mask(ramp)},
        )
    )
    np.testing.assert_array_equal(model.mask_for("img2.jpg").mask, ramp > 0.2)


def test_clear_results(model) -> None:
    model.apply_result(result(["img2.jpg"], [0.8], masks={"img2.jpg": photo_mask(np.ones((3, 3)))}))
    model.clear_results()
    assert not model.has_query
    assert model.score_for("img2.jpg") is None and model.mask_for("img2.jpg") is None


def test_set_threshold_rethresholds_locally(model) -> None:
    ramp = np.tile((np.arange(20, dtype=np.float32) + 0.5) * 0.045, (10, 1))  # (10, 20): → right
    model.apply_result(result(["img1.jpg"], [0.7], masks={"img1.jpg": photo_mask(ramp)}))
    base = model.mask_for("img1.jpg")
    assert base.mask.sum() == 10 * 9  # columns 11–19 are > 0.5
    key = model.mask_key("img1.jpg")
    changed: list[list[int]] = []
    model.dataChanged.connect(lambda a, b, roles: changed.append(list(roles)))

    model.set_threshold(0.2)
    lower = model.mask_for("img1.jpg")
    assert lower.mask.sum() == 10 * 16  # columns 4–19
    np.testing.assert_array_equal(lower.mask, ramp > 0.2)
    assert [i.box_xyxy for i in lower.instances] == [(4, 0, 20, 10)]
    assert lower.score == base.score  # the ranking stays the model's
    assert model.mask_key("img1.jpg") != key
    assert changed and MaskRole in changed[-1]

    model.set_threshold(0.99)
    assert not model.mask_for("img1.jpg").mask.any()
    assert model.mask_for("img1.jpg").instances == ()
    model.set_threshold(0.5)
    assert model.mask_for("img1.jpg") is base  # back at the query's threshold: as sent
    with pytest.raises(ValueError, match="threshold"):
        model.set_threshold(1.0)


def test_a_threshold_change_moves_matches_not_scores(model) -> None:
    """Scores do not depend on the threshold; which photos match does (score ≥ threshold)."""
    model.apply_result(result(["img2.jpg", "b.jpg"], [0.8, 0.45], threshold=0.5))
    match = lambda n: model.index(model.row_of(n)).data(MatchRole)  # noqa: E731
    assert (match("img2.jpg"), match("b.jpg")) == (True, False)
    assert model.matches().tolist() == [False, True, False, False]  # rows: img10, img2, img1, b
    model.set_threshold(0.45)
    assert (match("img2.jpg"), match("b.jpg")) == (True, True)  # 0.45 ≥ 0.45
    assert model.score_for("b.jpg") == pytest.approx(0.45)  # unchanged
    model.set_threshold(0.9)
    assert (match("img2.jpg"), match("b.jpg")) == (False, False)
    assert (
        model.index(model.row_of("img2.jpg"))
        .data(Qt.ItemDataRole.ToolTipRole)
        .endswith("score 0.80 (no match)")
    )


def test_rethreshold_drops_specks_below_the_minimum_area() -> None:
    prob = np.zeros((100, 100), np.float32)
    prob[10:40, 10:40] = 0.9
    prob[80, 80] = 0.9  # 1 pixel < 0.1 % of 10,000 pixels: not an instance
    out = rethreshold(photo_mask(prob), 0.5)
    assert len(out.instances) == 1 and out.instances[0].box_xyxy == (10, 10, 40, 40)
    assert out.mask[80, 80] and out.label_map[80, 80] == 0


def test_rethreshold_keeps_groups_of_composed_masks() -> None:
    prob = np.array([[0.9, 0.4, 0.1]], np.float32)
    base = photo_mask(prob)
    composed = PhotoMask(
        prob=base.prob,
        mask=base.mask,
        instances=base.instances,
        label_map=base.label_map,
        score=0.9,
        refined=False,
        group_map=np.array([[2, 0, 0]], np.int16),
    )
    out = rethreshold(composed, 0.3)
    assert out.group_map.tolist() == [[2, 1, 0]]


def test_sort_by_score_then_natural_name(model, proxy) -> None:
    assert shown(proxy) == ["b.jpg", "img1.jpg", "img2.jpg", "img10.jpg"]  # no query: by name
    model.apply_result(result(["img10.jpg", "img2.jpg", "img1.jpg", "b.jpg"], [0.5, 0.9, 0.5, 0]))
    assert shown(proxy) == ["img2.jpg", "img1.jpg", "img10.jpg", "b.jpg"]  # tie: img1 < img10
    proxy.set_sort("name")
    assert shown(proxy) == ["b.jpg", "img1.jpg", "img2.jpg", "img10.jpg"]
    proxy.set_sort("score")
    model.add_names(["img3.jpg"])  # joined while indexing: no score yet, after the scored
    assert shown(proxy)[-2:] == ["b.jpg", "img3.jpg"]
    with pytest.raises(ValueError):
        proxy.set_sort("size")  # type: ignore[arg-type]


def test_matches_only_hides_non_matches(model, proxy) -> None:
    proxy.set_matches_only(True)
    assert proxy.rowCount() == 4  # no query yet: everything is shown
    model.apply_result(result(["img10.jpg", "img2.jpg", "b.jpg"], [0.0, 0.6, 0.2]))
    assert shown(proxy) == ["img2.jpg"]  # img1 has no score; img10 and b are below 0.5
    model.set_threshold(0.2)
    assert shown(proxy) == ["img2.jpg", "b.jpg"]  # the slider alone changes what matches
    model.apply_result(result(["img10.jpg", "img2.jpg", "b.jpg"], [0.7, 0.0, 0.5], generation=2))
    assert shown(proxy) == ["img10.jpg", "b.jpg"]
    proxy.set_matches_only(False)
    assert proxy.rowCount() == 4
    model.clear_results()
    proxy.set_matches_only(True)
    assert proxy.rowCount() == 4


def test_selection_follows_its_photo_through_a_resort(model, proxy) -> None:
    held = QPersistentModelIndex(proxy.index(shown(proxy).index("img10.jpg"), 0))
    model.apply_result(result(["img10.jpg", "img2.jpg", "img1.jpg", "b.jpg"], [0.9, 0.1, 0.2, 0.3]))
    assert held.isValid() and held.row() == 0 and held.data(NameRole) == "img10.jpg"
    proxy.set_matches_only(True)
    model.apply_result(result(["img10.jpg", "img2.jpg"], [0.0, 0.9], generation=2))
    assert not held.isValid()  # filtered out


def test_mapping_round_trips(model, proxy) -> None:
    model.apply_result(result(["img10.jpg", "img2.jpg", "img1.jpg", "b.jpg"], [0.1, 0.4, 0.3, 0.2]))
    for r in range(proxy.rowCount()):
        src = proxy.mapToSource(proxy.index(r, 0))
        assert proxy.mapFromSource(src).row() == r
        assert proxy.proxy_row_of(src.data(NameRole)) == r
    assert proxy.index(99, 0).isValid() is False


def test_random_streams_of_changes_keep_the_proxy_exact(qapp, qtmodeltester) -> None:
    """Names join, results arrive, sort and filter flip: the proxy always shows exactly the
    expected order (the model tester checks every signal on the way)."""
    rng = random.Random(3)
    model = GalleryModel()
    proxy = GalleryProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)
    model.set_folder(FOLDER, [f"p{i}.jpg" for i in range(30)])
    for step in range(60):
        op = rng.random()
        if op < 0.2:
            model.add_names([f"n{step}_{k}.jpg" for k in range(rng.randint(1, 4))])
        elif op < 0.7:
            names = rng.sample(model.names(), rng.randint(1, len(model.names())))
            model.apply_result(
                result(
                    names,
                    [rng.choice([0.0, 0.2, 0.5, rng.random()]) for _ in names],
                    generation=step,
                )
            )
        elif op < 0.8:
            proxy.set_sort(rng.choice(["score", "name"]))
        elif op < 0.9:
            proxy.set_matches_only(not proxy.matches_only)
        else:
            model.clear_results()
        assert shown(proxy) == expected_order(model, proxy), step


def expected_order(model: GalleryModel, proxy: GalleryProxy) -> list[str]:
    names = list(model.names())
    if proxy.sort_key == "name" or not model.has_query:
        order = sorted(names, key=name_sort_key)
    else:

        def key(n: str) -> tuple[float, tuple[object, ...]]:
            s = model.score_for(n)
            return (-(s if s is not None else -np.inf), name_sort_key(n))

        order = sorted(names, key=key)
    if proxy.matches_only and model.has_query:
        t = model.threshold
        order = [n for n in order if (model.score_for(n) or 0.0) >= t]
    return order


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(alphabet=string.ascii_letters + string.digits + "._- 0é٣ǅ", max_size=8),
        min_size=2,
        max_size=6,
    )
)
def test_name_key_orders_as_natural_key(names: list[str]) -> None:
    assert sorted(names, key=name_sort_key) == sorted(names, key=natural_key)
    a, b = names[:2]
    assert (name_sort_key(a) == name_sort_key(b)) == (natural_key(a) == natural_key(b))


def test_name_key_orders_tricky_names_as_natural_key() -> None:
    names = [
        "a01",
        "a1",
        "a2",
        "a10",
        "A1",
        "a001b",
        "img9",
        "img10",
        "x",
        "",
        "0",
        "00",
        "é1",
        "e1",
        "٣",
        "3",
        "a1b2",
        "a1b10",
        "a b",
        "a.b",
        "a0010",
        "ǅ1",
    ]
    for a in names:
        for b in names:
            assert (name_sort_key(a) < name_sort_key(b)) == (natural_key(a) < natural_key(b)), (
                a,
                b,
            )


def test_names_sort_folder_by_folder() -> None:
    names = ["b/img10.jpg", "a2/x.jpg", "b/img9.jpg", "a10/x.jpg"]
    assert sorted(names, key=name_sort_key) == [
        "a2/x.jpg",
        "a10/x.jpg",
        "b/img9.jpg",
        "b/img10.jpg",
    ]


def test_flags_and_tooltips(model) -> None:
    model.apply_result(result(["img2.jpg"], [0.0]))
    i = model.index(model.row_of("img2.jpg"))
    assert i.flags() & Qt.ItemFlag.ItemIsSelectable
    assert "no match" in i.data(Qt.ItemDataRole.ToolTipRole)


def test_every_name_is_shown_readably(qtbot) -> None:
    """File names are bytes on POSIX: an undecodable one arrives as lone surrogates, which Qt
    silently drops ("caf\\udce9.jpg" would show as "caf.jpg", like "caf\\udce8.jpg"). What the
    gallery shows is ``display_name``: \\xNN for such bytes, NFC and NFD kept, emoji kept."""
    import os
    import unicodedata

    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtWidgets import QStyleOptionViewItem

    from sketchpad.names import display_name
    from sketchpad.ui.photos.gallery_delegate import GalleryDelegate
    from sketchpad.ui.photos.thumbnails import ThumbnailCache

    names = [
        os.fsdecode(b"caf\xe9.jpg"),
        os.fsdecode(b"caf\xe8.jpg"),
        unicodedata.normalize("NFC", "é.jpg"),
        unicodedata.normalize("NFD", "é.jpg"),
        "🐄 cow.jpg",
        "two\nlines.jpg",
    ]
    model = GalleryModel()
    model.set_folder(FOLDER, names)
    proxy = GalleryProxy()
    proxy.setSourceModel(model)
    shown = [proxy.index(r, 0).data(Qt.ItemDataRole.DisplayRole) for r in range(len(names))]
    assert sorted(shown) == sorted(display_name(n) for n in names)
    assert "caf\\xe9.jpg" in shown and "caf\\xe8.jpg" in shown and "🐄 cow.jpg" in shown
    assert "two\\x0alines.jpg" in shown  # one line in a cell
    assert len(set(shown)) == len(names)  # no two names collapse into one
    tips = [proxy.index(r, 0).data(Qt.ItemDataRole.ToolTipRole) for r in range(len(names))]
    assert sorted(tips) == sorted(shown)
    # The cells paint the same text.
    delegate = GalleryDelegate(ThumbnailCache(side=32))
    painted: list[str] = []
    metrics = delegate._metrics

    class Recording:
        def height(self) -> int:
            return metrics.height()

        def elidedText(self, text: str, mode: object, width: int) -> str:  # noqa: N802
            painted.append(text)
            return metrics.elidedText(text, mode, width)

    delegate._metrics = Recording()  # type: ignore[assignment]
    image = QImage(200, 200, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        for r in range(len(names)):
            option = QStyleOptionViewItem()
            option.rect = image.rect()
            delegate.paint(painter, option, model.index(r, 0))
    finally:
        painter.end()
    assert painted == [display_name(n) for n in names]
