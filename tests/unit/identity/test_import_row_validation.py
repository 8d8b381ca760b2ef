"""Row 1 of the import table: invalid rows fail with INVALID_ROW and a message naming the field."""

from __future__ import annotations

import pytest

from identity_service.domain.fields import (
    AUTH_IDENTIFIER_MAX,
    EXTRA_KEY_MAX,
    EXTRA_MAX_KEYS,
    EXTRA_VALUE_MAX,
    NAME_MAX,
    USERNAME_MAX,
)
from identity_service.domain.student_file import (
    IncomingRow,
    RowDecision,
    RowOutcome,
    RowReason,
    ValidRow,
    validate_row,
)


def _incoming(**overrides: object) -> IncomingRow:
    values: dict[str, object] = {
        "row_number": 3,
        "username": "ann",
        "email_address": "ann@uni.edu",
        "first_name": "Ann",
        "last_name": "Lee",
        "auth_identifier": "A-1",
        "extra": {"grad_year": "2027"},
    }
    values.update(overrides)
    return IncomingRow(**values)  # type: ignore[arg-type]


def _failure(**overrides: object) -> RowDecision:
    result = validate_row(_incoming(**overrides))
    assert isinstance(result, RowDecision), result
    assert (result.row_number, result.outcome, result.reason) == (
        overrides.get("row_number", 3),
        RowOutcome.FAILED,
        RowReason.INVALID_ROW,
    )
    assert result.create is None and result.changes == {} and result.user_id is None
    return result


def test_valid_row_is_trimmed_and_the_email_normalised() -> None:
    result = validate_row(
        _incoming(
            username="  Ann.Lee ",
            email_address=" Ann.Lee@UNI.Edu ",
            first_name=" Ann ",
            last_name="Lee\u00a0",
            auth_identifier=" A-1 ",
            extra={" grad_year ": " 2027 "},
        )
    )
    assert result == ValidRow(
        row_number=3,
        username="Ann.Lee",
        email="Ann.Lee@uni.edu",
        first_name="Ann",
        last_name="Lee",
        auth_identifier="A-1",
        extra={"grad_year": "2027"},
    )


def test_fields_at_their_limits_are_accepted() -> None:
    local = "a" * 64
    result = validate_row(
        _incoming(
            username="u" * USERNAME_MAX,
            email_address=f"{local}@uni.edu",
            first_name="f" * NAME_MAX,
            last_name="l" * NAME_MAX,
            auth_identifier="x" * AUTH_IDENTIFIER_MAX,
            extra={f"k{i}": "v" * EXTRA_VALUE_MAX for i in range(EXTRA_MAX_KEYS)},
        )
    )
    assert isinstance(result, ValidRow)


def test_optional_fields_may_be_blank() -> None:
    result = validate_row(_incoming(first_name="", last_name="  ", auth_identifier="", extra={}))
    assert isinstance(result, ValidRow)
    assert (result.first_name, result.last_name, result.auth_identifier) == ("", "", "")


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"username": ""}, "username", "required"),
        ({"username": "   "}, "username", "required"),
        ({"email_address": ""}, "email_address", "required"),
        ({"email_address": "ann"}, "email_address", "not a valid email"),
        ({"email_address": "ann@"}, "email_address", "not a valid email"),
        ({"email_address": "ann@uni"}, "email_address", "not a valid email"),
        ({"email_address": "ann lee@uni.edu"}, "email_address", "not a valid email"),
        ({"email_address": "ann\u00e9\ufffd@uni.edu"}, "email_address", "U+FFFD"),
        ({"email_address": "a" * 250 + "@uni.edu"}, "email_address", "too long"),
        ({"username": "u" * (USERNAME_MAX + 1)}, "username", f"at most {USERNAME_MAX}"),
        ({"first_name": "f" * (NAME_MAX + 1)}, "first_name", f"at most {NAME_MAX}"),
        ({"last_name": "l" * (NAME_MAX + 1)}, "last_name", f"at most {NAME_MAX}"),
        ({"auth_identifier": "x" * (AUTH_IDENTIFIER_MAX + 1)}, "auth_identifier", "at most"),
        ({"first_name": "An\x00n"}, "first_name", "U+0000"),
        ({"username": "ann\x07"}, "username", "U+0007"),
        ({"last_name": "Le\ne"}, "last_name", "U+000A"),
        ({"last_name": "M\ufffdller"}, "last_name", "U+FFFD"),
        ({"auth_identifier": "A\x1b[0m"}, "auth_identifier", "U+001B"),
        ({"first_name": "Ann\ud800"}, "first_name", "U+D800"),
        ({"extra": {f"k{i}": "v" for i in range(EXTRA_MAX_KEYS + 1)}}, "extra", "too many entries"),
        ({"extra": {"notes": "v" * (EXTRA_VALUE_MAX + 1)}}, "extra[notes]", f"at most {EXTRA_VALUE_MAX}"),
        ({"extra": {"notes": "bad\x00value"}}, "extra[notes]", "U+0000"),
        ({"extra": {"  ": "value"}}, "extra key", "required"),
        ({"extra": {"k" * (EXTRA_KEY_MAX + 1): "value"}}, "extra key", "too long"),
        ({"row_number": 0}, "row_number", "1 or more"),
    ],
)
def test_invalid_row_names_the_field(overrides: dict[str, object], field: str, words: str) -> None:
    message = _failure(**overrides).message
    assert message.startswith(f"{field}: ")
    assert words in message


def test_every_bad_field_is_named_at_once() -> None:
    message = _failure(username="", email_address="not-an-email", first_name="x" * 101).message
    assert "username: is required" in message
    assert "email_address: is not a valid email address" in message
    assert "first_name: is too long (101 characters, at most 100)" in message
