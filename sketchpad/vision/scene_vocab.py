"""The scene-labelling vocabulary and labels proposed from a caption (DESIGN §4.4).

The vocabulary ships with the package (``sketchpad/resources/scene_vocabulary.txt``): the MS-COCO
and Quick, Draw! category names plus COCO-Stuff scene classes, a few aliases ("men" → person,
"sofa" → couch) and names never proposed from a caption ("line", "squiggle").

A caption is matched against it without any downloaded language model: it is lower-cased and
split into words (hyphens and punctuation separate words, a possessive "'s" is dropped); at each
word the longest vocabulary phrase that starts there wins, so "traffic light" beats "light"
and "alarm clocks" gives "alarm clock". Plurals are generated from the vocabulary (regular
rules plus a short irregular table: knife → knives, mouse → mice, man → men), not guessed from
the caption, so "houses" and "cookies" match while "bus" is never cut to "bu".
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: The shipped vocabulary, relative to the ``sketchpad`` package.
RESOURCE = "resources/scene_vocabulary.txt"
#: Sections of the resource that hold names, in priority order.
NAME_SECTIONS = ("coco", "quickdraw", "coco-stuff")

_IRREGULAR = {
    "person": ("people", "persons"),
    "man": ("men",),
    "woman": ("women",),
    "child": ("children",),
    "mouse": ("mice",),
    "foot": ("feet",),
    "tooth": ("teeth",),
    "goose": ("geese",),
    "sheep": (),
    "fish": ("fishes",),
    "deer": (),
    "cactus": ("cacti", "cactuses"),
    "octopus": ("octopuses", "octopi"),
}
_WORD = re.compile(r"[a-z0-9]+")


def normalize_phrase(text: str) -> tuple[str, ...]:
    """Lower-case words of ``text``: hyphens and punctuation split words, a possessive "'s" and
    a leading "the" are dropped ("The Eiffel Tower" → ("eiffel", "tower"))."""
    text = re.sub(r"['’]s\b", "", text.lower())
    words = tuple(_WORD.findall(text))
    return words[1:] if len(words) > 1 and words[0] == "the" else words


def plural_forms(word: str) -> tuple[str, ...]:
    """English plural forms of one lower-case word (regular rules plus a short irregular table).

    >>> plural_forms("knife"), plural_forms("bus"), plural_forms("cherry")
    (('knives', 'knifes'), ('buses',), ('cherries',))
    """
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return (word + "es",)
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return (word[:-1] + "ies",)
    if word.endswith("fe"):
        return (word[:-2] + "ves", word + "s")
    if word.endswith("f"):
        return (word[:-1] + "ves", word + "s")
    if word.endswith("o"):
        return (word + "es", word + "s")
    return (word + "s",)


def _phrase_forms(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The phrase and its plurals (the last word inflected)."""
    if not words:
        return []
    return [words] + [(*words[:-1], p) for p in plural_forms(words[-1])]


@dataclass(frozen=True)
class Vocabulary:
    """Category names for suggestions and for proposing labels from a caption.

    Attributes:
        names: every name once, in resource order (COCO, Quick, Draw!, COCO-Stuff).
        sections: section name → its names (after removing names seen in earlier sections).
        aliases: alias phrase → vocabulary name (caption matching only).
        caption_ignore: names never proposed from a caption.
    """

    names: tuple[str, ...]
    sections: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    caption_ignore: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("Vocabulary.names is empty")
        known = set(self.names)
        for alias, name in self.aliases.items():
            if name not in known:
                raise ValueError(f"alias {alias!r} points to {name!r}, which is not a name")
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "sections", dict(self.sections))
        object.__setattr__(self, "aliases", dict(self.aliases))
        object.__setattr__(self, "caption_ignore", frozenset(self.caption_ignore))

    def __len__(self) -> int:
        return len(self.names)

    @functools.cached_property
    def _forms(self) -> tuple[dict[tuple[str, ...], str], int]:
        """Word tuple → name (names win over aliases, base forms over plurals); longest phrase."""
        forms: dict[tuple[str, ...], str] = {}
        ranked: list[tuple[int, tuple[str, ...], str]] = []
        for name in self.names:
            if name in self.caption_ignore:
                continue
            for k, f in enumerate(_phrase_forms(normalize_phrase(name))):
                ranked.append((0 if k == 0 else 2, f, name))
        for alias, name in self.aliases.items():
            if name in self.caption_ignore:
                continue
            for k, f in enumerate(_phrase_forms(normalize_phrase(alias))):
                ranked.append((1 if k == 0 else 3, f, name))
        for _, f, name in sorted(ranked, key=lambda r: r[0]):
            forms.setdefault(f, name)
        return forms, max((len(f) for f in forms), default=0)

    def labels_from_caption(self, caption: str) -> tuple[str, ...]:
        """Vocabulary names mentioned in ``caption``, in order of first mention, each once.

        >>> load_vocabulary().labels_from_caption("Two men wait at traffic lights by a bus.")
        ('person', 'traffic light', 'bus')
        """
        forms, longest = self._forms
        words = normalize_phrase(caption) if caption.strip() else ()
        found: dict[str, None] = {}
        i = 0
        while i < len(words):
            for n in range(min(longest, len(words) - i), 0, -1):
                name = forms.get(words[i : i + n])
                if name is not None:
                    found.setdefault(name, None)
                    i += n
                    break
            else:
                i += 1
        return tuple(found)


