"""Bounded text fields: the limits every request and file row is held to, and how text is cleaned.

Text is trimmed, then refused when it is too long, holds a control character (NUL included) or the
U+FFFD replacement character (the mark of text decoded with the wrong encoding), or a lone surrogate.
``Violations`` gathers every bad field of one request so the caller can fix them all at once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from typing import TypeVar

from shared.errors import FieldViolation, RollcallError, invalid, invalid_fields

NAME_MAX = 100
USERNAME_MAX = 254
EMAIL_MAX = 254
AUTH_IDENTIFIER_MAX = 254
SCHOOL_NAME_MAX = 200
NOTE_MAX = 1000
REQUEST_ID_MAX = 128
PASSWORD_MIN = 10
PASSWORD_MAX = 256
QUERY_MAX = 200
EXTRA_MAX_KEYS = 50
EXTRA_KEY_MAX = 100
EXTRA_VALUE_MAX = 1000

REPLACEMENT_CHARACTER = "\ufffd"
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs"})  # control characters, lone surrogates

T = TypeVar("T")


def unreadable_character_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (control character or bad encoding), or None if it can."""
    if value.isascii() and value.isprintable():  # the common case: nothing below can match
        return None
    for char in value:
        if char == REPLACEMENT_CHARACTER:
            return "contains U+FFFD (the text was not valid UTF-8 or was decoded with the wrong encoding)"
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return f"contains a control or invalid character (U+{ord(char):04X})"
    return None


def clean_text(value: str | None, field: str, *, max_len: int, required: bool = False) -> str:
    """Trim ``value`` and check it: raises ``invalid(field, ...)`` naming the field (and the limit)."""
    text = (value or "").strip()
    if not text:
        if required:
            raise invalid(field, "is required")
        return ""
    problem = unreadable_character_problem(text)
    if problem is not None:
        raise invalid(field, problem)
    if len(text) > max_len:
        raise invalid(field, f"is too long ({len(text)} characters, at most {max_len})")
    return text


def clean_extra(extra: Mapping[str, str] | None, field: str = "extra") -> dict[str, str]:
    """Check the free-form extra columns of a row: at most EXTRA_MAX_KEYS entries, bounded keys/values.

    Keys and values are trimmed; a blank key is refused (the file reader drops unnamed columns).
    """
    entries = dict(extra or {})
    if len(entries) > EXTRA_MAX_KEYS:
        raise invalid(field, f"has too many entries ({len(entries)}, at most {EXTRA_MAX_KEYS})")
    cleaned: dict[str, str] = {}
    for raw_key, raw_value in entries.items():
        key = clean_text(raw_key, f"{field} key", max_len=EXTRA_KEY_MAX, required=True)
        cleaned[key] = clean_text(raw_value, f"{field}[{key}]", max_len=EXTRA_VALUE_MAX)
    return cleaned


class Violations:
    """Collects the field errors of one request, then raises them together.

    >>> v = Violations()
    >>> name = v.check(lambda: clean_text(" Ann ", "first_name", max_len=NAME_MAX), default="")
    >>> v.raise_if_any()
    """

    def __init__(self) -> None:
        self._errors: list[RollcallError] = []

    def check(self, validate: Callable[[], T], default: T) -> T:
        """Run ``validate``; on a RollcallError remember it and return ``default``."""
        try:
            return validate()
        except RollcallError as error:
            self._errors.append(error)
            return default

    def text(self, value: str | None, field: str, *, max_len: int, required: bool = False) -> str:
        """``clean_text`` that records its error instead of raising (returns '' then)."""
        return self.check(lambda: clean_text(value, field, max_len=max_len, required=required), "")

    def add(self, field: str, description: str) -> None:
        self._errors.append(invalid(field, description))

    @property
    def violations(self) -> tuple[FieldViolation, ...]:
        found: list[FieldViolation] = []
        for error in self._errors:
            found.extend(error.violations or (FieldViolation("", error.message),))
        return tuple(found)

    def __bool__(self) -> bool:
        return bool(self._errors)

    def message(self) -> str:
        """One line naming every bad field, e.g. ``username: is required; email_address: ...``."""
        return "; ".join(error.message for error in self._errors)

    def raise_if_any(self) -> None:
        """Raise nothing, the one error as it was (keeping e.g. INVALID_EMAIL), or all of them at once."""
        if len(self._errors) == 1:
            raise self._errors[0]
        if self._errors:
            raise invalid_fields(self.violations)
