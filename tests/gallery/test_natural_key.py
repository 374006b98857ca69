"""natural_key's tokens: text and digit runs alternating, as the character loop it replaced
made them (the scan sorts 10,000 names with it, so it is one regex split now)."""

from __future__ import annotations

import random

from sketchpad.gallery.decode import _split_digits, natural_key


def _reference_split(s: str) -> list[str]:
    out: list[str] = []
    start, in_digits = 0, False
    for i, c in enumerate(s):
        d = c.isdecimal()
        if d != in_digits:
            out.append(s[start:i])
            start, in_digits = i, d
    out.append(s[start:])
    return out


def test_split_digits_matches_the_character_loop() -> None:
    rng = random.Random(0)
    alphabet = "ab1209\u0663\u0664x_-. \u07c1"  # Arabic-Indic and NKo digits too
    for _ in range(5000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert _split_digits(s) == _reference_split(s), s


def test_natural_key_tokens() -> None:
    assert natural_key("img10.jpg") == (("img", (2, "10"), ".jpg"), "img10.jpg")
    assert natural_key("IMG010") == (("img", (2, "10")), "IMG010")
    assert natural_key("7") == (("", (1, "7")), "7")
    assert sorted(["a10", "a2", "A1"], key=natural_key) == ["A1", "a2", "a10"]