def parse_vocabulary(text: str, source: str = "<text>") -> Vocabulary:
    """Parse the resource format: ``[section]`` headers, one name a line, ``alias = name`` lines
    in ``[aliases]``, ``#`` comments.

    Raises:
        ValueError: a line outside a section, an unknown section or a malformed alias, naming
            ``source`` and the line number.
    """
    sections: dict[str, list[str]] = {}
    aliases: dict[str, str] = {}
    ignore: list[str] = []
    current: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            if current not in (*NAME_SECTIONS, "aliases", "caption-ignore"):
                raise ValueError(f"{source}:{lineno}: unknown section [{current}]")
            continue
        if current is None:
            raise ValueError(f"{source}:{lineno}: {line!r} is outside any [section]")
        if current == "aliases":
            alias, sep, name = (p.strip() for p in line.partition("="))
            if not sep or not alias or not name:
                raise ValueError(f"{source}:{lineno}: an alias line is 'word = name', got {line!r}")
            aliases[alias] = name
        elif current == "caption-ignore":
            ignore.append(line)
        else:
            sections.setdefault(current, []).append(line)
    seen: dict[tuple[str, ...], str] = {}
    kept: dict[str, tuple[str, ...]] = {}
    for sec in NAME_SECTIONS:
        mine = []
        for name in sections.get(sec, []):
            key = normalize_phrase(name)
            if key and key not in seen:
                seen[key] = name
                mine.append(name)
        kept[sec] = tuple(mine)
    by_key = {normalize_phrase(n): n for n in seen.values()}
    # Aliases and ignores may spell a name as its other section did ("teddy-bear").
    aliases = {a: by_key.get(normalize_phrase(n), n) for a, n in aliases.items()}
    ignored = frozenset(by_key.get(normalize_phrase(n), n) for n in ignore)
    return Vocabulary(
        names=tuple(seen.values()), sections=kept, aliases=aliases, caption_ignore=ignored
    )


@functools.lru_cache(maxsize=1)
def _shipped() -> Vocabulary:
    res = importlib.resources.files("sketchpad").joinpath(RESOURCE)
    return parse_vocabulary(res.read_text(encoding="utf-8"), source=RESOURCE)


def load_vocabulary(path: str | Path | None = None) -> Vocabulary:
    """The shipped vocabulary (cached), or one read from ``path`` in the same format.

    Raises:
        OSError: ``path`` cannot be read. ValueError: it is malformed.
    """
    if path is None:
        return _shipped()
    return parse_vocabulary(Path(path).read_text(encoding="utf-8"), source=str(path))


def parse_label_list(text: str) -> tuple[str, ...]:
    """Labels typed as ``"a, b, c"``: split at commas (or semicolons), stripped, empty ones
    dropped, duplicates (ignoring case) kept once, in the order given."""
    out: dict[str, str] = {}
    for part in re.split(r"[,;]", text):
        label = " ".join(part.split())
        if label:
            out.setdefault(label.lower(), label)
    return tuple(out.values())


def unique_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """``labels`` stripped, empty ones refused, duplicates kept once (first wins).

    Raises:
        ValueError: an empty or non-string label.
    """
    out: dict[str, None] = {}
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"label {i} must be a non-empty string, got {label!r}")
        out.setdefault(" ".join(label.split()), None)
    return tuple(out)
