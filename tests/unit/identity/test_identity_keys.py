"""The one identity key (product.md Additions): every code point whose case rules differ, lookalikes,
and what is not an address."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from identity_service.domain.emails import normalise_email
from identity_service.domain.identity_keys import EmailIdentity, email_key, username_key
from identity_service.domain.lookalikes import mixed_script_problem
from shared.errors import Reason, RollcallError


def _case_troublemakers() -> list[str]:
    """Every code point whose full case folding differs from Python's ``lower()``, whose ``lower()``
    is not one code point (PostgreSQL's ``lower()`` maps one code point to one), or whose upper case
    folds back to something else: where two lower-casings of "the same" address disagree."""
    found = []
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        if unicodedata.category(char) in ("Cs", "Cn"):
            continue
        lower = char.lower()
        if char.casefold() != lower or len(lower) != 1 or char.upper().casefold() != char.casefold():
            found.append(char)
    return found


TROUBLEMAKERS = _case_troublemakers()


def test_the_generated_list_holds_the_known_cases() -> None:
    assert len(TROUBLEMAKERS) > 100
    # dotted capital I, sharp s, final sigma, long s, ffi ligature, Greek iota with two accents
    for char in ("\u0130", "\u00df", "\u03c2", "\u017f", "\ufb03", "\u0390"):
        assert char in TROUBLEMAKERS


@pytest.mark.parametrize("char", TROUBLEMAKERS, ids=lambda c: f"U+{ord(c):04X}")
def test_every_lowercasing_of_an_address_has_one_key(char: str) -> None:
    address = f"a{char}b@Alpha.EDU"
    key = email_key(address)
    assert email_key(f"a{char.lower()}b@alpha.edu") == key
    assert email_key(f"a{char.casefold()}b@alpha.edu") == key
    assert email_key(key) == key  # a key is its own key: stored keys never drift
    assert (
        username_key(f"a{char}b") == username_key(f"a{char.lower()}b") == username_key(f"A{char.casefold()}B")
    )
    assert not any(unicodedata.category(c).startswith("M") for c in key)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("İNAN0@alpha.edu", "inan0@alpha.edu"),
        ("ΝΙΚΟΣ@alpha.edu", "νικος@alpha.edu"),
        ("Straße@alpha.edu", "strasse@alpha.edu"),
        ("José@alpha.edu", "jose@alpha.edu"),
        ("\uff41nn.lee@alpha.edu", "ann.lee@alpha.edu"),  # fullwidth a
        ("o\ufb03ce@alpha.edu", "office@alpha.edu"),  # ffi ligature
        ("ann@Bücher.DE.", "ann@xn--bcher-kva.de"),
        (" Ann@Uni.EDU ", "ann@uni.edu"),
    ],
)
def test_addresses_a_person_takes_for_one_have_one_key(one: str, other: str) -> None:
    assert email_key(one) == email_key(other)


def test_different_addresses_keep_different_keys() -> None:
    assert email_key("ann@alpha.edu") != email_key("anne@alpha.edu")
    assert email_key("ann@alpha.edu") != email_key("ann@beta.edu")
    assert email_key("\u0430nn@alpha.edu") != email_key("ann@alpha.edu")  # Cyrillic a: a lookalike, not one


def test_lookalikes_share_a_skeleton_and_are_confusable_unless_both_plain() -> None:
    plain = EmailIdentity.of("ann@alpha.edu")
    latin_alpha = EmailIdentity.of("\u0251nn@alpha.edu")  # LATIN SMALL LETTER ALPHA, one script
    assert not latin_alpha.plain and latin_alpha.skeleton == plain.skeleton
    assert latin_alpha.confusable_with(plain) and plain.confusable_with(latin_alpha)
    assert not plain.confusable_with(EmailIdentity.of("ANN@alpha.edu"))  # the same address
    # two plain addresses compare by key alone, even where their skeletons meet (l / 1)
    assert not EmailIdentity.of("bill@alpha.edu").confusable_with(EmailIdentity.of("bi1l@alpha.edu"))


@pytest.mark.parametrize(
    "address",
    [
        "\u0430nn.lee@alpha.edu",  # Cyrillic a + Latin
        "ann\u043e@alpha.edu",  # Latin + Cyrillic o
        "\u03bfffice@alpha.edu",  # Greek omicron + Latin
    ],
)
def test_mixed_script_local_parts_are_confusable(address: str) -> None:
    with pytest.raises(RollcallError) as caught:
        normalise_email(address, "email")
    assert caught.value.reason is Reason.EMAIL_CONFUSABLE
    assert caught.value.violations[0].field == "email"


@pytest.mark.parametrize("local", ["ivan", "иван", "νίκος", "山田", "やまだtaro", "김민수", "josé"])
def test_single_script_and_highly_restrictive_local_parts_pass(local: str) -> None:
    assert mixed_script_problem(email_key(f"{local}@alpha.edu").rpartition("@")[0]) is None


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("=?utf-8?q?staff.b?=@beta.edu", "encoded word"),
        ("=?UTF-8?B?c3RhZmYuYg==?=@beta.edu", "encoded word"),
        ("ann\u200b@alpha.edu", "U+200B"),  # zero-width space
        ("ann\u200d@alpha.edu", "U+200D"),  # zero-width joiner
        ("ann\u202e@alpha.edu", "U+202E"),  # right-to-left override
        ("\ufeffann@alpha.edu", "U+FEFF"),  # byte-order mark inside
        ("ann\u00a0lee@alpha.edu", "U+00A0"),  # no-break space
        ("ann\u2028@alpha.edu", "U+2028"),  # line separator
        ("ann\x00@alpha.edu", "U+0000"),
    ],
)
def test_encoded_words_and_invisible_characters_are_not_addresses(address: str, words: str) -> None:
    with pytest.raises(RollcallError) as caught:
        normalise_email(address, "new_email")
    assert caught.value.reason is Reason.INVALID_EMAIL
    assert words in caught.value.message
