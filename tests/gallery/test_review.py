"""A folder's review state and corrected masks: kept outside the photo folder, across restarts,
for any file name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sketchpad.gallery.review import FolderReview, review_dir

ODD = os.fsdecode(b"caf\xe9 \xff.jpg")  # not UTF-8: a surrogate-escaped name


def test_states_and_corrections_survive_a_restart(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    root = tmp_path / "reviews"
    r = FolderReview(photos, root=root)
    r.set_state("a.jpg", "accepted")
    r.set_states(["b.jpg", ODD], "rejected")
    mask = np.zeros((30, 40), bool)
    mask[5:10, 7:20] = True
    r.set_corrected(ODD, mask)

    again = FolderReview(photos, root=root)  # a new session
    assert again.state("a.jpg") == "accepted" and again.state(ODD) == "rejected"
    assert again.state("c.jpg") is None
    assert sorted(again.names("rejected")) == sorted(["b.jpg", ODD])
    np.testing.assert_array_equal(again.corrected(ODD), mask)
    assert again.corrected_names() == [ODD] and again.corrected("a.jpg") is None
    assert list(photos.iterdir()) == []  # nothing in the photo folder
    assert review_dir(photos, root).is_relative_to(root)

    again.set_corrected(ODD, None)  # reset to the model's mask
    again.set_state("a.jpg", None)
    third = FolderReview(photos, root=root)
    assert third.corrected(ODD) is None and third.state("a.jpg") is None
    assert not list((review_dir(photos, root) / "masks").iterdir())


def test_a_damaged_review_is_moved_aside(tmp_path: Path) -> None:
    photos, root = tmp_path / "p", tmp_path / "r"
    FolderReview(photos, root=root).set_state("x.jpg", "accepted")
    state = review_dir(photos, root) / "state.json"
    state.write_text('{"format": "sketchpad-review", "photos": {"zz": 1}', encoding="utf-8")
    r = FolderReview(photos, root=root)
    assert r.state("x.jpg") is None and state.with_name("state.json.damaged").exists()
    with pytest.raises(ValueError, match="review state"):
        r.set_state("x.jpg", "maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bool"):
        r.set_corrected("x.jpg", np.zeros((3, 3), np.uint8))
