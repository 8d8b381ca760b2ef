"""Masked logs keep at most the first character of an address's local part, whatever its script."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.logging import mask_email, redact


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("ann.lee@uni.edu", "a***@uni.edu"),
        ("\u0430nn.lee@alpha.edu", "\u0430***@alpha.edu"),  # Cyrillic a first
        ("ann\u0430lee@alpha.edu", "a***@alpha.edu"),  # Cyrillic inside
        ("José@uni.edu", "J***@uni.edu"),
        ("josé@uni.edu", "j***@uni.edu"),  # the old pattern stopped at é and logged it whole
        ("élodie@uni.edu", "é***@uni.edu"),
        ("e\u0301lodie@uni.edu", "e\u0301***@uni.edu"),  # decomposed: the base with its mark
        ("\U0001d49cnn@uni.edu", "\U0001d49c***@uni.edu"),  # astral letter, kept whole
        ("\U0001f600smile@uni.edu", "\U0001f600***@uni.edu"),
        ("\u200bann@uni.edu", "***@uni.edu"),  # zero-width space first: nothing kept
        ("\u202eann@uni.edu", "***@uni.edu"),  # bidi override first
        ("\u0301ann@uni.edu", "***@uni.edu"),  # a lone combining mark first
        ("李小龍@例え.jp", "李***@例え.jp"),
        ("ann\uff20uni.edu", "a***@uni.edu"),  # full-width at sign
        ("=?utf-8?q?ann?=@uni.edu", "=***@uni.edu"),
        (
            "rejected mail for <ann.lee@uni.edu>, bob@b.example",
            "rejected mail for <a***@uni.edu>, b***@b.example",
        ),
        ("to=ann@uni.edu;cc=José@x.edu", "t***@uni.edu;c***@x.edu"),  # "=" may be in a local part
        ("mailto:ann@uni.edu", "mailto:a***@uni.edu"),
        ("no address here", "no address here"),
    ],
)
def test_mask_keeps_at_most_the_first_character(text: str, masked: str) -> None:
    assert mask_email(text) == masked


def test_masking_a_long_word_stays_linear() -> None:
    text = "x" * 200_000 + " @ " + "y" * 200_000 + "@z"
    assert mask_email(text).endswith("y***@z")


def test_the_log_processor_masks_every_script() -> None:
    event = redact(
        None, "info", {"event": "email.sent", "to": "José@uni.edu", "nested": {"who": "\u0430nn@a.edu"}}
    )
    assert event == {"event": "email.sent", "to": "J***@uni.edu", "nested": {"who": "\u0430***@a.edu"}}
    assert redact(None, "info", {"to": "ann\uff20uni.edu"})["to"] == "a***@uni.edu"


_SEPARATORS = set("@\uff20\ufe6b<>()[],;:\"'`")
local_parts = st.text(
    st.characters(
        blacklist_characters=sorted(_SEPARATORS), blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: not any(c.isspace() for c in s))


@given(local=local_parts)
def test_any_local_part_keeps_one_character_at_most(local: str) -> None:
    masked = mask_email(f"{local}@uni.example")
    kept, _, rest = masked.partition("***@")
    assert rest == "uni.example"
    assert local.startswith(kept)
    bases = [c for c in kept if unicodedata.category(c)[0] != "M"]
    assert len(bases) <= 1
    assert all(unicodedata.category(c)[0] == "M" for c in kept[1:])
