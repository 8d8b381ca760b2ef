"""Paging of listings: page_size (default 50, at most 500) and opaque page tokens.

A token is the URL-safe base64 of a small JSON document naming the listing and the keyset cursor
(the sort keys of the last item returned), so a token of one listing is refused by another.

Tokens are opaque to clients but not secret: a token that was tampered with is decoded strictly
(base64 alphabet only, JSON of the listing's shape, each cursor value converted back and checked:
text the database can store, integers within 64 bits, timestamps within range) and anything else
is INVALID_ARGUMENT naming ``page_token``, before any query runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from identity_service.domain.fields import Violations, unreadable_character_problem
from identity_service.service.models import Page

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
TOKEN_MAX = 2048
INT64_MAX = 2**63 - 1

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """How many items to return and where to start (None: from the beginning)."""

    size: int
    after: tuple[Any, ...] | None


def page_request(
    kind: str, shape: Sequence[Callable[[Any], Any]], page_size: int, page_token: str, found: Violations
) -> PageRequest:
    """Check page_size and page_token, recording problems in ``found`` (fields named as in the protos).

    ``shape`` converts each cursor value back (e.g. ``datetime.fromisoformat``); a token whose values
    do not convert is refused like any other foreign token."""
    size = page_size or DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        found.add("page_size", f"must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
        size = DEFAULT_PAGE_SIZE
    after = None
    if page_token:
        after = _decode(kind, shape, page_token)
        if after is None:
            found.add("page_token", "is not a token returned by this listing")
    return PageRequest(size, after)


def encode_token(kind: str, cursor: tuple[Any, ...]) -> str:
    """The token of the page after ``cursor``."""
    raw = json.dumps({"k": kind, "v": list(cursor)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def paginate(kind: str, rows: Sequence[T], size: int, cursor_of: Callable[[T], tuple[Any, ...]]) -> Page[T]:
    """Cut ``rows`` (fetched with ``size + 1`` as the limit) into a page and the token of the next."""
    if len(rows) <= size:
        return Page(list(rows), "")
    items = list(rows[:size])
    return Page(items, encode_token(kind, cursor_of(items[-1])))


def _decode(kind: str, shape: Sequence[Callable[[Any], Any]], token: str) -> tuple[Any, ...] | None:
    if len(token) > TOKEN_MAX or not token.isascii():
        return None
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        document = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.get("k") != kind:
        return None
    values = document.get("v")
    if not isinstance(values, list) or len(values) != len(shape):
        return None
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        return None
    try:
        return tuple(convert(value) for convert, value in zip(shape, values, strict=True))
    except (TypeError, ValueError, OverflowError):
        return None


def text(value: Any) -> str:
    """A cursor value that must be text the database can store (no NUL, no lone surrogate)."""
    if not isinstance(value, str):
        raise TypeError("expected text")
    if unreadable_character_problem(value) is not None:
        raise ValueError("unreadable text")
    return value


def uuid_text(value: Any) -> str:
    """A cursor value that must be a UUID."""
    return str(uuid.UUID(text(value)))


def timestamp(value: Any) -> datetime:
    """A cursor value that must be an ISO timestamp with a time zone (and within range in UTC)."""
    moment = datetime.fromisoformat(text(value))
    if moment.tzinfo is None:
        raise ValueError("timestamp without time zone")
    moment.astimezone(UTC)  # OverflowError at the ends of the calendar, as the driver would raise
    return moment


def integer(value: Any) -> int:
    """A cursor value that must be an integer the database's bigint holds."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValueError("integer out of range")
    return value
