"""Bounded text fields and collecting every bad field of a request."""

from __future__ import annotations

import pytest

from identity_service.domain.emails import normalise_email
from identity_service.domain.fields import (
    EXTRA_MAX_KEYS,
    NAME_MAX,
    Violations,
    clean_extra,
    clean_text,
    unreadable_character_problem,
)
from shared.errors import FieldViolation, Reason, RollcallError


def test_limits_are_the_agreed_ones() -> None:
    from identity_service.domain import fields

    assert (fields.NAME_MAX, fields.USERNAME_MAX, fields.AUTH_IDENTIFIER_MAX) == (100, 254, 254)
    assert (fields.SCHOOL_NAME_MAX, fields.NOTE_MAX, fields.REQUEST_ID_MAX, fields.QUERY_MAX) == (
        200,
        1000,
        128,
        200,
    )
    assert (fields.PASSWORD_MIN, fields.PASSWORD_MAX) == (10, 256)
    assert (fields.EXTRA_MAX_KEYS, fields.EXTRA_VALUE_MAX) == (50, 1000)


@pytest.mark.parametrize(
    ("value", "cleaned"),
    [(" Ann ", "Ann"), ("Ann Lee", "Ann Lee"), ("", ""), (None, ""), ("  ", ""), ("Zoë 李", "Zoë 李")],
)
def test_clean_text_trims(value: str | None, cleaned: str) -> None:
    assert clean_text(value, "first_name", max_len=NAME_MAX) == cleaned


def test_clean_text_accepts_exactly_the_limit_after_trimming() -> None:
    assert clean_text("  " + "a" * 5 + "  ", "note", max_len=5) == "aaaaa"


def test_clean_text_refuses_over_long_naming_field_and_limit() -> None:
    with pytest.raises(RollcallError) as caught:
        clean_text("a" * 6, "note", max_len=5)
    assert caught.value.reason is Reason.INVALID_ARGUMENT
    assert caught.value.message == "note: is too long (6 characters, at most 5)"
    assert caught.value.violations == (FieldViolation("note", "is too long (6 characters, at most 5)"),)


def test_required_blank_is_refused() -> None:
    with pytest.raises(RollcallError) as caught:
        clean_text("   ", "username", max_len=10, required=True)
    assert caught.value.message == "username: is required"


@pytest.mark.parametrize(
    "bad", ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\n", "\t", "\ufffd", "\udc80"]
)
def test_control_characters_and_bad_encoding_are_refused(bad: str) -> None:
    with pytest.raises(RollcallError) as caught:
        clean_text(f"An{bad}n", "first_name", max_len=NAME_MAX)
    assert caught.value.message.startswith("first_name: contains ")
    assert f"U+{ord(bad):04X}" in caught.value.message


@pytest.mark.parametrize("good", ["O'Brien", "Jean-Luc", "José", "\u200dx", "محمد", "a b"])
def test_ordinary_text_has_no_problem(good: str) -> None:
    assert unreadable_character_problem(good) is None


def test_clean_extra_trims_and_bounds() -> None:
    assert clean_extra({" year ": " 2027 ", "major": ""}) == {"year": "2027", "major": ""}
    assert clean_extra(None) == {}
    assert len(clean_extra({f"k{i}": "v" for i in range(EXTRA_MAX_KEYS)})) == EXTRA_MAX_KEYS
    with pytest.raises(RollcallError, match=r"extra: has too many entries \(51, at most 50\)"):
        clean_extra({f"k{i}": "v" for i in range(EXTRA_MAX_KEYS + 1)})


def test_violations_collects_every_bad_field() -> None:
    check = Violations()
    name = check.text("a" * 101, "first_name", max_len=NAME_MAX)
    username = check.text("", "username", max_len=10, required=True)
    ok = check.text(" fine ", "last_name", max_len=NAME_MAX)
    email = check.check(lambda: normalise_email("nope", "email"), "")
    check.add("school_id", "is required")

    assert (name, username, ok, email) == ("", "", "fine", "")
    assert bool(check)
    assert [v.field for v in check.violations] == ["first_name", "username", "email", "school_id"]
    with pytest.raises(RollcallError) as caught:
        check.raise_if_any()
    assert caught.value.reason is Reason.INVALID_ARGUMENT
    assert len(caught.value.violations) == 4
    assert caught.value.message == check.message()
    assert "username: is required" in check.message()


def test_violations_with_one_error_keeps_its_reason() -> None:
    check = Violations()
    check.check(lambda: normalise_email("nope", "email"), "")
    with pytest.raises(RollcallError) as caught:
        check.raise_if_any()
    assert caught.value.reason is Reason.INVALID_EMAIL


def test_no_violations_raises_nothing() -> None:
    check = Violations()
    assert check.text("Ann", "first_name", max_len=NAME_MAX) == "Ann"
    assert not check
    check.raise_if_any()
