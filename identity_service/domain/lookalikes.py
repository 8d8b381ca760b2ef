"""Lookalike addresses (Unicode TS #39), on the data the ``confusable-homoglyphs`` package ships.

- ``skeleton``: every character replaced by one representative of its class of confusables (the
  package's pairs of TS #39 ``confusables.txt``, closed under "looks like"; the ASCII member of a
  class when it has one, else its lowest code point). Two keys with one skeleton look alike.
- ``mixed_script_problem``: TS #39 "highly restrictive": the characters of a local part, Common and
  Inherited aside, are of one script, or of Latin + Han + Hiragana + Katakana, Latin + Han + Bopomofo,
  or Latin + Han + Hangul.

The rule built on them (product.md Additions): an address with any non-ASCII character must pass
``mixed_script_problem`` and have a skeleton no other stored address has, else EMAIL_CONFUSABLE.
"""

from __future__ import annotations

import functools

from confusable_homoglyphs import categories, confusables

_NEUTRAL = frozenset({"COMMON", "INHERITED"})
_HIGHLY_RESTRICTIVE = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


@functools.cache
def _representatives() -> dict[int, str]:
    """Code point → the representative of its confusable class (``str.translate`` table)."""
    parent: dict[str, str] = {}

    def root(char: str) -> str:
        while parent.get(char, char) != char:
            parent[char] = parent.get(parent[char], parent[char])
            char = parent[char]
        return char

    for char, homoglyphs in confusables.confusables_data.items():
        if len(char) != 1:
            continue
        for glyph in homoglyphs:
            other = glyph["c"]
            if len(other) == 1:
                a, b = root(char), root(other)
                if a != b:
                    parent[max(a, b, key=_rank)] = min(a, b, key=_rank)
    table: dict[int, str] = {}
    for char in parent:
        representative = root(char)
        if representative != char:
            table[ord(char)] = representative
    return table


def _rank(char: str) -> tuple[bool, int]:
    """ASCII first, then the lowest code point: the member that represents a class."""
    return (not char.isascii(), ord(char))


def skeleton(text: str) -> str:
    """``text`` with every character replaced by its confusable class's representative."""
    return text.translate(_representatives())


def mixed_script_problem(local_part: str) -> str | None:
    """Why ``local_part`` is not "highly restrictive" (TS #39), or None when it is."""
    if local_part.isascii():
        return None
    scripts = {categories.alias(char) for char in local_part} - _NEUTRAL
    if len(scripts) <= 1 or any(scripts <= allowed for allowed in _HIGHLY_RESTRICTIVE):
        return None
    names = ", ".join(sorted(script.title() for script in scripts))
    return f"mixes scripts that can look alike ({names})"
